"""The one path layer: every file sparse_gpt writes or reads goes through here.

Paths are etils `epath` paths, what orbax itself uses, so a workdir may be local or on
any filesystem orbax accepts (`gs://...`). Writes are atomic (a temporary file, then a
rename): a process killed mid-write leaves the old file or the new one, never half of one.
"""

import os
import uuid

from etils import epath


def path(p: "str | os.PathLike") -> epath.Path:
  """Local paths made absolute (orbax refuses relative ones); `gs://` and the like as is."""
  p = os.fspath(p)
  if "://" in p:
    return epath.Path(p)
  return epath.Path(os.path.abspath(p))


def _temporary(f: epath.Path) -> epath.Path:
  # Unique per writer, so two processes never write into one temporary file.
  return f.parent / f".{f.name}.tmp-{uuid.uuid4().hex[:12]}"


def write_bytes(f: "str | os.PathLike", data: bytes) -> None:
  f = path(f)
  f.parent.mkdir(parents=True, exist_ok=True)
  tmp = _temporary(f)
  tmp.write_bytes(data)
  tmp.replace(f)  # replace, not rename: epath refuses to rename onto a file


def write_text(f: "str | os.PathLike", text: str) -> None:
  write_bytes(f, text.encode("utf-8"))
