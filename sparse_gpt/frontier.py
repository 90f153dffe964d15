"""Capability against interpretability over a sweep's models (docs/frontier.md).

Per model, capability is its validation loss and interpretability the geometric mean,
over the tasks every model solves, of its circuits' edge counts at the target loss
(docs/method.md section 8). The common set is taken here, once every model is pruned:
each model prunes every task it solves, with the one recipe and budget of the sweep, so
a comparison over the common set compares like with like. Tasks only some models solve
are listed apart. A circuit of no edges counts as one edge, so that its logarithm is
defined.
"""

import math

from sparse_gpt.errors import UserError


def geomean(values) -> float:
  values = list(values)
  return math.exp(sum(math.log(max(v, 1)) for v in values) / len(values))


def solved(record: dict) -> set[str]:
  return {t for t, r in record["tasks"].items() if r["solved"]}


def pareto(models: list[dict]) -> list[str]:
  """Names of the models no other model beats on both axes (lower loss, fewer edges)."""
  def beats(q, p):
    return (q["val_loss"] <= p["val_loss"] and q["edges"] <= p["edges"] and
            (q["val_loss"], q["edges"]) != (p["val_loss"], p["edges"]))
  front = [p for p in models if not any(beats(q, p) for q in models)]
  return [p["name"] for p in sorted(front, key=lambda p: p["val_loss"])]


def compute(records: list[dict]) -> dict:
  """The frontier of `records`: one per model, with name, sparse, width, l0, val_loss,
  params, nonzero and tasks ({task: {solved, full_model_loss, edges, ...}})."""
  if not records:
    raise UserError("no model of the sweep has finished training and pruning: run "
                    "python -m launch.sweep first.")
  every = sorted(set().union(*(r["tasks"] for r in records)))
  common = sorted(set.intersection(*(solved(r) for r in records)))
  if not common:
    raise UserError("no task is solved by every model (full-model task loss under "
                    "prune.target_loss), so there is nothing to compare: raise "
                    "prune.target_loss, or train longer; sweep_tasks.json in each model's "
                    "workdir has the losses.")
  models = []
  for r in records:
    edges = {t: r["tasks"][t]["edges"] for t in common}
    models.append({k: r[k] for k in ("name", "sparse", "width", "l0", "val_loss", "params",
                                     "nonzero")} |
                  {"edges": geomean(edges.values()), "edges_by_task": edges,
                   "full_model_loss": {t: r["tasks"][t]["full_model_loss"] for t in every
                                       if t in r["tasks"]}})
  front = pareto(models)
  for m in models:
    m["pareto"] = m["name"] in front
  partial = {t: sorted(r["name"] for r in records if t in solved(r)) for t in every
             if t not in common}
  return {"common_tasks": common,
          "partial_tasks": {t: names for t, names in partial.items() if names},
          "unsolved_tasks": [t for t, names in partial.items() if not names],
          "models": models, "pareto": front, "matched": matched(models)}


def closest_pair(models: list[dict]) -> tuple[dict, dict] | None:
  """The sparse and the dense model closest in validation loss; None without both."""
  pairs = [(s, d) for s in models if s["sparse"] for d in models if not d["sparse"]]
  if not pairs:
    return None
  return min(pairs, key=lambda sd: abs(sd[0]["val_loss"] - sd[1]["val_loss"]))


def matched(models: list[dict]) -> dict | None:
  """Dense over sparse circuit edges for the pair closest in validation loss, task by
  task, with the geometric mean and the spread (min, max) of the per-task ratios."""
  pair = closest_pair(models)
  if pair is None:
    return None
  s, d = pair
  ratios = {t: max(d["edges_by_task"][t], 1) / max(s["edges_by_task"][t], 1)
            for t in s["edges_by_task"]}
  return {"sparse": s["name"], "dense": d["name"],
          "val_loss": {"sparse": s["val_loss"], "dense": d["val_loss"]},
          "edge_ratio": geomean(ratios.values()), "edge_ratio_by_task": ratios,
          "edge_ratio_range": [min(ratios.values()), max(ratios.values())]}


def target_curve(edges: dict[str, dict[float, dict[str, int | None]]]) -> dict:
  """Per target loss, the geometric mean of each model's circuit edges over the tasks
  every model solves at that target. `edges`: model -> target -> task -> edges (None
  where the model does not reach that target)."""
  names = list(edges)
  targets = sorted(set().union(*(edges[n] for n in names)))
  out = {"targets": targets, "tasks": [], "edges": {n: [] for n in names}}
  for t in targets:
    both = sorted(task for task in edges[names[0]].get(t, {})
                  if all(edges[n].get(t, {}).get(task) is not None for n in names))
    out["tasks"].append(both)
    for n in names:
      out["edges"][n].append(geomean(edges[n][t][task] for task in both) if both else None)
  return out


def table(result: dict) -> str:
  """The frontier as text: one row per model, then the tasks compared and left out."""
  rows = [f"{'model':<18} {'kind':<6} {'width':>5} {'L0':>2} {'nonzero':>10} "
          f"{'val loss':>8} {'edges':>9}  pareto"]
  for m in sorted(result["models"], key=lambda m: m["val_loss"]):
    row = (f"{m['name']:<18} {'sparse' if m['sparse'] else 'dense':<6} "
           f"{m['width']:>5} {m['l0'] or '-':>2} {m['nonzero']:>10,} "
           f"{m['val_loss']:>8.4f} {m['edges']:>9.1f}  {'*' if m['pareto'] else ''}")
    rows.append(row.rstrip())
  rows.append(f"edges: geometric mean over the {len(result['common_tasks'])} tasks every "
              f"model solves: {', '.join(result['common_tasks'])}")
  for t, names in result["partial_tasks"].items():
    rows.append(f"  left out {t}: solved only by {', '.join(names)}")
  if result["unsolved_tasks"]:
    rows.append(f"  solved by no model: {', '.join(result['unsolved_tasks'])}")
  if m := result["matched"]:
    lo, hi = m["edge_ratio_range"]
    rows.append(f"matched validation loss: {m['dense']} ({m['val_loss']['dense']:.4f}) has "
                f"{m['edge_ratio']:.1f}x the edges of {m['sparse']} "
                f"({m['val_loss']['sparse']:.4f}); per task {lo:.1f}x to {hi:.1f}x")
  return "\n".join(rows)
