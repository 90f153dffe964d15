"""The `make demo` job: python -m launch.demo --workdir=runs/demo

Trains experiments/tiny.py (resuming if interrupted), then reports what it learned, and
ends by writing the circuit pages (launch.view) and printing the index's path.
"""

from absl import app

from experiments import tiny
from launch import common
from sparse_gpt.pruning import config as prune_config

_WORKDIR = common.define_workdir("runs/demo", "Where the demo run goes.")


def run_demo(workdir: str) -> None:
  # Imported here, so that a bad flag answers before JAX loads.
  from launch import prune_cli  # pylint: disable=g-import-not-at-top
  from launch import tasks_cli  # pylint: disable=g-import-not-at-top
  from sparse_gpt import report  # pylint: disable=g-import-not-at-top
  from sparse_gpt import run_io  # pylint: disable=g-import-not-at-top
  from sparse_gpt import train  # pylint: disable=g-import-not-at-top
  from sparse_gpt.view import site  # pylint: disable=g-import-not-at-top

  print(f"== Training experiments/tiny.py into {workdir} (rerun to resume)", flush=True)
  summary = train.train(tiny.get_config(), workdir)
  print(report.training_summary(summary), flush=True)
  print("\n== The twenty tasks, held-out pairs (python -m launch.tasks "
        f"--workdir={workdir})", flush=True)
  run = run_io.load_run(workdir)  # once: the table and the circuits read the same run
  print(tasks_cli.report(run, save_table=True), flush=True)  # the index reads it
  cfg = prune_config.defaults()  # the paper's target task loss, 0.15
  cfg.null_steps = 0  # the null baselines double the time; launch.prune runs them
  print(f"\n== Circuits for every task the model solves: full-model task loss on the "
        f"training pairs at most the pruning target {cfg.target_loss}, usually a stricter "
        "bar than the table's 90% accuracy, so fewer tasks "
        f"(python -m launch.prune --workdir={workdir} --task=all)", flush=True)
  for line in prune_cli.prune_solved(run, cfg):
    print(line, flush=True)
  print(f"\n== The circuit pages (python -m launch.view --workdir={workdir})", flush=True)
  written = site.write(workdir, run=run)
  print(f"open {written['index']}", flush=True)


def main(argv):
  del argv
  common.run(lambda: run_demo(_WORKDIR.value))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
