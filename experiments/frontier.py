"""The CPU frontier (docs/frontier.md): tiny.py at two widths and two L0s, and dense.py.

Six models: d_model 128 and 256 (d_mlp and heads scale alike), each at two L0 levels
(a: hidden 1/4 and embedding 1/2 at d_model 128, as tiny.py; b: half that) with the
same number of nonzero weights at both widths, and a dense baseline of each width with
dense.py's settings. `python -m launch.sweep --config=experiments/frontier.py
--workdir=runs/frontier --list` shows them. The six, pruned on three tasks, took 67 minutes
of wall time on 2 cores, two jobs at once (two of them copied in trained), and the
target sweep 19 more (docs/frontier.md has each model's time).
"""

from experiments import dense
from experiments import tiny
from sparse_gpt import sweep


def get_config():
  c = sweep.defaults()
  c.base = tiny.get_config()
  c.widths = (128, 256)
  c.l0 = (1 / 4, 1 / 8)
  c.embed_ratio = 2.0  # tiny.py: hidden 1/4, embedding 1/2
  c.density_scaling = "l0"
  d = dense.get_config()
  c.dense = {"sparsity": {"enabled": d.sparsity.enabled},
             "model": {"abstopk_at": d.model.abstopk_at},
             "train": {"learning_rate": d.train.learning_rate}}
  return c
