"""frontier.png and target_sweep.png, drawn off-screen (matplotlib's Agg canvas)."""

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparse_gpt import storage


def _save(fig: Figure, path) -> None:
  FigureCanvasAgg(fig)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
  storage.write_bytes(path, buf.getvalue())


def frontier_png(result: dict, path) -> None:
  """Validation loss against circuit edges, one point per model; lines join equal L0
  (solid) and equal width (dotted); the dashed line is the Pareto front."""
  models = result["models"]
  fig = Figure(figsize=(7, 5))
  ax = fig.add_subplot()
  groups = [("L0 " + l0, [m for m in models if m["l0"] == l0], "-")
            for l0 in sorted({m["l0"] for m in models if m["sparse"]})]
  groups += [(f"d_model {w}", [m for m in models if m["width"] == w], ":")
             for w in sorted({m["width"] for m in models})]
  for label, group, style in groups:
    if len(group) > 1:
      group = sorted(group, key=lambda m: (m["sparse"], m["width"], m["l0"] or ""))
      ax.plot([m["val_loss"] for m in group], [m["edges"] for m in group], style,
              lw=1.5, label=label, zorder=1)
  for sparse, marker, fill, label in ((True, "o", "k", "sparse"), (False, "s", "w", "dense")):
    ms = [m for m in models if m["sparse"] == sparse]
    if ms:
      ax.scatter([m["val_loss"] for m in ms], [m["edges"] for m in ms], marker=marker,
                 facecolors=fill, edgecolors="k", s=45, label=label, zorder=3)
  front = sorted((m for m in models if m["pareto"]), key=lambda m: m["val_loss"])
  ax.plot([m["val_loss"] for m in front], [m["edges"] for m in front], "--", color="k",
          lw=1, label="Pareto front", zorder=2)
  for m in models:
    ax.annotate(m["name"], (m["val_loss"], m["edges"]), fontsize=7,
                xytext=(4, 4), textcoords="offset points")
  ax.set_yscale("log")
  ax.set_xlabel("validation loss (nats per token; lower is more capable)")
  ax.set_ylabel(f"circuit edges (geometric mean over {len(result['common_tasks'])} tasks)")
  ax.set_title("Capability against interpretability")
  ax.legend(fontsize=7)
  _save(fig, path)


def target_sweep_png(curve: dict, path) -> None:
  """Circuit edges against the target loss for the models of `curve`
  (frontier.target_curve)."""
  fig = Figure(figsize=(6, 4.5))
  ax = fig.add_subplot()
  for name, edges in curve["edges"].items():
    points = [(t, e) for t, e in zip(curve["targets"], edges) if e is not None]
    ax.plot([t for t, _ in points], [e for _, e in points], "o-", label=name)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("target task loss")
  ax.set_ylabel("circuit edges (geometric mean over tasks both solve)")
  ax.set_title("Circuit size against target loss")
  ax.legend(fontsize=8)
  _save(fig, path)
