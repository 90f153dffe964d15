"""Several runs' task tables side by side, lined up by task (e.g. sparse vs dense)."""

from sparse_gpt.tasks.evaluate import TaskResult

# A task counts as solved at this held-out accuracy (METHOD's bar for the demo model).
SOLVED_ACCURACY = 0.9


def _cell(r: TaskResult | None) -> str:
  if r is None or r.loss is None:
    return "-"
  return f"{r.loss:.4f} {r.accuracy:.3f}"


def format_comparison(labels: list[str], tables: list[list[TaskResult]]) -> str:
  """One row per task, one `loss accuracy` column per run, then the count solved.

  Runs may have different tokenizers, so a task posable in one may not be in another:
  such a cell shows "-".
  """
  by_run = [{r.task: r for r in results} for results in tables]
  tasks = list(dict.fromkeys(r.task for results in tables for r in results))
  solved = [str(sum(r.accuracy is not None and r.accuracy >= SOLVED_ACCURACY
                    for r in results)) for results in tables]
  rows = [["task"] + labels, [""] + ["loss accuracy"] * len(labels)]
  rows += [[task] + [_cell(run.get(task)) for run in by_run] for task in tasks]
  rows.append([f"solved (accuracy >= {SOLVED_ACCURACY})"] + solved)
  widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
  return "\n".join(
      "  ".join([row[0].ljust(widths[0])] +
                [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]).rstrip()
      for row in rows)
