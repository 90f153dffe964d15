"""Null baselines: what pruning achieves where there is no mechanism to find.

nonsense   the task's own prompts and candidates, but which candidate is correct is a
           random bit fixed per prompt (a hash of its tokens), so no rule decides it:
           the full model cannot do it, and a circuit can only memorise it
reinit     the task on the same architecture with freshly initialised weights (at the
           run's final density when it was weight-sparse), which has learned nothing

If pruning reaches the target on a null nearly as easily as on the real task, the
circuit says little about the model (docs/method.md section 9).
"""

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import model
from sparse_gpt import weight_sparsity
from sparse_gpt.tasks.resolve import TaskBatch


def nonsense_labels(pairs: TaskBatch, seed: int = 0) -> TaskBatch:
  """`pairs` relabelled: the lower or higher candidate id wins by a hash of the prompt.

  The hash covers every token up to the scored one. A hash of the last token alone was
  one constant on tasks whose prompts all end alike (while_return_true: " True"), and
  the logit calibration's shift then fitted the nonsense task with no node kept.
  """
  tokens_BxL, last_B = np.asarray(pairs.tokens_BxL), np.asarray(pairs.last_B)

  def bit(prompt) -> int:
    digest = hashlib.sha256(f"nonsense/{seed}/".encode() + prompt.astype("<i4").tobytes())
    return digest.digest()[0] & 1

  lower_wins_B = jnp.asarray([bit(row[:last + 1]) for row, last in zip(tokens_BxL, last_B)],
                             bool)
  low_B = jnp.minimum(pairs.correct_B, pairs.incorrect_B)
  high_B = jnp.maximum(pairs.correct_B, pairs.incorrect_B)
  return dataclasses.replace(pairs, correct_B=jnp.where(lower_wins_B, low_B, high_B),
                             incorrect_B=jnp.where(lower_wins_B, high_B, low_B))


def reinitialised_params(cfg, seed: int):
  """Fresh weights for the run's config; projected to its final density if it was sparse."""
  _, params = model.init(cfg, jax.random.key(seed))
  if cfg.sparsity.enabled:
    params = jax.jit(lambda p: weight_sparsity.project(p, cfg.train.steps, cfg))(params)
  return params
