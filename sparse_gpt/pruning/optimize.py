"""Learning node masks: the whole optimisation is one jitted `lax.scan`, vmapped over runs.

Per run r (a k_coef and a seed), each step draws `batch_pairs` training pairs and takes
an AdamW step (clipped, linear decay to 0, no warmup) on

    loss = task loss(model with node n replaced by its fill where tau_n <= 0)
           + k_coef * (number of kept nodes)

through the straight-through Heaviside mask, then clamps tau to [-1, 1]. Runs can share
the model and data (a sweep) or each bring their own (`problem_axes`), so a task, its
nonsense twin and a re-initialised model can train side by side.
"""

import functools
from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sparse_gpt.pruning import objective
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.surrogate import heaviside
from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks import resolve


class Problem(NamedTuple):
  """What a run prunes: a model, the fill of dropped nodes, and its training pairs."""
  params: nnx.State
  fill: jax.Array  # [n_nodes] or [B, L, n_nodes] (resample ablation, rows of `pairs`)
  pairs: resolve.TaskBatch
  # Frozen norm scales (model.norm_scales, rows of `pairs`), or None: norms not frozen.
  norms: dict[str, jax.Array] | None = None


class RunSpec(NamedTuple):
  """Per-run settings; every field has a leading run axis R."""
  k_coef_R: jax.Array
  key_R: jax.Array


class Trained(NamedTuple):
  """A run's result; under vmap every field has a leading run axis."""
  tau_P: jax.Array  # final mask parameters
  loss_T: jax.Array  # per step: total loss
  task_loss_T: jax.Array
  kept_T: jax.Array  # nodes kept during the step


SHARED = Problem(params=None, fill=None, pairs=None, norms=None)


def runs(k_coefs, seeds) -> RunSpec:
  """Every (k_coef, seed) combination, k_coef varying fastest."""
  grid = [(k, s) for s in seeds for k in k_coefs]
  return RunSpec(jnp.array([k for k, _ in grid], jnp.float32),
                 jnp.stack([jax.random.key(s) for _, s in grid]))


def init_tau(cfg: ml_collections.ConfigDict, layout: Layout, key: jax.Array) -> jax.Array:
  noise_P = jax.random.normal(key, (layout.n_params,), jnp.float32)
  return jnp.clip(cfg.init_bias + cfg.init_noise * noise_P, -1.0, 1.0)


def optimizer(cfg: ml_collections.ConfigDict, steps: int) -> optax.GradientTransformation:
  return optax.chain(
      optax.clip_by_global_norm(cfg.grad_clip),
      optax.adamw(optax.linear_schedule(cfg.learning_rate, 0.0, steps), b1=cfg.beta1,
                  b2=cfg.beta2, weight_decay=cfg.weight_decay))


def _train_one(graphdef, layout, cfg, steps, problem: Problem, k_coef, key) -> Trained:
  n_pairs = problem.pairs.last_B.shape[0] // 2
  batch_pairs = min(cfg.batch_pairs, n_pairs)
  per_row_fill = problem.fill.ndim == 3
  tx = optimizer(cfg, steps)
  init_key, data_key = jax.random.split(key)

  def loss_fn(tau_P, rows_B):
    pairs, fill, norms = problem.pairs, problem.fill, problem.norms
    if batch_pairs < n_pairs:
      pairs = pairs.rows(rows_B)
      fill = fill[rows_B] if per_row_fill else fill
      norms = jax.tree.map(lambda inv_rms_BxLx1: inv_rms_BxLx1[rows_B], norms)
    keep_N = layout.nodes_of(heaviside(tau_P, cfg.temperature))
    last_BxV = objective.last_logits(graphdef, problem.params, layout, keep_N, fill, pairs,
                                     norms)
    task, _ = loss_lib.task_loss_at_last(last_BxV, pairs.correct_B, pairs.incorrect_B)
    kept = jnp.sum(keep_N)
    return task + k_coef * kept, (task, kept)

  def step(carry, t):
    tau_P, opt_state = carry
    pair_ids = jax.random.permutation(jax.random.fold_in(data_key, t), n_pairs)
    rows_B = resolve.pair_rows(pair_ids[:batch_pairs])
    (loss, (task, kept)), grad_P = jax.value_and_grad(loss_fn, has_aux=True)(tau_P, rows_B)
    updates, opt_state = tx.update(grad_P, opt_state, tau_P)
    tau_P = jnp.clip(optax.apply_updates(tau_P, updates), -1.0, 1.0)
    return (tau_P, opt_state), (loss, task, kept)

  tau_P = init_tau(cfg, layout, init_key)
  (tau_P, _), (loss_T, task_T, kept_T) = jax.lax.scan(
      step, (tau_P, tx.init(tau_P)), jnp.arange(steps))
  return Trained(tau_P, loss_T, task_T, kept_T)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 6))
def _train(graphdef, layout, cfg_key, steps, problem, specs, problem_axes):
  cfg = ml_collections.ConfigDict(dict(cfg_key))
  one = functools.partial(_train_one, graphdef, layout, cfg, steps)
  return jax.vmap(one, in_axes=(problem_axes, 0, 0))(problem, specs.k_coef_R, specs.key_R)


def train_masks(graphdef: nnx.GraphDef, layout: Layout, cfg: ml_collections.ConfigDict,
                problem: Problem, specs: RunSpec, steps: int | None = None,
                problem_axes: Problem = SHARED) -> Trained:
  """Trains R runs at once; `problem_axes` marks per-run problem parts with 0."""
  keys = ("learning_rate", "beta1", "beta2", "weight_decay", "grad_clip", "init_bias",
          "init_noise", "temperature", "batch_pairs")
  cfg_key = tuple((k, cfg[k]) for k in keys)
  return _train(graphdef, layout, cfg_key, steps or cfg.steps, problem, specs, problem_axes)
