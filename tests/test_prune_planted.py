"""Pruning a hand-built model whose task lives in three known nodes.

The planted mechanism: token `a` or `b` at position 0 writes +1 or -1 into residual
channel 0; attention head 0 (uniform attention: its q and k weights are zero) reads it
with value channel 0 and writes it, scaled, into residual channel 1; the unembedding
reads channel 1 to prefer `X` after `a` and `Y` after `b`. So the circuit is
0.attn.in[0] -> 0.attn.v[h0.0] -> 0.attn.out[1]. Every other weight is random noise that
reads and writes only channels 2..7, so it cannot touch the task.
"""

import json

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_setup
from sparse_gpt import checkpoints
from sparse_gpt import model
from sparse_gpt import param_kinds
from sparse_gpt import run_io
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.pruning import circuit as circuit_lib
from launch import prune_cli as cli
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning import pipeline
from sparse_gpt.pruning import render
from sparse_gpt.pruning.nodes import Layout, Node
from sparse_gpt.pruning.subject import Subject
from sparse_gpt.tasks import evaluate
from sparse_gpt.tasks import resolve

PLANTED = {Node("attn.in", 0, 0), Node("attn.v", 0, 0, 0, 0), Node("attn.out", 0, 1)}
_FILLERS = "cdefgh"
_MEAN_WINDOWS = 16


def _config():
  c = tiny_setup.model_config(vocab_size=257, n_layer=1, d_model=8, n_head=2, d_head=4,
                              d_mlp=16, n_ctx=16, attn_sink=False, abstopk_at="none")
  c.sparsity.enabled = False
  return c


def _planted_params(cfg, tok):
  """The weights described in the module docstring."""
  rng = np.random.default_rng(0)
  noise = lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)
  ids = {ch: tok.token_to_id(ch) for ch in "abXY"}  # byte-level: ASCII maps to itself
  embed = noise(257, 8)
  embed[:, :2] = 0
  embed[ids["a"], 0], embed[ids["b"], 0] = 1.0, -1.0
  qk = noise(8, 8)
  qk[:2], qk[:, :4] = 0, 0  # head 0 attends uniformly
  v = noise(8, 8)
  v[:2], v[:, 0] = 0, 0
  v[0, 0] = 1.0
  o = noise(8, 8)
  o[:, :2], o[0] = 0, 0
  o[0, 1] = 20.0
  up, down = noise(8, 16), noise(16, 8)
  up[:2], down[:, :2] = 0, 0
  unembed = noise(8, 257)
  unembed[:2] = 0
  unembed[:, [ids["X"], ids["Y"]]] = 0
  unembed[1, ids["X"]], unembed[1, ids["Y"]] = 1.0, -1.0
  weights = {"embed.embedding": embed, "blocks.0.attn.q.kernel": qk,
             "blocks.0.attn.k.kernel": qk.copy(), "blocks.0.attn.v.kernel": v,
             "blocks.0.attn.o.kernel": o, "blocks.0.mlp.up.kernel": up,
             "blocks.0.mlp.down.kernel": down, "unembed.kernel": unembed}
  graphdef, params = model.init(cfg, jax.random.key(0))
  def planted(path, x):
    name = param_kinds.path_name(path)
    if name in weights:
      return jnp.asarray(weights[name])
    return jnp.zeros_like(x) if name.endswith("bias") else x
  return graphdef, jax.tree_util.tree_map_with_path(planted, params)


def _pairs_file(path, n_pairs: int, seed: int):
  rng = np.random.default_rng(seed)
  with open(path, "w") as f:
    for _ in range(n_pairs):
      middle = "".join(rng.choice(list(_FILLERS), 6))
      for start, correct, incorrect in (("a", "X", "Y"), ("b", "Y", "X")):
        f.write(json.dumps({"prompt": start + middle + "q", "correct": correct,
                            "incorrect": incorrect}) + "\n")
  return path


def _windows(cfg, n_windows):
  """Stand-in for validation text: random strings over the task's letters."""
  del cfg
  rng = np.random.default_rng(1)
  return rng.choice(np.arange(97, 105), (n_windows, 16)).astype(np.int32)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
  """(run, pairs file): the planted model saved as a workdir at step 7, as training would."""
  workdir = tmp_path_factory.mktemp("planted")
  cfg = _config()
  tok = tokenizer_lib.train_bpe(["abcdefghqXY"], 257)
  _, params = _planted_params(cfg, tok)
  (workdir / "config.json").write_text(cfg.to_json())
  tokenizer_lib.save(tok, workdir / "tokenizer.json")
  ckpts = checkpoints.Checkpoints(workdir / "checkpoints")
  data_iter = iter(grain.MapDataset.source([np.zeros(2, np.int32)]).to_iter_dataset())
  ckpts.save(7, params, {"count": np.zeros((), np.int32)}, data_iter)  # no optimizer
  ckpts.wait()
  return run_io.load_run(str(workdir)), _pairs_file(workdir / "planted.jsonl", 32, seed=0)


