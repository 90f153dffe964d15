"""The circuit viewer's data and HTML: true top contexts, ablation losses that match
launch.tasks --circuit, and exactly one graph element per node and per edge."""

import collections
import dataclasses
import html.parser
import json

import numpy as np
import pytest

import tiny_setup
import view_setup
from launch import tasks_cli
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning.edges import Edge
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.tasks import evaluate
from sparse_gpt.tasks import registry
from sparse_gpt.tasks import table_file
from sparse_gpt.view import data as data_lib
from sparse_gpt.view import page
from sparse_gpt.view import site


@pytest.fixture(scope="module")
def viewed(tmp_path_factory):
  return view_setup.pruned_and_viewed(tmp_path_factory.mktemp("viewed"))


class _Elements(html.parser.HTMLParser):
  """Every data-node and data-edge attribute value of a page, and its links."""

  def __init__(self):
    super().__init__()
    self.nodes, self.edges, self.links = [], [], []

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if "data-node" in attrs:
      self.nodes.append(attrs["data-node"])
    if "data-edge" in attrs:
      self.edges.append(attrs["data-edge"])
    if tag == "a":
      self.links.append(attrs.get("href"))


def _parsed(text: str) -> _Elements:
  parser = _Elements()
  parser.feed(text)
  return parser


def _expected(c) -> tuple[list[str], list[str]]:
  names = [data_lib.node_name(n) for n in c.nodes]
  return names, [f"{names[e.source_node]}->{names[e.target_node]}" for e in c.edges]


def _embedded(text: str) -> dict:
  start = text.index('id="circuit-data">') + len('id="circuit-data">')
  return json.loads(text[start:text.index("</script>", start)].replace("<\\/", "</"))


def test_the_page_has_one_element_per_node_and_edge(viewed):
  _, c, _, written = viewed
  text = open(written["pages"][0]).read()
  found = _parsed(text)
  nodes, edges = _expected(c)
  assert sorted(found.nodes) == sorted(nodes) and len(set(found.nodes)) == len(nodes)
  assert collections.Counter(found.edges) == collections.Counter(edges)
  assert "0.attn.v.0" in found.nodes and "0.attn.in.0->0.attn.v.0" in found.edges
  assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
  assert "https://" not in text


def test_the_index_links_every_circuit(viewed):
  _, _, _, written = viewed
  found = _parsed(open(written["index"]).read())
  assert "planted.html" in found.links
  assert written["pages"][0].endswith("view/planted.html")


def test_top_contexts_are_the_highest_activations(viewed):
  run, _, _, _ = viewed
  layout = Layout(run.config.model)
  windows_WxL = view_setup.planted_windows(None, 5)
  contexts = data_lib.top_contexts(run, layout, windows_WxL, k=9)
  acts = run.activations(windows_WxL, "all")
  all_WxLxN = np.concatenate([acts[loc.name] for loc in layout.locations], -1)
  flat_NxT = all_WxLxN.reshape(-1, layout.n_nodes).T
  want_NxK = -np.sort(-flat_NxT, axis=1)[:, :9]
  np.testing.assert_allclose(contexts.values_NxT, want_NxK, rtol=1e-5, atol=1e-6)
  # Each value is the activation at the position it names.
  got_NxK = np.take_along_axis(flat_NxT, contexts.where_NxT, 1)
  np.testing.assert_allclose(got_NxK, contexts.values_NxT, rtol=1e-5, atol=1e-6)


def test_the_page_shows_at_least_eight_contexts_per_node(viewed):
  _, c, _, written = viewed
  embedded = _embedded(open(written["pages"][0]).read())
  assert len(embedded["nodes"]) == len(c.nodes)
  for node in embedded["nodes"]:
    assert len(node["top"]) >= 8
    values = [v for _, _, v in node["top"]]
    assert values == sorted(values, reverse=True)
    for w, p, _ in node["top"]:
      assert 0 <= p < len(embedded["context"]["windows"][str(w)])


def test_single_node_ablations_match_launch_tasks(viewed):
  run, c, pairs, written = viewed
  embedded = _embedded(open(written["pages"][0]).read())
  _, (whole,) = tasks_cli.score(run, pairs=str(pairs), circuit=c)
  assert embedded["circuit_loss"] == pytest.approx(whole.loss, abs=1e-5)
  for k, node in enumerate(embedded["nodes"]):
    without = dataclasses.replace(c, nodes=c.nodes[:k] + c.nodes[k + 1:], edges=())
    _, (result,) = tasks_cli.score(run, pairs=str(pairs), circuit=without)
    assert node["ablated_loss"] == pytest.approx(result.loss, abs=1e-5), node["name"]
  # The planted mechanism is a chain: dropping any link loses the task.
  assert min(n["ablated_loss"] for n in embedded["nodes"]) > 0.5


