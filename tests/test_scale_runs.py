"""Whole runs of `python -m launch.train`: two processes match one and stop together on
SIGTERM, SIGTERM and restart lose nothing, a truncated checkpoint is skipped.

Runs are subprocesses (JAX fixes a process's devices when it starts) sharing one
persistent compilation cache, so the same program is compiled once.
"""

import fcntl
import logging
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import NamedTuple

import ml_collections
import numpy as np
import pytest

import tiny_setup
from sparse_gpt import checkpoints
from sparse_gpt import data
from sparse_gpt import sharding
from sparse_gpt import tokenized
from sparse_gpt import train_step
from sparse_gpt import workdir as workdir_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 30


class Setup(NamedTuple):
  root: pathlib.Path
  cfg: ml_collections.ConfigDict
  config_file: pathlib.Path
  reference: pathlib.Path  # workdir of an uninterrupted one-device run


def _launch(setup: Setup, workdir, devices: int = 1, flags=()) -> subprocess.Popen:
  env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             JAX_NUM_CPU_DEVICES=str(devices),
             JAX_COMPILATION_CACHE_DIR=str(setup.root / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             XLA_FLAGS="--xla_backend_optimization_level=0")  # compiles 2x faster
  return subprocess.Popen(
      [sys.executable, "-m", "launch.train", f"--config={setup.config_file}",
       f"--workdir={workdir}", *flags],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out[-4000:]
  return out


def _losses(workdir) -> dict[int, float]:
  return {r["step"]: r["loss"] for r in workdir_lib.read_metrics(str(workdir))}


@pytest.fixture(scope="session")
def setup(tmp_path_factory) -> Setup:
  """Corpus, config and reference run, built once even when pytest-xdist spreads these
  tests over workers: they share the session's temp directory and take turns."""
  base = tmp_path_factory.getbasetemp()
  root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "scale_runs"
  root.mkdir(exist_ok=True)
  cfg = tiny_setup.tiny_config(root / "corpus", root / "cache", steps=STEPS,
                               eval_every=STEPS // 2, eval_batches=1,
                               checkpoint_every=STEPS // 2)
  cfg.sparsity.sparse_biases = False  # fewer top-k projections: a shorter compile
  setup = Setup(root, cfg, root / "config.py", root / "reference")
  with open(root / "lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (setup.reference / "summary.json").exists():
      tiny_setup.write_corpus(root / "corpus")
      tokenized.prepare(cfg.data)  # once here, not raced for by the processes
      setup.config_file.write_text("import ml_collections\n\n\ndef get_config():\n"
                                   f"  return ml_collections.ConfigDict({cfg.to_dict()!r})\n")
      _finish(_launch(setup, setup.reference))
  return setup


def _wait_for_steps(workdir, n: int, procs) -> None:
  metrics = workdir / "metrics.jsonl"
  while all(p.poll() is None for p in procs) and (
      not metrics.exists() or len(metrics.read_text().splitlines()) < n):
    time.sleep(0.01)


def test_two_processes_train_like_one_and_stop_together(setup, tmp_path):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  # Two processes of 2 devices: a 2 x 2 (data x fsdp) mesh, each feeding its own rows.
  procs = [_launch(setup, tmp_path, devices=2, flags=(
      f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
      "--config.mesh.fsdp=2")) for i in range(2)]
  _wait_for_steps(tmp_path, 3, procs)
  procs[1].send_signal(signal.SIGTERM)  # preempt one host: both save the same step
  outs = [_finish(p) for p in procs]
  stops = {int(m) for out in outs for m in re.findall(r"SIGTERM: saved step (\d+)", out)}
  assert len(stops) == 1, outs[1][-2000:]
  step = stops.pop()
  assert checkpoints.Checkpoints(tmp_path / "checkpoints", read_only=True).steps()[-1] == step
  expected, got = _losses(setup.reference), _losses(tmp_path)
  assert sorted(got) == list(range(1, step + 1))
  np.testing.assert_allclose([got[s] for s in sorted(got)],
                             [expected[s] for s in sorted(got)], rtol=1e-4)
  progress = re.compile(r"^step \d+/", re.M)  # only process 0 reports
  assert progress.search(outs[0]) and not progress.search(outs[1])


def test_sigterm_saves_the_current_step_and_the_restart_matches(setup, tmp_path):
  proc = _launch(setup, tmp_path)
  _wait_for_steps(tmp_path, 5, [proc])
  proc.send_signal(signal.SIGTERM)
  out = _finish(proc)
  saved = re.search(r"SIGTERM: saved step (\d+)", out)
  assert saved, out[-2000:]
  step = int(saved[1])
  assert 5 <= step < STEPS
  assert step in checkpoints.Checkpoints(tmp_path / "checkpoints", read_only=True).steps()
  assert max(_losses(tmp_path)) == step
  assert not (tmp_path / "summary.json").exists()

  _finish(_launch(setup, tmp_path))
  assert _losses(tmp_path) == _losses(setup.reference)  # bit for bit, logged once each


def test_a_truncated_checkpoint_is_skipped_with_a_warning(setup, tmp_path, caplog):
  cfg = setup.cfg
  shutil.copytree(setup.reference / "checkpoints", tmp_path / "checkpoints")
  newest = tmp_path / "checkpoints" / str(STEPS)
  biggest = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  biggest.write_bytes(biggest.read_bytes()[:biggest.stat().st_size // 2])

  state = train_step.build(cfg, sharding.make_mesh(cfg.mesh)).abstract
  corpus = tokenized.prepare(cfg.data)
  data_iter = iter(data.train_dataset(corpus.train_tokens, cfg.model.n_ctx,
                                      cfg.train.batch_size, cfg.seed))
  ckpts = checkpoints.Checkpoints(tmp_path / "checkpoints")
  with caplog.at_level(logging.WARNING):
    step, _, _ = ckpts.restore_latest(state.params, state.opt_state, data_iter)
  ckpts.close()
  assert step == STEPS // 2
  assert any(f"checkpoints/{STEPS}" in r.getMessage() and "corrupt" in r.getMessage()
             for r in caplog.records)
