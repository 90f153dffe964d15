"""The bridged train step: the sparse model and its bridges learn together, the dense
model stays frozen. `build` is train_step.build's counterpart for a bridged config; the
training loop runs what it returns as any Training.

The bridges and their Adam state ride in the optimizer state (`OptState`), so a bridged
checkpoint's `params` item is the sparse model alone: pruning, tasks and notebooks load
a bridged run as any run, and the one orbax checkpoint still holds everything a resume
needs.
"""

import dataclasses

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sparse_gpt import model
from sparse_gpt import optim
from sparse_gpt import run_io
from sparse_gpt import sharding
from sparse_gpt import train_step as ts
from sparse_gpt.bridge import dense as dense_lib
from sparse_gpt.bridge import loss
from sparse_gpt.bridge import params as bridge_params
from sparse_gpt.bridge import quality


@flax.struct.dataclass
class OptState:
  model: optax.OptState  # the sparse model's (weight-sparse AdamW)
  bridges: bridge_params.Bridges
  bridges_opt: optax.OptState  # the bridges' (dense Adam)


def bridges_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam at bridge.learning_rate with the run's warmup and decay; bridges are dense, so
  no 1/sqrt(L0) factor."""
  schedule_cfg = ml_collections.ConfigDict(cfg.to_dict())
  schedule_cfg.train.learning_rate = cfg.bridge.learning_rate
  schedule_cfg.sparsity.enabled = False
  return optax.adam(lambda step: optim.learning_rate(step, schedule_cfg))


def init_bridges(cfg: ml_collections.ConfigDict, d_dense: int) -> bridge_params.Bridges:
  key = jax.random.fold_in(jax.random.key(cfg.seed), 1)  # not the sparse model's key
  return bridge_params.init(key, len(model.residual_sites(cfg.model.n_layer)), d_dense,
                            cfg.model.d_model)


def make_train_step(graphdef, tx, dense_graphdef, cfg):
  """(state, batch_BxL1, dense_params) -> (state, metrics), every loss term a metric."""
  b = cfg.bridge
  btx = bridges_optimizer(cfg)

  def train_step(state: ts.TrainState, batch_BxL1, dense_params):
    def objective(params, bridges):
      t = loss.terms(graphdef, params, dense_graphdef, dense_params, bridges, batch_BxL1,
                     b.afrac)
      return loss.total(t, b), t

    opt = state.opt_state
    (total, t), (grads, bridge_grads) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True)(state.params, opt.bridges)
    updates, model_opt = tx.update(grads, opt.model, state.params)
    params = optax.apply_updates(state.params, updates)
    bridge_updates, bridges_opt = btx.update(bridge_grads, opt.bridges_opt, opt.bridges)
    bridges = optax.apply_updates(opt.bridges, bridge_updates)
    metrics = dict(loss=t["loss"], grad_rms=optim.grad_rms(grads),
                   lr=optim.learning_rate(state.step, cfg), total_loss=total,
                   **{f"bridge_{k}": jnp.mean(t[k]) for k in loss.TERMS})
    return ts.TrainState(state.step + 1, params, OptState(model_opt, bridges, bridges_opt)
                         ), metrics

  return train_step


@dataclasses.dataclass(frozen=True)
class BridgedTraining(ts.Training):
  """A Training whose state carries bridges to a frozen dense run."""
  dense: run_io.Run  # its params placed (replicated) on the mesh

  def init_opt_state(self, params) -> OptState:
    bridges = init_bridges(self.cfg, self.dense.config.model.d_model)
    return OptState(self.tx.init(params), bridges, bridges_optimizer(self.cfg).init(bridges))

  def check_corpus(self, tokenizer) -> None:
    dense_lib.check_tokenizer(self.cfg, self.dense.tokenizer, tokenizer)

  def report(self, state: ts.TrainState, val_batches) -> dict:
    return dict(bridge=quality.measure(self.cfg, self.graphdef, state.params,
                                       state.opt_state.bridges, self.dense, val_batches))


def build(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> BridgedTraining:
  """train_step.build for a bridged config: loads and checks the dense run first."""
  dense = dense_lib.load(cfg)
  base = ts.build(cfg, mesh)  # the sparse model's optimizer and shardings (jits lazily)
  replicated = sharding.replicated(mesh)
  dense = dataclasses.replace(dense, params=jax.device_put(dense.params, replicated))
  btx = bridges_optimizer(cfg)
  bridges = jax.eval_shape(lambda: init_bridges(cfg, dense.config.model.d_model))
  placed = lambda tree: jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), tree)
  abstract = ts.TrainState(base.abstract.step, base.abstract.params, OptState(
      base.abstract.opt_state, placed(bridges), placed(jax.eval_shape(btx.init, bridges))))
  state_sh = jax.tree.map(lambda x: x.sharding, abstract)
  jitted = jax.jit(make_train_step(base.graphdef, base.tx, dense.graphdef, cfg),
                   donate_argnums=0,
                   in_shardings=(state_sh, sharding.batch_sharding(mesh), replicated),
                   out_shardings=(state_sh, replicated))
  step = lambda state, batch_BxL1: jitted(state, batch_BxL1, dense.params)
  return BridgedTraining(cfg, base.graphdef, base.tx, abstract, step, dense)
