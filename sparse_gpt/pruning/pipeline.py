"""Pruning a task end to end: learned masks, exact size, calibration, battery, file.

  data -> node means -> mask training (a vmapped sweep) -> exact size by bisection
       -> logit calibration -> faithfulness battery -> <workdir>/circuits/<task>.json
"""

import collections
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import progress
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import calibrate
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import edges as edges_lib
from sparse_gpt.pruning import faithfulness
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning import nulls
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.subject import Subject, scored
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import resolve


class NotSolved(UserError):
  """The full model does not reach the target loss on the task: nothing to prune."""

  def __init__(self, task: str, loss: float, target: float):
    super().__init__(f"the model does not solve {task}: its task loss on the training "
                     f"pairs is {loss:.4f}, above the target {target}.")
    self.loss, self.target = loss, target


@dataclasses.dataclass(frozen=True)
class TaskData:
  name: str
  train: resolve.TaskBatch
  heldout: resolve.TaskBatch
  meta: dict  # the circuit file's "task" entry


def registry_task(run, name: str, cfg) -> TaskData:
  """The task's train and held-out splits, encoded for the run's tokenizer."""
  registry.get(name)
  n_ctx = run.config.model.n_ctx
  splits = {split: resolve.resolve_task(name, run.tokenizer, n_ctx, split, n, cfg.pair_seed)
            for split, n in (("train", cfg.train_pairs), ("heldout", cfg.heldout_pairs))}
  meta = {"name": name, "source": "registry", "pairs_file": None,
          "pair_seed": cfg.pair_seed,
          **{f"{s}_pairs": len(b) // 2 for s, b in splits.items()}, "dropped_pairs": []}
  return TaskData(name, splits["train"], splits["heldout"], meta)


def file_task(run, path: str, name: str, cfg) -> TaskData:
  """A pairs file's records as minimal pairs (records 2p, 2p + 1); every fourth pair
  is held out. At most cfg.train_pairs and cfg.heldout_pairs are used. A pair with a
  record longer than n_ctx is left out whole, and named in the meta's dropped_pairs."""
  batch, dropped = pairs_file.resolve_file_pairs(path, run.tokenizer, run.config.model.n_ctx)
  n_pairs = len(batch) // 2
  if n_pairs < 2:
    raise UserError(f"{path}: pruning needs at least two minimal pairs (records 2p and "
                    f"2p + 1 are pair p) that fit in n_ctx={run.config.model.n_ctx} "
                    f"tokens; it has {n_pairs}.")
  heldout_ids = np.arange(3, n_pairs, 4) if n_pairs >= 4 else np.array([n_pairs - 1])
  train_ids = np.setdiff1d(np.arange(n_pairs), heldout_ids)[:cfg.train_pairs]
  heldout_ids = heldout_ids[:cfg.heldout_pairs]
  take = lambda ids: batch.rows(resolve.pair_rows(ids))
  meta = {"name": name, "source": "pairs_file", "pairs_file": str(path), "pair_seed": None,
          "train_pairs": len(train_ids), "heldout_pairs": len(heldout_ids),
          "dropped_pairs": [dataclasses.asdict(d) for d in dropped]}
  return TaskData(name, take(train_ids), take(heldout_ids), meta)


def _dropped_text(data: TaskData, n_ctx: int) -> str | None:
  """What of the task's file was left out, for the user; None if nothing."""
  dropped = data.meta.get("dropped_pairs")
  if not dropped:
    return None
  where = ", ".join(f"pair {d['pair']} (lines {d['lines'][0]} and {d['lines'][1]}: "
                    f"{d['tokens'][0]} and {d['tokens'][1]} tokens)" for d in dropped)
  return (f"{data.name}: left out {len(dropped)} pair(s) with a record longer than "
          f"n_ctx={n_ctx} tokens: {where}")


class _Clock:
  """Prints one line per phase with the seconds since the start."""

  def __init__(self, say):
    self.start, self._say = time.time(), say

  def __call__(self, message: str) -> None:
    self._say(f"[{time.time() - self.start:6.1f} s] {message}")


def _count(keep_N) -> int:
  return int(np.sum(np.asarray(keep_N)))


def prune(run, data: TaskData, cfg, say=progress.say) -> circuit_lib.Circuit:
  """Prunes `run` to the smallest circuit that reaches cfg.target_loss on `data`."""
  clock = _Clock(say)
  layout = Layout(run.config.model, cfg.tie_qk)
  train = resolve.padded(data.train, run.config.model.n_ctx)
  if dropped := _dropped_text(data, run.config.model.n_ctx):
    clock(dropped)
  zeros_N = jnp.zeros(layout.n_nodes, jnp.float32)
  # With every node kept the fill is unused: check the task before computing means.
  full_loss, _ = Subject(run.graphdef, run.params, layout, zeros_N, "zero").loss(
      jnp.ones(layout.n_nodes), train, zeros_N)
  if not full_loss <= cfg.target_loss:
    raise NotSolved(data.name, full_loss, cfg.target_loss)
  means_N = (node_means.load_or_compute(run, layout, cfg.mean_windows)
             if cfg.ablation == "mean" else zeros_N)
  subject = Subject(run.graphdef, run.params, layout, means_N, cfg.ablation, cfg.freeze_norms)
  fill = subject.fill(train)
  clock(f"{data.name}: {len(train.last_B) // 2} training pairs, full-model loss "
        f"{full_loss:.4f}; training {len(cfg.k_coefs) * len(cfg.seeds)} mask run(s) x "
        f"{cfg.steps} steps over {layout.n_nodes} nodes")

  keep_N, runs, best = _sweep(subject, train, fill, cfg, clock)
  clock(f"smallest circuit: {best['circuit_nodes']} nodes, loss {best['circuit_loss']:.4f}")

  logits = subject.candidates(keep_N, train, fill)
  calibration = calibrate.IDENTITY
  if cfg.calibrate:
    calibration = calibrate.fit(*logits, train.correct_B, train.incorrect_B,
                                cfg.calibration_steps)
  calibrated, accuracy = scored(logits, train, calibration)
  metrics = {"target_loss": cfg.target_loss,
             "train": {"full_model_loss": full_loss, "circuit_loss": calibrated,
                       "circuit_loss_raw": best["circuit_loss"],
                       "circuit_accuracy": accuracy},
             "runs": runs}

  if cfg.faithfulness:
    heldout = resolve.padded(data.heldout, run.config.model.n_ctx)
    metrics["heldout"] = faithfulness.heldout_checks(subject, keep_N, calibration, heldout,
                                                     cfg.partial_ablation)
    clock(f"held-out loss {metrics['heldout']['circuit_loss']:.4f}, necessity loss "
          f"{metrics['heldout']['necessity_loss']:.4f}")
  if cfg.faithfulness and cfg.null_steps:
    clock("pruning the two null baselines")
    metrics["nulls"] = faithfulness.null_sizes(subject, _reinitialised(run, layout, cfg),
                                               train, cfg)

  c = _circuit(run, layout, data, cfg, keep_N, calibration, metrics)
  clock(f"done: {len(c.nodes)} nodes, {len(c.edges)} edges")
  c.metrics["seconds"] = round(time.time() - clock.start, 1)
  return c


def _sweep(subject: Subject, train: resolve.TaskBatch, fill, cfg,
           clock) -> tuple[jax.Array, list[dict], dict]:
  """Trains every (k_coef, seed) run at once and sizes each circuit exactly.

  Returns the smallest circuit's keep_N, a summary of every run, and the smallest's.
  """
  layout = subject.layout
  specs = optimize.runs(cfg.k_coefs, cfg.seeds)
  trained = optimize.train_masks(subject.graphdef, layout, cfg,
                                 optimize.Problem(subject.params, fill, train,
                                                  subject.norms(train)), specs)
  jax.block_until_ready(trained)
  clock("masks trained; bisecting for the exact size")
  runs, circuits = [], []
  for r in range(len(specs.k_coef_R)):
    # The full model reaches the target, so some circuit of every ordering does.
    keep_N, loss = subject.smallest_circuit(trained.tau_P[r], train, fill, cfg.target_loss)
    circuits.append(keep_N)
    runs.append({"k_coef": cfg.k_coefs[r % len(cfg.k_coefs)],
                 "seed": cfg.seeds[r // len(cfg.k_coefs)],
                 "learned_nodes": _count(layout.nodes_of(trained.tau_P[r] > 0)),
                 "final_task_loss": float(trained.task_loss_T[r, -1]),
                 "circuit_nodes": _count(keep_N), "circuit_loss": loss})
  best = min(range(len(runs)), key=lambda r: (runs[r]["circuit_nodes"],
                                              runs[r]["circuit_loss"]))
  return circuits[best], runs, runs[best]


def _reinitialised(run, layout: Layout, cfg) -> Subject:
  params = nulls.reinitialised_params(run.config, run.config.seed + 1)
  means_N = jnp.zeros(layout.n_nodes, jnp.float32)
  if cfg.ablation == "mean":
    windows = node_means.validation_windows(run, cfg.mean_windows)
    means_N = node_means.compute(run.graphdef, params, layout, windows)
  return Subject(run.graphdef, params, layout, means_N, cfg.ablation, cfg.freeze_norms)


def _circuit(run, layout, data, cfg, keep_N, calibration, metrics) -> circuit_lib.Circuit:
  kept = np.flatnonzero(np.asarray(keep_N))
  nodes = tuple(layout.node(int(n)) for n in kept)
  edges = tuple(edges_lib.between(run.params, layout, kept))
  metrics["nodes"], metrics["edges"] = len(nodes), len(edges)
  metrics["nodes_by_location"] = dict(collections.Counter(n.site for n in nodes))
  metrics["edges_by_location"] = dict(collections.Counter(
      f"{nodes[e.source_node].site}->{nodes[e.target_node].site}" for e in edges))
  return circuit_lib.Circuit(
      model={"workdir": str(run.workdir), "step": run.step,
             "config_hash": circuit_lib.config_hash(run.config)},
      task=data.meta, ablation={"kind": cfg.ablation, "mean_windows": cfg.mean_windows},
      nodes=nodes, edges=edges, calibration=calibration, metrics=metrics,
      prune_config=json.loads(cfg.to_json()))


def circuit_path(workdir: str, name: str):
  return workdir_lib.path(workdir) / "circuits" / f"{name}.json"
