"""What `python -m launch.tasks` does: list tasks, show examples, or score a run."""

import json

from sparse_gpt import workdir as workdir_lib
from sparse_gpt.tasks import compare as compare_lib
from sparse_gpt.tasks import evaluate
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import resolve
from sparse_gpt.tasks import table_file
from sparse_gpt.tasks.errors import TaskError


def main(workdir: str | None, task: str = "", pairs: str = "", show: int = 0,
         as_json: bool = False, split: str = "heldout", n_pairs: int = 128,
         seed: int = 0, list_tasks: bool = False, circuit: str = "",
         compare: tuple[str, ...] = ()) -> str:
  """The text to print for one invocation; `compare` adds runs scored beside `workdir`."""
  if list_tasks:
    return "\n".join(registry.names())
  if not workdir:
    raise TaskError("Give --workdir=<a trained run>, or --list to see the tasks.")
  if task and pairs:
    raise TaskError("Give --task or --pairs, not both.")
  if compare and (show or circuit):
    raise TaskError("--compare scores full models side by side; drop --show or --circuit.")
  # Bad names and files fail before the model loads.
  if task:
    registry.get(task)
  if pairs:
    pairs_file.read_records(pairs)
  # Imported here so that --list and flag errors answer without loading Flax and Orbax.
  from sparse_gpt import run_io  # pylint: disable=g-import-not-at-top
  from sparse_gpt.pruning import circuit as circuit_lib  # pylint: disable=g-import-not-at-top
  loaded = circuit_lib.load(circuit) if circuit else None  # a bad file fails first
  for wd in (workdir, *compare):
    workdir_lib.load_config(wd)  # and so does a workdir that holds no run
  if compare:
    runs = {wd: run_io.load_run(wd) for wd in (workdir, *compare)}
    return compare_report(runs, task, pairs, as_json, split, n_pairs, seed)
  run = run_io.load_run(workdir, loaded.model["step"] if loaded else None)
  return report(run, task, pairs, show, as_json, split, n_pairs, seed, loaded,
                save_table=True)


def score(run, task: str = "", pairs: str = "", split: str = "heldout", n_pairs: int = 128,
          seed: int = 0, circuit=None) -> tuple[dict, list[evaluate.TaskResult]]:
  """(meta, results) for one task, a pairs file, or every task; meta names what was run.

  With `circuit` (a loaded circuit file), the circuit is scored, not the full model.
  """
  tok, n_ctx = run.tokenizer, run.config.model.n_ctx
  if circuit:
    from sparse_gpt.pruning import circuit as circuit_lib  # pylint: disable=g-import-not-at-top
    logits_fn = circuit_lib.logits_fn(circuit, run)
  else:
    logits_fn = lambda params, tokens: run.forward(params, tokens)[0]
  scorer = evaluate.make_scorer(logits_fn, run.params, n_ctx)
  if pairs:
    results = [evaluate.evaluate_file(scorer, tok, n_ctx, pairs)]
  elif task:
    results = [evaluate.evaluate_task(scorer, tok, n_ctx, task, split, n_pairs, seed)]
  else:
    results = evaluate.evaluate_all(scorer, tok, n_ctx, split, n_pairs, seed)
  meta = {"step": run.step, "split": "pairs file" if pairs else split, "seed": seed,
          "model": f"circuit of {circuit.task['name']}" if circuit else "full model"}
  return meta, results


def report(run, task: str = "", pairs: str = "", show: int = 0, as_json: bool = False,
           split: str = "heldout", n_pairs: int = 128, seed: int = 0,
           circuit=None, save_table: bool = False) -> str:
  """The table (or example pairs) of one task, a pairs file, or every task for `run`.

  `save_table`: the full model's table of every task is also saved in the run's workdir
  (tasks.json, table_file.py), where the viewer's index reads it.
  """
  if show:
    tok, n_ctx = run.tokenizer, run.config.model.n_ctx
    batch = (pairs_file.resolve_file(pairs, tok, n_ctx) if pairs else
             resolve.resolve_task(task or registry.names()[0], tok, n_ctx, split, show,
                                  seed))
    return show_examples(batch, tok, as_json)
  meta, results = score(run, task, pairs, split, n_pairs, seed, circuit)
  if save_table and not (task or pairs or circuit):
    table_file.save(run.workdir, results, run.step, split, n_pairs, seed)
  if as_json:
    return json.dumps(evaluate.results_json(results, **meta))
  heading = ", ".join(f"{k} {v}" for k, v in meta.items())
  table = f"{heading}\n{evaluate.format_table(results)}"
  if len(results) == 1:
    return table
  return (f"{table}\n{compare_lib.count_accurate(results)} of {len(results)} tasks "
          f"{compare_lib.ACCURATE_LABEL}")


def compare_report(runs: dict, task: str = "", pairs: str = "", as_json: bool = False,
                   split: str = "heldout", n_pairs: int = 128, seed: int = 0) -> str:
  """The same pairs scored on each run ({label: run}), side by side."""
  scored = {label: score(run, task, pairs, split, n_pairs, seed)
            for label, run in runs.items()}
  if as_json:
    return json.dumps({"runs": [{"workdir": label, **evaluate.results_json(results, **meta)}
                                for label, (meta, results) in scored.items()]})
  labels = [f"{label} (step {meta['step']})" for label, (meta, _) in scored.items()]
  kind = "pairs file" if pairs else f"split {split}, seed {seed}"
  return (f"{kind}, full models\n" +
          compare_lib.format_comparison(labels, [r for _, r in scored.values()]))


def show_examples(batch: resolve.TaskBatch, tok, as_json: bool = False) -> str:
  """Each sequence's token pieces, then its correct and incorrect candidate."""
  examples = []
  for row in range(len(batch)):
    ids = batch.tokens_BxL[row, :batch.last_B[row] + 1].tolist()
    examples.append({
        "tokens": resolve.pieces(tok, ids),
        "correct": resolve.pieces(tok, [int(batch.correct_B[row])])[0],
        "incorrect": resolve.pieces(tok, [int(batch.incorrect_B[row])])[0]})
  if as_json:
    return json.dumps({"task": batch.name, "examples": examples})
  lines = [f"{batch.name}: {len(examples)} sequences; tokens are separated by |"]
  for number, ex in enumerate(examples, start=1):
    shown = "|".join(repr(piece)[1:-1] for piece in ex["tokens"])
    lines.append(f"\n[{number}] {shown}")
    lines.append(f"    correct {ex['correct']!r}   incorrect {ex['incorrect']!r}")
  return "\n".join(lines)
