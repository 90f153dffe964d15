"""The path layer: absolute local paths, remote paths untouched, atomic writes."""

import os

from sparse_gpt import storage


def test_local_paths_become_absolute_and_remote_ones_stay(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert str(storage.path("runs/x")) == os.path.join(str(tmp_path), "runs", "x")
  assert str(storage.path("gs://bucket/run")) == "gs://bucket/run"


def test_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
  f = tmp_path / "deep" / "summary.json"
  storage.write_text(f, "first")
  storage.write_text(f, "second")
  assert f.read_text() == "second"
  assert sorted(p.name for p in f.parent.iterdir()) == ["summary.json"]
