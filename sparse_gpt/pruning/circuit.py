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

import jax
import jax.numpy as jnp

from sparse_gpt import storage
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError
from sparse_gpt.model import NodeEdit
from sparse_gpt.pruning import ablation as ablation_lib
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning.calibrate import IDENTITY, Calibration
from sparse_gpt.pruning.edges import Edge
from sparse_gpt.pruning.nodes import Layout, Node

SCHEMA = "sparse_gpt.circuit/1"


@dataclasses.dataclass(frozen=True)
class Circuit:
  model: dict  # workdir, step, config_hash
  task: dict  # name, source, pairs_file, pair_seed, train_pairs, heldout_pairs
  ablation: dict  # kind, mean_windows
  nodes: tuple[Node, ...]
  edges: tuple[Edge, ...]  # source and target index into `nodes`
  calibration: Calibration
  metrics: dict
  prune_config: dict

  def keep(self, layout: Layout) -> jax.Array:
    """keep_N [n_nodes]: 1 for this circuit's nodes."""
    keep_N = jnp.zeros(layout.n_nodes, jnp.float32)
    return keep_N.at[jnp.array([layout.index(n) for n in self.nodes], jnp.int32)].set(1.0)


def config_hash(cfg) -> str:
  """sha256 of the run's config, keys sorted: names the model a circuit came from."""
  return "sha256:" + hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()
                                    ).hexdigest()


def to_json(c: Circuit) -> dict:
  node = lambda n: {k: v for k, v in dataclasses.asdict(n).items() if v is not None}
  return {
      "schema": SCHEMA, "model": c.model, "task": c.task, "ablation": c.ablation,
      "nodes": [node(n) for n in c.nodes],
      "edges": [{"source": e.source, "target": e.target, "param": e.param,
                 "index": list(e.index), "value": e.value} for e in c.edges],
      "calibration": {"scale": c.calibration.scale,
                      "shift": {str(t): s for t, s in c.calibration.shift.items()}},
      "metrics": c.metrics, "prune_config": c.prune_config}


def from_json(d: dict) -> Circuit:
  if d.get("schema") != SCHEMA:
    raise UserError(f"not a circuit file of schema {SCHEMA} (found {d.get('schema')!r})")
  cal = d["calibration"]
  return Circuit(
      model=d["model"], task=d["task"], ablation=d["ablation"],
      nodes=tuple(Node(**n) for n in d["nodes"]),
      edges=tuple(Edge(e["source"], e["target"], e["param"], tuple(e["index"]), e["value"])
                  for e in d["edges"]),
      calibration=Calibration(float(cal["scale"]),
                              {int(t): float(s) for t, s in cal["shift"].items()}),
      metrics=d["metrics"], prune_config=d["prune_config"])


def save(c: Circuit, path) -> None:
  """Writes the circuit file atomically: a prune killed mid-save leaves the old file or
  the new one, never half of one."""
  storage.write_text(path, json.dumps(to_json(c), indent=1))


def load(path) -> Circuit:
  """Reads a circuit file; a missing or malformed file is a UserError."""
  f = workdir_lib.path(str(path))
  if not f.exists():
    raise UserError(f"circuit file {path} does not exist; write one with "
                    "python -m launch.prune")
  try:
    return from_json(json.loads(f.read_text()))
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise UserError(f"circuit file {path} is malformed ({type(e).__name__}: {e})") from None


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
  circuit.
  """
  edits = edits_fn(c, run)
  calibration = c.calibration if calibrated else IDENTITY

  def logits(params, tokens_BxL):
    logits_BxLxV, _ = run.forward(params, tokens_BxL, edits(params, tokens_BxL))
    return calibration.apply(logits_BxLxV)

  return logits
