"""Encoding task prompts for a tokenizer, with the checks that keep the measure honest.

A candidate must be one token that starts exactly where its prompt ends:
encode(prompt + candidate) == encode(prompt) + [candidate]. A candidate that fails is
replaced by the first of the task's declared alternative forms that passes; a pair with
no passing form is dropped and counted, and a task with no pair left is not posable.
"""

from collections.abc import Iterable, Mapping, Sequence
import collections
import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import tokenizers

from sparse_gpt.tasks import pairs as pairs_lib
from sparse_gpt.tasks import registry
from sparse_gpt.tasks.errors import TaskNotPosable

# resolve_task draws at most this many pairs per pair it returns.
_MOST_DRAWN_PER_PAIR = 8


# A batch is padded to a multiple of this many tokens, so that batches of similar length
# share one compiled program.
_LENGTH_MULTIPLE = 16
_ARRAYS = ("tokens_BxL", "last_B", "correct_B", "incorrect_B")


# Only the arrays are pytree leaves: how a batch was made (its name and what was dropped)
# must not key a compiled program, so tasks of one shape share it. Inside jit, or after a
# jax.tree.map, those fields read as their defaults.
@functools.partial(
    jax.tree_util.register_dataclass, data_fields=list(_ARRAYS), meta_fields=[],
    drop_fields=["name", "n_dropped_length", "n_dropped_tokens", "notes"])
@dataclasses.dataclass(frozen=True)
class TaskBatch:
  """Encoded sequences; a pair gives two: (prompt_a; a over b), (prompt_b; b over a).

  tokens_BxL: int32 prompts, right-padded with 0; last_B: index of each prompt's last
  token; correct_B, incorrect_B: candidate token ids. Rows 2p and 2p + 1 are pair p.
  n_dropped_length counts pairs (or records) longer than n_ctx, n_dropped_tokens pairs
  the tokenizer cannot pose; notes lists the alternative candidate forms used, e.g.
  "' enumerate' as ' en'".
  """
  tokens_BxL: np.ndarray | jax.Array
  last_B: np.ndarray | jax.Array
  correct_B: np.ndarray | jax.Array
  incorrect_B: np.ndarray | jax.Array
  name: str = ""
  n_dropped_length: int = 0
  n_dropped_tokens: int = 0
  notes: tuple[str, ...] = ()

  def __len__(self) -> int:
    return self.tokens_BxL.shape[0]

  def rows(self, rows_B) -> "TaskBatch":
    """The batch of the given rows (numpy or jax indices, traced too)."""
    return dataclasses.replace(self, **{f: getattr(self, f)[rows_B] for f in _ARRAYS})


def pair_rows(pair_ids) -> np.ndarray | jax.Array:
  """Row indices of the given pairs, each pair's two rows together."""
  xp = jnp if isinstance(pair_ids, jax.Array) else np
  return xp.stack([2 * pair_ids, 2 * pair_ids + 1], axis=-1).reshape(-1)


