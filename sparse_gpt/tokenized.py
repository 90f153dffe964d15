"""The tokenized corpus: a BPE and two flat token arrays, cached outside the workdir.

A run's tokenizer is the one in its workdir (`tokenizer.json`): once a run has one, its
corpus is always tokenized with it, never with a BPE trained again. A new run trains a
BPE on the train files. Both are cached: the BPE by (corpus files, vocab size, split),
the token arrays by that and a hash of the tokenizer itself, so the second run on the
same corpus starts training at once and a tokenizer change can never reuse stale tokens.
Documents are joined with `<|endoftext|>`.
"""

import dataclasses
import functools
import hashlib
import io
import json
import os
import pathlib
import shutil
import tempfile
import time

import ml_collections
import numpy as np
import tokenizers

from sparse_gpt import corpus
from sparse_gpt import progress
from sparse_gpt import storage
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.errors import CheckpointError, DataError

_FORMAT = 2  # bump when the cache layout or tokenizer recipe changes
_ARRAYS = ("train.npy", "val.npy")


@dataclasses.dataclass(frozen=True)
class Tokenized:
  tokenizer: tokenizers.Tokenizer
  train_tokens: np.ndarray  # uint16, flat
  val_tokens: np.ndarray
  stats: dict
  directory: pathlib.Path  # the token arrays' cache


@dataclasses.dataclass(frozen=True)
class _Texts:
  train: list[str]
  val: list[str]
  skipped: int


def _corpus_key(data_cfg, files: corpus.CorpusFiles) -> str:
  h = hashlib.sha256(f"{_FORMAT}|{data_cfg.vocab_size}|{data_cfg.val_fraction}".encode())
  for p in files.train + files.val:
    st = p.stat()
    h.update(f"{p.relative_to(files.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
  return h.hexdigest()[:16]


def cache_root(data_cfg) -> pathlib.Path:
  return pathlib.Path(data_cfg.cache_dir or "~/.cache/sparse_gpt").expanduser().absolute()


def _read(data_cfg, files: corpus.CorpusFiles) -> _Texts:
  train, val = ([corpus.read_text(p) for p in paths] for paths in (files.train, files.val))
  texts = _Texts([t for t in train if t is not None], [t for t in val if t is not None],
                 sum(t is None for t in train + val))
  for split, kept in (("train", texts.train), ("validation", texts.val)):
    if not any(kept):
      raise DataError(f"data.corpus={data_cfg.corpus!r}: the {split} files hold no "
                      "UTF-8 text (all are empty, binary or in another encoding). Point "
                      "data.corpus at text files.")
  return texts


def _encode(tok: tokenizers.Tokenizer, texts: list[str]) -> np.ndarray:
  eot = tokenizer_lib.end_of_text_id(tok)
  ids = []
  for enc in tok.encode_batch(texts, add_special_tokens=False):
    ids.extend(enc.ids)
    ids.append(eot)
  return np.asarray(ids, dtype=np.uint16)


def _bpe(data_cfg, key: str, texts) -> tokenizers.Tokenizer:
  """The BPE trained on the corpus's train files, from the cache or trained and cached."""
  f = cache_root(data_cfg) / f"bpe-{key}.json"
  if f.exists():
    try:
      return tokenizer_lib.load(f)
    except CheckpointError:
      progress.say(f"The cached BPE {f} is corrupt: training it again.")
  train = texts().train
  progress.say(f"Training a {data_cfg.vocab_size}-token BPE on {len(train)} files "
               f"({sum(map(len, train)) / 1e6:.1f} MB); cached for later runs...")
  tok = tokenizer_lib.train_bpe(train, data_cfg.vocab_size)
  tokenizer_lib.save(tok, f)
  return tok


def _save_array(f: pathlib.Path, tokens: np.ndarray) -> int:
  buffer = io.BytesIO()
  np.save(buffer, tokens)
  storage.write_bytes(f, buffer.getvalue())
  return len(buffer.getvalue())


def _build(data_cfg, files, tok: tokenizers.Tokenizer, texts: _Texts,
           out: pathlib.Path) -> None:
  start = time.time()
  train_tokens, val_tokens = _encode(tok, texts.train), _encode(tok, texts.val)
  stats = dict(
      corpus=data_cfg.corpus, root=str(files.root), vocab_size=tok.get_vocab_size(),
      tokenizer=tokenizer_lib.fingerprint(tok),
      train_files=len(texts.train), val_files=len(texts.val), skipped_files=texts.skipped,
      train_tokens=int(train_tokens.size), val_tokens=int(val_tokens.size),
      build_seconds=round(time.time() - start, 1))
  # The sizes tell a complete cache from one cut short (a full disk, a killed copy).
  stats["bytes"] = {name: _save_array(out / name, tokens)
                    for name, tokens in zip(_ARRAYS, (train_tokens, val_tokens))}
  storage.write_text(out / "stats.json", json.dumps(stats, indent=2))
  progress.say(f"Tokenized corpus: {stats['train_tokens']:,} train and "
               f"{stats['val_tokens']:,} validation tokens ({stats['skipped_files']} "
               f"binary or non-UTF-8 files skipped) in {stats['build_seconds']} s.")


class _Broken(Exception):
  """A cache directory that is there but incomplete or corrupt."""


def _open(directory: pathlib.Path):
  """(stats, train, val) of a complete cache, None for none; raises _Broken for a bad one."""
  if not directory.exists():
    return None
  try:
    stats = json.loads((directory / "stats.json").read_text())
    for name in _ARRAYS:
      size, expected = (directory / name).stat().st_size, stats["bytes"][name]
      if size != expected:
        raise ValueError(f"{name} holds {size:,} of its {expected:,} bytes")
    return stats, *(np.load(directory / name, mmap_mode="r") for name in _ARRAYS)
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise _Broken(str(e)) from None


def _replace(built: pathlib.Path, directory: pathlib.Path) -> None:
  """Moves a finished build into place, unless another process's complete one is there."""
  try:
    built.rename(directory)
    return
  except OSError:  # a directory is there: the broken cache, or another process's new one
    pass
  try:
    if _open(directory) is not None:
      return
  except _Broken:
    stale = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".stale-"))
    directory.rename(stale / directory.name)
    shutil.rmtree(stale, ignore_errors=True)
  built.rename(directory)


