"""A pruned circuit of the planted model (test_prune_planted.py), with its viewer pages."""

import grain
import numpy as np
import pytest

import test_prune_planted as planted_lib
from launch import prune_cli
from sparse_gpt import checkpoints
from sparse_gpt import run_io
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning import pipeline
from sparse_gpt.view import site

# pylint: disable=protected-access


def planted_windows(cfg, n_windows):
  """The planted run's validation text: the task's letters (it has no corpus)."""
  return planted_lib._windows(cfg, n_windows)


def planted_run(workdir):
  """(run, pairs file): the planted model saved at step 7, as test_prune_planted does."""
  cfg = planted_lib._config()
  tok = tokenizer_lib.train_bpe(["abcdefghqXY"], 257)
  _, params = planted_lib._planted_params(cfg, tok)
  (workdir / "config.json").write_text(cfg.to_json())
  tokenizer_lib.save(tok, workdir / "tokenizer.json")
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints")
  data_iter = iter(grain.MapDataset.source([np.zeros(2, np.int32)]).to_iter_dataset())
  ckpts.save(7, params, {"count": np.zeros((), np.int32)}, data_iter)
  ckpts.wait()
  return run_io.load_run(str(workdir)), planted_lib._pairs_file(workdir / "planted.jsonl",
                                                                32, seed=0)


def pruned_and_viewed(workdir):
  """(run, circuit, pairs file, site.write's result) for the planted model in `workdir`."""
  run, pairs = planted_run(workdir)
  cfg = planted_lib._prune_config(null_steps=0)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(node_means, "validation_windows", planted_windows)
    prune_cli.main(run.workdir, pairs=str(pairs), cfg=cfg, say=lambda _: None)
    written = site.write(run.workdir, say=lambda _: None)
  path = pipeline.circuit_path(run.workdir, "planted")
  return run, circuit_lib.load(path), pairs, written
