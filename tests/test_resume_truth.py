"""The newest loadable checkpoint is the truth: what a rerun, a tool and a diverging run do
when checkpoints go missing, corrupt or bad."""

import gc
import json
import logging
import math
import shutil
import sys

import numpy as np
import pytest

import tiny_setup
from sparse_gpt import checkpoints
from sparse_gpt import health
from sparse_gpt import run_io
from sparse_gpt import train
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import CheckpointError, TrainingDiverged


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  return (tiny_setup.write_corpus(tmp_path_factory.mktemp("corpus")),
          tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
  """A finished 8-step run with checkpoints at 4 and 8; tests work on copies."""
  workdir = tmp_path_factory.mktemp("finished")
  train.train(tiny_setup.tiny_config(*corpus), str(workdir))
  return workdir


def _copy(finished, tmp_path):
  shutil.copytree(finished, tmp_path / "run")
  return tmp_path / "run"


def _losses(workdir):
  return {r["step"]: r["loss"] for r in workdir_lib.read_metrics(str(workdir)) if "loss" in r}


def _corrupt_arrays(step_dir):
  """Overwrites the array data of every item (what a bad disk leaves), metadata intact."""
  files = [p for p in step_dir.rglob("ocdbt.process_0/d/*") if p.is_file()]
  assert files
  for f in files:
    f.write_bytes(b"\x17" * f.stat().st_size)


def test_a_corrupt_final_checkpoint_is_set_aside_and_the_run_finishes_again(
    corpus, finished, tmp_path, capsys):
  run = _copy(finished, tmp_path)
  _corrupt_arrays(run / "checkpoints" / "8")
  summary = train.train(tiny_setup.tiny_config(*corpus), str(run))
  out = capsys.readouterr().out
  assert "already trained" not in out and "Resumed from the checkpoint at step 4" in out
  assert (run / "checkpoints" / "corrupt-8").is_dir()  # kept for a look, no longer step 8
  assert checkpoints.Checkpoints(run / "checkpoints", read_only=True).steps() == [4, 8]
  assert _losses(run) == _losses(finished)  # steps 5-8 again, bit for bit
  assert json.loads((run / "summary.json").read_text())["val_loss"] == summary["val_loss"]
  # Rerunning now finds the new final checkpoint good.
  train.train(tiny_setup.tiny_config(*corpus), str(run))
  assert "already trained to step 8" in capsys.readouterr().out


def test_a_missing_final_checkpoint_resumes_and_the_learning_rate_may_change(
    corpus, finished, tmp_path, capsys):
  run = _copy(finished, tmp_path)
  shutil.rmtree(run / "checkpoints" / "8")  # summary.json stays, and must not be believed
  lower = tiny_setup.tiny_config(*corpus, learning_rate=5e-3, warmup=0.5)
  train.train(lower, str(run))
  assert "already trained" not in capsys.readouterr().out
  records = workdir_lib.read_metrics(str(run))
  assert {"step": 4, "changed": {"train.learning_rate": {"before": 1e-2, "after": 5e-3},
                                 "train.warmup": {"before": 0.01, "after": 0.5}}} in records
  assert sorted(_losses(run)) == list(range(1, 9))
  assert _losses(run)[5] == _losses(finished)[5]  # step 5's loss is of step 4's params
  assert _losses(run)[8] != _losses(finished)[8]  # later steps took the new rate
  assert workdir_lib.load_config(str(run)).train.learning_rate == 5e-3


def test_a_tool_names_every_corrupt_checkpoint_in_one_line_each(finished, tmp_path, caplog,
                                                               capfd, monkeypatch):
  run = _copy(finished, tmp_path)
  for step in (4, 8):
    _corrupt_arrays(run / "checkpoints" / str(step))
  unraisable = []  # the abandoned reads' "exception ignored" dumps
  monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
  with caplog.at_level(logging.WARNING), pytest.raises(CheckpointError) as e:
    run_io.load_run(str(run))
  gc.collect()
  assert not unraisable
  assert "can be read" in str(e.value) and "Train first" not in str(e.value)
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(warnings) == 2 and all("\n" not in w for w in warnings)
  assert "checkpoints/8 is incomplete or corrupt (params/" in warnings[0]  # any array
  assert len(capfd.readouterr().err.splitlines()) <= 4  # no TensorStore dump, no traceback


def test_corrupt_config_or_tokenizer_is_one_user_error(finished, tmp_path):
  run = _copy(finished, tmp_path)
  (run / "tokenizer.json").write_text("{not json")
  with pytest.raises(CheckpointError, match="tokenizer.json is not a tokenizer"):
    run_io.load_run(str(run))
  (run / "config.json").write_text("{\"model\": ")
  with pytest.raises(CheckpointError, match="config.json is not a readable config"):
    workdir_lib.load_config(str(run))
  with pytest.raises(CheckpointError, match="config.json is not a readable config"):
    train.train(tiny_setup.tiny_config(run, run), str(run))


def test_divergence_with_a_finite_loss_stops_before_saving_a_broken_model(corpus, tmp_path):
  # The case: the loss rose to 1.7e10, then sat at ln(vocab) with no gradient.
  cfg = tiny_setup.tiny_config(*corpus, learning_rate=100.0, warmup=0.9, steps=40,
                               checkpoint_every=2, eval_every=100)
  with pytest.raises(TrainingDiverged, match=r"diverged at step \d+: the loss rose"):
    train.train(cfg, str(tmp_path))
  losses = _losses(tmp_path)
  saved = checkpoints.Checkpoints(tmp_path / "checkpoints", read_only=True).steps()
  assert all(losses[s] < 2 * math.log(cfg.data.vocab_size) for s in saved)


def test_the_monitor_flags_explosion_and_a_vanished_gradient_but_not_a_healthy_run():
  monitor = health.Monitor(vocab_size=320)  # an untrained model scores ln 320 = 5.77
  for loss in (5.8, 5.0, 3.0, 4.5, 3.2):
    assert monitor.problem(dict(loss=loss, grad_rms=1e-3)) is None
  assert "rose to 9" in monitor.problem(dict(loss=9.0, grad_rms=1e-3))  # 3.0 + 5.77 < 9
  assert "vanished" in health.Monitor(320).problem(dict(loss=5.77, grad_rms=0.0))
  assert "became nan" in health.Monitor(320).problem(dict(loss=float("nan"), grad_rms=1.0))
  assert health.weights_problem(3.9) is None
  assert "grew to 6.7e+10" in health.weights_problem(6.7e10)
  assert "became inf" in health.weights_problem(float(np.inf))


def test_a_resume_never_replaces_the_runs_tokenizer(corpus, finished, tmp_path):
  run = _copy(finished, tmp_path)
  (run / "summary.json").unlink()
  # Another BPE than the one the corpus cache holds (here: the same, re-serialized).
  other = json.dumps(json.loads((run / "tokenizer.json").read_text()), indent=1)
  (run / "tokenizer.json").write_text(other)
  train.train(tiny_setup.tiny_config(*corpus), str(run))  # resumes with the run's own
  assert (run / "tokenizer.json").read_text() == other
