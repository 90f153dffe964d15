"""A trained model as pruning sees it: weights, node layout, the ablation values, and
whether its norms are frozen at the unablated model's (docs/method.md section 9)."""

import dataclasses
import functools

from flax import nnx
import jax
import jax.numpy as jnp

from sparse_gpt import model
from sparse_gpt.pruning import ablation as ablation_lib
from sparse_gpt.pruning import exact_size
from sparse_gpt.pruning import objective
from sparse_gpt.pruning.calibrate import IDENTITY, Calibration
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.tasks import loss as loss_lib
from sparse_gpt.tasks.resolve import TaskBatch


@functools.partial(jax.jit, static_argnums=(0, 1))
def _candidates(graphdef, layout, params, keep_N, fill, batch, norms):
  last_BxV = objective.last_logits(graphdef, params, layout, keep_N, fill, batch, norms)
  return loss_lib.candidate_logits(last_BxV, batch.correct_B, batch.incorrect_B)


_norm_scales = jax.jit(model.norm_scales, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _fill(kind, graphdef, layout, params, means_N, tokens_BxL):
  return ablation_lib.fill(kind, graphdef, params, layout, means_N, tokens_BxL)


def scored(candidates, batch: TaskBatch,
           calibration: Calibration = IDENTITY) -> tuple[float, float]:
  """(task loss, accuracy) of Subject.candidates' logits, calibrated if given: one forward
  serves a circuit's raw and calibrated scores."""
  correct_B, incorrect_B = candidates
  loss, accuracy = loss_lib.binary_loss(calibration.apply(correct_B, batch.correct_B),
                                        calibration.apply(incorrect_B, batch.incorrect_B))
  return float(loss), float(accuracy)


def mean_and_error(candidates, batch: TaskBatch,
                   calibration: Calibration = IDENTITY) -> tuple[float, float]:
  """The mean task loss of Subject.candidates' logits (calibrated) and its standard error.
  A pair's two sequences share their pattern, so pairs are the independent draws."""
  correct_B, incorrect_B = candidates
  loss_P = loss_lib.binary_losses(calibration.apply(correct_B, batch.correct_B),
                                  calibration.apply(incorrect_B, batch.incorrect_B)
                                  ).reshape(-1, 2).mean(axis=1)
  error = jnp.std(loss_P, ddof=1) / jnp.sqrt(loss_P.size) if loss_P.size > 1 else 0.0
  return float(jnp.mean(loss_P)), float(error)


def upper_bound(candidates, batch: TaskBatch, calibration: Calibration, z: float) -> float:
  """mean_and_error's mean plus z standard errors."""
  mean, error = mean_and_error(candidates, batch, calibration)
  return mean + z * error


@dataclasses.dataclass(frozen=True)
class Subject:
  """Scores the model with any set of nodes ablated; the programs are compiled once."""
  graphdef: nnx.GraphDef
  params: nnx.State
  layout: Layout
  means_N: jax.Array  # mean activation of every node over pretraining tokens
  ablation: str  # "mean", "zero" or "resample" (ablation.py)
  freeze_norms: bool = False  # every RMSNorm divides by the unablated model's RMS

  def norms(self, batch: TaskBatch) -> dict[str, jax.Array] | None:
    """The frozen norm scales on `batch` (model.norm_scales), or None if not frozen."""
    if not self.freeze_norms:
      return None
    return _norm_scales(self.graphdef, self.params, batch.tokens_BxL)

  def fill(self, batch: TaskBatch, ablation: str | None = None) -> jax.Array:
    """Ablation values for `batch` (a forward pass for resample ablation)."""
    return _fill(ablation or self.ablation, self.graphdef, self.layout, self.params,
                 self.means_N, batch.tokens_BxL)

  def candidates(self, keep_N, batch: TaskBatch, fill: jax.Array):
    """(correct_B, incorrect_B) logits, nodes where keep_N is 0 set to `fill`."""
    return _candidates(self.graphdef, self.layout, self.params, jnp.asarray(keep_N), fill,
                       batch, self.norms(batch))

  def loss(self, keep_N, batch: TaskBatch, fill: jax.Array,
           calibration: Calibration = IDENTITY) -> tuple[float, float]:
    """(task loss, accuracy) on `batch`, with the logits calibrated if given."""
    return scored(self.candidates(keep_N, batch, fill), batch, calibration)

  def everything(self) -> jax.Array:
    """keep_N of the full model."""
    return jnp.ones(self.layout.n_nodes, jnp.float32)

  def smallest_circuit(self, tau_P, batch: TaskBatch, fill: jax.Array,
                       target: float) -> tuple[jax.Array | None, float | None]:
    """(keep_N, loss) of the smallest circuit of the tau ordering that reaches `target`
    on `batch` (exact_size.py), or (None, None)."""
    k, loss = exact_size.smallest_circuit(
        tau_P, lambda mask_P: self.loss(self.layout.nodes_of(mask_P), batch, fill)[0],
        target)
    if k is None:
      return None, None
    return self.layout.nodes_of(exact_size.top(exact_size.rank(tau_P), k)), loss
