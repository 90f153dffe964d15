"""A grid of models trained and pruned alike: the data points of the frontier (docs/frontier.md).

A sweep config is a base run config plus a grid: widths (d_model, with d_mlp and the head
count scaled alike), L0 levels (the hidden density at the base width; the density at
another width follows `density_scaling`), and a dense baseline of every width. Each grid
point is a named model in its own workdir, <sweep workdir>/<name>, trained and pruned
independently of the others, so any subset can run anywhere.

Every point prunes every task of the sweep (`tasks`, `pairs`) with the sweep's one
pruning config, and records in <point>/sweep_tasks.json each task's full-model loss and,
where it reaches the target, its circuit's size. Which tasks every model solves is only
known once all points are done; the frontier (sparse_gpt/frontier.py) takes that common
set afterwards.
"""

import dataclasses
import fractions
import json
import pathlib

import jax
import ml_collections
import numpy as np

from sparse_gpt import config as config_lib
from sparse_gpt import config_checks
from sparse_gpt import progress
from sparse_gpt import run_io
from sparse_gpt import storage
from sparse_gpt import train as train_lib
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import ConfigError, UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import pipeline
from sparse_gpt.tasks import registry
from sparse_gpt.tasks.errors import TaskNotPosable

SCALINGS = ("l0", "paper")
SWEEP_FILE = "sweep.json"  # in the sweep workdir: the config and its points
TASKS_FILE = "sweep_tasks.json"  # in each point's workdir: what pruning found


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.base = config_lib.defaults()  # the run config every point starts from
  c.widths = (256,)  # d_model of each width; d_mlp and n_head scale with it
  c.l0 = (1 / 16,)  # hidden densities at the base width, one per L0 level
  c.embed_ratio = 4.0  # embedding density / hidden density at the base width
  # How densities follow the width factor EF = width / base.model.d_model. "l0": hidden
  # / EF**2 and embedding / EF, so every width of a level has the same number of nonzero
  # weights (up to the neuron floor); "paper": both / EF, as experiments/paper.py.
  c.density_scaling = "l0"
  c.with_dense = True  # a dense baseline of every width
  c.dense = ml_collections.ConfigDict({"sparsity": {"enabled": False},
                                       "model": {"abstopk_at": "none"}})
  c.per_width = ml_collections.ConfigDict()  # "d<width>" -> overrides for that width
  c.tasks = "all"  # registered tasks to prune: "all", "" or a comma list
  c.pairs = ""  # pairs files (JSONL) to prune as well, a comma list
  c.prune = prune_config.defaults()
  c.targets = (0.02, 0.05, 0.1, 0.2, 0.5)  # target losses of target_sweep.png
  return c


@dataclasses.dataclass(frozen=True)
class Point:
  index: int
  name: str
  workdir: str
  sparse: bool
  width: int
  l0: str | None  # the L0 level's letter: a, b, ... in the order of `l0`; None if dense
  config: ml_collections.ConfigDict

  def describe(self) -> dict:
    s = self.config.sparsity
    return {"index": self.index, "name": self.name, "workdir": self.workdir,
            "sparse": self.sparse, "width": self.width, "l0": self.l0,
            "d_mlp": self.config.model.d_mlp, "n_head": self.config.model.n_head,
            "target_density": s.target_density if self.sparse else 1.0,
            "embed_density": s.embed_density if self.sparse else 1.0,
            "steps": self.config.train.steps}


def fraction(x: float) -> str:
  """1/4 for 0.25: densities read as the fractions they were set as."""
  f = fractions.Fraction(x).limit_denominator(4096)
  return str(f) if abs(float(f) - x) < 1e-9 * x else f"{x:g}"


