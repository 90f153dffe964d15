"""The training loop: resumption is exact, divergence is caught, the summary is real."""

import json
import shutil

import numpy as np
import pytest

import tiny_setup
from sparse_gpt import train
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import CheckpointError, TrainingDiverged


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  return (tiny_setup.write_corpus(tmp_path_factory.mktemp("corpus")),
          tmp_path_factory.mktemp("cache"))


def _losses(workdir):
  return {r["step"]: r["loss"] for r in workdir_lib.read_metrics(str(workdir)) if "loss" in r}


def test_resumed_run_matches_uninterrupted_run(corpus, tmp_path):
  cfg = tiny_setup.tiny_config(*corpus)
  straight = train.train(cfg, str(tmp_path))
  losses = _losses(tmp_path)
  # A crash after step 4's checkpoint: later checkpoints and the summary never happened.
  shutil.rmtree(tmp_path / "checkpoints" / "8")
  (tmp_path / "summary.json").unlink()
  resumed = train.train(cfg, str(tmp_path))
  assert _losses(tmp_path) == losses  # steps 5-8 again, bit for bit, logged once
  assert resumed["val_loss"] == straight["val_loss"]


def test_summary_reports_losses_and_exact_densities(corpus, tmp_path):
  summary = train.train(tiny_setup.tiny_config(*corpus), str(tmp_path))
  assert summary["step"] == 8 and np.isfinite(summary["val_loss"])
  assert summary["densities"]["blocks.0.mlp.up.kernel"] == 0.25
  assert summary["densities"]["blocks.0.attn_norm.gain"] == 1.0
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk["val_loss"] == summary["val_loss"]


def test_rerunning_a_finished_run_returns_its_summary_untouched(corpus, tmp_path):
  cfg = tiny_setup.tiny_config(*corpus)
  first = train.train(cfg, str(tmp_path))
  written = (tmp_path / "summary.json").read_text()
  assert train.train(cfg, str(tmp_path)) == first
  assert (tmp_path / "summary.json").read_text() == written


def test_a_relative_workdir_trains_and_checkpoints(corpus, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # `make demo` passes runs/demo
  train.train(tiny_setup.tiny_config(*corpus, steps=4), "runs/demo")
  assert (tmp_path / "runs/demo/checkpoints/4").is_dir()


def test_divergence_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path):
  cfg = tiny_setup.tiny_config(*corpus, grad_rms_clip=0.0)
  cfg.sparsity.enabled = False
  train.train(cfg, str(tmp_path))
  # Healthy to step 4 (its later steps undone), then a rate whose first update makes
  # weights of ~1e29: that checkpoint is not good, though the loss logged before it is.
  shutil.rmtree(tmp_path / "checkpoints" / "8")
  (tmp_path / "summary.json").unlink()
  cfg.train.update(learning_rate=1e30, checkpoint_every=1)
  with pytest.raises(TrainingDiverged, match="last good checkpoint"):
    train.train(cfg, str(tmp_path))
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  losses = _losses(tmp_path)
  assert steps and all(np.isfinite(losses[s]) for s in steps)


def test_resuming_with_a_different_model_is_refused(corpus, tmp_path):
  train.train(tiny_setup.tiny_config(*corpus, steps=2), str(tmp_path))
  other = tiny_setup.tiny_config(*corpus, steps=2)
  other.model.d_model = 48
  with pytest.raises(CheckpointError, match="model.d_model: 32 -> 48"):
    train.train(other, str(tmp_path))


def test_resuming_on_another_corpus_is_refused(corpus, tmp_path):
  train.train(tiny_setup.tiny_config(*corpus, steps=2), str(tmp_path))
  other = tiny_setup.tiny_config(*corpus, steps=2)
  other.data.corpus = str(corpus[0] / "json")
  with pytest.raises(CheckpointError, match="data.corpus"):
    train.train(other, str(tmp_path))
