"""Dry run: will a config fit a topology? Compiles one train step, trains nothing.

python -m launch.compile --config=experiments/paper.py:16 --topology=v5p-64 \
    --config.mesh.fsdp=32
"""

from absl import app
from absl import flags

from launch import common

_CONFIG = common.define_config_file("config", "experiments/tiny.py", "Run config.")
_TOPOLOGY = flags.DEFINE_string("topology", None, "A TPU slice (v5p-64, v4-32, v5e-16, "
                                "v6e-8) or GPUs (8xH100, 2x8xH100).", required=True)


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from sparse_gpt import aot  # pylint: disable=g-import-not-at-top
  common.run(lambda: print(aot.format_report(aot.memory_report(
      _CONFIG.value, aot.parse_topology(_TOPOLOGY.value)))))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
