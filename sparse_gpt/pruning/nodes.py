"""Every node of a model in one flat vector, and the mask parameters that gate them.

A site is a kind of location within a layer ("attn.q", structure.SITES); a location is
one site of one layer ("0.attn.q"). Nodes are ordered layer by layer, and within a layer
by site in forward order; node n of location "{i}.attn.q" is head n // K, channel n % K.
Each node has one mask parameter, except with tied Q/K masks, where key channel (h, c)
shares the parameter of query channel (h, c): a tied pair is one parameter, two nodes.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sparse_gpt import structure
from sparse_gpt.errors import UserError
from sparse_gpt.model import NodeEdit


@dataclasses.dataclass(frozen=True)
class Location:
  name: str  # "0.attn.q"
  layer: int
  site: str  # "attn.q"
  size: int
  start: int  # index of its first node in the flat node vector


@dataclasses.dataclass(frozen=True)
class Node:
  """One node as a circuit file names it (its JSON key for the site is "location")."""
  site: str  # "attn.q"
  layer: int
  index: int
  head: int | None = None  # for q, k, v
  channel: int | None = None

  @property
  def name(self) -> str:
    return f"{self.layer}.{self.site}"

  def to_json(self) -> dict:
    """Its record in a circuit file (docs/circuit_schema.md); head and channel if set."""
    record = {"location": self.site, "layer": self.layer, "index": self.index,
              "head": self.head, "channel": self.channel}
    return {k: v for k, v in record.items() if v is not None}

  @classmethod
  def from_json(cls, record: dict) -> "Node":
    fields = dict(record)  # an unknown key is a TypeError, as for a malformed file
    return cls(fields.pop("location"), **fields)

  def label(self) -> str:
    where = f"[{self.index}]"
    if self.head is not None:
      where = f"[h{self.head}.{self.channel}]"
    return f"{self.name}{where}"


class Layout:
  """Node and mask-parameter indexing for one model config (config.model)."""

  def __init__(self, model_cfg, tie_qk: bool = False):
    self.key = (model_cfg.n_layer, model_cfg.d_model, model_cfg.n_head, model_cfg.d_head,
                model_cfg.d_mlp, tie_qk)
    self.tie_qk = tie_qk
    self.d_head = model_cfg.d_head
    locations, start = [], 0
    for layer in range(model_cfg.n_layer):
      for site in structure.SITES:
        size = site.width(model_cfg)
        locations.append(Location(f"{layer}.{site.name}", layer, site.name, size, start))
        start += size
    self.locations = tuple(locations)
    self.by_name = {loc.name: loc for loc in self.locations}
    self.n_nodes = start
    owner_N = np.arange(self.n_nodes)
    if tie_qk:
      for loc in self.locations:
        if loc.site == "attn.k":
          q = self.by_name[f"{loc.layer}.attn.q"]
          owner_N[loc.start:loc.start + loc.size] = np.arange(q.start, q.start + q.size)
    # Parameters are numbered in node order, skipping nodes that borrow another's.
    _, self.param_of_node_N = np.unique(owner_N, return_inverse=True)
    self.n_params = int(self.param_of_node_N.max()) + 1

  # Equal layouts are one static argument to jit: no recompilation per instance.
  def __eq__(self, other) -> bool:
    return isinstance(other, Layout) and self.key == other.key

  def __hash__(self) -> int:
    return hash(self.key)

  def nodes_of(self, mask_P: jax.Array) -> jax.Array:
    """Per-node values [n_nodes] from per-parameter values [n_params]."""
    return mask_P[..., self.param_of_node_N]

  def edits(self, keep_N: jax.Array, fill: jax.Array) -> dict[str, NodeEdit]:
    """model.forward edits: keep_N [n_nodes]; fill [n_nodes] or [B, L, n_nodes]."""
    return {loc.name: NodeEdit(keep_N[loc.start:loc.start + loc.size],
                               fill[..., loc.start:loc.start + loc.size])
            for loc in self.locations}

  def flatten(self, per_location: dict[str, jax.Array]) -> jax.Array:
    """Concatenates {location name: [..., size]} into [..., n_nodes]."""
    return jnp.concatenate([per_location[loc.name] for loc in self.locations], axis=-1)

  def node(self, n: int) -> Node:
    loc = self.locations[int(np.searchsorted([l.start for l in self.locations], n,
                                             side="right")) - 1]
    i = n - loc.start
    if structure.SITE[loc.site].headed:
      return Node(loc.site, loc.layer, i, i // self.d_head, i % self.d_head)
    return Node(loc.site, loc.layer, i)

  def index(self, node: Node) -> int:
    loc = self.by_name.get(node.name)
    if loc is None or not 0 <= node.index < loc.size:
      raise UserError(f"node {node.label()} does not exist in this model")
    return loc.start + node.index