def prepare(data_cfg: ml_collections.ConfigDict,
            tok: tokenizers.Tokenizer | None = None) -> Tokenized:
  """The corpus of `data_cfg` tokenized with `tok` (by default the corpus's own BPE)."""
  files = corpus.split(data_cfg.corpus, data_cfg.val_fraction)
  key = _corpus_key(data_cfg, files)
  texts = functools.cache(lambda: _read(data_cfg, files))  # read once, and only if needed
  if tok is None:
    tok = _bpe(data_cfg, key, texts)
  name = hashlib.sha256(f"{key}|{tokenizer_lib.fingerprint(tok)}".encode()).hexdigest()
  directory = cache_root(data_cfg) / f"corpus-{name[:16]}"
  try:
    opened = _open(directory)
  except _Broken as e:
    progress.say(f"The token cache {directory} is incomplete or corrupt ({e}): "
                 "rebuilding it.")
    opened = None
  if opened is None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the cache and rename, so an interrupted build leaves no half cache.
    tmp = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".build-"))
    try:
      _build(data_cfg, files, tok, texts(), tmp)
      _replace(tmp, directory)
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
    opened = _open(directory)
  stats, train_tokens, val_tokens = opened
  return Tokenized(tok, train_tokens, val_tokens, stats, directory)


def _has_checkpoints(wd) -> bool:
  # A finished orbax checkpoint is a directory named by its step; unfinished ones are not.
  ckpts = wd / "checkpoints"
  return ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir())


def for_run(data_cfg: ml_collections.ConfigDict, workdir: "str | os.PathLike",
            write: bool = True) -> Tokenized:
  """The run's corpus, tokenized with the run's own tokenizer (<workdir>/tokenizer.json).

  A new run's BPE is written there (by the process that `write`s) and from then on is
  the run's: a resume never trains another or overwrites it, whatever the corpus files'
  dates say, and `corpus.json` records the tokenization.
  """
  wd = storage.path(workdir)
  f = wd / "tokenizer.json"
  tok = None
  if f.exists() and _has_checkpoints(wd):  # without one, nothing was trained with it
    tok = tokenizer_lib.load(f)
    if tok.get_vocab_size() > data_cfg.vocab_size:
      raise CheckpointError(
          f"{f} has {tok.get_vocab_size()} tokens, more than data.vocab_size="
          f"{data_cfg.vocab_size}: it is not this run's tokenizer. Restore the run's "
          "tokenizer.json, or use a new --workdir.")
  elif _has_checkpoints(wd):  # and no tokenizer.json
    raise CheckpointError(
        f"{wd} holds checkpoints but no tokenizer.json, so the tokenizer they were "
        "trained with is lost. Restore tokenizer.json from a copy of the run, or use a "
        "new --workdir.")
  tokenized = prepare(data_cfg, tok)
  if write:
    if tok is None:
      tokenizer_lib.save(tokenized.tokenizer, f)  # a new run's, or a failed first run's
    storage.write_text(wd / "corpus.json", json.dumps(tokenized.stats, indent=2))
  return tokenized
