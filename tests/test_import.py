"""Importing released PyTorch checkpoints reproduces the reference model's computation.

The reference fixtures (beeg_config.json + final_model.pt, tokens, the logits and hook
activations the reference PyTorch code computed) live outside the repository, in
../shared/fixtures/reference_gpt beside the clone, or where $SPARSE_GPT_FIXTURES says;
their README lists the numerical choices each one pins down.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import sparse_gpt
from sparse_gpt.errors import UserError
from sparse_gpt.importing import params as params_lib
from sparse_gpt.importing import released_config
from sparse_gpt.importing import torch_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(os.environ.get("SPARSE_GPT_FIXTURES",
                                       ROOT.parent / "shared" / "fixtures")) / "reference_gpt"
VARIANTS = ("gelu_bigram_abstopk", "sink_dense_acts", "weight_sparse")
# Our node location -> the reference's hook name (its hook_utils), in layer i.
HOOKS = {"attn.in": "attn.act_in", "attn.q": "attn.q", "attn.k": "attn.k", "attn.v": "attn.v",
         "attn.out": "attn.resid_delta", "mlp.in": "mlp.act_in", "mlp.neuron": "mlp.post_act",
         "mlp.out": "mlp.resid_delta"}

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"no reference fixtures at {FIXTURES} (set "
    "SPARSE_GPT_FIXTURES to the directory holding reference_gpt/)")


def _torch():
  return pytest.importorskip("torch", reason="needs the torch extra: pip install -e '.[torch]'")


@needs_fixtures
@pytest.mark.parametrize("variant", VARIANTS)
def test_imported_fixture_reproduces_the_reference(variant, tmp_path):
  _torch()
  src = FIXTURES / variant
  torch_checkpoint.import_checkpoint(str(src), str(tmp_path / "run"))
  run = sparse_gpt.load_run(str(tmp_path / "run"))
  assert run.tokenizer is None and run.step == 0
  tokens = np.load(src / "tokens.npy")
  np.testing.assert_allclose(run.logits(tokens), np.load(src / "logits.npy"), rtol=0,
                             atol=1e-4)
  reference = np.load(src / "acts.npz")
  ours = run.activations(tokens, "all")
  assert len(ours) == 16
  for name, x in ours.items():
    layer, site = name.split(".", 1)
    np.testing.assert_allclose(x, reference[f"{layer}.{HOOKS[site]}"], rtol=0, atol=1e-4,
                               err_msg=name)


def _reference_layout(cfg: dict, seed: int = 0) -> dict[str, np.ndarray]:
  """A random state_dict laid out as the reference's GPT(cfg) saves it."""
  rng = np.random.default_rng(seed)
  d, v, hk, f = cfg["d_model"], cfg["vocab_size"], cfg["n_head"] * cfg["d_head"], cfg["d_mlp"]
  shapes = {"final_logits_bias": (v,), "transformer.wte.weight": (v, d),
            "transformer.wpe.weight": (cfg["block_size"], d), "transformer.ln_f.weight": (d,),
            "lm_head.weight": (v, d)}
  for i in range(cfg["n_layer"]):
    h = f"transformer.h.{i}"
    shapes |= {f"{h}.ln_1.weight": (d,), f"{h}.ln_2.weight": (d,),
               f"{h}.attn.c_attn.weight": (3 * hk, d), f"{h}.attn.c_proj.weight": (d, hk),
               f"{h}.mlp.c_fc.weight": (f, d), f"{h}.mlp.c_proj.weight": (d, f)}
    if cfg["bias"]:
      shapes |= {f"{h}.attn.c_attn.bias": (3 * hk,), f"{h}.attn.c_proj.bias": (d,),
                 f"{h}.mlp.c_fc.bias": (f,), f"{h}.mlp.c_proj.bias": (d,)}
  sd = {k: rng.normal(0, 0.3, s).astype(np.float32) for k, s in shapes.items()}
  if cfg["tied_unembed"]:
    sd["lm_head.weight"] = sd["transformer.wte.weight"]
  return sd


_SMALL = dict(block_size=8, vocab_size=40, n_layer=1, n_head=2, d_head=4, d_model=8, d_mlp=16,
              bias=True, rms_norm=True, activation_type="gelu", afrac=None,
              tied_unembed=False, enable_bigram_table=False, sink=False)


def _logits(released: dict, sd: dict) -> np.ndarray:
  from sparse_gpt import model  # pylint: disable=g-import-not-at-top
  cfg = released_config.to_config(released)
  graphdef, params = params_lib.to_params(cfg, sd)
  tokens = np.arange(16, dtype=np.int32).reshape(2, 8) % released["vocab_size"]
  return np.asarray(model.forward(graphdef, params, tokens)[0])


def test_tied_unembedding_reads_the_embedding():
  tied = _SMALL | dict(tied_unembed=True)
  sd = _reference_layout(tied)
  untied = _logits(_SMALL, sd)  # lm_head.weight is a copy of wte here
  np.testing.assert_array_equal(_logits(tied, sd), untied)
  sd["lm_head.weight"] = sd["lm_head.weight"] + 1
  with pytest.raises(params_lib.StateDictMismatch, match="lm_head.weight differs"):
    _logits(tied, sd)


