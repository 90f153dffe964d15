"""A run's working directory: its saved config, its metrics log, and their rules.

  <workdir>/config.json      the resolved config of the run
  <workdir>/tokenizer.json   the BPE the model was trained with
  <workdir>/corpus.json      statistics of the tokenized corpus
  <workdir>/metrics.jsonl    one JSON record per log or eval step
  <workdir>/checkpoints/N/   orbax checkpoints (params, opt_state, data iterator)
  <workdir>/summary.json     written when training finishes
"""

import json
import pathlib

from etils import epath
import ml_collections

from sparse_gpt import storage
from sparse_gpt.errors import CheckpointError

# Keys that may change between a run and its resumption without changing its trajectory.
_RESUMABLE_CHANGES = ("train.log_every", "train.eval_every", "train.eval_batches",
                      "train.checkpoint_every", "train.keep_checkpoints", "data.cache_dir",
                      "mesh.data", "mesh.fsdp", "mesh.tensor",
                      "model.remat")


def path(workdir: str) -> epath.Path:
  return storage.path(workdir)


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


# Keys added after runs were saved without them, with the value those runs computed with.
_BEFORE_THE_KEY = {"model.gelu": "tanh", "model.norm_eps": 1e-5}


def _saved_config(f: epath.Path) -> dict:
  saved = json.loads(f.read_text())
  for key, value in _BEFORE_THE_KEY.items():
    section, name = key.split(".")
    saved.get(section, {}).setdefault(name, value)
  return saved


def load_config(workdir: str) -> ml_collections.ConfigDict:
  f = path(workdir) / "config.json"
  if not f.exists():
    raise CheckpointError(f"{workdir} holds no run (no config.json). Train one with "
                          f"python -m launch.train --config=experiments/tiny.py "
                          f"--workdir={workdir}")
  return ml_collections.ConfigDict(_saved_config(f))


def save_or_check_config(workdir: str, cfg: ml_collections.ConfigDict) -> None:
  """Saves the config of a new run; for a resumed run, refuses a changed trajectory."""
  f = path(workdir) / "config.json"
  if f.exists():
    old, new = _flat(_saved_config(f)), _flat(json.loads(cfg.to_json()))
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
    if changed:
      diffs = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
      raise CheckpointError(f"{workdir} holds a run with a different config ({diffs}). "
                            "Resume it with the same config, or use a new --workdir.")
  f.parent.mkdir(parents=True, exist_ok=True)
  storage.write_text(f, cfg.to_json(indent=2))


class MetricsLog:
  """Appends JSON lines; on resume, drops records from steps the checkpoint never saw."""

  def __init__(self, workdir: str, resume_step: int):
    self._path = pathlib.Path(path(workdir) / "metrics.jsonl")
    if self._path.exists():
      kept = [line for line in self._path.read_text().splitlines()
              if line and json.loads(line)["step"] <= resume_step]
      tmp = self._path.with_suffix(".tmp")
      tmp.write_text("".join(line + "\n" for line in kept))
      tmp.replace(self._path)
    self._file = self._path.open("a")

  def write(self, record: dict) -> None:
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def read_metrics(workdir: str) -> list[dict]:
  f = path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in f.read_text().splitlines() if line] if f.exists() else []
