"""What every launcher shares: a bad flag or a user error is one line and a non-zero exit.

absl and ml_collections report a bad command line as a traceback (an unknown config key,
a config file that is not there) or as a FATAL banner; a launcher defines its config flags
with `define_config_file` / `define_config_dict`, parses with `parse_flags`
(`app.run(main, flags_parser=common.parse_flags)`) and runs its work under `run`.
"""

import difflib
import importlib.util
import logging as py_logging
import numbers
import pathlib
import re
import sys

from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from sparse_gpt.errors import UserError

# The config flags of this process: name -> its default (a config file path or a dict).
_CONFIGS = {}


def define_config_file(name: str, default: str, help_string: str) -> flags.FlagHolder:
  """config_flags.DEFINE_config_file, whose bad --name.key overrides exit in one line."""
  _CONFIGS[name] = default
  return _define(name, lambda: config_flags.DEFINE_config_file(name, default, help_string))


def define_config_dict(name: str, default: ml_collections.ConfigDict,
                       help_string: str) -> flags.FlagHolder:
  """config_flags.DEFINE_config_dict, whose bad --name.key overrides exit in one line."""
  _CONFIGS[name] = default.copy_and_resolve_references()  # the flag's overrides edit default
  return _define(name, lambda: config_flags.DEFINE_config_dict(name, default, help_string))


def define_workdir(default: str | None, help_string: str, **kwargs) -> flags.FlagHolder:
  """--workdir for a launcher that writes there: an empty one would be the current
  directory."""
  holder = flags.DEFINE_string("workdir", default, help_string, **kwargs)
  flags.register_validator("workdir", lambda workdir: workdir is None or workdir.strip(),
                           "give a directory, e.g. --workdir=runs/tiny")
  return holder


def _define(name: str, define) -> flags.FlagHolder:
  # Without --name=FILE on the command line the default is parsed now, at import, together
  # with the command line's --name.key overrides: check them first.
  if _given(name, sys.argv) is None and _overrides(name, sys.argv):
    _exit_on_user_error(lambda: _check_overrides(name, _config_of(name, None), sys.argv))
  return define()


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every error in one line naming the flag and the fix."""
  prog = f"python -m launch.{pathlib.Path(argv[0]).stem}"
  configs = {}

  def check_configs():
    for name, default in _CONFIGS.items():
      given = _given(name, argv)
      if given is not None and isinstance(default, ml_collections.ConfigDict):
        raise UserError(f"--{name}={given}: --{name} takes no value; set its keys with "
                        f"--{name}.KEY=VALUE")
      if given is not None or _overrides(name, argv):
        configs[name] = _config_of(name, given)
      if given is not None:
        _check_overrides(name, configs[name], argv)

  _exit_on_user_error(check_configs)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    message = _one_line(e)
    if m := re.search(r"Flag --(\w+) must have a value other than None", message):
      message = f"give --{m[1]}: {flags.FLAGS[m[1]].help}"
    sys.exit(f"error: {message}{_type_hint(message, configs)} (see {prog} --helpshort)")
  _exit_on_user_error(lambda: [_check_tuples(name, config, flags.FLAGS[name].value, argv)
                                for name, config in configs.items()])
  return rest


def run(fn):
  """Calls fn; a UserError or Ctrl-C becomes one line on stderr and a non-zero exit."""
  if not flags.FLAGS["verbosity"].present:
    # Orbax logs every save, and notes about read-only managers; our progress and our
    # warnings (e.g. a corrupt checkpoint skipped) are what the user needs to see.
    logging.set_verbosity(logging.WARNING)
    py_logging.getLogger("absl").addFilter(
        lambda record: record.levelno >= py_logging.ERROR or "orbax" not in record.pathname)
  try:
    return _exit_on_user_error(fn)
  except KeyboardInterrupt:
    sys.exit("interrupted: the newest finished checkpoint is kept; rerun the same command "
             "to resume.")


def _exit_on_user_error(fn):
  try:
    return fn()
  except UserError as e:
    sys.exit(f"error: {e}")


def _given(name: str, argv: list[str]) -> str | None:
  """The value of --name=VALUE (or --name VALUE) on the command line, else None."""
  for i, arg in enumerate(argv):
    if m := re.fullmatch(rf"--?{name}=(.*)", arg, re.DOTALL):
      return m[1]
    if re.fullmatch(rf"--?{name}", arg):
      return argv[i + 1] if i + 1 < len(argv) else ""
  return None


def _config_of(name: str, given: str | None):
  """The config that flag `name` will hold: its default, or the config file given."""
  if given is None and isinstance(_CONFIGS[name], ml_collections.ConfigDict):
    return _CONFIGS[name]
  return _load_config_file(name, _CONFIGS[name] if given is None else given)


def _load_config_file(name: str, spec: str) -> ml_collections.ConfigDict:
  """Runs FILE's get_config(ARG) for --name=FILE[:ARG], as ml_collections does."""
  path, *arg = spec.split(":", 1)
  f = pathlib.Path(path)
  if not f.is_file():
    near = difflib.get_close_matches(path, [str(p) for p in f.parent.glob("*.py")], n=3)
    fix = (f"did you mean {' or '.join(near)}?" if near else
           "give a config file such as experiments/tiny.py")
    raise UserError(f"--{name}={spec}: there is no file {path}; {fix}")
  module_spec = importlib.util.spec_from_file_location(f"{name}_config", f)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-exception-caught
    raise UserError(f"--{name}={spec}: {path} does not load "
                    f"({type(e).__name__}: {_one_line(e)})") from None
  if not callable(getattr(module, "get_config", None)):
    raise UserError(f"--{name}={spec}: {path} defines no get_config()")
  try:
    return module.get_config(*arg)
  except Exception as e:  # pylint: disable=broad-exception-caught
    call = f"get_config({arg[0]!r})" if arg else "get_config()"
    raise UserError(f"--{name}={spec}: {path}'s {call} failed "
                    f"({type(e).__name__}: {_one_line(e)})") from None


