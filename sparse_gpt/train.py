"""The training loop: from a config and a workdir to checkpoints and a summary.

Restarting the same command resumes from the newest good checkpoint on the same
trajectory: parameters, optimizer state and the data iterator are saved together, and
nothing in a step depends on anything else. SIGTERM (preemption) saves and exits. A
diverging run stops before it saves a broken model (`health`).
"""

import contextlib
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
from sparse_gpt import health
from sparse_gpt import progress
from sparse_gpt import sharding
from sparse_gpt import storage
from sparse_gpt import tokenized
from sparse_gpt import train_step as ts
from sparse_gpt import weight_sparsity
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.bridge import training as bridge_training
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
  """Trains (or resumes) the run in `workdir`; returns the summary it writes.

  Process 0 holds the workdir's lock throughout: a second run on it is refused.
  """
  workdir_lib.refuse_imported(workdir)
  config_lib.validate(cfg)
  workdir_lib.create(workdir)
  with contextlib.ExitStack() as stack:
    if jax.process_index() == 0:
      stack.enter_context(workdir_lib.lock(workdir))
    return _train(cfg, workdir)


def _train(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  t = cfg.train
  mesh = sharding.make_mesh(cfg.mesh)
  ckpts = checkpoints.Checkpoints(workdir_lib.path(workdir) / "checkpoints",
                                  keep=t.keep_checkpoints)
  try:
    changed = workdir_lib.check_config(workdir, cfg, has_checkpoints=bool(ckpts.steps()))
    training = (bridge_training.build if config_lib.bridged(cfg) else ts.build)(cfg, mesh)
    summary = _finished_summary(cfg, workdir, ckpts, training)
    if summary is not None:
      progress.say(f"{workdir} is already trained to step {t.steps}.")
      return summary
    return _loop(cfg, workdir, ckpts, mesh, training, changed)
  finally:
    ckpts.close()


def _finished_summary(cfg, workdir, ckpts, training) -> dict | None:
  """The saved summary if the run is done: summary.json and a final checkpoint that loads.

  A rerun of a finished run (of `make demo`, say) returns its summary untouched. But the
  newest loadable checkpoint is the truth: without the final one the run resumes, and its
  stale summary goes (tools would load an older step than it reports).
  """
  f = workdir_lib.path(workdir) / "summary.json"
  if not f.exists():
    return None
  t = cfg.train
  steps = ckpts.steps()
  if steps and steps[-1] == t.steps and ckpts.readable(
      t.steps, training.abstract.params):
    try:
      return json.loads(f.read_text())
    except json.JSONDecodeError:
      logging.warning("%s is unreadable; writing it again.", f)
  else:
    logging.warning("%s says the run finished, but its checkpoint at step %d is missing or "
                    "unreadable: resuming from the newest one that loads.", f, t.steps)
  if jax.process_index() == 0:
    f.unlink()
  return None


def _loop(cfg, workdir, ckpts, mesh, training, changed) -> dict:
  """Prepares the data, restores the newest good checkpoint, trains to train.steps."""
  is_main = jax.process_index() == 0
  wd = workdir_lib.path(workdir)
  t = cfg.train
  corpus = tokenized.for_run(cfg.data, workdir, write=is_main)
  training.check_corpus(corpus.tokenizer)
  if is_main:  # once the data is ready: a first run failing before leaves no config
    workdir_lib.save_config(workdir, cfg)

  data_iter = iter(data.train_dataset(corpus.train_tokens, cfg.model.n_ctx, t.batch_size,
                                      cfg.seed, jax.process_index(), jax.process_count()))
  # The shapes are the template: a resumed run never builds a fresh state to discard.
  restored = ckpts.restore_latest(training.abstract.params, training.abstract.opt_state,
                                  data_iter)
  if restored is None:
    state = training.init()
  else:
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
  if changed and start > 0:
    progress.say(f"From step {start} on: " + ", ".join(
        f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()) + ".")
    if log:
      log.write(dict(step=start, changed={k: dict(before=old, after=new)
                                          for k, (old, new) in changed.items()}))
  monitor = health.Monitor(cfg.data.vocab_size)
  largest_weight = jax.jit(health.largest_weight, out_shardings=sharding.replicated(mesh))
  bar = progress.Progress(t.steps, start, tokens_per_step=t.batch_size * cfg.model.n_ctx,
                          enabled=is_main)
  preemption = _Preemption()
  pending = None  # (step, metrics), fetched one step late so the host never blocks
  last = {}
  if start == t.steps:  # killed between its final save and summary.json: the log has it
    final = [r for r in workdir_lib.read_metrics(workdir)
             if r.get("step") == t.steps and "loss" in r]
    last.update({k: final[-1][k] for k in ("loss", "val_loss", "tokens_per_s")
                 if final and k in final[-1]})

  def diverged(done: int, problem: str) -> TrainingDiverged:
    good = [s for s in ckpts.steps() if s < done]
    return TrainingDiverged(
        f"Training diverged at step {done}: {problem}. The last good checkpoint (step "
        f"{good[-1] if good else 'none'}) is kept. Rerun on this workdir with a lower "
        f"train.learning_rate (now {t.learning_rate:g}) or a longer train.warmup (now "
        f"{t.warmup:g}): both may change on resume.")

  def finish_step(step, metrics):
    """Host side of a finished step: check, log, evaluate."""
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    done = step + 1
    problem = monitor.problem(metrics)
    if problem:
      raise diverged(done, problem)
    last.update(metrics)
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
          problem = health.weights_problem(float(largest_weight(state.params)))
          if problem:
            raise diverged(done, problem)
          ckpts.save(done, state.params, state.opt_state, data_iter)
          if preempted:
            logging.warning("SIGTERM: saved step %d; exiting to be resumed.", done)
            break
      if pending:
        finish_step(*pending)
  finally:
    preemption.restore()

  summary = dict(
      step=int(state.step), steps=t.steps, train_loss=last.get("loss"),
      val_loss=evaluate(state.params) if "val_loss" not in last else last["val_loss"],
      tokens_per_s=bar.tokens_per_s() if start < t.steps else last.get("tokens_per_s", 0.0),
      preempted=preemption.requested,
      densities={k: round(float(v), 6)
                 for k, v in weight_sparsity.measured_densities(state.params).items()})
  if int(state.step) == t.steps:
    summary.update(training.report(state, val))
    ckpts.wait()  # summary.json says the final checkpoint is there
    if is_main:
      storage.write_text(wd / "summary.json", json.dumps(summary, indent=2))
  return summary
