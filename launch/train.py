"""Train (or resume) a model: python -m launch.train --config=experiments/tiny.py --workdir=runs/tiny

On a cluster every process runs the same command; see docs/scale_out.md.
"""

import re

from absl import app
from absl import flags

from launch import common

_CONFIG = common.define_config_file("config", "experiments/tiny.py", "Run config.")
_WORKDIR = common.define_workdir(None, "Where checkpoints and logs go (a local path or "
                                "gs://...).", required=True)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run that "
    "no TPU, SLURM or Open MPI environment describes.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.",
                                      lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process, 0..num_processes-1.",
                                   lower_bound=0)
flags.register_validator("coordinator_address",
                         lambda address: address is None or re.fullmatch(r".+:\d+", address),
                         "give host:port, e.g. --coordinator_address=10.0.0.1:1234")
flags.register_multi_flags_validator(
    ["num_processes", "process_id"],
    lambda f: None in f.values() or f["process_id"] < f["num_processes"],
    "--process_id counts from 0 to --num_processes - 1")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  import jax  # pylint: disable=g-import-not-at-top
  from sparse_gpt import distributed  # pylint: disable=g-import-not-at-top
  from sparse_gpt import report  # pylint: disable=g-import-not-at-top
  from sparse_gpt import train  # pylint: disable=g-import-not-at-top

  def start_and_train():
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    summary = train.train(_CONFIG.value, _WORKDIR.value)
    if jax.process_index() == 0:
      print(report.training_summary(summary))

  common.run(start_and_train)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
