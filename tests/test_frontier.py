"""The frontier of hand-made result records: geometric means, Pareto set, plots."""

import math

from matplotlib import image
import pytest

from sparse_gpt import frontier
from sparse_gpt import frontier_plots
from sparse_gpt.errors import UserError


def _tasks(**edges):
  """A record's tasks: an int is a solved task's edges, None an unsolved task."""
  return {t: ({"solved": True, "full_model_loss": 0.1, "edges": e, "nodes": 3} if e is not None
              else {"solved": False, "full_model_loss": 0.9}) for t, e in edges.items()}


def _record(name, sparse, width, l0, val_loss, **edges):
  return {"name": name, "sparse": sparse, "width": width, "l0": l0, "val_loss": val_loss,
          "params": 1000 * width, "nonzero": 100 * width if sparse else 1000 * width,
          "tasks": _tasks(**edges)}


RECORDS = [
    # c is solved by two models only, d by none: both are left out of the means.
    _record("d64_sparse_a", True, 64, "a", 3.5, a=10, b=40, c=5, d=None),
    _record("d128_sparse_a", True, 128, "a", 3.3, a=20, b=20, c=None, d=None),
    _record("d128_dense", False, 128, None, 3.2, a=1000, b=4000, c=7, d=None),
]


def test_geometric_means_over_the_common_tasks():
  result = frontier.compute(RECORDS)
  assert result["common_tasks"] == ["a", "b"]
  assert result["partial_tasks"] == {"c": ["d128_dense", "d64_sparse_a"]}
  assert result["unsolved_tasks"] == ["d"]
  edges = {m["name"]: m["edges"] for m in result["models"]}
  assert edges == pytest.approx({"d64_sparse_a": 20.0, "d128_sparse_a": 20.0,
                                 "d128_dense": 2000.0})


def test_pareto_set_drops_the_dominated_model():
  # d64_sparse_a has the same edges as d128_sparse_a at a higher loss: dominated.
  result = frontier.compute(RECORDS)
  assert result["pareto"] == ["d128_dense", "d128_sparse_a"]
  assert [m["pareto"] for m in result["models"]] == [False, True, True]


def test_matched_pair_ratio_and_spread():
  m = frontier.compute(RECORDS)["matched"]
  assert (m["sparse"], m["dense"]) == ("d128_sparse_a", "d128_dense")
  assert m["edge_ratio_by_task"] == {"a": 50.0, "b": 200.0}
  assert m["edge_ratio"] == pytest.approx(100.0)
  assert m["edge_ratio_range"] == [50.0, 200.0]


def test_no_common_task_is_one_clear_error():
  records = [_record("x", True, 64, "a", 3.0, a=5, b=None),
             _record("y", False, 64, None, 3.0, a=None, b=6)]
  with pytest.raises(UserError, match="no task is solved by every model"):
    frontier.compute(records)


def test_a_circuit_without_edges_counts_as_one():
  assert frontier.geomean([0, 100]) == pytest.approx(10.0)


def test_target_curve_averages_the_tasks_both_models_reach():
  edges = {"s": {0.1: {"a": 4, "b": 9}, 0.5: {"a": 1, "b": 1}},
           "d": {0.1: {"a": 400, "b": None}, 0.5: {"a": 100, "b": 100}}}
  curve = frontier.target_curve(edges)
  assert curve["targets"] == [0.1, 0.5]
  assert curve["tasks"] == [["a"], ["a", "b"]]
  assert curve["edges"] == {"s": pytest.approx([4.0, 1.0]), "d": pytest.approx([400.0, 100.0])}


def test_table_marks_the_front_and_names_left_out_tasks():
  text = frontier.table(frontier.compute(RECORDS))
  rows = {line.split()[0]: line for line in text.splitlines()}
  assert rows["d128_sparse_a"].endswith("*") and not rows["d64_sparse_a"].endswith("*")
  assert "left out c: solved only by d128_dense, d64_sparse_a" in text
  assert "has 100.0x the edges" in text


def test_plots_are_pngs_that_decode(tmp_path):
  result = frontier.compute(RECORDS)
  frontier_plots.frontier_png(result, tmp_path / "frontier.png")
  frontier_plots.target_sweep_png(
      frontier.target_curve({"s": {0.1: {"a": 4}, 0.5: {"a": 2}},
                             "d": {0.1: {"a": 400}, 0.5: {"a": 100}}}),
      tmp_path / "target_sweep.png")
  for name in ("frontier.png", "target_sweep.png"):
    pixels = image.imread(tmp_path / name)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200
    assert not math.isclose(pixels.min(), pixels.max())  # something was drawn
