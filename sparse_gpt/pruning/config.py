"""Pruning hyperparameters: docs/method.md section 7's values, with a CPU-sized budget.

By default (`budget_s` > 0) the recipe is searched (search.py): candidates spread
log-uniformly around the values below (the centres) train under successive halving for
about `budget_s` seconds of mask steps (compilation and sizing come on top), and the
smallest circuit that reaches the target on the validation split wins. `batch_pairs`
differs from the paper's 64 to buy 4x the steps.

`--prune.budget_s=0` reproduces a fixed recipe exactly: every (k_coef, seed) of
`k_coefs` x `seeds` trains `steps` steps at once under `vmap` with the values below, and
the smallest circuit wins, e.g.
`--prune.budget_s=0 --prune.steps=400 --prune.k_coefs="(1e-4, 1e-3)"`.
"""

import ml_collections

from sparse_gpt import config_checks

ABLATIONS = ("mean", "zero", "resample")


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.budget_s = 30.0  # seconds of mask training per task (search.py); 0: k_coefs x seeds, steps
  c.k_coefs = (1e-4,)  # loss per kept node (the first is the search's centre)
  c.edge_coef = 2e-3  # loss per kept edge (edges.count), the search's centre; 0: off
  c.seeds = (0,)  # seeds of the mask initialisation noise (the first seeds the search)
  c.steps = 100  # with budget_s=0
  c.learning_rate = 3e-3  # AdamW, linear decay to 0, no warmup
  c.beta1 = 0.9
  c.beta2 = 0.95
  c.weight_decay = 1e-3
  c.grad_clip = 1.0  # global gradient norm
  c.init_bias = 0.1  # every node starts kept: tau = bias + noise * N(0, 1)
  c.init_noise = 1e-2
  c.temperature = 1.0  # of the sigmoid whose derivative stands in for Heaviside's
  c.batch_pairs = 16  # pairs per step (two sequences each); the paper uses 64
  c.train_pairs = 64  # the training split: pruned on, bisected on, calibrated on
  # The split the circuit is sized and the search decided on. The smallest circuit that
  # passes a noisy split passes it by luck as often as not: at 64 pairs the demo's quote
  # circuit was sized at 0.116 and scored 0.175 on held-out pairs; at 256, 0.146 and 0.151.
  c.validation_pairs = 256
  c.heldout_pairs = 64  # the held-out split of the faithfulness battery
  c.pair_seed = 0  # seed of the task's pair generator
  c.target_loss = 0.15  # per-sequence mean task loss the circuit must reach
  # Standard errors (over validation pairs) added to the loss before sizing compares it
  # with the target: one-sided 95%. 0: the mean alone.
  c.sizing_z = 1.645
  c.ablation = "mean"  # what a dropped node becomes: "mean", "zero" or "resample"
  c.tie_qk = False  # one mask parameter for query channel c of head h and its key
  # Every RMSNorm divides by the unablated model's RMS (docs/method.md section 9).
  c.freeze_norms = False
  c.partial_ablation = 0.0  # chance a node outside the circuit is ablated in mask training
  c.calibrate = True  # fit a scale and shift of the circuit's logits afterwards
  c.calibration_steps = 16  # L-BFGS steps
  c.faithfulness = True  # run the held-out, necessity, zero-ablation and null checks
  c.null_steps = 50  # pruning steps of the two null baselines; 0 skips them
  # The nulls each get the task's own search and budget instead (prune.budget_s each).
  c.null_search = False
  c.mean_windows = 32  # validation windows of n_ctx tokens that node means average
  return c


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad key."""
  v = config_checks.Checks(c, "prune.")
  v.same_keys(defaults())
  v.sequence("k_coefs", lambda k: config_checks.is_finite_number(k) and k >= 0,
             "finite numbers >= 0, e.g. (1e-4, 1e-3)")
  v.sequence("seeds", lambda s: config_checks.is_integer(s)
             and 0 <= s < config_checks.SEED_LIMIT, "integers in [0, 2**32), e.g. (0, 1)")
  v.number("budget_s", 0, hint=" (0: prune.steps, k_coefs and seeds exactly)")
  for key in ("steps", "batch_pairs", "train_pairs", "validation_pairs", "heldout_pairs",
              "mean_windows"):
    v.integer(key)
  # A step draws batch_pairs distinct training pairs; with more asked for than the split
  # holds, it would silently take them all.
  if c.batch_pairs > c.train_pairs:
    v.fail("batch_pairs", c.batch_pairs,
           f"must be at most prune.train_pairs={c.train_pairs}; lower it or raise train_pairs")
  for key in ("null_steps", "calibration_steps"):
    v.integer(key, 0)
  v.seed("pair_seed")
  for key in ("learning_rate", "temperature", "grad_clip", "target_loss"):
    v.number(key, 0, open_low=True)
  for key in ("beta1", "beta2"):
    v.number(key, 0, 1, open_high=True)
  for key in ("weight_decay", "init_noise", "edge_coef", "sizing_z"):
    v.number(key, 0)
  v.number("init_bias", -1, 1, open_low=True, hint=" (tau is clamped to [-1, 1])")
  v.choice("ablation", ABLATIONS)
  for key in ("tie_qk", "freeze_norms", "calibrate", "faithfulness", "null_search"):
    v.boolean(key)
  v.number("partial_ablation", 0, 1, open_high=True)
