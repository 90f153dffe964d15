"""GPT-2 style pre-norm decoder with named node locations (docs/method.md section 2).

Axes: B batch, L length, D d_model, F d_mlp, H heads, K head width, V vocab,
N the nodes at one location (D, H*K or F).

Node locations of layer i, in forward order (each a vector of scalar nodes):
  "{i}.attn.in"    [D]    residual stream after the attention RMSNorm
  "{i}.attn.q/k/v" [H*K]  query/key/value channels, node h*K + c is head h channel c
  "{i}.attn.out"   [D]    the attention block's write to the residual stream
  "{i}.mlp.in"     [D]    residual stream after the MLP RMSNorm
  "{i}.mlp.neuron" [F]    MLP neurons after the GELU (exact erf by default)
  "{i}.mlp.out"    [D]    the MLP block's write to the residual stream
At each location AbsTopK activation sparsity runs first (if on there), then an edit,
then recording: so an intervention sees what the model computes.

Norms "{i}.attn_norm", "{i}.mlp_norm" and "final_norm" can be frozen per call: each then
divides by a given RMS (inv_rms_BxLx1, e.g. the unablated model's on the same tokens,
from `norm_scales`) instead of its input's, so an edit cannot rescale the residual.

With logits wanted only at one position per row (positions_B), the last block computes
only what those logits need: keys and values at every position, the rest (query,
attention output, MLP and their nodes) at positions_B alone. Its nodes elsewhere are then
never computed, so this holds only while none of them is recorded.
"""

import math
from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections

from sparse_gpt import config as config_lib
from sparse_gpt import mixed_dot
from sparse_gpt.activation_sparsity import abs_topk


def at_positions(x_BxLx: jax.Array, positions_B: jax.Array) -> jax.Array:
  """Row b's entry at position positions_B[b]: [B, 1, ...]."""
  return x_BxLx[jnp.arange(x_BxLx.shape[0]), positions_B][:, None]


class NodeEdit(NamedTuple):
  """x -> keep * x + (1 - keep) * fill at one location (mask + ablation value)."""
  keep: jax.Array  # [N], 1 keeps the node, 0 replaces it by fill
  fill: jax.Array  # [N] (mean or zero ablation) or [B, L, N] (resample ablation)


class Hooks:
  """Per-call node hooks: activation sparsity, edits and recording by node name."""

  def __init__(self, topk_at: frozenset[str], afrac: float,
               edits: dict[str, NodeEdit] | None, record: tuple[str, ...] | str,
               norms: dict[str, jax.Array] | None = None, record_norms: bool = False):
    self.topk_at, self.afrac = topk_at, afrac
    self.edits = edits or {}
    self.record_all = record == "all"
    self.record = frozenset(() if self.record_all else record)
    self.recorded: dict[str, jax.Array] = {}
    self.norms = norms or {}  # norm name -> frozen inv_rms_BxLx1
    self.record_norms = record_norms
    self.recorded_norms: dict[str, jax.Array] = {}

  def records_layer(self, layer: int) -> bool:
    """Whether any node or norm of layer `layer` is recorded."""
    return (self.record_all or self.record_norms
            or any(name.startswith(f"{layer}.") for name in self.record))

  def __call__(self, name: str, x_BxLxN: jax.Array, positions_B=None) -> jax.Array:
    """positions_B, if given: x holds only these positions of each row (x_Bx1xN)."""
    if name.split(".", 1)[1] in self.topk_at:
      x_BxLxN = abs_topk(x_BxLxN, max(1, int(self.afrac * x_BxLxN.shape[-1])))
    if name in self.edits:
      keep, fill = self.edits[name]
      if positions_B is not None and fill.ndim == 3:
        fill = at_positions(fill, positions_B)
      x_BxLxN = keep * x_BxLxN + (1 - keep) * fill
    if self.record_all or name in self.record:
      self.recorded[name] = x_BxLxN
    return x_BxLxN

  def norm_scale(self, name: str, norm: "RMSNorm", x_BxLxD: jax.Array, positions_B=None
                 ) -> jax.Array | None:
    """The frozen inv_rms_BxLx1 of norm `name` (None: its own); records its own if asked.
    positions_B as in __call__."""
    if self.record_norms:
      self.recorded_norms[name] = norm.inv_rms(x_BxLxD)
    inv_rms_BxLx1 = self.norms.get(name)
    if positions_B is not None and inv_rms_BxLx1 is not None:
      inv_rms_BxLx1 = at_positions(inv_rms_BxLx1, positions_B)
    return inv_rms_BxLx1