def _prune_config(**overrides):
  """The default recipe and budget, with the nulls' and node means' work cut."""
  c = prune_config.defaults()
  c.update(null_steps=40, mean_windows=_MEAN_WINDOWS)
  c.update(**overrides)
  return c


@pytest.fixture(scope="module")
def pruned(planted):
  """(training data, circuit) from `launch.prune --pairs=planted.jsonl`'s library call."""
  run, pairs = planted
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(node_means, "validation_windows", _windows)
    printed = cli.main(run.workdir, pairs=str(pairs), cfg=_prune_config(),
                       say=lambda _: None)
  path = pipeline.circuit_path(run.workdir, "planted")
  assert f"wrote {path}" in printed and "3 nodes, 2 edges" in printed
  return (pipeline.file_task(run, str(pairs), "planted", _prune_config()),
          circuit_lib.load(path))


def test_the_planted_nodes_come_back_exactly(pruned):
  _, c = pruned
  assert set(c.nodes) == PLANTED
  assert c.metrics["train"]["circuit_loss_raw"] <= 0.15
  assert c.metrics["train"]["full_model_loss"] < 0.05
  # The default search tried the edge term (and its twin without it).
  assert {r["edge_coef"] > 0 for r in c.metrics["search"]} == {True, False}
  edges = {(c.nodes[e.source_node].site, c.nodes[e.target_node].site, e.param, e.index,
            e.value) for e in c.edges}
  assert edges == {("attn.in", "attn.v", "blocks.0.attn.v.kernel", (0, 0), 1.0),
                   ("attn.v", "attn.out", "blocks.0.attn.o.kernel", (0, 1), 20.0)}


def test_faithfulness_battery_is_recorded(pruned):
  _, c = pruned
  h = c.metrics["heldout"]
  assert h["circuit_loss"] <= 0.15 and h["necessary"]
  assert h["necessity_loss"] > 0.6  # without the three nodes the answer is a coin flip
  for null in ("nonsense_task", "reinitialised_model"):
    assert set(c.metrics["nulls"][null]) >= {"nodes", "loss", "full_model_loss"}
    assert c.metrics["nulls"][null]["sized_on"] == "train"
  assert c.metrics["nulls"]["reinitialised_model"]["nodes"] is None
  text = render.summary(c) + render.text(c)
  assert "0.attn.v[h0.0]" in text and "+20.0000" in text
  assert f"{h['circuit_loss']:.4f} +- {h['circuit_loss_se']:.4f}" in text


def test_a_saved_circuit_reloads_to_its_recorded_loss(pruned, planted, tmp_path):
  data, c = pruned
  run, _ = planted
  path = tmp_path / "planted.json"
  circuit_lib.save(c, path)
  loaded = circuit_lib.load(path)
  assert loaded == c
  assert loaded.model["step"] == 7 and loaded.task["source"] == "pairs_file"
  score = evaluate.make_scorer(circuit_lib.logits_fn(loaded, run), run.params,
                               run.config.model.n_ctx)
  loss, _ = score(data.train)
  np.testing.assert_allclose(loss, c.metrics["train"]["circuit_loss"], rtol=1e-5, atol=1e-6)
  raw = evaluate.make_scorer(circuit_lib.logits_fn(loaded, run, calibrated=False),
                             run.params, run.config.model.n_ctx)(data.train)[0]
  np.testing.assert_allclose(raw, c.metrics["train"]["circuit_loss_raw"], rtol=1e-5,
                             atol=1e-6)


def test_vmapped_runs_equal_runs_one_by_one(pruned, planted):
  data, _ = pruned
  run, _ = planted
  cfg = _prune_config(batch_pairs=8)
  layout = Layout(run.config.model)
  train = resolve.padded(data.train, run.config.model.n_ctx)
  means_N = node_means.compute(run.graphdef, run.params, layout, _windows(None, 8))
  problem = optimize.Problem(run.params, means_N, train)
  k_coefs, seeds = (1e-4, 1e-2), (0, 1)
  together = optimize.train_masks(run.graphdef, layout, cfg, problem,
                                  optimize.runs(k_coefs, seeds), steps=30)
  for r, (seed, k) in enumerate((s, k) for s in seeds for k in k_coefs):
    alone = optimize.train_masks(run.graphdef, layout, cfg, problem,
                                 optimize.runs((k,), (seed,)), steps=30)
    np.testing.assert_allclose(together.tau_P[r], alone.tau_P[0], atol=1e-6)
    np.testing.assert_allclose(together.loss_T[r], alone.loss_T[0], atol=1e-6)


