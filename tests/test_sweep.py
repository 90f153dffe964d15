"""The sweep: its grids, --index, resuming, and a two-model micro sweep end to end."""

import json
import pathlib
import subprocess
import sys

from matplotlib import image
import pytest

import tiny_setup
from experiments import frontier as frontier_config
from experiments import frontier_paper
from experiments import paper
from experiments import tiny
from launch import frontier_cli
from sparse_gpt import sweep
from sparse_gpt.errors import UserError


def test_cpu_grid_expands_to_the_listed_models_with_unique_workdirs():
  pts = sweep.points(frontier_config.get_config(), "runs/f")
  assert [p.name for p in pts] == ["d128_sparse_a", "d128_sparse_b", "d128_dense",
                                   "d256_sparse_a", "d256_sparse_b", "d256_dense"]
  assert [p.index for p in pts] == list(range(6))
  assert [p.workdir for p in pts] == [f"runs/f/{p.name}" for p in pts]
  by_name = {p.name: p.config for p in pts}
  assert (by_name["d256_dense"].model.d_model, by_name["d256_dense"].model.d_mlp,
          by_name["d256_dense"].model.n_head) == (256, 1024, 8)
  assert not by_name["d256_dense"].sparsity.enabled
  assert by_name["d256_dense"].train.learning_rate == 3e-3
  assert by_name["d128_sparse_a"].train.learning_rate == 8e-2
  # Equal L0 across widths: hidden matrices grow 4x and embeddings 2x at d_model 256.
  for level, hidden, embed in (("a", 1 / 4, 1 / 2), ("b", 1 / 8, 1 / 4)):
    s128, s256 = by_name[f"d128_sparse_{level}"].sparsity, by_name[
        f"d256_sparse_{level}"].sparsity
    assert (s128.target_density, s128.embed_density) == (hidden, embed)
    assert (s256.target_density, s256.embed_density) == (hidden / 4, embed / 2)


def test_paper_grid_is_paper_py_at_each_width():
  pts = sweep.points(frontier_paper.get_config(), "runs/p")
  assert len(pts) == 4 * 5
  for ef in (1, 2, 4, 8):
    want = paper.get_config(str(ef))
    at = [p for p in pts if p.width == 256 * ef]
    assert [p.l0 for p in at] == ["a", "b", "c", "d", None]
    # Level b is the paper's own density (f = 1/4).
    b = at[1].config
    assert b.model == want.model and b.train == want.train
    assert b.sparsity == want.sparsity
    assert not at[-1].config.sparsity.enabled


def test_bad_index_and_widths_are_one_user_error(tmp_path):
  cfg = frontier_config.get_config()
  with pytest.raises(UserError, match=r"--index=6: the grid has points 0..5"):
    sweep.run(cfg, str(tmp_path), index=6)
  cfg.widths = (128, 100)
  with pytest.raises(UserError, match=r"config.widths=\(128, 100\).*whole heads"):
    sweep.points(cfg, str(tmp_path))
  with pytest.raises(UserError, match=r"config.data: unknown key.*give a sweep config"):
    sweep.points(tiny.get_config(), str(tmp_path))


def _record_calls(monkeypatch, preempted: bool) -> list:
  """Replaces training and pruning by a log of (what, workdir) calls."""
  calls = []
  monkeypatch.setattr(sweep.train_lib, "train",
                      lambda c, wd: calls.append(("train", wd)) or {"preempted": preempted})
  monkeypatch.setattr(sweep, "prune_point",
                      lambda name, wd, c, say: calls.append(("prune", wd)) or {})
  return calls


def test_index_runs_exactly_one_point(tmp_path, monkeypatch):
  calls = _record_calls(monkeypatch, preempted=False)
  sweep.run(frontier_config.get_config(), str(tmp_path), index=3, say=lambda _: None)
  assert calls == [("train", f"{tmp_path}/d256_sparse_a"),
                   ("prune", f"{tmp_path}/d256_sparse_a")]
  saved = json.loads((tmp_path / "sweep.json").read_text())
  assert [p["name"] for p in saved["points"]][3] == "d256_sparse_a"


def test_a_preempted_point_stops_the_sweep_before_pruning(tmp_path, monkeypatch):
  calls = _record_calls(monkeypatch, preempted=True)
  assert sweep.run(frontier_config.get_config(), str(tmp_path), say=lambda _: None) == []
  assert calls == [("train", f"{tmp_path}/d128_sparse_a")]


def test_list_prints_one_line_per_model(tmp_path):
  out = subprocess.run([sys.executable, "-m", "launch.sweep",
                        "--config=experiments/frontier.py", f"--workdir={tmp_path}", "--list"],
                       capture_output=True, text=True, check=True,
                       cwd=pathlib.Path(__file__).parents[1]).stdout.splitlines()
  assert len(out) == 6
  assert out[3].split()[:2] == ["3", "d256_sparse_a"] and "hidden 1/16, embed 1/4" in out[3]
  assert out[3].endswith(f"{tmp_path}/d256_sparse_a")


