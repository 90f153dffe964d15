"""Circuits as text for the terminal: a summary, the full graph, and a one-line result."""

import collections

from sparse_gpt import config as config_lib
from sparse_gpt.pruning.circuit import Circuit


def _fmt(x) -> str:
  return "n/a" if x is None else f"{x:.4f}"


def _error(heldout: dict) -> str:
  """ +- the held-out loss's standard error over its pairs (absent from older files)."""
  return f" +- {heldout['circuit_loss_se']:.4f}" if "circuit_loss_se" in heldout else ""


def _nulls(m: dict) -> str:
  parts = []
  for name, null in m["nulls"].items():
    nodes = "target not reached" if null["nodes"] is None else f"{null['nodes']} nodes"
    parts.append(f"{name.replace('_', ' ')}: {nodes}")
  return "; ".join(parts)


def summary(c: Circuit) -> str:
  """Nodes and edges by location type, losses, and the faithfulness battery."""
  m = c.metrics
  by_loc = lambda counts: ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
  lines = [
      f"circuit for {c.task['name']} ({c.ablation['kind']} ablation, target "
      f"{m['target_loss']}): {m['nodes']} nodes, {m['edges']} edges",
      f"  nodes: {by_loc(m['nodes_by_location'])}",
      f"  edges: {by_loc(m['edges_by_location'])}",
      f"  train loss: full model {_fmt(m['train']['full_model_loss'])}, circuit "
      f"{_fmt(m['train']['circuit_loss'])} (uncalibrated {_fmt(m['train']['circuit_loss_raw'])})"]
  if "validation" in m:  # files from before the split lack it
    v = m["validation"]
    lines.append(f"  validation loss (sized on): full model {_fmt(v['full_model_loss'])}, "
                 f"circuit {_fmt(v['circuit_loss'])} (uncalibrated "
                 f"{_fmt(v['circuit_loss_raw'])})")
  if "budget" in m:
    b = m["budget"]
    lines.append(f"  search: {b['candidates']} settings, {b['rungs']} rung(s) of "
                 f"{b['rung_steps']} steps, {b['seconds']} s")
  if "heldout" in m:
    h = m["heldout"]
    lines += [
        f"  held-out loss: full model {_fmt(h['full_model_loss'])}, circuit "
        f"{_fmt(h['circuit_loss'])}{_error(h)} (uncalibrated {_fmt(h['circuit_loss_raw'])}), "
        f"{'sufficient' if h['circuit_loss'] <= m['target_loss'] else 'NOT sufficient'}",
        f"  necessity (circuit ablated): loss {_fmt(h['necessity_loss'])}, chance 0.6931: "
        f"{'necessary' if h['necessary'] else 'NOT necessary'}",
        f"  zero ablation of the rest: loss {_fmt(h['zero_ablation_loss'])}"]
    if "partial_ablation" in h:  # absent from files written before the check
      p = h["partial_ablation"]
      lines += [
          f"  partial ablation (each other node ablated with chance {p['q']}, "
          f"{p['patterns']} patterns, uncalibrated): mean loss {_fmt(p['mean_loss'])}, "
          f"worst {_fmt(p['worst_loss'])}",
          f"  interchange (circuit nodes from the other prompt): "
          f"{h['interchange_flip_rate']:.0%} of answers follow them"]
  if "nulls" in m:
    searched = any(null.get("recipe") == "search" for null in m["nulls"].values())
    budget = " and the same search budget" if searched else ""
    lines.append(f"  nulls at the same target{budget}: {_nulls(m)}")
  return "\n".join(lines)


def text(c: Circuit) -> str:
  """Layers top to bottom; each node with its location and index, each edge (into the
  node) with its weight."""
  into = collections.defaultdict(list)
  for e in c.edges:
    into[e.target_node].append(e)
  lines = [f"{c.task['name']}: {len(c.nodes)} nodes, {len(c.edges)} edges"]
  order = sorted(range(len(c.nodes)), key=lambda i: (
      c.nodes[i].layer, config_lib.LOCATIONS.index(c.nodes[i].site), c.nodes[i].index))
  layer = None
  for i in order:
    node = c.nodes[i]
    if node.layer != layer:
      layer = node.layer
      lines.append(f"layer {layer}")
    lines.append(f"  {node.label()}")
    for e in sorted(into[i], key=lambda e: -abs(e.value)):
      lines.append(f"      <- {c.nodes[e.source_node].label()}  {e.value:+.4f}")
  return "\n".join(lines)


def one_line(c: Circuit) -> str:
  """Nodes, edges, circuit loss, held-out loss and necessity loss."""
  m = c.metrics
  h = m.get("heldout", {})
  return (f"{c.task['name']:<28} nodes {m['nodes']:4d}  edges {m['edges']:4d}  "
          f"loss {_fmt(m['train']['circuit_loss'])}  held-out {_fmt(h.get('circuit_loss'))}  "
          f"necessity {_fmt(h.get('necessity_loss'))}")
