"""Prune a trained model into circuits: python -m launch.prune --workdir=runs/tiny --task=NAME

  --task=all                        every task the model solves (its full-model task
                                    loss at most --prune.target_loss)
  --pairs=my_task.jsonl --name=X    a task of your own ({"prompt", "correct", "incorrect"})
  --overwrite                       replace a circuit file that holds another task's circuit
  --prune.budget_s=600              seconds of recipe search per task (more: smaller circuits)
  --prune.budget_s=0 --prune.steps=400 --prune.k_coefs="(1e-4, 1e-3)"   a fixed recipe;
                                    any setting of sparse_gpt/pruning/config.py
Writes <workdir>/circuits/<task>.json (docs/circuit_schema.md) and prints a summary.
"""

from absl import app
from absl import flags

from launch import common
from sparse_gpt.pruning import config

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir.")
_TASK = flags.DEFINE_string("task", "", "A registered task, or 'all'.")
_PAIRS = flags.DEFINE_string("pairs", "", "A JSONL file of minimal pairs, two records each.")
_NAME = flags.DEFINE_string("name", "", "The circuit's name for --pairs (default: file "
                            "stem): a file name in <workdir>/circuits/, not a path.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a circuit file that holds a "
                               "circuit of another task or pairs file.")
_PRUNE = common.define_config_dict("prune", config.defaults(), "Pruning settings.")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from launch import prune_cli as cli  # pylint: disable=g-import-not-at-top
  common.run(lambda: print(cli.main(_WORKDIR.value, task=_TASK.value, pairs=_PAIRS.value,
                                    name=_NAME.value, cfg=_PRUNE.value,
                                    overwrite=_OVERWRITE.value)))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