def _normal(std: float):
  return nnx.initializers.normal(stddev=std)


class RMSNorm(nnx.Module):
  """No mean subtraction, so a zero residual channel stays zero."""

  def __init__(self, d: int, eps: float):
    self.eps = eps
    self.gain = nnx.Param(jnp.ones((d,), jnp.float32))

  def inv_rms(self, x_BxLxD):
    x32 = x_BxLxD.astype(jnp.float32)
    return jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)

  def __call__(self, x_BxLxD, inv_rms_BxLx1=None):
    """inv_rms_BxLx1, if given, replaces 1 / RMS(x): a frozen norm."""
    if inv_rms_BxLx1 is None:
      inv_rms_BxLx1 = self.inv_rms(x_BxLxD)
    normed = x_BxLxD.astype(jnp.float32) * inv_rms_BxLx1
    return (normed * self.gain[...]).astype(x_BxLxD.dtype)


def _linear(d_in, d_out, std, cfg, rngs, bias=None):
  """bias None: as the model's `bias` option says."""
  dtype = jnp.dtype(cfg.compute_dtype)
  dot_general = mixed_dot.dot_general if dtype == jnp.bfloat16 else jax.lax.dot_general
  return nnx.Linear(d_in, d_out, use_bias=cfg.bias if bias is None else bias, kernel_init=_normal(std),
                    dtype=dtype, param_dtype=jnp.float32, dot_general=dot_general, rngs=rngs)


# Training-length attention runs in this many query chunks, each against only the keys
# it can see: 10/16 of the score matrix for 4 (benchmarks/NOTES.md, issue 15).
QUERY_CHUNKS = 4


def attention_probs(q_BxQxHxK: jax.Array, k_BxLxHxK: jax.Array,
                    sink_H: jax.Array | None = None, positions_B=None,
                    first_query: int = 0) -> jax.Array:
  """Causal attention weights [B, H, Q, L] (query by key), in float32.

  Queries are at positions first_query .. first_query + Q - 1 (every position when Q = L),
  or with positions_B one per row at that position (Q = 1). The sink, where the model
  has one, is one more key per head, always visible, whose value is zero: it takes
  weight but its column is dropped. The circuit viewer calls this with recorded queries
  and keys, so the pattern it draws is the one the model uses.
  """
  b, q, n_head, d_head = q_BxQxHxK.shape
  l = k_BxLxHxK.shape[1]
  scores_BxHxQxL = jnp.einsum("bqhk,bshk->bhqs", q_BxQxHxK, k_BxLxHxK,
                              preferred_element_type=jnp.float32)
  scores_BxHxQxL /= math.sqrt(d_head)
  if positions_B is None:
    causal = jnp.arange(l)[None, :] <= first_query + jnp.arange(q)[:, None]
  else:
    causal = (jnp.arange(l) <= positions_B[:, None])[:, None, None]
  scores_BxHxQxL = jnp.where(causal, scores_BxHxQxL, -jnp.inf)
  if sink_H is None:
    return jax.nn.softmax(scores_BxHxQxL, -1)
  sink_BxHxQx1 = jnp.broadcast_to(sink_H[None, :, None, None], (b, n_head, q, 1))
  probs = jax.nn.softmax(jnp.concatenate([scores_BxHxQxL, sink_BxHxQx1], -1), -1)
  return probs[..., :-1]


def _mix(probs_BxHxQxL, v_BxLxHxK):
  return jnp.einsum("bhqs,bshk->bqhk", probs_BxHxQxL.astype(v_BxLxHxK.dtype), v_BxLxHxK)


def causal_attention(q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, sink_H=None) -> jax.Array:
  """The attention output [B, L, H, K] for queries at every position, in QUERY_CHUNKS
  query chunks when L divides into them (else in one)."""
  l = q_BxLxHxK.shape[1]
  chunks = QUERY_CHUNKS if l % QUERY_CHUNKS == 0 else 1
  size = l // chunks
  return jnp.concatenate([
      _mix(attention_probs(q_BxLxHxK[:, start:start + size], k_BxLxHxK[:, :start + size],
                           sink_H, first_query=start), v_BxLxHxK[:, :start + size])
      for start in range(0, l, size)], axis=1)


