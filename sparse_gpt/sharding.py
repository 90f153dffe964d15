"""The device mesh, and where on it every array lives.

Mesh axes: `data` (batch only), `fsdp` (batch and parameters), `tensor` (heads, MLP
neurons, vocabulary). Changing the parallelism is a config edit (`mesh.*`), or a
one-line edit of `LOGICAL_TO_MESH`.

Every parameter's logical axes come from its entry in structure.PARAMS, looked up by the
end of its dotted path, so the same entry covers every parameter-shaped leaf of the
optimizer state ("inner.1.0.mu.blocks.0.attn.q.kernel"): the Adam moments live exactly
where their parameters live. Scalars (the step, optax's counts) are replicated; any other
leaf that structure.py does not describe is an error. Activations are sharded over the
batch (`BATCH`, set on the input) and XLA propagates that through the model.
"""

from collections.abc import Callable
import math

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import ml_collections

from sparse_gpt import param_kinds
from sparse_gpt import structure
from sparse_gpt.errors import ConfigError

AXES = ("data", "fsdp", "tensor")

LOGICAL_TO_MESH = {"embed": "fsdp", "heads": "tensor", "mlp": "tensor", "vocab": "tensor"}
BATCH = ("data", "fsdp")


def make_mesh(mesh_cfg: ml_collections.ConfigDict, devices=None) -> jax.sharding.Mesh:
  devices = jax.devices() if devices is None else devices
  sizes = [mesh_cfg[a] for a in AXES]
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ConfigError(f"config.mesh={mesh_cfg.to_dict()}: {len(devices)} devices do not "
                        f"divide by the fixed axes' product {known}.")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ConfigError(f"config.mesh={mesh_cfg.to_dict()} needs {math.prod(sizes)} devices "
                      f"but {len(devices)} are present; set one axis to -1 to fill.")
  return jax.make_mesh(tuple(sizes), AXES, axis_types=(AxisType.Auto,) * len(AXES),
                       devices=devices)


def spec_for(name: str, shape: tuple[int, ...], mesh: jax.sharding.Mesh) -> P:
  """The PartitionSpec of the array at dotted path `name`, by its structure entry."""
  if not shape:
    return P()
  logical = structure.param(name).axes
  dims = []
  for size, axis in zip(shape, logical + (None,) * (len(shape) - len(logical))):
    mesh_axis = LOGICAL_TO_MESH.get(axis)
    # A dimension the mesh axis does not divide stays whole rather than failing.
    dims.append(mesh_axis if mesh_axis and size % mesh.shape[mesh_axis] == 0 else None)
  return P(*dims)


def tree_shardings(tree, mesh: jax.sharding.Mesh):
  """NamedShardings for a tree of parameters or optimizer state (arrays or shapes)."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: NamedSharding(mesh, spec_for(param_kinds.path_name(path), x.shape,
                                                   mesh)),
      tree)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def on_own_rows(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
  """`fn`, independent per index of axis 0, run by each device on its own rows when the
  mesh in context splits the batch (axis 0) over BATCH.

  XLA's partitioner cannot split a loop that walks blocks of rows (top-k's bisection,
  topk.py): left to it, every device all-gathers the whole batch and repeats the other
  devices' work. With no mesh, or one that leaves the batch whole, this is `fn`.
  """
  def wrapped(x: jax.Array) -> jax.Array:
    mesh = jax.sharding.get_abstract_mesh()
    axes = () if mesh.empty else tuple(a for a in BATCH if mesh.shape.get(a, 1) > 1)
    if not axes or x.shape[0] % math.prod(mesh.shape[a] for a in axes):
      return fn(x)
    return jax.shard_map(fn, in_specs=P(axes), out_specs=P(axes))(x)
  return wrapped
