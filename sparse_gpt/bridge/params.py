"""The bridges of every residual site, stacked on a leading site axis S.

Sites are model.residual_sites: the residual stream entering each block's attention and
MLP norm, and the final norm. Axes: E the dense model's d_model, D the sparse one's.
"""

import flax
import jax
import jax.numpy as jnp

from sparse_gpt.activation_sparsity import abs_topk


@flax.struct.dataclass
class Bridges:
  encoder_SxExD: jax.Array
  encoder_bias_SxD: jax.Array
  decoder_SxDxE: jax.Array
  decoder_bias_SxE: jax.Array


def init(key: jax.Array, n_sites: int, d_dense: int, d_sparse: int) -> Bridges:
  """Kernels of variance 1 / fan-in, so both directions start at their input's scale."""
  enc_key, dec_key = jax.random.split(key)
  return Bridges(
      jax.random.normal(enc_key, (n_sites, d_dense, d_sparse)) / jnp.sqrt(d_dense),
      jnp.zeros((n_sites, d_sparse)),
      jax.random.normal(dec_key, (n_sites, d_sparse, d_dense)) / jnp.sqrt(d_sparse),
      jnp.zeros((n_sites, d_dense)))


def identity(n_sites: int, d: int) -> Bridges:
  """Bridges between a model and itself that change nothing (for tests)."""
  eye_SxDxD = jnp.broadcast_to(jnp.eye(d), (n_sites, d, d))
  return Bridges(eye_SxDxD, jnp.zeros((n_sites, d)), eye_SxDxD, jnp.zeros((n_sites, d)))


def encode(b: Bridges, site: int, dense_BxLxE: jax.Array, afrac: float) -> jax.Array:
  """Dense residual -> sparse residual: linear, then AbsTopK keeping afrac of D."""
  x_BxLxD = dense_BxLxE @ b.encoder_SxExD[site] + b.encoder_bias_SxD[site]
  return abs_topk(x_BxLxD, max(1, int(afrac * x_BxLxD.shape[-1])))


def decode(b: Bridges, site: int, sparse_BxLxD: jax.Array) -> jax.Array:
  """Sparse residual -> dense residual: linear."""
  return sparse_BxLxD @ b.decoder_SxDxE[site] + b.decoder_bias_SxE[site]
