"""Configs are validated before anything compiles; bad values name their key."""

import math
import re
import subprocess
import sys

import ml_collections
import pytest

from experiments import bridge, dense, paper, tiny
from sparse_gpt import config
from sparse_gpt.errors import ConfigError
from sparse_gpt.pruning import config as prune_config


@pytest.mark.parametrize("get", [tiny.get_config, dense.get_config, bridge.get_config,
                                 lambda: paper.get_config("1"),
                                 lambda: paper.get_config("4"),
                                 lambda: paper.get_config("16"), config.defaults])
def test_shipped_configs_are_valid(get):
  config.validate(get())


def test_pruning_defaults_are_valid():
  prune_config.validate(prune_config.defaults())


# Bad values of every leaf key of both schemas, by class: a wrong type (None is added to
# every key's list below) and, where the key has a range, values just outside it.
_NAN, _INF = math.nan, math.inf
_POSITIVE_INT = (0, -1, 2.5, True, "8")
_NON_NEGATIVE_INT = (-1, 2.5, True, "0")
_SEED = (-1, 2**32, 1.5, True, "0")
_BOOL = (0, 1, "True")
_UNIT_OPEN = (0, 1, -0.5, _NAN, "0.5")  # (0, 1)
_UNIT_HALF_OPEN = (0.0, 1.5, _NAN, _INF, "0.25", True)  # (0, 1]
_FRACTION = (-0.1, 1.0, _NAN, "0.9")  # [0, 1)
_POSITIVE = (0, -1e-3, _NAN, _INF, "1e-2", True)
_NON_NEGATIVE = (-1e-3, _NAN, _INF, "0.1", True)

CONFIG_BAD = {
    "seed": _SEED,
    "data.corpus": ("", "  ", 3),
    "data.vocab_size": (256, 2**16, 2048.0, True, "2048"),
    "data.val_fraction": _UNIT_OPEN,
    "data.cache_dir": (0, ("a",)),
    **{f"model.{k}": _POSITIVE_INT
       for k in ("n_layer", "d_model", "n_head", "d_head", "d_mlp", "n_ctx")},
    **{f"model.{k}": _BOOL for k in ("attn_sink", "pos_embedding", "bigram", "remat", "bias",
                                     "tied_unembed", "logits_bias")},
    "model.afrac": _UNIT_HALF_OPEN,
    "model.abstopk_at": ("attn.q,mlp.bogus", "attn.q,,mlp.in", 3, ("all",)),
    "model.compute_dtype": ("float16", 32),
    "model.gelu": ("erf", True),
    "model.activation": ("silu", "GELU", 0),
    "model.norm_eps": _UNIT_OPEN,
    "sparsity.enabled": _BOOL,
    "sparsity.target_density": _UNIT_HALF_OPEN,
    "sparsity.embed_density": _UNIT_HALF_OPEN,
    "sparsity.sparse_biases": _BOOL,
    "sparsity.neuron_floor": _NON_NEGATIVE_INT,
    "sparsity.anneal_start": (-0.1, 1.0, _NAN, "0"),
    "sparsity.anneal_end": (0.01, 0.001, 1.5, _NAN, "0.5"),  # the default start is 0.01
    **{f"train.{k}": _POSITIVE_INT
       for k in ("steps", "batch_size", "log_every", "eval_every", "eval_batches",
                 "checkpoint_every", "keep_checkpoints")},
    "train.learning_rate": _POSITIVE,
    "train.warmup": _FRACTION,
    "train.beta1": _FRACTION,
    "train.beta2": _FRACTION,
    "train.eps": _POSITIVE,
    "train.weight_decay": _NON_NEGATIVE,
    "train.grad_rms_clip": _NON_NEGATIVE,
    "train.grad_rms_mode": ("clipped", 1),
    **{f"mesh.{k}": (0, -2, 1.5, True, "1") for k in ("data", "fsdp", "tensor")},
}

