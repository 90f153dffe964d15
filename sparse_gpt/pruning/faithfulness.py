"""The faithfulness battery: is a circuit the model's mechanism, or just a fit?

held-out     the circuit alone (everything else ablated) on prompts it was not pruned on
partial      the circuit with random parts of the rest present (partial.py): mean, worst
interchange  the circuit's nodes from the pair's other prompt: the answer should follow
             them (interchange.py)
necessity    ablate only the circuit: the loss should rise toward chance (ln 2)
zero         the circuit with zero instead of mean ablation
nulls        the same pruning on a nonsense task and on a re-initialised model: how many
             nodes each needs for the same target (nulls.py); with prune.null_search,
             each null gets the task's own recipe search and budget
"""

import math

import jax
import jax.numpy as jnp

from sparse_gpt.pruning import interchange
from sparse_gpt.pruning import nulls
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning import partial
from sparse_gpt.pruning import search
from sparse_gpt.pruning.calibrate import Calibration
from sparse_gpt.pruning.subject import Subject, mean_and_error, scored
from sparse_gpt.tasks.resolve import TaskBatch

CHANCE = math.log(2)
# The chance of ablation in the partial-ablation check when pruning did not train with one.
PARTIAL_Q = 0.5


def heldout_checks(subject: Subject, keep_N, calibration: Calibration, heldout: TaskBatch,
                   partial_ablation: float = 0.0) -> dict:
  """Losses on held-out pairs: full model, circuit (raw, calibrated), necessity, zero,
  partial ablation with q = partial_ablation (PARTIAL_Q if 0), and the interchange test."""
  fill = subject.fill(heldout)
  full, full_acc = subject.loss(subject.everything(), heldout, fill)
  logits = subject.candidates(keep_N, heldout, fill)
  raw, _ = scored(logits, heldout)
  calibrated, accuracy = scored(logits, heldout, calibration)
  _, error = mean_and_error(logits, heldout, calibration)
  necessity, _ = subject.loss(1.0 - keep_N, heldout, fill)
  zero, _ = subject.loss(keep_N, heldout, subject.fill(heldout, "zero"))
  q = partial_ablation or PARTIAL_Q
  partial_J = partial.losses(subject, keep_N, heldout, fill, q)
  return {
      "full_model_loss": full, "full_model_accuracy": full_acc,
      "circuit_loss": calibrated, "circuit_loss_se": error, "circuit_loss_raw": raw,
      "circuit_accuracy": accuracy,
      "necessity_loss": necessity, "zero_ablation_loss": zero,
      "partial_ablation": {"q": q, "patterns": int(partial_J.shape[0]),
                           "mean_loss": float(jnp.mean(partial_J)),
                           "worst_loss": float(jnp.max(partial_J))},
      "interchange_flip_rate": interchange.flip_rate(subject.graphdef, subject.params,
                                                     subject.layout, keep_N, heldout),
      # Ablating the circuit should leave the task closer to chance than to the model.
      "necessary": necessity >= (full + CHANCE) / 2}


def _stack(*trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def null_sizes(subject: Subject, reinit: Subject, train: TaskBatch, cfg) -> dict:
  """Nodes each null needs to reach cfg.target_loss (None: not reached).

  The two nulls train side by side under one vmap, for cfg.null_steps steps, with the
  first k_coef and seed of the sweep.
  """
  nonsense = nulls.nonsense_labels(train)
  problem = optimize.Problem(
      params=_stack(subject.params, reinit.params),
      fill=_stack(subject.fill(nonsense), reinit.fill(train)),
      pairs=_stack(nonsense, train),
      norms=_stack(subject.norms(nonsense), reinit.norms(train)))
  specs = optimize.runs(cfg.k_coefs[:1], cfg.seeds[:1])
  specs = optimize.RunSpec(jnp.repeat(specs.k_coef_R, 2), jnp.repeat(specs.key_R, 2))
  trained = optimize.train_masks(subject.graphdef, subject.layout, cfg, problem, specs,
                                 steps=cfg.null_steps,
                                 problem_axes=optimize.Problem(0, 0, 0, 0))
  out = {}
  for r, (name, who, pairs) in enumerate((("nonsense_task", subject, nonsense),
                                          ("reinitialised_model", reinit, train))):
    fill = problem.fill[r]
    keep_N, loss = who.smallest_circuit(trained.tau_P[r], pairs, fill, cfg.target_loss)
    out[name] = {"nodes": None if keep_N is None else int(jnp.sum(keep_N)), "loss": loss,
                 "sized_on": "train",
                 "full_model_loss": who.loss(who.everything(), pairs, fill)[0],
                 "final_train_task_loss": float(trained.task_loss_T[r, -1])}
  return out


def searched_null_sizes(subject: Subject, reinit: Subject, sets, cfg, n_ctx: int,
                        clock) -> dict:
  """null_sizes' record for each null, found by search.run with the task's own config
  (prune.budget_s each): the nulls get the same search and budget as the real circuit.

  `sets` is the task's ((train, fill), (validation, validation_fill)). The re-initialised
  model keeps both splits and takes its own fill. The nonsense null is sized on its
  training pairs: its labels are random per prompt, so no circuit could reach the target
  on validation pairs, and the question it answers is whether the search memorises them.
  """
  (train, fill), (validation, validation_fill) = sets
  nonsense = (nulls.nonsense_labels(train), fill)
  reinit_sets = ((train, reinit.fill(train)), (validation, reinit.fill(validation)))
  out = {}
  for name, who, null_sets, sized_on in (
      ("nonsense_task", subject, (nonsense, nonsense), "train"),
      ("reinitialised_model", reinit, reinit_sets, "validation")):
    (pairs, pairs_fill), (sizing_pairs, sizing_fill) = null_sets
    problem = optimize.bucketed(optimize.Problem(who.params, pairs_fill, pairs,
                                                 who.norms(pairs)), cfg.batch_pairs, n_ctx)
    say = lambda message, name=name: clock(f"{name} null: {message}")
    try:
      found = search.run(who, problem, null_sets, cfg, say)
      nodes, loss = int(jnp.sum(found.sized.keep_N)), found.sized.loss
    except search.NoCircuit:
      nodes, loss = None, None
    out[name] = {"nodes": nodes, "loss": loss, "recipe": "search", "sized_on": sized_on,
                 "full_model_loss": who.loss(who.everything(), sizing_pairs, sizing_fill)[0]}
    say(f"{'no circuit' if nodes is None else f'{nodes} nodes'} reaches the target "
        f"(full model {out[name]['full_model_loss']:.4f} on the {sized_on} split)")
  return out
