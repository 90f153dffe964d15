"""The run configuration: its defaults (the schema) and its validation.

Every experiment starts from `defaults()` and overrides values; `validate` runs before
anything compiles, so a bad value fails fast with the name of its key.
"""

import math

import ml_collections
import numpy as np

from sparse_gpt import structure
from sparse_gpt.errors import ConfigError

# Node location types (structure.SITES), in the order the forward pass meets them.
LOCATIONS = tuple(site.name for site in structure.SITES)


def defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.corpus = "stdlib"  # "stdlib", a directory, a file, or a glob of text files
  c.data.vocab_size = 2048
  c.data.val_fraction = 0.05  # fraction of files held out, chosen by a hash of the path
  c.data.cache_dir = ""  # tokenized corpora are cached here; "" = ~/.cache/sparse_gpt

  c.model = ml_collections.ConfigDict()
  c.model.n_layer = 8
  c.model.d_model = 256
  c.model.n_head = 16
  c.model.d_head = 16
  c.model.d_mlp = 1024
  c.model.n_ctx = 256
  c.model.attn_sink = True
  c.model.pos_embedding = False  # learned absolute positions; off as in the paper
  c.model.bigram = False  # dense vocab x vocab table added to the logits
  c.model.afrac = 0.25  # AbsTopK keeps afrac * width activations per token
  c.model.abstopk_at = "all"  # "all", "none", or a comma list of LOCATIONS
  c.model.remat = False  # recompute each block's activations in the backward pass
  c.model.compute_dtype = "float32"  # "bfloat16": bf16 matmuls, fp32 master weights
  # The reference computes the exact (erf) GELU and RMSNorm with float32's machine
  # epsilon; with AbsTopK everywhere the tanh GELU and eps 1e-5 change which entries
  # survive. "tanh" and 1e-5 reproduce models trained before they were the defaults.
  c.model.gelu = "exact"  # "exact" (erf) or "tanh" (the approximation)
  c.model.norm_eps = float(np.finfo(np.float32).eps)  # 1.1920929e-07

  c.sparsity = ml_collections.ConfigDict()
  c.sparsity.enabled = True
  c.sparsity.target_density = 1 / 16  # hidden matrices
  c.sparsity.embed_density = 1 / 4  # embedding, unembedding and biases
  c.sparsity.sparse_biases = True
  c.sparsity.neuron_floor = 4  # each neuron/channel keeps at least this many weights
  c.sparsity.anneal_start = 0.01  # fractions of training; density is 1 before start
  c.sparsity.anneal_end = 0.5

  c.train = ml_collections.ConfigDict()
  c.train.steps = 2000
  c.train.batch_size = 32
  c.train.learning_rate = 1e-2
  c.train.warmup = 0.01  # fraction of steps
  c.train.beta1 = 0.9
  c.train.beta2 = 0.95
  c.train.eps = 0.1
  c.train.weight_decay = 0.1
  c.train.grad_rms_clip = 1.0  # the gradient's root-mean-square limit; 0 turns it off
  # "clip": scale down only above the limit (paper); "rescale": always scale to it
  # (released code). With eps = 0.1 and a small gradient, clipping alone makes Adam's
  # steps tiny: a gradient RMS of 5e-4 gives steps ~200x smaller than rescaling does.
  c.train.grad_rms_mode = "clip"
  c.train.log_every = 25
  c.train.eval_every = 250
  c.train.eval_batches = 8
  c.train.checkpoint_every = 250
  c.train.keep_checkpoints = 3

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: every device not used by the other axes
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  return c


def abstopk_locations(model_cfg) -> frozenset[str]:
  spec = model_cfg.abstopk_at.strip()
  if spec == "all":
    return frozenset(LOCATIONS)
  if spec in ("none", ""):
    return frozenset()
  return frozenset(s.strip() for s in spec.split(","))


def _check(ok: bool, key: str, value, why: str) -> None:
  if not ok:
    raise ConfigError(f"config.{key}={value!r}: {why}")


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad key; returns None for a good config."""
  m, s, t = c.model, c.sparsity, c.train
  for key in ("n_layer", "d_model", "n_head", "d_head", "d_mlp", "n_ctx"):
    _check(isinstance(m[key], int) and m[key] > 0, f"model.{key}", m[key],
           "must be a positive integer")
  _check(c.data.vocab_size >= 257, "data.vocab_size", c.data.vocab_size,
         "a byte-level BPE needs at least 257 tokens")
  _check(c.data.vocab_size < 2**16, "data.vocab_size", c.data.vocab_size,
         "tokens are stored as uint16; use fewer than 65536")
  _check(0 < c.data.val_fraction < 1, "data.val_fraction", c.data.val_fraction,
         "must be in (0, 1)")
  _check(0 < m.afrac <= 1, "model.afrac", m.afrac, "must be in (0, 1]")
  unknown = abstopk_locations(m) - set(LOCATIONS)
  _check(not unknown, "model.abstopk_at", m.abstopk_at,
         f"unknown location(s) {sorted(unknown)}; use 'all', 'none' or a comma list "
         f"of {', '.join(LOCATIONS)}")
  _check(m.compute_dtype in ("float32", "bfloat16"), "model.compute_dtype",
         m.compute_dtype, "must be 'float32' or 'bfloat16'")
  _check(m.gelu in ("exact", "tanh"), "model.gelu", m.gelu, "must be 'exact' or 'tanh'")
  _check(isinstance(m.norm_eps, float) and 0 < m.norm_eps < 1, "model.norm_eps",
         m.norm_eps, "must be a float in (0, 1)")
  for key in ("target_density", "embed_density"):
    _check(0 < s[key] <= 1, f"sparsity.{key}", s[key], "must be in (0, 1]")
  _check(0 <= s.anneal_start < s.anneal_end <= 1, "sparsity.anneal_end", s.anneal_end,
         f"need 0 <= anneal_start ({s.anneal_start}) < anneal_end <= 1")
  _check(isinstance(s.neuron_floor, int) and s.neuron_floor >= 0,
         "sparsity.neuron_floor", s.neuron_floor, "must be a non-negative integer")
  for key in ("steps", "batch_size", "log_every", "eval_every", "eval_batches",
              "checkpoint_every", "keep_checkpoints"):
    _check(isinstance(t[key], int) and t[key] > 0, f"train.{key}", t[key],
           "must be a positive integer")
  _check(t.learning_rate > 0 and math.isfinite(t.learning_rate), "train.learning_rate",
         t.learning_rate, "must be a positive number")
  _check(0 <= t.warmup < 1, "train.warmup", t.warmup, "must be in [0, 1)")
  _check(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "train.beta2", t.beta2,
         "betas must be in [0, 1)")
  _check(t.eps > 0, "train.eps", t.eps, "must be positive")
  _check(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "must be >= 0")
  _check(t.grad_rms_clip >= 0, "train.grad_rms_clip", t.grad_rms_clip,
         "must be >= 0 (0 turns clipping off)")
  _check(t.grad_rms_mode in ("clip", "rescale"), "train.grad_rms_mode", t.grad_rms_mode,
         "must be 'clip' or 'rescale'")
  for key in ("data", "fsdp", "tensor"):
    v = c.mesh[key]
    _check(isinstance(v, int) and (v > 0 or v == -1), f"mesh.{key}", v,
           "must be a positive integer or -1")
  _check([c.mesh[k] for k in ("data", "fsdp", "tensor")].count(-1) <= 1, "mesh", c.mesh,
         "at most one mesh axis may be -1")
