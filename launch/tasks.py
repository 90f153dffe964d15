"""Score a trained model on the tasks: python -m launch.tasks --workdir=runs/tiny

  --task=NAME --show=5     print 5 example pairs of a task, tokenized
  --pairs=my_task.jsonl    score a task of your own ({"prompt", "correct", "incorrect"})
  --list                   the registered tasks
  --compare=runs/dense     score other runs on the same pairs, side by side
"""

from absl import app
from absl import flags

from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir.")
_TASK = flags.DEFINE_string("task", "", "Score (or --show) only this task.")
_PAIRS = flags.DEFINE_string("pairs", "", "A JSONL file of your own task's records.")
_SHOW = flags.DEFINE_integer("show", 0, "Print this many example pairs, not scores.",
                             lower_bound=0)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of a table.")
_SPLIT = flags.DEFINE_enum("split", "heldout", ["train", "heldout"], "Which pairs.")
_N_PAIRS = flags.DEFINE_integer("n_pairs", 128, "Pairs per task (two sequences each).",
                                lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the pair generators.")
_LIST = flags.DEFINE_bool("list", False, "List the registered tasks and exit.")
_CIRCUIT = flags.DEFINE_string("circuit", "", "Score this circuit file (from launch.prune) "
                               "instead of the full model.")
_COMPARE = flags.DEFINE_list("compare", [], "Other runs' workdirs to score on the same "
                             "pairs, in columns beside --workdir (e.g. a dense baseline).")
flags.register_validator("compare", lambda workdirs: all(wd.strip() for wd in workdirs),
                         "give workdirs separated by commas, e.g. --compare=runs/dense")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from launch import tasks_cli as cli  # pylint: disable=g-import-not-at-top
  common.run(lambda: print(cli.main(
      _WORKDIR.value, task=_TASK.value, pairs=_PAIRS.value, show=_SHOW.value,
      as_json=_JSON.value, split=_SPLIT.value, n_pairs=_N_PAIRS.value, seed=_SEED.value,
      list_tasks=_LIST.value, circuit=_CIRCUIT.value,
      compare=tuple(_COMPARE.value))))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
