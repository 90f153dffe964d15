"""The run configuration: its defaults (the schema) and its validation.

Every experiment starts from `defaults()` and overrides values; `validate` runs before
anything compiles, so a bad value fails fast with the name of its key.
"""

import math

import ml_collections
import numpy as np

from sparse_gpt import config_checks
from sparse_gpt import structure
from sparse_gpt.tasks import registry

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
  # Options of the released checkpoints (docs/import.md); the defaults are our own models.
  c.model.activation = "gelu"  # the MLP's nonlinearity: "gelu" (as model.gelu says) or "relu"
  c.model.bias = True  # biases on the attention and MLP projections
  c.model.tied_unembed = False  # logits read the embedding matrix; no unembed kernel
  c.model.logits_bias = False  # a learned [vocab] bias added to the logits

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


def bridge_defaults() -> ml_collections.ConfigDict:
  """The `bridge` section, present only in a bridged run (docs/bridges.md)."""
  b = ml_collections.ConfigDict()
  b.dense_workdir = ""  # the trained dense run to explain; it stays frozen
  b.afrac = 0.25  # the encoder's AbsTopK keeps afrac * sparse d_model entries; 1: off
  # Adam's peak rate for the bridges (warmup and decay as train). On the CPU demo pair,
  # 1e-2 against 1e-3: mean NMSE 0.11 / 0.17 (encode / decode) against 0.60 / 0.34
  # after 1000 steps (docs/bridges.md).
  b.learning_rate = 1e-2
  # Loss weights, each term averaged over the residual sites.
  b.nmse_encode_weight = 1.0  # NMSE(encoder(dense residual), sparse residual)
  b.nmse_decode_weight = 1.0  # NMSE(decoder(sparse residual), dense residual)
  b.kl_sparse_weight = 1.0  # KL(dense logits || sparse model run on the encoded residual)
  b.kl_dense_weight = 1.0  # KL(dense logits || dense model run on the decoded residual)
  b.task = "single_double_quote"  # the summary's bridged task accuracy
  b.task_pairs = 64  # held-out pairs of that task
  return b


def with_bridge(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `c` with the bridge section's defaults added."""
  c = ml_collections.ConfigDict(c.to_dict())
  c.bridge = bridge_defaults()
  return c


def bridged(c: ml_collections.ConfigDict) -> bool:
  return "bridge" in c


def abstopk_locations(model_cfg) -> frozenset[str]:
  spec = model_cfg.abstopk_at.strip()
  if spec == "all":
    return frozenset(LOCATIONS)
  if spec in ("none", ""):
    return frozenset()
  return frozenset(s.strip() for s in spec.split(","))


def validate(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad key; returns None for a good config."""
  v = config_checks.Checks(c, "config.")
  v.same_keys(with_bridge(defaults()) if bridged(c) else defaults())
  v.seed("seed")

  v.string("data.corpus", empty_ok=False,
           hint=": 'stdlib', a directory, a file, or a glob of text files")
  v.integer("data.vocab_size", 257, 2**16 - 1,
            hint=" (a byte-level BPE needs at least 257 tokens; tokens are stored as uint16)")
  v.number("data.val_fraction", 0, 1, open_low=True, open_high=True)
  v.string("data.cache_dir", empty_ok=True, hint=" ('' caches in ~/.cache/sparse_gpt)")

  for key in ("n_layer", "d_model", "n_head", "d_head", "d_mlp", "n_ctx"):
    v.integer(f"model.{key}")
  for key in ("attn_sink", "pos_embedding", "bigram", "remat", "bias", "tied_unembed",
              "logits_bias"):
    v.boolean(f"model.{key}")
  # The model's k = max(1, int(afrac * width)), so no afrac leaves a location empty.
  v.number("model.afrac", 0, 1, open_low=True)
  v.string("model.abstopk_at", empty_ok=True)
  unknown = abstopk_locations(c.model) - set(LOCATIONS)
  if unknown:
    v.fail("model.abstopk_at", c.model.abstopk_at,
           f"unknown location(s) {sorted(unknown)}; use 'all', 'none' or a comma list "
           f"of {', '.join(LOCATIONS)}")
  v.choice("model.compute_dtype", ("float32", "bfloat16"))
  v.choice("model.gelu", ("exact", "tanh"))
  v.choice("model.activation", ("gelu", "relu"))
  v.number("model.norm_eps", 0, 1, open_low=True, open_high=True)

  v.boolean("sparsity.enabled")
  for key in ("target_density", "embed_density"):
    v.number(f"sparsity.{key}", 0, 1, open_low=True)
  v.boolean("sparsity.sparse_biases")
  v.integer("sparsity.neuron_floor", 0)
  start = v.number("sparsity.anneal_start", 0, 1, open_high=True)
  v.number("sparsity.anneal_end", start, 1, open_low=True,
           hint=": the anneal must end after sparsity.anneal_start")

  for key in ("steps", "batch_size", "log_every", "eval_every", "eval_batches",
              "checkpoint_every", "keep_checkpoints"):
    v.integer(f"train.{key}")
  v.number("train.learning_rate", 0, open_low=True)
  v.number("train.warmup", 0, 1, open_high=True, hint=" (a fraction of train.steps)")
  for key in ("beta1", "beta2"):
    v.number(f"train.{key}", 0, 1, open_high=True)
  v.number("train.eps", 0, open_low=True)
  v.number("train.weight_decay", 0)
  v.number("train.grad_rms_clip", 0, hint=" (0 turns clipping off)")
  v.choice("train.grad_rms_mode", ("clip", "rescale"))

  for key in ("data", "fsdp", "tensor"):
    size = v.value(f"mesh.{key}")
    if not (config_checks.is_integer(size) and (size > 0 or size == -1)):
      v.fail(f"mesh.{key}", size, "must be a positive integer or -1")
  sizes = {k: c.mesh[k] for k in ("data", "fsdp", "tensor")}
  if list(sizes.values()).count(-1) > 1:
    v.fail("mesh", sizes, "at most one mesh axis may be -1")
  # The batch is split over the data and fsdp axes; the size of a -1 axis is only known
  # once the devices are, so this checks the fixed part.
  split = math.prod(sizes[k] for k in ("data", "fsdp") if sizes[k] != -1)
  if c.train.batch_size % split:
    v.fail("train.batch_size", c.train.batch_size,
           f"must divide by the mesh's batch axes, mesh.data x mesh.fsdp = {split}")
  if bridged(c):
    _validate_bridge(v)


def _validate_bridge(v: config_checks.Checks) -> None:
  v.string("bridge.dense_workdir", empty_ok=False,
           hint=": the dense run to explain, e.g. --config.bridge.dense_workdir=runs/dense")
  v.number("bridge.afrac", 0, 1, open_low=True, hint=" (1 keeps every entry: AbsTopK off)")
  v.number("bridge.learning_rate", 0, open_low=True)
  for key in ("nmse_encode_weight", "nmse_decode_weight", "kl_sparse_weight",
              "kl_dense_weight"):
    v.number(f"bridge.{key}", 0)
  v.choice("bridge.task", tuple(registry.names()))
  v.integer("bridge.task_pairs")
