"""The notebook API (docs/api.md): `sparse_gpt.load_run` and `sparse_gpt.load_circuit`."""

import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import tiny_setup
import sparse_gpt
from sparse_gpt import model
from sparse_gpt import train
from sparse_gpt.errors import UserError
from sparse_gpt.model import NodeEdit
from sparse_gpt.pruning import circuit as circuit_lib

TEXTS = ["def f(x):\n    return x", "import json"]
# (prompt, correct, incorrect) records the tiny run's tokenizer can pose.
RECORDS = [("def f(x", ")", "]"), ('s = "hello', '"', "'"), ("x = '", "a", "b")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("api")
  cfg = tiny_setup.tiny_config(tiny_setup.write_corpus(root / "corpus"), root / "cache",
                               steps=2, eval_every=2, checkpoint_every=2)
  train.train(cfg, str(root / "run"))
  return sparse_gpt.load_run(str(root / "run"))


def _widths(run) -> dict[str, int]:
  m = run.config.model
  hk = m.n_head * m.d_head
  return {"attn.in": m.d_model, "attn.q": hk, "attn.k": hk, "attn.v": hk,
          "attn.out": m.d_model, "mlp.in": m.d_model, "mlp.neuron": m.d_mlp,
          "mlp.out": m.d_model}


def _tokens(run, batch=3):
  rng = np.random.default_rng(0)
  return rng.integers(0, run.config.data.vocab_size, (batch, run.config.model.n_ctx))


def test_the_run_carries_its_config_tokenizer_and_step(run):
  assert run.step == 2 and run.config.model.d_model == 32
  assert run.tokenizer.get_vocab_size() == 320
  assert run.params["embed"]["embedding"][...].shape == (320, 32)


def test_logits_are_model_forward_exactly(run):
  tokens = _tokens(run)
  logits = run.logits(tokens)
  expected, _ = model.forward(run.graphdef, run.params, jnp.asarray(tokens, jnp.int32))
  assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
  assert logits.shape == (3, 32, 320)
  np.testing.assert_array_equal(logits, np.asarray(expected))
  np.testing.assert_array_equal(run.logits(jnp.asarray(tokens)), logits)  # jax in, same out


def test_activations_are_what_model_forward_records(run):
  tokens = _tokens(run, batch=2)
  every = run.activations(tokens, "all")
  assert list(every) == list(run.node_names) and len(every) == 8
  for name, act in every.items():
    assert act.dtype == np.float32
    assert act.shape == (2, 32, _widths(run)[name.split(".", 1)[1]]), name
  _, recorded = model.forward(run.graphdef, run.params, jnp.asarray(tokens, jnp.int32),
                              record=("0.mlp.neuron",))
  np.testing.assert_array_equal(every["0.mlp.neuron"], np.asarray(recorded["0.mlp.neuron"]))
  some = run.activations(tokens, ["0.mlp.neuron", "0.attn.q"])
  assert list(some) == ["0.mlp.neuron", "0.attn.q"]
  np.testing.assert_array_equal(some["0.attn.q"], every["0.attn.q"])
  np.testing.assert_array_equal(run.activations(tokens, "0.attn.q")["0.attn.q"],
                                every["0.attn.q"])
  # AbsTopK is on at every location: afrac 0.25 of 64 neurons survive per token.
  assert (np.count_nonzero(every["0.mlp.neuron"], axis=-1) <= 16).all()


def test_strings_give_what_their_token_ids_give(run):
  tokens, lengths = run.encode(TEXTS)
  assert tokens.shape == (2, lengths.max()) and lengths.tolist() == [
      len(run.tokenizer.encode(t).ids) for t in TEXTS]
  short = int(np.argmin(lengths))
  assert (tokens[short, lengths[short]:] == run.tokenizer.token_to_id("<|endoftext|>")).all()
  np.testing.assert_array_equal(run.logits(TEXTS), run.logits(tokens))
  strings = run.activations(TEXTS, "0.attn.v")["0.attn.v"]
  np.testing.assert_array_equal(strings, run.activations(tokens, "0.attn.v")["0.attn.v"])
  # Padding is on the right and attention is causal: a text reads as if it were alone.
  alone = run.logits([TEXTS[short]])
  np.testing.assert_allclose(run.logits(TEXTS)[short, :lengths[short]], alone[0],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tokens, message", [
    (np.array([[1, 320]]), "token id 320 at [0, 1] is outside the vocabulary 0..319"),
    (np.array([[-1, 2]]), "token id -1 at [0, 0]"),
    (np.zeros((1, 33), np.int32), "33 tokens long; this model reads at most n_ctx=32"),
    (["x = 1\n" * 40], "text 0 is"),
    ([""], "text 0 is empty"),
    ("def f", "give a batch"),
    (np.zeros(4, np.int32), "For one sequence use ids[None]"),
    (np.zeros((1, 4), np.float32), "got dtype float32"),
    ([[1, 2], [3]], "must form a [batch, length] array"),
    ([], "non-empty"),
])
def test_bad_tokens_are_one_user_error(run, tokens, message):
  with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
    run.logits(tokens)


@pytest.mark.parametrize("names", [["0.attn.x"], ["1.mlp.in"], [], "mlp.neuron"])
def test_unknown_node_names_are_one_user_error_listing_the_valid_ones(run, names):
  with pytest.raises(UserError, match="layer 0..0 and location one of attn.in, attn.q"):
    run.activations(_tokens(run, 1), names)


