"""Bridges (docs/bridges.md): exact where they must be, frozen where they must be, and
resumable bit for bit."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_setup
from launch import bridge_cli
from sparse_gpt import config
from sparse_gpt import model
from sparse_gpt import report
from sparse_gpt import run_io
from sparse_gpt import sharding
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt import train
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.bridge import dense as dense_lib
from sparse_gpt.bridge import intervene
from sparse_gpt.bridge import loss
from sparse_gpt.bridge import params as bridge_params
from sparse_gpt.bridge import training as bridge_training
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import calibrate
from sparse_gpt.pruning import circuit as circuit_lib
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning.nodes import Node
from sparse_gpt.tasks import resolve


def _small_model(**model_kw):
  cfg = tiny_setup.model_config(n_layer=2, d_model=16, n_head=2, d_head=8, d_mlp=32,
                                n_ctx=12, **model_kw)
  graphdef, params = model.init(cfg, jax.random.key(0))
  tokens_BxL = jax.random.randint(jax.random.key(1), (3, 12), 0, cfg.data.vocab_size)
  return cfg, graphdef, params, tokens_BxL


def test_the_residual_forward_is_the_forward_and_runs_on_from_any_site():
  _, graphdef, params, tokens_BxL = _small_model(bigram=True)
  logits, _ = model.forward(graphdef, params, tokens_BxL)
  again, residuals = model.residual_forward(graphdef, params, tokens_BxL)
  np.testing.assert_array_equal(again, logits)
  assert list(residuals) == ["0.attn", "0.mlp", "1.attn", "1.mlp", "final"]
  for site, x_BxLxD in residuals.items():
    from_site, _ = model.residual_forward(graphdef, params, tokens_BxL, start=site,
                                          start_BxLxD=x_BxLxD)
    np.testing.assert_array_equal(from_site, logits)
  moved, _ = model.residual_forward(graphdef, params, tokens_BxL,
                                    add={"1.attn": jnp.ones_like(residuals["1.attn"])})
  assert not np.allclose(moved, logits)


def test_bridges_between_a_model_and_itself_are_exact():
  cfg, graphdef, params, tokens_BxL = _small_model()
  identity = bridge_params.identity(5, cfg.model.d_model)
  t = loss.terms(graphdef, params, graphdef, params, identity, tokens_BxL, afrac=1.0)
  for k in loss.TERMS:
    np.testing.assert_array_equal(t[k], np.zeros(5), err_msg=k)
  # AbsTopK on, the encoder no longer reproduces the residual.
  t = loss.terms(graphdef, params, graphdef, params, identity, tokens_BxL, afrac=0.25)
  assert np.all(t["nmse_encode"] > 0) and np.all(t["nmse_decode"] == 0)


def test_no_gradient_reaches_the_dense_model():
  cfg, graphdef, params, tokens_BxL = _small_model()
  _, dense_graphdef, dense_params, _ = _small_model(abstopk_at="none")
  bridges = bridge_params.init(jax.random.key(2), 5, 16, 16)
  b = config.bridge_defaults()
  grads = jax.grad(lambda d: loss.total(loss.terms(
      graphdef, params, dense_graphdef, d, bridges, tokens_BxL, 0.25), b))(dense_params)
  assert all(np.all(g == 0) for g in jax.tree.leaves(grads))
  sparse_grads = jax.grad(lambda p: loss.total(loss.terms(
      graphdef, p, dense_graphdef, dense_params, bridges, tokens_BxL, 0.25), b))(params)
  assert any(np.any(g != 0) for g in jax.tree.leaves(sparse_grads))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  return (tiny_setup.write_corpus(tmp_path_factory.mktemp("corpus")),
          tmp_path_factory.mktemp("cache"))


def _dense_config(corpus, **train_kw):
  c = tiny_setup.tiny_config(*corpus, steps=4, **train_kw)
  c.sparsity.enabled = False
  c.model.abstopk_at = "none"
  return c


def _bridge_config(corpus, dense_workdir, **train_kw):
  c = config.with_bridge(tiny_setup.tiny_config(*corpus, **train_kw))
  c.model.d_model = 24  # the dense run's is 32: bridges join models of other widths
  c.bridge.dense_workdir = str(dense_workdir)
  return c


@pytest.fixture(scope="module")
def dense_run(corpus, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("dense")
  train.train(_dense_config(corpus), str(workdir))
  return workdir


@pytest.fixture(scope="module")
def bridged(corpus, dense_run, tmp_path_factory):
  """A finished 8-step bridged run with checkpoints at 4 and 8; tests work on copies."""
  workdir = tmp_path_factory.mktemp("bridged")
  train.train(_bridge_config(corpus, dense_run), str(workdir))
  return workdir


def test_a_bridged_run_logs_every_term_and_reports_its_bridges(bridged):
  records = [r for r in workdir_lib.read_metrics(str(bridged)) if "loss" in r]
  assert [r["step"] for r in records] == list(range(1, 9))
  for r in records:
    total = r["loss"] + sum(r[f"bridge_{k}"] for k in loss.TERMS)  # every weight is 1
    assert r["total_loss"] == pytest.approx(total, rel=1e-5)
  summary = json.loads((bridged / "summary.json").read_text())
  sites = summary["bridge"]["sites"]
  assert [s["site"] for s in sites] == ["0.attn", "0.mlp", "final"]
  assert all(s[k] > 0 for s in sites for k in (*loss.TERMS, "dense_loss_decoded"))
  assert "bridges (validation windows" in report.training_summary(summary)
  # The checkpoint's params are the sparse model alone: any tool loads it as a run.
  assert run_io.load_run(str(bridged)).config.model.d_model == 24


def test_the_dense_parameters_stay_bitwise_unchanged(corpus, dense_run):
  cfg = _bridge_config(corpus, dense_run)
  training = bridge_training.build(cfg, sharding.make_mesh(cfg.mesh))
  before = jax.tree.map(np.array, training.dense.params)
  state = training.init()
  tokens_BxL1 = jax.random.randint(jax.random.key(0), (4, 33), 0, 320)
  for _ in range(3):
    state, _ = training.step(state, tokens_BxL1)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, training.dense.params),
               before)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(
      np.array, run_io.load_run(str(dense_run)).params), before)


def test_an_interrupted_bridged_run_resumes_bit_for_bit(corpus, dense_run, bridged, tmp_path):
  run = tmp_path / "run"
  shutil.copytree(bridged, run)
  shutil.rmtree(run / "checkpoints" / "8")
  (run / "summary.json").unlink()
  summary = train.train(_bridge_config(corpus, dense_run), str(run))
  drop_rate = lambda rs: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rs]
  assert drop_rate(workdir_lib.read_metrics(str(run))) == drop_rate(
      workdir_lib.read_metrics(str(bridged)))
  assert summary["bridge"] == json.loads((bridged / "summary.json").read_text())["bridge"]
  jax.tree.map(np.testing.assert_array_equal, intervene.load(str(run)).bridges,
               intervene.load(str(bridged)).bridges)


def test_an_intervention_at_strength_zero_leaves_the_dense_logits_unchanged(bridged):
  b = intervene.load(str(bridged))
  tokens_BxL = jax.random.randint(jax.random.key(3), (4, 10), 0, 320)
  _, sparse_res = model.residual_forward(b.sparse.graphdef, b.sparse.params, tokens_BxL)
  plain, dense_res = model.residual_forward(b.dense.graphdef, b.dense.params, tokens_BxL)
  mask_SxD = intervene.masks(b, [("0.attn", 3), ("0.mlp", 5), ("final", 0)])
  logits = lambda strength: model.residual_forward(
      b.dense.graphdef, b.dense.params, tokens_BxL,
      add=intervene.dense_deltas(b.bridges, sparse_res, dense_res, mask_SxD, strength))[0]
  np.testing.assert_array_equal(logits(0.0), plain)
  assert not np.allclose(logits(1.0), plain)


def test_through_identity_bridges_to_itself_the_dense_intervention_is_the_sparse_patch(
    bridged):
  # A model bridged to itself by identity: unit rows are the channels and the RMS ratio is
  # 1, so the bridged intervention must be the patch made in the sparse model directly.
  b = intervene.load(str(bridged))
  d_model = b.sparse.config.model.d_model
  itself = intervene.Bridged(b.sparse, b.sparse,
                             bridge_params.identity(len(b.sites), d_model))
  tokens_BxL = jax.random.randint(jax.random.key(4), (6, 10), 0, 320)
  batch = resolve.TaskBatch(tokens_BxL, np.full(6, 9), np.arange(6) + 10,
                            (np.arange(6) ^ 1) + 10)
  mask_SxD = intervene.masks(b, [(site, c) for site in b.sites for c in range(d_model)])
  for strength in (0.0, 0.5, 1.0):
    bridged_out = intervene.make_probabilities(itself, batch)(mask_SxD, strength)
    patched_out = intervene.make_probabilities(itself, batch, in_sparse=True)(mask_SxD,
                                                                              strength)
    for got, want in zip(bridged_out, patched_out):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # Every channel of the first site at strength 1 makes each row's run its partner's (the
  # prompts are alike long), so each row now answers as its partner did.
  first_SxD = intervene.masks(b, [(b.sites[0], c) for c in range(d_model)])
  patched = intervene.make_probabilities(itself, batch, in_sparse=True)
  own, other, moved = patched(first_SxD, 1.0)
  p_own, p_other, preferred = patched(first_SxD, 0.0)
  np.testing.assert_allclose(own, p_other[np.arange(6) ^ 1], rtol=1e-4)
  np.testing.assert_allclose(other, p_own[np.arange(6) ^ 1], rtol=1e-4)
  np.testing.assert_array_equal(moved, ~preferred[np.arange(6) ^ 1])


def test_a_random_control_takes_other_channels_of_the_same_sites():
  nodes = [("0.attn", 1), ("0.attn", 2), ("1.mlp", 0)]
  control = intervene.random_control(nodes, 8, seed=0)
  assert sorted(s for s, _ in control) == sorted(s for s, _ in nodes)
  assert not set(control) & set(nodes)


def test_a_wrong_dense_workdir_is_one_clear_error(corpus, dense_run, tmp_path):
  def refused(cfg, match):
    with pytest.raises(dense_lib.BridgeError, match=match):
      train.train(cfg, str(tmp_path / "bridged"))

  refused(_bridge_config(corpus, tmp_path / "nowhere"), "holds no trained run")
  other_vocab = _bridge_config(corpus, dense_run)
  other_vocab.data.vocab_size = 300
  refused(other_vocab, r"tokenizer is another one \(data.vocab_size 320 there, 300 here\)")
  longer = _bridge_config(corpus, dense_run)
  longer.model.n_ctx = 64
  refused(longer, "model.n_ctx=32, this run 64")
  # Same data keys, but the dense run's tokenizer.json is another BPE.
  replaced = tmp_path / "replaced"
  shutil.copytree(dense_run, replaced)
  other = tokenizer_lib.train_bpe(["some other text entirely " * 50], 300)
  tokenizer_lib.save(other, replaced / "tokenizer.json")
  refused(_bridge_config(corpus, replaced), "tokenizer.json differs")


def _circuit_file(run_dir, tmp_path, nodes) -> str:
  """A circuit of the bridged run on a pairs file the tiny tokenizer can pose."""
  pairs = tmp_path / "digits.jsonl"
  records = []
  for i in range(8):
    a, b = str(i % 5), str(5 + i % 4)
    records += [dict(prompt=f"x{i} = {a}\ny=", correct=a, incorrect=b),
                dict(prompt=f"x{i} = {b}\ny=", correct=b, incorrect=a)]
  pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
  run = run_io.load_run(str(run_dir))
  c = circuit_lib.Circuit(
      model=dict(workdir=str(run_dir), step=run.step,
                 config_hash=circuit_lib.config_hash(run.config)),
      task=dict(name="digits", source="pairs_file", pairs_file=str(pairs), pair_seed=None,
                train_pairs=6, heldout_pairs=2, dropped_pairs=[]),
      ablation=dict(kind="mean", mean_windows=4), nodes=tuple(nodes), edges=(),
      calibration=calibrate.IDENTITY, metrics={},
      prune_config=prune_config.defaults().to_dict())
  path = tmp_path / "digits.json"
  circuit_lib.save(c, path)
  return str(path)


def test_launch_bridge_sweeps_the_circuit_and_its_control(bridged, tmp_path):
  run = tmp_path / "run"
  shutil.copytree(bridged, run)
  circuit = _circuit_file(run, tmp_path, [
      Node("attn.in", 0, 3), Node("mlp.in", 0, 5), Node("attn.q", 0, 1, head=0, channel=1)])
  text = bridge_cli.main(str(run), circuit, strengths=(0.0, 1.0))
  assert "circuit (2 nodes)" in text and "random control (2 nodes)" in text
  assert "0.attn.in[3]" in text and "0.mlp.in[5]" in text
  out = json.loads((run / "bridge_digits.json").read_text())
  assert out["heldout_pairs"] == 2
  circuit_rows, control_rows = out["together"].values()
  assert circuit_rows[0]["strength"] == 0  # untouched: the circuit is its control there
  assert circuit_rows[0] == control_rows[0]
  assert circuit_rows[1] != control_rows[1]
  # The ceiling: every channel of the circuit's two sites (0.attn and 0.mlp).
  d_model = run_io.load_run(str(run)).config.model.d_model
  assert f"all channels of its sites ({2 * d_model} nodes)" in text
  assert out["site_channels"][0] == circuit_rows[0]
  assert out["site_channels"][1] not in (circuit_rows[1], control_rows[1])
  # The reference: the circuit's own patch in the sparse model, one row per strength.
  assert "circuit in the sparse model itself (2 nodes)" in text
  assert [r["strength"] for r in out["sparse_model"]] == [0.0, 1.0]
  pytest.importorskip("matplotlib")
  assert (run / "bridge_digits.png").stat().st_size > 0


def test_launch_bridge_refuses_bad_nodes_and_strengths(bridged, tmp_path):
  circuit = _circuit_file(bridged, tmp_path, [Node("attn.q", 0, 1, head=0, channel=1)])
  with pytest.raises(UserError, match="keeps no residual-read node"):
    bridge_cli.main(str(bridged), circuit)
  with pytest.raises(UserError, match=r"--nodes: '0.attn.in\[99\]' is not"):
    bridge_cli.main(str(bridged), circuit, nodes=("0.attn.in[99]",))
  with pytest.raises(UserError, match="give strengths in"):
    bridge_cli.main(str(bridged), circuit, strengths=(1.5,))
