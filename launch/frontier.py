"""The frontier of a sweep: python -m launch.frontier --workdir=runs/frontier

Reads the models launch.sweep trained and pruned, and writes to the sweep's workdir
frontier.json (every figure), frontier.png (validation loss against circuit edges, the
Pareto front drawn) and target_sweep.png (circuit edges against the target loss for the
sparse and dense models closest in validation loss, pruned again at each of the sweep's
config.targets unless --notarget_sweep), then prints the table. docs/frontier.md.
"""

from absl import app
from absl import flags

from launch import common

_WORKDIR = common.define_workdir(None, "The sweep's directory (launch.sweep --workdir).",
                                 required=True)
_TARGET_SWEEP = flags.DEFINE_bool("target_sweep", True, "Prune the matched pair at every "
                                  "target loss of the sweep and draw target_sweep.png.")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from launch import frontier_cli as cli  # pylint: disable=g-import-not-at-top
  common.run(lambda: print(cli.main(_WORKDIR.value, _TARGET_SWEEP.value)))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
