"""The battery's newer checks and the frozen norms they and pruning can use.

Frozen norms: every RMSNorm divides by the unablated model's RMS on the same tokens.
Interchange: a circuit's nodes take the pair partner's activations; the answer follows.
Partial ablation: random parts of the rest of the model stay present.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_setup
from sparse_gpt import model
from sparse_gpt import param_kinds
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt.pruning import ablation
from sparse_gpt.pruning import calibrate
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import faithfulness
from sparse_gpt.pruning import interchange
from sparse_gpt.pruning import objective
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning import partial
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.subject import Subject
from sparse_gpt.tasks import pairs_file
from sparse_gpt.tasks import resolve
from test_prune_planted import PLANTED, _config, _pairs_file, _planted_params


def _random_model():
  cfg = tiny_setup.model_config(vocab_size=40, n_layer=1, d_model=8, n_head=2, d_head=4,
                                d_mlp=16, n_ctx=16, attn_sink=False, abstopk_at="none")
  graphdef, params = model.init(cfg, jax.random.key(3))
  return cfg, graphdef, params


def _random_pairs(n_pairs: int, length: int = 8) -> resolve.TaskBatch:
  tokens = np.random.default_rng(0).integers(1, 40, (2 * n_pairs, length)).astype(np.int32)
  correct = np.tile([5, 6], n_pairs).astype(np.int32)
  return resolve.TaskBatch(tokens, np.full(2 * n_pairs, length - 1, np.int32), correct,
                           11 - correct)


def test_frozen_norms_change_nothing_when_nothing_is_ablated():
  cfg, graphdef, params = _random_model()
  layout = Layout(cfg.model)
  batch = _random_pairs(4)
  norms = model.norm_scales(graphdef, params, batch.tokens_BxL)
  assert set(norms) == {"0.attn_norm", "0.mlp_norm", "final_norm"}
  full_BxLxV, _ = model.forward(graphdef, params, batch.tokens_BxL)
  frozen_BxLxV, _ = model.forward(graphdef, params, batch.tokens_BxL, norms=norms)
  np.testing.assert_array_equal(frozen_BxLxV, full_BxLxV)
  keep_N, fill_N = jnp.ones(layout.n_nodes), jnp.full(layout.n_nodes, 5.0)
  np.testing.assert_array_equal(
      objective.last_logits(graphdef, params, layout, keep_N, fill_N, batch, norms),
      objective.last_logits(graphdef, params, layout, keep_N, fill_N, batch))


def test_frozen_norms_divide_by_the_unablated_rms():
  """Ablating attn.out channel 3 with a large value: by hand, the MLP norm and the final
  norm must divide by the unablated model's RMS."""
  cfg, graphdef, params = _random_model()
  layout = Layout(cfg.model)
  batch = _random_pairs(2)
  tokens = batch.tokens_BxL
  norms = model.norm_scales(graphdef, params, tokens)
  _, rec = model.forward(graphdef, params, tokens, record=("0.attn.out",))
  site = layout.by_name["0.attn.out"]
  keep_N = jnp.ones(layout.n_nodes).at[site.start + 3].set(0.0)
  fill_N = jnp.full(layout.n_nodes, 5.0)

  p = {param_kinds.path_name(path): np.asarray(x)
       for path, x in jax.tree_util.tree_flatten_with_path(params)[0]}
  attn_out = np.asarray(rec["0.attn.out"]).copy()
  attn_out[..., 3] = 5.0
  x1 = p["embed.embedding"][tokens] + attn_out
  mlp_in = x1 * np.asarray(norms["0.mlp_norm"]) * p["blocks.0.mlp_norm.gain"]
  h = jax.nn.gelu(mlp_in @ p["blocks.0.mlp.up.kernel"] + p["blocks.0.mlp.up.bias"],
                  approximate=False)
  x2 = x1 + np.asarray(h) @ p["blocks.0.mlp.down.kernel"] + p["blocks.0.mlp.down.bias"]
  final = x2 * np.asarray(norms["final_norm"]) * p["final_norm.gain"]
  by_hand_BxV = (final @ p["unembed.kernel"])[np.arange(4), batch.last_B]

  frozen_BxV = objective.last_logits(graphdef, params, layout, keep_N, fill_N, batch, norms)
  np.testing.assert_allclose(frozen_BxV, by_hand_BxV, rtol=1e-5, atol=1e-6)
  free_BxV = objective.last_logits(graphdef, params, layout, keep_N, fill_N, batch)
  assert np.max(np.abs(np.asarray(free_BxV) - by_hand_BxV)) > 1e-3


def test_mask_training_takes_each_steps_rows_of_the_frozen_norms():
  cfg, graphdef, params = _random_model()
  layout = Layout(cfg.model)
  batch = _random_pairs(4)
  norms = model.norm_scales(graphdef, params, batch.tokens_BxL)
  spec = optimize.runs((1e-4,), (0,))
  p = prune_config.defaults()
  p.update(batch_pairs=2)
  train = lambda p, norms: optimize.train_masks(
      graphdef, layout, p, optimize.Problem(params, jnp.zeros(layout.n_nodes), batch, norms),
      spec, steps=3)
  # Every node starts kept: a frozen norm is the norm, if the step's rows are the right ones.
  np.testing.assert_allclose(train(p, norms).task_loss_T[0], train(p, None).task_loss_T[0],
                             rtol=1e-6)
  p.update(init_bias=-0.5)  # every node starts dropped (zero ablation)
  assert train(p, norms).task_loss_T[0] != pytest.approx(train(p, None).task_loss_T[0])


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
  """(graphdef, params, layout, held-out-like batch of 16 pairs) of the planted model."""
  cfg = _config()
  tok = tokenizer_lib.train_bpe(["abcdefghqXY"], 257)
  graphdef, params = _planted_params(cfg, tok)
  path = _pairs_file(tmp_path_factory.mktemp("battery") / "p.jsonl", 16, seed=5)
  batch, _ = pairs_file.resolve_file_pairs(path, tok, cfg.model.n_ctx)
  return graphdef, params, Layout(cfg.model), resolve.padded(batch, cfg.model.n_ctx), tok


