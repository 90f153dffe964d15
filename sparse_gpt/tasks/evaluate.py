"""Scoring a model on tasks: one task, a pairs file, or the table of all of them."""

from collections.abc import Callable
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import tokenizers

from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import resolve
from sparse_gpt.tasks.errors import TaskError, TaskNotPosable

# logits_fn(params, tokens_BxL) -> logits_BxLxV
LogitsFn = Callable[[object, jax.Array], jax.Array]
# score(batch) -> (loss, accuracy)
Scorer = Callable[[resolve.TaskBatch], tuple[float, float]]


@dataclasses.dataclass(frozen=True)
class TaskResult:
  """One row of the table: n sequences scored (two per pair); loss None if not scored."""
  task: str
  n: int
  loss: float | None
  accuracy: float | None
  status: str


def make_scorer(logits_fn: LogitsFn, params, n_ctx: int, chunk: int = 64) -> Scorer:
  """Scores batches in chunks of `chunk` sequences, padded as resolve.padded pads them:
  one compiled program per padded length.

  `params` goes into the jitted function as an argument, not a closure, so XLA does
  not copy the weights into the program as constants.
  """

  @jax.jit
  def candidates(params, batch: resolve.TaskBatch):
    last_BxV = loss_lib.last_logits(logits_fn(params, batch.tokens_BxL), batch.last_B)
    return loss_lib.candidate_logits(last_BxV, batch.correct_B, batch.incorrect_B)

  def score(batch: resolve.TaskBatch) -> tuple[float, float]:
    batch = resolve.padded(batch, n_ctx)
    correct, incorrect = [], []
    for start in range(0, len(batch), chunk):
      rows = np.arange(start, min(start + chunk, len(batch)))
      # Pad with copies of the first row so every chunk has the same shape.
      c, i = candidates(params, batch.rows(np.concatenate(
          [rows, np.full(chunk - rows.size, rows[0])])))
      correct.append(c[:rows.size])
      incorrect.append(i[:rows.size])
    loss, accuracy = loss_lib.binary_loss(jnp.concatenate(correct),
                                          jnp.concatenate(incorrect))
    return float(loss), float(accuracy)

  return score


def _status(batch: resolve.TaskBatch) -> str:
  parts = ["ok"]
  if batch.n_dropped_length:
    parts.append(f"{batch.n_dropped_length} dropped for length")
  if batch.n_dropped_tokens:
    parts.append(f"{batch.n_dropped_tokens} dropped for tokenization")
  parts += batch.notes
  return "; ".join(parts)


def evaluate_batch(score: Scorer, batch: resolve.TaskBatch) -> TaskResult:
  loss, accuracy = score(batch)
  return TaskResult(batch.name, len(batch), loss, accuracy, _status(batch))


def evaluate_task(score: Scorer, tok: tokenizers.Tokenizer, n_ctx: int, name: str,
                  split: str = "heldout", n_pairs: int = 128,
                  seed: int = 0) -> TaskResult:
  """Scores one registered task; a task this tokenizer cannot pose is a row saying why."""
  try:
    batch = resolve.resolve_task(name, tok, n_ctx, split, n_pairs, seed)
  except TaskNotPosable as e:
    return TaskResult(name, 0, None, None, f"not posable: {e}")
  except TaskError as e:
    return TaskResult(name, 0, None, None, f"error: {e}")
  return evaluate_batch(score, batch)


def evaluate_all(score: Scorer, tok: tokenizers.Tokenizer, n_ctx: int,
                 split: str = "heldout", n_pairs: int = 128,
                 seed: int = 0) -> list[TaskResult]:
  return [evaluate_task(score, tok, n_ctx, name, split, n_pairs, seed)
          for name in registry.names()]


def evaluate_file(score: Scorer, tok: tokenizers.Tokenizer, n_ctx: int,
                  path: str | pathlib.Path) -> TaskResult:
  return evaluate_batch(score, pairs_file.resolve_file(path, tok, n_ctx))


def format_table(results: list[TaskResult]) -> str:
  """Aligned plain-text columns: task, n, loss, accuracy, status."""
  rows = [("task", "n", "loss", "accuracy", "status")]
  rows += [(r.task, str(r.n), "-" if r.loss is None else f"{r.loss:.4f}",
            "-" if r.accuracy is None else f"{r.accuracy:.3f}", r.status)
           for r in results]
  widths = [max(len(row[col]) for row in rows) for col in range(4)]
  return "\n".join(
      f"{task:<{widths[0]}}  {n:>{widths[1]}}  {loss:>{widths[2]}}  "
      f"{acc:>{widths[3]}}  {status}" for task, n, loss, acc, status in rows)


def results_json(results: list[TaskResult], **meta) -> dict:
  """The table as one JSON-ready object, with `meta` (split, seed, step...) alongside."""
  return {**meta, "tasks": [dataclasses.asdict(r) for r in results]}
