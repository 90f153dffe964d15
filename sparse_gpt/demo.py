"""The `make demo` job: train the tiny model, then report what it learned."""

from experiments import tiny
from sparse_gpt import report
from sparse_gpt import run_io
from sparse_gpt import train
from sparse_gpt.pruning import cli as prune_cli
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.tasks import cli as tasks_cli


def run_demo(workdir: str) -> None:
  """Trains experiments/tiny.py into `workdir` (resuming if interrupted) and reports."""
  print(f"== Training experiments/tiny.py into {workdir} (rerun to resume)", flush=True)
  summary = train.train(tiny.get_config(), workdir)
  print(report.training_summary(summary), flush=True)
  print("\n== The twenty tasks, held-out pairs (python -m launch.tasks "
        f"--workdir={workdir})", flush=True)
  print(tasks_cli.report(run_io.load_run(workdir)), flush=True)
  cfg = prune_config.defaults()  # the paper's target task loss, 0.15
  cfg.null_steps = 0  # the null baselines double the time; launch.prune runs them
  print(f"\n== Circuits for every task the model solves to task loss {cfg.target_loss} "
        f"(python -m launch.prune --workdir={workdir} --task=all)", flush=True)
  for line in prune_cli.demo_lines(workdir, cfg):
    print(line, flush=True)
