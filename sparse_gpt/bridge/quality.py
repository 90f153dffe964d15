"""How well a bridged run's bridges join its two models, for summary.json.

Per residual site, on the validation windows: both directions' NMSE, both KLs, and the
dense model's validation loss when run from the site on decoded sparse residuals; on the
held-out pairs of bridge.task, the dense model's accuracy run that way, against the dense
and the sparse model's own.
"""

import jax
import numpy as np

from sparse_gpt import model
from sparse_gpt import run_io
from sparse_gpt.bridge import loss
from sparse_gpt.bridge import params as bridge_params
from sparse_gpt.tasks import loss as task_loss
from sparse_gpt.tasks import resolve
from sparse_gpt.tasks.errors import TaskNotPosable


def _task_accuracies(cfg, graphdef, params, bridges, dense: run_io.Run) -> dict:
  """{"sparse", "dense", "decoded": [S]} accuracies on bridge.task's held-out pairs."""
  b = cfg.bridge
  batch = resolve.padded(resolve.resolve_task(b.task, dense.tokenizer, cfg.model.n_ctx,
                                              "heldout", b.task_pairs), cfg.model.n_ctx)

  @jax.jit
  def accuracies(params, bridges, dense_params, batch):
    accuracy = lambda logits_BxLxV: task_loss.task_loss(logits_BxLxV, batch)[1]
    tokens_BxL = batch.tokens_BxL
    sparse_logits, sparse_res = model.residual_forward(graphdef, params, tokens_BxL)
    dense_logits, _ = model.residual_forward(dense.graphdef, dense_params, tokens_BxL)
    decoded = [accuracy(model.residual_forward(
        dense.graphdef, dense_params, tokens_BxL, start=site,
        start_BxLxD=bridge_params.decode(bridges, s, sparse_res[site]))[0])
               for s, site in enumerate(sparse_res)]
    return dict(sparse=accuracy(sparse_logits), dense=accuracy(dense_logits),
                decoded=decoded)

  return jax.device_get(accuracies(params, bridges, dense.params, batch))


def measure(cfg, graphdef, params, bridges: bridge_params.Bridges, dense: run_io.Run,
            val_batches) -> dict:
  """The bridges' quality: summary.json's "bridge" (docs/bridges.md)."""
  terms = jax.jit(lambda params, dense_params, bridges, batch_BxL1: loss.terms(
      graphdef, params, dense.graphdef, dense_params, bridges, batch_BxL1, cfg.bridge.afrac))
  per_batch = [jax.device_get(terms(params, dense.params, bridges, batch))
               for batch in val_batches]
  mean = {k: np.mean([t[k] for t in per_batch], axis=0) for k in per_batch[0]}
  sites = model.residual_sites(cfg.model.n_layer)
  rows = [dict(site=site, **{k: float(mean[k][s]) for k in (*loss.TERMS, "dense_loss_decoded")})
          for s, site in enumerate(sites)]
  out = dict(sites=rows, dense_val_loss=float(mean["dense_loss"]),
             sparse_val_loss=float(mean["loss"]), task=cfg.bridge.task)
  try:
    acc = _task_accuracies(cfg, graphdef, params, bridges, dense)
  except TaskNotPosable as e:  # the run is trained either way; say why there is no score
    out["task_status"] = str(e)
    return out
  for row, decoded in zip(rows, acc["decoded"]):
    row["task_accuracy_decoded"] = float(decoded)
  out.update(dense_task_accuracy=float(acc["dense"]), sparse_task_accuracy=float(acc["sparse"]),
             task_status="ok")
  return out
