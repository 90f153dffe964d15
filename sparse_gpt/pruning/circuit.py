"""Circuit files (docs/circuit_schema.md): writing, reading back, and running them.

A circuit names its model (workdir, checkpoint step, config hash), its task, its
ablation, its kept nodes and edges, an optional logit calibration, and its metrics.
`logits_fn` turns a loaded circuit back into a model: kept nodes compute, every other
node takes its ablation value, so scoring it on the training pairs reproduces the
recorded loss.
"""

import dataclasses
import hashlib
import json
import math

import jax
import jax.numpy as jnp

from sparse_gpt import config as config_lib
from sparse_gpt import storage
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError
from sparse_gpt.model import NodeEdit
from sparse_gpt.pruning import ablation as ablation_lib
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning.calibrate import IDENTITY, Calibration
from sparse_gpt.pruning.config import ABLATIONS
from sparse_gpt.pruning.edges import Edge
from sparse_gpt.pruning.nodes import Layout, Node

SCHEMA = "sparse_gpt.circuit/1"
_SOURCES = ("registry", "pairs_file")
_NODE_KEYS = frozenset(("location", "layer", "index", "head", "channel"))
_FIX = "fix that field or prune again (python -m launch.prune) to write a new file"
_REQUIRED = object()
_NO_FILE = "(not from a file)"


@dataclasses.dataclass(frozen=True)
class Circuit:
  model: dict  # workdir, step, config_hash
  task: dict  # name, source, pairs_file, pair_seed, train_pairs, heldout_pairs, dropped_pairs
  ablation: dict  # kind, mean_windows
  nodes: tuple[Node, ...]
  edges: tuple[Edge, ...]  # source_node and target_node index into `nodes`
  calibration: Calibration
  metrics: dict
  prune_config: dict
  # Where it was read from, for messages; not part of what the circuit is.
  path: str = dataclasses.field(default="", compare=False)

  def keep(self, layout: Layout) -> jax.Array:
    """keep_N [n_nodes]: 1 for this circuit's nodes; a node the model lacks is refused."""
    index_N = []
    for i, n in enumerate(self.nodes):
      try:
        n_index = layout.index(n)
      except UserError:  # out of range: refused below with the file and the field
        n_index = None
      # A node rebuilt from its index must be the node itself: head and channel agree.
      if n_index is None or layout.node(n_index) != n:
        raise UserError(f"circuit file {self.path or _NO_FILE}: nodes[{i}] "
                        f"{n.label()} ({n}) does not exist in this model; {_FIX}.")
      index_N.append(n_index)
    keep_N = jnp.zeros(layout.n_nodes, jnp.float32)
    return keep_N.at[jnp.array(index_N, jnp.int32)].set(1.0)


def config_hash(cfg) -> str:
  """sha256 of the run's config (workdir.identity), keys sorted: names the model a circuit
  came from."""
  return "sha256:" + hashlib.sha256(json.dumps(workdir_lib.identity(cfg), sort_keys=True
                                               ).encode()).hexdigest()


def to_json(c: Circuit) -> dict:
  return {
      "schema": SCHEMA, "model": c.model, "task": c.task, "ablation": c.ablation,
      "nodes": [n.to_json() for n in c.nodes],
      "edges": [{"source": e.source_node, "target": e.target_node, "param": e.param,
                 "index": list(e.index), "value": e.value} for e in c.edges],
      "calibration": {"scale": c.calibration.scale,
                      "shift": {str(t): s for t, s in c.calibration.shift.items()}},
      "metrics": c.metrics, "prune_config": c.prune_config}


def _is_int(x, low: int | None = 0) -> bool:
  return isinstance(x, int) and not isinstance(x, bool) and (low is None or x >= low)


