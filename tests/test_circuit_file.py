"""Reading circuit files: every field that a circuit uses is checked on load, and a
node the model lacks is refused when the circuit is scored; each bad field is one
UserError that names the file and the field."""

import json

import numpy as np
import pytest

import tiny_setup
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning.calibrate import Calibration
from sparse_gpt.pruning.edges import Edge
from sparse_gpt.pruning.nodes import Layout, Node


def _circuit() -> circuit_lib.Circuit:
  return circuit_lib.Circuit(
      model={"workdir": "runs/x", "step": 7, "config_hash": "sha256:ab"},
      task={"name": "t", "source": "pairs_file", "pairs_file": "t.jsonl", "pair_seed": None,
            "train_pairs": 3, "heldout_pairs": 1,
            "dropped_pairs": [{"pair": 1, "lines": [3, 4], "tokens": [8, 40]}]},
      ablation={"kind": "mean", "mean_windows": 16},
      nodes=(Node("attn.in", 0, 0), Node("attn.v", 0, 5, 1, 1), Node("attn.out", 0, 1)),
      edges=(Edge(0, 1, "blocks.0.attn.v.kernel", (0, 5), 1.0),
             Edge(1, 2, "blocks.0.attn.o.kernel", (5, 1), 20.0)),
      calibration=Calibration(1.5, {88: 0.25}),
      metrics={"target_loss": 0.15}, prune_config={"steps": 3})


def _write(tmp_path, d) -> str:
  path = tmp_path / "c.json"
  path.write_text(json.dumps(d))
  return str(path)


def test_a_saved_circuit_loads_back_equal(tmp_path):
  path = tmp_path / "c.json"
  circuit_lib.save(_circuit(), path)
  loaded = circuit_lib.load(path)
  assert loaded == _circuit() and loaded.path == str(path)


def _set(*keys, value):
  def mutate(d):
    for key in keys[:-1]:
      d = d[key]
    d[keys[-1]] = value
  return mutate


def _delete(*keys):
  def mutate(d):
    for key in keys[:-1]:
      d = d[key]
    del d[keys[-1]]
  return mutate


@pytest.mark.parametrize("mutate, field, says", [
    # An unknown value of an enumerated field.
    (_set("ablation", "kind", value="median"), "ablation.kind", "one of mean, zero, resample"),
    (_set("task", "source", value="web"), "task.source", "'registry' or 'pairs_file'"),
    (_set("nodes", 0, "location", value="attn.x"), r"nodes\[0\].location", "one of attn.in"),
    # A number that is not finite (JSON's NaN and Infinity parse as floats).
    (_set("calibration", "scale", value=float("nan")), "calibration.scale", "is nan"),
    (_set("calibration", "shift", "88", value=float("inf")),
     r"calibration.shift\['88'\]", "a finite number"),
    (_set("edges", 1, "value", value=float("-inf")), r"edges\[1\].value", "a finite number"),
    # A wrong type or an out-of-range count.
    (_set("model", "step", value="7"), "model.step", "an integer >= 0"),
    (_set("model", "step", value=True), "model.step", "an integer >= 0"),
    (_set("nodes", 2, "layer", value=-1), r"nodes\[2\].layer", "an integer >= 0"),
    (_set("ablation", "mean_windows", value=0), "ablation.mean_windows", "a positive"),
    (_set("calibration", "shift", value=[1.0]), "calibration.shift", "a JSON object"),
    (_set("calibration", "shift", value={"x": 1.0}), r"calibration.shift\['x'\]",
     "keyed by a token id"),
    (_set("model", "config_hash", value="ab"), "model.config_hash", "sha256"),
    (_set("task", "dropped_pairs", 0, "lines", value=[3]), r"task.dropped_pairs\[0\].lines",
     "two integers"),
    (_set("edges", 0, "index", value=[0, "5"]), r"edges\[0\].index", r"\[row, column\]"),
    # An edge between positions that are not in `nodes`.
    (_set("edges", 0, "target", value=3), r"edges\[0\].target", r"a position in nodes \(0..2\)"),
    # A node with a key of its own, or half of (head, channel).
    (_set("nodes", 0, "neuron", value=1), r"nodes\[0\]", "must be an object with keys"),
    (_delete("nodes", 1, "channel"), r"nodes\[1\]", "both head and channel"),
    # A missing field.
    (_delete("ablation", "kind"), "ablation.kind", "is missing"),
    (_delete("metrics"), "metrics", "is missing"),
])
def test_a_bad_field_is_one_error_naming_the_file_and_the_field(tmp_path, mutate, field, says):
  d = circuit_lib.to_json(_circuit())
  mutate(d)
  path = _write(tmp_path, d)
  with pytest.raises(UserError, match=f"circuit file {path}: {field} .*{says}.*prune again"):
    circuit_lib.load(path)


def test_a_file_that_is_no_circuit_says_so(tmp_path):
  with pytest.raises(UserError, match="not a circuit file of schema sparse_gpt.circuit/1"):
    circuit_lib.load(_write(tmp_path, ["a", "list"]))
  with pytest.raises(UserError, match="found 'sparse_gpt.circuit/0'"):
    circuit_lib.load(_write(tmp_path, {**circuit_lib.to_json(_circuit()),
                                       "schema": "sparse_gpt.circuit/0"}))
  (tmp_path / "cut.json").write_text('{"schema": "sparse_gpt.circuit/1", "mod')
  with pytest.raises(UserError, match="cut.json is not JSON"):
    circuit_lib.load(tmp_path / "cut.json")
  (tmp_path / "bytes.json").write_bytes(b"\xff\xfe\x00")
  with pytest.raises(UserError, match="bytes.json is not JSON"):
    circuit_lib.load(tmp_path / "bytes.json")
  with pytest.raises(UserError, match="does not exist"):
    circuit_lib.load(tmp_path)  # a directory


def _layout():
  # 1 layer, d_model 8, 2 heads of d_head 4, d_mlp 16.
  return Layout(tiny_setup.model_config(n_layer=1, d_model=8, n_head=2, d_head=4,
                                        d_mlp=16, n_ctx=16).model)


def test_the_nodes_of_a_loaded_circuit_select_those_nodes(tmp_path):
  layout = _layout()
  path = tmp_path / "c.json"
  circuit_lib.save(_circuit(), path)
  keep_N = np.asarray(circuit_lib.load(path).keep(layout))
  assert np.flatnonzero(keep_N).tolist() == sorted(
      layout.index(n) for n in _circuit().nodes)


@pytest.mark.parametrize("node, index", [
    (Node("mlp.neuron", 0, 16), 1),  # d_mlp is 16
    (Node("attn.out", 1, 0), 1),  # one layer
    (Node("attn.v", 0, 5, 0, 1), 1),  # index 5 is head 1, channel 1
    (Node("attn.q", 0, 2), 1),  # a query node without its head and channel
])
def test_a_node_the_model_lacks_is_refused_when_scored(tmp_path, node, index):
  c = _circuit()
  d = circuit_lib.to_json(c)
  d["nodes"][index] = node.to_json()
  loaded = circuit_lib.load(_write(tmp_path, d))  # the file alone cannot know the model
  with pytest.raises(UserError, match=rf"c.json: nodes\[{index}\] .* does not exist in this "
                                      "model.*prune again"):
    loaded.keep(_layout())
