"""What `python -m launch.prune` does: prune one task, every solved task, or a pairs file.

Here a task is solved when the full model's task loss on its training pairs is at most
the pruning target (prune.target_loss): only then is there a circuit to find. That is a
stricter bar than the tasks table's "accurate" (held-out accuracy >= 90%).
"""

import json
import os
import pathlib
import re

from sparse_gpt import progress
from sparse_gpt import run_io
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import config as config_lib
from sparse_gpt.pruning import pipeline
from sparse_gpt.pruning import render
from sparse_gpt.tasks import registry
from sparse_gpt.tasks.errors import TaskNotPosable

ALL = "all"

# A circuit's name is a file name in <workdir>/circuits/, never a path.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class CircuitExists(UserError):
  """The circuit file holds another source's circuit, and --overwrite was not given."""


def main(workdir: str | None, task: str = "", pairs: str = "", name: str = "",
         cfg=None, say=progress.say, overwrite: bool = False) -> str:
  """Prunes and saves circuits; returns the text to print at the end."""
  cfg = cfg or config_lib.defaults()
  config_lib.validate(cfg)
  if not workdir:
    raise UserError("Give --workdir=<a trained run>.")
  if bool(task) == bool(pairs):
    raise UserError("Give exactly one of --task=NAME (or --task=all) and "
                    "--pairs=FILE.jsonl.")
  if name and not pairs:
    raise UserError(f"--name={name} names the circuit of a --pairs file; a registered "
                    "task's circuit is named after the task: drop --name.")
  if task and task != ALL:
    registry.get(task)  # an unknown name fails before the model loads
  if pairs and not pathlib.Path(pairs).is_file():
    raise UserError(f"Pairs file {pairs} does not exist.")
  if pairs:
    name = name or pathlib.Path(pairs).stem
    check_name(name)
    check_overwrite(workdir, name, pairs, overwrite)
  elif task != ALL:
    check_overwrite(workdir, task, None, overwrite)
  run = run_io.load_run(workdir)
  if pairs:
    return _one(run, pipeline.file_task(run, pairs, name, cfg), cfg, say)
  if task != ALL:
    return _one(run, pipeline.registry_task(run, task, cfg), cfg, say)
  return "\n".join(prune_solved(run, cfg, say, overwrite))


def check_name(name: str) -> None:
  if not _NAME.fullmatch(name):
    raise UserError(f"--name={name!r}: a circuit's name is a file name in "
                    "<workdir>/circuits/ (letters, digits, _, - and ., not starting with "
                    "a dot), not a path; e.g. --name=my_task")


def _source(kind: str, pairs_file: str | None) -> tuple[str, str | None]:
  """Where a circuit's pairs came from: its file's task.source and task.pairs_file."""
  return kind, None if pairs_file is None else os.path.realpath(pairs_file)


def check_overwrite(workdir: str, name: str, pairs_file: str | None,
                    overwrite: bool) -> None:
  """Refuses to replace the circuit of another source (a registered task, or a pairs file
  other than `pairs_file`; None for the registered task `name`) unless `overwrite`."""
  path = pipeline.circuit_path(workdir, name)
  if overwrite or not path.exists():
    return
  try:
    recorded = json.loads(path.read_text())["task"]
    old = _source(recorded["source"], recorded["pairs_file"])
  except (json.JSONDecodeError, KeyError, TypeError):
    old = None
  if old == _source("registry" if pairs_file is None else "pairs_file", pairs_file):
    return  # re-pruning the same pairs replaces the older result
  held = ("no readable circuit" if old is None else
          f"the circuit of {'registered task ' + name if old[0] == 'registry' else old[1]}")
  other_name = ", or choose another name with --name" if pairs_file else ""
  raise CircuitExists(f"{path} holds {held}; pass --overwrite to replace it{other_name}.")


def _one(run, data: pipeline.TaskData, cfg, say) -> str:
  c = pipeline.prune(run, data, cfg, say)
  path = pipeline.circuit_path(run.workdir, data.name)
  circuit_lib.save(c, path)
  return f"{render.summary(c)}\n\n{render.text(c)}\n\nwrote {path}"


def prune_solved(run, cfg, say=progress.say, overwrite: bool = False) -> list[str]:
  """Prunes and saves every registered task the model solves; one line per task, then
  the count."""
  lines, pruned = [], 0
  for name in registry.names():
    try:
      check_overwrite(run.workdir, name, None, overwrite)
      data = pipeline.registry_task(run, name, cfg)
      c = pipeline.prune(run, data, cfg, say)
    except pipeline.NotSolved as e:
      where = "" if e.split == "training" else f" on the {e.split} pairs"
      lines.append(f"{name:<28} skipped: not solved (full-model task loss{where} "
                   f"{e.loss:.4f} > target {e.target})")
      continue
    except (TaskNotPosable, CircuitExists) as e:
      lines.append(f"{name:<28} skipped: {e}")
      continue
    circuit_lib.save(c, pipeline.circuit_path(run.workdir, name))
    say(render.summary(c))
    lines.append(render.one_line(c))
    pruned += 1
  lines.append(f"{pruned} of {len(registry.names())} tasks solved (full-model task loss "
               f"<= target {cfg.target_loss} on the training pairs) and pruned")
  return lines
