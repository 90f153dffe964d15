"""Truth on disk for the data side: the workdir's tokenizer is the run's, caches that are
cut short or corrupt are rebuilt, and every bad corpus or tokenizer file is one clear error."""

import json
import pathlib
import types

import jax
import numpy as np
import pytest
import tokenizers
from tokenizers import models as tokenizer_models

import tiny_setup
from sparse_gpt import corpus
from sparse_gpt import model
from sparse_gpt import run_io
from sparse_gpt import tokenized
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.errors import CheckpointError, DataError
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning.nodes import Layout


@pytest.fixture()
def cfg(tmp_path):
  root = tiny_setup.write_corpus(tmp_path / "corpus")
  return tiny_setup.tiny_config(root, tmp_path / "cache")


def _other_tokenizer():
  """A valid tokenizer that is not the corpus's BPE."""
  return tokenizer_lib.train_bpe(["zzz yyy xxx www\n" * 40], 300)


def _bump(f: pathlib.Path, text: str) -> None:
  f.write_text(f.read_text() + text)


# The workdir's tokenizer is the run's.

def test_a_resume_keeps_the_workdir_tokenizer_when_the_corpus_changes(cfg, tmp_path):
  wd = tmp_path / "run"
  first = tokenized.for_run(cfg.data, wd)
  saved = (wd / "tokenizer.json").read_bytes()
  (wd / "checkpoints" / "4").mkdir(parents=True)  # the run has trained with it
  # New contents and a new mtime: the corpus's own BPE is now a different one.
  train_file = next(p for p in corpus.split(cfg.data.corpus, 0.2).train if p.suffix == ".py")
  _bump(train_file, "\nzqzqzq = 'zqzqzq zqzqzq zqzqzq'\n" * 200)
  assert (tokenizer_lib.fingerprint(tokenized.prepare(cfg.data).tokenizer)
          != tokenizer_lib.fingerprint(first.tokenizer))

  again = tokenized.for_run(cfg.data, wd)
  assert (wd / "tokenizer.json").read_bytes() == saved
  assert (tokenizer_lib.fingerprint(again.tokenizer)
          == tokenizer_lib.fingerprint(first.tokenizer)
          == again.stats["tokenizer"])
  expected = tokenized.prepare(cfg.data, tokenizer_lib.load(wd / "tokenizer.json"))
  np.testing.assert_array_equal(again.train_tokens, expected.train_tokens)


def test_the_token_cache_is_keyed_by_the_tokenizer(cfg):
  own, other = tokenized.prepare(cfg.data), tokenized.prepare(cfg.data, _other_tokenizer())
  assert own.directory != other.directory
  assert own.val_tokens.size != other.val_tokens.size
  assert other.stats["tokenizer"] == tokenizer_lib.fingerprint(_other_tokenizer())


def test_checkpoints_without_a_tokenizer_are_refused(cfg, tmp_path):
  (tmp_path / "run" / "checkpoints" / "4").mkdir(parents=True)
  with pytest.raises(CheckpointError, match="no tokenizer.json"):
    tokenized.for_run(cfg.data, tmp_path / "run")
  assert not (tmp_path / "run" / "tokenizer.json").exists()


def _with_a_checkpoint(run):
  (run / "checkpoints" / "4").mkdir(parents=True)
  return run


def test_a_tokenizer_larger_than_the_vocab_is_refused(cfg, tmp_path):
  tokenizer_lib.save(tokenizer_lib.train_bpe(["abc def ghi " * 100 + "x" * 50], 400),
                     tmp_path / "run" / "tokenizer.json")
  _with_a_checkpoint(tmp_path / "run")
  cfg.data.vocab_size = 257
  with pytest.raises(CheckpointError, match="more than data.vocab_size=257"):
    tokenized.for_run(cfg.data, tmp_path / "run")


def test_node_means_read_the_runs_own_tokenization(cfg):
  run_tok = _other_tokenizer()
  run = types.SimpleNamespace(config=cfg, tokenizer=run_tok)
  windows = node_means.validation_windows(run, 2)
  n_ctx = cfg.model.n_ctx
  ours = tokenized.prepare(cfg.data, run_tok).val_tokens
  np.testing.assert_array_equal(windows[0], ours[:n_ctx])
  assert not np.array_equal(windows[0], tokenized.prepare(cfg.data).val_tokens[:n_ctx])


# Caches cut short or corrupt are rebuilt.