def test_without_biases_is_with_zero_biases():
  sd = _reference_layout(_SMALL | dict(bias=False))
  zero = dict(sd)
  for k, x in _reference_layout(_SMALL).items():
    zero.setdefault(k, np.zeros_like(x))
  np.testing.assert_allclose(_logits(_SMALL | dict(bias=False), sd), _logits(_SMALL, zero),
                             rtol=0, atol=1e-6)


def test_relu_differs_from_gelu():
  sd = _reference_layout(_SMALL)
  gelu, relu = _logits(_SMALL, sd), _logits(_SMALL | dict(activation_type="relu"), sd)
  assert np.abs(gelu - relu).max() > 1e-3


@pytest.mark.parametrize("key,value", [
    ("rms_norm", False), ("residual_activation_type", "relu"), ("d_pos_emb", 16),
    ("sinusoidal_cat_pos_emb", True), ("activation_type", "swiglu"),
    ("afrac_loctypes", "attn_in,resid_post_mlp"), ("afrac", 0.1), ("brand_new_option", 1)])
def test_an_unsupported_option_is_refused_by_name(key, value):
  released = _SMALL | dict(afrac=0.25) | {key: value}
  with pytest.raises(released_config.UnsupportedOption, match=f"{key}={value!r}"):
    released_config.to_config(released)


def test_options_without_effect_are_accepted_and_afrac_null_means_dense():
  released = _SMALL | dict(flash=False, dropout=0.1, enable_sparse_kernels=True,
                           afrac_loctypes="attn_in,mlp_out")
  m = released_config.to_config(released).model
  assert m.abstopk_at == "none"
  m = released_config.to_config(released | dict(afrac=0.5)).model
  assert (m.abstopk_at, m.afrac) == ("attn.in,mlp.out", 0.5)


def _write_checkpoint(directory: pathlib.Path, released: dict, sd: dict) -> str:
  torch = _torch()
  directory.mkdir()
  (directory / "beeg_config.json").write_text(json.dumps(released))
  torch.save({k: torch.from_numpy(np.array(x)) for k, x in sd.items()},
             directory / "final_model.pt")
  return str(directory)


@pytest.mark.parametrize("change,message", [
    (lambda sd: sd.pop("transformer.h.0.mlp.c_fc.bias"), "has no 'transformer.h.0.mlp.c_fc.bias'"),
    (lambda sd: sd.update({"transformer.h.0.attn.c_attn.weight": np.zeros((24, 9), np.float32)}),
     r"c_attn.weight has shape \[24, 9\]"),
    (lambda sd: sd.update({"transformer.h.0.attn.c_attn.weight": np.zeros((23, 8), np.float32)}),
     r"c_attn.weight has shape \[23, 8\]"),
    (lambda sd: sd.update({"transformer.h.1.ln_1.weight": np.ones(8, np.float32)}),
     "unexpected"),
])
def test_a_state_dict_that_does_not_fit_is_refused_before_any_file(tmp_path, change, message):
  sd = _reference_layout(_SMALL)
  change(sd)
  checkpoint = _write_checkpoint(tmp_path / "ckpt", _SMALL, sd)
  with pytest.raises(params_lib.StateDictMismatch, match=message):
    torch_checkpoint.import_checkpoint(checkpoint, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_the_launcher_imports_and_then_refuses_an_occupied_workdir(tmp_path):
  checkpoint = _write_checkpoint(tmp_path / "ckpt", _SMALL, _reference_layout(_SMALL))
  launch = lambda: subprocess.run(
      [sys.executable, "-m", "launch.import_torch", f"--checkpoint={checkpoint}",
       f"--workdir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True,
      env=os.environ | {"JAX_PLATFORMS": "cpu"})
  first = launch()
  assert first.returncode == 0, first.stderr
  assert "Imported" in first.stdout
  run = sparse_gpt.load_run(str(tmp_path / "run"))
  assert run.config.model.n_ctx == 8 and run.logits([[1, 2, 3]]).shape == (1, 3, 40)
  with pytest.raises(UserError, match="no tokenizer"):
    run.logits(["text"])
  second = launch()
  assert second.returncode != 0
  assert second.stderr.strip().splitlines() == [
      f"error: {tmp_path / 'run'} already holds a run; import into a new --workdir."]


def test_training_on_an_imported_workdir_is_refused_and_its_checkpoint_kept(tmp_path):
  from sparse_gpt import train  # pylint: disable=g-import-not-at-top
  checkpoint = _write_checkpoint(tmp_path / "ckpt", _SMALL, _reference_layout(_SMALL))
  workdir = tmp_path / "run"
  torch_checkpoint.import_checkpoint(checkpoint, str(workdir))
  before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  cfg = sparse_gpt.load_run(str(workdir)).config
  with pytest.raises(UserError, match="imported model"):
    train.train(cfg, str(workdir))
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before
