"""The notebook API (docs/api.md): a trained run and its circuits, from `import sparse_gpt`.

  sparse_gpt.load_run(workdir, step=None)  -> Run: .config .tokenizer .step .params,
                                              .logits(tokens) .activations(tokens, names)
  sparse_gpt.load_circuit(path)            -> Circuit: a circuit file, .score(run, pairs)

These names are a contract that tools outside the repository build on: extend them, do
not rename them. Scoring is `launch.tasks --circuit`'s: the same scorer, the same pairs.
"""

from collections.abc import Sequence
import dataclasses
import os
import pathlib

from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.run_io import Run, load_run
from sparse_gpt.tasks import evaluate
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import resolve


@dataclasses.dataclass(frozen=True)
class Score:
  """A circuit and its full model on the same sequences (two per minimal pair).

  loss: the task loss, cross-entropy over the two candidates at the prompt's last token,
  averaged over sequences; accuracy: the fraction where the correct candidate wins.
  status: "ok", or what was dropped (too long for n_ctx, not posable by the tokenizer).
  """
  task: str
  n: int
  loss: float
  accuracy: float
  full_model_loss: float
  full_model_accuracy: float
  status: str


def _batch(run: Run, pairs, split: str, n_pairs: int, seed: int) -> resolve.TaskBatch:
  """The encoded sequences of a task name, a pairs file, or (prompt, correct, incorrect)s."""
  tok, n_ctx = run.tokenizer, run.config.model.n_ctx
  if isinstance(pairs, (str, os.PathLike)):
    if pairs in registry.names():
      return resolve.resolve_task(pairs, tok, n_ctx, split, n_pairs, seed)
    if str(pairs).endswith(".jsonl") or pathlib.Path(pairs).is_file():
      return pairs_file.resolve_file(pairs, tok, n_ctx)
  if isinstance(pairs, (str, os.PathLike)) or not isinstance(pairs, Sequence) or not pairs:
    raise UserError(f"pairs={pairs!r} is neither a task ({', '.join(registry.names())}) "
                    "nor a pairs file (.jsonl), nor a list of (prompt, correct, incorrect).")
  sequences = []
  for i, record in enumerate(pairs):
    if (not isinstance(record, Sequence) or len(record) != 3 or
        not all(isinstance(s, str) for s in record)):
      raise UserError(f"pairs[{i}] = {record!r}: each is a (prompt, correct, incorrect) "
                      "tuple of strings.")
    try:
      encoded = resolve.encode_sequence(tok, *record)
    except resolve.Unposable as e:
      raise UserError(f"pairs[{i}]: {e}.") from None
    if len(encoded.ids) > n_ctx:
      raise UserError(f"pairs[{i}]: the prompt is {len(encoded.ids)} tokens; this model "
                      f"reads at most n_ctx={n_ctx}.")
    sequences.append(encoded)
  return resolve.batch_of("pairs", sequences)


class Circuit(circuit_lib.Circuit):
  """A loaded circuit file: its fields (docs/circuit_schema.md), run as a model."""

  def __repr__(self) -> str:
    return (f"Circuit({self.task['name']!r}: {len(self.nodes)} nodes, {len(self.edges)} "
            f"edges, {self.ablation['kind']} ablation; step {self.model['step']} of "
            f"{self.model['workdir']})")

  def load_run(self) -> Run:
    """The checkpoint this circuit was pruned from (its file's model.workdir and step)."""
    return load_run(self.model["workdir"], self.model["step"])

  def score(self, run: Run, pairs: str | Sequence[tuple[str, str, str]],
            split: str = "heldout", n_pairs: int = 128, seed: int = 0,
            calibrated: bool = True) -> Score:
    """The circuit's and the full model's task loss and accuracy on `pairs`.

    `pairs`: a task name (`split`, `n_pairs` and `seed` choose its pairs, as for
    `launch.tasks`), a pairs file path (.jsonl), or a list of (prompt, correct,
    incorrect) records: each record is one sequence, so a minimal pair is two records.
    Unlike a file, a listed record that is too long or not posable is an error.
    `calibrated=False` scores the circuit without its logit calibration. `run` must be
    the checkpoint the circuit was pruned from (`load_run()` gives it).
    """
    batch = _batch(run, pairs, split, n_pairs, seed)
    n_ctx = run.config.model.n_ctx
    circuit_score = evaluate.make_scorer(circuit_lib.logits_fn(self, run, calibrated),
                                         run.params, n_ctx)
    full_score = evaluate.make_scorer(lambda params, tokens: run.forward(params, tokens)[0],
                                      run.params, n_ctx)
    circuit = evaluate.evaluate_batch(circuit_score, batch)
    full = evaluate.evaluate_batch(full_score, batch)
    return Score(batch.name, circuit.n, circuit.loss, circuit.accuracy, full.loss,
                 full.accuracy, circuit.status)


def load_circuit(path: str) -> Circuit:
  """Reads a circuit file (launch.prune writes <workdir>/circuits/<task>.json)."""
  loaded = circuit_lib.load(path)
  return Circuit(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(loaded)})
