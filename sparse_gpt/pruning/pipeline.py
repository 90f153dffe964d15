"""Pruning a task end to end: learned masks, exact size, calibration, battery, file.

  data -> node means -> mask training (search.py: a vmapped recipe search)
       -> exact size by bisection on the validation split -> logit calibration
       -> faithfulness battery -> <workdir>/circuits/<task>.json
"""

import collections
import dataclasses
import json
import time

import jax.numpy as jnp
import numpy as np

from sparse_gpt import progress
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import edges as edges_lib
from sparse_gpt.pruning import faithfulness
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning import nulls
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning import search
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.subject import Subject, scored
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import resolve


class NotSolved(UserError):
  """The full model does not reach the target loss on the task: nothing to prune."""

  def __init__(self, task: str, loss: float, target: float, split: str = "training"):
    super().__init__(f"the model does not solve {task}: its task loss on the {split} "
                     f"pairs is {loss:.4f}, above the target {target}.")
    self.loss, self.target, self.split = loss, target, split


@dataclasses.dataclass(frozen=True)


class TaskData:
  name: str
  train: resolve.TaskBatch
  validation: resolve.TaskBatch
  heldout: resolve.TaskBatch
  meta: dict  # the circuit file's "task" entry


def registry_task(run, name: str, cfg) -> TaskData:
  """The task's train, validation and held-out splits, encoded for the run's tokenizer
  (resolve.resolve_validation: how validation pairs stay apart from the other two)."""
  registry.get(name)
  n_ctx = run.config.model.n_ctx
  splits = {split: resolve.resolve_task(name, run.tokenizer, n_ctx, split, n, cfg.pair_seed)
            for split, n in (("train", cfg.train_pairs), ("heldout", cfg.heldout_pairs))}
  splits["validation"] = resolve.resolve_validation(name, run.tokenizer, n_ctx,
                                                    cfg.validation_pairs, cfg.pair_seed,
                                                    cfg.train_pairs)
  meta = {"name": name, "source": "registry", "pairs_file": None,
          "pair_seed": cfg.pair_seed,
          **{f"{s}_pairs": len(b) // 2 for s, b in splits.items()}, "dropped_pairs": []}
  return TaskData(name, splits["train"], splits["validation"], splits["heldout"], meta)


def file_task(run, path: str, name: str, cfg) -> TaskData:
  """A pairs file's records as minimal pairs (records 2p, 2p + 1); pairs 3, 7, 11, ...
  are held out, pairs 2, 6, 10, ... validate, the rest train (with fewer than four
  pairs: the last is held out, the one before validates). At most cfg.train_pairs,
  cfg.validation_pairs and cfg.heldout_pairs are used. A pair with a record longer than
  n_ctx is left out whole, and named in the meta's dropped_pairs."""
  batch, dropped = pairs_file.resolve_file_pairs(path, run.tokenizer, run.config.model.n_ctx)
  n_pairs = len(batch) // 2
  if n_pairs < 3:
    raise UserError(f"{path}: pruning needs at least three minimal pairs (records 2p and "
                    f"2p + 1 are pair p; one trains, one validates, one is held out) that "
                    f"fit in n_ctx={run.config.model.n_ctx} tokens; it has {n_pairs}.")
  ids = np.arange(n_pairs)
  if n_pairs >= 4:
    heldout_ids, validation_ids = ids[ids % 4 == 3], ids[ids % 4 == 2]
  else:
    heldout_ids, validation_ids = ids[-1:], ids[-2:-1]
  train_ids = np.setdiff1d(ids, np.concatenate([heldout_ids, validation_ids]))
  chosen = {"train": train_ids[:cfg.train_pairs],
            "validation": validation_ids[:cfg.validation_pairs],
            "heldout": heldout_ids[:cfg.heldout_pairs]}
  take = lambda ids: batch.rows(resolve.pair_rows(ids))
  meta = {"name": name, "source": "pairs_file", "pairs_file": str(path), "pair_seed": None,
          **{f"{s}_pairs": len(i) for s, i in chosen.items()},
          "dropped_pairs": [dataclasses.asdict(d) for d in dropped]}
  return TaskData(name, *(take(chosen[s]) for s in ("train", "validation", "heldout")), meta)


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
  """Prunes `run` to the smallest circuit that reaches cfg.target_loss on the validation
  split of `data` (search.py)."""
  clock = _Clock(say)
  n_ctx = run.config.model.n_ctx
  layout = Layout(run.config.model, cfg.tie_qk)
  train = resolve.padded(data.train, n_ctx)
  validation = resolve.padded(data.validation, n_ctx)
  if dropped := _dropped_text(data, n_ctx):
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
  validation_fill = subject.fill(validation)
  full_validation, _ = subject.loss(subject.everything(), validation, validation_fill)
  if not full_validation <= cfg.target_loss:  # no circuit could be sized
    raise NotSolved(data.name, full_validation, cfg.target_loss, "validation")
  clock(f"{data.name}: {len(train.last_B) // 2} training pairs, full-model loss "
        f"{full_loss:.4f} ({full_validation:.4f} on {len(validation) // 2} validation "
        f"pairs); mask training over {layout.n_nodes} nodes")
  problem = optimize.bucketed(optimize.Problem(subject.params, fill, train,
                                                subject.norms(train)), cfg.batch_pairs,
                              n_ctx)
  sets = ((train, fill), (validation, validation_fill))
  found = search.run(subject, problem, sets, cfg, clock)
  keep_N = found.sized.keep_N
  clock(f"smallest circuit: {_count(keep_N)} nodes, validation loss + {cfg.sizing_z:g} "
        f"s.e. {found.sized.loss:.4f}{' (calibrated)' if cfg.calibrate else ''}")

  logits = subject.candidates(keep_N, train, fill)
  at_k = found.sized.points[_count(keep_N)]
  calibration = search.calibration_for(subject, keep_N, sets, at_k, cfg)
  raw, _ = scored(logits, train)
  calibrated, accuracy = scored(logits, train, calibration)
  metrics = {"target_loss": cfg.target_loss,
             "train": {"full_model_loss": full_loss, "circuit_loss": calibrated,
                       "circuit_loss_raw": raw, "circuit_accuracy": accuracy},
             "validation": {"full_model_loss": full_validation,
                            "circuit_loss": scored(at_k, validation, calibration)[0],
                            "circuit_loss_raw": scored(at_k, validation)[0]},
             "runs": [_run_entry(r) for r in found.records
                      if r["rung"] == found.budget["rungs"] - 1],
             "search": found.records,
             "curve": curve(found.sized.points, validation, calibration)}
  if cfg.budget_s:
    metrics["budget"] = found.budget

  if cfg.faithfulness:
    heldout = resolve.padded(data.heldout, n_ctx)
    metrics["heldout"] = faithfulness.heldout_checks(subject, keep_N, calibration, heldout,
                                                     cfg.partial_ablation)
    clock(f"held-out loss {metrics['heldout']['circuit_loss']:.4f}, necessity loss "
          f"{metrics['heldout']['necessity_loss']:.4f}")
  if cfg.faithfulness and cfg.null_search:
    clock("searching the two null baselines at the task's budget")
    metrics["nulls"] = faithfulness.searched_null_sizes(
        subject, _reinitialised(run, layout, cfg), sets, cfg, n_ctx, clock)
  elif cfg.faithfulness and cfg.null_steps:
    clock("pruning the two null baselines")
    metrics["nulls"] = faithfulness.null_sizes(subject, _reinitialised(run, layout, cfg),
                                               train, cfg)

  c = _circuit(run, layout, data, cfg, keep_N, calibration, metrics)
  clock(f"done: {len(c.nodes)} nodes, {len(c.edges)} edges")
  c.metrics["seconds"] = round(time.time() - clock.start, 1)
  return c


def curve(points: dict, batch: resolve.TaskBatch, calibration) -> list[dict]:
  """metrics.curve: the bisection's points (kept nodes -> candidate logits on `batch`),
  raw and under the circuit's calibration, by nodes ascending."""
  return [{"nodes": k, "loss_raw": scored(points[k], batch)[0],
           "loss_calibrated": scored(points[k], batch, calibration)[0]}
          for k in sorted(points)]


def _run_entry(record: dict) -> dict:
  """metrics.runs' entry of a sized candidate (docs/circuit_schema.md)."""
  return {"k_coef": record["k_coef"], "seed": record["seed"],
          "learned_nodes": record["learned_nodes"],
          "final_task_loss": record["final_task_loss"],
          "circuit_nodes": record["circuit_nodes"],
          "circuit_loss": record["circuit_validation_loss"]}


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
