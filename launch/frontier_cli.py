"""What `python -m launch.frontier` does: frontier.json, frontier.png, target_sweep.png and
the table it prints."""

import json

from sparse_gpt import frontier
from sparse_gpt import frontier_plots
from sparse_gpt import progress
from sparse_gpt import storage
from sparse_gpt import sweep


def main(workdir: str, target_sweep: bool = True, say=progress.say) -> str:
  """Computes the sweep's frontier, writes its files and returns the table."""
  saved = sweep.load(workdir)
  records, unfinished = sweep.records(workdir, saved)
  result = frontier.compute(records)
  wd = storage.path(workdir)
  lines = [frontier.table(result)]
  if unfinished:
    lines.append("not finished, left out: " + ", ".join(
        f"{p['name']} (python -m launch.sweep --index={p['index']})" for p in unfinished))
  result["unfinished"] = [p["name"] for p in unfinished]
  frontier_plots.frontier_png(result, wd / "frontier.png")
  lines.append(f"wrote {wd / 'frontier.png'}")
  if target_sweep and result["matched"]:
    cfg = sweep.saved_config(saved)
    by_name = {r["name"]: r for r in records}
    edges = {}
    for name in (result["matched"]["sparse"], result["matched"]["dense"]):
      say(f"== target sweep: {name}")
      edges[name] = sweep.prune_targets(by_name[name]["workdir"], result["common_tasks"],
                                        cfg, say)
    result["target_sweep"] = frontier.target_curve(edges)
    frontier_plots.target_sweep_png(result["target_sweep"], wd / "target_sweep.png")
    lines.append(_curve_table(result["target_sweep"]))
    lines.append(f"wrote {wd / 'target_sweep.png'}")
  storage.write_text(wd / "frontier.json", json.dumps(result, indent=2))
  lines.append(f"wrote {wd / 'frontier.json'}")
  return "\n".join(lines)


def _curve_table(curve: dict) -> str:
  names = list(curve["edges"])
  rows = ["target   " + "".join(f"{n:>18}" for n in names) + "  tasks"]
  for i, t in enumerate(curve["targets"]):
    cells = "".join(f"{'-' if e is None else f'{e:.1f}':>18}"
                    for e in (curve["edges"][n][i] for n in names))
    rows.append(f"{t:<8g} {cells}  {len(curve['tasks'][i])}")
  return "\n".join(rows)
