"""Learning node masks: the whole optimisation is one jitted loop, vmapped over runs.

Per run r (a k_coef, learning rate, init bias, temperature and seed), each step takes an
AdamW step (clipped, linear decay to 0 over the run's horizon, no warmup) on

    loss = task loss(model with node n replaced by its fill where tau_n <= 0)
           + k_coef * (number of kept nodes) + edge_coef * (number of kept edges)

through the straight-through Heaviside mask, then clamps tau to [-1, 1]. The edge term
(edges.count) makes a node cost more the more kept nodes its nonzero weights reach, so
of two nodes that carry the same signal the less connected one stays. Its weight rises
linearly from 0 over the first EDGE_RAMP of the horizon: at the start every node is kept
and a residual channel has ~100 neighbours, most of which pruning will drop; at full
weight from step 0 it pruned the residual reads first and the search never recovered
(measured: a 1,031-node quote circuit at edge_coef 1e-4, against 31 without). With
prune.partial_ablation = q, each step a node outside the circuit is ablated only with
probability q (one pattern per step, shared over the batch) and otherwise kept, so the
circuit must work whatever part of the rest is present (docs/method.md section 9).

Runs can share the model and data (a sweep) or each bring their own (`problem_axes`), so
a task, its nonsense twin and a re-initialised model can train side by side.

A problem's pairs are one batch, each step drawing batch_pairs of them at random, or
(`bucketed`) a tuple of length buckets, step t taking bucket t mod G whole: each bucket
is padded only to its own longest prompt, which on typical tasks halves the tokens a
step runs. Training can stop and go on (`start`, `advance`): the step index, not the
call, decides the data, the partial-ablation pattern and the learning rate, so a run
advanced in pieces equals one trained straight through.
"""

import functools
from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sparse_gpt.pruning import edges as edges_lib
from sparse_gpt.pruning import objective
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.surrogate import heaviside
from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks import resolve


class Problem(NamedTuple):
  """What a run prunes: a model, the fill of dropped nodes, and its training pairs."""
  params: nnx.State
  fill: jax.Array | tuple  # [n_nodes] or [B, L, n_nodes] (resample: rows of `pairs`)
  pairs: resolve.TaskBatch | tuple  # one batch, or length buckets (`bucketed`)
  # Frozen norm scales (model.norm_scales, rows of `pairs`; a tuple with buckets), or
  # None: norms not frozen.
  norms: dict[str, jax.Array] | tuple | None = None


class RunSpec(NamedTuple):
  """Per-run settings; every field has a leading run axis R. A hyperparameter left None
  is the config's, the same for every run."""
  k_coef_R: jax.Array
  key_R: jax.Array
  learning_rate_R: jax.Array | None = None
  init_bias_R: jax.Array | None = None
  temperature_R: jax.Array | None = None
  edge_coef_R: jax.Array | None = None


class State(NamedTuple):
  """A run's optimiser state between calls; under vmap with a leading run axis."""
  tau_P: jax.Array
  opt_state: optax.OptState


class Trained(NamedTuple):
  """A run's result; under vmap every field has a leading run axis."""
  tau_P: jax.Array  # final mask parameters
  loss_T: jax.Array  # per step: total loss
  task_loss_T: jax.Array
  kept_T: jax.Array  # nodes kept during the step


EDGE_RAMP = 0.5  # fraction of the horizon over which the edge term reaches full weight

SHARED = Problem(params=None, fill=None, pairs=None, norms=None)

# The config keys a compiled program depends on; the rest of a run comes in RunSpec.
_STATIC_KEYS = ("learning_rate", "beta1", "beta2", "weight_decay", "grad_clip", "init_bias",
                "init_noise", "temperature", "edge_coef", "batch_pairs", "partial_ablation")


def runs(k_coefs, seeds) -> RunSpec:
  """Every (k_coef, seed) combination, k_coef varying fastest."""
  grid = [(k, s) for s in seeds for k in k_coefs]
  return RunSpec(jnp.array([k for k, _ in grid], jnp.float32),
                 jnp.stack([jax.random.key(s) for _, s in grid]))


