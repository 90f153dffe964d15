"""The GPU path's switches: bf16 compute with fp32 master weights, and rematerialisation.

The runs happen in a fresh process (see test_scale_devices.in_fresh_process), where XLA
compiles twice as fast at optimisation level 0.
"""

import jax
import numpy as np

from test_scale_devices import in_fresh_process
import tiny_setup
from sparse_gpt import sharding
from sparse_gpt import train_step


def _train(steps=4, **model) -> dict:
  """A few steps on one repeated batch: losses, state dtypes, bytes kept for backward."""
  cfg = tiny_setup.tiny_config("unused", "unused", steps=steps)
  cfg.sparsity.enabled = False  # orthogonal to precision; keeps the compile short
  cfg.model.update(**model)
  training = train_step.build(cfg, sharding.make_mesh(cfg.mesh))
  graphdef, state = training.graphdef, training.init()
  batch = np.random.default_rng(0).integers(0, cfg.data.vocab_size,
                                            (8, cfg.model.n_ctx + 1), dtype=np.int32)
  step = training.step.lower(state, batch).compile()
  losses = []
  for _ in range(steps):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  # What the forward pass keeps for the backward pass: the vjp's residuals.
  loss = lambda params: train_step.next_token_loss(graphdef, params, batch)
  residuals = jax.eval_shape(lambda params: jax.vjp(loss, params)[1], state.params)
  return dict(losses=losses, dtypes=sorted({str(x.dtype) for x in jax.tree.leaves(state)}),
              residual_bytes=sum(x.size * x.dtype.itemsize
                                 for x in jax.tree.leaves(residuals)))


def runs() -> dict:
  return dict(fp32=_train(), bf16=_train(compute_dtype="bfloat16"), remat=_train(remat=True))


def test_bfloat16_and_remat_train_like_float32():
  trained = in_fresh_process(1, __name__, "runs")
  fp32, bf16, remat = trained["fp32"], trained["bf16"], trained["remat"]
  # bf16 matmuls: it learns, stays close to fp32, and keeps fp32 master weights and moments.
  assert bf16["losses"][-1] < bf16["losses"][0] - 0.05
  np.testing.assert_allclose(bf16["losses"], fp32["losses"], atol=0.03)
  assert bf16["dtypes"] == ["float32", "int32"]
  # Remat: the same losses, and much less kept from the forward pass for the backward.
  np.testing.assert_allclose(remat["losses"], fp32["losses"], rtol=1e-6)
  assert remat["residual_bytes"] < fp32["residual_bytes"] / 2
