"""A released model's `beeg_config.json` (the reference's GPTConfig) as a sparse_gpt config.

Every key of GPTConfig is either mapped to a model option, checked to hold a value that
leaves the computation as sparse_gpt's, or known not to change it (a kernel choice, a
training-only switch). A key this module does not know, or a value it cannot reproduce,
is refused by name: an option silently dropped would give a different model.
"""

import math

import ml_collections

from sparse_gpt import config as config_lib
from sparse_gpt import structure
from sparse_gpt.errors import UserError

# AbsTopK locations of the reference (afrac_loctypes) -> sparse_gpt node sites.
_LOCATIONS = {"attn_in": "attn.in", "attn_q": "attn.q", "attn_k": "attn.k",
              "attn_v": "attn.v", "attn_out": "attn.out", "mlp_in": "mlp.in",
              "mlp_neuron": "mlp.neuron", "mlp_out": "mlp.out"}

# Keys that do not change what the model computes in eval mode: dropout is off at
# inference, flash and sparse kernels compute the same attention and matmuls, and the
# rest concern training or bookkeeping. `ln_bias` is read only for LayerNorm, refused below.
_NO_EFFECT = ("dropout", "debug_nans", "grad_checkpointing", "flash", "enable_sparse_kernels",
              "learnable_bigram_table", "tokenizer_name", "ln_bias")

# Keys whose every value but the one given changes the computation in a way sparse_gpt
# does not implement: (key, the supported value, what the other values would do).
_FIXED = (("rms_norm", True, "LayerNorm instead of RMSNorm"),
          ("residual_activation_type", "identity", "a ReLU on the residual stream"),
          ("d_pos_emb", None, "positions concatenated to the residual, not added"),
          ("dropout_cat_pos_emb", False, "positions concatenated to the residual"),
          ("sinusoidal_cat_pos_emb", False, "fixed sinusoidal concatenated positions"))

_MAPPED = ("block_size", "vocab_size", "n_layer", "n_head", "d_head", "d_model", "d_mlp",
           "n_mlp", "bias", "activation_type", "afrac", "afrac_loctypes", "tied_unembed",
           "enable_bigram_table", "sink")


class UnsupportedOption(UserError):
  """The released config uses an option that sparse_gpt cannot reproduce."""


def _fail(key: str, value, why: str):
  raise UnsupportedOption(f"beeg_config.json: {key}={value!r}: {why}")


def _positive_int(key: str, v) -> int:
  if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
    _fail(key, v, "must be a positive integer")
  return v


def _abstopk_at(released: dict, widths: dict[str, int]) -> tuple[float, str]:
  """(afrac, abstopk_at). The reference keys activation sparsity on afrac alone: with afrac
  null no location is sparsified, whatever afrac_loctypes lists."""
  afrac = released.get("afrac")
  if afrac is None:
    return config_lib.defaults().model.afrac, "none"
  if not (isinstance(afrac, (int, float)) and not isinstance(afrac, bool)
          and math.isfinite(afrac) and 0 < afrac <= 1):
    _fail("afrac", afrac, "must be null or a number in (0, 1]")
  spec = released.get("afrac_loctypes", "attn_in,attn_out,mlp_in,mlp_out")  # GPTConfig's
  if not isinstance(spec, str):
    _fail("afrac_loctypes", spec, "must be a comma-separated string")
  names = [s for s in spec.split(",") if s]
  unknown = [s for s in names if s not in _LOCATIONS]
  if unknown:
    _fail("afrac_loctypes", spec, f"location(s) {unknown} are not node sites of sparse_gpt "
          f"(it sparsifies {', '.join(_LOCATIONS)})")
  # The reference's k is int(afrac * width); sparse_gpt's is max(1, int(afrac * width)).
  # They differ only where afrac * width < 1: the reference zeroes that whole location.
  for s in names:
    if int(afrac * widths[_LOCATIONS[s]]) == 0:
      _fail("afrac", afrac, f"keeps no activation at {s} (width {widths[_LOCATIONS[s]]}); "
            "sparse_gpt keeps at least one")
  return float(afrac), ",".join(_LOCATIONS[s] for s in names) or "none"


def to_config(released: dict) -> ml_collections.ConfigDict:
  """The sparse_gpt config of a model built from `released` (GPTConfig as a dict)."""
  if not isinstance(released, dict):
    raise UserError("beeg_config.json must hold a JSON object (the GPTConfig fields).")
  unknown = sorted(set(released) - set(_NO_EFFECT) - {k for k, _, _ in _FIXED} - set(_MAPPED))
  if unknown:
    _fail(unknown[0], released[unknown[0]],
          "an option this importer does not know; it may change the computation, so the "
          "model is not imported (support it in sparse_gpt/importing/released_config.py)")
  for key, supported, effect in _FIXED:
    if key in released and released[key] != supported:
      _fail(key, released[key], f"{effect}; sparse_gpt supports only {supported!r}")
  if not released.get("rms_norm", False):  # GPTConfig's default is LayerNorm
    _fail("rms_norm", released.get("rms_norm", False),
          "LayerNorm instead of RMSNorm; sparse_gpt supports only True")
  if "d_mlp" in released and "n_mlp" in released:
    _fail("n_mlp", released["n_mlp"], "give d_mlp or its old name n_mlp, not both")
  activation = released.get("activation_type", "gelu")
  if activation not in ("gelu", "relu"):
    _fail("activation_type", activation, "sparse_gpt supports 'gelu' and 'relu'")
  booleans = {}
  for key, default in (("bias", True), ("tied_unembed", True), ("enable_bigram_table", False),
                       ("sink", False)):
    booleans[key] = released.get(key, default)  # GPTConfig's defaults
    if not isinstance(booleans[key], bool):
      _fail(key, booleans[key], "must be true or false")

  c = config_lib.defaults()
  m = c.model
  for key in ("n_layer", "d_model", "n_head"):
    m[key] = _positive_int(key, released.get(key))
  # GPTConfig.__post_init__'s defaults for d_head and d_mlp.
  d_head = released.get("d_head")
  m.d_head = _positive_int("d_head", m.d_model // m.n_head if d_head is None else d_head)
  d_mlp = released.get("d_mlp", released.get("n_mlp"))
  m.d_mlp = _positive_int("d_mlp", 4 * m.d_model if d_mlp is None else d_mlp)
  m.n_ctx = _positive_int("block_size", released.get("block_size"))
  c.data.vocab_size = _positive_int("vocab_size", released.get("vocab_size"))
  widths = {site.name: site.width(m) for site in structure.SITES}
  m.afrac, m.abstopk_at = _abstopk_at(released, widths)
  m.attn_sink = booleans["sink"]
  m.pos_embedding = True  # wpe is always added; trained, though initialised to zero
  m.bigram = booleans["enable_bigram_table"]
  m.activation = activation
  m.gelu = "exact"  # nn.GELU()
  m.norm_eps = config_lib.defaults().model.norm_eps  # nn.RMSNorm's eps=None
  m.bias = booleans["bias"]
  m.tied_unembed = booleans["tied_unembed"]
  m.logits_bias = True  # final_logits_bias, a buffer every checkpoint may hold
  return c
