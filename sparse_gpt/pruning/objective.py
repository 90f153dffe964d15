"""A model with some nodes ablated: its logits at each prompt's last token.

Scoring those logits (candidates, calibration, task loss) is tasks/loss.py's, as for the
full model. Axes: B sequences (rows 2p and 2p + 1 are pair p), L length, V vocab.
"""

from flax import nnx
import jax

from sparse_gpt import model
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.tasks.resolve import TaskBatch


def last_logits(graphdef: nnx.GraphDef, params: nnx.State, layout: Layout,
                keep_N: jax.Array, fill: jax.Array, batch: TaskBatch,
                norms: dict[str, jax.Array] | None = None) -> jax.Array:
  """logits_BxV at each prompt's last token with the nodes where keep_N is 0 set to `fill`
  ([n_nodes], or [B, L, n_nodes] for resample ablation); `norms` (model.norm_scales of
  the unablated model on the batch) freezes every RMSNorm."""
  logits_BxV, _ = model.forward(graphdef, params, batch.tokens_BxL,
                                layout.edits(keep_N, fill), positions_B=batch.last_B,
                                norms=norms)
  return logits_BxV
