"""Finding the corpus files, splitting them, and reading them as text.

The default corpus is the Python standard library of the running interpreter, which
every machine has. The train/validation split is by file and decided by a hash of each
file's relative path, so it is the same on every machine and stable when files are
added.
"""

import dataclasses
import glob
import hashlib
import itertools
import os
import pathlib
import sysconfig

from sparse_gpt.errors import DataError

_SKIP_DIRS = ("site-packages", "dist-packages", "__pycache__")


@dataclasses.dataclass(frozen=True)
class CorpusFiles:
  root: pathlib.Path
  train: tuple[pathlib.Path, ...]
  val: tuple[pathlib.Path, ...]


def find_files(corpus: str) -> tuple[pathlib.Path, list[pathlib.Path]]:
  """Returns (root, sorted files) for "stdlib", a directory, a file or a glob."""
  if corpus == "stdlib":
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py")
             if not set(p.relative_to(root).parts) & set(_SKIP_DIRS)]
  elif any(ch in corpus for ch in "*?["):
    pattern = os.path.expanduser(corpus)
    files = [pathlib.Path(p) for p in glob.glob(pattern, recursive=True)]
    files = [p for p in files if p.is_file()]
    root = pathlib.Path(_glob_root(pattern))
  else:
    root = pathlib.Path(corpus).expanduser()
    if not root.exists():
      raise DataError(f"data.corpus={corpus!r} does not exist. Give a directory, a file, "
                      "a glob such as 'src/**/*.py', or 'stdlib'.")
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    root = root.parent if root.is_file() else root
  files = sorted(p for p in files if not set(p.parts) & {"__pycache__", ".git"})
  if not files:
    raise DataError(f"data.corpus={corpus!r} matches no files. Give a directory or a file "
                    "of text, a glob that matches some (such as 'src/**/*.py'), or "
                    "'stdlib'.")
  return root, files


def _glob_root(pattern: str) -> str:
  """The directory part of a glob before its first wildcard."""
  fixed = itertools.takewhile(lambda part: not any(ch in part for ch in "*?["),
                              pathlib.Path(pattern).parts)
  return str(pathlib.Path(*fixed))


def is_val(relative_path: str, val_fraction: float) -> bool:
  digest = hashlib.sha256(relative_path.encode()).digest()
  return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def split(corpus: str, val_fraction: float) -> CorpusFiles:
  root, files = find_files(corpus)
  val = tuple(p for p in files if is_val(str(p.relative_to(root)), val_fraction))
  train = tuple(p for p in files if p not in set(val))
  if not train or not val:
    raise DataError(f"data.corpus={corpus!r} has {len(files)} file(s): too few to hold "
                    f"out a validation split of {val_fraction:.0%} by file. Add files "
                    "to the corpus or change data.val_fraction.")
  return CorpusFiles(root, train, val)


def read_text(path: pathlib.Path) -> str | None:
  """The file's text, or None for a binary or non-UTF-8 file."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"Cannot read the corpus file {path}: {e.strerror}. Make it readable "
                    "or leave it out of data.corpus.") from None
  if b"\0" in raw:
    return None
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    return None
