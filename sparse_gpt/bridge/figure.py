"""The intervention plot (the paper's Fig. 9): effect on the dense model against strength."""

import pathlib


def plot(path: pathlib.Path, task: str, curves: dict[str, list[dict]],
         reference: dict[str, list[dict]]) -> None:
  """Writes a PNG of each curve's counterfactual-win fraction and probabilities.

  `curves`: label -> intervene.sweep rows of the dense model; `reference`: the same for
  the sparse model, drawn dashed in black on the fraction panel only (its probabilities
  are another model's). Agg, so no display is needed.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, (ax_moved, ax_p) = plt.subplots(1, 2, figsize=(10, 4))
  for (label, rows), color in zip(curves.items(), ("C0", "C3", "C2", "C1")):
    strength = [r["strength"] for r in rows]
    ax_moved.plot(strength, [r["moved"] for r in rows], "o-", color=color, label=label)
    ax_p.plot(strength, [r["p_counterfactual"] for r in rows], "o-", color=color,
              label=f"{label}: counterfactual")
    ax_p.plot(strength, [r["p_own"] for r in rows], "o--", color=color,
              label=f"{label}: own answer")
  for label, rows in reference.items():
    ax_moved.plot([r["strength"] for r in rows], [r["moved"] for r in rows], "s--",
                  color="k", label=label)
  ax_moved.set(xlabel="intervention strength", ylabel="fraction of held-out prompts",
               title="model now prefers the counterfactual answer", ylim=(-0.02, 1.02))
  ax_p.set(xlabel="intervention strength", ylabel="dense model probability",
           title="probability of each candidate")
  for ax in (ax_moved, ax_p):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(f"{task}: sparse circuit nodes through the bridges, on the dense model")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
