"""The full model's table of every task, kept in <workdir>/tasks.json for one checkpoint.

`launch.tasks --workdir` writes it whenever it scores the whole table; the viewer's index
reads it instead of scoring twenty tasks again when the step, split, pair count and seed
match, and otherwise scores and writes it. One record, the latest table:
{"step", "split", "n_pairs", "seed", "model": "full model", "tasks": [TaskResult, ...]}.
"""

import json

from sparse_gpt import storage
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.tasks import evaluate

FILE = "tasks.json"


def _key(step: int, split: str, n_pairs: int, seed: int) -> dict:
  return {"step": step, "split": split, "n_pairs": n_pairs, "seed": seed,
          "model": "full model"}


def save(workdir: str, results: list[evaluate.TaskResult], step: int, split: str,
         n_pairs: int, seed: int) -> None:
  storage.write_text(workdir_lib.path(workdir) / FILE, json.dumps(
      evaluate.results_json(results, **_key(step, split, n_pairs, seed)), indent=1))


def load(workdir: str, step: int, split: str, n_pairs: int,
         seed: int) -> list[evaluate.TaskResult] | None:
  """The saved table if it is the one asked for, else None (none saved, or another
  checkpoint's, or a file cut short or of another shape: it is scored again)."""
  f = workdir_lib.path(workdir) / FILE
  if not f.exists():
    return None
  try:
    record = json.loads(f.read_text())
    if {k: record.get(k) for k in _key(0, "", 0, 0)} != _key(step, split, n_pairs, seed):
      return None
    return [evaluate.TaskResult(**r) for r in record["tasks"]]
  except (ValueError, TypeError, KeyError, AttributeError):
    return None


def full_model_table(run, split: str = "heldout", n_pairs: int = 128,
                     seed: int = 0) -> list[evaluate.TaskResult]:
  """`launch.tasks --workdir` 's table for `run`: read from tasks.json when saved for
  its step, else scored and saved."""
  results = load(run.workdir, run.step, split, n_pairs, seed)
  if results is None:
    n_ctx = run.config.model.n_ctx
    scorer = evaluate.make_scorer(lambda params, tokens: run.forward(params, tokens)[0],
                                  run.params, n_ctx)
    results = evaluate.evaluate_all(scorer, run.tokenizer, n_ctx, split, n_pairs, seed)
    save(run.workdir, results, run.step, split, n_pairs, seed)
  return results
