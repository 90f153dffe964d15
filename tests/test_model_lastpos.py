"""The last-position path: with positions_B the last block runs only at those positions,
and its logits and their gradients are the full forward's there."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_setup
from sparse_gpt import model
from sparse_gpt.pruning.nodes import Layout

_B, _L = 4, 9
_POSITIONS = jnp.array([8, 0, 5, 3])


def _case(n_layer, **options):
  c = tiny_setup.model_config(n_layer=n_layer, d_model=32, n_head=2, d_head=8, d_mlp=64,
                              n_ctx=16, compute_dtype="float32", **options)
  graphdef, params = model.init(c, jax.random.key(n_layer))
  layout = Layout(c.model)
  tokens = jax.random.randint(jax.random.key(1), (_B, _L), 0, 300)
  keep_N = jax.random.bernoulli(jax.random.key(2), 0.5, (layout.n_nodes,)).astype(jnp.float32)
  return graphdef, params, layout, tokens, keep_N


def _fills(layout):
  n = layout.n_nodes
  return {"mean": jax.random.normal(jax.random.key(3), (n,)),
          "zero": jnp.zeros(n),
          "resample": jax.random.normal(jax.random.key(4), (_B, _L, n))}


_CONFIGS = [(2, {}), (1, {}),
            (2, dict(attn_sink=False, pos_embedding=True, bigram=True))]


@pytest.mark.parametrize("n_layer,options", _CONFIGS)
@pytest.mark.parametrize("fill_kind", ["mean", "zero", "resample"])
@pytest.mark.parametrize("frozen", [False, True])
def test_last_position_path_equals_full_forward(n_layer, options, fill_kind, frozen):
  graphdef, params, layout, tokens, keep_N = _case(n_layer, **options)
  fill = _fills(layout)[fill_kind]
  norms = model.norm_scales(graphdef, params, tokens) if frozen else None
  rows = jnp.arange(_B)

  def full(keep_N):
    logits_BxLxV, _ = model.forward(graphdef, params, tokens, layout.edits(keep_N, fill),
                                    norms=norms)
    return logits_BxLxV[rows, _POSITIONS]

  def fast(keep_N):
    return model.forward(graphdef, params, tokens, layout.edits(keep_N, fill),
                         positions_B=_POSITIONS, norms=norms)[0]

  np.testing.assert_allclose(fast(keep_N), full(keep_N), atol=1e-6, rtol=0)
  # Mask training differentiates through the edits: the gradients agree too.
  weights_BxV = jax.random.normal(jax.random.key(5), (_B, 300))
  grad = lambda f: jax.grad(lambda k: jnp.sum(f(k) * weights_BxV))(keep_N)
  np.testing.assert_allclose(grad(fast), grad(full), atol=1e-5, rtol=1e-5)


def test_last_block_skips_positions_unless_recorded():
  """The last block's nodes exist at positions_B alone on the fast path, so recording one
  of them runs the full path; recording an earlier layer's keeps the fast one."""
  graphdef, params, layout, tokens, keep_N = _case(2)
  edits = layout.edits(keep_N, jnp.zeros(layout.n_nodes))
  forward = lambda record: jax.jit(
      lambda t: model.forward(graphdef, params, t, edits, record, _POSITIONS)).lower(
          tokens).as_text()
  # The last block's MLP runs at one position per row ([4, 1, 64]), or at all of them.
  assert "4x1x64" in forward(("0.mlp.out",))
  assert "4x1x64" not in forward(("1.mlp.out",))
  logits_BxV, rec = model.forward(graphdef, params, tokens, edits, ("1.mlp.neuron",),
                                  _POSITIONS)
  assert rec["1.mlp.neuron"].shape == (_B, _L, 64)
  full_BxLxV, _ = model.forward(graphdef, params, tokens, edits)
  np.testing.assert_allclose(logits_BxV, full_BxLxV[jnp.arange(_B), _POSITIONS], atol=1e-6)
