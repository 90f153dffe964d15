"""Checkpoints: params, optimizer state and the data iterator, saved together by orbax.

Saves are asynchronous and atomic (orbax writes to a temporary directory and renames it,
or on gs:// marks it committed), so a run killed at any moment keeps every finished
checkpoint; the next run deletes the unfinished one. On restore, a checkpoint that fails
to load is named in a one-line warning and the previous one is used; training sets it
aside as `corrupt-N` (orbax ignores the name), so step N can be saved again. With several
processes, every process calls every method: each writes and reads its own shards.
"""

import contextlib
import gc
import logging as py_logging
import pathlib
import re
import sys

from absl import logging
from etils import epath
import grain
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from sparse_gpt.errors import CheckpointError


def _abstract(tree):
  """ShapeDtypeStructs with shardings: orbax restores straight into place."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _orbax_or_asyncio(record: py_logging.LogRecord) -> bool:
  return "orbax" in record.pathname or record.name == "asyncio"


@contextlib.contextmanager
def _quiet():
  """Drops orbax's own logging, asyncio's, and the reads a failure abandons, meanwhile.

  A failed read leaves one coroutine per array, each printing a TensorStore spec and a
  traceback when collected: hundreds of lines for one bad checkpoint. Our one-line
  warning says what matters. (Read-only managers log notes too.)
  """
  drop = lambda record: not _orbax_or_asyncio(record)
  loggers = [py_logging.getLogger(name) for name in ("absl", "asyncio")]
  for lg in loggers:
    lg.addFilter(drop)
  hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
  try:
    yield
  finally:
    gc.collect()  # now, while their "exception ignored" reports go nowhere
    sys.unraisablehook = hook
    for lg in loggers:
      lg.removeFilter(drop)


def _abandoned_read(unraisable) -> bool:
  """An "exception ignored" report left by a failed orbax read: its coroutine, or its
  callback into the event loop that the manager has closed since."""
  if "_read_array" in getattr(unraisable.object, "__qualname__", ""):
    return True
  frames, tb = [], unraisable.exc_traceback
  while tb is not None:
    frames.append(tb.tb_frame.f_code.co_name)
    tb = tb.tb_next
  return (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == "Event loop is closed"
          and "call_soon_threadsafe" in frames)


def _drop_abandoned_reads() -> None:
  """From now on, drops the reports of abandoned reads: background threads can release
  them after _quiet has ended, and each is a many-line dump saying nothing new."""
  current = sys.unraisablehook
  if getattr(current, "drops_abandoned_reads", False):
    return

  def hook(unraisable):
    if not _abandoned_read(unraisable):
      current(unraisable)

  hook.drops_abandoned_reads = True
  sys.unraisablehook = hook


def _reason(e: Exception, step_dir: str) -> str:
  """One line for a failed read: TensorStore's errors embed whole specs, many lines each.

  Names the file that failed (item/array, from the spec's kvstore paths) when it can.
  """
  text = str(e)
  first = text.split(". See full TensorStore details")[0].splitlines()
  first = first[0] if first else ""
  paths = re.findall(r"'path': '([^']*)'", text)
  where = ""
  if paths:
    base = paths[0][len(step_dir):].strip("/") if paths[0].startswith(step_dir) else paths[0]
    where = f"{base}/{paths[-1].strip('/')}: " if len(paths) > 1 else f"{base}: "
  return f"{where}{type(e).__name__}: {first[:200]}"


class Checkpoints:

  def __init__(self, directory: pathlib.Path | str, keep: int = 3, read_only: bool = False):
    self.directory = directory
    self._read_only = read_only
    with _quiet():
      self._manager = ocp.CheckpointManager(
          directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=None if read_only else keep, create=not read_only,
              read_only=read_only, cleanup_tmp_directories=not read_only,
              enable_async_checkpointing=not read_only))

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, params, opt_state, data_iter) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        data=grain.checkpoint.CheckpointSave(data_iter)), force=True)

  def save_params(self, step: int, params) -> None:
    """Parameters alone (an imported model): what every reader of parameters restores."""
    self._manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)),
                       force=True)

  def _restore(self, step, items: dict):
    """The restored items, or None (after a one-line warning) if the step cannot be read."""
    step_dir = f"{self.directory}/{step}"
    with _quiet():
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
      except Exception as e:  # any failure to read means this checkpoint is unusable
        restored, reason = None, _reason(e, step_dir)
      # Out of the except clause, the error's traceback (which holds the abandoned reads)
      # is gone: leaving _quiet collects them.
    if restored is None:
      _drop_abandoned_reads()
      logging.warning("Checkpoint %s is incomplete or corrupt (%s).", step_dir, reason)
      if not self._read_only:  # so that the step can be saved again
        self._set_aside(step)
      return None
    return {name: restored[name] for name in items}

  def _set_aside(self, step: int) -> None:
    """Moves an unreadable step to corrupt-N: kept for inspection, no longer step N."""
    src = epath.Path(self.directory) / str(step)
    dst = src.parent / f"corrupt-{step}"
    n = 1
    while dst.exists():
      n += 1
      dst = src.parent / f"corrupt-{step}.{n}"
    if jax.process_index() == 0:
      src.rename(dst)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
    self._manager.reload()
    logging.warning("Set the unreadable checkpoint %s aside as %s.", src, dst.name)

  def _items(self, params, opt_state=None, data_iter=None) -> dict:
    items = dict(params=ocp.args.StandardRestore(_abstract(params)))
    if opt_state is not None:
      items.update(opt_state=ocp.args.StandardRestore(_abstract(opt_state)),
                   data=grain.checkpoint.CheckpointRestore(data_iter))
    return items

  def restore_latest(self, params, opt_state, data_iter):
    """(step, params, opt_state) of the newest loadable checkpoint, or None if none.

    `params` and `opt_state` are templates (arrays or ShapeDtypeStructs) whose shapes and
    shardings the restored values take; `data_iter` is restored in place. Unreadable
    newer steps are set aside (unless read-only).
    """
    for step in reversed(self.steps()):
      out = self._restore(step, self._items(params, opt_state, data_iter))
      if out is not None:
        return step, out["params"], out["opt_state"]
    return None

  def readable(self, step: int, params) -> bool:
    """Whether step's params load; an unreadable step is named (and set aside)."""
    return self._restore(step, self._items(params)) is not None

  def restore_params(self, params, step: int | None = None):
    """(step, params) from the given or newest loadable checkpoint."""
    have = self.steps()
    if step is not None and step not in have:
      raise CheckpointError(f"{self.directory} has no checkpoint at step {step} (it has "
                            f"{', '.join(map(str, have)) or 'none'}).")
    if not have:
      raise CheckpointError(f"No checkpoint in {self.directory}. Train first "
                            "(python -m launch.train --workdir=...).")
    tried = have if step is None else [step]
    for s in reversed(tried):
      out = self._restore(s, self._items(params))
      if out is not None:
        return s, out["params"]
    raise CheckpointError(
        f"No checkpoint in {self.directory} can be read (step "
        f"{', '.join(map(str, tried))}: see the warnings above). Rerunning the training "
        "command sets unreadable ones aside and resumes from the newest good one, or "
        "trains again from scratch.")

  def restore_opt_state(self, opt_state, step: int):
    """The optimizer state of a step whose params were read (what a bridged run's bridges
    ride in: sparse_gpt/bridge/training.py)."""
    out = self._restore(step, dict(opt_state=ocp.args.StandardRestore(_abstract(opt_state))))
    if out is None:
      raise CheckpointError(f"{self.directory}/{step}: its optimizer state cannot be read "
                            "(see the warning above).")
    return out["opt_state"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    with _quiet():  # closing the manager's event loop lets abandoned reads be collected
      self._manager.close()