def points(cfg: ml_collections.ConfigDict, workdir: str) -> list[Point]:
  """The grid, width by width: its L0 levels, then its dense baseline."""
  validate(cfg)
  base = cfg.base
  out = []

  def add(name, sparse, width, level, overrides):
    c = base.copy_and_resolve_references()
    ef = width / base.model.d_model
    c.model.d_model = width
    c.model.d_mlp = base.model.d_mlp * width // base.model.d_model
    c.model.n_head = base.model.n_head * width // base.model.d_model
    c.update(overrides)
    c.update(cfg.per_width.get(f"d{width}", {}))
    if sparse:
      hidden = cfg.l0[ord(level) - ord("a")]
      c.sparsity.target_density = hidden / (ef**2 if cfg.density_scaling == "l0" else ef)
      c.sparsity.embed_density = min(1.0, cfg.embed_ratio * hidden / ef)
    out.append(Point(len(out), name, f"{workdir.rstrip('/')}/{name}", sparse, width,
                     level, c))

  for width in cfg.widths:
    for i in range(len(cfg.l0)):
      level = chr(ord("a") + i)
      add(f"d{width}_sparse_{level}", True, width, level, {"sparsity": {"enabled": True}})
    if cfg.with_dense:
      add(f"d{width}_dense", False, width, None, cfg.dense)
  for p in out:
    try:
      config_lib.validate(p.config)
    except UserError as e:
      raise type(e)(f"grid point {p.index} ({p.name}): {e}") from None
  return out


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad key of the sweep's own settings."""
  v = config_checks.Checks(cfg, "config.")
  unknown = sorted(set(cfg.keys()) - set(defaults().keys()))
  if unknown:
    raise ConfigError(f"config.{unknown[0]}: unknown key of a sweep config (its keys are "
                      f"{', '.join(sorted(defaults().keys()))}); give a sweep config such "
                      "as experiments/frontier.py")
  base_width, base_heads = cfg.base.model.d_model, cfg.base.model.n_head
  v.sequence("widths", lambda w: config_checks.is_integer(w) and w > 0
             and w * base_heads % base_width == 0,
             f"positive integers that keep whole heads (width x {base_heads} heads / "
             f"{base_width} is an integer), e.g. ({base_width}, {2 * base_width})")
  if len(set(cfg.widths)) < len(cfg.widths):
    v.fail("widths", cfg.widths, "names a width twice")
  v.sequence("l0", lambda d: config_checks.is_finite_number(d) and 0 < d <= 1,
             "densities in (0, 1], e.g. (1/4, 1/8)")
  v.number("embed_ratio", 0, open_low=True)
  v.choice("density_scaling", SCALINGS)
  v.boolean("with_dense")
  v.string("tasks", empty_ok=True, hint=": 'all', '' or a comma list of registered tasks")
  v.string("pairs", empty_ok=True, hint=": a comma list of JSONL pairs files")
  v.sequence("targets", lambda t: config_checks.is_finite_number(t) and t > 0,
             "target losses > 0, e.g. (0.05, 0.1, 0.2)")
  prune_config.validate(cfg.prune)
  task_names(cfg)


def task_names(cfg: ml_collections.ConfigDict) -> dict[str, str | None]:
  """The sweep's tasks: circuit name -> its pairs file, or None for a registered task."""
  spec = cfg.tasks.strip()
  names = registry.names() if spec == "all" else [n.strip() for n in spec.split(",")
                                                  if n.strip()]
  for n in names:
    registry.get(n)
  tasks = dict.fromkeys(names)
  for f in (f.strip() for f in cfg.pairs.split(",") if f.strip()):
    name = pathlib.Path(f).stem
    if not pathlib.Path(f).is_file():
      raise UserError(f"config.pairs: {f} does not exist.")
    if name in tasks:
      raise UserError(f"config.pairs: {f} would be circuit {name!r}, which another task "
                      "of the sweep already names; rename the file.")
    tasks[name] = str(pathlib.Path(f).resolve())
  if not tasks:
    raise UserError("config.tasks and config.pairs name no task: give config.tasks=all or "
                    "a pairs file.")
  return tasks


def listing(pts: list[Point]) -> str:
  """One line per point: what --list prints."""
  lines = []
  for p in pts:
    d = p.describe()
    density = (f"hidden {fraction(d['target_density'])}, embed "
               f"{fraction(d['embed_density'])}" if p.sparse else "dense")
    lines.append(f"{p.index:>3}  {p.name:<18} d_model {p.width:<5} d_mlp {d['d_mlp']:<6} "
                 f"{density:<28} {d['steps']} steps  {p.workdir}")
  return "\n".join(lines)


def save(cfg: ml_collections.ConfigDict, workdir: str, pts: list[Point]) -> None:
  """<workdir>/sweep.json: what launch.frontier reads (the grid and the pruning config)."""
  wd = storage.path(workdir)
  wd.mkdir(parents=True, exist_ok=True)
  storage.write_text(wd / SWEEP_FILE, json.dumps(
      {"config": json.loads(cfg.to_json()), "points": [p.describe() for p in pts]},
      indent=2))


def load(workdir: str) -> dict:
  f = storage.path(workdir) / SWEEP_FILE
  if not f.exists():
    raise UserError(f"{f} does not exist: run python -m launch.sweep --config=... "
                    f"--workdir={workdir} first.")
  return json.loads(f.read_text())


def run(cfg: ml_collections.ConfigDict, workdir: str, index: int | None = None,
        say=progress.say) -> list[dict]:
  """Trains then prunes every point (or point `index` only), resuming where each stopped;
  returns their task records."""
  pts = points(cfg, workdir)
  if index is not None and not 0 <= index < len(pts):
    raise UserError(f"--index={index}: the grid has points 0..{len(pts) - 1} (see --list).")
  save(cfg, workdir, pts)
  records = []
  for p in pts if index is None else [pts[index]]:
    say(f"== point {p.index} of {len(pts)}: {p.name}")
    if train_lib.train(p.config, p.workdir).get("preempted"):
      say(f"{p.name}: preempted; rerun the same command to resume.")
      break
    records.append(prune_point(p.name, p.workdir, cfg, say))
  return records


