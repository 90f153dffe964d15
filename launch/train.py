"""Train (or resume) a model: python -m launch.train --config=experiments/tiny.py --workdir=runs/tiny

On a cluster every process runs the same command; see docs/scale_out.md.
"""

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from launch import common
from sparse_gpt import distributed
from sparse_gpt import report
from sparse_gpt import train

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/tiny.py", "Run config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and logs go (a local "
                               "path or gs://...).", required=True)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for a multi-process run that "
    "no TPU, SLURM or Open MPI environment describes.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process, 0..num_processes-1.")


def main(argv):
  del argv

  def start_and_train():
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    summary = train.train(_CONFIG.value, _WORKDIR.value)
    if jax.process_index() == 0:
      print(report.training_summary(summary))

  common.run(start_and_train)


if __name__ == "__main__":
  app.run(main)