def padded(batch: TaskBatch, n_ctx: int) -> TaskBatch:
  """`batch` as a model runs it: its length is the longest prompt's, rounded up to a
  multiple of _LENGTH_MULTIPLE tokens and at most n_ctx."""
  length = int(np.max(batch.last_B)) + 1
  length = min(-(-length // _LENGTH_MULTIPLE) * _LENGTH_MULTIPLE, n_ctx)
  tokens_BxL = np.zeros((len(batch), length), np.int32)
  width = min(length, batch.tokens_BxL.shape[1])
  tokens_BxL[:, :width] = np.asarray(batch.tokens_BxL)[:, :width]
  return dataclasses.replace(batch, tokens_BxL=tokens_BxL)


@dataclasses.dataclass(frozen=True)
class Encoded:
  """One prompt's token ids and its two candidates' ids."""
  ids: list[int]
  correct: int
  incorrect: int
  forms: tuple[tuple[str, str], ...]  # (candidate, the form used) for both candidates


class Unposable(Exception):
  """One prompt and its candidates cannot be encoded cleanly; the message says why."""


def pieces(tok: tokenizers.Tokenizer, ids: Iterable[int]) -> list[str]:
  """Each token's text, to show how something tokenizes."""
  return [tok.decode([i]) for i in ids]


def _candidate(tok: tokenizers.Tokenizer, prompt: str, prompt_ids: list[int],
               candidate: str,
               alternatives: Mapping[str, Sequence[str]]) -> tuple[int, str]:
  """The id of the first form of `candidate` that is one token right after `prompt`."""
  problems = []
  for form in (candidate, *alternatives.get(candidate, ())):
    ids = tok.encode(form).ids
    if len(ids) != 1:
      problems.append(f"candidate {form!r} is not one token: it tokenizes as "
                      f"{pieces(tok, ids)}")
      continue
    joined = tok.encode(prompt + form).ids
    if joined != prompt_ids + ids:
      tail = len(prompt_ids) - 1
      problems.append(f"candidate {form!r} does not start a new token after the prompt: "
                      f"prompt + candidate ends in {pieces(tok, joined[tail:])}, not "
                      f"{pieces(tok, prompt_ids[tail:] + ids)}")
      continue
    return ids[0], form
  raise Unposable("; ".join(problems))


def encode_sequence(tok: tokenizers.Tokenizer, prompt: str, correct: str, incorrect: str,
                    alternatives: Mapping[str, Sequence[str]] | None = None) -> Encoded:
  """Encodes one prompt with its candidates, or raises `Unposable`."""
  alternatives = alternatives or {}
  if not prompt:
    raise Unposable("the prompt is empty")
  ids = tok.encode(prompt).ids
  correct_id, correct_form = _candidate(tok, prompt, ids, correct, alternatives)
  incorrect_id, incorrect_form = _candidate(tok, prompt, ids, incorrect, alternatives)
  if correct_id == incorrect_id:
    raise Unposable(f"candidates {correct!r} and {incorrect!r} are the same token "
                    f"{pieces(tok, [correct_id])[0]!r}")
  return Encoded(ids, correct_id, incorrect_id,
                 ((correct, correct_form), (incorrect, incorrect_form)))


def batch_of(name: str, sequences: Sequence[Encoded], n_dropped_length: int = 0,
             n_dropped_tokens: int = 0) -> TaskBatch:
  """Pads encoded sequences into a `TaskBatch`."""
  length = max(len(s.ids) for s in sequences)
  tokens = np.zeros((len(sequences), length), np.int32)
  for row, s in enumerate(sequences):
    tokens[row, :len(s.ids)] = s.ids
  notes = sorted({f"{c!r} as {form!r}" for s in sequences for c, form in s.forms
                  if c != form})
  return TaskBatch(
      tokens_BxL=tokens,
      last_B=np.array([len(s.ids) - 1 for s in sequences], np.int32),
      correct_B=np.array([s.correct for s in sequences], np.int32),
      incorrect_B=np.array([s.incorrect for s in sequences], np.int32),
      name=name, n_dropped_length=n_dropped_length, n_dropped_tokens=n_dropped_tokens,
      notes=tuple(notes))


def resolve_pairs(pairs: Iterable[registry.Pair], tok: tokenizers.Tokenizer, n_ctx: int,
                  name: str, alternatives: Mapping[str, Sequence[str]] | None = None,
                  n_pairs: int | None = None) -> TaskBatch:
  """Encodes pairs until `n_pairs` are posed (all if None); skipped ones are counted.

  Raises `TaskNotPosable` when no pair can be posed.
  """
  sequences, problems, too_long, drawn = [], collections.Counter(), 0, 0
  for pair in pairs:
    if n_pairs is not None and len(sequences) == 2 * n_pairs:
      break
    drawn += 1
    try:
      both = (encode_sequence(tok, pair.prompt_a, pair.candidate_a, pair.candidate_b,
                              alternatives),
              encode_sequence(tok, pair.prompt_b, pair.candidate_b, pair.candidate_a,
                              alternatives))
    except Unposable as e:
      problems[str(e)] += 1
      continue
    if max(len(s.ids) for s in both) > n_ctx:
      too_long += 1
    else:
      sequences.extend(both)
  if not sequences:
    if problems:
      reason, count = problems.most_common(1)[0]
      raise TaskNotPosable(f"Task {name!r} cannot be posed with this tokenizer: {reason} "
                           f"({count} of {drawn} pairs).")
    raise TaskNotPosable(f"Task {name!r}: all {drawn} pairs are longer than "
                         f"n_ctx={n_ctx} tokens.")
  return batch_of(name, sequences, too_long, sum(problems.values()))


def resolve_task(name: str, tok: tokenizers.Tokenizer, n_ctx: int,
                 split: str = "heldout", n_pairs: int = 128, seed: int = 0) -> TaskBatch:
  """Encodes the first `n_pairs` pairs of the split that this tokenizer can pose.

  Pairs it cannot pose (say a candidate name it splits) are skipped and counted, up to
  `_MOST_DRAWN_PER_PAIR * n_pairs` pairs drawn.
  """
  task = registry.get(name)
  pairs = itertools.islice(pairs_lib.iter_pairs(name, split, seed),
                           _MOST_DRAWN_PER_PAIR * n_pairs)
  return resolve_pairs(pairs, tok, n_ctx, name, task.alternatives, n_pairs)


# The validation stream's seed is pair_seed + this: outside the seeds a user can give
# ([0, 2**32)), so it is never another run's training stream.
_VALIDATION_SEED_OFFSET = 2**32


def resolve_validation(name: str, tok: tokenizers.Tokenizer, n_ctx: int, n_pairs: int,
                       seed: int, train_pairs: int) -> TaskBatch:
  """Encodes `n_pairs` validation pairs: pairs of the train split (so no prompt text is
  in the held-out split) from another stream (seed + 2**32), skipping any pair that
  shares a prompt with the first `_MOST_DRAWN_PER_PAIR * train_pairs` pairs of the
  training stream, which hold every pair resolve_task(..., "train", train_pairs, seed)
  can return."""
  task = registry.get(name)
  training = {p for pair in itertools.islice(pairs_lib.iter_pairs(name, "train", seed),
                                             _MOST_DRAWN_PER_PAIR * train_pairs)
              for p in (pair.prompt_a, pair.prompt_b)}
  fresh = (pair for pair in pairs_lib.iter_pairs(name, "train", seed + _VALIDATION_SEED_OFFSET)
           if pair.prompt_a not in training and pair.prompt_b not in training)
  return resolve_pairs(itertools.islice(fresh, _MOST_DRAWN_PER_PAIR * n_pairs), tok, n_ctx,
                       name, task.alternatives, n_pairs)