def _circuit_file(run, path, kept) -> str:
  """A circuit file, written by hand to its schema, that keeps the nodes `kept` picks."""
  d_head = run.config.model.d_head
  nodes = []
  for name in run.node_names:
    layer, location = name.split(".", 1)
    for i in range(_widths(run)[location]):
      node = {"location": location, "layer": int(layer), "index": i}
      if location in ("attn.q", "attn.k", "attn.v"):
        node.update(head=i // d_head, channel=i % d_head)
      if kept(node):
        nodes.append(node)
  path.write_text(json.dumps({
      "schema": circuit_lib.SCHEMA,
      "model": {"workdir": run.workdir, "step": run.step,
                "config_hash": circuit_lib.config_hash(run.config)},
      "task": {"name": "by_hand", "source": "pairs_file", "pairs_file": None,
               "pair_seed": None, "train_pairs": 0, "heldout_pairs": 0},
      "ablation": {"kind": "zero", "mean_windows": 32},
      "nodes": nodes, "edges": [], "calibration": {"scale": 1.0, "shift": {}},
      "metrics": {}, "prune_config": {}}))
  return str(path)


def test_a_circuit_of_every_node_scores_exactly_as_the_full_model(run, tmp_path):
  circuit = sparse_gpt.load_circuit(_circuit_file(run, tmp_path / "all.json",
                                                  lambda node: True))
  assert isinstance(circuit, sparse_gpt.Circuit) and len(circuit.nodes) == 8 * 32 + 32
  score = circuit.score(run, RECORDS)
  assert score.n == 3 and score.status == "ok" and score.task == "pairs"
  assert score.loss == score.full_model_loss
  assert score.accuracy == score.full_model_accuracy
  # The scorer's loss is the two-candidate cross-entropy at each prompt's last token.
  tokens, lengths = run.encode([prompt for prompt, _, _ in RECORDS])
  last_BxV = run.logits(tokens)[np.arange(3), lengths - 1]
  ids = lambda k: [run.tokenizer.token_to_id(r[k]) for r in RECORDS]
  margin_B = last_BxV[np.arange(3), ids(1)] - last_BxV[np.arange(3), ids(2)]
  np.testing.assert_allclose(score.full_model_loss, np.mean(np.logaddexp(0, -margin_B)),
                             rtol=1e-5)
  # The same records from a pairs file score the same.
  pairs = tmp_path / "records.jsonl"
  pairs.write_text("".join(json.dumps({"prompt": p, "correct": c, "incorrect": i}) + "\n"
                           for p, c, i in RECORDS))
  from_file = circuit.score(run, str(pairs))
  assert (from_file.loss, from_file.full_model_loss) == (score.loss, score.full_model_loss)


def test_a_circuit_runs_with_every_other_node_ablated(run, tmp_path):
  kept = lambda node: node["location"] == "attn.in"
  circuit = sparse_gpt.load_circuit(_circuit_file(run, tmp_path / "in.json", kept))
  score = circuit.score(run, RECORDS)
  # By hand: every location but attn.in zeroed, then the two-candidate loss.
  keep = lambda name: jnp.float32(name.endswith("attn.in"))
  edits = {name: NodeEdit(jnp.full(w, keep(name)), jnp.zeros(w))
           for name, w in ((n, _widths(run)[n.split(".", 1)[1]]) for n in run.node_names)}
  tokens, lengths = run.encode([prompt for prompt, _, _ in RECORDS])
  logits_BxLxV, _ = run.forward(run.params, jnp.asarray(tokens), edits)
  last_BxV = np.asarray(logits_BxLxV)[np.arange(3), lengths - 1]
  ids = lambda k: [run.tokenizer.token_to_id(r[k]) for r in RECORDS]
  margin_B = last_BxV[np.arange(3), ids(1)] - last_BxV[np.arange(3), ids(2)]
  np.testing.assert_allclose(score.loss, np.mean(np.logaddexp(0, -margin_B)), rtol=1e-5)
  assert score.loss != score.full_model_loss
  assert circuit.load_run().step == run.step
  assert "32 nodes, 0 edges, zero ablation; step 2" in repr(circuit)


@pytest.mark.parametrize("pairs, message", [
    ("no_such_task", "is neither a task"),
    ([("def f(x", ")")], r"pairs\[0\].*\(prompt, correct, incorrect\)"),
    ([("def f(x", ")", ")")], r"pairs\[0\]: candidates"),
    ([("x" * 200, "a", "b")], r"pairs\[0\]: the prompt is \d+ tokens"),
])
def test_bad_pairs_are_one_user_error(run, tmp_path, pairs, message):
  circuit = sparse_gpt.load_circuit(_circuit_file(run, tmp_path / "all.json",
                                                  lambda node: True))
  with pytest.raises(UserError, match=message):
    circuit.score(run, pairs)


def test_importing_sparse_gpt_loads_no_orbax_until_the_api_is_used():
  code = ("import sys, sparse_gpt, sparse_gpt.config, sparse_gpt.pruning.config\n"
          "heavy = [m for m in sys.modules if m.startswith(('orbax', 'sparse_gpt.api', "
          "'sparse_gpt.pruning.pipeline'))]\n"
          "assert not heavy, heavy\n"
          "assert callable(sparse_gpt.load_run) and callable(sparse_gpt.load_circuit)\n"
          "assert 'load_run' in dir(sparse_gpt)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False, cwd=pathlib.Path(__file__).parents[1])
  assert out.returncode == 0, out.stderr


def test_unknown_attributes_still_raise_attribute_error():
  with pytest.raises(AttributeError, match="no attribute 'load_runs'"):
    sparse_gpt.load_runs  # pylint: disable=pointless-statement
