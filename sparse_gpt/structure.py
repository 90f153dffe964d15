"""The model's structure, stated once: every parameter and every node site of model.py.

A site is a kind of node location within a layer ("attn.q"); its location in layer i is
"{i}.attn.q". Each parameter entry says what the parameter is (its kind: how it is
sparsified and decayed), how it is laid out on the mesh (a logical axis per dimension,
mapped to mesh axes in sharding.py) and, for a kernel, which two sites it joins (the
circuit edges of docs/method.md section 8). `param_kinds`, `sharding`, `config.LOCATIONS`,
`pruning.nodes` and `pruning.edges` all read these two tables, so a parameter or site
added to the model is described here or fails loudly, never falls to a default.
"""

from collections.abc import Callable
import dataclasses

# Parameter kinds.
HIDDEN = "hidden"  # attention and MLP kernels: the hidden density
EMBED = "embed"  # embedding and unembedding: the embedding density
BIAS = "bias"  # biases: the embedding density when sparsity.sparse_biases, else dense
DENSE = "dense"  # norm gains, attention sinks, bigram table: never sparse, never decayed


@dataclasses.dataclass(frozen=True)
class Site:
  name: str  # "attn.q"
  width: Callable[..., int]  # model config (config.model) -> nodes at this site in one layer
  headed: bool = False  # node n is head n // d_head, channel n % d_head


_D = lambda m: m.d_model
_HK = lambda m: m.n_head * m.d_head

# In the order the forward pass meets them within a layer.
SITES = (Site("attn.in", _D), Site("attn.q", _HK, True), Site("attn.k", _HK, True),
         Site("attn.v", _HK, True), Site("attn.out", _D), Site("mlp.in", _D),
         Site("mlp.neuron", lambda m: m.d_mlp), Site("mlp.out", _D))
SITE = {site.name: site for site in SITES}


@dataclasses.dataclass(frozen=True)
class Param:
  path: str  # dotted, as in checkpoints; "*" stands for a layer index
  kind: str
  axes: tuple[str | None, ...]  # logical axis per dimension; () is replicated
  joins: tuple[str, str] | None = None  # a kernel [in, out]: (source site, target site)


# The vocabulary is split over `tensor`; the embedding's width is not split, because
# splitting it over fsdp made XLA re-gather whole activations after the lookup.
PARAMS = (
    Param("embed.embedding", EMBED, ("vocab", None)),
    Param("pos_embed.embedding", EMBED, (None, "embed")),
    *(Param(f"blocks.*.attn.{x}.kernel", HIDDEN, ("embed", "heads"), ("attn.in", f"attn.{x}"))
      for x in "qkv"),
    *(Param(f"blocks.*.attn.{x}.bias", BIAS, ("heads",)) for x in "qkv"),
    Param("blocks.*.attn.o.kernel", HIDDEN, ("heads", "embed"), ("attn.v", "attn.out")),
    Param("blocks.*.attn.o.bias", BIAS, ()),
    Param("blocks.*.attn.sink", DENSE, ()),
    Param("blocks.*.attn_norm.gain", DENSE, ()),
    Param("blocks.*.mlp.up.kernel", HIDDEN, ("embed", "mlp"), ("mlp.in", "mlp.neuron")),
    Param("blocks.*.mlp.up.bias", BIAS, ("mlp",)),
    Param("blocks.*.mlp.down.kernel", HIDDEN, ("mlp", "embed"), ("mlp.neuron", "mlp.out")),
    Param("blocks.*.mlp.down.bias", BIAS, ()),
    Param("blocks.*.mlp_norm.gain", DENSE, ()),
    Param("final_norm.gain", DENSE, ()),
    Param("unembed.kernel", EMBED, ("embed", "vocab")),
    Param("bigram", DENSE, ("vocab", None)),
    Param("logits_bias", DENSE, ("vocab",)),
)
KERNELS = tuple(p for p in PARAMS if p.joins)  # the kernels that join two sites


class UnknownParameter(LookupError):
  """A parameter that PARAMS does not describe: add its entry here."""


def matches(name: str, pattern: str) -> bool:
  """Whether dotted path `name` ends with `pattern` ("*" matching a layer index)."""
  parts, want = name.split("."), pattern.split(".")
  if len(parts) < len(want):
    return False
  return all(w == p or (w == "*" and p.isdigit())
             for w, p in zip(want, parts[len(parts) - len(want):]))


def param(name: str) -> Param:
  """The entry of the parameter at dotted path `name`, or of an optimizer-state leaf
  shaped like it ("inner.1.0.mu.blocks.0.attn.q.kernel": the path ends with it)."""
  found = [p for p in PARAMS if matches(name, p.path)]
  if len(found) != 1:
    why = "matches none" if not found else f"matches {[p.path for p in found]}"
    raise UnknownParameter(
        f"parameter {name!r} {why} of the entries in sparse_gpt/structure.py: give it "
        "exactly one PARAMS entry (its kind, sharding axes and, for a kernel, the sites "
        "it joins)")
  return found[0]


def layer_path(kernel: Param, layer: int) -> str:
  """The dotted path of a per-layer parameter in layer `layer`."""
  return kernel.path.replace("*", str(layer))
