"""Pruning's parts on their own: the surrogate gradient, bisection, node layout, edges,
calibration, nulls, and the launcher's errors."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_setup
from sparse_gpt import model
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import calibrate
from launch import prune_cli as cli
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import edges as edges_lib
from sparse_gpt.pruning import exact_size
from sparse_gpt.pruning import nulls
from sparse_gpt.pruning import subject as subject_lib
from sparse_gpt.pruning.nodes import Layout, Node
from sparse_gpt.pruning.surrogate import heaviside
from sparse_gpt.tasks.loss import binary_loss
from sparse_gpt.tasks.resolve import TaskBatch


_model_cfg = functools.partial(tiny_setup.model_config, n_layer=2, d_model=8, n_head=2,
                               d_head=4, d_mlp=16, n_ctx=16)


class HeavisideTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_forward_is_exactly_a_step(self):
    tau = jnp.array([-1.0, -1e-6, 0.0, 1e-6, 0.5, 1.0])
    out = self.variant(lambda t: heaviside(t, 1.0))(tau)
    np.testing.assert_array_equal(out, [0, 0, 0, 1, 1, 1])

  @chex.variants(with_jit=True, without_jit=True)
  def test_backward_is_the_sigmoid_derivative(self):
    tau = jnp.linspace(-1.0, 1.0, 11)
    weights = jnp.arange(1.0, 12.0)
    for temperature in (0.5, 1.0, 2.0):
      grad = self.variant(jax.grad(lambda t: jnp.sum(weights * heaviside(t, temperature))))(tau)
      # Central differences of sigmoid(tau / T), in float64 numpy.
      t, h = np.asarray(tau, np.float64), 1e-5
      sig = lambda x: 1 / (1 + np.exp(-x / temperature))
      expected = np.asarray(weights) * (sig(t + h) - sig(t - h)) / (2 * h)
      np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 1000])
def test_bisection_returns_the_smallest_passing_size(n):
  for k_true in sorted({0, 1, n // 3, n - 1, n}):
    if not 0 <= k_true <= n:
      continue
    for start in (None, 0, 1, k_true, n // 2, n):
      calls = []
      passes = lambda k: calls.append(k) or k >= k_true
      assert exact_size.smallest_passing(passes, n, start) == k_true
      assert len(calls) <= 2 * (int(np.log2(n + 1)) + 2)


def test_bisection_on_a_monotone_loss_curve_and_when_nothing_passes():
  loss_of_k = lambda k: 2.0 / (1 + k)  # falls monotonically; <= 0.15 from k = 13 on
  assert exact_size.smallest_passing(lambda k: loss_of_k(k) <= 0.15, 100, start=5) == 13
  assert exact_size.smallest_passing(lambda k: loss_of_k(k) <= 0.15, 10) is None
  tau = jnp.array([0.3, -0.2, 0.9, 0.1, -0.5])
  # Keeping the best-ranked k parameters: loss is 1 until parameters 2 and 0 are kept.
  k, loss = exact_size.smallest_circuit(
      tau, lambda mask: 0.0 if mask[2] and mask[0] else 1.0, target=0.15)
  assert (k, loss) == (2, 0.0)


def test_layout_names_every_node_and_ties_qk():
  m = _model_cfg().model
  layout = Layout(m)
  assert layout.n_nodes == layout.n_params == 2 * (4 * 8 + 3 * 8 + 16)
  for n in range(layout.n_nodes):
    assert layout.index(layout.node(n)) == n
  q = layout.node(layout.by_name["1.attn.q"].start + 6)
  assert (q.head, q.channel, q.label()) == (1, 2, "1.attn.q[h1.2]")
  tied = Layout(m, tie_qk=True)
  assert tied.n_params == layout.n_nodes - 2 * 8
  mask_P = jnp.zeros(tied.n_params).at[tied.param_of_node_N[tied.index(q)]].set(1.0)
  kept = [tied.node(int(n)).label() for n in np.flatnonzero(tied.nodes_of(mask_P))]
  assert kept == ["1.attn.q[h1.2]", "1.attn.k[h1.2]"]
  with pytest.raises(UserError, match="does not exist"):
    layout.index(Node("mlp.neuron", 0, 16))


def test_edges_are_the_nonzero_weights_between_kept_nodes():
  cfg = _model_cfg()
  _, params = model.init(cfg, jax.random.key(0))
  up = params["blocks"][0]["mlp"]["up"]["kernel"]
  up[...] = up[...].at[3, 5].set(0.0)
  layout = Layout(cfg.model)
  kept = [layout.index(n) for n in (Node("mlp.in", 0, 2), Node("mlp.in", 0, 3),
                                    Node("mlp.neuron", 0, 5), Node("mlp.out", 0, 1),
                                    Node("attn.in", 1, 0))]
  found = {(e.param, e.index) for e in edges_lib.between(params, layout, kept)}
  assert found == {("blocks.0.mlp.up.kernel", (2, 5)), ("blocks.0.mlp.down.kernel", (5, 1))}


def test_edge_count_equals_the_listed_edges_and_its_gradient_counts_kept_neighbours():
  cfg = _model_cfg()
  _, params = model.init(cfg, jax.random.key(0))
  # Zero half of every kernel's entries, so the count must skip the zeros.
  params = jax.tree.map(lambda x: x * (jax.random.uniform(jax.random.key(1), x.shape) < 0.5)
                        if x.ndim == 2 else x, params)
  layout = Layout(cfg.model)
  keep_N = (jax.random.uniform(jax.random.key(2), (layout.n_nodes,)) < 0.4).astype(
      jnp.float32)
  kept = np.flatnonzero(np.asarray(keep_N))
  listed = edges_lib.between(params, layout, kept)
  assert len(listed) > 0
  count, grad_N = jax.jit(jax.value_and_grad(
      lambda k: edges_lib.count(params, layout, k)))(keep_N)
  assert int(count) == len(listed)
  # A node's gradient is the number of edges it would have with the kept nodes.
  for n in (layout.by_name["0.mlp.in"].start + 1, layout.by_name["1.attn.v"].start + 2):
    flipped_N = keep_N.at[n].set(1.0 - keep_N[n])
    with_n, without_n = sorted([keep_N, flipped_N], key=lambda k: -float(k[n]))
    expected = (len(edges_lib.between(params, layout, np.flatnonzero(with_n)))
                - len(edges_lib.between(params, layout, np.flatnonzero(without_n))))
    assert float(grad_N[n]) == expected


def test_calibration_fits_scale_and_shift_and_never_hurts():
  rng = np.random.default_rng(0)
  margin = rng.normal(0.3, 0.5, 64).astype(np.float32)  # weak and biased to token 7
  correct_ids = np.where(np.arange(64) % 2, 7, 9)
  incorrect_ids = np.where(np.arange(64) % 2, 9, 7)
  correct = jnp.asarray(np.where(correct_ids == 7, margin + 0.4, margin - 0.4))
  incorrect = jnp.zeros(64)
  before = float(binary_loss(correct, incorrect)[0])
  cal = calibrate.fit(correct, incorrect, correct_ids, incorrect_ids, steps=16)
  after = float(binary_loss(cal.apply(correct, correct_ids),
                            cal.apply(incorrect, incorrect_ids))[0])
  assert after < before - 0.05
  assert set(cal.shift) <= {7, 9} and cal.scale > 1
  logits = jnp.zeros((2, 3, 12)).at[..., 7].set(1.0)
  np.testing.assert_allclose(cal.apply(logits)[..., 7], cal.scale + cal.shift.get(7, 0.0))


def test_calibrations_of_one_batch_shape_share_one_compiled_fit():
  # Bisection fits one at every size it tries; a fit that compiled each time made that
  # 20x slower on a small model.
  rng = np.random.default_rng(1)
  ids = np.where(np.arange(23) % 2, 3, 5), np.where(np.arange(23) % 2, 5, 3)
  before = calibrate._lbfgs._cache_size()
  for _ in range(3):
    calibrate.fit(jnp.asarray(rng.normal(size=23), jnp.float32), jnp.zeros(23), *ids)
  assert calibrate._lbfgs._cache_size() <= before + 1


def test_the_loss_error_counts_pairs_not_sequences():
  margins_B = np.array([0.0, 0.0, 30.0, 30.0, 0.0, 30.0])  # pair losses ln 2, 0, ln 2 / 2
  batch = TaskBatch(jnp.zeros((6, 2), jnp.int32), jnp.zeros(6, jnp.int32),
                    jnp.zeros(6, jnp.int32), jnp.ones(6, jnp.int32))
  logits = (jnp.asarray(margins_B), jnp.zeros(6))
  pair_P = np.log1p(np.exp(-margins_B)).reshape(3, 2).mean(axis=1)
  mean, error = subject_lib.mean_and_error(logits, batch)
  np.testing.assert_allclose(mean, np.log(2) / 2, rtol=1e-6)
  np.testing.assert_allclose(error, np.std(pair_P, ddof=1) / np.sqrt(3), rtol=1e-5)
  np.testing.assert_allclose(subject_lib.upper_bound(logits, batch, calibrate.IDENTITY, 2.0),
                             mean + 2 * error, rtol=1e-6)


def test_nonsense_labels_are_fixed_per_prompt_and_vary_when_prompts_end_alike():
  # 40 distinct prompts that all end in token 9 (as while_return_true's end in " True"),
  # then each again with other tokens after its last one.
  prompts = np.array([[a, b, 9, 0] for a in range(1, 6) for b in range(1, 9)])
  tokens = jnp.asarray(np.concatenate([prompts, prompts + [0, 0, 0, 3]]))
  pairs = TaskBatch(tokens, jnp.full(80, 2), jnp.array([10, 11] * 40),
                    jnp.array([11, 10] * 40))
  correct_B = np.asarray(nulls.nonsense_labels(pairs).correct_B)
  np.testing.assert_array_equal(correct_B[:40], correct_B[40:])  # only the prompt counts
  np.testing.assert_array_equal(correct_B + np.asarray(
      nulls.nonsense_labels(pairs).incorrect_B), 21)
  assert 10 <= np.sum(correct_B[:40] == 10) <= 30  # about half each, not one constant
  other_seed = np.asarray(nulls.nonsense_labels(pairs, seed=1).correct_B)
  assert np.any(other_seed != correct_B)


def test_launcher_errors_are_one_line_user_errors(tmp_path):
  with pytest.raises(UserError, match="Unknown task 'no_such_task'"):
    cli.main(str(tmp_path), task="no_such_task")
  with pytest.raises(UserError, match="holds no run"):
    cli.main(str(tmp_path / "missing"), task="single_double_quote")
  with pytest.raises(UserError, match="exactly one"):
    cli.main(str(tmp_path), task="single_double_quote", pairs="x.jsonl")
  with pytest.raises(UserError, match="does not exist"):
    cli.main(str(tmp_path), pairs=str(tmp_path / "none.jsonl"))
  bad = prune_config.defaults()
  bad.ablation = "median"
  with pytest.raises(UserError, match="prune.ablation"):
    cli.main(str(tmp_path), task="single_double_quote", cfg=bad)
