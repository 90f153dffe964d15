"""The interchange test: does the circuit carry the information that decides the task?

For each held-out pair, prompt A runs with every circuit node set to its activation in
the full model on prompt B (rows 2p and 2p + 1 swap), while every node outside the
circuit computes normally on A. If the circuit is where the deciding detail lives, A's
prediction moves to B's answer. The test runs the model itself (no ablation, norms not
frozen): it asks about the model's mechanism, not the pruned model's.

The two prompts of a pair may differ in length (most tasks' do). Positions are aligned
at the last token: A's position t takes B's position t + last_B - last_A, where the
prediction is read at both last tokens. Where B has no such position (A is the longer,
t < last_A - last_B), A keeps its own full-model value, which is what it would compute
there anyway, since nothing before those positions is patched. Equal-length pairs are
patched position by position, as resample ablation does.
"""

import functools

from flax import nnx
import jax
import jax.numpy as jnp

from sparse_gpt.pruning import ablation
from sparse_gpt.pruning import objective
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks.resolve import TaskBatch


def aligned_partner_activations(graphdef: nnx.GraphDef, params: nnx.State, layout: Layout,
                                batch: TaskBatch) -> jax.Array:
  """[B, L, n_nodes]: each row's partner's full-model activations, aligned at the last
  token; a row's own where the partner has no aligned position."""
  acts_BxLxN = ablation.activations(graphdef, params, layout, batch.tokens_BxL)
  b, l, _ = acts_BxLxN.shape
  partner_B = jnp.arange(b) ^ 1
  source_BxL = jnp.arange(l)[None] + (batch.last_B[partner_B] - batch.last_B)[:, None]
  inside_BxL = (source_BxL >= 0) & (source_BxL < l)
  theirs_BxLxN = acts_BxLxN[partner_B[:, None], jnp.clip(source_BxL, 0, l - 1)]
  return jnp.where(inside_BxL[..., None], theirs_BxLxN, acts_BxLxN)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _flips(graphdef, layout, params, circuit_N, batch):
  fill_BxLxN = aligned_partner_activations(graphdef, params, layout, batch)
  margin = lambda keep_N: jnp.subtract(*loss_lib.candidate_logits(
      objective.last_logits(graphdef, params, layout, keep_N, fill_BxLxN, batch),
      batch.correct_B, batch.incorrect_B))
  # A pair's two prompts swap candidates, so B's answer is A's incorrect candidate.
  return (margin(jnp.ones_like(circuit_N)) > 0) & (margin(1.0 - circuit_N) < 0)


def flip_rate(graphdef: nnx.GraphDef, params: nnx.State, layout: Layout, circuit_N,
              batch: TaskBatch) -> float:
  """Of all sequences, the fraction that the full model answers right and that answer
  their partner's way once the nodes where circuit_N is 1 take the partner's values."""
  flips_B = _flips(graphdef, layout, params, jnp.asarray(circuit_N, jnp.float32), batch)
  return float(jnp.mean(flips_B.astype(jnp.float32)))
