"""A sparse circuit's residual nodes as interventions on the dense model (method.md
section 10, the paper's Fig. 9).

A residual-read node "{i}.attn.in[c]" (or mlp.in) is channel c of the sparse residual at
site "{i}.attn" (the stream its norm reads). On a minimal pair, row r's counterfactual
change of that channel is its value on the other prompt of the pair minus its value on
r's own, position by position (the pair's two prompts are padded to one length). It
moves the dense residual at the site along the channel's bridge decoder row (a unit
vector), by the change times the ratio of the two residuals' RMS at that position, so
that the change keeps its size relative to the stream it is in; times a strength in
[0, 1]. The dense model then runs on from the site, and we read the probability of the
row's own answer and of the counterfactual one (its partner's answer).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import config as config_lib
from sparse_gpt import checkpoints
from sparse_gpt import model
from sparse_gpt import optim
from sparse_gpt import run_io
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.bridge import dense as dense_lib
from sparse_gpt.bridge import params as bridge_params
from sparse_gpt.bridge import training as bridge_training
from sparse_gpt.errors import UserError
from sparse_gpt.tasks import loss as task_loss
from sparse_gpt.tasks import resolve

# The node locations that read the residual stream, and the site each reads.
RESIDUAL_READS = {"attn.in": "attn", "mlp.in": "mlp"}


@dataclasses.dataclass(frozen=True)
class Bridged:
  """A bridged run loaded back: the sparse run, its dense run, and the bridges."""
  sparse: run_io.Run
  dense: run_io.Run
  bridges: bridge_params.Bridges

  @property
  def sites(self) -> tuple[str, ...]:
    return model.residual_sites(self.sparse.config.model.n_layer)


def load(workdir: str, step: int | None = None) -> Bridged:
  """The bridged run in `workdir` (newest readable checkpoint by default)."""
  sparse = run_io.load_run(workdir, step)
  cfg = sparse.config
  if not config_lib.bridged(cfg):
    raise UserError(f"{workdir} is not a bridged run (its config.json has no bridge "
                    "section): train one with python -m launch.train "
                    "--config=experiments/bridge.py --config.bridge.dense_workdir=...")
  dense = dense_lib.load(cfg)
  dense_lib.check_tokenizer(cfg, dense.tokenizer, sparse.tokenizer)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  _, params = model.abstract(cfg)
  bridges = jax.eval_shape(lambda: bridge_training.init_bridges(cfg, dense.config.model.d_model))
  template = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      bridge_training.OptState(jax.eval_shape(optim.make(cfg, params).init, params), bridges,
                               jax.eval_shape(bridge_training.bridges_optimizer(cfg).init,
                                              bridges)))
  ckpts = checkpoints.Checkpoints(workdir_lib.path(workdir) / "checkpoints", read_only=True)
  try:
    opt_state = ckpts.restore_opt_state(template, sparse.step)
  finally:
    ckpts.close()
  return Bridged(sparse, dense, opt_state.bridges)


def residual_nodes(nodes) -> list[tuple[str, int]]:
  """(site, channel) of each residual-read node among circuit nodes, in their order."""
  return [(f"{n.layer}.{RESIDUAL_READS[n.site]}", n.index) for n in nodes
          if n.site in RESIDUAL_READS]


def masks(b: Bridged, nodes: list[tuple[str, int]]) -> np.ndarray:
  """mask_SxD: 1 at each (site, channel) of `nodes`."""
  mask_SxD = np.zeros((len(b.sites), b.sparse.config.model.d_model), np.float32)
  for site, channel in nodes:
    mask_SxD[b.sites.index(site), channel] = 1
  return mask_SxD


def _rms(x_BxLxD):
  return jnp.sqrt(jnp.mean(jnp.square(x_BxLxD), -1, keepdims=True))


def changes(sparse_res: dict, mask_SxD) -> dict:
  """{site: change_BxLxD}: each masked channel's value on the row's partner (rows 2p and
  2p + 1 are pair p) minus its value on the row's own prompt; 0 off the mask."""
  partner_B = jnp.arange(next(iter(sparse_res.values())).shape[0]) ^ 1
  return {site: (x_BxLxD[partner_B] - x_BxLxD) * mask_SxD[s]
          for s, (site, x_BxLxD) in enumerate(sparse_res.items())}


