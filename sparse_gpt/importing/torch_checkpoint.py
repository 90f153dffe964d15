"""A released checkpoint directory (beeg_config.json + final_model.pt) into a workdir.

  <workdir>/config.json      the sparse_gpt config of the released model
  <workdir>/checkpoints/0/   its parameters (no optimizer state: not resumable by training)
  <workdir>/imported.json    where it came from
  <workdir>/tokenizer.json   with --tokenizer only

Everything is read and checked before the first file is written, so a refused import
leaves the workdir as it was.
"""

import hashlib
import json

import numpy as np

from sparse_gpt import checkpoints
from sparse_gpt import storage
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import CheckpointError, UserError
from sparse_gpt.importing import params as params_lib
from sparse_gpt.importing import released_config
from sparse_gpt.importing import tiktoken_bpe

CONFIG_FILE, WEIGHTS_FILE = "beeg_config.json", "final_model.pt"


def read_config(checkpoint: str) -> dict:
  f = storage.path(checkpoint) / CONFIG_FILE
  if not f.exists():
    raise UserError(f"--checkpoint={checkpoint} has no {CONFIG_FILE}: give a released "
                    f"model's directory ({CONFIG_FILE} + {WEIGHTS_FILE}).")
  try:
    return json.loads(f.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"{f} is not JSON ({e}).") from None


def read_state_dict(checkpoint: str) -> dict[str, np.ndarray]:
  """{key: float32 array} of final_model.pt; torch is needed for this step only."""
  f = storage.path(checkpoint) / WEIGHTS_FILE
  if not f.exists():
    raise UserError(f"--checkpoint={checkpoint} has no {WEIGHTS_FILE}.")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("Reading .pt files needs torch: pip install -e '.[torch]'.") from None
  try:
    loaded = torch.load(str(f), weights_only=True, map_location="cpu")
  except Exception as e:  # torch raises many types for a bad or foreign file
    raise UserError(f"{f} is not a torch state_dict ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200]}).") from None
  if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                             for v in loaded.values()):
    raise UserError(f"{f} does not hold a state_dict (a dict of tensors).")
  return {k: v.detach().to(torch.float32).numpy() for k, v in loaded.items()}


def import_checkpoint(checkpoint: str, workdir: str, tokenizer: str = "") -> str:
  """Writes the workdir of a released model; returns a one-line summary."""
  released = read_config(checkpoint)
  cfg = released_config.to_config(released)
  graphdef, params = params_lib.to_params(cfg, read_state_dict(checkpoint))
  del graphdef
  tok = tiktoken_bpe.from_file(tokenizer, cfg.data.vocab_size) if tokenizer else None
  wd = workdir_lib.path(workdir)
  if (wd / "config.json").exists() or (wd / "checkpoints").exists():
    raise CheckpointError(f"{workdir} already holds a run; import into a new --workdir.")
  wd = workdir_lib.create(workdir)
  ckpts = checkpoints.Checkpoints(wd / "checkpoints")
  try:
    ckpts.save_params(0, params)
  finally:
    ckpts.close()
  if tok is not None:
    tokenizer_lib.save(tok, wd / "tokenizer.json")
  weights = (storage.path(checkpoint) / WEIGHTS_FILE).read_bytes()
  storage.write_text(wd / workdir_lib.IMPORTED_FILE, json.dumps({
      "checkpoint": str(checkpoint), "final_model.pt sha256": hashlib.sha256(weights).hexdigest(),
      "beeg_config.json": released, "tokenizer": str(tokenizer) if tokenizer else None},
      indent=2))
  # Last: config.json is what makes the workdir a run to every other tool.
  workdir_lib.save_config(workdir, cfg)
  m = cfg.model
  return (f"Imported {checkpoint} into {workdir}: {m.n_layer} layers, d_model {m.d_model}, "
          f"vocab {cfg.data.vocab_size}" + ("" if tok else "; no tokenizer (logits and "
          "activations only; give --tokenizer for tasks and pruning)") + ".")
