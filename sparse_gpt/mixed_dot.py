"""bfloat16 matmuls that accumulate in float32, forward and backward.

XLA:CPU runs a bf16 x bf16 dot fast (AVX512_BF16) only when asked for a float32 result;
with a bf16 result, and in the backward pass JAX derives (a float32 cotangent against a
bf16 operand), it is no faster than float32. This dot, used by the model's linear layers
when `model.compute_dtype="bfloat16"`, asks for float32 in all three products (forward,
input gradient, weight gradient) and rounds each result to bf16, as the layer's dtype
says.
"""

import functools

import jax
import jax.numpy as jnp


def _mixed(lhs, rhs, dimension_numbers):
  return jax.lax.dot_general(lhs.astype(jnp.bfloat16), rhs.astype(jnp.bfloat16),
                             dimension_numbers, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dot(lhs_NxK, rhs_KxM, out_dtype):
  return _mixed(lhs_NxK, rhs_KxM, (((1,), (0,)), ((), ()))).astype(out_dtype)


def _dot_fwd(lhs_NxK, rhs_KxM, out_dtype):
  return _dot(lhs_NxK, rhs_KxM, out_dtype), (lhs_NxK, rhs_KxM)


def _dot_bwd(out_dtype, residuals, g_NxM):
  lhs_NxK, rhs_KxM = residuals
  d_lhs = _mixed(g_NxM, rhs_KxM, (((1,), (1,)), ((), ())))
  # Contracting both operands over their leading (token) axis misses the fast path; a
  # transposed copy of lhs takes it (1.3-2x on the model's shapes). The barrier keeps XLA
  # from folding the transpose back into the dot.
  lhs_KxN = jax.lax.optimization_barrier(lhs_NxK.T)
  d_rhs = _mixed(lhs_KxN, g_NxM, (((1,), (0,)), ((), ())))
  return d_lhs.astype(lhs_NxK.dtype), d_rhs.astype(rhs_KxM.dtype)


_dot.defvjp(_dot_fwd, _dot_bwd)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                out_sharding=None):
  """A `dot_general` for `nnx.Linear`: lhs [..., K] times rhs [K, M], nothing else.

  `precision` is moot (the products are bf16 by definition); `out_sharding` must be None
  (the model leaves the layout to the compiler)."""
  del precision
  if out_sharding is not None:
    raise ValueError("mixed_dot takes no out_sharding")
  (lhs_contract, rhs_contract), batch = dimension_numbers
  if lhs_contract != (lhs.ndim - 1,) or rhs_contract != (0,) or batch != ((), ()):
    raise ValueError(f"mixed_dot handles x[..., K] @ w[K, M] only, not {dimension_numbers}")
  out_dtype = preferred_element_type or jnp.result_type(lhs, rhs)
  out = _dot(lhs.reshape(-1, lhs.shape[-1]), rhs, jnp.dtype(out_dtype))
  return out.reshape(*lhs.shape[:-1], rhs.shape[1])
