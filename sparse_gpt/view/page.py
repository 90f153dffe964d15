"""The HTML of the circuit pages and the index: self-contained, drawn from data.py's JSON.

Every page inlines its CSS, its JavaScript (assets/, written here) and its data, so it
opens from file:// with no request to any host. The graph is inline SVG written here:
exactly one element with `data-node` per kept node and one with `data-edge` per edge.
"""

import html
import json
import math
import pathlib

from sparse_gpt import structure
from sparse_gpt.view import plots
from sparse_gpt.view.data import node_name

_ASSETS = pathlib.Path(__file__).parent / "assets"
CHANCE = math.log(2)

_ROW_H, _LABEL_W, _MARGIN = 34, 118, 22
_MIN_W, _NODE_GAP, _MAX_W = 990, 7, 8000

HELDOUT_MEANINGS = {
    "full_model_loss": "the full model's task loss on the held-out pairs: the bar to match",
    "full_model_accuracy": "how often the full model prefers the correct candidate",
    "circuit_loss": "the circuit's loss (calibrated) on pairs it was not pruned on: near the "
                    "full model's means it generalises",
    "circuit_loss_raw": "the same without the logit calibration",
    "circuit_accuracy": "how often the circuit prefers the correct candidate",
    "necessity_loss": "the full model with only the circuit's nodes ablated: near chance "
                      "(0.693) means the model needs them",
    "necessary": "the necessity loss is closer to chance than to the full model's",
    "zero_ablation_loss": "the circuit with dropped nodes set to 0, not their means: close "
                          "to the circuit loss means it does not lean on the means",
    "interchange_flip_rate": "how often patching in the circuit's activations from the "
                             "pair's other prompt flips the prediction: high means the "
                             "circuit carries what decides the task",
    "partial_ablation": "the loss as part of the circuit is ablated: a steady rise means "
                        "no single node carries it all",
}
NULL_MEANINGS = {
    "nonsense_task": "the same pruning on labels fixed at random per prompt: a much "
                     "larger circuit, or none, means the real one is not an artefact of "
                     "pruning",
    "reinitialised_model": "pruning freshly initialised weights at the same density: no "
                           "small circuit there means the trained weights hold the mechanism",
}


def _esc(x) -> str:
  return html.escape(str(x))


def _number(v) -> str:
  if isinstance(v, bool):
    return "yes" if v else "no"
  if isinstance(v, float):
    return f"{v:.4g}"
  return "&mdash;" if v is None else _esc(v)


def value_html(v) -> str:
  """Any JSON value of a circuit file's metrics, readable: tables for objects and lists."""
  if isinstance(v, dict):
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{value_html(x)}</td></tr>" for k, x in v.items())
    return f'<table class="kv">{rows}</table>'
  if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
    keys = list(dict.fromkeys(k for x in v for k in x))
    head = "".join(f"<th>{_esc(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{value_html(x.get(k))}</td>" for k in keys) +
                   "</tr>" for x in v)
    return f'<table class="grid"><tr>{head}</tr>{body}</table>'
  if isinstance(v, list):
    return ", ".join(value_html(x) for x in v)
  return _number(v)


def _explained(metrics: dict, meanings: dict) -> str:
  rows = "".join(f"<tr><th>{_esc(k)}</th><td>{value_html(v)}</td>"
                 f"<td class=\"meaning\">{_esc(meanings.get(k, ''))}</td></tr>"
                 for k, v in metrics.items())
  return f'<table class="battery">{rows}</table>'


def _json_script(element_id: str, obj) -> str:
  text = json.dumps(obj, separators=(",", ":")).replace("</", "<\\/")
  return f'<script type="application/json" id="{element_id}">{text}</script>'


def _document(title: str, body: str, script: str = "") -> str:
  css = (_ASSETS / "view.css").read_text()
  js = f"<script>{(_ASSETS / 'view.js').read_text()}</script>" if script else ""
  return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
          f'<meta name="viewport" content="width=device-width, initial-scale=1">'
          f"<title>{_esc(title)}</title><style>{css}</style></head><body>{body}"
          f"{script}{js}</body></html>")


# --- The graph.

def _rows(n_layer: int) -> list[tuple[int, str]]:
  """(layer, site) of each graph row, bottom (after the embedding) to top."""
  return [(layer, site.name) for layer in range(n_layer) for site in structure.SITES]