def _mask(layout, nodes):
  return jnp.zeros(layout.n_nodes).at[jnp.array([layout.index(n) for n in nodes],
                                                jnp.int32)].set(1.0)


def test_interchange_on_the_planted_circuit_flips_every_answer(planted_model):
  graphdef, params, layout, batch, _ = planted_model
  assert interchange.flip_rate(graphdef, params, layout, _mask(layout, PLANTED), batch) == 1.0
  assert interchange.flip_rate(graphdef, params, layout, _mask(layout, ()), batch) == 0.0
  # Patching upstream suffices: attn.out recomputes from the patched value channel.
  no_out = PLANTED - {n for n in PLANTED if n.site == "attn.out"}
  assert interchange.flip_rate(graphdef, params, layout, _mask(layout, no_out), batch) == 1.0


def test_interchange_aligns_unequal_prompts_at_their_last_tokens(planted_model):
  """Pair 0's prompts differ in length by 2: the longer one's positions 2.. take the
  shorter one's 0..; its first two keep their own values."""
  graphdef, params, layout, _, tok = planted_model
  ids = lambda s: tok.encode(s).ids
  long, short = ids("acdcdefq"), ids("bdefq")
  tokens = np.zeros((2, 16), np.int32)
  tokens[0, :len(long)], tokens[1, :len(short)] = long, short
  x, y = tok.token_to_id("X"), tok.token_to_id("Y")
  batch = resolve.TaskBatch(tokens, np.array([len(long) - 1, len(short) - 1], np.int32),
                            np.array([x, y], np.int32), np.array([y, x], np.int32))
  d = len(long) - len(short)
  acts = np.asarray(ablation.activations(graphdef, params, layout, tokens))
  aligned = np.asarray(interchange.aligned_partner_activations(graphdef, params, layout,
                                                               batch))
  np.testing.assert_array_equal(aligned[0, d:len(long)], acts[1, :len(short)])
  np.testing.assert_array_equal(aligned[0, :d], acts[0, :d])
  np.testing.assert_array_equal(aligned[1, :len(short)], acts[0, d:len(long)])
  assert interchange.flip_rate(graphdef, params, layout, _mask(layout, PLANTED), batch) == 1.0


def test_partial_ablation_patterns_keep_the_circuit():
  keep_N = jnp.zeros(1000).at[:10].set(1.0)
  keep_JxN = partial.patterns(jax.random.key(0), keep_N, 0.25, 32)
  assert keep_JxN.shape == (32, 1000) and bool(jnp.all(keep_JxN[:, :10] == 1))
  assert float(jnp.mean(keep_JxN[:, 10:])) == pytest.approx(0.75, abs=0.02)
  assert bool(jnp.all(partial.patterns(jax.random.key(1), keep_N, 0.0, 4) == 1))


def test_partial_ablation_of_the_planted_rest_changes_nothing_with_frozen_norms(
    planted_model):
  """Outside the planted nodes nothing reaches the task's channels, except through the
  norms: with them frozen, every pattern scores as the full model does; without, not.
  (The MLP writes nothing to channel 1, so its fill there is what it computes: 0.)"""
  graphdef, params, layout, batch, _ = planted_model
  means_N = jnp.full(layout.n_nodes, 0.7).at[layout.by_name["0.mlp.out"].start + 1].set(0.0)
  circuit_N = _mask(layout, PLANTED)
  frozen = Subject(graphdef, params, layout, means_N, "mean", freeze_norms=True)
  full = frozen.loss(frozen.everything(), batch, means_N)[0]
  losses_J = partial.losses(frozen, circuit_N, batch, means_N, 0.5)
  assert losses_J.shape == (partial.PATTERNS,)
  np.testing.assert_allclose(losses_J, full, rtol=1e-5)
  free = Subject(graphdef, params, layout, means_N, "mean")
  free_J = partial.losses(free, circuit_N, batch, means_N, 0.5)
  assert float(jnp.max(jnp.abs(free_J - full))) > 1e-4
  # Without the circuit the task falls apart under some pattern.
  assert float(jnp.max(partial.losses(frozen, 0 * circuit_N, batch, means_N, 0.5))) > 0.5


def test_the_battery_records_interchange_and_partial_ablation(planted_model):
  graphdef, params, layout, batch, _ = planted_model
  zeros_N = jnp.zeros(layout.n_nodes)
  subject = Subject(graphdef, params, layout, zeros_N, "zero")
  h = faithfulness.heldout_checks(subject, _mask(layout, PLANTED), calibrate.IDENTITY, batch,
                                  partial_ablation=0.25)
  assert h["interchange_flip_rate"] == 1.0
  p = h["partial_ablation"]
  assert (p["q"], p["patterns"]) == (0.25, 32) and p["worst_loss"] >= p["mean_loss"]
  none = faithfulness.heldout_checks(subject, zeros_N, calibrate.IDENTITY, batch)
  assert none["interchange_flip_rate"] == 0.0
  assert none["partial_ablation"]["q"] == faithfulness.PARTIAL_Q
