"""A run's viewer pages: <workdir>/view/index.html and one <circuit file stem>.html each."""

from collections.abc import Sequence
import time

from sparse_gpt import progress
from sparse_gpt import run_io
from sparse_gpt import storage
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.tasks import table_file
from sparse_gpt.view import data as data_lib
from sparse_gpt.view import page


def view_dir(workdir: str):
  return workdir_lib.path(workdir) / "view"


def _page_file(workdir: str, circuit_path) -> "storage.epath.Path":
  return view_dir(workdir) / f"{storage.path(circuit_path).stem}.html"


def write(workdir: str | None, circuits: Sequence[str] = (), say=progress.say,
          run=None) -> dict:
  """Writes the pages of `circuits` (default: every file in <workdir>/circuits) and the
  index; returns {"index": path, "pages": [path, ...]}.

  Without `workdir`, the run is the first circuit's model.workdir; `run`, if given, is
  that workdir loaded already (a circuit of its step reuses it).
  """
  if not workdir:
    if not circuits:
      raise UserError("give --workdir=<a trained run> (or --circuit=<a circuit file>).")
    workdir = circuit_lib.load(circuits[0]).model["workdir"]
  cfg = workdir_lib.load_config(workdir)  # a workdir holding no run fails here
  in_run = sorted(str(p) for p in (workdir_lib.path(workdir) / "circuits").glob("*.json"))
  chosen = list(circuits) or in_run
  if not chosen:
    raise UserError(f"{workdir} has no circuit files in {workdir}/circuits: prune first "
                    f"(python -m launch.prune --workdir={workdir} --task=all).")
  loaded = [circuit_lib.load(p) for p in chosen]
  for c in loaded:
    data_lib.check(c, cfg, workdir)

  start = time.time()
  runs = {run.step: run} if run else {}
  for step in sorted({c.model["step"] for c in loaded} - set(runs)):
    runs[step] = run_io.load_run(workdir, step)  # a missing checkpoint is one error
  models = {step: data_lib.Model(runs[step]) for step in {c.model["step"] for c in loaded}}
  say(f"top contexts of every node over {data_lib.CONTEXT_WINDOWS} validation windows: "
      f"{time.time() - start:.1f} s")
  tasks = [data_lib.task_batch(runs[c.model["step"]], c) for c in loaded]
  length = data_lib.common_length(next(iter(runs.values())), tasks)
  pages = []
  for path, c, task in zip(chosen, loaded, tasks):
    begun = time.time()
    circuit_data = data_lib.circuit_data(models[c.model["step"]], c, task, length)
    f = _page_file(workdir, path)
    storage.write_text(f, page.circuit_page(c, circuit_data, cfg.model.n_layer))
    pages.append(str(f))
    say(f"{c.task['name']}: {len(c.nodes)} nodes, {len(c.edges)} edges -> {f} "
        f"({time.time() - begun:.1f} s)")

  rows = []
  for path in dict.fromkeys([*in_run, *chosen]):
    try:
      c = loaded[chosen.index(path)] if path in chosen else circuit_lib.load(path)
    except UserError as e:
      rows.append({"task": storage.path(path).stem, "metrics": {}, "href": None,
                   "why": str(e)})
      continue
    f = _page_file(workdir, path)
    rows.append({"task": c.task["name"], "metrics": c.metrics,
                 "href": f.name if f.exists() else None,
                 "why": f"write it with python -m launch.view --circuit={path}"})
  run = runs[loaded[0].model["step"]]  # the index reports the first circuit's checkpoint
  index = view_dir(workdir) / "index.html"
  table = table_file.full_model_table(run)  # launch.tasks saved it, or it is scored now
  storage.write_text(index, page.index_page(rows, workdir_lib.read_metrics(workdir), table,
                                            run.step, workdir))
  say(f"pages of {len(pages)} circuit(s) and the index in {time.time() - start:.1f} s")
  return {"index": str(index), "pages": pages}