def dense_deltas(bridges, sparse_res: dict, dense_res: dict, mask_SxD, strength) -> dict:
  """{site: delta_BxLxE}: the dense intervention of the masked sparse channels."""
  deltas = {}
  for s, (site, change_BxLxD) in enumerate(changes(sparse_res, mask_SxD).items()):
    rows_DxE = bridges.decoder_SxDxE[s]
    unit_DxE = rows_DxE / jnp.maximum(jnp.linalg.norm(rows_DxE, axis=-1, keepdims=True),
                                      1e-30)
    scale_BxLx1 = _rms(dense_res[site]) / jnp.maximum(_rms(sparse_res[site]), 1e-30)
    deltas[site] = strength * scale_BxLx1 * (change_BxLxD @ unit_DxE)
  return deltas


def _readout(logits_BxLxV, batch: resolve.TaskBatch):
  """(p_own_B, p_counterfactual_B, moved_B) at each row's last position."""
  last_BxV = task_loss.last_logits(logits_BxLxV, batch.last_B)
  own_B, other_B = task_loss.candidate_logits(last_BxV, batch.correct_B, batch.incorrect_B)
  log_p = jax.nn.log_softmax(last_BxV, -1)
  rows_B = jnp.arange(last_BxV.shape[0])
  return (jnp.exp(log_p[rows_B, batch.correct_B]), jnp.exp(log_p[rows_B, batch.incorrect_B]),
          other_B > own_B)


# {site: residual_BxLxD}: a run's unintervened residuals, compiled once per model.
_residuals = jax.jit(lambda graphdef, params, tokens_BxL: model.residual_forward(
    graphdef, params, tokens_BxL)[1], static_argnums=0)


def make_probabilities(b: Bridged, batch: resolve.TaskBatch, in_sparse: bool = False):
  """(mask_SxD, strength) -> (p_own_B, p_counterfactual_B, moved_B) on `batch`: the
  model's probability of each row's answer and of its partner's, and whether the
  counterfactual answer now wins, under the intervention of the masked channels.

  The dense model through the bridges by default. `in_sparse`: the same patch made in the
  sparse model itself (each masked channel moves by strength x its change, in the sparse
  residual), what the bridged intervention sets out to carry over, so a miss reads as the
  bridge's (the sparse model follows, the dense one does not) or the circuit's (neither
  follows). The unintervened residuals are the same for every mask and strength, so they
  are computed once here.
  """
  sparse_res = _residuals(b.sparse.graphdef, b.sparse.params, batch.tokens_BxL)
  runs = b.sparse if in_sparse else b.dense
  dense_res = None if in_sparse else _residuals(b.dense.graphdef, b.dense.params,
                                                batch.tokens_BxL)

  @jax.jit
  def probabilities(params, bridges, sparse_res, dense_res, mask_SxD, strength, batch):
    if in_sparse:
      add = {site: strength * change_BxLxD
             for site, change_BxLxD in changes(sparse_res, mask_SxD).items()}
    else:
      add = dense_deltas(bridges, sparse_res, dense_res, mask_SxD, strength)
    return _readout(model.residual_forward(runs.graphdef, params, batch.tokens_BxL,
                                           add=add)[0], batch)

  return lambda mask_SxD, strength: jax.device_get(probabilities(
      runs.params, b.bridges, sparse_res, dense_res, jnp.asarray(mask_SxD),
      jnp.float32(strength), batch))


def sweep(b: Bridged, nodes: list[tuple[str, int]], strengths, probabilities) -> list[dict]:
  """For each strength: the rows' mean probability of their own and of the
  counterfactual answer, and the fraction where the counterfactual wins, under
  `probabilities` (make_probabilities) of the nodes' channels."""
  mask_SxD = masks(b, nodes)
  rows = []
  for strength in strengths:
    own, other, moved = probabilities(mask_SxD, strength)
    rows.append(dict(strength=float(strength), p_own=float(np.mean(own)),
                     p_counterfactual=float(np.mean(other)), moved=float(np.mean(moved))))
  return rows


def random_control(nodes: list[tuple[str, int]], d_model: int, seed: int
                   ) -> list[tuple[str, int]]:
  """As many nodes at each site as `nodes` has, drawn from that site's other channels."""
  rng = np.random.default_rng(seed)
  control = []
  for site in dict.fromkeys(site for site, _ in nodes):
    taken = {c for s, c in nodes if s == site}
    free = np.array(sorted(set(range(d_model)) - taken))
    if len(free) < len(taken):
      raise UserError(f"site {site}: the circuit has {len(taken)} of its {d_model} "
                      "channels, too many to draw a random control of as many others.")
    control += [(site, int(c)) for c in rng.choice(free, len(taken), replace=False)]
  return control


def site_channels(nodes: list[tuple[str, int]], d_model: int) -> list[tuple[str, int]]:
  """Every channel of each site that `nodes` touch: the whole bridged change at those
  sites, against which the circuit's share is read."""
  return [(site, c) for site in dict.fromkeys(site for site, _ in nodes)
          for c in range(d_model)]
