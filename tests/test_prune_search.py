"""The recipe search's pure parts: the budget rule, the candidates, partial ablation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning import optimize
from sparse_gpt.pruning import search


@pytest.mark.parametrize("seconds,step_s,want", [
    (60, 0.1, search.Plan(4, 200, 2)),  # 600 chunk steps over 3 calls a step; 7: 85 < 100
    (30, 0.1, search.Plan(4, 100, 2)),  # 300 // 3 = 100
    (29, 0.1, search.Plan(2, 290, 1)),  # 290 // 3 = 96 < 100: no halving
    (0, 0.1, search.Plan(2, 1, 1)),  # no time: one step, so a circuit still comes
    (1000, 0.1, search.Plan(8, 1428, 3)),  # at most MAX_RUNGS rungs
])
def test_budget_to_steps_rule(seconds, step_s, want):
  got = search.plan(seconds, step_s)
  assert got == want
  assert got.horizon == want.rungs * want.rung_steps


def test_candidates_are_drawn_within_the_spread_of_the_centres():
  cfg = prune_config.defaults()
  drawn = search.candidates(cfg, 64)
  assert drawn == search.candidates(cfg, 64)  # deterministic
  assert [c["seed"] for c in drawn] == [i // 2 for i in range(64)]
  # Each setting twice: with its edge term, then without.
  for with_edges, without in zip(drawn[::2], drawn[1::2]):
    assert without == dict(with_edges, edge_coef=0.0) and with_edges["edge_coef"] > 0
  centre = {"k_coef": cfg.k_coefs[0], "learning_rate": cfg.learning_rate,
            "init_bias": cfg.init_bias, "temperature": cfg.temperature,
            "edge_coef": cfg.edge_coef}
  for key, (low, high) in search.SPREAD.items():
    factor = np.log10([c[key] / centre[key] for c in drawn[::2]])
    assert low - 1e-6 <= factor.min() and factor.max() <= high + 1e-6, key
    assert factor.max() - factor.min() > 0.5 * (high - low), key  # spread, not one point
  cfg.edge_coef = 0.0  # no edge term: none drawn
  assert {c["edge_coef"] for c in search.candidates(cfg, 8)} == {0.0}


def test_partial_ablation_never_ablates_the_circuit_and_the_rest_at_rate_q():
  n, q = 20_000, 0.3
  keep_N = jnp.zeros(n).at[:100].set(1.0)
  out_N = optimize.partially_ablated(keep_N, q, jax.random.key(3))
  assert set(np.unique(np.asarray(out_N))) <= {0.0, 1.0}
  np.testing.assert_array_equal(out_N[:100], 1.0)
  ablated = int(np.sum(np.asarray(out_N[100:]) == 0))
  # Binomial(19900, 0.3): mean 5970, sd 65.
  assert abs(ablated - q * (n - 100)) < 4 * np.sqrt(n * q * (1 - q))
  np.testing.assert_array_equal(optimize.partially_ablated(keep_N, 0.0, jax.random.key(3)),
                                jnp.ones(n))


def test_halving_keeps_the_settings_that_pass_on_validation_not_on_training():
  records = [
      # Fits its training pairs with 3 nodes, no circuit of it reaches the target on
      # validation: an over-fit.
      {"learned_validation_loss": 0.9, "final_task_loss": 0.01, "circuit_nodes": None,
       "circuit_validation_loss": None},
      {"learned_validation_loss": 0.12, "final_task_loss": 0.14, "circuit_nodes": 40,
       "circuit_validation_loss": 0.11},
      # Its learned circuit misses the target, yet bisection sizes it smallest.
      {"learned_validation_loss": 0.25, "final_task_loss": 0.30, "circuit_nodes": 20,
       "circuit_validation_loss": 0.14},
      {"learned_validation_loss": 0.50, "final_task_loss": 0.02, "circuit_nodes": None,
       "circuit_validation_loss": None},
  ]
  assert search.halve([0, 1, 2, 3], records) == [2, 1]
  # Among the unsized the lower validation loss goes first.
  assert search.halve([0, 3], records) == [3]
