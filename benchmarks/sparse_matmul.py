"""Would computing with the weight sparsity beat dense matmuls? The crossover density.

A weight-sparse layer's forward (x @ W) and input gradient (g @ W^T) could use W's
nonzeros alone; its weight gradient cannot (METHOD.md: gradients stay dense, so that
pruned weights can come back). This times those two products at the bench model's MLP
shape, dense against `jax.experimental.sparse.BCOO` (built from the projected dense
weights inside the jitted function, as a training step would have to each step), at
densities from 1/4 down to 1/4096, interleaved round by round.
"""

import statistics
import time

import jax
import jax.numpy as jnp
from jax.experimental import sparse

DENSITIES = (1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 1024, 1 / 4096)


def _weights(density: float, shape) -> jax.Array:
  """Normal weights with exactly round(density x size) nonzeros, at random positions."""
  k = round(density * shape[0] * shape[1])
  w = jax.random.normal(jax.random.key(1), shape)
  keep = jax.random.permutation(jax.random.key(2), w.size)[:k]
  return jnp.zeros(w.size).at[keep].set(w.reshape(-1)[keep]).reshape(shape)


def _products(x, w, g):
  return x @ w, g @ w.T


def _sparse_products(nse: int):
  def products(x, w, g):
    w_sparse = sparse.BCOO.fromdense(w, nse=nse)
    return x @ w_sparse, g @ w_sparse.T
  return jax.jit(products)


def _seconds(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def measure(tokens: int = 4096, d_in: int = 256, d_out: int = 1024, rounds: int = 5) -> dict:
  """Per density 1/n, BCOO time over dense time (`bcoo_time_over_dense_1in{n}`; below 1
  the sparse products are faster), and the crossover:
  the highest density at which BCOO wins, or None if it never does."""
  x = jax.random.normal(jax.random.key(3), (tokens, d_in))
  g = jax.random.normal(jax.random.key(4), (tokens, d_out))
  dense = jax.jit(_products)
  cases = {d: (_weights(d, (d_in, d_out)), _sparse_products(round(d * d_in * d_out)))
           for d in DENSITIES}
  for w, fn in cases.values():
    jax.block_until_ready((dense(x, w, g), fn(x, w, g)))  # compile
  times = {d: ([], []) for d in DENSITIES}
  for _ in range(rounds):
    for d, (w, fn) in cases.items():
      times[d][0].append(_seconds(dense, x, w, g))
      times[d][1].append(_seconds(fn, x, w, g))
  ratio = {d: statistics.median(s) / statistics.median(t) for d, (t, s) in times.items()}
  winners = [d for d, r in ratio.items() if r < 1]
  out = {f"bcoo_time_over_dense_1in{round(1 / d)}": r for d, r in ratio.items()}
  out["dense_fwd_dx_ms"] = 1e3 * statistics.median(times[DENSITIES[0]][0])
  out["bcoo_crossover_density"] = max(winners) if winners else None
  return out
