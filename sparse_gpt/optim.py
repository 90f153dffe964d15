"""The optimizer of docs/method.md section 4: RMS-clipped AdamW, warmup + linear decay,
times sqrt(density_final / density_t), with the weight-sparsity projection around it."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from sparse_gpt import param_kinds
from sparse_gpt import weight_sparsity


def learning_rate(step, cfg: ml_collections.ConfigDict):
  """Peak lr x warmup/decay shape x the 1/sqrt(L0) factor (1 at the final density)."""
  t = cfg.train
  warmup = max(1, round(t.warmup * t.steps))
  shape = jnp.minimum((step + 1) / warmup, jnp.maximum(0.0, (t.steps - step) / max(1, t.steps - warmup)))
  # densities_at is 1 throughout a dense run, so the factor is 1 there.
  final, now = (weight_sparsity.densities_at(s, cfg).hidden for s in (t.steps, step))
  return t.learning_rate * shape * jnp.sqrt(final / now)


def make(cfg: ml_collections.ConfigDict, params, shardings=None
         ) -> optax.GradientTransformation:
  """The optimizer for `params`; `shardings`, the parameters' NamedShardings (a tree like
  `params`), lets the weight-sparsity projection run shard by shard."""
  t = cfg.train
  n_params = sum(x.size for x in jax.tree.leaves(params))
  adamw = optax.adamw(lambda step: learning_rate(step, cfg), b1=t.beta1, b2=t.beta2,
                      eps=t.eps, weight_decay=t.weight_decay,
                      mask=param_kinds.decayed(params))
  if t.grad_rms_clip > 0:
    # RMS <= c is the same as global norm <= c * sqrt(n): optax's clip does the rest.
    limit = t.grad_rms_clip * math.sqrt(n_params)
    scale = (optax.clip_by_global_norm(limit) if t.grad_rms_mode == "clip"
             else rescale_to_global_norm(limit))
    adamw = optax.chain(scale, adamw)
  return weight_sparsity.sparsify(adamw, cfg, shardings) if cfg.sparsity.enabled else adamw


def rescale_to_global_norm(norm: float) -> optax.GradientTransformation:
  """Scales every gradient to exactly this global norm (the released code's rule)."""
  def scale(updates, params=None):
    del params
    factor = norm / jnp.maximum(optax.tree.norm(updates), 1e-30)
    return jax.tree.map(lambda g: g * factor, updates)
  return optax.stateless(scale)


def grad_rms(grads) -> jax.Array:
  leaves = jax.tree.leaves(grads)
  return jnp.sqrt(sum(jnp.sum(g * g) for g in leaves) / sum(g.size for g in leaves))
