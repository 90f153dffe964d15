"""Top-k masks of a sharded tensor, each device computing its own shard's part.

Left to XLA, the weight-sparsity projection of an fsdp-sharded matrix all-gathers it:
the positional tie-break is a cumsum across the sharded axis and the neuron floor ranks
whole columns. Called inside `jax.shard_map` (`weight_sparsity.project_tensor` does),
these masks run the bisection of `topk.kth_bits` on the local shard: per pass only a
count crosses devices (a psum), and ties are ranked by adding the tie counts of earlier
shards (one number per row or column, never weights). The mask is exactly the unsharded
one: the same entries, ties to the earlier position in row-major order.
"""

import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from sparse_gpt import topk


def _axes(entry) -> tuple[str, ...]:
  """Mesh axes of one PartitionSpec entry, as a tuple."""
  if entry is None:
    return ()
  return tuple(entry) if isinstance(entry, tuple) else (entry,)


def _psum(x, axes):
  return jax.lax.psum(x, axes) if axes else x


def _earlier(x, axes):
  """Sum of `x` over the shards before this one along `axes`; 0 on the first."""
  if not axes:
    return jnp.zeros_like(x)
  every = jax.lax.all_gather(x, axes)  # [shards, ...]: counts, small
  before = jnp.arange(every.shape[0]) < jax.lax.axis_index(axes)
  return jnp.sum(jnp.where(before.reshape((-1,) + (1,) * x.ndim), every, 0), axis=0)


def _local_bits(score: jax.Array, spec: P):
  """(int32 bits of the local shard as rows x columns, row axes, column axes).

  A 1-D tensor is one row, split along its columns.
  """
  entries = tuple(spec) + (None,) * (score.ndim - len(spec))
  rows, cols = ((), _axes(entries[0])) if score.ndim == 1 else map(_axes, entries)
  score_RxC = score.reshape(1, -1) if score.ndim == 1 else score
  return jax.lax.bitcast_convert_type(score_RxC.astype(jnp.float32), jnp.int32), rows, cols


def _shards(axes) -> int:
  return math.prod(jax.lax.axis_size(a) for a in axes)


def topk_mask(score: jax.Array, k, spec: P) -> jax.Array:
  """This shard's part of the k largest entries of a non-negative (1-D or 2-D) score
  sharded as `spec`; ties to the earlier row-major position."""
  bits_RxC, rows, cols = _local_bits(score, spec)
  both = rows + cols
  kth, count_kth = topk.kth_bits(lambda t: _psum(jnp.sum(bits_RxC >= t), both), k,
                                 bits_RxC.size * _shards(both))

  def tie_break():
    above, ties = bits_RxC > kth, bits_RxC == kth
    need = k - _psum(jnp.sum(above), both)
    ties_R = jnp.sum(ties, axis=1)
    row_ties_R = _psum(ties_R, cols)  # ties in each local row, across all columns
    before_R = _earlier(jnp.sum(row_ties_R), rows) + jnp.cumsum(row_ties_R) - row_ties_R
    rank = (before_R + _earlier(ties_R, cols))[:, None] + jnp.cumsum(ties, axis=1)
    return above | (ties & (rank <= need))

  mask = jax.lax.cond(count_kth == k, lambda: bits_RxC >= kth, tie_break)
  return mask.reshape(score.shape)


def column_topk_mask(score_RxC: jax.Array, j, spec: P) -> jax.Array:
  """This shard's part of the j largest entries of each column of a non-negative 2-D
  score sharded as `spec`; ties to the earlier row."""
  bits_RxC, rows, cols = _local_bits(score_RxC, spec)
  count = lambda t: _psum(jnp.sum(bits_RxC >= t, axis=0, keepdims=True), rows)
  # Columns of other shards are done at other passes: every device runs until all are.
  everywhere = lambda done_1xC: _psum(jnp.sum(~done_1xC), cols) == 0
  kth_1xC, count_1xC = topk.kth_bits(count, j, bits_RxC.shape[0] * _shards(rows),
                                     everywhere)

  def tie_break():
    above, ties = bits_RxC > kth_1xC, bits_RxC == kth_1xC
    need_1xC = j - _psum(jnp.sum(above, axis=0, keepdims=True), rows)
    rank = _earlier(jnp.sum(ties, axis=0, keepdims=True), rows) + jnp.cumsum(ties, axis=0)
    return above | (ties & (rank <= need_1xC))

  # One branch for every device, so the collectives inside it match up.
  return jax.lax.cond(everywhere(count_1xC == j), lambda: bits_RxC >= kth_1xC, tie_break)