def _pairs_file(path):
  """Quote closing, the easiest task there is: a tiny model is near chance, and the
  micro sweep's target loss (2.0) sits above chance (ln 2)."""
  records = []
  for word in ("abc", "hello", "data", "name", "value", "key", "text", "path"):
    records += [{"prompt": f'x = "{word}', "correct": '"', "incorrect": "'"},
                {"prompt": f"x = '{word}", "correct": "'", "incorrect": '"'}]
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  return path


def _micro_config(tmp):
  c = sweep.defaults()
  c.base = tiny_setup.tiny_config(tiny_setup.write_corpus(tmp / "corpus"), tmp / "cache")
  c.widths = (32,)
  c.l0 = (1 / 4,)
  c.embed_ratio = 2.0
  c.tasks = ""
  c.pairs = str(_pairs_file(tmp / "quotes.jsonl"))
  # budget_s=0: 4 steps, not a 30-second search for each of the four prunes (3 minutes).
  c.prune.update(budget_s=0, steps=4, batch_pairs=4, train_pairs=6, heldout_pairs=2,
                 target_loss=2.0, ablation="zero", calibrate=False, faithfulness=False,
                 null_steps=0)
  c.targets = (2.0, 3.0)
  return c


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
  """A two-model sweep interrupted after the first model, resumed, then its frontier."""
  tmp = tmp_path_factory.mktemp("micro")
  cfg, workdir = _micro_config(tmp), str(tmp / "sweep")
  real_prune = sweep.prune_point

  def interrupted(name, wd, c, say):
    if name == "d32_dense":
      raise KeyboardInterrupt
    return real_prune(name, wd, c, say)

  quiet = lambda _: None
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(sweep, "prune_point", interrupted)
    with pytest.raises(KeyboardInterrupt):
      sweep.run(cfg, workdir, say=quiet)
  pts = sweep.points(cfg, workdir)
  before = {p.name: (tmp / "sweep" / p.name / "metrics.jsonl").read_text() for p in pts}
  first_record = (tmp / "sweep" / pts[0].name / sweep.TASKS_FILE).read_text()
  trained = []
  with pytest.MonkeyPatch.context() as mp:
    real_train = sweep.train_lib.train
    mp.setattr(sweep.train_lib, "train",
               lambda c, wd: trained.append(wd) or real_train(c, wd))
    records = sweep.run(cfg, workdir, say=quiet)
  after = {p.name: (tmp / "sweep" / p.name / "metrics.jsonl").read_text() for p in pts}
  table = frontier_cli.main(workdir, say=quiet)
  return dict(tmp=tmp, pts=pts, records=records, before=before, after=after,
              first_record=first_record, trained=trained, table=table)


def test_micro_sweep_resumes_without_retraining(micro):
  # Both models were trained before the interruption; the rerun loads, never trains.
  assert micro["trained"] == [p.workdir for p in micro["pts"]]
  assert micro["after"] == micro["before"]
  first = micro["tmp"] / "sweep" / "d32_sparse_a" / sweep.TASKS_FILE
  assert first.read_text() == micro["first_record"]  # its task was not pruned again


def test_micro_sweep_prunes_the_pairs_task_on_both_models(micro):
  assert [r["model"] for r in micro["records"]] == ["d32_sparse_a", "d32_dense"]
  for r in micro["records"]:
    task = r["tasks"]["quotes"]
    assert task["solved"] and task["full_model_loss"] <= 2.0
    circuit = json.loads((micro["tmp"] / "sweep" / r["model"] / task["circuit"]).read_text())
    assert len(circuit["edges"]) == task["edges"]
  sparse, dense = micro["records"]
  assert sparse["nonzero"] < dense["nonzero"] == dense["params"]


def test_micro_sweep_frontier_files(micro):
  wd = micro["tmp"] / "sweep"
  result = json.loads((wd / "frontier.json").read_text())
  assert result["common_tasks"] == ["quotes"]
  assert sorted(m["name"] for m in result["models"]) == ["d32_dense", "d32_sparse_a"]
  curve = result["target_sweep"]
  assert curve["targets"] == [2.0, 3.0] and set(curve["edges"]) == {"d32_sparse_a",
                                                                     "d32_dense"}
  for name in ("d32_sparse_a", "d32_dense"):
    assert (wd / name / "circuits" / "quotes.target-3.json").exists()
    assert not (wd / name / "circuits" / "quotes.target-2.json").exists()  # the main one
  for png in ("frontier.png", "target_sweep.png"):
    assert image.imread(wd / png).ndim == 3
  assert "d32_sparse_a" in micro["table"] and "wrote" in micro["table"]
