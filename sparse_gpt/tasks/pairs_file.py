"""A user's own task: a JSONL file of {"prompt", "correct", "incorrect"} records.

Each record is one sequence; a minimal pair is two records, 2p and 2p + 1. Records pass
the same tokenizer checks as built-in tasks, but a failing record is an error naming its
line, not a silent drop. A record longer than n_ctx is dropped: alone when records are
scored as sequences, with its partner when they are read as pairs.
"""

import dataclasses
import json
import pathlib

import tokenizers

from sparse_gpt.tasks import resolve
from sparse_gpt.tasks.errors import TaskError, TaskNotPosable

_KEYS = ("prompt", "correct", "incorrect")


@dataclasses.dataclass(frozen=True)
class Record:
  prompt: str
  correct: str
  incorrect: str
  line: int


def _record(obj: object, where: str, line: int) -> Record:
  if not isinstance(obj, dict):
    raise TaskError(f"{where}: expected a JSON object with keys {', '.join(_KEYS)}, "
                    f"got {type(obj).__name__}.")
  missing = [k for k in _KEYS if k not in obj]
  unknown = sorted(set(obj) - set(_KEYS))
  if missing or unknown:
    raise TaskError(f"{where}: missing keys {missing}, unknown keys {unknown}; a record "
                    f"has exactly the keys {', '.join(_KEYS)}.")
  for key in _KEYS:
    if not isinstance(obj[key], str):
      raise TaskError(f"{where}: {key!r} must be a string, got "
                      f"{type(obj[key]).__name__} {obj[key]!r}.")
  return Record(obj["prompt"], obj["correct"], obj["incorrect"], line)


def read_records(path: str | pathlib.Path) -> list[Record]:
  path = pathlib.Path(path)
  if not path.is_file():
    raise TaskError(f"Pairs file {path} does not exist.")
  try:
    lines = path.read_text(encoding="utf-8").splitlines()
  except UnicodeDecodeError as e:
    raise TaskError(f"Pairs file {path} is not UTF-8 text ({e.reason}).") from None
  records = []
  for line, text in enumerate(lines, start=1):
    if not text.strip():
      continue
    try:
      obj = json.loads(text)
    except json.JSONDecodeError as e:
      raise TaskError(
          f"{path}:{line}: not valid JSON ({e.msg}, column {e.colno}).") from None
    records.append(_record(obj, f"{path}:{line}", line))
  if not records:
    raise TaskError(f"Pairs file {path} has no records; write one JSON object per line "
                    f"with keys {', '.join(_KEYS)}.")
  return records


def _encoded(path: str | pathlib.Path,
             tok: tokenizers.Tokenizer) -> list[tuple[Record, resolve.Encoded]]:
  """Every record with its encoding; a record the tokenizer cannot pose is an error."""
  encoded = []
  for record in read_records(path):
    try:
      encoded.append((record, resolve.encode_sequence(tok, record.prompt, record.correct,
                                                       record.incorrect)))
    except resolve.Unposable as e:
      raise TaskError(f"{path}:{record.line}: {e}.") from None
  return encoded


def resolve_file(path: str | pathlib.Path, tok: tokenizers.Tokenizer,
                 n_ctx: int) -> resolve.TaskBatch:
  """Encodes a pairs file, one sequence per record; records longer than n_ctx are dropped
  and counted."""
  encoded = [e for _, e in _encoded(path, tok)]
  sequences = [e for e in encoded if len(e.ids) <= n_ctx]
  if not sequences:
    raise TaskNotPosable(f"{path}: all {len(encoded)} records are longer than "
                         f"n_ctx={n_ctx} tokens.")
  return resolve.batch_of(pathlib.Path(path).stem, sequences,
                          n_dropped_length=len(encoded) - len(sequences))


@dataclasses.dataclass(frozen=True)
class DroppedPair:
  """A minimal pair left out because one of its records is longer than n_ctx."""
  pair: int  # p: records 2p and 2p + 1 of the file
  lines: tuple[int, int]  # the records' lines in the file
  tokens: tuple[int, int]  # the records' prompt lengths


def resolve_file_pairs(path: str | pathlib.Path, tok: tokenizers.Tokenizer, n_ctx: int
                       ) -> tuple[resolve.TaskBatch, tuple[DroppedPair, ...]]:
  """Encodes a pairs file as minimal pairs (records 2p and 2p + 1 are pair p).

  A pair with a record longer than n_ctx is dropped whole, so that every later pair
  keeps its partner; the dropped pairs come back alongside the batch.
  """
  encoded = _encoded(path, tok)
  if len(encoded) % 2:
    raise TaskError(f"{path}: minimal pairs need an even number of records (records 2p "
                    f"and 2p + 1 are pair p); it has {len(encoded)}.")
  sequences, dropped = [], []
  for p in range(len(encoded) // 2):
    (record_a, a), (record_b, b) = encoded[2 * p], encoded[2 * p + 1]
    if max(len(a.ids), len(b.ids)) > n_ctx:
      dropped.append(DroppedPair(p, (record_a.line, record_b.line), (len(a.ids), len(b.ids))))
    else:
      sequences += [a, b]
  if not sequences:
    raise TaskNotPosable(f"{path}: every one of its {len(dropped)} pairs has a record "
                         f"longer than n_ctx={n_ctx} tokens.")
  batch = resolve.batch_of(pathlib.Path(path).stem, sequences,
                           n_dropped_length=len(dropped))
  return batch, tuple(dropped)