class Attention(nnx.Module):

  def __init__(self, cfg, layer: int, rngs: nnx.Rngs):
    hk = cfg.n_head * cfg.d_head
    out_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    self.layer, self.n_head, self.d_head = layer, cfg.n_head, cfg.d_head
    self.q = _linear(cfg.d_model, hk, 0.02, cfg, rngs)
    self.k = _linear(cfg.d_model, hk, 0.02, cfg, rngs)
    self.v = _linear(cfg.d_model, hk, 0.02, cfg, rngs)
    self.o = _linear(hk, cfg.d_model, out_std, cfg, rngs)
    self.sink = nnx.Param(jnp.zeros((cfg.n_head,), jnp.float32)) if cfg.attn_sink else None

  def __call__(self, x_BxLxD, hooks: Hooks, positions_B=None):
    """-> the write to the residual [B, L, D]; with positions_B [B, 1, D], for the queries
    at positions_B alone."""
    b = x_BxLxD.shape[0]
    name = f"{self.layer}.attn"
    split = lambda t: t.reshape(b, t.shape[1], self.n_head, self.d_head)
    q_in_BxQxD = x_BxLxD if positions_B is None else at_positions(x_BxLxD, positions_B)
    q_BxQxHxK = split(hooks(f"{name}.q", self.q(q_in_BxQxD), positions_B))
    k_BxLxHxK = split(hooks(f"{name}.k", self.k(x_BxLxD)))
    v_BxLxHxK = split(hooks(f"{name}.v", self.v(x_BxLxD)))
    sink_H = None if self.sink is None else self.sink[...]
    if positions_B is None:
      mix_BxQxHxK = causal_attention(q_BxQxHxK, k_BxLxHxK, v_BxLxHxK, sink_H)
    else:
      mix_BxQxHxK = _mix(attention_probs(q_BxQxHxK, k_BxLxHxK, sink_H, positions_B),
                         v_BxLxHxK)
    return hooks(f"{name}.out", self.o(mix_BxQxHxK.reshape(b, q_in_BxQxD.shape[1], -1)),
                 positions_B)


class Mlp(nnx.Module):

  def __init__(self, cfg, layer: int, rngs: nnx.Rngs):
    self.layer, self.approximate_gelu = layer, cfg.gelu == "tanh"
    self.relu = cfg.activation == "relu"
    self.up = _linear(cfg.d_model, cfg.d_mlp, 0.02, cfg, rngs)
    self.down = _linear(cfg.d_mlp, cfg.d_model, 0.02 / math.sqrt(2 * cfg.n_layer), cfg, rngs)

  def __call__(self, x_BxLxD, hooks: Hooks, positions_B=None):
    """positions_B as in Hooks.__call__."""
    up_BxLxF = self.up(x_BxLxD)
    h_BxLxF = (jax.nn.relu(up_BxLxF) if self.relu else
               jax.nn.gelu(up_BxLxF, approximate=self.approximate_gelu))
    h_BxLxF = hooks(f"{self.layer}.mlp.neuron", h_BxLxF, positions_B)
    return hooks(f"{self.layer}.mlp.out", self.down(h_BxLxF), positions_B)


class Block(nnx.Module):

  def __init__(self, cfg, layer: int, rngs: nnx.Rngs):
    self.layer = layer
    self.attn_norm, self.attn = RMSNorm(cfg.d_model, cfg.norm_eps), Attention(cfg, layer, rngs)
    self.mlp_norm, self.mlp = RMSNorm(cfg.d_model, cfg.norm_eps), Mlp(cfg, layer, rngs)

  def _normed(self, block: str, norm: RMSNorm, x_BxLxD, hooks: Hooks, positions_B=None):
    """The block's input node location: its norm of the residual stream."""
    inv_rms_BxLx1 = hooks.norm_scale(f"{self.layer}.{block}_norm", norm, x_BxLxD, positions_B)
    return hooks(f"{self.layer}.{block}.in", norm(x_BxLxD, inv_rms_BxLx1), positions_B)

  def __call__(self, x_BxLxD, hooks: Hooks, positions_B=None):
    """-> the residual [B, L, D]; with positions_B [B, 1, D] at those positions alone (the
    attention still reads keys and values at every position)."""
    attn_BxQxD = self.attn(self._normed("attn", self.attn_norm, x_BxLxD, hooks), hooks,
                           positions_B)
    if positions_B is not None:
      x_BxLxD = at_positions(x_BxLxD, positions_B)
    x_BxLxD = x_BxLxD + attn_BxQxD
    return x_BxLxD + self.mlp(self._normed("mlp", self.mlp_norm, x_BxLxD, hooks, positions_B),
                              hooks, positions_B)


