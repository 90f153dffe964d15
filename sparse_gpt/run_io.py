"""Loading a trained run back from its workdir, for tasks, pruning and reports."""

import dataclasses

from flax import nnx
import jax
import ml_collections
import tokenizers

from sparse_gpt import checkpoints
from sparse_gpt import model
from sparse_gpt import tokenizer as tokenizer_lib
from sparse_gpt import workdir as workdir_lib
from sparse_gpt.errors import CheckpointError


@dataclasses.dataclass(frozen=True)
class Run:
  workdir: str
  config: ml_collections.ConfigDict
  tokenizer: tokenizers.Tokenizer
  graphdef: nnx.GraphDef
  params: nnx.State
  step: int

  def forward(self, params, tokens_BxL, edits=None, record=(), positions_B=None):
    """model.forward with this run's graph: (logits_BxLxV or logits_BxV, recorded)."""
    return model.forward(self.graphdef, params, tokens_BxL, edits, record, positions_B)


def load_run(workdir: str, step: int | None = None) -> Run:
  """The run's config, tokenizer and parameters (newest readable checkpoint by default).

  The run's `.step` is the step whose parameters were loaded: what every tool reports.
  """
  cfg = workdir_lib.load_config(workdir)
  wd = workdir_lib.path(workdir)
  try:
    tok = tokenizer_lib.load(wd / "tokenizer.json")
  except Exception as e:  # missing, or not a tokenizer: the file itself is the problem
    raise CheckpointError(f"{wd / 'tokenizer.json'} cannot be read ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}). It is the BPE the "
                          "run was trained with: restore it from a copy.") from None
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