def test_probabilities_and_attention_of_the_examples(viewed):
  _, c, _, written = viewed
  embedded = _embedded(open(written["pages"][0]).read())
  first = embedded["sequences"][0]
  assert first["tokens"][0] == "a" and first["correct"] == "X"
  assert first["full"][0] > first["full"][1]  # the full model solves it
  (head,) = embedded["heads"]  # head 0 holds the value channel
  assert (head["layer"], head["head"]) == (0, 0)
  for pattern in head["patterns"]:
    size = len(pattern)
    assert size == len(first["tokens"])
    rows = np.array(pattern)
    np.testing.assert_allclose(rows.sum(1), 1.0, atol=2e-3)  # no sink in this model
    assert np.all(np.triu(rows, 1) == 0)  # causal
  assert len(embedded["nodes"][0]["acts"]) == len(embedded["sequences"])
  assert c.metrics["heldout"]["circuit_loss"] < 0.15


def test_the_index_saves_its_task_table_for_the_step(viewed):
  run, _, _, _ = viewed
  saved = table_file.load(run.workdir, run.step, "heldout", 128, 0)
  assert saved and len(saved) == len(registry.names())
  assert table_file.load(run.workdir, run.step + 1, "heldout", 128, 0) is None
  assert table_file.load(run.workdir, run.step, "heldout", 64, 0) is None
  # launch.tasks --workdir writes the same table the index read.
  (table_file.workdir_lib.path(run.workdir) / table_file.FILE).unlink()
  tasks_cli.report(run, save_table=True)
  assert table_file.load(run.workdir, run.step, "heldout", 128, 0) == saved


def test_a_saved_task_table_is_read_not_scored(tmp_path):
  results = [evaluate.TaskResult("a", 2, 0.5, 1.0, "ok"),
             evaluate.TaskResult("b", 0, None, None, "not posable: x")]
  table_file.save(str(tmp_path), results, 7, "heldout", 128, 0)
  # A run with no model: scoring it would fail, so the table must come from the file.
  no_model = dataclasses.make_dataclass("NoModel", ["workdir", "step"])(str(tmp_path), 7)
  assert table_file.full_model_table(no_model) == results
  (tmp_path / table_file.FILE).write_text('{"step": 7, "split"')  # cut short
  assert table_file.load(str(tmp_path), 7, "heldout", 128, 0) is None


def test_bad_inputs_are_one_clear_error(viewed, tmp_path):
  run, c, _, _ = viewed
  other = tmp_path / "other.json"
  circuit_lib.save(dataclasses.replace(c, model={**c.model, "config_hash": "sha256:0"}),
                   other)
  with pytest.raises(UserError, match="pruned from another run"):
    site.write(run.workdir, [str(other)])
  empty = tmp_path / "empty.json"
  circuit_lib.save(dataclasses.replace(c, nodes=(), edges=()), empty)
  with pytest.raises(UserError, match="has no nodes"):
    site.write(run.workdir, [str(empty)])
  missing = tmp_path / "missing.json"
  circuit_lib.save(dataclasses.replace(c, model={**c.model, "step": 99}), missing)
  with pytest.raises(UserError, match="no checkpoint at step 99"):
    site.write(run.workdir, [str(missing)])


def _big_circuit(n_nodes: int, n_edges: int):
  """A synthetic circuit of a 2-layer model: nodes spread over every site."""
  cfg = tiny_setup.model_config(
      n_layer=2, d_model=512, n_head=8, d_head=64, d_mlp=2048).model
  layout = Layout(cfg)
  rng = np.random.default_rng(0)
  flat = np.sort(rng.choice(layout.n_nodes, n_nodes, replace=False))
  nodes = tuple(layout.node(int(i)) for i in flat)
  edges = tuple(Edge(int(s), int(t), "blocks.0.attn.q.kernel", (0, 0),
                     float(rng.normal()))
                for s, t in rng.integers(0, n_nodes, (n_edges, 2)))
  return circuit_lib.Circuit(model={}, task={"name": "big"}, ablation={"kind": "mean"},
                             nodes=nodes, edges=edges, calibration=None, metrics={},
                             prune_config={})


def test_a_large_graph_keeps_one_element_each():
  c = _big_circuit(2000, 20000)
  node_data = [{"ablated_loss": 0.1 + 0.001 * k} for k in range(len(c.nodes))]
  found = _parsed(page.graph_svg(c, node_data, 0.1, n_layer=2))
  nodes, edges = _expected(c)
  assert found.nodes == nodes
  assert collections.Counter(found.edges) == collections.Counter(edges)


def test_loss_versus_size_uses_the_curve_when_the_file_has_one():
  metrics = {"target_loss": 0.15, "train": {"full_model_loss": 0.03},
             "runs": [{"k_coef": 1e-4, "seed": 0, "circuit_nodes": 74,
                       "circuit_loss": 0.09}]}
  assert "no <code>metrics.curve</code>" in page.loss_size_plot(metrics)
  metrics["curve"] = [{"nodes": n, "loss_raw": 1 / n, "loss_calibrated": 0.5 / n}
                      for n in (10, 40, 160, 640)]
  plot = page.loss_size_plot(metrics)
  assert "metrics.curve" in plot and plot.count("<polyline") == 2
  assert "chance" in plot and "target" in plot


def test_unknown_metrics_render_as_tables():
  shown = page.value_html({"partial_ablation": [{"fraction": 0.5, "loss": 0.3}],
                           "interchange_flip_rate": 0.25})
  assert "<th>fraction</th>" in shown and "0.25" in shown and "0.3" in shown
