"""A released state_dict as sparse_gpt's parameter pytree, checked before use.

The reference stores torch Linear weights as [out, in] and computes x @ W.T + b; sparse_gpt
kernels are [in, out]. Its fused `attn.c_attn` holds q | k | v along the output axis, each
n_head * d_head wide and head-major inside, which is sparse_gpt's node order of attn.q/k/v.
"""

from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from sparse_gpt import model
from sparse_gpt.errors import UserError
from sparse_gpt.param_kinds import path_name


class StateDictMismatch(UserError):
  """The state_dict does not hold the parameters its config describes."""


# The causal-mask buffer of a model built with flash=False: recomputed, not a parameter.
def _is_mask_buffer(key: str) -> bool:
  parts = key.split(".")
  return len(parts) == 5 and parts[:2] == ["transformer", "h"] and parts[3:] == ["attn", "bias"]


def _sources(m: ml_collections.ConfigDict) -> dict[str, tuple[str, Callable]]:
  """{sparse_gpt path: (state_dict key, the array -> the parameter)} for this model."""
  hk = m.n_head * m.d_head
  t = lambda w: w.T
  same = lambda w: w
  out = {"embed.embedding": ("transformer.wte.weight", same),
         "pos_embed.embedding": ("transformer.wpe.weight", same),
         "final_norm.gain": ("transformer.ln_f.weight", same)}
  if not m.tied_unembed:
    out["unembed.kernel"] = ("lm_head.weight", t)
  if m.bigram:
    out["bigram"] = ("bigram_table", same)
  if m.logits_bias:
    out["logits_bias"] = ("final_logits_bias", same)
  for i in range(m.n_layer):
    src, dst = f"transformer.h.{i}", f"blocks.{i}"
    for j, x in enumerate("qkv"):
      rows = slice(j * hk, (j + 1) * hk)
      out[f"{dst}.attn.{x}.kernel"] = (f"{src}.attn.c_attn.weight", lambda w, r=rows: w[r].T)
      if m.bias:
        out[f"{dst}.attn.{x}.bias"] = (f"{src}.attn.c_attn.bias", lambda b, r=rows: b[r])
    layer = {"attn.o": "attn.c_proj", "mlp.up": "mlp.c_fc", "mlp.down": "mlp.c_proj"}
    for ours, theirs in layer.items():
      out[f"{dst}.{ours}.kernel"] = (f"{src}.{theirs}.weight", t)
      if m.bias:
        out[f"{dst}.{ours}.bias"] = (f"{src}.{theirs}.bias", same)
    out[f"{dst}.attn_norm.gain"] = (f"{src}.ln_1.weight", same)
    out[f"{dst}.mlp_norm.gain"] = (f"{src}.ln_2.weight", same)
    if m.attn_sink:
      out[f"{dst}.attn.sink"] = (f"{src}.attn.attn_imp.sink_logit", same)
  return out


def _tied_copy_ok(state_dict: dict[str, np.ndarray]) -> bool:
  """With tied_unembed, torch saves the one shared matrix under both names."""
  wte, head = state_dict.get("transformer.wte.weight"), state_dict.get("lm_head.weight")
  return head is not None and wte is not None and np.array_equal(wte, head)


def to_params(cfg: ml_collections.ConfigDict, state_dict: dict[str, np.ndarray]):
  """(graphdef, params) of sparse_gpt's model holding `state_dict`'s values.

  Every expected key must be present with the shape the config implies, and every key
  must be used: a StateDictMismatch names the first key that is not, before any value
  is converted.
  """
  sd = dict(state_dict)
  m = model.model_config(cfg)
  # The reference's loader fills a missing final_logits_bias with zeros (it is a buffer
  # that training never writes).
  sd.setdefault("final_logits_bias", np.zeros((m.vocab_size,), np.float32))
  sd = {k: v for k, v in sd.items() if not _is_mask_buffer(k)}
  if m.tied_unembed and "lm_head.weight" in sd:
    if not _tied_copy_ok(sd):
      raise StateDictMismatch("tied_unembed is true, but lm_head.weight differs from "
                              "transformer.wte.weight: the config does not match the "
                              "state_dict.")
    del sd["lm_head.weight"]
  graphdef, abstract_params = model.abstract(cfg)
  shapes = {path_name(p): leaf.shape
            for p, leaf in jax.tree_util.tree_flatten_with_path(abstract_params)[0]}
  sources = _sources(m)
  assert set(sources) == set(shapes), set(sources) ^ set(shapes)  # this module's own map
  used = {key for key, _ in sources.values()}
  missing = sorted(used - set(sd))
  if missing:
    raise StateDictMismatch(f"final_model.pt has no {missing[0]!r} ({len(missing)} key(s) "
                            "missing), which beeg_config.json implies. Check that the two "
                            "files come from the same model.")
  extra = sorted(set(sd) - used)
  if extra:
    raise StateDictMismatch(f"final_model.pt holds {extra[0]!r} ({len(extra)} unexpected "
                            "key(s)), which beeg_config.json does not imply. Check that the "
                            "two files come from the same model.")
  for key in sorted(used):
    if sd[key].dtype.kind != "f":
      raise StateDictMismatch(f"final_model.pt: {key} has dtype {sd[key].dtype}; parameters "
                              "are floating point.")
  values = {}
  for path, (key, convert) in sources.items():
    values[path] = np.asarray(convert(sd[key]), np.float32)
    if values[path].shape != shapes[path]:
      raise StateDictMismatch(
          f"final_model.pt: {key} has shape {list(sd[key].shape)}, which does not fit "
          f"beeg_config.json (its {path} must be {list(shapes[path])}). Check that the two "
          "files come from the same model.")
  params = jax.tree_util.tree_map_with_path(lambda p, _: values[path_name(p)],
                                            abstract_params)
  return graphdef, params
