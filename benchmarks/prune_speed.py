"""Pruning speed on the demo model: one task end to end, and the cost of a vmapped sweep.

prune_seconds     wall time of pipeline.prune with the default settings (the recipe
                  search in its budget, exact-size bisection, calibration; compilation
                  included), without the faithfulness battery
prune_cpu_seconds   its CPU time, all threads: on a busy machine a steadier figure
vmap8_cost_ratio  seconds of 8 mask runs trained at once under vmap over seconds of one
                  run, both compiled beforehand (the target is below 3); vmap8_cpu_ratio
                  the same in CPU time
mask_steps_per_s  mask-training run-steps per second as the search trains them (runs of
                  search.CHUNK under vmap, pairs in length buckets: optimize.bucketed);
                  mask_steps_per_s_one_batch the same on one batch padded to the longest
                  prompt, the path before buckets; `*_cpu` per CPU second

The demo run in `workdir` is used when it solves `task`; otherwise a random-init model
of the demo config (experiments/tiny.py) stands in, with random prompts of a typical
task length and a target just above its loss (sized on the mean loss alone,
prune.sizing_z = 0): the same computation, minus meaning.
"""

import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import tiny
from sparse_gpt import model
from sparse_gpt import run_io
from sparse_gpt import weight_sparsity
from sparse_gpt.errors import UserError
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import node_means
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning import pipeline
from sparse_gpt.pruning import search
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.subject import Subject
from sparse_gpt.tasks import resolve

_PROMPT_LENGTH = 100  # tokens: about the longest prompt of a typical task batch
_MEAN_WINDOWS = 8  # random windows standing in for validation text
_SWEEP_STEPS = 10  # mask steps timed for the 1-run vs 8-run comparison


def _random_subject(cfg, workdir: str):
  """(run, task data) for a random-init demo-config model kept in `workdir`."""
  graphdef, params = model.init(cfg, jax.random.key(0))
  params = jax.jit(lambda p: weight_sparsity.project(p, cfg.train.steps, cfg))(params)
  run = run_io.Run(workdir, cfg, None, graphdef, params, step=0)
  rng = np.random.default_rng(0)
  layout = Layout(cfg.model)
  windows = rng.integers(0, cfg.data.vocab_size, (_MEAN_WINDOWS, cfg.model.n_ctx),
                         dtype=np.int32)
  node_means.save(workdir, 0, _MEAN_WINDOWS, layout,
                  node_means.compute(graphdef, params, layout, windows))

  def batch(n_pairs):
    tokens = rng.integers(0, cfg.data.vocab_size, (2 * n_pairs, _PROMPT_LENGTH), np.int32)
    last = rng.integers(_PROMPT_LENGTH // 2, _PROMPT_LENGTH, 2 * n_pairs).astype(np.int32)
    first = np.where(np.arange(2 * n_pairs) % 2, 11, 12).astype(np.int32)
    return resolve.TaskBatch(tokens_BxL=tokens, last_B=last, correct_B=first,
                             incorrect_B=23 - first, name="random")

  # One batch for every split: the target is set from the training split's loss, which
  # the validation split must meet too.
  pairs = batch(64)
  data = pipeline.TaskData("random", pairs, pairs, pairs, {"name": "random"})
  return run, data


def _full_model_loss(run, data) -> float:
  layout = Layout(run.config.model)
  zeros_N = jnp.zeros(layout.n_nodes)
  train = resolve.padded(data.train, run.config.model.n_ctx)
  return Subject(run.graphdef, run.params, layout, zeros_N, "zero").loss(
      jnp.ones(layout.n_nodes), train, zeros_N)[0]


def _demo_or_random(workdir: str, task: str, pcfg, scratch: str):
  """(run, task data, target loss, description)."""
  try:
    run = run_io.load_run(workdir)
    data = pipeline.registry_task(run, task, pcfg)
    if _full_model_loss(run, data) <= pcfg.target_loss:
      return run, data, pcfg.target_loss, f"{workdir} ({task})"
  except UserError:
    pass
  run, data = _random_subject(tiny.get_config(), scratch)
  pcfg.mean_windows = _MEAN_WINDOWS
  # A target just above the full model's loss, so that pruning has something to keep;
  # sized on the mean alone, since the full model's loss plus prune.sizing_z standard
  # errors of these random labels lies far above it, and no circuit would pass.
  pcfg.sizing_z = 0.0
  return run, data, _full_model_loss(run, data) + 0.005, "random-init experiments/tiny.py"


def _time(fn) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def measure(workdir: str = "runs/demo", task: str = "single_double_quote") -> dict:
  """The figures above, and what they were measured on."""
  with tempfile.TemporaryDirectory(prefix="prune_bench_") as scratch:
    return _measure(workdir, task, scratch)


def _measure(workdir: str, task: str, scratch: str) -> dict:
  pcfg = prune_config.defaults()
  run, data, target, what = _demo_or_random(workdir, task, pcfg, scratch)
  pcfg.target_loss = target
  pcfg.faithfulness = False
  start = time.process_time()
  prune_seconds = _time(lambda: pipeline.prune(run, data, pcfg, say=lambda _: None).nodes)
  prune_cpu_seconds = time.process_time() - start

  layout = Layout(run.config.model)
  train = resolve.padded(data.train, run.config.model.n_ctx)
  problem = optimize.Problem(run.params, jnp.zeros(layout.n_nodes), train)
  sweep = lambda r: lambda: optimize.train_masks(
      run.graphdef, layout, pcfg, problem, optimize.runs(np.geomspace(1e-5, 1e-3, r), (0,)),
      steps=_SWEEP_STEPS)
  seconds, cpu_seconds = {}, {}
  for r in (1, 8):
    sweep(r)()  # compile
    start = time.process_time()
    seconds[r] = min(_time(sweep(r)) for _ in range(2))
    cpu_seconds[r] = time.process_time() - start
  rates = {}
  for name, prob in (("", optimize.bucketed(problem, pcfg.batch_pairs, run.config.model.n_ctx)),
                     ("_one_batch", problem)):
    specs = optimize.runs(np.geomspace(1e-4, 1e-3, search.CHUNK), (0,))
    train = lambda: optimize.train_masks(run.graphdef, layout, pcfg, prob, specs,
                                         steps=_SWEEP_STEPS)
    train()  # compile
    start = time.process_time()
    wall = min(_time(train) for _ in range(2))
    cpu = (time.process_time() - start) / 2
    rates[f"mask_steps_per_s{name}"] = round(search.CHUNK * _SWEEP_STEPS / wall, 2)
    rates[f"mask_steps_per_s{name}_cpu"] = round(search.CHUNK * _SWEEP_STEPS / cpu, 2)
  return {"prune_seconds": round(prune_seconds, 1),
          "prune_cpu_seconds": round(prune_cpu_seconds, 1),
          "vmap8_cost_ratio": round(seconds[8] / seconds[1], 2),
          "vmap8_cpu_ratio": round(cpu_seconds[8] / cpu_seconds[1], 2),
          "prune_step_ms": round(1e3 * seconds[1] / _SWEEP_STEPS, 1),
          "prune_model": what,
          "prune_batch_pairs": pcfg.batch_pairs, **rates}
