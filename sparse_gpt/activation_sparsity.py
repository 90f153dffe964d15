"""AbsTopK: per token, keep the k entries of largest magnitude and zero the rest."""

import jax
import jax.numpy as jnp

from sparse_gpt import sharding
from sparse_gpt.topk import topk_mask


def abs_topk(x_BxLxN: jax.Array, k: int) -> jax.Array:
  """Zeroes all but exactly k largest-|x| entries of the last axis.

  The gradient flows only through the kept entries, as through a fixed mask. On a mesh
  that splits the batch, each device ranks its own rows (sharding.on_own_rows).
  """
  if k >= x_BxLxN.shape[-1]:
    return x_BxLxN
  keep = sharding.on_own_rows(lambda x: topk_mask(jnp.abs(x), k, axis=-1))(x_BxLxN)
  return jnp.where(jax.lax.stop_gradient(keep), x_BxLxN, 0)
