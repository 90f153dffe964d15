"""A run's working directory: its saved config, its metrics log, its lock, and their rules.

  <workdir>/config.json      the resolved config of the run
  <workdir>/tokenizer.json   the BPE the model was trained with
  <workdir>/corpus.json      statistics of the tokenized corpus
  <workdir>/metrics.jsonl    one JSON record per log or eval step
  <workdir>/checkpoints/N/   orbax checkpoints (params, opt_state, data iterator)
  <workdir>/summary.json     written when training finishes
  <workdir>/train.lock       held by the process training the run
"""

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import tempfile

from absl import logging
from etils import epath
import ml_collections

from sparse_gpt import storage
from sparse_gpt.errors import CheckpointError, UserError

# Keys that may change between a run and its resumption without changing its trajectory.
_RESUMABLE_CHANGES = ("train.log_every", "train.eval_every", "train.eval_batches",
                      "train.checkpoint_every", "train.keep_checkpoints", "data.cache_dir",
                      "mesh.data", "mesh.fsdp", "mesh.tensor",
                      "model.remat")
# Keys that may change on resume and do change the trajectory from that step on: the way
# out of a divergence. Each change is recorded in metrics.jsonl.
LEARNING_RATE_CHANGES = ("train.learning_rate", "train.warmup")


# Written by launch.import_torch: the run's weights came from elsewhere, with no optimizer
# state or data position, so it can be read by every tool but not trained on.
IMPORTED_FILE = "imported.json"


def refuse_imported(workdir: str) -> None:
  """Training on an imported workdir would set its only checkpoint aside as unreadable."""
  if (path(workdir) / IMPORTED_FILE).exists():
    raise UserError(f"{workdir} holds an imported model ({IMPORTED_FILE}): it has no "
                    "optimizer state to resume from, so it cannot be trained on. Train into "
                    "a new --workdir, or use the imported one with launch.tasks, "
                    "launch.prune and launch.view.")

def path(workdir: str) -> epath.Path:
  return storage.path(workdir)


def create(workdir: str) -> epath.Path:
  """The workdir, created if need be; a file in its place or no permission is a UserError."""
  wd = path(workdir)
  if wd.exists() and not wd.is_dir():
    raise CheckpointError(f"--workdir={workdir} is a file, not a directory. Name a "
                          "directory (new or holding a run).")
  try:
    wd.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise CheckpointError(f"Cannot create the workdir {workdir} ({e.strerror or e}). "
                          "Use a --workdir you can write to.") from None
  return wd


def _lock_file(wd: epath.Path) -> str:
  # flock needs a local file. A remote workdir is locked on this machine only: two
  # hosts of one run share it by design, and only process 0 takes the lock.
  if "://" not in str(wd):
    return os.fspath(wd / "train.lock")
  key = hashlib.sha256(str(wd).encode()).hexdigest()[:16]
  return os.path.join(tempfile.gettempdir(), f"sparse_gpt-{key}.lock")


@contextlib.contextmanager
def lock(workdir: str):
  """Holds the workdir for this process; a second process is refused with a UserError.

  flock: the kernel releases the lock when its holder exits, however it dies, so a
  killed run never leaves it stuck. The file stays (deleting it would let a waiting
  process lock a file nobody else sees); it names the holder, for the refusal.
  """
  f = _lock_file(path(workdir))
  try:
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise CheckpointError(f"Cannot write to the workdir {workdir} ({e.strerror or e}). "
                          "Use a --workdir you can write to.") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
      raise CheckpointError(f"{workdir} is being trained by {holder}. Wait for it to "
                            "finish (or stop it), or use another --workdir.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)


def _flat(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


# Keys added after runs were saved without them, with the value those runs computed with.
_BEFORE_THE_KEY = {"model.gelu": "tanh", "model.norm_eps": 1e-5, "model.activation": "gelu",
                   "model.bias": True, "model.tied_unembed": False,
                   "model.logits_bias": False}


def identity(cfg: ml_collections.ConfigDict) -> dict:
  """The config as a run's identity: a key added later, at the value every run before it
  had, is left out, so a run names the same model before and after the key existed."""
  d = cfg.to_dict()
  for key, value in _BEFORE_THE_KEY.items():
    section, name = key.split(".")
    if name in d.get(section, {}) and d[section][name] == value:
      del d[section][name]
  return d


def _saved_config(f: epath.Path) -> dict:
  try:
    saved = json.loads(f.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{f} is not a readable config ({type(e).__name__}: {e}). "
                          "Restore it from a copy, or use a new --workdir.") from None
  if not isinstance(saved, dict):
    raise CheckpointError(f"{f} is not a config (a JSON object). Restore it from a copy, "
                          "or use a new --workdir.")
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


def check_config(workdir: str, cfg: ml_collections.ConfigDict,
                 has_checkpoints: bool) -> dict[str, tuple]:
  """Refuses to resume checkpoints with a changed trajectory.

  Returns the learning-rate keys that changed, {key: (saved, new)}. A workdir without a
  checkpoint holds nothing to resume (a first run that failed, say): any config goes.
  """
  f = path(workdir) / "config.json"
  if not has_checkpoints:
    return {}
  if not f.exists():
    raise CheckpointError(f"{workdir} holds checkpoints but no config.json, so they "
                          "cannot be checked against this config. Use a new --workdir.")
  old = _flat(_saved_config(f))
  new = _flat(json.loads(cfg.to_json()))
  changed = sorted(k for k in old.keys() | new.keys()
                   if old.get(k) != new.get(k) and k not in _RESUMABLE_CHANGES)
  refused = [k for k in changed if k not in LEARNING_RATE_CHANGES]
  if refused:
    diffs = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in refused)
    raise CheckpointError(f"{workdir} holds a run with a different config ({diffs}). "
                          "Resume it with the same config, or use a new --workdir.")
  return {k: (old.get(k), new.get(k)) for k in changed}


def save_config(workdir: str, cfg: ml_collections.ConfigDict) -> None:
  storage.write_text(path(workdir) / "config.json", cfg.to_json(indent=2))


class MetricsLog:
  """metrics.jsonl: on resume, drops records from steps the checkpoint never saw.

  Each write replaces the whole file through `storage` (atomically), which works on every
  filesystem orbax accepts (`gs://` cannot append) and never leaves half a line.
  """

  def __init__(self, workdir: str, resume_step: int):
    self._path = path(workdir) / "metrics.jsonl"
    self._lines = [json.dumps(r) + "\n" for r in read_metrics(workdir)
                   if r["step"] <= resume_step]
    storage.write_text(self._path, "".join(self._lines))

  def write(self, record: dict) -> None:
    self._lines.append(json.dumps(record) + "\n")
    storage.write_text(self._path, "".join(self._lines))


def read_metrics(workdir: str) -> list[dict]:
  """The records of metrics.jsonl; a last line cut short (a killed writer) is dropped."""
  f = path(workdir) / "metrics.jsonl"
  if not f.exists():
    return []
  lines = f.read_text().splitlines()
  records = []
  for i, line in enumerate(lines):
    if not line:
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        logging.warning("%s: dropped its last line, cut short by an interrupted write.", f)
        break
      record = None
    if not isinstance(record, dict) or not isinstance(record.get("step"), int):
      raise CheckpointError(f"{f}, line {i + 1}, is not a metrics record: {line[:80]!r}. "
                            "Delete that line (or the file) and rerun.")
    records.append(record)
  return records
