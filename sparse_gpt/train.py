"""The training loop: from a config and a workdir to checkpoints and a summary.

Restarting the same command resumes from the newest good checkpoint on the same
trajectory: parameters, optimizer state and the data iterator are saved together, and
nothing in a step depends on anything else. SIGTERM (preemption) saves and exits.
"""

import json
import signal

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from sparse_gpt import checkpoints
from sparse_gpt import config as config_lib
from sparse_gpt import data
from sparse_gpt import progress
from sparse_gpt import sharding
from sparse_gpt import tokenized
from sparse_gpt import train_step as ts
from sparse_gpt import weight_sparsity
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import TrainingDiverged


def _global_batch(local_BxL1: np.ndarray, mesh) -> jax.Array:
  return jax.make_array_from_process_local_data(sharding.batch_sharding(mesh), local_BxL1)


class _Preemption:
  """SIGTERM becomes a stop at a step every process agrees on.

  One process: our handler sets a flag the loop reads between steps. Several: the
  preemption service that jax.distributed starts catches SIGTERM on any host and names
  one step at which all of them save (so we must not replace its handler).
  """

  def __init__(self):
    self.requested = False
    self._signalled = False
    self._previous = None
    if jax.process_count() == 1:
      try:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
      except ValueError:  # not the main thread: no signal handling
        pass

  def _handle(self, signum, frame):
    del signum, frame
    self._signalled = True

  def reached(self, step: int) -> bool:
    """Whether to save and stop after `step`; call once per step on every process."""
    if jax.process_count() > 1:
      self.requested = multihost_utils.reached_preemption_sync_point(step)
    else:
      self.requested = self._signalled
    return self.requested

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the run in `workdir`; returns the summary it writes."""
  config_lib.validate(cfg)
  is_main = jax.process_index() == 0
  wd = workdir_lib.path(workdir)
  if is_main:
    workdir_lib.save_or_check_config(workdir, cfg)
  finished = wd / "summary.json"
  # Written only at train.steps, which a resumed run cannot change: the run is done, and
  # a rerun (of `make demo`, say) must not overwrite its summary with an empty one.
  if finished.exists():
    progress.say(f"{workdir} is already trained to step {cfg.train.steps}.")
    return json.loads(finished.read_text())
  corpus = tokenized.for_run(cfg.data, workdir, write=is_main)

  mesh = sharding.make_mesh(cfg.mesh)
  t = cfg.train
  training = ts.build(cfg, mesh)
  state = training.init()
  data_iter = iter(data.train_dataset(corpus.train_tokens, cfg.model.n_ctx, t.batch_size,
                                      cfg.seed, jax.process_index(), jax.process_count()))
  ckpts = checkpoints.Checkpoints(wd / "checkpoints", keep=t.keep_checkpoints)
  restored = ckpts.restore_latest(state.params, state.opt_state, data_iter)
  if restored is not None:
    step, params, opt_state = restored
    state = ts.TrainState(jax.device_put(np.int32(step), sharding.replicated(mesh)),
                          params, opt_state)
    progress.say(f"Resumed from the checkpoint at step {step}.")
  start = int(state.step)

  train_step = training.step
  eval_step = jax.jit(ts.make_eval_step(training.graphdef))
  pi, pc = jax.process_index(), jax.process_count()
  val = [_global_batch(b[pi::pc], mesh) for b in data.eval_batches(
      corpus.val_tokens, cfg.model.n_ctx, t.batch_size, t.eval_batches)]
  evaluate = lambda params: float(np.mean([eval_step(params, b) for b in val]))

  log = workdir_lib.MetricsLog(workdir, start) if is_main else None
  bar = progress.Progress(t.steps, start, tokens_per_step=t.batch_size * cfg.model.n_ctx,
                          enabled=is_main)
  preemption = _Preemption()
  pending = None  # (step, metrics), fetched one step late so the host never blocks
  last = {}

  def finish_step(step, metrics):
    """Host side of a finished step: check, log, evaluate."""
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not ts.is_finite(metrics):
      good = [s for s in ckpts.steps() if s <= step]
      raise TrainingDiverged(
          f"The loss became {metrics['loss']} at step {step} (gradient RMS "
          f"{metrics['grad_rms']}). The last good checkpoint (step {good[-1] if good else 'none'}) "
          "is kept. Try a lower train.learning_rate or a longer train.warmup.")
    last.update(metrics)
    done = step + 1
    record = None
    if done % t.log_every == 0 or done == t.steps:
      record = dict(step=done, **metrics)
    if done % t.eval_every == 0 or done == t.steps:
      record = dict(record or dict(step=done, **metrics), val_loss=evaluate(state.params))
      last["val_loss"] = record["val_loss"]
    if record is not None:
      d = weight_sparsity.densities_at(done, cfg)
      record.update(density_hidden=float(d.hidden), density_embed=float(d.embed))
      bar.update(done, record)  # measures the rate up to this step before it is logged
      record["tokens_per_s"] = bar.tokens_per_s()
      if log:
        log.write(record)

  try:
    with jax.set_mesh(mesh):
      for step in range(start, t.steps):
        batch = _global_batch(next(data_iter), mesh)
        state, metrics = train_step(state, batch)
        if pending:
          finish_step(*pending)
          pending = None
        done = step + 1
        preempted = preemption.reached(done)
        saving = done % t.checkpoint_every == 0 or done == t.steps or preempted
        if saving or done % t.eval_every == 0:
          finish_step(step, metrics)  # now: evals see this step's params, saves a good state
        else:
          pending = (step, metrics)
        if saving:
          ckpts.save(done, state.params, state.opt_state, data_iter)
          if preempted:
            logging.warning("SIGTERM: saved step %d; exiting to be resumed.", done)
            break
      if pending:
        finish_step(*pending)
  finally:
    preemption.restore()
    ckpts.close()
    if log:
      log.close()

  summary = dict(
      step=int(state.step), steps=t.steps, train_loss=last.get("loss"),
      val_loss=evaluate(state.params) if "val_loss" not in last else last["val_loss"],
      tokens_per_s=bar.tokens_per_s(), preempted=preemption.requested,
      densities={k: round(float(v), 6)
                 for k, v in weight_sparsity.measured_densities(state.params).items()})
  if is_main and int(state.step) == t.steps:
    (wd / "summary.json").write_text(json.dumps(summary, indent=2))
  return summary