def bucketed(problem: Problem, batch_pairs: int, n_ctx: int) -> Problem:
  """A shared problem's pairs sorted by length into ceil(n_pairs / batch_pairs) buckets of
  near-equal size, each padded to its own length (resolve.padded); a per-row fill is cut
  alike."""
  pairs = problem.pairs
  n_pairs = len(pairs) // 2
  length_P = np.max(np.asarray(pairs.last_B).reshape(n_pairs, 2), axis=1)
  order = np.argsort(length_P, kind="stable")
  groups = np.array_split(order, -(-n_pairs // batch_pairs))
  buckets = tuple(resolve.padded(pairs.rows(resolve.pair_rows(g)), n_ctx) for g in groups)
  # Causal: a row's norms and fill at positions within its bucket's length do not depend
  # on the padding beyond it.
  cut = lambda x_BxLx, g, b: x_BxLx[resolve.pair_rows(g)][:, :b.tokens_BxL.shape[1]]
  fill = problem.fill
  if fill.ndim == 3:
    fill = tuple(cut(fill, g, b) for g, b in zip(groups, buckets))
  norms = problem.norms
  if norms is not None:
    norms = tuple(jax.tree.map(lambda x, g=g, b=b: cut(x, g, b), norms)
                  for g, b in zip(groups, buckets))
  return Problem(problem.params, fill, buckets, norms)


def partially_ablated(keep_N: jax.Array, q: float, key: jax.Array) -> jax.Array:
  """keep_N with each node outside the circuit (keep 0) kept with probability 1 - q."""
  ablate_N = jax.random.bernoulli(key, q, keep_N.shape).astype(keep_N.dtype)
  return keep_N + (1 - keep_N) * (1 - ablate_N)


def _hyper(spec: RunSpec, cfg) -> tuple:
  pick = lambda value, key: cfg[key] if value is None else value
  return (pick(spec.learning_rate_R, "learning_rate"), pick(spec.init_bias_R, "init_bias"),
          pick(spec.temperature_R, "temperature"), pick(spec.edge_coef_R, "edge_coef"))


def _optimizer(cfg, learning_rate, horizon) -> optax.GradientTransformation:
  # optax.linear_schedule(learning_rate, 0, horizon), with a traced rate and horizon.
  schedule = lambda count: learning_rate * jnp.clip(1.0 - count / horizon, 0.0, 1.0)
  return optax.chain(
      optax.clip_by_global_norm(cfg.grad_clip),
      optax.adamw(schedule, b1=cfg.beta1, b2=cfg.beta2, weight_decay=cfg.weight_decay))


def _start_one(layout, cfg, spec: RunSpec) -> State:
  _, init_bias, _, _ = _hyper(spec, cfg)
  init_key, _ = jax.random.split(spec.key_R)
  noise_P = jax.random.normal(init_key, (layout.n_params,), jnp.float32)
  tau_P = jnp.clip(init_bias + cfg.init_noise * noise_P, -1.0, 1.0)
  return State(tau_P, _optimizer(cfg, 0.0, 1).init(tau_P))


def _step_fn(graphdef, layout, cfg, problem: Problem, spec: RunSpec, horizon):
  """step(state, t) -> (state, (loss, task loss, kept)) for one run."""
  learning_rate, _, temperature, edge_coef = _hyper(spec, cfg)
  tx = _optimizer(cfg, learning_rate, horizon)
  _, data_key = jax.random.split(spec.key_R)
  buckets = problem.pairs if isinstance(problem.pairs, tuple) else (problem.pairs,)
  per_bucket = lambda x: x if isinstance(x, tuple) else (x,) * len(buckets)

  def grad_on(pairs, fill, norms):
    def loss_fn(tau_P, t):
      n_pairs = pairs.last_B.shape[0] // 2
      batch_pairs = min(cfg.batch_pairs, n_pairs)
      batch, batch_fill, batch_norms = pairs, fill, norms
      if batch_pairs < n_pairs:
        ids = jax.random.permutation(jax.random.fold_in(data_key, t), n_pairs)
        rows_B = resolve.pair_rows(ids[:batch_pairs])
        batch = pairs.rows(rows_B)
        batch_fill = fill[rows_B] if fill.ndim == 3 else fill
        batch_norms = jax.tree.map(lambda inv_rms_BxLx1: inv_rms_BxLx1[rows_B], norms)
      keep_N = layout.nodes_of(heaviside(tau_P, temperature))
      kept = jnp.sum(keep_N)
      # The search draws edge_coef around the config's: all zero when that is.
      size_cost = spec.k_coef_R * kept
      if cfg.edge_coef:
        ramp = jnp.clip(t / (EDGE_RAMP * horizon), 0.0, 1.0)
        size_cost += ramp * edge_coef * edges_lib.count(problem.params, layout, keep_N)
      if cfg.partial_ablation:
        # A key of its own, derived from step t's: the pattern is not the batch's draw.
        ablate_key = jax.random.fold_in(jax.random.fold_in(data_key, t), 1)
        keep_N = partially_ablated(keep_N, cfg.partial_ablation, ablate_key)
      last_BxV = objective.last_logits(graphdef, problem.params, layout, keep_N, batch_fill,
                                       batch, batch_norms)
      task, _ = loss_lib.task_loss_at_last(last_BxV, batch.correct_B, batch.incorrect_B)
      return task + size_cost, (task, kept)
    return jax.value_and_grad(loss_fn, has_aux=True)

  branches = [grad_on(*b) for b in zip(buckets, per_bucket(problem.fill),
                                       per_bucket(problem.norms))]

  def step(state: State, t):
    # t is the same for every run, so under vmap the switch stays a switch.
    (loss, (task, kept)), grad_P = jax.lax.switch(t % len(branches), branches,
                                                  state.tau_P, t)
    updates, opt_state = tx.update(grad_P, state.opt_state, state.tau_P)
    tau_P = jnp.clip(optax.apply_updates(state.tau_P, updates), -1.0, 1.0)
    return State(tau_P, opt_state), (loss, task, kept)

  return step


def _config(cfg_key) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(cfg_key))


def _cfg_key(cfg) -> tuple:
  return tuple((k, cfg[k]) for k in _STATIC_KEYS)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _start(layout, cfg_key, specs):
  return jax.vmap(functools.partial(_start_one, layout, _config(cfg_key)))(specs)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 6))
