"""The text front end of launch.bridge: a bridged run's circuit, as dense interventions."""

import json
import re

import ml_collections

from sparse_gpt import storage
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.bridge import figure
from sparse_gpt.bridge import intervene
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import pipeline
from sparse_gpt.tasks import resolve

_NODE = re.compile(r"(\d+)\.(attn|mlp)\.in\[(\d+)\]")


def parse_nodes(labels, b: intervene.Bridged) -> list[tuple[str, int]]:
  """(site, channel) of node labels such as "0.attn.in[12]"; a bad one is a UserError."""
  m = b.sparse.config.model
  nodes = []
  for label in labels:
    match = _NODE.fullmatch(label.strip())
    if not match or int(match[1]) >= m.n_layer or int(match[3]) >= m.d_model:
      raise UserError(f"--nodes: {label!r} is not a residual-read node of this model; give "
                      f"<layer>.attn.in[<channel>] or <layer>.mlp.in[<channel>] with layer "
                      f"0..{m.n_layer - 1} and channel 0..{m.d_model - 1}, e.g. 0.attn.in[3].")
    nodes.append((f"{match[1]}.{match[2]}", int(match[3])))
  return nodes


def _heldout(c: circuit_lib.Circuit, b: intervene.Bridged) -> resolve.TaskBatch:
  """The circuit's held-out pairs, drawn as pruning drew them."""
  cfg = ml_collections.ConfigDict(c.prune_config)
  task = c.task
  if task["source"] == "registry":
    data = pipeline.registry_task(b.sparse, task["name"], cfg)
  else:
    data = pipeline.file_task(b.sparse, task["pairs_file"], task["name"], cfg)
  return resolve.padded(data.heldout, b.sparse.config.model.n_ctx)


def _label(node: tuple[str, int]) -> str:
  site, channel = node
  return f"{site}.in[{channel}]"


def _table(curves: dict[str, list[dict]]) -> list[str]:
  strengths = [r["strength"] for r in next(iter(curves.values()))]
  width = max(map(len, curves))
  lines = [f"{'':{width}}  " + "  ".join(f"s={s:<4g} moved p_own p_cf" for s in strengths)]
  for label, rows in curves.items():
    lines.append(f"{label:{width}}  " + "  ".join(
        f"{r['moved']:11.2f} {r['p_own']:5.3f} {r['p_counterfactual']:4.3f}" for r in rows))
  return lines


def main(workdir: str, circuit: str, nodes=(), strengths=(0, 0.25, 0.5, 0.75, 1.0),
         seed: int = 0) -> str:
  if not strengths or any(not 0 <= s <= 1 for s in strengths):
    raise UserError(f"--strengths={','.join(map(str, strengths))}: give strengths in "
                    "[0, 1], e.g. --strengths=0,0.5,1")
  b = intervene.load(workdir)
  c = circuit_lib.load(circuit)
  circuit_lib.check_run(c, b.sparse)
  chosen = parse_nodes(nodes, b) if nodes else intervene.residual_nodes(c.nodes)
  if not chosen:
    raise UserError(f"circuit file {circuit} keeps no residual-read node (attn.in or "
                    "mlp.in): name some with --nodes=0.attn.in[3],...")
  batch = _heldout(c, b)
  d_model = b.sparse.config.model.d_model
  control = intervene.random_control(chosen, d_model, seed)
  probabilities = intervene.make_probabilities(b, batch)
  sweep = lambda ns: intervene.sweep(b, ns, strengths, probabilities)
  together = {f"circuit ({len(chosen)} nodes)": sweep(chosen),
              f"random control ({len(control)} nodes)": sweep(control)}
  everything = intervene.site_channels(chosen, d_model)
  site_rows = sweep(everything)
  curves = {**together, f"all channels of its sites ({len(everything)} nodes)": site_rows}
  # The same patch of the circuit's channels in the sparse model: what the bridges carry over.
  sparse_rows = intervene.sweep(b, chosen, strengths,
                                intervene.make_probabilities(b, batch, in_sparse=True))
  reference = {f"circuit in the sparse model itself ({len(chosen)} nodes)": sparse_rows}
  single = {}
  for node in chosen:
    (other,) = intervene.random_control([node], d_model, seed + 1 + len(single))
    single[_label(node)] = dict(node=sweep([node]), control=_label(other),
                                control_rows=sweep([other]))
  task = c.task["name"]
  wd = workdir_lib.path(workdir)
  figure.plot(wd / f"bridge_{task}.png", task, curves, reference)
  storage.write_text(wd / f"bridge_{task}.json", json.dumps(dict(
      task=task, circuit=str(circuit), step=b.sparse.step, heldout_pairs=len(batch) // 2,
      strengths=list(map(float, strengths)), together=together,
      site_channels=site_rows, sparse_model=sparse_rows, nodes=single), indent=2))
  top = max(strengths)
  lines = [f"{task}: {len(batch) // 2} held-out pairs of {circuit}, step {b.sparse.step}; "
           "moved = fraction where the dense model (the sparse one in the last row) now "
           "prefers the counterfactual answer",
           *_table({**curves, **reference}), "",
           f"each node alone at strength {top:g} (moved: node / random node of its site):"]
  at_top = lambda rows: next(r for r in rows if r["strength"] == top)["moved"]
  order = sorted(single, key=lambda k: -at_top(single[k]["node"]))
  lines += [f"  {k:18} {at_top(single[k]['node']):5.2f} / {at_top(single[k]['control_rows']):.2f}"
            f" ({single[k]['control']})" for k in order]
  lines.append(f"wrote {wd / f'bridge_{task}.png'} and bridge_{task}.json")
  return "\n".join(lines)
