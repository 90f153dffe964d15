"""The recipe search: successive halving over mask-training settings, in a time budget.

Candidates are drawn log-uniformly around the config's values (the centres,
docs/method.md section 7) within SPREAD, from a generator seeded by prune.seeds[0]; they
train in vmapped chunks of CHUNK runs, one compiled program for the whole search
(optimize.advance: step counts are traced). Rung r trains its candidates `rung_steps`
more steps; then each one's circuit is sized exactly by bisection on the validation split
(`bisect`: on the calibrated loss, as the final circuit is): those sized rank by size,
the others after them by the validation loss of their learned circuit (tau > 0); the
better half goes on, its optimiser state carried over. The learning rate decays linearly
to 0 at the last rung's end (the horizon), for every candidate: a continued run equals an
uninterrupted one, and a candidate dropped early was scored before its rate had decayed.
After the last rung the smallest circuit wins. (Ranking rungs by the learned circuit
instead dropped every run with the edge term at rung 0: their learned circuits sat just
above the target, raw, while bisection sized them smaller than the plain runs'.)

prune.budget_s is the seconds of mask training, planned from a timed step after the
program is compiled: compilation and the sizing and scoring forwards come on top, so the
budget buys steps whatever the compiler costs. On 2 cores, for the demo model at 30 s:
the whole search took 100-114 s on single_double_quote and while_return_true, and 155 s
on indent_for, whose over-pruned edge runs size through long doublings at rung 0. (That
was before the sizing's calibration compiled once: one bisection of the demo's quote
task takes 15.0 s since, against 28.0 s, the same circuit.)

With prune.budget_s = 0 nothing is searched: the k_coefs x seeds runs train prune.steps
steps with the config's settings, as one rung, and are all sized.
"""

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt.errors import UserError
from sparse_gpt.pruning import calibrate
from sparse_gpt.pruning import exact_size
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning.subject import Subject, scored, upper_bound

# log10 of each setting's factor to its centre: the range candidates are drawn from.
# Measured on the demo model: a circuit a tenth of the default's size needs a k_coef
# 10-100x the paper's centre and, in a few hundred steps, a larger learning rate.
SPREAD = {"k_coef": (0.5, 2.0), "learning_rate": (0.0, 1.0), "init_bias": (-0.5, 0.3),
          "temperature": (-0.3, 0.3), "edge_coef": (-0.5, 0.5)}
CHUNK = 2  # runs per vmapped call
# Fewer and the halving judges settings before they have acted: on the demo model a
# node's tau needs tens of steps to cross 0, and circuits kept shrinking to 600 steps.
MIN_RUNG_STEPS = 100
MAX_RUNGS = 3  # so at most 2 * 2**2 = 8 candidates
# Two call lengths timed after a compiling call: the step time is their difference over
# the extra steps, free of a call's fixed cost (on the demo model ~0.2 s, which made a
# 3-step probe read 118 ms per step of 2 runs against 43 ms in long calls).
PROBE_STEPS = (2, 12)


class NoCircuit(UserError):
  """No candidate's ordering reaches the target on the validation split."""


@dataclasses.dataclass(frozen=True)
class Plan:
  candidates: int
  rung_steps: int  # steps each rung adds
  rungs: int

  @property
  def horizon(self) -> int:
    return self.rungs * self.rung_steps


