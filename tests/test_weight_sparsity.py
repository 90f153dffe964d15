"""Exact top-k projection, the neuron floor, and the annealing schedule."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tiny_setup
from sparse_gpt import config
from sparse_gpt import model
from sparse_gpt import optim
from sparse_gpt import param_kinds
from sparse_gpt import topk
from sparse_gpt import weight_sparsity as ws


class ProjectionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_keeps_exactly_k_largest(self):
    w = jax.random.normal(jax.random.key(0), (64, 48))
    for k in (1, 5, 300, 3071):
      out = self.variant(lambda w, k: ws.project_tensor(w, k, 0))(w, k)
      self.assertEqual(int(jnp.sum(out != 0)), k)
      kept, dropped = jnp.abs(w)[out != 0], jnp.abs(w)[out == 0]
      self.assertGreaterEqual(float(kept.min()), float(dropped.max()))
      np.testing.assert_array_equal(out[out != 0], w[out != 0])  # kept values untouched

  def test_neuron_floor_keeps_j_per_output_channel(self):
    w = jax.random.normal(jax.random.key(1), (40, 30))
    # Make column 0 tiny: without the floor the global top-k would drop all of it.
    w = w.at[:, 0].mul(1e-6)
    out = ws.project_tensor(w, 200, 4)
    per_column = jnp.sum(out != 0, axis=0)
    self.assertEqual(int(per_column.min()), 4)
    self.assertEqual(int(jnp.sum(out != 0)), 200)
    # Column 0's four survivors are its own four largest.
    np.testing.assert_array_equal(np.sort(np.argsort(-np.abs(w[:, 0]))[:4]),
                                  np.flatnonzero(out[:, 0]))

  def test_floor_wins_when_k_is_below_it(self):
    w = jax.random.normal(jax.random.key(2), (16, 10))
    self.assertEqual(int(jnp.sum(ws.project_tensor(w, 3, 4) != 0)), 40)

  def test_ties_are_broken_by_position(self):
    mask = topk.topk_mask(jnp.ones((3, 5)), 2, axis=1)
    np.testing.assert_array_equal(mask, np.array([[1, 1, 0, 0, 0]] * 3, bool))


def test_density_schedule_ends_and_middle():
  at = lambda step: float(ws.density_at(step, 1000, 0.0625, 0.01, 0.5))
  assert at(0) == 1.0 and at(10) == 1.0  # dense until anneal_start
  assert at(500) == pytest.approx(0.0625) and at(1000) == pytest.approx(0.0625)
  middle = (10 + 500) / 2
  assert at(middle) == pytest.approx((1 + 0.0625) / 2)


def test_a_dense_run_reports_density_one_throughout():
  c = config.defaults()
  c.sparsity.enabled = False
  assert ws.densities_at(c.train.steps // 2, c) == (1.0, 1.0)


def test_learning_rate_factor_is_one_at_final_density():
  c = config.defaults()
  c.train.update(steps=1000, warmup=0.01, learning_rate=1.0)
  c.sparsity.update(target_density=1 / 16, anneal_start=0.01, anneal_end=0.5)
  lr = lambda s: float(optim.learning_rate(s, c))
  # warmup ends at step 10, where density is still 1: factor sqrt(1/16) = 1/4.
  assert lr(9) == pytest.approx(0.25)
  # At the final density the factor is 1: only the linear decay remains.
  assert lr(500) == pytest.approx((1000 - 500) / 990)
  assert lr(999) == pytest.approx(1 / 990)


def test_optimizer_step_leaves_exact_counts_and_dense_extras():
  c = tiny_setup.model_config(n_layer=1, d_model=32, n_head=2, d_head=16, d_mlp=64,
                              n_ctx=8)
  c.train.steps = 4
  c.sparsity.update(target_density=0.125, embed_density=0.5, anneal_start=0.0,
                    anneal_end=0.25)  # the final density from step 1 on
  _, params = model.init(c, jax.random.key(0))
  tx = optim.make(c, params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = {param_kinds.path_name(p): w for p, w in
         jax.tree_util.tree_flatten_with_path(optax.apply_updates(params, updates))[0]}
  for name, w in new.items():
    nonzero = int(jnp.sum(w != 0))
    if name.startswith("blocks") and name.endswith("kernel"):
      assert nonzero == max(round(0.125 * w.size), 4 * w.shape[1]), name
    elif name in ("embed.embedding", "unembed.kernel"):
      assert nonzero == max(round(0.5 * w.size), 4 * w.shape[1]), name
    elif name.endswith(("gain", "sink")):
      assert nonzero == w.size, name  # never sparsified


def test_rescale_always_reaches_the_norm_and_clip_only_shrinks():
  grads = {"a": jnp.full((4,), 0.01), "b": jnp.full((12,), 0.01)}  # RMS 0.01, norm 0.04
  rescale = optim.rescale_to_global_norm(4.0)  # RMS 1 over 16 entries
  out, _ = rescale.update(grads, rescale.init(grads))
  np.testing.assert_allclose(optax.tree.norm(out), 4.0, rtol=1e-6)
  np.testing.assert_allclose(out["a"], 1.0, rtol=1e-6)
  clip = optax.clip_by_global_norm(4.0)
  out, _ = clip.update(grads, clip.init(grads))
  np.testing.assert_array_equal(out["a"], grads["a"])
