"""Logit recalibration of a circuit: one scale and a per-token shift, fit by L-BFGS.

A pruned model's logits are often too small or biased toward one candidate. With
logits' = scale * logits + shift_V, a scalar shift would cancel in the two-way softmax,
so the shift is per token; only candidate tokens' shifts matter (the others get no
gradient and stay 0), so a calibration is stored as {token id: shift}.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sparse_gpt.tasks import loss as loss_lib


class Calibration(NamedTuple):
  scale: float
  shift: dict[int, float]  # token id -> shift; absent tokens are not shifted

  def apply(self, logits: jax.Array, token_ids: jax.Array | None = None) -> jax.Array:
    """scale * logits + the shift of each logit's token, in float32.

    token_ids [same shape as logits] names each logit's token, as for the candidate
    logits of a batch; None means the last axis is the vocabulary. Pruning calibrates
    candidates and a saved circuit its full logits through this one rule.
    """
    if token_ids is None:
      token_ids = jnp.arange(logits.shape[-1])
    calibrated = self.scale * jnp.asarray(logits, jnp.float32)
    if not self.shift:
      return calibrated
    tokens = sorted(self.shift)
    tokens_S = jnp.array(tokens, jnp.int32)
    shifts_S = jnp.array([self.shift[t] for t in tokens], jnp.float32)
    slot = jnp.clip(jnp.searchsorted(tokens_S, token_ids), 0, tokens_S.size - 1)
    return calibrated + jnp.where(tokens_S[slot] == token_ids, shifts_S[slot], 0.0)


IDENTITY = Calibration(1.0, {})


def _task_loss(theta, correct_B, incorrect_B, c_slot_B, i_slot_B):
  scale, shift_U = theta
  return loss_lib.binary_loss(scale * correct_B + shift_U[c_slot_B],
                              scale * incorrect_B + shift_U[i_slot_B])[0]


# Module level, so one program per batch shape: bisection fits a calibration at every
# size it tries, and a jit built inside `fit` compiled again each time (a 72-node model's
# bisection took 3.6 s, against 0.17 s since).
@functools.partial(jax.jit, static_argnames="steps")
def _lbfgs(theta0, correct_B, incorrect_B, c_slot_B, i_slot_B, steps):
  """(theta, its loss, theta0's loss) after `steps` L-BFGS steps from theta0."""
  loss = functools.partial(_task_loss, correct_B=correct_B, incorrect_B=incorrect_B,
                           c_slot_B=c_slot_B, i_slot_B=i_slot_B)
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    theta, state = carry
    value, grad = value_and_grad(theta, state=state)
    updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=loss)
    return (optax.apply_updates(theta, updates), state), value

  (theta, _), _ = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=steps)
  return theta, loss(theta), loss(theta0)


def fit(correct_B, incorrect_B, correct_ids_B, incorrect_ids_B, steps: int = 16
        ) -> Calibration:
  """Minimises the task loss of given candidate logits over scale and shifts."""
  tokens = np.unique(np.concatenate([np.asarray(correct_ids_B), np.asarray(incorrect_ids_B)]))
  c_slot_B = jnp.asarray(np.searchsorted(tokens, np.asarray(correct_ids_B)))
  i_slot_B = jnp.asarray(np.searchsorted(tokens, np.asarray(incorrect_ids_B)))
  theta0 = (jnp.ones((), jnp.float32), jnp.zeros(tokens.size, jnp.float32))
  (scale, shift_U), fitted, start = _lbfgs(theta0, jnp.asarray(correct_B),
                                           jnp.asarray(incorrect_B), c_slot_B, i_slot_B,
                                           steps=steps)
  # L-BFGS never does worse than its start in exact arithmetic; guard against rounding.
  if not float(fitted) <= float(start):
    return IDENTITY
  return Calibration(float(scale), {int(t): float(s) for t, s in zip(tokens, shift_U)
                                    if float(s) != 0.0})