def plan(seconds: float, chunk_step_s: float) -> Plan:
  """The most candidates (CHUNK * 2**j, halved each rung down to CHUNK) whose rungs still
  get MIN_RUNG_STEPS steps each in `seconds` of chunk steps; the steps fill the rest.

  Rung r trains candidates / 2**r runs, i.e. candidates / (CHUNK * 2**r) chunk calls.
  """
  steps = max(seconds, 0.0) / chunk_step_s
  best = Plan(CHUNK, max(int(steps), 1), 1)
  for rungs in range(2, MAX_RUNGS + 1):
    calls = 2**rungs - 1  # sum over rungs of the chunk calls per step
    rung_steps = int(steps // calls)
    if rung_steps < MIN_RUNG_STEPS:
      break
    best = Plan(CHUNK * 2**(rungs - 1), rung_steps, rungs)
  return best


def candidates(cfg, n: int) -> list[dict]:
  """n settings: ceil(n / 2) drawn log-uniformly in SPREAD around the config's, each run
  twice with the same seed, first with its edge term and then without (edge_coef 0), so a
  chunk of CHUNK = 2 runs compares the two. Measured on the demo model (one setting per
  task): the edge term cut the quote circuit 31 / 107 -> 30 / 75 nodes / edges and
  while_return_true's 28 / 106 -> 22 / 38, but on indent_for (~100 nodes, ~700 edges) it
  over-pruned to chance, and the ordering then sized to 964 nodes against 105 without."""
  rng = np.random.default_rng(cfg.seeds[0])
  centre = {"k_coef": cfg.k_coefs[0], "learning_rate": cfg.learning_rate,
            "init_bias": cfg.init_bias, "temperature": cfg.temperature,
            "edge_coef": cfg.edge_coef}
  out = []
  for i in range(-(-n // 2)):
    c = {k: float(centre[k] * 10**rng.uniform(*SPREAD[k])) for k in SPREAD}
    c["init_bias"] = min(c["init_bias"], 1.0)
    c["seed"] = int(cfg.seeds[0]) + i
    out += [c, dict(c, edge_coef=0.0)]
  return out[:n]


def _specs(settings: list[dict]) -> optimize.RunSpec:
  arr = lambda k: jnp.array([s[k] for s in settings], jnp.float32)
  return optimize.RunSpec(arr("k_coef"), jnp.stack([jax.random.key(s["seed"])
                                                    for s in settings]),
                          arr("learning_rate"), arr("init_bias"), arr("temperature"),
                          arr("edge_coef"))


@dataclasses.dataclass
class Sized:
  """A candidate's exact circuit on the validation split, and the bisection's points."""
  keep_N: jax.Array
  loss: float  # the criterion's at the circuit: calibrated if prune.calibrate
  points: dict  # kept nodes -> candidate logits on the validation split


def calibration_for(subject: Subject, keep_N, sets, validation_logits, cfg):
  """The circuit's logit calibration: fitted on the training pairs (with prune.calibrate),
  and kept only if it lowers the loss on the validation split. A fit to near-perfect
  training pairs can take a scale of 15 or more, and then one wrong validation prompt
  costs more than calibration gains (measured: the demo model's full model, 0.039 raw,
  0.277 so calibrated, on single_double_quote's validation pairs)."""
  (train, train_fill), (validation, _) = sets
  if not cfg.calibrate:
    return calibrate.IDENTITY
  fitted = calibrate.fit(*subject.candidates(keep_N, train, train_fill), train.correct_B,
                         train.incorrect_B, cfg.calibration_steps)
  raw, _ = scored(validation_logits, validation)
  return fitted if scored(validation_logits, validation, fitted)[0] < raw else (
      calibrate.IDENTITY)


def bisect(subject: Subject, tau_P, sets, cfg) -> Sized | None:
  """exact_size.smallest_circuit on the validation split, keeping every point evaluated.

  `sets` is ((train, train_fill), (validation, validation_fill)). A size passes when its
  loss on the validation split under `calibration_for`'s calibration, plus
  cfg.sizing_z standard errors, reaches cfg.target_loss: without them the smallest size
  that passed did so by luck about half the time (the demo's quote circuit, 256 pairs:
  0.1498 on validation, 0.1684 on held-out pairs). Sized.loss is that bound.
  """
  layout, points = subject.layout, {}
  validation, validation_fill = sets[1]

  def loss_of(mask_P):
    keep_N = layout.nodes_of(mask_P)
    logits = subject.candidates(keep_N, validation, validation_fill)
    points[int(jnp.sum(keep_N))] = logits
    return upper_bound(logits, validation,
                       calibration_for(subject, keep_N, sets, logits, cfg), cfg.sizing_z)

  k, loss = exact_size.smallest_circuit(tau_P, loss_of, cfg.target_loss)
  if k is None:
    return None
  return Sized(layout.nodes_of(exact_size.top(exact_size.rank(tau_P), k)), loss, points)


def halve(alive: list[int], records: list[dict]) -> list[int]:
  """The better half of the candidates `alive` by their validation scores: those sized
  (circuit_nodes not None) by size and then loss, the rest after them by their learned
  circuit's loss. How they did on the training pairs does not count."""
  def score(i):
    r = records[i]
    if r["circuit_nodes"] is not None:
      return (0, r["circuit_nodes"], r["circuit_validation_loss"])
    return (1, r["learned_validation_loss"], 0)
  return sorted(alive, key=score)[:max(len(alive) // 2, 1)]


@dataclasses.dataclass
class Result:
  sized: Sized  # the winner's
  records: list[dict]  # metrics.search
  budget: dict  # metrics.budget


def run(subject: Subject, problem: optimize.Problem, sets, cfg, clock) -> Result:
  """Searches (or, with cfg.budget_s = 0, trains the fixed sweep) and sizes the winner;
  `sets` as for `bisect`."""
  validation, validation_fill = sets[1]
  start, cpu_start = time.time(), time.process_time()
  graphdef, layout = subject.graphdef, subject.layout
  if cfg.budget_s:
    probe_settings = candidates(cfg, CHUNK)
    probe_specs = _specs(probe_settings)
    states = optimize.start(layout, cfg, probe_specs)
    jax.block_until_ready(optimize.advance(graphdef, layout, cfg, problem, probe_specs,
                                           states, 0, 1, 1))  # compiles
    took = []
    for n_steps in PROBE_STEPS:
      t0 = time.time()
      jax.block_until_ready(optimize.advance(graphdef, layout, cfg, problem, probe_specs,
                                             states, 0, n_steps, 1))
      took.append(time.time() - t0)
    chunk_step_s = max(took[1] - took[0], 1e-3) / (PROBE_STEPS[1] - PROBE_STEPS[0])
    the_plan = plan(cfg.budget_s, chunk_step_s)
    settings = candidates(cfg, the_plan.candidates)
    chunk = CHUNK
  else:
    chunk_step_s = None
    the_plan = Plan(len(cfg.k_coefs) * len(cfg.seeds), cfg.steps, 1)
    settings = [{"k_coef": float(k), "learning_rate": cfg.learning_rate,
                 "init_bias": cfg.init_bias, "temperature": cfg.temperature,
                 "edge_coef": cfg.edge_coef, "seed": s}
                for s in cfg.seeds for k in cfg.k_coefs]
    chunk = len(settings)
  clock(f"search: {the_plan.candidates} candidate(s), {the_plan.rungs} rung(s) of "
        f"{the_plan.rung_steps} steps" + (f", {chunk_step_s * 1e3:.1f} ms per step of "
                                          f"{CHUNK} runs" if chunk_step_s else ""))
  specs = _specs(settings)
  states = optimize.start(layout, cfg, specs)
  records = [dict(s, rung=0, steps=0) for s in settings]
  alive = list(range(len(settings)))
  train_task, sized = {}, {}
  for rung in range(the_plan.rungs):
    first = rung * the_plan.rung_steps
    for c0 in range(0, len(alive), chunk):
      ids = np.array(alive[c0:c0 + chunk])
      new, (_, task, _) = optimize.advance(graphdef, layout, cfg, problem,
                                           optimize.take(specs, ids),
                                           optimize.take(states, ids), first,
                                           the_plan.rung_steps, the_plan.horizon)
      states = jax.tree.map(lambda s, n: s.at[ids].set(n), states, new)
      for j, i in enumerate(ids):
        train_task[int(i)] = float(task[j])
    for i in alive:
      tau_P = states.tau_P[i]
      keep_N = layout.nodes_of((tau_P > 0).astype(jnp.float32))
      loss, _ = subject.loss(keep_N, validation, validation_fill)
      records[i].update(rung=rung, steps=first + the_plan.rung_steps,
                        learned_nodes=int(jnp.sum(keep_N)), learned_validation_loss=loss,
                        final_task_loss=train_task[i])
      sized[i] = bisect(subject, tau_P, sets, cfg)
      records[i].update(circuit_nodes=None if sized[i] is None else
                        int(jnp.sum(sized[i].keep_N)),
                        circuit_validation_loss=None if sized[i] is None else sized[i].loss)
    if rung < the_plan.rungs - 1:
      alive = halve(alive, records)
    clock(f"rung {rung + 1}/{the_plan.rungs}: {len(alive)} candidate(s) go on")
  finished = [i for i in alive if sized[i] is not None]
  if not finished:  # even the full model, calibrated on the training pairs, misses it
    raise NoCircuit(f"no circuit reaches prune.target_loss={cfg.target_loss} on the "
                    "validation split, not even the whole model with its logit "
                    "calibration (plus prune.sizing_z standard errors); raise the target, "
                    "lower prune.sizing_z or try prune.calibrate=False.")
  best = min(finished, key=lambda i: (records[i]["circuit_nodes"],
                                      records[i]["circuit_validation_loss"]))
  spent = time.time() - start
  budget = {"budget_s": cfg.budget_s, "candidates": the_plan.candidates,
            "rungs": the_plan.rungs, "rung_steps": the_plan.rung_steps,
            "steps": the_plan.horizon, "runs_per_call": chunk,
            "chunk_step_ms": None if chunk_step_s is None else round(chunk_step_s * 1e3, 1),
            "seconds": round(spent, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1)}
  return Result(sized[best], records, budget)

