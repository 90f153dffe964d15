"""The model: causality, parameter count, AbsTopK, and the node hooks."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from experiments import paper
import tiny_setup
from sparse_gpt import config
from sparse_gpt import model
from sparse_gpt.activation_sparsity import abs_topk


_small = functools.partial(tiny_setup.model_config, n_layer=2, d_model=32, n_head=2,
                           d_head=8, d_mlp=64, n_ctx=16)


def test_paper_ef1_parameter_count_matches_method():
  _, params = model.abstract(paper.get_config("1"))
  n = sum(x.size for x in jax.tree.leaves(params))
  assert n == 7_362_944  # the paper: "7.4M" (docs/method.md section 2)
  assert round(n / 1e6, 1) == 7.4


class AbsTopKTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_keeps_exactly_k_largest_per_token(self):
    x = jax.random.normal(jax.random.key(0), (3, 5, 40))
    out = self.variant(lambda x: abs_topk(x, 10))(x)
    np.testing.assert_array_equal(jnp.sum(out != 0, axis=-1), 10)
    kept_min = jnp.min(jnp.where(out != 0, jnp.abs(x), jnp.inf), axis=-1)
    dropped_max = jnp.max(jnp.where(out == 0, jnp.abs(x), 0), axis=-1)
    assert bool(jnp.all(kept_min > dropped_max))

  def test_gradient_flows_only_through_kept_entries(self):
    x = jax.random.normal(jax.random.key(1), (2, 3, 12))
    grad = jax.grad(lambda x: jnp.sum(abs_topk(x, 3) * 2.0))(x)
    np.testing.assert_array_equal(grad, jnp.where(abs_topk(x, 3) != 0, 2.0, 0.0))


def test_causal_no_gradient_from_the_future():
  """Logits at position t do not depend on any token after t."""
  c = _small()
  graphdef, params = model.init(c, jax.random.key(0))
  t = 5
  # Tokens after t are ids used nowhere before: their embedding rows only feed the future.
  tokens = jnp.array([[1, 2, 3, 4, 5, 6, 200, 201, 202, 203, 204, 205]])
  def logit_sum_at_t(params):
    return model.forward(graphdef, params, tokens)[0][0, t].sum()
  grad_rows = jax.grad(logit_sum_at_t)(params)["embed"]["embedding"][...]
  np.testing.assert_array_equal(grad_rows[200:206], 0.0)
  assert float(jnp.abs(grad_rows[1:7]).sum()) > 0  # the past does matter


def test_changing_future_tokens_leaves_past_logits_unchanged():
  c = _small(attn_sink=False, pos_embedding=True, bigram=True)
  graphdef, params = model.init(c, jax.random.key(1))
  a = jnp.array([[7, 8, 9, 10, 11, 12]])
  b = a.at[0, 4:].set(jnp.array([99, 98]))
  la, lb = model.forward(graphdef, params, a)[0], model.forward(graphdef, params, b)[0]
  np.testing.assert_array_equal(la[0, :4], lb[0, :4])
  assert not np.array_equal(la[0, 4:], lb[0, 4:])


def test_record_names_and_shapes():
  c = _small()
  graphdef, params = model.init(c, jax.random.key(0))
  _, rec = model.forward(graphdef, params, jnp.zeros((2, 6), jnp.int32), record="all")
  expected = {f"{i}.{loc}" for i in range(2) for loc in config.LOCATIONS}
  assert set(rec) == expected
  assert rec["1.attn.q"].shape == (2, 6, 16)  # H*K
  assert rec["0.mlp.neuron"].shape == (2, 6, 64)
  assert rec["0.attn.in"].shape == (2, 6, 32)
  # AbsTopK is on everywhere by default: a quarter of each location survives per token.
  np.testing.assert_array_equal(jnp.sum(rec["0.mlp.neuron"] != 0, -1), 16)


def test_edit_replaces_dropped_nodes_with_fill():
  c = _small(abstopk_at="none")
  graphdef, params = model.init(c, jax.random.key(0))
  tokens = jnp.array([[3, 4, 5, 6]])
  keep = jnp.zeros(64).at[jnp.array([1, 5])].set(1.0)
  fill = jnp.full(64, 0.5)
  _, rec = model.forward(graphdef, params, tokens, record=("0.mlp.neuron",),
                         edits={"0.mlp.neuron": model.NodeEdit(keep, fill)})
  _, clean = model.forward(graphdef, params, tokens, record=("0.mlp.neuron",))
  edited, original = rec["0.mlp.neuron"][0], clean["0.mlp.neuron"][0]
  np.testing.assert_array_equal(edited[:, 1], original[:, 1])
  np.testing.assert_array_equal(edited[:, 0], 0.5)
  np.testing.assert_array_equal(edited[:, 63], 0.5)


def test_last_position_logits_match_full_logits():
  c = _small()
  graphdef, params = model.init(c, jax.random.key(2))
  tokens = jax.random.randint(jax.random.key(3), (3, 7), 0, 300)
  positions = jnp.array([0, 6, 3])
  full = model.forward(graphdef, params, tokens)[0]
  at = model.forward(graphdef, params, tokens, positions_B=positions)[0]
  np.testing.assert_allclose(at, full[jnp.arange(3), positions], rtol=1e-6)


def _erf_gelu(x):
  return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def test_reference_function_exact_gelu_and_float32_epsilon():
  """The defaults compute what OpenAI's reference computes: erf GELU, RMSNorm + 2**-23."""
  c = _small(abstopk_at="none")
  assert (c.model.gelu, c.model.norm_eps) == ("exact", 2.0**-23)
  graphdef, params = model.init(c, jax.random.key(0))
  # Pre-activations of order 1, where the tanh approximation is off by up to 4.7e-4.
  kernel = params["blocks"][0]["mlp"]["up"]["kernel"]
  kernel[...] = kernel[...] * 60.0
  tokens = jnp.array([[3, 4, 5, 6, 7, 8]])
  _, rec = model.forward(graphdef, params, tokens, record=("0.attn.in", "0.mlp.in",
                                                           "0.mlp.neuron"))
  x = np.asarray(params["embed"]["embedding"][...], np.float64)[np.asarray(tokens)]
  ms = np.mean(x * x, -1, keepdims=True)  # residual RMS ~0.02: eps matters at 1%
  np.testing.assert_allclose(rec["0.attn.in"], x / np.sqrt(ms + 2.0**-23), rtol=2e-6)
  old_eps = x / np.sqrt(ms + 1e-5)
  assert np.max(np.abs(old_eps / np.asarray(rec["0.attn.in"]) - 1)) > 5e-3
  up = params["blocks"][0]["mlp"]["up"]
  pre = (np.asarray(rec["0.mlp.in"], np.float64) @ np.asarray(up["kernel"][...], np.float64)
         + np.asarray(up["bias"][...], np.float64))
  assert np.max(np.abs(pre)) > 1.0
  np.testing.assert_allclose(rec["0.mlp.neuron"], _erf_gelu(pre), rtol=1e-5, atol=1e-6)
  tanh_gap = np.max(np.abs(_erf_gelu(pre) - np.asarray(jax.nn.gelu(pre, approximate=True))))
  assert tanh_gap > 1e-4  # so the check above tells the two apart


