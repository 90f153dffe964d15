"""Import a released PyTorch checkpoint: python -m launch.import_torch --checkpoint=DIR --workdir=W

  --checkpoint   a directory holding beeg_config.json and final_model.pt (OpenAI's
                 circuit_sparsity release, e.g. csp_yolo1)
  --tokenizer    the model's tiktoken encoding (.tiktoken file): needed for tasks and pruning

The workdir then serves every tool that takes one (launch.tasks, launch.prune,
sparse_gpt.load_run). Needs the torch extra: pip install -e '.[torch]'. See docs/import.md.
"""

from absl import app
from absl import flags

from launch import common

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A released model's directory "
                                  "(beeg_config.json + final_model.pt).", required=True)
_WORKDIR = common.define_workdir(None, "The new workdir to write the model into.",
                                 required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "The model's tiktoken encoding "
                                 "(.tiktoken), converted to the workdir's tokenizer.json.")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from sparse_gpt.importing import torch_checkpoint  # pylint: disable=g-import-not-at-top
  common.run(lambda: print(torch_checkpoint.import_checkpoint(
      _CHECKPOINT.value, _WORKDIR.value, _TOKENIZER.value)))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
