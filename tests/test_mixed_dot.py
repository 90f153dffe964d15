"""The bf16 dot with float32 accumulation: its values and gradients, and its scope."""

import chex
import jax
import jax.numpy as jnp
import pytest

from sparse_gpt import mixed_dot

DIMS = (((2,), (0,)), ((), ()))  # x[B, L, K] @ w[K, M], as nnx.Linear asks


def _reference(x, w):
  """The same products in float32 on bf16-rounded operands, rounded to bf16."""
  up = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)
  return jnp.einsum("blk,km->blm", up(x), up(w),
                    precision=jax.lax.Precision.HIGHEST).astype(jnp.bfloat16)


def test_values_and_gradients_match_float32_on_rounded_operands():
  x = jax.random.normal(jax.random.key(0), (2, 8, 16)).astype(jnp.bfloat16)
  w = jax.random.normal(jax.random.key(1), (16, 4)).astype(jnp.bfloat16)
  g = jax.random.normal(jax.random.key(2), (2, 8, 4)).astype(jnp.bfloat16)
  ours = lambda x, w: mixed_dot.dot_general(x, w, DIMS)
  out, vjp = jax.vjp(ours, x, w)
  ref_out, ref_vjp = jax.vjp(_reference, x, w)
  assert out.dtype == jnp.bfloat16 and out.shape == (2, 8, 4)
  # Each result is one float32 sum rounded once to bf16: at most one bf16 step apart.
  chex.assert_trees_all_close(out.astype(jnp.float32), ref_out.astype(jnp.float32),
                              rtol=2 ** -7, atol=1e-2)
  for ours_d, ref_d in zip(vjp(g), ref_vjp(g)):
    assert ours_d.dtype == jnp.bfloat16
    chex.assert_trees_all_close(ours_d.astype(jnp.float32), ref_d.astype(jnp.float32),
                                rtol=2 ** -7, atol=1e-2)


def test_float32_master_weights_get_float32_gradients():
  x = jnp.ones((3, 5), jnp.bfloat16)
  w = jnp.full((5, 2), 0.5, jnp.float32)
  grad = jax.grad(lambda w: mixed_dot.dot_general(x, w.astype(jnp.bfloat16), (
      ((1,), (0,)), ((), ()))).astype(jnp.float32).sum())(w)
  assert grad.dtype == jnp.float32
  chex.assert_trees_all_equal(grad, jnp.full((5, 2), 3.0))  # each weight sees 3 ones


def test_other_contractions_are_refused():
  with pytest.raises(ValueError, match="x\\[..., K\\] @ w\\[K, M\\]"):
    mixed_dot.dot_general(jnp.ones((4, 3)), jnp.ones((4, 2)), (((0,), (0,)), ((), ())))
