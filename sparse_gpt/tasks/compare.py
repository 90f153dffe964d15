"""Several runs' task tables side by side, lined up by task (e.g. sparse vs dense)."""

from sparse_gpt.tasks.evaluate import TaskResult

# A task counts as accurate at this held-out accuracy (the method's bar for the demo model).
# Not to be confused with "solved" in pruning: a full-model task loss under the target.
ACCURATE = 0.9
ACCURATE_LABEL = f"accurate (accuracy >= {ACCURATE})"


def count_accurate(results: list[TaskResult]) -> int:
  return sum(r.accuracy is not None and r.accuracy >= ACCURATE for r in results)


def _cell(r: TaskResult | None) -> str:
  if r is None or r.loss is None:
    return "-"
  return f"{r.loss:.4f} {r.accuracy:.3f}"


def format_comparison(labels: list[str], tables: list[list[TaskResult]]) -> str:
  """One row per task, one `loss accuracy` column per run, then the count accurate.

  Runs may have different tokenizers, so a task posable in one may not be in another:
  such a cell shows "-".
  """
  by_run = [{r.task: r for r in results} for results in tables]
  tasks = list(dict.fromkeys(r.task for results in tables for r in results))
  accurate = [str(count_accurate(results)) for results in tables]
  rows = [["task"] + labels, [""] + ["loss accuracy"] * len(labels)]
  rows += [[task] + [_cell(run.get(task)) for run in by_run] for task in tasks]
  rows.append([ACCURATE_LABEL] + accurate)
  widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
  return "\n".join(
      "  ".join([row[0].ljust(widths[0])] +
                [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]).rstrip()
      for row in rows)