class Transformer(nnx.Module):

  def __init__(self, cfg: ml_collections.ConfigDict, rngs: nnx.Rngs):
    self.remat = cfg.remat
    self.topk_at, self.afrac = config_lib.abstopk_locations(cfg), cfg.afrac
    self.compute_dtype = jnp.dtype(cfg.compute_dtype)
    vocab = cfg.vocab_size
    self.embed = nnx.Embed(vocab, cfg.d_model, embedding_init=_normal(0.02), rngs=rngs)
    self.pos_embed = (nnx.Embed(cfg.n_ctx, cfg.d_model, embedding_init=_normal(0.02), rngs=rngs)
                      if cfg.pos_embedding else None)
    self.blocks = nnx.List([Block(cfg, i, rngs) for i in range(cfg.n_layer)])
    self.final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
    self.unembed = (None if cfg.tied_unembed else
                    _linear(cfg.d_model, vocab, 0.02, cfg, rngs, bias=False))
    self.logits_bias = (nnx.Param(jnp.zeros((vocab,), jnp.float32)) if cfg.logits_bias
                        else None)
    self.bigram = (nnx.Param(jax.random.uniform(rngs.params(), (vocab, vocab), maxval=0.02))
                   if cfg.bigram else None)

  def __call__(self, tokens_BxL, hooks: Hooks, positions_B=None):
    x_BxLxD = self.embed(tokens_BxL)
    if self.pos_embed is not None:
      x_BxLxD += self.pos_embed(jnp.arange(tokens_BxL.shape[1]))[None]
    x_BxLxD = x_BxLxD.astype(self.compute_dtype)
    last = len(self.blocks) - 1
    last_at_positions = positions_B is not None and not hooks.records_layer(last)
    for i, block in enumerate(self.blocks):
      at_B = positions_B if last_at_positions and i == last else None
      if self.remat and not (hooks.record or hooks.record_all or hooks.record_norms):
        x_BxLxD = nnx.remat(lambda blk, x, at_B: blk(x, hooks, at_B))(block, x_BxLxD, at_B)
      else:
        x_BxLxD = block(x_BxLxD, hooks, at_B)
    inv_rms_BxLx1 = hooks.norm_scale("final_norm", self.final_norm, x_BxLxD)
    if positions_B is not None:  # unembed only where logits are needed
      if not last_at_positions:
        x_BxLxD = at_positions(x_BxLxD, positions_B)
      tokens_BxL = at_positions(tokens_BxL, positions_B)
      if inv_rms_BxLx1 is not None:
        inv_rms_BxLx1 = at_positions(inv_rms_BxLx1, positions_B)
    logits_BxLxV = self.logits(x_BxLxD, tokens_BxL, inv_rms_BxLx1)
    return logits_BxLxV if positions_B is None else logits_BxLxV[:, 0]

  def logits(self, x_BxLxD, tokens_BxL, inv_rms_BxLx1=None):
    """The residual stream entering the final norm -> float32 logits_BxLxV."""
    normed_BxLxD = self.final_norm(x_BxLxD, inv_rms_BxLx1)
    if self.unembed is None:
      logits_BxLxV = self.embed.attend(normed_BxLxD).astype(jnp.float32)
    else:
      logits_BxLxV = self.unembed(normed_BxLxD).astype(jnp.float32)
    if self.logits_bias is not None:
      logits_BxLxV += self.logits_bias[...]
    if self.bigram is not None:
      logits_BxLxV += self.bigram[...][tokens_BxL]
    return logits_BxLxV


