"""Exact top-k masks, fast on CPU and with a traced k. Ties go to the earlier position,
so a mask holds exactly k entries.

Non-negative float32 values order like their int32 bit patterns, so the k-th largest
value is found by bisecting on the bits: at most 32 passes of compare-and-count, which
on CPU is over 10x faster than a sort or `lax.top_k` for the sizes we use. What keeps it
fast (benchmarks/NOTES.md has the figures):
- counts are a matrix-vector product of the 0/1 comparison with ones, which XLA's CPU
  backend vectorises better than an integer sum (exact: row lengths are below 2^24);
- many short rows (activations: one row per token) go in blocks that fit in cache, each
  block making all its passes before the next is read, and stopping as soon as every
  row is resolved; under vmap the batch is just more rows;
- such a row's search starts just below a bound from its sum (`_rows_above`), which
  skips most of the exponent: about a fifth fewer passes;
- the positional tie-break (a cumsum) runs only for a block with a tie at the k-th value;
- a small static k (the neuron floor's 4) takes k rounds of max extraction instead.
"""

import jax
import jax.numpy as jnp

_ABOVE_INF = 0x7F800001  # int32 bits just above +inf
BLOCK_ELEMENTS = 1 << 14  # 64 KiB of int32 per block: stays in cache for all passes
MAX_EXTRACT_K = 8  # up to here k rounds of max extraction beat 32 bisection passes
GUESS_OCTAVES = 8  # first probe 2^-8 below a known bound (benchmarks/NOTES.md, issue 15)
_MAX_PASSES = 34  # a 2^31 range halves in 31, plus the first probe and the step to 1


def _row_counts(bits_RxN: jax.Array, t: jax.Array) -> jax.Array:
  """[R] number of entries >= t in each row, as float32 (exact below 2^24)."""
  return (bits_RxN >= t).astype(jnp.float32) @ jnp.ones(bits_RxN.shape[1], jnp.float32)