def _is_finite(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_pair_of_ints(x) -> bool:
  return isinstance(x, list) and len(x) == 2 and all(_is_int(v) for v in x)


_IS_OBJECT = (lambda x: isinstance(x, dict), "a JSON object")
_IS_STRING = (lambda x: isinstance(x, str), "a string")
_IS_COUNT = (_is_int, "an integer >= 0")
_IS_NUMBER = (_is_finite, "a finite number")
_IS_LIST = (lambda x: isinstance(x, list), "a list")


class _Fields:
  """Reads a circuit file's fields, each checked; a bad one is a UserError naming the
  file, the field and the fix."""

  def __init__(self, path: str):
    self.path = path or _NO_FILE

  def error(self, field: str, problem: str) -> UserError:
    return UserError(f"circuit file {self.path}: {field} {problem}; {_FIX}.")

  def get(self, obj: dict, key: str, field: str, check, default=_REQUIRED):
    """obj[key] if `check` = (ok, what it must be) accepts it."""
    if key not in obj:
      if default is _REQUIRED:
        raise self.error(field, "is missing")
      return default
    ok, want = check
    if not ok(obj[key]):
      shown = repr(obj[key])
      shown = shown if len(shown) <= 60 else shown[:57] + "..."
      raise self.error(field, f"is {shown}, but must be {want}")
    return obj[key]

  def node(self, obj, where: str) -> Node:
    if not isinstance(obj, dict) or not set(obj) <= _NODE_KEYS:
      raise self.error(where, f"must be an object with keys {', '.join(sorted(_NODE_KEYS))}")
    self.get(obj, "location", f"{where}.location",
             (lambda x: x in config_lib.LOCATIONS, f"one of {', '.join(config_lib.LOCATIONS)}"))
    head = self.get(obj, "head", f"{where}.head", _IS_COUNT, None)
    channel = self.get(obj, "channel", f"{where}.channel", _IS_COUNT, None)
    if (head is None) != (channel is None):
      raise self.error(where, "must have both head and channel or neither")
    self.get(obj, "layer", f"{where}.layer", _IS_COUNT)
    self.get(obj, "index", f"{where}.index", _IS_COUNT)
    return Node.from_json(obj)

  def edge(self, obj, where: str, n_nodes: int) -> Edge:
    if not isinstance(obj, dict):
      raise self.error(where, "must be an object")
    position = (lambda x: _is_int(x) and x < n_nodes, f"a position in nodes (0..{n_nodes - 1})")
    return Edge(self.get(obj, "source", f"{where}.source", position),
                self.get(obj, "target", f"{where}.target", position),
                self.get(obj, "param", f"{where}.param", _IS_STRING),
                tuple(self.get(obj, "index", f"{where}.index",
                               (_is_pair_of_ints, "[row, column], two integers >= 0"))),
                self.get(obj, "value", f"{where}.value", _IS_NUMBER))

  def calibration(self, obj: dict) -> Calibration:
    scale = self.get(obj, "scale", "calibration.scale", _IS_NUMBER)
    shift = self.get(obj, "shift", "calibration.shift", _IS_OBJECT)
    for token, value in shift.items():
      if not token.isdigit():
        raise self.error(f"calibration.shift[{token!r}]", "must be keyed by a token id")
      self.get(shift, token, f"calibration.shift[{token!r}]", _IS_NUMBER)
    return Calibration(float(scale), {int(t): float(v) for t, v in shift.items()})

  def dropped_pair(self, obj, where: str) -> None:
    if not isinstance(obj, dict):
      raise self.error(where, "must be an object")
    self.get(obj, "pair", f"{where}.pair", _IS_COUNT)
    for key in ("lines", "tokens"):
      self.get(obj, key, f"{where}.{key}", (_is_pair_of_ints, "two integers >= 0"))


def from_json(d, path: str = "") -> Circuit:
  """The circuit in a file's JSON, every field that a circuit uses checked."""
  f = _Fields(path)
  if not isinstance(d, dict) or d.get("schema") != SCHEMA:
    found = d.get("schema") if isinstance(d, dict) else type(d).__name__
    raise UserError(f"{f.path} is not a circuit file of schema {SCHEMA} (found {found!r}); "
                    "write one with python -m launch.prune")
  model = f.get(d, "model", "model", _IS_OBJECT)
  f.get(model, "workdir", "model.workdir", _IS_STRING)
  f.get(model, "step", "model.step", _IS_COUNT)
  f.get(model, "config_hash", "model.config_hash",
        (lambda x: isinstance(x, str) and x.startswith("sha256:"), '"sha256:<hex>"'))
  task = f.get(d, "task", "task", _IS_OBJECT)
  f.get(task, "name", "task.name", _IS_STRING)
  f.get(task, "source", "task.source",
        (lambda x: x in _SOURCES, " or ".join(repr(s) for s in _SOURCES)))
  f.get(task, "pairs_file", "task.pairs_file",
        (lambda x: x is None or isinstance(x, str), "a path or null"))
  f.get(task, "pair_seed", "task.pair_seed",
        (lambda x: x is None or _is_int(x, None), "an integer or null"))
  for key in ("train_pairs", "heldout_pairs"):
    f.get(task, key, f"task.{key}", _IS_COUNT)
  for i, dropped in enumerate(f.get(task, "dropped_pairs", "task.dropped_pairs", _IS_LIST,
                                    [])):
    f.dropped_pair(dropped, f"task.dropped_pairs[{i}]")
  ablation = f.get(d, "ablation", "ablation", _IS_OBJECT)
  f.get(ablation, "kind", "ablation.kind",
        (lambda x: x in ABLATIONS, f"one of {', '.join(ABLATIONS)}"))
  f.get(ablation, "mean_windows", "ablation.mean_windows",
        (lambda x: _is_int(x, 1), "a positive integer"))
  nodes = tuple(f.node(n, f"nodes[{i}]")
                for i, n in enumerate(f.get(d, "nodes", "nodes", _IS_LIST)))
  edges = tuple(f.edge(e, f"edges[{i}]", len(nodes))
                for i, e in enumerate(f.get(d, "edges", "edges", _IS_LIST)))
  return Circuit(
      model=model, task=task, ablation=ablation, nodes=nodes, edges=edges,
      calibration=f.calibration(f.get(d, "calibration", "calibration", _IS_OBJECT)),
      metrics=f.get(d, "metrics", "metrics", _IS_OBJECT),
      prune_config=f.get(d, "prune_config", "prune_config", _IS_OBJECT), path=path)


def save(c: Circuit, path) -> None:
  """Writes the circuit file atomically: a prune killed mid-save leaves the old file or
  the new one, never half of one."""
  storage.write_text(path, json.dumps(to_json(c), indent=1))


def load(path) -> Circuit:
  """Reads a circuit file; a missing, unreadable or malformed one is a UserError."""
  f = storage.path(path)
  if not f.is_file():
    raise UserError(f"circuit file {path} does not exist; write one with "
                    "python -m launch.prune")
  try:
    d = json.loads(f.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"circuit file {path} is not JSON ({e}); write it again with "
                    "python -m launch.prune") from None
  return from_json(d, str(path))


def check_run(c: Circuit, run) -> None:
  """Refuses a run whose checkpoint or config differs from the circuit's model."""
  if run.step != c.model["step"]:
    raise UserError(f"the circuit was pruned from step {c.model['step']} of "
                    f"{c.model['workdir']}; this run is at step {run.step}. Load that "
                    "checkpoint (run_io.load_run(workdir, step)) or prune again.")
  if config_hash(run.config) != c.model["config_hash"]:
    raise UserError(f"the circuit was pruned from a run with a different config than "
                    f"{run.workdir}: prune it again for this run.")


def edits_fn(c: Circuit, run):
  """tokens_BxL -> the model.forward edits that run `c` (resample needs the tokens)."""
  check_run(c, run)
  layout = Layout(run.config.model)
  keep_N = c.keep(layout)
  kind = c.ablation["kind"]
  means_N = (node_means.load_or_compute(run, layout, c.ablation["mean_windows"])
             if kind == "mean" else jnp.zeros(layout.n_nodes, jnp.float32))

  def edits(params, tokens_BxL) -> dict[str, NodeEdit]:
    fill = ablation_lib.fill(kind, run.graphdef, params, layout, means_N, tokens_BxL)
    return layout.edits(keep_N, fill)

  return edits


def logits_fn(c: Circuit, run, calibrated: bool = True):
  """(params, tokens_BxL) -> logits_BxLxV of the circuit, calibrated if it has one.

  For tasks.evaluate.make_scorer: scoring a task or pairs file with it scores the
  circuit. The calibration is Calibration.apply, as pruning applied it.
  """
  edits = edits_fn(c, run)
  calibration = c.calibration if calibrated else IDENTITY

  def logits(params, tokens_BxL):
    logits_BxLxV, _ = run.forward(params, tokens_BxL, edits(params, tokens_BxL))
    return calibration.apply(logits_BxLxV)

  return logits
