"""Byte-level BPE tokenizer, trained on the corpus with HF `tokenizers`.

Byte-level means every string round-trips exactly and no input is out of vocabulary.
One special token, `<|endoftext|>`, separates documents in the flat token stream.
"""

from collections.abc import Iterable
import hashlib
import json
import os

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from sparse_gpt import storage
from sparse_gpt.errors import CheckpointError

END_OF_TEXT = "<|endoftext|>"
_MIN_VOCAB = 256 + 1  # every byte plus the separator


def train_bpe(texts: Iterable[str], vocab_size: int) -> tokenizers.Tokenizer:
  """Trains a byte-level BPE of exactly-at-most `vocab_size` tokens on `texts`."""
  if vocab_size < _MIN_VOCAB:
    raise ValueError(
        f"vocab_size={vocab_size} is too small for a byte-level BPE: it needs at least "
        f"{_MIN_VOCAB} (256 bytes + {END_OF_TEXT}).")
  tok = tokenizers.Tokenizer(models.BPE())
  # use_regex=True keeps GPT-2's split of words/spaces/punctuation, so a merge never
  # spans a quote and the next word (candidates like `')` stay whole tokens).
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size,
      special_tokens=[END_OF_TEXT],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
      show_progress=False,
  )
  tok.train_from_iterator(texts, trainer=trainer)
  return tok


def fingerprint(tok: tokenizers.Tokenizer) -> str:
  """A hash of the tokenizer itself (its canonical JSON): equal exactly when it encodes alike."""
  return hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]


def save(tok: tokenizers.Tokenizer, path: "str | os.PathLike") -> None:
  storage.write_text(path, tok.to_str(pretty=True))


def load(path: "str | os.PathLike") -> tokenizers.Tokenizer:
  """The tokenizer saved at `path`; a missing, corrupt or foreign file is a CheckpointError."""
  f = storage.path(path)
  if not f.exists():
    raise CheckpointError(
        f"No tokenizer at {f}. Train a model into this workdir first "
        "(python -m launch.train --workdir=...).")
  fix = ("Restore the file from a copy of the run; the run's checkpoints cannot be used "
         "without the tokenizer they were trained with.")
  try:
    text = f.read_text()
    json.loads(text)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{f} is not a tokenizer: it is not valid JSON ({e}). {fix}")
  try:
    tok = tokenizers.Tokenizer.from_str(text)
  except Exception as e:  # the tokenizers library raises a bare Exception for bad JSON
    raise CheckpointError(f"{f} is not a tokenizer ({e}). {fix}")
  if tok.token_to_id(END_OF_TEXT) is None:
    raise CheckpointError(f"{f} is not a sparse_gpt tokenizer: it has no {END_OF_TEXT} "
                          f"token. {fix}")
  return tok


def end_of_text_id(tok: tokenizers.Tokenizer) -> int:
  return tok.token_to_id(END_OF_TEXT)
