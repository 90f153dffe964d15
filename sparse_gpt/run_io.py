"""Loading a trained run back from its workdir, for tasks, pruning, reports and notebooks.

`Run.logits` and `Run.activations` are the notebook API (docs/api.md): they take token
ids or strings, check them, and return numpy arrays.
"""

from collections.abc import Sequence
import dataclasses

from flax import nnx
import jax
import ml_collections
import numpy as np
import tokenizers

from sparse_gpt import checkpoints
from sparse_gpt import config as config_lib
from sparse_gpt import model
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import UserError


@dataclasses.dataclass(frozen=True)
class Run:
  workdir: str
  config: ml_collections.ConfigDict
  tokenizer: tokenizers.Tokenizer | None  # None: an imported model without one
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int

  def forward(self, params, tokens_BxL, edits=None, record=(), positions_B=None):
    """model.forward with this run's graph: (logits_BxLxV or logits_BxV, recorded)."""
    return model.forward(self.graphdef, params, tokens_BxL, edits, record, positions_B)

  @property
  def node_names(self) -> tuple[str, ...]:
    """Every node location's name in forward order: "0.attn.in", "0.attn.q", ..."""
    return tuple(f"{layer}.{kind}" for layer in range(self.config.model.n_layer)
                 for kind in config_lib.LOCATIONS)

  def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens_BxL int32, lengths_B): the texts encoded, right-padded to the longest.

    The padding is the end-of-text token. Attention is causal, so a text's positions
    0..length-1 compute as if it were alone; positions from its length on are padding.
    """
    if self.tokenizer is None:
      raise UserError(f"{self.workdir} has no tokenizer: pass token ids, or import the "
                      "model again with --tokenizer=FILE.tiktoken.")
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
      raise UserError("encode takes a list of strings, e.g. run.encode([text]).")
    if not texts:
      raise UserError("no texts given: pass a list of at least one string.")
    ids = [self.tokenizer.encode(t).ids for t in texts]
    n_ctx = self.config.model.n_ctx
    for row, row_ids in enumerate(ids):
      if not row_ids:
        raise UserError(f"text {row} is empty; give each text at least one character.")
      if len(row_ids) > n_ctx:
        raise UserError(f"text {row} is {len(row_ids)} tokens long; this model reads at "
                        f"most n_ctx={n_ctx}. Shorten it or split it.")
    lengths_B = np.array([len(row_ids) for row_ids in ids], np.int32)
    tokens_BxL = np.full((len(ids), lengths_B.max()),
                         tokenizer_lib.end_of_text_id(self.tokenizer), np.int32)
    for row, row_ids in enumerate(ids):
      tokens_BxL[row, :len(row_ids)] = row_ids
    return tokens_BxL, lengths_B

  def _token_ids(self, tokens_BxL) -> np.ndarray:
    """int32 [B, L] token ids from ids (numpy, jax or nested lists) or a list of strings.

    Strings are encoded as by `encode` (right-padded with the end-of-text token). Ids
    outside the vocabulary, sequences longer than n_ctx, and anything that is not a
    [batch, length] integer array are a UserError.
    """
    if isinstance(tokens_BxL, str):
      raise UserError("give a batch: a list of strings ([text]) or token ids of shape "
                      "[batch, length].")
    if isinstance(tokens_BxL, (list, tuple)) and tokens_BxL and all(
        isinstance(t, str) for t in tokens_BxL):
      return self.encode(tokens_BxL)[0]
    try:
      ids = np.asarray(tokens_BxL)
    except ValueError:  # ragged nested lists
      raise UserError("token ids must form a [batch, length] array; pad the rows to one "
                      "length, or pass the texts as a list of strings.") from None
    if ids.dtype.kind not in "iu" or ids.ndim != 2 or 0 in ids.shape:
      hint = " For one sequence use ids[None]." if ids.ndim == 1 else ""
      raise UserError(f"token ids must be a non-empty integer array of shape [batch, "
                      f"length]; got dtype {ids.dtype}, shape {ids.shape}.{hint}")
    n_ctx, vocab = self.config.model.n_ctx, self.config.data.vocab_size
    if ids.shape[1] > n_ctx:
      raise UserError(f"sequences are {ids.shape[1]} tokens long; this model reads at "
                      f"most n_ctx={n_ctx}. Cut them to tokens[:, :{n_ctx}].")
    bad = np.argwhere((ids < 0) | (ids >= vocab))
    if bad.size:
      row, col = bad[0]
      raise UserError(f"token id {ids[row, col]} at [{row}, {col}] is outside the "
                      f"vocabulary 0..{vocab - 1} ({len(bad)} such ids).")
    return ids.astype(np.int32)

  def logits(self, tokens_BxL) -> np.ndarray:
    """float32 logits [B, L, V] of the full model at every position.

    `tokens_BxL`: integer ids [B, L] (numpy, jax or nested lists), or a list of strings,
    encoded and right-padded as by `encode`.
    """
    logits_BxLxV, _ = self.forward(self.params, self._token_ids(tokens_BxL))
    return np.asarray(logits_BxLxV, np.float32)

  def activations(self, tokens_BxL, names: str | Sequence[str]) -> dict[str, np.ndarray]:
    """{node location name: float32 activation [B, L, N]} as the model computes it.

    `tokens_BxL` as for `logits`. `names`: "all", one name, or a list of names from
    `node_names` ("0.attn.q", "1.mlp.neuron", ...). A value is what the location passes
    on, after AbsTopK where the model applies it (model.py's docstring lists each
    location and its width N).
    """
    if names == "all":
      record = "all"
    else:
      record = (names,) if isinstance(names, str) else tuple(names)
      unknown = [n for n in record if n not in self.node_names]
      if unknown or not record:
        raise UserError(
            f"unknown node name(s) {unknown or '(none given)'}: a name is "
            f"'<layer>.<location>' with layer 0..{self.config.model.n_layer - 1} and "
            f"location one of {', '.join(config_lib.LOCATIONS)} (e.g. '0.attn.q'), "
            "or ask for 'all'.")
    _, recorded = self.forward(self.params, self._token_ids(tokens_BxL), record=record)
    order = self.node_names if record == "all" else record
    return {name: np.asarray(recorded[name], np.float32) for name in order}


def load_run(workdir: str, step: int | None = None) -> Run:
  """The run's config, tokenizer and parameters (newest readable checkpoint by default).

  The run's `.step` is the step whose parameters were loaded: what every tool reports.
  """
  cfg = workdir_lib.load_config(workdir)
  wd = workdir_lib.path(workdir)
  # An imported model may come without its tokenizer: ids in, logits out still work.
  imported_bare = ((wd / workdir_lib.IMPORTED_FILE).exists()
                   and not (wd / "tokenizer.json").exists())
  tok = None if imported_bare else tokenizer_lib.load(wd / "tokenizer.json")
  graphdef, abstract_params = model.abstract(cfg)
  ckpts = checkpoints.Checkpoints(wd / "checkpoints", read_only=True)
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        abstract_params)
  try:
    step, params = ckpts.restore_params(target, step)
  finally:
    ckpts.close()
  return Run(workdir, cfg, tok, graphdef, params, step)
