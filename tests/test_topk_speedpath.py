"""The blocked, cond-skipped top-k path matches a sort-based reference exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_gpt import topk
from sparse_gpt.activation_sparsity import abs_topk


def reference_mask(score: np.ndarray, k: int) -> np.ndarray:
  """Per row (last axis): the k largest, ties to the earlier position (stable sort)."""
  rows = score.reshape(-1, score.shape[-1])
  order = np.argsort(-rows, axis=-1, kind="stable")[:, :k]
  mask = np.zeros(rows.shape, bool)
  np.put_along_axis(mask, order, True, axis=-1)
  return mask.reshape(score.shape)


def with_ties(key, shape, levels: int) -> np.ndarray:
  """Non-negative values drawn from few levels, zeros included: ties everywhere."""
  return np.asarray(jax.random.randint(key, shape, 0, levels), np.float32) / levels


@pytest.mark.parametrize("shape", [(4, 64, 256), (3, 37, 1024), (5, 7), (130, 96)])
@pytest.mark.parametrize("frac", [1 / 64, 1 / 4, 0.5, 1.0])
def test_distinct_values_match_reference(shape, frac):
  # 3 * 37 rows of 1024 is no multiple of the block: the tail block is exercised too.
  score = np.abs(np.asarray(jax.random.normal(jax.random.key(0), shape)))
  k = max(1, int(frac * shape[-1]))
  mask = np.asarray(jax.jit(topk.topk_mask, static_argnums=(1, 2))(score, k, -1))
  np.testing.assert_array_equal(mask.sum(-1), k)
  np.testing.assert_array_equal(mask, reference_mask(score, k))


@pytest.mark.parametrize("levels", [2, 5, 300])
def test_ties_go_to_earlier_positions(levels):
  score = with_ties(jax.random.key(levels), (3, 37, 256), levels)
  for k in (1, 17, 64, 200):
    mask = np.asarray(topk.topk_mask(jnp.asarray(score), k, axis=-1))
    np.testing.assert_array_equal(mask, reference_mask(score, k))


def test_only_some_blocks_have_ties():
  # Block 0 has distinct values, the last block all-zero rows: both cond branches run.
  rows = 4 * (topk.BLOCK_ELEMENTS // 256)
  score = np.abs(np.asarray(jax.random.normal(jax.random.key(1), (rows, 256))))
  score[-3:] = 0.0
  mask = np.asarray(jax.jit(lambda s: topk.topk_mask(s, 64, axis=-1))(score))
  np.testing.assert_array_equal(mask, reference_mask(score, 64))


def test_traced_k_and_other_axis():
  score = np.abs(np.asarray(jax.random.normal(jax.random.key(2), (300, 48))))
  mask = jax.jit(lambda s, k: topk.topk_mask(s, k, axis=0))(score, jnp.int32(7))
  np.testing.assert_array_equal(np.asarray(mask), reference_mask(score.T, 7).T)


def test_under_vmap():
  score = with_ties(jax.random.key(3), (2, 40, 128), 4)
  mask = jax.vmap(lambda s: topk.topk_mask(s, 32, axis=-1))(jnp.asarray(score))
  np.testing.assert_array_equal(np.asarray(mask), reference_mask(score, 32))


def test_abs_topk_values_and_gradient():
  x = jax.random.normal(jax.random.key(4), (2, 50, 256))
  y = abs_topk(x, 64)
  keep = reference_mask(np.abs(np.asarray(x)), 64)
  np.testing.assert_array_equal(np.asarray(y), np.where(keep, x, 0))
  grad = jax.grad(lambda x: jnp.sum(abs_topk(x, 64) * 3.0))(x)
  np.testing.assert_array_equal(np.asarray(grad), np.where(keep, 3.0, 0.0))


@pytest.mark.parametrize("axis", [0, -1])
def test_small_static_k_extraction_matches_bisection(axis):
  score = with_ties(jax.random.key(5), (40, 24), 6)
  moved = np.moveaxis(score, axis, -1)
  for k in (1, 4, topk.MAX_EXTRACT_K):
    static = topk.topk_mask(jnp.asarray(score), k, axis=axis)
    traced = jax.jit(lambda s, k: topk.topk_mask(s, k, axis=axis))(score, jnp.int32(k))
    np.testing.assert_array_equal(np.asarray(static), np.asarray(traced))
    np.testing.assert_array_equal(np.moveaxis(np.asarray(static), axis, -1),
                                  reference_mask(moved, k))


@pytest.mark.parametrize("levels", [3, 1000])
def test_global_mask_with_ties(levels):
  score = with_ties(jax.random.key(6), (64, 48), levels)
  for k in (1, 100, 1000, 3071):
    mask = jax.jit(topk.topk_mask)(score, jnp.int32(k))
    np.testing.assert_array_equal(np.asarray(mask).reshape(-1),
                                  reference_mask(score.reshape(-1), k))


def test_vmap_with_a_k_per_element_and_under_grad():
  score = with_ties(jax.random.key(7), (3, 20, 64), 5)
  ks = jnp.array([1, 16, 63])
  mask = jax.vmap(lambda s, k: topk.topk_mask(s, k, axis=-1))(jnp.asarray(score), ks)
  for s, k, m in zip(score, [1, 16, 63], np.asarray(mask)):
    np.testing.assert_array_equal(m, reference_mask(s, k))
  x = jnp.asarray(score) - 0.5
  grad = jax.jit(jax.vmap(jax.grad(lambda x: jnp.sum(abs_topk(x, 16)))))(x)
  np.testing.assert_array_equal(np.asarray(grad), reference_mask(np.abs(score - 0.5), 16))


def test_rows_whose_first_guess_holds_fails_or_is_not_made():
  # The per-row search first probes 2^-GUESS_OCTAVES below a bound from the row's sum.
  # Rows below: typical (the guess holds); one huge entry (the k-th is far below the
  # guess); fewer than k nonzeros; denormals and tiny values (no usable bound); an inf.
  rng = np.random.default_rng(8)
  n, k = 256, 64
  rows = np.abs(rng.standard_normal((9, n))).astype(np.float32)
  rows[1, 5] = 1e30
  rows[2, 100:] = 0.0
  rows[3] = np.float32(1e-45) * rng.integers(0, 4, n)
  rows[4] *= np.float32(1e-32)
  rows[5, 7] = np.inf
  rows[6] = 0.0
  rows[7, :] = rows[7, 0]  # all tied
  rows[8] = np.round(rows[8] * 4) / 4  # ties at the k-th value
  for k in (1, 17, k, 200, n):
    mask = np.asarray(jax.jit(lambda s, k: topk.topk_mask(s, k, axis=-1))(rows, k))
    np.testing.assert_array_equal(mask, reference_mask(rows, k))
