"""Write a run's circuit pages: python -m launch.view --workdir=runs/demo

  --circuit=runs/demo/circuits/single_double_quote.json   only this circuit's page
                                                          (and the index); repeatable

Writes <workdir>/view/index.html and one page per circuit, self-contained: they open
from file:// with no server and no network (docs/viewer.md). Prints the paths.
"""

from absl import app
from absl import flags

from launch import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir (default: the "
                               "--circuit file's model.workdir).")
_CIRCUIT = flags.DEFINE_multi_string("circuit", [], "Write only this circuit file's page "
                                     "(default: every file in <workdir>/circuits).")
flags.register_validator("workdir", lambda workdir: workdir is None or workdir.strip(),
                         "give a directory, e.g. --workdir=runs/demo")


def main(argv):
  del argv
  # Imported once the flags parse, so that a bad flag answers before JAX loads.
  from sparse_gpt.view import site  # pylint: disable=g-import-not-at-top

  def view():
    written = site.write(_WORKDIR.value, _CIRCUIT.value)
    for path in written["pages"]:
      print(path)
    print(written["index"])

  common.run(view)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