def test_tanh_gelu_and_old_epsilon_stay_available():
  c = _small(abstopk_at="none", gelu="tanh", norm_eps=1e-5)
  graphdef, params = model.init(c, jax.random.key(0))
  tokens = jnp.array([[3, 4, 5]])
  _, rec = model.forward(graphdef, params, tokens, record=("0.attn.in",))
  x = np.asarray(params["embed"]["embedding"][...], np.float64)[np.asarray(tokens)]
  np.testing.assert_allclose(rec["0.attn.in"],
                             x / np.sqrt(np.mean(x * x, -1, keepdims=True) + 1e-5), rtol=2e-6)


def test_chunked_causal_attention_matches_the_whole_matrix():
  """Query chunks against only their visible keys compute the same function as one
  softmax over the whole masked score matrix (the masked keys add exact zeros); only the
  order of float sums may differ, by an ulp."""
  q, k, v = (jax.random.normal(jax.random.key(i), (2, 12, 3, 4)) for i in range(3))
  sink_H = jnp.array([0.5, -1.0, 2.0])
  whole = lambda l: jnp.einsum("bhqs,bshk->bqhk",
                               model.attention_probs(q[:, :l], k[:, :l], sink_H), v[:, :l])
  assert model.QUERY_CHUNKS > 1 and 12 % model.QUERY_CHUNKS == 0
  chex.assert_trees_all_close(model.causal_attention(q, k, v, sink_H), whole(12),
                              atol=1e-6, rtol=1e-6)
  # A length the chunks do not divide runs as one chunk: the very same computation.
  chex.assert_trees_all_equal(
      model.causal_attention(q[:, :11], k[:, :11], v[:, :11], sink_H), whole(11))
