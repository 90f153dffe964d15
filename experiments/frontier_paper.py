"""The paper's frontier grid: experiments/paper.py:EF for EF in 1, 2, 4, 8, at four L0s.

Each width is paper.py:EF's model, data and schedule; the L0 levels put f = 1/2, 1/4,
1/8, 1/16 into paper.py's density rule (hidden f / (4 EF), embeddings and biases f / EF),
so level b is paper.py:EF itself; each width also has a dense baseline (20 models; its
learning rate, --config.dense.train.learning_rate, is not tuned). A GPU or TPU job,
never a CPU one: a SLURM array runs one model per task (docs/scale_out.md).

Cost per model (arithmetic, not a measurement): 100,000 steps x 512 x 256 tokens =
13.1B tokens; training FLOPs ~ (6 N + 12 n_layer n_ctx d_model) per token, N the
parameter count (weight sparsity saves no FLOPs here: the weights are dense arrays with
zeros, and the top-k projection adds a little):

| EF | d_model | N | FLOPs per model | hours at 400 TFLOP/s sustained |
|---|---|---|---|---|
| 1 | 256 | 7.36M | 6.6e17 | 0.5 |
| 2 | 512 | 27.3M | 2.3e18 | 1.6 |
| 4 | 1024 | 104.9M | 8.6e18 | 6.0 |
| 8 | 2048 | 411.2M | 3.3e19 | 22.9 |

Five models per width: 2.2e20 FLOPs for the grid, ~155 hours at that rate; pruning adds
a little (docs/frontier.md).
"""

from experiments import paper
from sparse_gpt import sweep

_F = (1 / 2, 1 / 4, 1 / 8, 1 / 16)


def get_config():
  c = sweep.defaults()
  c.base = paper.get_config("1")
  c.widths = tuple(256 * ef for ef in (1, 2, 4, 8))
  c.l0 = tuple(f / 4 for f in _F)  # hidden densities at EF = 1
  c.embed_ratio = 4.0
  c.density_scaling = "paper"
  # The paper gives no dense learning rate: this is paper.py's, untuned for dense models.
  c.dense.train = {"learning_rate": c.base.train.learning_rate}
  wide = paper.get_config("8")
  c.per_width = {"d2048": {"sparsity": {"anneal_end": wide.sparsity.anneal_end}}}
  return c