def graph_svg(c, node_data: list[dict], circuit_loss: float, n_layer: int) -> str:
  """The circuit as SVG: rows from the embedding (bottom) to the unembedding (top)."""
  rows = _rows(n_layer)
  members = {row: [] for row in rows}
  for k, n in enumerate(c.nodes):
    members[(n.layer, n.site)].append(k)
  widest = max(len(m) for m in members.values())
  width = min(_MAX_W, max(_MIN_W, _LABEL_W + widest * _NODE_GAP + 2 * _MARGIN))
  height = (len(rows) + 2) * _ROW_H + 2 * _MARGIN
  row_y = lambda r: height - _MARGIN - (r + 1.5) * _ROW_H  # r = -1 is the embedding
  xy = {}
  span = width - _LABEL_W - 2 * _MARGIN
  for r, row in enumerate(rows):
    ks = sorted(members[row], key=lambda k: c.nodes[k].index)
    for i, k in enumerate(ks):
      xy[k] = (_LABEL_W + _MARGIN + (i + 0.5) * span / len(ks), row_y(r))
  radius = max(1.6, min(5.5, span / max(widest, 1) / 2.6))

  out = [f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
         f'height="{height}" viewBox="0 0 {width} {height}">']
  for r, label in ((-1, "embedding"), (len(rows), "unembedding")):
    out.append(f'<text class="row-label io" x="{_LABEL_W}" y="{row_y(r) + 4:.1f}" '
               f'text-anchor="end">{label}</text>')
  for r, (layer, site) in enumerate(rows):
    y = row_y(r)
    band = "band-a" if layer % 2 == 0 else "band-b"
    out.append(f'<rect class="{band}" x="{_LABEL_W + 6}" y="{y - _ROW_H / 2:.1f}" '
               f'width="{width - _LABEL_W - 6}" height="{_ROW_H}"/>'
               f'<text class="row-label" x="{_LABEL_W}" y="{y + 4:.1f}" '
               f'text-anchor="end">{layer}.{site} ({len(members[(layer, site)])})</text>')
  largest = max((abs(e.value) for e in c.edges), default=1.0) or 1.0
  names = [node_name(n) for n in c.nodes]
  out.append('<g id="edges">')
  for e in c.edges:
    (x1, y1), (x2, y2) = xy[e.source_node], xy[e.target_node]
    sign = "pos" if e.value >= 0 else "neg"
    out.append(f'<line class="{sign}" data-edge="{names[e.source_node]}->'
               f'{names[e.target_node]}" data-w="{e.value:.4g}" x1="{x1:.1f}" y1="{y1:.1f}" '
               f'x2="{x2:.1f}" y2="{y2:.1f}" '
               f'stroke-width="{0.4 + 2.8 * abs(e.value) / largest:.2f}"/>')
  out.append('</g><g id="nodes">')
  deltas = [d["ablated_loss"] - circuit_loss for d in node_data]
  top = max(max(deltas), 1e-9)
  for k, name in enumerate(names):
    x, y = xy[k]
    out.append(f'<circle data-node="{name}" data-i="{k}" cx="{x:.1f}" cy="{y:.1f}" '
               f'r="{radius:.1f}" fill="{_importance_colour(deltas[k] / top)}"/>')
  out.append("</g></svg>")
  return "".join(out)


def _importance_colour(t: float) -> str:
  """Grey for a node whose ablation costs nothing, deep orange for the costliest; blue
  for one whose ablation helps."""
  if t < 0:
    return "#b9d1e8"
  t = min(1.0, t) ** 0.5
  grey, hot = (200, 200, 200), (222, 84, 10)
  return "#" + "".join(f"{round(g + (h - g) * t):02x}" for g, h in zip(grey, hot))


# --- The circuit page.

def _examples_table(data: dict) -> str:
  rows = []
  for b, s in enumerate(data["sequences"]):
    prompt = "".join(s["tokens"])[-60:]
    rows.append(f"<tr><td>{b // 2 + 1}</td><td class=\"prompt\"><code>{_esc(prompt)}</code>"
                f"</td><td><code>{_esc(s['correct'])}</code></td><td><code>"
                f"{_esc(s['incorrect'])}</code></td>" +
                "".join(f"<td>{_number(p)}</td><td>{_number(q)}</td><td><b>{_two_way(p, q)}"
                        "</b></td>" for p, q in (s["full"], s["circuit"])) + "</tr>")
  return ('<table class="grid examples"><tr><th rowspan="2">pair</th><th rowspan="2">'
          'prompt (its end)</th><th rowspan="2">correct</th><th rowspan="2">incorrect</th>'
          '<th colspan="3">full model</th><th colspan="3">circuit</th></tr><tr>' +
          '<th>p(correct)</th><th>p(incorrect)</th><th>of the two</th>' * 2 +
          f'</tr>{"".join(rows)}</table>')


