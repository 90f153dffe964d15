"""Plain-text reports of finished work, for the terminal."""

import collections


def training_summary(summary: dict) -> str:
  """Final losses, throughput, and the measured density of every weight tensor."""
  fmt = lambda x: "n/a" if x is None else f"{x:.4f}"
  lines = [f"step {summary['step']}/{summary['steps']}: train loss {fmt(summary['train_loss'])}"
           f", validation loss {fmt(summary['val_loss'])}, {summary['tokens_per_s']:,.0f} tokens/s"]
  if summary.get("preempted"):
    lines.append("stopped early by SIGTERM: rerun the same command to resume")
  lines.append("measured density (nonzero fraction) of each weight tensor:")
  # Tensors of the same role across layers usually share a density: group them.
  by_density = collections.defaultdict(list)
  for name, density in summary["densities"].items():
    by_density[density].append(name)
  for density, names in sorted(by_density.items()):
    lines.append(f"  {density:8.4f}  {', '.join(names)}")
  if "bridge" in summary:
    lines += bridge_quality(summary["bridge"])
  return "\n".join(lines)


def bridge_quality(bridge: dict) -> list[str]:
  """A bridged run's summary["bridge"] (docs/bridges.md) as a table, one row per site."""
  task = bridge["task"]
  scored = bridge.get("task_status") == "ok"
  lines = [f"bridges (validation windows; {task} held-out accuracy"
           f"{'' if scored else ': ' + bridge.get('task_status', 'not scored')}):",
           "  site     nmse_enc nmse_dec kl_sparse kl_dense dense_loss_decoded"
           + (" task_acc_decoded" if scored else "")]
  for row in bridge["sites"]:
    lines.append(f"  {row['site']:8} {row['nmse_encode']:8.4f} {row['nmse_decode']:8.4f} "
                 f"{row['kl_sparse']:9.4f} {row['kl_dense']:8.4f} "
                 f"{row['dense_loss_decoded']:18.4f}"
                 + (f" {row['task_accuracy_decoded']:16.3f}" if scored else ""))
  own = f"dense model's own validation loss {bridge['dense_val_loss']:.4f}"
  if scored:
    own += (f"; task accuracy: dense {bridge['dense_task_accuracy']:.3f}, sparse "
            f"{bridge['sparse_task_accuracy']:.3f}")
  return lines + [f"  {own}"]