PRUNE_BAD = {
    "k_coefs": ((), (-1e-4,), (_NAN,), (_INF,), ("1e-4",), (True,), 1e-4),
    "seeds": ((), (-1,), (2**32,), (1.5,), (True,), 0),
    **{k: _POSITIVE_INT
       for k in ("steps", "batch_pairs", "train_pairs", "validation_pairs", "heldout_pairs",
                 "mean_windows")},
    "budget_s": _NON_NEGATIVE,
    "partial_ablation": _FRACTION,
    "null_steps": _NON_NEGATIVE_INT,
    "calibration_steps": _NON_NEGATIVE_INT,
    "pair_seed": _SEED,
    **{k: _POSITIVE for k in ("learning_rate", "temperature", "grad_clip", "target_loss")},
    "beta1": _FRACTION,
    "beta2": _FRACTION,
    "weight_decay": _NON_NEGATIVE,
    "init_noise": _NON_NEGATIVE,
    "edge_coef": _NON_NEGATIVE,
    "sizing_z": _NON_NEGATIVE,
    "init_bias": (-1.0, 1.5, _NAN, "0.1"),
    "ablation": ("median", 0),
    **{k: _BOOL for k in ("tie_qk", "freeze_norms", "calibrate", "faithfulness",
                          "null_search")},
}

SCHEMAS = {"config": (config, CONFIG_BAD, "config."),
           "prune": (prune_config, PRUNE_BAD, "prune.")}


