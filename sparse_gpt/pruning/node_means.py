"""Mean activation of every node over validation tokens: the mean-ablation values.

Computed once per checkpoint and cached as <workdir>/node_means/step_<N>_w<W>.npz, W
the number of n_ctx-token windows averaged: one array per location name.
"""

import functools
import io
import time
import zipfile

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import data
from sparse_gpt import model
from sparse_gpt import progress
from sparse_gpt import storage
from sparse_gpt import tokenized
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.pruning.nodes import Layout

_BATCH = 8  # windows per forward pass


@functools.partial(jax.jit, static_argnums=(0, 1))
def _summed(graphdef, layout, params, tokens_BxL):
  _, recorded = model.forward(graphdef, params, tokens_BxL, record="all",
                              positions_B=jnp.zeros(tokens_BxL.shape[0], jnp.int32))
  return jnp.sum(layout.flatten(recorded), axis=(0, 1))


def compute(graphdef: nnx.GraphDef, params: nnx.State, layout: Layout,
            windows_WxL: np.ndarray) -> jax.Array:
  """[n_nodes]: each node's activation averaged over all tokens of the windows."""
  total_N = jnp.zeros(layout.n_nodes, jnp.float32)
  for start in range(0, len(windows_WxL), _BATCH):
    total_N += _summed(graphdef, layout, params,
                       jnp.asarray(windows_WxL[start:start + _BATCH], jnp.int32))
  return total_N / windows_WxL.size


def validation_windows(run, n_windows: int) -> np.ndarray:
  """[n_windows, n_ctx] tokens: the first windows of the run's validation split, in the
  run's own tokenizer (a corpus cache's BPE may be another one)."""
  corpus = tokenized.prepare(run.config.data, run.tokenizer)
  n_ctx = run.config.model.n_ctx
  rows = data.eval_batches(corpus.val_tokens, n_ctx, n_windows, 1)[0]
  return rows[:, :n_ctx]


def cache_file(workdir: str, step: int, n_windows: int):
  return workdir_lib.path(workdir) / "node_means" / f"step_{step}_w{n_windows}.npz"


def _read(f, layout: Layout) -> jax.Array | None:
  """The cached means [n_nodes], or None (with a note) for a corrupt or foreign file."""
  try:
    with np.load(io.BytesIO(f.read_bytes())) as saved:
      parts = {loc.name: np.asarray(saved[loc.name]) for loc in layout.locations}
  except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
    progress.say(f"The node-means cache {f} is corrupt ({e}): computing it again.")
    return None
  wrong = [loc.name for loc in layout.locations if parts[loc.name].shape != (loc.size,)]
  if wrong:
    progress.say(f"The node-means cache {f} has the wrong widths at {', '.join(wrong)}: "
                 "computing it again.")
    return None
  return layout.flatten({name: jnp.asarray(v) for name, v in parts.items()})


def load_or_compute(run, layout: Layout, n_windows: int) -> jax.Array:
  """The run's node means [n_nodes], from the workdir cache or computed and cached."""
  f = cache_file(run.workdir, run.step, n_windows)
  if f.exists():
    means_N = _read(f, layout)
    if means_N is not None:
      return means_N
  start = time.time()
  means_N = compute(run.graphdef, run.params, layout, validation_windows(run, n_windows))
  save(run.workdir, run.step, n_windows, layout, means_N)
  progress.say(f"node means over {n_windows} validation windows of step {run.step}: "
               f"{time.time() - start:.1f} s, cached in {f}")
  return means_N


def save(workdir: str, step: int, n_windows: int, layout: Layout, means_N) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **{loc.name: np.asarray(means_N[loc.start:loc.start + loc.size])
                      for loc in layout.locations})
  storage.write_bytes(cache_file(workdir, step, n_windows), buffer.getvalue())
