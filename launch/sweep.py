"""Train and prune a grid of models: python -m launch.sweep --config=experiments/frontier.py
--workdir=runs/frontier

  --list      the grid, one line per model (index, name, workdir, widths and densities)
  --index=i   train and prune model i only (a SLURM array task: docs/scale_out.md)
Without --index every model runs in turn; rerunning resumes: a trained model is not
trained again, a pruned task is not pruned again. Then: python -m launch.frontier.
"""

from absl import app
from absl import flags

from launch import common

_CONFIG = common.define_config_file("config", "experiments/frontier.py", "Sweep config.")
_WORKDIR = common.define_workdir(None, "The sweep's directory: model <name> trains in "
                                 "<workdir>/<name>.", required=True)
_LIST = flags.DEFINE_bool("list", False, "Print the grid and exit.")
_INDEX = flags.DEFINE_integer("index", None, "Run only this grid point (see --list).",
                              lower_bound=0)


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from sparse_gpt import sweep  # pylint: disable=g-import-not-at-top

  def go():
    if _LIST.value:
      print(sweep.listing(sweep.points(_CONFIG.value, _WORKDIR.value)))
      return
    records = sweep.run(_CONFIG.value, _WORKDIR.value, _INDEX.value)
    solved = [sorted(n for n, t in r["tasks"].items() if t["solved"]) for r in records]
    for r, names in zip(records, solved):
      print(f"{r['model']}: {len(names)} of {len(r['tasks'])} tasks solved and pruned: "
            f"{', '.join(names) or 'none'}")

  common.run(go)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