def model_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The model section with the vocabulary size filled in from the data section."""
  m = ml_collections.ConfigDict(cfg.model.to_dict())
  m.vocab_size = cfg.data.vocab_size
  return m


def init(cfg: ml_collections.ConfigDict, key: jax.Array) -> tuple[nnx.GraphDef, nnx.State]:
  """(graph definition, parameter pytree) of a freshly initialised model."""
  return nnx.split(Transformer(model_config(cfg), nnx.Rngs(params=key)))


def abstract(cfg: ml_collections.ConfigDict) -> tuple[nnx.GraphDef, nnx.State]:
  """Like init, but with ShapeDtypeStructs: no memory, no compute."""
  return nnx.eval_shape(lambda: init(cfg, jax.random.key(0)))


def forward(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxL: jax.Array,
            edits: dict[str, NodeEdit] | None = None,
            record: tuple[str, ...] | str = (), positions_B: jax.Array | None = None,
            norms: dict[str, jax.Array] | None = None
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Pure apply: (logits_BxLxV, {node name: activation_BxLxN for each recorded node}).

  `record="all"` records every node location. With `positions_B`, logits are computed
  only at those positions and come back as logits_BxV. `norms` freezes the norms it
  names (norm_scales).
  """
  model = nnx.merge(graphdef, params)
  hooks = Hooks(model.topk_at, model.afrac, edits, record, norms)
  return model(tokens_BxL, hooks, positions_B), hooks.recorded


def residual_sites(n_layer: int) -> tuple[str, ...]:
  """The residual stream's sublayer inputs in forward order: "{i}.attn" and "{i}.mlp" (the
  stream entering block i's attention or MLP norm, whose output is node "{i}.attn.in" or
  "{i}.mlp.in"), then "final" (entering the final norm)."""
  return tuple(f"{i}.{half}" for i in range(n_layer) for half in ("attn", "mlp")) + ("final",)


def residual_forward(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxL: jax.Array,
                     start: str | None = None, start_BxLxD: jax.Array | None = None,
                     add: dict[str, jax.Array] | None = None
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(logits_BxLxV, {site: residual_BxLxD at every residual site}), as `forward` computes.

  With `start`, the forward begins at that site with the residual `start_BxLxD` (the
  layers before it are skipped; the tokens still feed the bigram table). `add` adds a
  residual_BxLxD at a site, before that site's residual is recorded and read on. No node
  edits, no remat: this is the bridges' view of the model (sparse_gpt/bridge/).
  """
  model = nnx.merge(graphdef, params)
  hooks = Hooks(model.topk_at, model.afrac, None, ())
  sites = residual_sites(len(model.blocks))
  if start is not None and start not in sites:
    raise ValueError(f"unknown residual site {start!r}; the sites are {sites}")
  add = add or {}
  recorded = {}
  x_BxLxD = None
  if start is None:
    x_BxLxD = model.embed(tokens_BxL)
    if model.pos_embed is not None:
      x_BxLxD += model.pos_embed(jnp.arange(tokens_BxL.shape[1]))[None]
    x_BxLxD = x_BxLxD.astype(model.compute_dtype)

  def at(site, x_BxLxD):
    if site == start:
      x_BxLxD = start_BxLxD.astype(model.compute_dtype)
    if x_BxLxD is not None and site in add:
      x_BxLxD = x_BxLxD + add[site].astype(x_BxLxD.dtype)
    if x_BxLxD is not None:
      recorded[site] = x_BxLxD
    return x_BxLxD

  for i, block in enumerate(model.blocks):
    x_BxLxD = at(f"{i}.attn", x_BxLxD)
    if x_BxLxD is not None:
      x_BxLxD = x_BxLxD + block.attn(hooks(f"{i}.attn.in", block.attn_norm(x_BxLxD)), hooks)
    x_BxLxD = at(f"{i}.mlp", x_BxLxD)
    if x_BxLxD is not None:
      x_BxLxD = x_BxLxD + block.mlp(hooks(f"{i}.mlp.in", block.mlp_norm(x_BxLxD)), hooks)
  return model.logits(at("final", x_BxLxD), tokens_BxL), recorded


def norm_scales(graphdef: nnx.GraphDef, params: nnx.State, tokens_BxL: jax.Array
                ) -> dict[str, jax.Array]:
  """{norm name: inv_rms_BxLx1} of every RMSNorm of the unedited model on `tokens_BxL`."""
  model = nnx.merge(graphdef, params)
  hooks = Hooks(model.topk_at, model.afrac, None, (), record_norms=True)
  model(tokens_BxL, hooks, jnp.zeros(tokens_BxL.shape[0], jnp.int32))
  return hooks.recorded_norms
