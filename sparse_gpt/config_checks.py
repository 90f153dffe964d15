"""Checking a ConfigDict key by key: the first bad value raises one ConfigError.

The message names the key, the value and what the key accepts, e.g.
`config.train.eps=nan: must be a finite number > 0`. A type is checked before its
range, so a string or None where a number belongs never reaches a comparison (whose
TypeError would be a traceback). Booleans are not numbers here, though Python says so.
"""

import math
import numbers

import ml_collections

from sparse_gpt.errors import ConfigError

SEED_LIMIT = 2**32  # grain's shuffle takes seeds in [0, 2**32)


def is_integer(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_finite_number(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _interval(low, high, open_low: bool, open_high: bool) -> str:
  if high is None:
    return f"{'>' if open_low else '>='} {low}"
  return f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"


class Checks:
  """Validates the values of `config`, whose keys are reported as `prefix` + dotted key."""

  def __init__(self, config: ml_collections.ConfigDict, prefix: str):
    self.config, self.prefix = config, prefix

  def fail(self, key: str, value, why: str):
    raise ConfigError(f"{self.prefix}{key}={value!r}: {why}")

  def value(self, key: str):
    v = self.config
    for part in key.split("."):
      v = v[part]
    return v

  def same_keys(self, schema: ml_collections.ConfigDict, section: str = "") -> None:
    """Every key of `schema` is present, no other key is, and sections stay sections."""
    have = self.value(section) if section else self.config
    where = f"{self.prefix}{section + '.' if section else ''}"
    unknown = sorted(set(have.keys()) - set(schema.keys()))
    if unknown:
      raise ConfigError(f"{where}{unknown[0]}: unknown key; the keys here are "
                        f"{', '.join(sorted(schema.keys()))}")
    for name, default in schema.items():
      key = f"{section}.{name}" if section else name
      if name not in have:
        raise ConfigError(f"{self.prefix}{key} is missing; its default is {default!r}")
      if isinstance(default, ml_collections.ConfigDict):
        if not isinstance(have[name], ml_collections.ConfigDict):
          self.fail(key, have[name], "must be a section of keys, as in the defaults")
        self.same_keys(default, key)

  def integer(self, key: str, low: int = 1, high: int | None = None, hint: str = "") -> int:
    """An int in [low, high] (high None: no upper bound)."""
    v = self.value(key)
    if high is not None:
      want = f"an integer in [{low}, {high}]"
    else:
      want = {0: "a non-negative integer", 1: "a positive integer"}.get(
          low, f"an integer >= {low}")
    if not (is_integer(v) and low <= v and (high is None or v <= high)):
      self.fail(key, v, f"must be {want}{hint}")
    return v

  def seed(self, key: str) -> int:
    return self.integer(key, 0, SEED_LIMIT - 1)

  def number(self, key: str, low, high=None, *, open_low: bool = False,
             open_high: bool = False, hint: str = "") -> float:
    """A finite int or float in the interval from low to high (high None: unbounded)."""
    v = self.value(key)
    where = _interval(low, high, open_low, open_high)
    if not is_finite_number(v):
      self.fail(key, v, f"must be a finite number {where}{hint}")
    above = v > low if open_low else v >= low
    below = high is None or (v < high if open_high else v <= high)
    if not (above and below):
      self.fail(key, v, f"must be {where}{hint}")
    return v

  def boolean(self, key: str) -> bool:
    v = self.value(key)
    if not isinstance(v, bool):
      self.fail(key, v, "must be True or False")
    return v

  def string(self, key: str, empty_ok: bool, hint: str = "") -> str:
    v = self.value(key)
    if not isinstance(v, str) or not (empty_ok or v.strip()):
      self.fail(key, v, f"must be a {'' if empty_ok else 'non-empty '}string{hint}")
    return v

  def choice(self, key: str, options: tuple[str, ...]) -> str:
    v = self.value(key)
    if not (isinstance(v, str) and v in options):
      self.fail(key, v, f"must be one of {', '.join(map(repr, options))}")
    return v

  def sequence(self, key: str, item_ok, what: str) -> tuple:
    """A non-empty tuple or list whose every item passes `item_ok`; `what` names them."""
    v = self.value(key)
    if not (isinstance(v, (tuple, list)) and v and all(map(item_ok, v))):
      self.fail(key, v, f"give a tuple of one or more {what}")
    return tuple(v)
