"""make bench's pruning figures on a fresh clone, where no demo run exists yet."""

import jax.numpy as jnp

from benchmarks import prune_speed
from sparse_gpt.pruning import config as prune_config
from sparse_gpt.pruning.calibrate import IDENTITY
from sparse_gpt.pruning.nodes import Layout
from sparse_gpt.pruning.subject import Subject, upper_bound
from sparse_gpt.tasks import resolve


def test_the_random_stand_in_leaves_the_full_model_a_circuit(tmp_path):
  """Its target sits just above the full model's mean loss: the sizing criterion must
  pass the full model, or the search finds no circuit and the bench stops."""
  pcfg = prune_config.defaults()
  run, data, target, what = prune_speed._demo_or_random(
      str(tmp_path / "no_run"), "single_double_quote", pcfg, str(tmp_path / "scratch"))
  assert what.startswith("random-init")
  layout = Layout(run.config.model)
  subject = Subject(run.graphdef, run.params, layout, jnp.zeros(layout.n_nodes), "zero")
  validation = resolve.padded(data.validation, run.config.model.n_ctx)
  fill = subject.fill(validation)
  logits = subject.candidates(subject.everything(), validation, fill)
  assert upper_bound(logits, validation, IDENTITY, pcfg.sizing_z) <= target
