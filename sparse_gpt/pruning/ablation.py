"""What a dropped node becomes: its mean, zero, or its value on the pair's other prompt.

mean      the node's mean activation over pretraining tokens (node_means.py)
zero      0
resample  the node's activation, position by position, in the full model run on the
          other prompt of the same minimal pair (rows 2p and 2p + 1 swap): a dropped
          node keeps everything but the detail that decides the task
"""

from flax import nnx
import jax
import jax.numpy as jnp

from sparse_gpt import model
from sparse_gpt.pruning.nodes import Layout


def activations(graphdef: nnx.GraphDef, params: nnx.State, layout: Layout,
                tokens_BxL: jax.Array) -> jax.Array:
  """[B, L, n_nodes]: every node's activation in the full model."""
  _, recorded = model.forward(graphdef, params, tokens_BxL, record="all",
                              positions_B=jnp.zeros(tokens_BxL.shape[0], jnp.int32))
  return layout.flatten(recorded)


def partner_activations(graphdef: nnx.GraphDef, params: nnx.State, layout: Layout,
                        tokens_BxL: jax.Array) -> jax.Array:
  """[B, L, n_nodes]: every node's activation on the pair partner of each row."""
  acts_BxLxN = activations(graphdef, params, layout, tokens_BxL)
  return acts_BxLxN[jnp.arange(tokens_BxL.shape[0]) ^ 1]


def fill(ablation: str, graphdef: nnx.GraphDef, params: nnx.State, layout: Layout,
         means_N: jax.Array, tokens_BxL: jax.Array) -> jax.Array:
  """The fill of model.NodeEdit for all nodes: [n_nodes] or [B, L, n_nodes]."""
  if ablation == "mean":
    return jnp.asarray(means_N, jnp.float32)
  if ablation == "zero":
    return jnp.zeros(layout.n_nodes, jnp.float32)
  if ablation != "resample":  # config and circuit files are checked: this is a bug
    raise ValueError(f"unknown ablation {ablation!r}")
  if tokens_BxL.shape[0] % 2:
    raise ValueError("resample ablation needs whole minimal pairs (an even batch)")
  return partner_activations(graphdef, params, layout, tokens_BxL)