def test_a_truncated_token_cache_is_rebuilt_with_a_note(cfg, capsys):
  first = tokenized.prepare(cfg.data)
  train = np.array(first.train_tokens)
  f = first.directory / "train.npy"
  f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
  capsys.readouterr()
  again = tokenized.prepare(cfg.data)
  out = capsys.readouterr().out
  assert "incomplete or corrupt" in out and "rebuilding" in out and str(f.parent) in out
  np.testing.assert_array_equal(again.train_tokens, train)
  assert f.stat().st_size == first.stats["bytes"]["train.npy"]


@pytest.mark.parametrize("damage", ["stats", "header"])
def test_a_corrupt_token_cache_is_rebuilt(cfg, damage):
  first = tokenized.prepare(cfg.data)
  val = np.array(first.val_tokens)
  if damage == "stats":
    (first.directory / "stats.json").write_text("{not json")
  else:  # same size, garbage header
    f = first.directory / "val.npy"
    f.write_bytes(b"\0" * f.stat().st_size)
  np.testing.assert_array_equal(tokenized.prepare(cfg.data).val_tokens, val)


def test_a_killed_tokenization_leaves_no_half_cache(cfg, monkeypatch):
  def killed(*args):
    raise KeyboardInterrupt  # a SIGINT in the middle of encoding

  with monkeypatch.context() as mp:
    mp.setattr(tokenized, "_encode", killed)
    with pytest.raises(KeyboardInterrupt):
      tokenized.prepare(cfg.data)
  root = tokenized.cache_root(cfg.data)
  assert not [p.name for p in root.iterdir() if p.is_dir()]
  assert tokenized.prepare(cfg.data).stats["train_tokens"] > 0


def test_a_complete_cache_another_process_moved_in_first_is_kept(cfg, tmp_path):
  first = tokenized.prepare(cfg.data)
  ours = first.directory.parent / ".build-ours"
  ours.mkdir()
  (ours / "stats.json").write_text("{}")
  tokenized._replace(ours, first.directory)
  assert json.loads((first.directory / "stats.json").read_text()) == first.stats


def test_a_corrupt_cached_bpe_is_trained_again(cfg):
  first = tokenized.prepare(cfg.data)
  (bpe,) = tokenized.cache_root(cfg.data).glob("bpe-*.json")
  bpe.write_text("garbage")
  again = tokenized.prepare(cfg.data)
  assert (tokenizer_lib.fingerprint(again.tokenizer)
          == tokenizer_lib.fingerprint(first.tokenizer))


@pytest.fixture(scope="module")
def means_run(tmp_path_factory):
  c = tiny_setup.tiny_config(pathlib.Path("unused"), pathlib.Path("unused"))
  graphdef, params = model.init(c, jax.random.key(0))
  rng = np.random.default_rng(0)
  windows = rng.integers(0, c.data.vocab_size, (4, c.model.n_ctx)).astype(np.int32)
  run = types.SimpleNamespace(workdir=str(tmp_path_factory.mktemp("means")), step=3,
                              config=c, graphdef=graphdef, params=params, tokenizer=None)
  layout = Layout(c.model)
  return run, layout, windows, np.asarray(node_means.compute(graphdef, params, layout,
                                                             windows))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_width", "missing_key"])
def test_a_corrupt_node_means_cache_is_recomputed(means_run, monkeypatch, capsys, damage):
  run, layout, windows, expected = means_run
  monkeypatch.setattr(node_means, "validation_windows", lambda run, n: windows)
  f = pathlib.Path(node_means.cache_file(run.workdir, run.step, len(windows)))
  node_means.save(run.workdir, run.step, len(windows), layout, expected)
  if damage == "garbage":
    f.write_bytes(b"not an npz")
  elif damage == "truncated":
    f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
  else:
    first = layout.locations[0]
    parts = {loc.name: expected[loc.start:loc.start + loc.size] for loc in layout.locations}
    if damage == "wrong_width":
      parts[first.name] = parts[first.name][:-1]
    else:
      del parts[first.name]
    with f.open("wb") as out:
      np.savez(out, **parts)
  capsys.readouterr()
  got = node_means.load_or_compute(run, layout, len(windows))
  assert str(f) in capsys.readouterr().out
  np.testing.assert_array_equal(np.asarray(got), expected)
  np.testing.assert_array_equal(np.asarray(node_means.load_or_compute(run, layout,
                                                                      len(windows))),
                                expected)
  assert [p.name for p in f.parent.iterdir()] == [f.name]  # written whole, no temporary


# Bad tokenizer files and corpora: one clear error each.

