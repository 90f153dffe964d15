"""Partial ablation: a circuit scored with random parts of the rest of the model present.

Each node outside the circuit is ablated with probability q, independently, and the
circuit's nodes are always kept. A circuit that works only when all of the rest is
ablated (ablations cancelling out, or the rest's mean filling in for it) shows a high
loss under some pattern; one that carries the task works under all of them.
"""

import functools

import jax
import jax.numpy as jnp

from sparse_gpt.pruning import objective
from sparse_gpt.pruning.subject import Subject
from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks.resolve import TaskBatch

PATTERNS = 32


def patterns(key: jax.Array, keep_N: jax.Array, q: float, n: int) -> jax.Array:
  """keep_JxN of n random patterns: keep_N's nodes, and each other node with chance 1 - q."""
  others_JxN = jax.random.uniform(key, (n, keep_N.shape[-1])) >= q
  return jnp.maximum(keep_N, others_JxN.astype(keep_N.dtype))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _losses(graphdef, layout, params, keep_JxN, fill, batch, norms):
  def loss(keep_N):
    last_BxV = objective.last_logits(graphdef, params, layout, keep_N, fill, batch, norms)
    return loss_lib.task_loss_at_last(last_BxV, batch.correct_B, batch.incorrect_B)[0]
  return jax.vmap(loss)(keep_JxN)


def losses(subject: Subject, keep_N, batch: TaskBatch, fill: jax.Array, q: float,
           n: int = PATTERNS, key: jax.Array | None = None) -> jax.Array:
  """Uncalibrated task loss of `batch` under each of n patterns ([n]), all in one program.

  The calibration was fit with everything else ablated, so it would not fit these. The
  patterns come from a fixed key unless one is given: every circuit meets the same draws.
  """
  keep_N = jnp.asarray(keep_N, jnp.float32)
  keep_JxN = patterns(jax.random.key(0) if key is None else key, keep_N, q, n)
  return _losses(subject.graphdef, subject.layout, subject.params, keep_JxN, fill, batch,
                 subject.norms(batch))
