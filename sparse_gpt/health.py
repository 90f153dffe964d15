"""Whether training has gone wrong: the checks that stop a diverging run before it saves.

A divergence need not make the loss non-finite. With a learning rate 1000x too high the
loss of a small model rose to 1.7e10, then sat at ln(vocab) with a gradient of exactly 0
and weights up to 6.7e10; kept as good checkpoints, those pushed every healthy one out.
Every step's metrics and, before each save, the weights are checked, so a checkpoint is
written only while the run is healthy.
"""

import math

import jax
import jax.numpy as jnp

# Trained weights (and norm gains) stay within a few units: the demo model's largest is
# 3.9. A weight past this has left training, whatever the loss says yet.
WEIGHT_LIMIT = 1e4


class Monitor:
  """Checks each step's loss against the best so far and the untrained model's.

  An untrained model scores ln(vocab). A loss more than that above the best seen means
  the model predicts worse than knowing nothing at all: no healthy spike does that.
  Every process computes the same replicated metrics, so all stop at the same step.
  """

  def __init__(self, vocab_size: int):
    self._untrained = math.log(vocab_size)
    self._best = self._untrained

  def problem(self, metrics: dict) -> str | None:
    """What went wrong at this step (a phrase), or None if it looks healthy."""
    loss, grad_rms = metrics["loss"], metrics["grad_rms"]
    if not (math.isfinite(loss) and math.isfinite(grad_rms)):
      return f"the loss became {loss} (gradient RMS {grad_rms})"
    if loss > self._best + self._untrained:
      return (f"the loss rose to {loss:.4g} from a best of {self._best:.4g}, more than an "
              f"untrained model's ln(vocab) = {self._untrained:.3f} above it")
    if grad_rms == 0:
      return (f"the gradient vanished (RMS exactly 0, loss {loss:.4g}): the model no "
              "longer learns")
    self._best = min(self._best, loss)
    return None


def largest_weight(params) -> jax.Array:
  """max |w| over every parameter (NaN if any is NaN); jit it with a replicated output."""
  return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(params)]))


def weights_problem(largest: float) -> str | None:
  if not math.isfinite(largest):
    return f"a weight became {largest}"
  if largest > WEIGHT_LIMIT:
    return f"a weight grew to {largest:.3g} (healthy ones stay far below {WEIGHT_LIMIT:g})"
  return None
