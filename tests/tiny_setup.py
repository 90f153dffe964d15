"""A tiny corpus and config that train in seconds, shared by the training tests."""

import pathlib
import sysconfig

from sparse_gpt import config


def write_corpus(directory: pathlib.Path) -> pathlib.Path:
  """A few dozen real Python files (the stdlib's json and email packages), and one
  binary and one Latin-1 file that the reader must skip."""
  stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
  for package in ("json", "email"):
    for src in sorted((stdlib / package).glob("*.py")):
      dst = directory / package / src.name
      dst.parent.mkdir(parents=True, exist_ok=True)
      dst.write_text(src.read_text())
  (directory / "blob.bin").write_bytes(b"\x00\x01\x02binary")
  (directory / "latin1.py").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
  return directory


def model_config(vocab_size: int = 300, **model):
  """The default config with these model sizes: for tests that build a model, not a run."""
  c = config.defaults()
  c.model.update(**model)
  c.data.vocab_size = vocab_size
  return c


def tiny_config(corpus: pathlib.Path, cache: pathlib.Path, **train):
  c = model_config(320, n_layer=1, d_model=32, n_head=2, d_head=16, d_mlp=64, n_ctx=32)
  c.data.corpus = str(corpus)
  c.data.cache_dir = str(cache)
  c.data.val_fraction = 0.2
  c.sparsity.update(target_density=0.25, embed_density=0.5, anneal_start=0.0,
                    anneal_end=0.5)
  c.train.update(steps=8, batch_size=4, log_every=1, eval_every=4, eval_batches=2,
                 checkpoint_every=4, learning_rate=1e-2)
  c.train.update(**train)
  return c
