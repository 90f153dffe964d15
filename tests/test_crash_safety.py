"""SIGKILL at random moments, then the same command again: nothing is lost or half-written.

A training run killed during startup, mid-training, mid-checkpoint-save and right after a
checkpoint commits, and rerun each time until it finishes, ends with the parameters and
metrics of a run never killed, bit for bit. A prune killed while it saves node means or
its circuit leaves circuits/ holding only whole circuit files, and its rerun writes the
circuit an uninterrupted prune writes.

The kill moments come from a seeded generator: which phases are hit is fixed; where in a
phase the signal lands depends on the machine, and any landing must give the same end.
Every run is a subprocess (SIGKILL spares nothing), sharing one persistent compilation
cache so that each program compiles once. Run alone with
  pytest -p no:xdist tests/test_crash_safety.py
"""

import itertools
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import tiny_setup
from sparse_gpt import run_io
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.pruning import circuit as circuit_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 16
CHECKPOINT_EVERY = 4
SEED = 20240611
_TIMEOUT_S = 300  # one process; far above what any takes, so a hang fails, not stalls

_TRAIN = {
    "model.n_layer": 1, "model.d_model": 32, "model.n_head": 2, "model.d_head": 16,
    "model.d_mlp": 64, "model.n_ctx": 32, "data.vocab_size": 320, "data.val_fraction": 0.2,
    "sparsity.sparse_biases": False,  # fewer top-k projections: a shorter compile
    "train.steps": STEPS, "train.batch_size": 4, "train.log_every": 1,
    "train.eval_every": 8, "train.eval_batches": 1,
    "train.checkpoint_every": CHECKPOINT_EVERY, "train.learning_rate": 1e-2}
# The model has seen 16 steps: it solves nothing, so the target is set above its loss
# (about ln 2) to let the prune run its whole pipeline.
# budget_s=0: a fixed number of steps, so a rerun is the same circuit.
_PRUNE = {"target_loss": 5.0, "budget_s": 0, "steps": 10, "batch_pairs": 4,
          "train_pairs": 8, "heldout_pairs": 4, "faithfulness": False, "mean_windows": 4,
          "calibration_steps": 4}
# Fields of a circuit file that name where or how long, not what was found.
_CIRCUIT_CIRCUMSTANCES = (("model", "workdir"), ("metrics", "seconds"))


def _env(root: pathlib.Path) -> dict:
  return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
              JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              XLA_FLAGS="--xla_backend_optimization_level=0")  # compiles 2x faster


def _train_command(root: pathlib.Path, workdir: pathlib.Path, cache: pathlib.Path) -> list:
  flags = {**_TRAIN, "data.corpus": root / "corpus", "data.cache_dir": cache}
  return [sys.executable, "-m", "launch.train", "--config=experiments/tiny.py",
          f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in flags.items())]


def _prune_command(root: pathlib.Path, workdir: pathlib.Path) -> list:
  return [sys.executable, "-m", "launch.prune", f"--workdir={workdir}",
          f"--pairs={root / 'pairs.jsonl'}", "--name=x",
          *(f"--prune.{k}={v}" for k, v in _PRUNE.items())]


