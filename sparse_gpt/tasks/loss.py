"""Task loss: cross-entropy over just the two candidates at each prompt's last token.

Averaged over sequences, not summed over a pair (docs/method.md section 11): a loss of 0.15
here is the paper's 0.30 per pair.
"""

import jax
import jax.numpy as jnp


def binary_losses(correct_B: jax.Array, incorrect_B: jax.Array) -> jax.Array:
  """loss_B: each row's cross-entropy of a softmax over its two candidate logits."""
  margin_B = correct_B.astype(jnp.float32) - incorrect_B.astype(jnp.float32)
  # -log softmax([c, i])[0] = log(1 + exp(i - c)) = softplus(-margin).
  return jax.nn.softplus(-margin_B)


def binary_loss(correct_B: jax.Array,
                incorrect_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(mean cross-entropy, accuracy) of a softmax over two candidate logits."""
  accuracy = jnp.mean((correct_B.astype(jnp.float32) > incorrect_B).astype(jnp.float32))
  return jnp.mean(binary_losses(correct_B, incorrect_B)), accuracy


def candidate_logits(last_logits_BxV: jax.Array, correct_B: jax.Array,
                     incorrect_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The correct and the incorrect candidate's logit in each row."""
  rows_B = jnp.arange(last_logits_BxV.shape[0])
  return last_logits_BxV[rows_B, correct_B], last_logits_BxV[rows_B, incorrect_B]


def last_logits(logits_BxLxV: jax.Array, last_B: jax.Array) -> jax.Array:
  """logits_BxV at each sequence's last prompt token."""
  return logits_BxLxV[jnp.arange(logits_BxLxV.shape[0]), last_B]


def task_loss_at_last(last_logits_BxV: jax.Array, correct_B: jax.Array,
                      incorrect_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Task (loss, accuracy) from logits already gathered at the last prompt token."""
  return binary_loss(*candidate_logits(last_logits_BxV, correct_B, incorrect_B))


def task_loss(logits_BxLxV: jax.Array, batch) -> tuple[jax.Array, jax.Array]:
  """Task (loss, accuracy); `batch` has last_B, correct_B, incorrect_B (a TaskBatch)."""
  return task_loss_at_last(last_logits(logits_BxLxV, batch.last_B), batch.correct_B,
                           batch.incorrect_B)
