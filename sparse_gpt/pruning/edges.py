"""A circuit's edges: the nonzero weights joining two kept nodes (docs/method.md section 8).

The kernels that join two sites, and which sites, are structure.KERNELS (tabled in
docs/circuit_schema.md); kernels are [in, out], so row r of a kernel is node r of its
source site and column c node c of its target site."""

from collections.abc import Iterator
import dataclasses

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import param_kinds
from sparse_gpt import structure
from sparse_gpt.pruning.nodes import Layout, Location


@dataclasses.dataclass(frozen=True)
class Edge:
  # Positions in the circuit's node list (Circuit.nodes, the kept nodes in layout order),
  # as a circuit file's "source" and "target" are: not flat layout indices.
  source_node: int
  target_node: int
  param: str  # dotted parameter path, as in checkpoints: "blocks.0.attn.q.kernel"
  index: tuple[int, int]  # (row, column) in that kernel
  value: float


def named_params(params: nnx.State) -> dict[str, np.ndarray]:
  """{dotted path: array} of every parameter."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return {param_kinds.path_name(path): np.asarray(x) for path, x in leaves}


def joins(layout: Layout) -> Iterator[tuple[Location, Location, str]]:
  """(source location, target location, kernel path) of every kernel of every layer."""
  for layer in sorted({loc.layer for loc in layout.locations}):
    for kernel in structure.KERNELS:
      source, target = (layout.by_name[f"{layer}.{site}"] for site in kernel.joins)
      yield source, target, structure.layer_path(kernel, layer)


def count(params: nnx.State, layout: Layout, keep_N: jax.Array) -> jax.Array:
  """The number of edges among the nodes where keep_N is 1, as sum(keep_src A keep_tgt)
  over the kernels' nonzero patterns A: traceable, and through a straight-through keep_N
  each node's gradient is its number of kept neighbours (pruning's prune.edge_coef)."""
  weights = {param_kinds.path_name(path): x
             for path, x in jax.tree_util.tree_flatten_with_path(params)[0]}
  total = jnp.zeros((), jnp.float32)
  for source, target, name in joins(layout):
    nonzero_SxT = jax.lax.stop_gradient(weights[name] != 0).astype(jnp.float32)
    total += (keep_N[source.start:source.start + source.size] @ nonzero_SxT
              @ keep_N[target.start:target.start + target.size])
  return total


def between(params: nnx.State, layout: Layout, kept_nodes) -> list[Edge]:
  """Every nonzero weight whose source and target are both among `kept_nodes` (flat
  layout indices); its ends are positions in `sorted(kept_nodes)`."""
  kept_K = np.unique(np.asarray(list(kept_nodes), np.int64))
  kept = np.zeros(layout.n_nodes, bool)
  kept[kept_K] = True
  position_N = np.full(layout.n_nodes, -1)  # a kept node's place in kept_K
  position_N[kept_K] = np.arange(kept_K.size)
  weights = named_params(params)
  edges = []
  for source, target, name in joins(layout):
    rows = np.flatnonzero(kept[source.start:source.start + source.size])
    cols = np.flatnonzero(kept[target.start:target.start + target.size])
    block = weights[name][np.ix_(rows, cols)]
    for r, c in zip(*np.nonzero(block)):
      edges.append(Edge(int(position_N[source.start + rows[r]]),
                        int(position_N[target.start + cols[c]]), name,
                        (int(rows[r]), int(cols[c])), float(block[r, c])))
  return edges
