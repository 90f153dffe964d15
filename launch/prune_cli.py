"""What `python -m launch.prune` does: prune one task, every solved task, or a pairs file."""

import pathlib

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


def main(workdir: str | None, task: str = "", pairs: str = "", name: str = "",
         cfg=None, say=progress.say) -> str:
  """Prunes and saves circuits; returns the text to print at the end."""
  cfg = cfg or config_lib.defaults()
  config_lib.validate(cfg)
  if not workdir:
    raise UserError("Give --workdir=<a trained run>.")
  if bool(task) == bool(pairs):
    raise UserError("Give exactly one of --task=NAME (or --task=all) and "
                    "--pairs=FILE.jsonl.")
  if task and task != ALL:
    registry.get(task)  # an unknown name fails before the model loads
  if pairs and not pathlib.Path(pairs).is_file():
    raise UserError(f"Pairs file {pairs} does not exist.")
  run = run_io.load_run(workdir)
  if pairs:
    return _one(run, pipeline.file_task(run, pairs, name or pathlib.Path(pairs).stem, cfg),
                cfg, say)
  if task != ALL:
    return _one(run, pipeline.registry_task(run, task, cfg), cfg, say)
  return "\n".join(prune_solved(run, cfg, say))


def _one(run, data: pipeline.TaskData, cfg, say) -> str:
  c = pipeline.prune(run, data, cfg, say)
  path = pipeline.circuit_path(run.workdir, data.name)
  circuit_lib.save(c, path)
  return f"{render.summary(c)}\n\n{render.text(c)}\n\nwrote {path}"


def prune_solved(run, cfg, say=progress.say) -> list[str]:
  """Prunes and saves every registered task the model solves; one line per task."""
  lines = []
  for name in registry.names():
    try:
      data = pipeline.registry_task(run, name, cfg)
      c = pipeline.prune(run, data, cfg, say)
    except pipeline.NotSolved as e:
      lines.append(f"{name:<28} skipped: not solved (full-model loss {e.loss:.4f} > "
                   f"{e.target})")
      continue
    except TaskNotPosable as e:
      lines.append(f"{name:<28} skipped: {e}")
      continue
    circuit_lib.save(c, pipeline.circuit_path(run.workdir, name))
    say(render.summary(c))
    lines.append(render.one_line(c))
  return lines


def demo_lines(workdir: str, cfg) -> list[str]:
  """For `make demo`: prunes every task the run in `workdir` solves, one line per task."""
  return prune_solved(run_io.load_run(workdir), cfg)
