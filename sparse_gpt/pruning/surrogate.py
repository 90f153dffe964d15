"""The node mask: Heaviside forward, a sigmoid's derivative backward (straight-through).

  forward:  mask = 1 if tau > 0 else 0
  backward: d mask / d tau := d/dtau sigmoid(tau / T) = s (1 - s) / T, s = sigmoid(tau / T)

The forward value is exactly 0 or 1, so a pruned model during training computes what
the exported circuit computes.
"""

import jax
import jax.numpy as jnp


# The temperature is an ordinary (traced) argument, so runs of a vmapped search can each
# have their own; it gets no gradient.
@jax.custom_vjp
def heaviside(tau: jax.Array, temperature: float | jax.Array) -> jax.Array:
  """(tau > 0) as float, with the sigmoid surrogate gradient at `temperature`."""
  return (tau > 0).astype(jnp.float32)


def _forward(tau, temperature):
  return heaviside(tau, temperature), (tau, temperature)


def _backward(residuals, g):
  tau, temperature = residuals
  s = jax.nn.sigmoid(tau / temperature)
  return g * s * (1 - s) / temperature, jnp.zeros_like(temperature)


heaviside.defvjp(_forward, _backward)