@pytest.mark.parametrize("text,match", [
    ("{half a json", "not valid JSON"),
    ('{"version": "1.0"}', "is not a tokenizer"),
    ('[1, 2, 3]', "is not a tokenizer"),
])
def test_a_corrupt_workdir_tokenizer_is_a_clear_error(cfg, tmp_path, text, match):
  f = _with_a_checkpoint(tmp_path / "run") / "tokenizer.json"
  f.write_text(text)
  with pytest.raises(CheckpointError, match=match) as e:
    tokenized.for_run(cfg.data, tmp_path / "run")
  assert str(f) in str(e.value) and "Restore" in str(e.value)
  assert f.read_text() == text  # refused, never overwritten


def test_a_failed_first_runs_tokenizer_gives_way_to_the_corpus_bpe(cfg, tmp_path):
  # No checkpoint: nothing was trained with the leftover file, so the corrected command
  # (another corpus or vocab_size, say) must not be bound by it.
  f = tmp_path / "run" / "tokenizer.json"
  f.parent.mkdir()
  f.write_text("{half a json")
  corpus = tokenized.for_run(cfg.data, tmp_path / "run")
  assert tokenizer_lib.load(f).to_str() == corpus.tokenizer.to_str()


def test_a_tokenizer_without_the_separator_is_a_clear_error(tmp_path):
  f = tmp_path / "tokenizer.json"
  f.write_text(tokenizers.Tokenizer(tokenizer_models.BPE()).to_str())
  with pytest.raises(CheckpointError, match="no <|endoftext|> token"):
    tokenizer_lib.load(f)


def test_a_missing_tokenizer_is_a_clear_error(tmp_path):
  with pytest.raises(CheckpointError, match="Train a model into this workdir first"):
    tokenizer_lib.load(tmp_path / "tokenizer.json")


def _corpus_cfg(tmp_path, corpus_value):
  c = tiny_setup.tiny_config(pathlib.Path(corpus_value), tmp_path / "cache")
  c.data.corpus = corpus_value
  return c


def test_an_empty_corpus_directory_is_a_clear_error(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="matches no files. Give a directory"):
    tokenized.prepare(_corpus_cfg(tmp_path, str(tmp_path / "empty")).data)


def test_a_glob_that_matches_nothing_is_a_clear_error(tmp_path):
  with pytest.raises(DataError, match="matches no files"):
    tokenized.prepare(_corpus_cfg(tmp_path, str(tmp_path / "src" / "**" / "*.py")).data)


def test_a_glob_expands_the_home_directory(tmp_path, monkeypatch):
  tiny_setup.write_corpus(tmp_path / "corpus")
  monkeypatch.setenv("HOME", str(tmp_path))
  root, files = corpus.find_files("~/corpus/json/*.py")
  assert root == tmp_path / "corpus" / "json" and len(files) > 3


@pytest.mark.parametrize("content", [b"\x00\x01binary\x00", b""])
def test_a_corpus_without_text_is_a_clear_error(tmp_path, content):
  for i in range(40):  # enough files that both splits get some
    (tmp_path / "c" / f"f{i}.bin").parent.mkdir(exist_ok=True)
    (tmp_path / "c" / f"f{i}.bin").write_bytes(content)
  with pytest.raises(DataError, match="hold no UTF-8 text"):
    tokenized.prepare(_corpus_cfg(tmp_path, str(tmp_path / "c")).data)


def test_an_unreadable_corpus_file_is_a_clear_error(tmp_path, monkeypatch):
  f = tmp_path / "a.py"
  f.write_text("x = 1\n")

  def denied(self):
    raise PermissionError(13, "Permission denied")

  monkeypatch.setattr(pathlib.Path, "read_bytes", denied)
  with pytest.raises(DataError, match=f"Cannot read the corpus file {f}: Permission denied"):
    corpus.read_text(f)


def test_loading_a_run_with_a_corrupt_tokenizer_is_a_clear_error(cfg, tmp_path):
  wd = tmp_path / "run"
  wd.mkdir()
  (wd / "config.json").write_text(cfg.to_json())
  (wd / "tokenizer.json").write_bytes(b"\x89PNG\r\n")
  with pytest.raises(CheckpointError, match=f"{wd / 'tokenizer.json'} is not a tokenizer"):
    run_io.load_run(str(wd))


def test_an_unfinished_checkpoint_does_not_count_as_a_trained_run(cfg, tmp_path):
  (tmp_path / "run" / "checkpoints" / "4.orbax-checkpoint-tmp-1").mkdir(parents=True)
  tokenized.for_run(cfg.data, tmp_path / "run")
  assert (tmp_path / "run" / "tokenizer.json").exists()
