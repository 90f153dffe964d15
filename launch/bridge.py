"""A bridged run's circuit as interventions on its dense model (docs/bridges.md):

  python -m launch.bridge --workdir=runs/bridge \\
      --circuit=runs/bridge/circuits/single_double_quote.json
  --nodes=0.attn.in[3],1.mlp.in[7]   these residual-read nodes instead of the circuit's
  --strengths=0,0.5,1                the strengths to sweep

Writes <workdir>/bridge_<task>.png and bridge_<task>.json.
"""

from absl import app
from absl import flags

from launch import common

_WORKDIR = common.define_workdir(None, "A bridged run's workdir (experiments/bridge.py).",
                                 required=True)
_CIRCUIT = flags.DEFINE_string("circuit", None, "A circuit file of that run (launch.prune).",
                               required=True)
_NODES = flags.DEFINE_list("nodes", [], "Residual-read nodes to intervene with, e.g. "
                           "0.attn.in[3],1.mlp.in[7]; default: the circuit's.")
_STRENGTHS = flags.DEFINE_list("strengths", ["0", "0.25", "0.5", "0.75", "1"],
                               "Intervention strengths in [0, 1].")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random-node control.")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from launch import bridge_cli as cli  # pylint: disable=g-import-not-at-top
  from sparse_gpt.errors import UserError  # pylint: disable=g-import-not-at-top

  def run():
    try:
      strengths = tuple(float(s) for s in _STRENGTHS.value)
    except ValueError:
      raise UserError(f"--strengths={','.join(_STRENGTHS.value)}: give numbers in [0, 1], "
                      "e.g. --strengths=0,0.5,1") from None
    print(cli.main(_WORKDIR.value, _CIRCUIT.value, tuple(_NODES.value), strengths,
                   _SEED.value))

  common.run(run)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