def _advance(graphdef, layout, cfg_key, problem, specs, states, problem_axes, first,
             n_steps, horizon):
  cfg = _config(cfg_key)

  def one(problem, spec, state):
    step = _step_fn(graphdef, layout, cfg, problem, spec, horizon)
    def body(t, carry):
      state, _ = carry
      return step(state, t)
    zero = jnp.zeros((), jnp.float32)
    return jax.lax.fori_loop(first, first + n_steps, body, (state, (zero, zero, zero)))

  return jax.vmap(one, in_axes=(problem_axes, 0, 0))(problem, specs, states)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 6))
def _train(graphdef, layout, cfg_key, steps, problem, specs, problem_axes):
  cfg = _config(cfg_key)

  def one(problem, spec):
    state = _start_one(layout, cfg, spec)
    step = _step_fn(graphdef, layout, cfg, problem, spec, steps)
    state, (loss_T, task_T, kept_T) = jax.lax.scan(step, state, jnp.arange(steps))
    return Trained(state.tau_P, loss_T, task_T, kept_T)

  return jax.vmap(one, in_axes=(problem_axes, 0))(problem, specs)


def start(layout: Layout, cfg: ml_collections.ConfigDict, specs: RunSpec) -> State:
  """The R runs' states before their first step."""
  return _start(layout, _cfg_key(cfg), specs)


def advance(graphdef: nnx.GraphDef, layout: Layout, cfg: ml_collections.ConfigDict,
            problem: Problem, specs: RunSpec, states: State, first: int, n_steps: int,
            horizon: int, problem_axes: Problem = SHARED
            ) -> tuple[State, tuple[jax.Array, jax.Array, jax.Array]]:
  """Steps first .. first + n_steps - 1 of R runs whose learning rate reaches 0 at step
  `horizon`: (states, the last step's (loss, task loss, kept) per run). The step counts
  are traced: one compiled program serves every call of a search."""
  return _advance(graphdef, layout, _cfg_key(cfg), problem, specs, states, problem_axes,
                  jnp.int32(first), jnp.int32(n_steps), jnp.float32(horizon))


def train_masks(graphdef: nnx.GraphDef, layout: Layout, cfg: ml_collections.ConfigDict,
                problem: Problem, specs: RunSpec, steps: int | None = None,
                problem_axes: Problem = SHARED) -> Trained:
  """Trains R runs at once for `steps` (cfg.steps), with per-step traces; `problem_axes`
  marks per-run problem parts with 0."""
  return _train(graphdef, layout, _cfg_key(cfg), steps or cfg.steps, problem, specs,
                problem_axes)


def take(tree, index):
  """The runs `index` (an array of run indices) of a vmapped RunSpec or State."""
  return jax.tree.map(lambda x: x[index], tree)