def kth_bits(count, k, n: int, everywhere=jnp.all, above=_ABOVE_INF
             ) -> tuple[jax.Array, jax.Array]:
  """(t, count(t)), where t has exactly k entries >= t, or else is the k-th largest entry.

  `count(t)`: the number of entries whose bits are >= t, for each row (any shape) or for
  all; `n`: that number at t = 0, every entry. `everywhere(done)`: whether every row is
  done; on a sharded tensor it must agree across devices, so that all of them make the
  same passes (and so the same collectives inside `count`). `above`: bits with fewer
  than k entries >= them (per row, or one for all), when known below +inf.
  """
  # Invariant: count(lo) >= k > count(hi). Stop once every row has count(lo) == k (lo
  # separates the top k) or hi == lo + 1 (lo is the k-th largest). The first probe is
  # GUESS_OCTAVES below a known `above` (then the k-th largest is rarely lower, and the
  # search skips most of the exponent), else the smallest positive value: rows with
  # fewer than k nonzeros (common in sparse models) are then done at once instead of
  # bisecting down to zero. A row whose guess was too high probes 1 next, for the same
  # reason. The first probe's result also gives the loop state its shape (and, under
  # shard_map, how it varies over devices).
  guess = jnp.where(above == _ABOVE_INF, 1, above - (GUESS_OCTAVES << 23))
  count_guess = count(guess)
  ok = count_guess >= k
  first = (jnp.where(ok, guess, 0).astype(jnp.int32),
           jnp.where(ok, above, guess).astype(jnp.int32), jnp.where(ok, count_guess, n))

  def running(state):
    i, lo, hi, count_lo = state
    return (i < _MAX_PASSES) & ~everywhere((count_lo == k) | (hi - lo <= 1))

  def halve(state):
    i, lo, hi, count_lo = state
    mid = jnp.where(lo == 0, 1, lo + (hi - lo) // 2)
    count_mid = count(mid)
    ok = count_mid >= k
    return (i + 1, jnp.where(ok, mid, lo), jnp.where(ok, hi, mid),
            jnp.where(ok, count_mid, count_lo))

  _, lo, _, count_lo = jax.lax.while_loop(running, halve, (1, *first))
  return lo, count_lo


def _rows_above(bits_RxN: jax.Array, k) -> jax.Array:
  """[R, 1] bits with fewer than k entries >= them in each row, from the row's sum.

  Entries are non-negative, so at most sum / t of them are >= t (Markov): t = 2 sum / k
  leaves at most k / 2, a margin far beyond float32 rounding and flushed denormals. A
  row with a non-finite or tiny sum gets +inf's bound, which keeps the old search.
  """
  score_RxN = jax.lax.bitcast_convert_type(bits_RxN, jnp.float32)
  bound_R = 2 * (score_RxN @ jnp.ones(bits_RxN.shape[1], jnp.float32)) / k
  usable = jnp.isfinite(bound_R) & (bound_R >= 2.0 ** -100)
  return jnp.where(usable, jax.lax.bitcast_convert_type(bound_R, jnp.int32),
                   _ABOVE_INF)[:, None]


def _bisection_mask(bits_RxN: jax.Array, k, per_row: bool) -> jax.Array:
  """Exactly k entries (per row or in all): those above the k-th value, then ties."""
  if per_row:
    count, n = lambda t: _row_counts(bits_RxN, t)[:, None], bits_RxN.shape[1]
    kth, count_kth = kth_bits(count, k, n, above=_rows_above(bits_RxN, k))
  else:
    count, n = lambda t: jnp.sum(_row_counts(bits_RxN, t).astype(jnp.int32)), bits_RxN.size
    kth, count_kth = kth_bits(count, k, n)

  def tie_break():
    above, ties = bits_RxN > kth, bits_RxN == kth
    need = k - jnp.sum(above, axis=-1 if per_row else None, keepdims=per_row)
    rank = jnp.cumsum(ties, axis=-1) if per_row else jnp.cumsum(ties).reshape(ties.shape)
    return above | (ties & (rank <= need))
  # Usually exactly k entries are >= kth in every row, and the cumsum can be skipped.
  return jax.lax.cond(jnp.all(count_kth == k), lambda: bits_RxN >= kth, tie_break)


def _blocked_rows_mask(bits_RxN: jax.Array, k) -> jax.Array:
  rows, n = bits_RxN.shape
  block = max(1, BLOCK_ELEMENTS // n)
  if rows <= block:
    return _bisection_mask(bits_RxN, k, per_row=True)
  full = rows - rows % block
  blocks = bits_RxN[:full].reshape(full // block, block, n)
  mask = jax.lax.map(lambda b: _bisection_mask(b, k, per_row=True), blocks)
  mask = mask.reshape(full, n)
  if full == rows:
    return mask
  return jnp.concatenate([mask, _bisection_mask(bits_RxN[full:], k, per_row=True)])


@jax.custom_batching.custom_vmap
def _rows_mask(bits_RxN: jax.Array, k: jax.Array) -> jax.Array:
  """k entries per row. Under vmap (the pruning sweep) the batch is just more rows,
  which keeps the blocks cache-sized and the tie-break skippable."""
  return _blocked_rows_mask(bits_RxN, k)


@_rows_mask.def_vmap
def _rows_mask_vmap(axis_size, in_batched, bits_BxRxN, k):
  del axis_size
  bits_batched, k_batched = in_batched
  if k_batched:  # a k per batch element: batch the blocked path as it is
    in_axes = (0 if bits_batched else None, 0)
    return jax.vmap(_blocked_rows_mask, in_axes=in_axes)(bits_BxRxN, k), True
  b, r, n = bits_BxRxN.shape
  return _rows_mask(bits_BxRxN.reshape(b * r, n), k).reshape(b, r, n), True


def _extraction_mask(score: jax.Array, k: int, axis: int) -> jax.Array:
  """k rounds of: keep each slice's largest remaining entry (the first, among ties)."""
  n = score.shape[axis]
  index = jax.lax.broadcasted_iota(jnp.int32, score.shape, axis % score.ndim)
  mask = jnp.zeros(score.shape, bool)
  for _ in range(k):
    largest = jnp.max(score, axis=axis, keepdims=True)
    first = jnp.min(jnp.where(score == largest, index, n), axis=axis, keepdims=True)
    hit = index == first
    mask, score = mask | hit, jnp.where(hit, -1.0, score)  # -1: below every score
  return mask


def topk_mask(score: jax.Array, k: jax.Array | int, axis: int | None = None) -> jax.Array:
  """Boolean mask of exactly k largest entries of a non-negative float32 array.

  With `axis`, k entries per slice along that axis; ties go to the earlier position.
  """
  # The mask is piecewise constant in the score: no gradient, and none asked for.
  score = jax.lax.stop_gradient(score.astype(jnp.float32))
  if axis is not None and isinstance(k, int) and k <= MAX_EXTRACT_K:
    return _extraction_mask(score, min(k, score.shape[axis]), axis)
  bits = jax.lax.bitcast_convert_type(score, jnp.int32)
  if axis is None:
    rows = bits.reshape(-1, bits.shape[-1]) if bits.ndim > 1 else bits.reshape(1, -1)
    return _bisection_mask(rows, k, per_row=False).reshape(score.shape)
  bits = jnp.moveaxis(bits, axis, -1)
  mask = _rows_mask(bits.reshape(-1, bits.shape[-1]), jnp.asarray(k, jnp.int32))
  return jnp.moveaxis(mask.reshape(bits.shape), -1, axis)
