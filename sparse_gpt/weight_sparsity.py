"""Weight sparsity: exact per-tensor top-k projection after every optimizer step.

Each covered tensor keeps its k = round(density * size) largest-magnitude entries and
the rest become exactly zero. With a neuron floor j, every output channel (column of a
[in, out] kernel, residual channel of an embedding) first keeps its own top j, then the
global top-k fills the rest. Densities anneal linearly from 1 to their target.

Top-k is `topk.topk_mask`: a bisection whose k may be traced, so the annealed k needs
no recompilation, and whose count is exact. A tensor its sharding splits is projected
shard by shard with the masks of `sharded_topk`, to the same result.
"""

from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
import optax

from sparse_gpt import param_kinds
from sparse_gpt import sharded_topk
from sparse_gpt.topk import topk_mask


def _project(w, k, neuron_floor: int, shape: tuple[int, ...], column_mask, mask):
  """The projection of `w` (of `shape`, or a shard of it), given its top-k masks:
  `column_mask(m, j)` keeps the j largest of each column of m, `mask(m, k)` k in all."""
  magnitude = jnp.abs(w).astype(jnp.float32)
  if len(shape) == 2 and neuron_floor > 0:
    j = min(neuron_floor, shape[0])
    magnitude = jnp.where(column_mask(magnitude, j), jnp.inf, magnitude)
    k = jnp.maximum(k, j * shape[1])
  return jnp.where(mask(magnitude, k), w, 0)


def project_tensor(w: jax.Array, k: jax.Array | int, neuron_floor: int,
                   sharding: NamedSharding | None = None) -> jax.Array:
  """w with all but its top-k |entries| zeroed; 2-D tensors honour the neuron floor.

  When `sharding` (w's) splits w, every device projects its own shard (sharded_topk),
  never gathering w; the result is the same.
  """
  if sharding is None or sharding.is_fully_replicated:
    return _project(w, k, neuron_floor, w.shape,
                    lambda m, j: topk_mask(m, j, axis=0), topk_mask)
  spec = sharding.spec

  def local(shard, k):
    return _project(shard, k, neuron_floor, w.shape,
                    lambda m, j: sharded_topk.column_topk_mask(m, j, spec),
                    lambda m, k: sharded_topk.topk_mask(m, k, spec))

  return jax.shard_map(local, mesh=sharding.mesh, in_specs=(spec, P()), out_specs=spec)(
      w, jnp.asarray(k, jnp.int32))


def density_at(step, total_steps: int, target: float, start: float, end: float):
  """Density at `step`: 1 until start*total, then linear down to target at end*total."""
  frac = (step / total_steps - start) / (end - start)
  return 1.0 - jnp.clip(frac, 0.0, 1.0) * (1.0 - target)


class Densities(NamedTuple):
  hidden: jax.Array
  embed: jax.Array


def densities_at(step, cfg: ml_collections.ConfigDict) -> Densities:
  """The schedule's densities at `step`; 1 when weight sparsity is off (a dense run)."""
  s, total = cfg.sparsity, cfg.train.steps
  if not s.enabled:
    return Densities(hidden=jnp.float32(1.0), embed=jnp.float32(1.0))
  at = lambda target: density_at(step, total, target, s.anneal_start, s.anneal_end)
  return Densities(hidden=at(s.target_density), embed=at(s.embed_density))


def project(params: nnx.State, step, cfg: ml_collections.ConfigDict,
            shardings: nnx.State | None = None) -> nnx.State:
  """Projects every covered tensor onto its top-k for the density at `step`.

  `shardings`: the parameters' NamedShardings (a tree like `params`), if sharded.
  """
  d = densities_at(step, cfg)
  kinds = param_kinds.kinds(params, cfg.sparsity.sparse_biases)
  def one(kind, w, sharding=None):
    if kind not in (param_kinds.HIDDEN, param_kinds.EMBED):
      return w
    density = d.hidden if kind == param_kinds.HIDDEN else d.embed
    k = jnp.maximum(1, jnp.round(density * w.size)).astype(jnp.int32)
    return project_tensor(w, k, cfg.sparsity.neuron_floor, sharding)
  return jax.tree.map(one, kinds, params, *([] if shardings is None else [shardings]))


class SparsifyState(NamedTuple):
  count: jax.Array
  inner: optax.OptState


def sparsify(inner: optax.GradientTransformation, cfg: ml_collections.ConfigDict,
             shardings: nnx.State | None = None) -> optax.GradientTransformation:
  """Wraps any optax optimizer so that the parameters it produces are projected.

  Gradients and the inner optimizer's moments stay dense; only parameters are pruned.
  `shardings`: the parameters' NamedShardings, if sharded (see `project`).
  """

  def init(params):
    return SparsifyState(jnp.zeros((), jnp.int32), inner.init(params))

  def update(updates, state, params):
    updates, inner_state = inner.update(updates, state.inner, params)
    count = state.count + 1
    projected = project(optax.apply_updates(params, updates), count, cfg, shardings)
    # p + (0 - p) is exactly 0, so pruned entries come out exactly zero.
    return jax.tree.map(jnp.subtract, projected, params), SparsifyState(count, inner_state)

  return optax.GradientTransformation(init, update)


def measured_densities(params: nnx.State) -> dict[str, jax.Array]:
  """Fraction of nonzero entries of every tensor, by dotted parameter path."""
  return {param_kinds.path_name(path): jnp.mean(w != 0)
          for path, w in jax.tree_util.tree_flatten_with_path(params)[0]}