def _leaves(c: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for name, value in c.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys += _leaves(value, f"{prefix}{name}.")
    else:
      keys.append(prefix + name)
  return keys


def _with(c: ml_collections.ConfigDict, key: str, value) -> ml_collections.ConfigDict:
  """A copy of c with key set to value, past ConfigDict's type checks (as JSON can be)."""
  d = c.to_dict()
  *sections, name = key.split(".")
  inner = d
  for s in sections:
    inner = inner[s]
  inner[name] = value
  return ml_collections.ConfigDict(d)


@pytest.mark.parametrize("schema,key", [(s, k) for s, (lib, _, _) in SCHEMAS.items()
                                        for k in _leaves(lib.defaults())])
def test_every_key_rejects_bad_values_by_name(schema, key):
  lib, bad, prefix = SCHEMAS[schema]
  assert key in bad, (f"{prefix}{key} has no bad values in tests/test_config.py: check it "
                      f"in {lib.__name__}.validate() and add its bad values to the table")
  for value in (None, *bad[key]):
    with pytest.raises(ConfigError) as e:
      lib.validate(_with(lib.defaults(), key, value))
    assert str(e.value).startswith(f"{prefix}{key}={value!r}: "), (value, str(e.value))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_bad_value_tables_name_only_real_keys(schema):
  lib, bad, _ = SCHEMAS[schema]
  assert set(bad) == set(_leaves(lib.defaults()))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_unknown_missing_and_flattened_keys_are_rejected(schema):
  lib, _, prefix = SCHEMAS[schema]
  extra = lib.defaults()
  extra.widht = 3
  with pytest.raises(ConfigError, match=f"^{re.escape(prefix)}widht: unknown key"):
    lib.validate(extra)
  d = lib.defaults().to_dict()
  first = sorted(d)[0]
  del d[first]
  with pytest.raises(ConfigError, match=f"^{re.escape(prefix + first)} is missing"):
    lib.validate(ml_collections.ConfigDict(d))


# The bridge section is in a bridged run's config only (config.with_bridge).
BRIDGE_BAD = {
    "dense_workdir": ("", "  ", 3),
    "afrac": _UNIT_HALF_OPEN,
    "learning_rate": _POSITIVE,
    **{k: _NON_NEGATIVE for k in ("nmse_encode_weight", "nmse_decode_weight",
                                  "kl_sparse_weight", "kl_dense_weight")},
    "task": ("no_such_task", 3),
    "task_pairs": _POSITIVE_INT,
}


def _bridged() -> ml_collections.ConfigDict:
  c = config.with_bridge(config.defaults())
  c.bridge.dense_workdir = "runs/dense"
  return c


@pytest.mark.parametrize("key", _leaves(config.bridge_defaults()))
def test_every_bridge_key_rejects_bad_values_by_name(key):
  assert key in BRIDGE_BAD, f"config.bridge.{key} has no bad values in tests/test_config.py"
  config.validate(_bridged())
  for value in (None, *BRIDGE_BAD[key]):
    with pytest.raises(ConfigError) as e:
      config.validate(_with(_bridged(), f"bridge.{key}", value))
    assert str(e.value).startswith(f"config.bridge.{key}={value!r}: "), (value, str(e.value))


def test_the_bridge_table_names_only_real_keys():
  assert set(BRIDGE_BAD) == set(_leaves(config.bridge_defaults()))


def test_a_bridge_section_has_every_key_and_no_other():
  c = _bridged()
  c.bridge.widht = 3
  with pytest.raises(ConfigError, match=r"^config\.bridge\.widht: unknown key"):
    config.validate(c)
  c = _bridged()
  del c.bridge["afrac"]
  with pytest.raises(ConfigError, match=r"^config\.bridge\.afrac is missing"):
    config.validate(c)


def test_a_section_must_stay_a_section():
  with pytest.raises(ConfigError, match=r"^config\.model=3: must be a section"):
    config.validate(_with(config.defaults(), "model", 3))
  c = config.defaults()
  del c.model["gelu"]
  with pytest.raises(ConfigError, match=r"^config\.model\.gelu is missing"):
    config.validate(c)


def test_keys_that_constrain_each_other():
  c = _with(_with(config.defaults(), "mesh.data", 1), "mesh.fsdp", -1)
  config.validate(c)
  with pytest.raises(ConfigError, match=r"^config\.mesh=.*at most one mesh axis"):
    config.validate(_with(c, "mesh.tensor", -1))
  # 32 rows do not split over 3 x 2 devices; the size of a -1 axis is not known yet.
  c = _with(_with(config.defaults(), "mesh.data", 3), "mesh.fsdp", 2)
  with pytest.raises(ConfigError, match=r"^config\.train\.batch_size=32: .* = 6"):
    config.validate(c)
  config.validate(_with(c, "train.batch_size", 48))
  config.validate(_with(config.defaults(), "mesh.fsdp", 16))  # data stays -1
  p = prune_config.defaults()
  p.train_pairs = p.batch_pairs - 1
  with pytest.raises(ConfigError, match=r"^prune\.batch_pairs=16: must be at most "
                     r"prune\.train_pairs=15"):
    prune_config.validate(p)
  p.batch_pairs = p.train_pairs
  prune_config.validate(p)


@pytest.mark.parametrize("key,value,message", [
    ("model.afrac", 0.0, "model.afrac"),
    ("model.abstopk_at", "attn.q,mlp.bogus", "mlp.bogus"),
    ("sparsity.target_density", 1.5, "sparsity.target_density"),
    ("sparsity.anneal_end", 0.001, "anneal_start"),
    ("train.steps", 0, "train.steps"),
    ("model.compute_dtype", "float16", "model.compute_dtype"),
    ("data.vocab_size", 100, "data.vocab_size"),
    ("mesh.fsdp", 0, "mesh.fsdp"),
])
def test_bad_values_are_rejected_with_their_key(key, value, message):
  c = tiny.get_config()
  section, name = key.split(".")
  c[section][name] = value
  with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
    config.validate(c)


def test_paper_densities_follow_the_released_code():
  c = paper.get_config("4")
  assert c.sparsity.target_density == 1 / 64 and c.sparsity.embed_density == 1 / 16
  assert c.model.d_model == 1024 and c.model.n_head * c.model.d_head == 1024


def _train_cli(*args):
  return subprocess.run([sys.executable, "-m", "launch.train", *args],
                        capture_output=True, text=True, timeout=120)


def test_cli_reports_a_bad_value_in_one_line(tmp_path):
  out = _train_cli("--config=experiments/tiny.py", f"--workdir={tmp_path}",
                   "--config.model.afrac=2.0")
  assert out.returncode != 0
  assert "error: config.model.afrac=2.0: must be in (0, 1]" in out.stderr
  assert "Traceback" not in out.stderr


def test_cli_rejects_an_unknown_key(tmp_path):
  out = _train_cli("--config=experiments/tiny.py", f"--workdir={tmp_path}",
                   "--config.model.widht=3")
  assert out.returncode != 0 and "widht" in out.stderr