def prune_point(name: str, workdir: str, cfg: ml_collections.ConfigDict,
                say=progress.say) -> dict:
  """Prunes every task of the sweep on one trained model, skipping those already in its
  record for this step and pruning config; writes the record after each task."""
  run_ = run_io.load_run(workdir)
  f = workdir_lib.path(workdir) / TASKS_FILE
  fresh = {"model": name, "step": run_.step, "prune_config": json.loads(cfg.prune.to_json()),
           **counts(run_.params), "tasks": {}}
  record = json.loads(f.read_text()) if f.exists() else fresh
  made_by = lambda r: {k: r.get(k) for k in fresh if k != "tasks"}
  if made_by(record) != made_by(fresh):
    record = fresh  # another checkpoint or recipe: nothing recorded still holds
  for task, pairs in task_names(cfg).items():
    if task in record["tasks"]:
      continue
    record["tasks"][task] = prune_task(run_, task, pairs, cfg.prune, task, say)
    storage.write_text(f, json.dumps(record, indent=2))
  return record


def prune_task(run_, task: str, pairs: str | None, prune_cfg, circuit_name: str,
               say=progress.say) -> dict:
  """Prunes one task (a registered one, or a pairs file) and saves its circuit as
  circuits/<circuit_name>.json; returns what the frontier needs of it."""
  try:
    data = (pipeline.registry_task(run_, task, prune_cfg) if pairs is None else
            pipeline.file_task(run_, pairs, task, prune_cfg))
    c = pipeline.prune(run_, data, prune_cfg, say)
  except pipeline.NotSolved as e:
    return {"solved": False, "full_model_loss": float(e.loss)}
  except TaskNotPosable as e:
    return {"solved": False, "full_model_loss": None, "note": str(e)}
  path = pipeline.circuit_path(run_.workdir, circuit_name)
  circuit_lib.save(c, path)
  return {"solved": True, "full_model_loss": float(c.metrics["train"]["full_model_loss"]),
          "nodes": len(c.nodes), "edges": len(c.edges),
          "circuit": f"circuits/{circuit_name}.json"}


def counts(params) -> dict:
  """The model's parameter count and its nonzero weights (its L0)."""
  leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
  return {"params": int(sum(x.size for x in leaves)),
          "nonzero": int(sum(np.count_nonzero(x) for x in leaves))}


def saved_config(saved: dict) -> ml_collections.ConfigDict:
  """The sweep config of a sweep.json (load)."""
  return ml_collections.ConfigDict(saved["config"])


def records(workdir: str, saved: dict) -> tuple[list[dict], list[dict]]:
  """(records, unfinished): per point of sweep.json that is trained and pruned on every
  task of the sweep, what the frontier needs; the points that are not, apart."""
  tasks = task_names(saved_config(saved))
  done, unfinished = [], []
  for p in saved["points"]:
    # The point's place under the sweep's workdir as given now: a relative workdir
    # recorded in sweep.json means another directory from elsewhere.
    wd = storage.path(workdir) / p["name"]
    summary, pruned = wd / "summary.json", wd / TASKS_FILE
    record = json.loads(pruned.read_text()) if pruned.exists() else {"tasks": {}}
    if not summary.exists() or set(tasks) - set(record["tasks"]):
      unfinished.append(p)
      continue
    done.append({**p, "workdir": str(wd),
                 "val_loss": json.loads(summary.read_text())["val_loss"],
                 "params": record["params"], "nonzero": record["nonzero"],
                 "tasks": {t: record["tasks"][t] for t in tasks}})
  return done, unfinished


def prune_targets(workdir: str, tasks: list[str], cfg: ml_collections.ConfigDict,
                  say=progress.say) -> dict[float, dict[str, int | None]]:
  """Circuit edges of `tasks` at each of cfg.targets (None where the model misses that
  target), pruned with cfg.prune at that target loss and saved as
  circuits/<task>.target-<t>.json; recorded in <workdir>/sweep_targets.json, so a rerun
  prunes only what is missing."""
  pairs = task_names(cfg)
  main = json.loads((workdir_lib.path(workdir) / TASKS_FILE).read_text())
  f = workdir_lib.path(workdir) / "sweep_targets.json"
  record = json.loads(f.read_text()) if f.exists() else {}
  if {k: record.get(k) for k in ("step", "prune_config")} != {
      k: main[k] for k in ("step", "prune_config")}:
    record = {"step": main["step"], "prune_config": main["prune_config"], "edges": {}}
  run_ = None
  out = {}
  for t in cfg.targets:
    at = record["edges"].setdefault(f"{t:g}", {})
    for task in tasks:
      if task not in at and t == cfg.prune.target_loss:
        at[task] = main["tasks"][task].get("edges")
      if task not in at:
        run_ = run_ or run_io.load_run(workdir)
        target_cfg = cfg.prune.copy_and_resolve_references()
        target_cfg.target_loss = t
        at[task] = prune_task(run_, task, pairs[task], target_cfg,
                              f"{task}.target-{t:g}", say).get("edges")
        storage.write_text(f, json.dumps(record, indent=2))
    out[t] = {task: at[task] for task in tasks}
  return out
