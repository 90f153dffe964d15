"""A weight-sparse tiny model bridged to the dense tiny model (docs/bridges.md).

  python -m launch.train --config=experiments/bridge.py --workdir=runs/bridge \\
      --config.bridge.dense_workdir=runs/dense
The data and n_ctx are tiny.py's, so the tokens are those of experiments/dense.py's run.
Every loss weight is 1; for circuits meant as interventions on the dense model,
`--config.bridge.kl_dense_weight=16` moved it most (docs/bridges.md, "The decoded KL's
weight").
"""

from experiments import tiny
from sparse_gpt import config


def get_config():
  c = config.with_bridge(tiny.get_config())
  c.bridge.dense_workdir = "runs/dense"
  return c