class _Attempt:
  """One launch of a command, its output in a file (a pipe nobody reads could block)."""

  def __init__(self, command: list, root: pathlib.Path, log: pathlib.Path):
    self.log = log
    with open(log, "w") as out:
      self.proc = subprocess.Popen(command, cwd=REPO, env=_env(root), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    self.start, self.started_at = time.monotonic(), time.time()

  def output(self) -> str:
    return self.log.read_text()[-4000:]

  def elapsed(self) -> float:
    return time.monotonic() - self.start

  def kill_when(self, ready) -> bool:
    """SIGKILLs the process as soon as ready(self) holds; False if it exited first,
    which must have been a success."""
    while self.proc.poll() is None:
      if self.elapsed() > _TIMEOUT_S:
        break
      if ready(self):
        os.killpg(self.proc.pid, signal.SIGKILL)  # its session: anything it started too
        self.proc.wait()
        return True
      time.sleep(0.002)
    self.finish()
    return False

  def finish(self) -> None:
    try:
      self.proc.wait(timeout=max(1, _TIMEOUT_S - self.elapsed()))
    except subprocess.TimeoutExpired:
      os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait()
    assert self.proc.returncode == 0, self.output()


def _run_to_the_end(command: list, root: pathlib.Path, workdir: pathlib.Path,
                    kills: list, done) -> list[str]:
  """Launches `command`, SIGKILLs it at each of `kills` in turn (a (name, ready) pair),
  relaunching after each, then relaunches until done(); returns the kills that landed."""
  landed = []
  logs = root / "logs"
  logs.mkdir(exist_ok=True)
  attempts = itertools.count()
  launch = lambda: _Attempt(command, root, logs / f"{workdir.name}-{next(attempts)}.log")
  for name, ready in kills:
    if done():
      break
    if launch().kill_when(ready):
      landed.append(name)
  for _ in range(2):  # a finished process must leave `done`; a second try proves a loop
    if done():
      break
    launch().finish()
  assert done(), f"not finished after kills {landed}"
  print(f"{workdir.name}: kills landed {landed}")
  return landed


# Kill moments: functions of the running attempt, true when it is time to kill it.


def _after(seconds: float):
  return lambda attempt: attempt.elapsed() >= seconds


def _delayed(seen, delay: float):
  """Ready `delay` seconds after seen(attempt) first holds."""
  first = {}

  def ready(attempt):
    if attempt not in first and seen(attempt):
      first[attempt] = attempt.elapsed()
    return attempt in first and attempt.elapsed() >= first[attempt] + delay

  return ready


def _exists(pattern: pathlib.Path, delay: float = 0.0):
  """Ready `delay` seconds after this attempt made something matching `pattern` (one a
  killed attempt left behind is older)."""

  def made(attempt):
    for p in pattern.parent.glob(pattern.name):
      try:
        if p.stat().st_mtime >= attempt.started_at:
          return True
      except FileNotFoundError:  # renamed as we looked
        pass
    return False

  return _delayed(made, delay)


def _printed(text: str, delay: float):
  return _delayed(lambda attempt: text in attempt.log.read_text(), delay)


def _metrics(workdir: pathlib.Path) -> list[dict]:
  return [{k: v for k, v in r.items() if k != "tokens_per_s"}  # the one timing field
          for r in workdir_lib.read_metrics(str(workdir))]


def _params(workdir: pathlib.Path) -> dict:
  run = run_io.load_run(str(workdir), STEPS)
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(run.params)}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> pathlib.Path:
  """The corpus, a pairs file, and a reference run trained without interruption."""
  root = tmp_path_factory.mktemp("crash")
  tiny_setup.write_corpus(root / "corpus")
  pairs = []
  for i, (a, b) in enumerate(zip("acexsnpr", "bdfytmql")):
    pairs += [{"prompt": f"def {a}{i}(self):\n    return self.", "correct": a,
               "incorrect": b},
              {"prompt": f"def {b}{i}(self):\n    return self.", "correct": b,
               "incorrect": a}]
  (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
  _Attempt(_train_command(root, root / "reference", root / "cache"), root,
           root / "reference.log").finish()
  return root


@pytest.fixture(scope="module")
def killed_training(root) -> tuple[pathlib.Path, list[str]]:
  """The reference's command on a new workdir, killed and rerun: (workdir, kills landed)."""
  workdir = root / "killed"
  rng = random.Random(SEED)
  ckpts = workdir / "checkpoints"
  mid_save = rng.choice([4, 8])
  mid_train = rng.randrange(mid_save + 1, mid_save + CHECKPOINT_EVERY)
  # In order of progress, each after the checkpoint the previous kill left to resume from.
  kills = [
      ("startup", _after(rng.uniform(0.3, 3.0))),  # imports, tokenizing, compiling
      (f"saving {mid_save}", _exists(ckpts / f"{mid_save}.orbax-checkpoint-tmp*",
                                     rng.uniform(0.0, 0.1))),
      (f"training {mid_train}", _printed(f"step {mid_train}/{STEPS} |", 0.0)),
      (f"committed {STEPS}", _exists(ckpts / str(STEPS))),  # before summary.json
  ]
  # Its own corpus cache: the startup kill may land while the tokenizer is trained.
  landed = _run_to_the_end(_train_command(root, workdir, root / "killed_cache"), root,
                           workdir, kills, (workdir / "summary.json").exists)
  assert landed, "no kill landed before the run finished"
  return workdir, landed


def test_killed_training_resumes_to_the_uninterrupted_parameters(root, killed_training):
  workdir, landed = killed_training
  expected, got = _params(root / "reference"), _params(workdir)
  assert got.keys() == expected.keys()
  for name in expected:
    assert got[name].dtype == expected[name].dtype, name
    assert got[name].tobytes() == expected[name].tobytes(), f"{name} after kills {landed}"
  assert _metrics(workdir) == _metrics(root / "reference"), f"after kills {landed}"


def test_killed_training_writes_the_uninterrupted_summary(root, killed_training):
  workdir, landed = killed_training
  summary = lambda w: {k: v for k, v in json.loads((w / "summary.json").read_text()).items()
                       if k != "tokens_per_s"}
  assert summary(workdir) == summary(root / "reference"), f"after kills {landed}"


def _without_circumstances(d: dict) -> dict:
  d = json.loads(json.dumps(d))
  for section, key in _CIRCUIT_CIRCUMSTANCES:
    del d[section][key]
  return d


def _circuit_files_are_whole(circuits: pathlib.Path, killed_at: str) -> None:
  if not circuits.exists():
    return
  for f in circuits.iterdir():
    if f.suffix == ".json":
      circuit_lib.load(f)  # a half-written file is a UserError here
    else:  # a kill between writing the temporary file and renaming it leaves that
      assert f.name.startswith(".") and ".tmp-" in f.name, f"{f.name} after {killed_at}"


@pytest.fixture(scope="module")
def reference_circuit(root) -> pathlib.Path:
  _Attempt(_prune_command(root, root / "reference"), root, root / "prune.log").finish()
  return root / "reference" / "circuits" / "x.json"


def test_killed_prune_leaves_whole_circuits_and_its_rerun_the_same_one(
    root, reference_circuit):
  workdir = root / "pruned"
  shutil.copytree(root / "reference", workdir,
                  ignore=shutil.ignore_patterns("circuits", "node_means"))
  # A circuit from an earlier prune to be overwritten: a kill mid-save must leave it or
  # the new one. Its `seconds` of -1 tells it from the new one.
  old = json.loads(reference_circuit.read_text())
  old["metrics"]["seconds"] = -1
  circuit_file = workdir / "circuits" / "x.json"
  circuit_file.parent.mkdir()
  circuit_file.write_text(json.dumps(old))

  rng = random.Random(SEED)
  kills = [
      ("startup", _after(rng.uniform(0.3, 2.0))),
      ("saving node means", _exists(workdir / "node_means", rng.uniform(0.0, 0.01))),
      # The pipeline prints "done:" just before the save, which takes milliseconds.
      ("saving the circuit", _printed("] done:", rng.uniform(0.0, 0.01))),
  ]
  checked = []

  def done():
    _circuit_files_are_whole(workdir / "circuits", f"attempt {len(checked)}")
    checked.append(True)
    return json.loads(circuit_file.read_text())["metrics"]["seconds"] != -1

  landed = _run_to_the_end(_prune_command(root, workdir), root, workdir, kills, done)
  assert landed, "no kill landed before the prune finished"
  assert (_without_circumstances(json.loads(circuit_file.read_text()))
          == _without_circumstances(json.loads(reference_circuit.read_text()))), landed


class _Killed(BaseException):
  """What a SIGKILL is to the process: nothing after it runs, no handler catches it."""


def _dies_mid_write(monkeypatch) -> None:
  """From now on, writing a file writes half the bytes, then the process "dies": the
  exact case the kills above hit by chance."""
  cls = type(workdir_lib.path("/"))
  real_open = cls.open

  class Dying:
    def __init__(self, handle):
      self._handle = handle

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self._handle.close()

    def write(self, data):
      self._handle.write(data[:len(data) // 2])
      self._handle.flush()
      raise _Killed

  def dying_open(self, mode="r", **kwargs):
    handle = real_open(self, mode, **kwargs)
    return Dying(handle) if "w" in mode else handle

  monkeypatch.setattr(cls, "open", dying_open)


def test_a_save_that_dies_mid_write_keeps_the_previous_circuit(reference_circuit, tmp_path,
                                                               monkeypatch):
  c = circuit_lib.load(reference_circuit)
  f = tmp_path / "circuits" / "x.json"
  circuit_lib.save(c, f)
  before = f.read_text()
  _dies_mid_write(monkeypatch)
  with pytest.raises(_Killed):
    circuit_lib.save(c, f)
  monkeypatch.undo()
  assert f.read_text() == before
  assert circuit_lib.load(f) == c


def test_a_resume_that_dies_rewriting_config_json_keeps_it(tmp_path, monkeypatch):
  # Every run rewrites config.json, so every start of a resume is such a moment.
  cfg = tiny_setup.tiny_config(tmp_path / "corpus", tmp_path / "cache")
  workdir_lib.save_config(str(tmp_path), cfg)
  before = (tmp_path / "config.json").read_text()
  _dies_mid_write(monkeypatch)
  with pytest.raises(_Killed):
    workdir_lib.save_config(str(tmp_path), cfg)
  monkeypatch.undo()
  assert (tmp_path / "config.json").read_text() == before
  workdir_lib.check_config(str(tmp_path), cfg, has_checkpoints=True)  # the rerun is not refused