def test_resample_ablation_takes_the_pair_partners_values(pruned, planted):
  """Resampling the planted nodes from the other prompt flips every answer; resampling
  everything else changes none."""
  data, _ = pruned
  run, _ = planted
  layout = Layout(run.config.model)
  subject = Subject(run.graphdef, run.params, layout, jnp.zeros(layout.n_nodes), "resample")
  train = resolve.padded(data.train, run.config.model.n_ctx)
  fill = subject.fill(train)
  assert fill.shape == (len(train.last_B), train.tokens_BxL.shape[1], layout.n_nodes)
  planted_N = jnp.zeros(layout.n_nodes).at[jnp.array([layout.index(n) for n in PLANTED])
                                           ].set(1.0)
  assert subject.loss(planted_N, train, fill)[1] == 1.0
  assert subject.loss(1.0 - planted_N, train, fill)[1] == 0.0


def test_a_pair_with_a_too_long_record_is_left_out_whole(planted, tmp_path):
  """Pair 1's second record does not fit in n_ctx: the pair goes, every other pair keeps
  its partner, and the circuit file and the output say what was left out."""
  run, _ = planted
  path = _pairs_file(tmp_path / "long.jsonl", 11, seed=2)
  lines = path.read_text().splitlines()
  record = json.loads(lines[3])
  record["prompt"] = record["prompt"][:-1] + "c" * 20 + "q"
  lines[3] = json.dumps(record)
  path.write_text("\n".join(lines) + "\n")
  tokens = [len(run.tokenizer.encode(json.loads(lines[i])["prompt"]).ids) for i in (2, 3)]
  assert tokens[1] > run.config.model.n_ctx >= tokens[0]
  cfg = _prune_config(budget_s=0, steps=10, faithfulness=False)
  data = pipeline.file_task(run, str(path), "long", cfg)
  a, b = (run.tokenizer.token_to_id(ch) for ch in "ab")
  # A pair is an `a` prompt, then its `b` prompt.
  for split in (data.train, data.validation, data.heldout):
    assert split.tokens_BxL[0::2, 0].tolist() == [a] * (len(split) // 2)
    assert split.tokens_BxL[1::2, 0].tolist() == [b] * (len(split) // 2)
  splits = ("train", "validation", "heldout")
  assert sum(data.meta[f"{s}_pairs"] for s in splits) == 10
  said = []
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(node_means, "validation_windows", _windows)
    cli.main(run.workdir, pairs=str(path), cfg=cfg, say=said.append)
  c = circuit_lib.load(pipeline.circuit_path(run.workdir, "long"))
  assert c.task["dropped_pairs"] == [{"pair": 1, "lines": [3, 4], "tokens": tokens}]
  assert any(f"left out 1 pair(s) with a record longer than n_ctx=16 tokens: pair 1 "
             f"(lines 3 and 4: {tokens[0]} and {tokens[1]} tokens)" in line for line in said)


def test_the_curve_is_the_bisections_points_on_the_validation_split(pruned):
  _, c = pruned
  curve, k = c.metrics["curve"], len(c.nodes)
  assert [p["nodes"] for p in curve] == sorted({p["nodes"] for p in curve})
  at_k = [p for p in curve if p["nodes"] == k]
  assert at_k == [{"nodes": k, "loss_raw": c.metrics["validation"]["circuit_loss_raw"],
                   "loss_calibrated": c.metrics["validation"]["circuit_loss"]}]
  # The bisection returns the smallest size that passes: every smaller one it tried failed.
  assert all(p["loss_raw"] > c.metrics["target_loss"] for p in curve if p["nodes"] < k)
  assert c.metrics["runs"] and all(r["circuit_nodes"] >= k for r in c.metrics["runs"])
  assert {"k_coef", "learning_rate", "init_bias", "temperature", "seed", "rung", "steps",
          "learned_nodes", "learned_validation_loss"} <= set(c.metrics["search"][0])
  b = c.metrics["budget"]
  assert b["steps"] == b["rungs"] * b["rung_steps"] and b["candidates"] >= 2


def test_training_in_pieces_equals_training_straight_through(pruned, planted):
  """Successive halving's rungs: the tau and optimiser state carry over exactly, with
  length buckets and partial ablation on."""
  data, _ = pruned
  run, _ = planted
  cfg = _prune_config(batch_pairs=4, partial_ablation=0.5)
  layout = Layout(run.config.model)
  train = resolve.padded(data.train, run.config.model.n_ctx)
  problem = optimize.bucketed(optimize.Problem(run.params, jnp.zeros(layout.n_nodes), train),
                              cfg.batch_pairs, run.config.model.n_ctx)
  assert len(problem.pairs) == 4
  specs = optimize.RunSpec(jnp.array([1e-3, 1e-2]), jnp.stack([jax.random.key(s)
                                                               for s in (0, 1)]),
                           jnp.array([1e-2, 3e-2]), jnp.array([0.1, 0.05]),
                           jnp.array([1.0, 0.5]))
  state = optimize.start(layout, cfg, specs)
  whole, _ = optimize.advance(run.graphdef, layout, cfg, problem, specs, state, 0, 30, 30)
  part, _ = optimize.advance(run.graphdef, layout, cfg, problem, specs, state, 0, 10, 30)
  part, _ = optimize.advance(run.graphdef, layout, cfg, problem, specs, part, 10, 20, 30)
  np.testing.assert_allclose(part.tau_P, whole.tau_P, atol=1e-6)
  assert not np.allclose(whole.tau_P, state.tau_P)


def test_the_planted_nodes_come_back_with_partial_ablation(planted, tmp_path):
  run, pairs = planted
  cfg = _prune_config(partial_ablation=0.5, faithfulness=False)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(node_means, "validation_windows", _windows)
    cli.main(run.workdir, pairs=str(pairs), name="partial", cfg=cfg, say=lambda _: None)
  c = circuit_lib.load(pipeline.circuit_path(run.workdir, "partial"))
  assert set(c.nodes) == PLANTED


def test_the_edge_term_costs_edge_coef_per_kept_edge(pruned, planted):
  """Both steps of a 2-step run keep every node (tau starts at init_bias > 0): step 1's loss
  is the task loss plus k_coef per node plus edge_coef per nonzero kernel weight; step 0
  has no edge term yet (it ramps up over optimize.EDGE_RAMP of the horizon)."""
  data, _ = pruned
  run, _ = planted
  layout = Layout(run.config.model)
  train = resolve.padded(data.train, run.config.model.n_ctx)
  problem = optimize.Problem(run.params, jnp.zeros(layout.n_nodes), train)
  nonzero = sum(int(jnp.sum(run.params["blocks"][0][m][p]["kernel"][...] != 0))
                for m, p in (("attn", "q"), ("attn", "k"), ("attn", "v"), ("attn", "o"),
                             ("mlp", "up"), ("mlp", "down")))
  k_coef = 1e-3
  for edge_coef in (0.0, 1e-4):
    trained = optimize.train_masks(run.graphdef, layout, _prune_config(edge_coef=edge_coef),
                                   problem, optimize.runs((k_coef,), (0,)), steps=2)
    np.testing.assert_array_equal(trained.kept_T[0], [layout.n_nodes] * 2)
    np.testing.assert_allclose(
        trained.loss_T[0] - trained.task_loss_T[0],
        [k_coef * layout.n_nodes, k_coef * layout.n_nodes + edge_coef * nonzero], rtol=1e-5)


def test_searched_nulls_get_the_tasks_search(planted):
  """With prune.null_search each null runs the recipe search at prune.budget_s; the
  re-initialised model has no mechanism, so no circuit reaches the target."""
  run, pairs = planted
  cfg = _prune_config(null_search=True, budget_s=5.0)
  said = []
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(node_means, "validation_windows", _windows)
    cli.main(run.workdir, pairs=str(pairs), name="nulls", cfg=cfg, say=said.append)
  nulls = circuit_lib.load(pipeline.circuit_path(run.workdir, "nulls")).metrics["nulls"]
  assert {n["recipe"] for n in nulls.values()} == {"search"}
  # Random labels per prompt cannot carry over to validation pairs: the nonsense null is
  # the search's memorisation test, on the training pairs.
  assert [nulls[n]["sized_on"] for n in ("nonsense_task", "reinitialised_model")] == [
      "train", "validation"]
  assert nulls["reinitialised_model"]["nodes"] is None
  assert nulls["nonsense_task"]["full_model_loss"] > cfg.target_loss
  assert sum("reinitialised_model null: search:" in line for line in said) == 1
  summary = render.summary(circuit_lib.load(pipeline.circuit_path(run.workdir, "nulls")))
  assert "nulls at the same target and the same search budget:" in summary
