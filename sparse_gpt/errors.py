"""Errors that mean "the user asked for something wrong", shown without a traceback.

Launchers catch `UserError` and exit with its message; anything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
  """Bad input: the message names the problem and the fix."""


class ConfigError(UserError):
  """A config key holds a bad value."""


class DataError(UserError):
  """The corpus or a data file cannot be used."""


class CheckpointError(UserError):
  """A workdir or checkpoint is missing, incompatible, unreadable, unwritable or in use."""


class TrainingDiverged(UserError):
  """The loss, gradient or weights went bad; the last good checkpoint is kept."""
