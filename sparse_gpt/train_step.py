"""The train and eval steps, pure functions of (state, batch), and the one place that
jits the train step with its shardings and donation (`build`): the training loop, the
dry run (`aot.py`) and the benchmark all run what `build` returns.
"""

from collections.abc import Callable
import dataclasses

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sparse_gpt import model
from sparse_gpt import optim
from sparse_gpt import sharding


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # number of optimizer steps taken
  params: nnx.State
  opt_state: optax.OptState


def next_token_loss(graphdef, params, batch_BxL1) -> jax.Array:
  """Mean cross-entropy of predicting tokens 1..L from tokens 0..L-1."""
  logits_BxLxV, _ = model.forward(graphdef, params, batch_BxL1[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV,
                                                         batch_BxL1[:, 1:]).mean()


def make_train_step(graphdef, tx: optax.GradientTransformation, cfg):
  """(state, batch_BxL1) -> (state, metrics); `build` jits it."""

  def train_step(state: TrainState, batch_BxL1):
    loss, grads = jax.value_and_grad(
        lambda p: next_token_loss(graphdef, p, batch_BxL1))(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(loss=loss, grad_rms=optim.grad_rms(grads),
                   lr=optim.learning_rate(state.step, cfg))
    return TrainState(state.step + 1, params, opt_state), metrics

  return train_step


@dataclasses.dataclass(frozen=True)
class Training:
  """A config's train step on a mesh, with the shardings its state keeps."""
  cfg: ml_collections.ConfigDict
  graphdef: nnx.GraphDef
  tx: optax.GradientTransformation
  abstract: TrainState  # of ShapeDtypeStructs carrying their shardings: no memory used
  step: Callable  # jitted (state, batch_BxL1) -> (state, metrics); donates the state

  def init(self) -> TrainState:
    """The initial state (from cfg.seed), every array created in place on the mesh."""
    def init(key):
      params = model.init(self.cfg, key)[1]
      return TrainState(jnp.zeros((), jnp.int32), params, self.init_opt_state(params))

    shardings = jax.tree.map(lambda x: x.sharding, self.abstract)
    return jax.jit(init, out_shardings=shardings)(jax.random.key(self.cfg.seed))

  def init_opt_state(self, params):
    """The optimizer state a run starts from (a bridged run's also holds its bridges)."""
    return self.tx.init(params)

  def check_corpus(self, tokenizer) -> None:
    """Refuses a corpus this training cannot learn from; any corpus does here (a bridged
    run's must be tokenized as its dense run's: sparse_gpt/bridge/training.py)."""
    del tokenizer

  def report(self, state: TrainState, val_batches) -> dict:
    """What this training adds to summary.json: nothing here (a bridged run: its bridges'
    quality)."""
    del state, val_batches
    return {}


def build(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> Training:
  """The model, optimizer, state shardings and jitted train step of `cfg` on `mesh`.

  Parameters and every parameter-shaped leaf of the optimizer state take their sharding
  from the one rules table, so the Adam moments live where their parameters live, and
  the weight-sparsity projection runs shard by shard where a parameter is split. The
  step donates its input state: the new state reuses the old one's memory.
  """
  graphdef, params = model.abstract(cfg)
  params_sh = sharding.tree_shardings(params, mesh)
  tx = optim.make(cfg, params, params_sh)
  opt_state = jax.eval_shape(tx.init, params)
  state_sh = TrainState(sharding.replicated(mesh), params_sh,
                        sharding.tree_shardings(opt_state, mesh))
  abstract = jax.tree.map(lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh),
                          TrainState(jax.ShapeDtypeStruct((), jnp.int32), params, opt_state),
                          state_sh)
  step = jax.jit(make_train_step(graphdef, tx, cfg), donate_argnums=0,
                 in_shardings=(state_sh, sharding.batch_sharding(mesh)),
                 out_shardings=(state_sh, sharding.replicated(mesh)))
  return Training(cfg, graphdef, tx, abstract, step)


def make_eval_step(graphdef):
  def eval_step(params, batch_BxL1):
    return next_token_loss(graphdef, params, batch_BxL1)
  return eval_step

