"""The workdir's rules: one trainer at a time, files on any epath, bad workdirs refused in
one line. None of these tests trains a model."""

import contextlib
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys

from etils.epath import testing as epath_testing
import pytest

import tiny_setup
from sparse_gpt import train
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import CheckpointError, DataError

REPO = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _gs_bucket_in(root: pathlib.Path):
  """epath with gs://x/... served from root/x/...: a remote filesystem, on local disk."""
  local = lambda p: os.fspath(root / os.fspath(p)[len("gs://"):]) if os.fspath(
      p).startswith("gs://") else p
  one = lambda fn, p, *a, **k: fn(local(p), *a, **k)
  two = lambda fn, src, dst, *a, **k: fn(local(src), local(dst), *a, **k)
  with epath_testing.mock_epath(open=one, exists=one, isdir=one, mkdir=one, makedirs=one,
                                stat=one, remove=one, rename=two, replace=two):
    yield


def test_metrics_go_to_a_remote_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # a path mangled into gs:/... would land here
  with _gs_bucket_in(tmp_path / "bucket"):
    log = workdir_lib.MetricsLog("gs://b/run", resume_step=0)
    log.write(dict(step=1, loss=2.5))
    log.write(dict(step=2, loss=2.25))
    assert workdir_lib.read_metrics("gs://b/run") == [dict(step=1, loss=2.5),
                                                      dict(step=2, loss=2.25)]
  assert (tmp_path / "bucket/b/run/metrics.jsonl").exists()
  assert not (tmp_path / "gs:").exists()


def test_a_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
  f = tmp_path / "metrics.jsonl"
  f.write_text('{"step": 1, "loss": 5.0}\n{"step": 2, "loss": 4.5}\n{"step": 3, "lo')
  with caplog.at_level(logging.WARNING):
    log = workdir_lib.MetricsLog(str(tmp_path), resume_step=2)
  assert any("cut short" in r.getMessage() for r in caplog.records)
  log.write(dict(step=3, loss=4.0))
  assert [r["step"] for r in workdir_lib.read_metrics(str(tmp_path))] == [1, 2, 3]


def test_a_bad_line_inside_the_metrics_is_a_user_error(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"ste\n{"step": 2}\n')
  with pytest.raises(CheckpointError, match="line 2, is not a metrics record"):
    workdir_lib.read_metrics(str(tmp_path))


def test_a_second_trainer_is_refused(tmp_path):
  cfg = tiny_setup.tiny_config(tmp_path / "corpus", tmp_path / "cache")
  with workdir_lib.lock(str(tmp_path)):
    with pytest.raises(CheckpointError, match=rf"is being trained by pid {os.getpid()} on "):
      train.train(cfg, str(tmp_path))


def test_a_killed_trainer_leaves_no_lock_behind(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\nfrom sparse_gpt import workdir\n"
       "with workdir.lock(sys.argv[1]):\n  print('held', flush=True)\n  time.sleep(600)",
       str(tmp_path)], env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
      text=True)
  try:
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(CheckpointError, match=rf"pid {holder.pid} on "):
      with workdir_lib.lock(str(tmp_path)):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with workdir_lib.lock(str(tmp_path)):  # the kernel released it
    pass


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
  (tmp_path / "run").write_text("")
  cfg = tiny_setup.tiny_config(tmp_path / "corpus", tmp_path / "cache")
  with pytest.raises(CheckpointError, match="is a file, not a directory"):
    train.train(cfg, str(tmp_path / "run"))


def test_a_workdir_that_cannot_be_written_is_refused(tmp_path):
  if os.geteuid() == 0:  # root writes through permissions; sysfs refuses even root
    workdir = "/sys/fs/sparse_gpt_run"
  else:
    (tmp_path / "ro").mkdir(mode=0o500)
    workdir = str(tmp_path / "ro" / "run")
  cfg = tiny_setup.tiny_config(tmp_path / "corpus", tmp_path / "cache")
  with pytest.raises(CheckpointError, match="Cannot create the workdir"):
    train.train(cfg, workdir)


def test_a_failed_first_run_does_not_refuse_the_corrected_command(tmp_path):
  (tmp_path / "empty").mkdir()
  cfg = tiny_setup.tiny_config(tmp_path / "empty", tmp_path / "cache")
  with pytest.raises(DataError):
    train.train(cfg, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()
  # And a config left by some earlier failure refuses nothing while no checkpoint exists.
  workdir_lib.save_config(str(tmp_path / "run"), cfg)
  other = tiny_setup.tiny_config(tmp_path / "corpus", tmp_path / "cache")
  other.model.d_model = 48
  assert workdir_lib.check_config(str(tmp_path / "run"), other, has_checkpoints=False) == {}
  with pytest.raises(CheckpointError, match="model.d_model: 32 -> 48"):
    workdir_lib.check_config(str(tmp_path / "run"), other, has_checkpoints=True)


def test_a_run_keeps_its_identity_when_later_keys_arrive(tmp_path):
  """A config saved before model.activation existed loads with it at "gelu"; its circuits'
  config_hash must still name the run, and a run that changes the key must not."""
  from sparse_gpt.pruning import circuit  # pylint: disable=g-import-not-at-top
  cfg = tiny_setup.model_config()
  old = cfg.to_dict()
  del old["model"]["activation"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  loaded = workdir_lib.load_config(str(tmp_path))
  assert loaded.model.activation == "gelu"
  assert "activation" not in workdir_lib.identity(loaded)["model"]
  assert circuit.config_hash(loaded) == circuit.config_hash(cfg)
  relu = cfg.copy_and_resolve_references()
  relu.model.activation = "relu"
  assert circuit.config_hash(relu) != circuit.config_hash(cfg)