def _two_way(p: float, q: float) -> str:
  """p(correct) between the two candidates alone: what the task loss scores."""
  return f"{p / (p + q):.3f}" if p + q > 0 else "&mdash;"


def loss_size_plot(metrics: dict) -> str:
  """Loss against circuit size: the file's metrics.curve, else its sweep runs' points."""
  refs = [("target", metrics["target_loss"]), ("chance", CHANCE)]
  if "full_model_loss" in metrics.get("train", {}):
    refs.append(("full model", metrics["train"]["full_model_loss"]))
  curve = metrics.get("curve")
  if curve:
    xs = [p["nodes"] for p in curve]
    series = [("raw", xs, [p["loss_raw"] for p in curve]),
              ("calibrated", xs, [p["loss_calibrated"] for p in curve])]
    log_x = min(xs) > 0 and max(xs) / min(xs) > 20
    return (plots.line_plot(series, "circuit nodes", "task loss (train pairs)",
                            tuple(refs), points=True, log_x=log_x) +
            '<p class="note">From the file\'s <code>metrics.curve</code>.</p>')
  runs = metrics.get("runs", [])
  if not runs:
    return '<p class="note">The file has no loss-versus-size data.</p>'
  series = [(f"k_coef {r['k_coef']:g}, seed {r['seed']}", [r["circuit_nodes"]],
             [r["circuit_loss"]]) for r in runs]
  return (plots.line_plot(series, "circuit nodes", "task loss (train pairs, raw)",
                          tuple(refs), points=True) +
          '<p class="note">This file has no <code>metrics.curve</code> (prune again to '
          'record the bisection); shown: each sweep run\'s exact-size circuit.</p>')


def _trust(metrics: dict) -> str:
  parts = ["<h3>Faithfulness on held-out pairs</h3>"]
  if "heldout" in metrics:
    parts.append(_explained(metrics["heldout"], HELDOUT_MEANINGS))
  else:
    parts.append('<p class="note">Not measured (pruned with prune.faithfulness off).</p>')
  parts.append("<h3>Null baselines</h3>")
  if "nulls" in metrics:
    parts.append(_explained(metrics["nulls"], NULL_MEANINGS))
  else:
    parts.append('<p class="note">Not run (prune.null_steps was 0, as in make demo; '
                 'python -m launch.prune runs them).</p>')
  parts.append("<h3>Loss versus circuit size</h3>" + loss_size_plot(metrics))
  if "search" in metrics:
    parts.append("<h3>Search</h3>" + value_html(metrics["search"]))
  parts.append("<h3>Training pairs and sweep</h3>" + value_html(
      {"train": metrics.get("train"), "runs": metrics.get("runs"),
       "seconds": metrics.get("seconds")}))
  return "".join(parts)


def circuit_page(c, data: dict, n_layer: int, index_href: str = "index.html") -> str:
  """One circuit's page."""
  m = c.metrics
  held = m.get("heldout", {})
  summary = (f"{len(c.nodes)} nodes, {len(c.edges)} edges &middot; {_esc(c.ablation['kind'])} "
             f"ablation &middot; step {c.model['step']} of <code>{_esc(c.model['workdir'])}"
             f"</code> &middot; target loss {m.get('target_loss')}")
  if held:
    error = (f" &plusmn; {held['circuit_loss_se']:.4f}" if "circuit_loss_se" in held
             else "")  # absent from files written before it
    summary += (f" &middot; held-out loss {held.get('circuit_loss', 0):.4f}{error} "
                f"(full model {held.get('full_model_loss', 0):.4f})")
  heads = "".join(
      f'<figure class="head"><figcaption>layer {h["layer"]} head {h["head"]}</figcaption>'
      f'<canvas data-head="{i}"></canvas></figure>' for i, h in enumerate(data["heads"]))
  body = f"""
<header><a href="{_esc(index_href)}">&larr; all circuits</a>
<h1>{_esc(c.task['name'])}</h1><p class="summary">{summary}</p></header>
<section class="graph-and-panel">
 <div class="graph-box">
  <p class="legend"><span class="sw pos"></span>positive weight
  <span class="sw neg"></span>negative weight (width: |weight|) &middot; node colour: task
  loss when just that node is ablated, <span class="dot cold"></span>no cost to
  <span class="dot hot"></span>most &middot; hover for values, click a node</p>
  <div class="graph-scroll">{graph_svg(c, data["nodes"], data["circuit_loss"], n_layer)}</div>
 </div>
 <aside id="panel"><p class="hint">Click a node to see what it does: its activations on
 task prompts, its top-activating contexts in the validation text, and the task loss
 without it.</p></aside>
</section>
<section><h2>The task, through the circuit</h2>
<p>Example held-out pairs: the probabilities of both candidates (over the vocabulary)
under the full model and the circuit (calibrated), and the correct one's share of the two,
which is what the task loss scores. Circuit task loss {data['circuit_loss']:.4f} on {_esc(data['scored_on'])}.
</p>{_examples_table(data)}
<h3>Attention patterns of the kept heads</h3>
<p class="note">In the circuit, on both prompts of pair 1 (rows: query token, columns: key
token). A head is kept when any of its query, key or value channels is.</p>
<div class="heads">{heads or '<p class="note">The circuit keeps no attention channel.</p>'}
</div></section>
<section><h2>How much to trust it</h2>{_trust(m)}</section>
<div id="tip"></div>"""
  return _document(f"{c.task['name']} circuit", body, _json_script("circuit-data", data))


