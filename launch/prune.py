"""Prune a trained model into circuits: python -m launch.prune --workdir=runs/tiny --task=NAME

  --task=all                        every task the model solves
  --pairs=my_task.jsonl --name=X    a task of your own ({"prompt", "correct", "incorrect"})
  --prune.steps=400 --prune.k_coefs="(1e-4, 1e-3)" --prune.ablation=zero   any setting of
                                    sparse_gpt/pruning/config.py
Writes <workdir>/circuits/<task>.json (docs/circuit_schema.md) and prints a summary.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from launch import common
from launch import prune_cli as cli
from sparse_gpt.pruning import config

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir.")
_TASK = flags.DEFINE_string("task", "", "A registered task, or 'all'.")
_PAIRS = flags.DEFINE_string("pairs", "", "A JSONL file of minimal pairs, two records each.")
_NAME = flags.DEFINE_string("name", "", "The circuit's name for --pairs (default: file stem).")
_PRUNE = config_flags.DEFINE_config_dict("prune", config.defaults(), "Pruning settings.")


def main(argv):
  del argv
  common.run(lambda: print(cli.main(_WORKDIR.value, task=_TASK.value, pairs=_PAIRS.value,
                                    name=_NAME.value, cfg=_PRUNE.value)))


if __name__ == "__main__":
  app.run(main)
