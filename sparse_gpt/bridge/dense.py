"""The dense run a bridged run explains: loaded from bridge.dense_workdir and checked.

Bridges join the two models site by site on the same tokens, so the dense run must read
the bridged run's token ids (one tokenizer), windows as long (n_ctx), and have as many
layers; its d_model may differ. Each mismatch is one BridgeError naming it.
"""

import ml_collections
import tokenizers

from sparse_gpt import run_io
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError

# The data keys that decide a run's tokenizer (tokenized.py keys its BPE by them).
_TOKENIZER_KEYS = ("corpus", "vocab_size", "val_fraction")


class BridgeError(UserError):
  """The dense run cannot be bridged to this run."""


def check_config(cfg: ml_collections.ConfigDict, dense_cfg: ml_collections.ConfigDict
                 ) -> None:
  """Refuses a dense run whose tokens, window or depth differ from the bridged run's."""
  where = f"config.bridge.dense_workdir={cfg.bridge.dense_workdir!r}"
  diffs = [f"data.{k} {dense_cfg.data[k]!r} there, {cfg.data[k]!r} here"
           for k in _TOKENIZER_KEYS if dense_cfg.data[k] != cfg.data[k]]
  if diffs:
    raise BridgeError(f"{where}: the dense run's tokenizer is another one ({'; '.join(diffs)})"
                      ". A bridged run reads the dense run's tokens: give it the same data "
                      "section.")
  for key in ("n_ctx", "n_layer"):
    if dense_cfg.model[key] != cfg.model[key]:
      raise BridgeError(f"{where}: the dense run has model.{key}={dense_cfg.model[key]}, "
                        f"this run {cfg.model[key]}; bridges join the models site by site "
                        f"on the same windows: set model.{key}={dense_cfg.model[key]}.")


def check_tokenizer(cfg: ml_collections.ConfigDict, dense_tok: tokenizers.Tokenizer,
                    tok: tokenizers.Tokenizer) -> None:
  """Refuses a bridged run whose tokenizer encodes differently from the dense run's."""
  if tokenizer_lib.fingerprint(dense_tok) != tokenizer_lib.fingerprint(tok):
    raise BridgeError(
        f"config.bridge.dense_workdir={cfg.bridge.dense_workdir!r}: the dense run's "
        "tokenizer.json differs from the one this run trains with (the corpus changed "
        "since, or the file was replaced): train the dense run again, or bridge to one "
        "trained on this corpus.")


def load(cfg: ml_collections.ConfigDict) -> run_io.Run:
  """The dense run of a bridged config, checked against it; one BridgeError if it is
  missing, untrained or incompatible."""
  wd = cfg.bridge.dense_workdir
  if not (workdir_lib.path(wd) / "config.json").exists():
    raise BridgeError(f"config.bridge.dense_workdir={wd!r} holds no trained run (no "
                      "config.json). Train the dense model first: python -m launch.train "
                      f"--config=experiments/dense.py --workdir={wd}")
  check_config(cfg, workdir_lib.load_config(wd))
  return run_io.load_run(wd)
