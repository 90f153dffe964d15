"""What each parameter is, by its path: decides sparsity and weight decay.

Paths are dotted, as in checkpoints and circuit files: "blocks.3.attn.q.kernel". The kind
of each path is its entry in structure.PARAMS.
"""

import jax

from sparse_gpt.structure import BIAS, EMBED, HIDDEN, param


def path_name(path) -> str:
  """Dotted name of a tree path, skipping NNX's `.value` attribute."""
  parts = []
  for key in path:
    if isinstance(key, jax.tree_util.DictKey):
      parts.append(str(key.key))
    elif isinstance(key, jax.tree_util.SequenceKey):
      parts.append(str(key.idx))
    elif isinstance(key, jax.tree_util.GetAttrKey) and key.name != "value":
      parts.append(key.name)
  return ".".join(parts)


def kind_of(name: str, sparse_biases: bool) -> str:
  """HIDDEN, EMBED, BIAS (a bias left dense) or DENSE."""
  kind = param(name).kind
  return EMBED if kind == BIAS and sparse_biases else kind


def kinds(params, sparse_biases: bool):
  """A tree shaped like `params` whose leaves are each parameter's kind."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: kind_of(path_name(path), sparse_biases), params)


def decayed(params):
  """Weight-decay mask: matrices decay; biases, gains, sinks and the bigram do not."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: kind_of(path_name(path), False) in (HIDDEN, EMBED), params)