# --- The index page.

def index_page(rows: list[dict], training: list[dict], task_results, step: int,
               workdir: str) -> str:
  """Every circuit of the run in one table, its training curve and its task table."""
  trs = []
  for r in rows:
    m, link = r["metrics"], r["href"]
    held, nulls = m.get("heldout", {}), m.get("nulls", {})
    name = (f'<a href="{_esc(link)}">{_esc(r["task"])}</a>' if link else
            f'{_esc(r["task"])} <span class="note">(no page: {_esc(r["why"])})</span>')
    null_text = ", ".join(f"{k}: {_number(v.get('nodes'))} nodes" for k, v in nulls.items()
                          if isinstance(v, dict)) or "&mdash;"
    trs.append(
        f"<tr><td>{name}</td><td>{_number(m.get('nodes'))}</td>"
        f"<td>{_number(m.get('edges'))}</td><td>{_number(m.get('target_loss'))}</td>"
        f"<td>{_number(m.get('train', {}).get('circuit_loss'))}</td>"
        f"<td>{_number(held.get('circuit_loss'))}</td>"
        f"<td>{_number(held.get('full_model_loss'))}</td>"
        f"<td>{_number(held.get('necessity_loss'))}</td>"
        f"<td>{_number(held.get('necessary'))}</td><td>{null_text}</td></tr>")
  circuits = ('<table class="grid"><tr><th>task</th><th>nodes</th><th>edges</th>'
              '<th>target</th><th>train loss</th><th>held-out loss</th><th>full model '
              '(held-out)</th><th>necessity loss</th><th>necessary</th><th>nulls</th></tr>'
              f'{"".join(trs)}</table>') if trs else '<p class="note">No circuits yet.</p>'
  losses = [r for r in training if "loss" in r]
  vals = [r for r in training if "val_loss" in r]
  series = [("loss", [r["step"] for r in losses], [r["loss"] for r in losses])]
  if vals:
    series.append(("val_loss", [r["step"] for r in vals], [r["val_loss"] for r in vals]))
  curve = (plots.line_plot(series, "step", "loss (nats per token)", points=bool(vals))
           if losses else '<p class="note">No metrics.jsonl records.</p>')
  tasks = "".join(
      f"<tr><td>{_esc(t.task)}</td><td>{t.n}</td><td>{_number(t.loss)}</td>"
      f"<td>{_number(t.accuracy)}</td><td>{_esc(t.status)}</td></tr>" for t in task_results)
  body = f"""
<header><h1>Circuits of <code>{_esc(workdir)}</code></h1>
<p class="summary">checkpoint step {step}; each task's circuit links to its page.</p></header>
<section><h2>Circuits</h2>{circuits}
<p class="note">Losses are per-sequence task losses (chance: ln 2 = 0.693); train loss is
calibrated; necessary: the model without the circuit is nearer chance than the full model.
</p></section>
<section><h2>Training curve</h2>{curve}</section>
<section><h2>Tasks: the full model on held-out pairs</h2>
<table class="grid"><tr><th>task</th><th>n</th><th>loss</th><th>accuracy</th><th>status</th>
</tr>{tasks}</table><p class="note">As <code>python -m launch.tasks --workdir={_esc(workdir)}
</code> prints it.</p></section>"""
  return _document(f"circuits of {workdir}", body)