def _overrides(name: str, argv: list[str]) -> list[tuple[str, str]]:
  """(arg, KEY) of each --name.KEY[=VALUE] (or --noname.KEY) on the command line."""
  return [(arg, m[1]) for arg in argv if (m := re.match(rf"--?(?:no)?{name}\.([^=]*)", arg))]


def _check_overrides(name: str, config, argv: list[str]) -> None:
  """Every --name.KEY[=VALUE] on the command line names a key of `config`."""
  keys = _dotted_keys(config)
  for _, key in _overrides(name, argv):
    if key in keys:
      continue
    parts = key.split(".")
    node, depth = config, 0  # walk down to the deepest section the key reaches
    while (depth < len(parts) - 1 and isinstance(node, ml_collections.ConfigDict) and
           parts[depth] in node):
      node, depth = node[parts[depth]], depth + 1
    where = ".".join([name, *parts[:depth]])
    if not isinstance(node, ml_collections.ConfigDict):
      raise UserError(f"--{name}.{key}: {where} is a value, not a section of keys")
    near = [".".join([*parts[:depth], k, *parts[depth + 1:]])
            for k in difflib.get_close_matches(parts[depth], node.keys(), n=3)]
    fix = ("did you mean " + " or ".join(f"--{name}.{k}" for k in near) + "?" if near else
           f"the keys of {where} are {', '.join(node.keys())}")
    raise UserError(f"--{name}.{key}: {where} has no key {parts[depth]!r}; {fix}")


def _check_tuples(name: str, before, after, argv: list[str]) -> None:
  """A tuple override holds elements of the default's kind: ml_collections reads
  --prune.k_coefs=abc as ("abc",)."""
  for arg, key in _overrides(name, argv):
    old, new = _at(before, key), _at(after, key)
    if not (isinstance(old, tuple) and old and isinstance(new, tuple)):
      continue
    kind = numbers.Real if isinstance(old[0], numbers.Real) else type(old[0])
    if not all(isinstance(x, kind) for x in new):
      raise UserError(f"{arg}: {name}.{key} is a tuple of "
                      f"{'numbers' if kind is numbers.Real else kind.__name__}, e.g. "
                      f"--{name}.{key}=\"{old!r}\"")


def _at(config, dotted: str):
  for part in dotted.split("."):
    config = config[part]
  return config


def _dotted_keys(config, prefix: str = "") -> list[str]:
  keys = []
  for k, v in config.items():
    keys.append(prefix + k)
    if isinstance(v, ml_collections.ConfigDict):
      keys += _dotted_keys(v, f"{prefix}{k}.")
  return keys


def _type_hint(message: str, configs: dict) -> str:
  """For a config override absl could not parse: a value of the kind the key takes."""
  m = re.match(r"flag --(\w+)\.([\w.]+)=", message)
  if not m or m[1] not in configs:
    return ""
  value = _at(configs[m[1]], m[2])
  kind = type(value).__name__
  article = "an" if kind[0] in "aeiou" else "a"
  return "" if value is None else f"; {m[1]}.{m[2]} takes {article} {kind} (now {value!r})"


def _one_line(e: Exception) -> str:
  return " ".join(str(e).split())
