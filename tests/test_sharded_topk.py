"""The sharded top-k path on 8 fake CPU devices gives exactly the single-device masks,
with ties at the k-th value, rows of zeros and a neuron floor, and is chosen by the
sharding the caller passes (no mesh in context). AbsTopK of a batch-sharded activation
is ranked by each device on its own rows."""

import math

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import numpy as np

from test_scale_devices import _gathered_sizes, in_fresh_process
from sparse_gpt import activation_sparsity
from sparse_gpt import sharded_topk
from sparse_gpt import sharding
from sparse_gpt import topk
from sparse_gpt import weight_sparsity

SPECS = (P("fsdp", None), P(None, "tensor"), P("fsdp", "tensor"), P("tensor", "fsdp"),
         P(("data", "fsdp"), "tensor"))


def _tied(rng, shape, zeros: bool) -> np.ndarray:
  """Few levels, so ties everywhere; whole columns of one value put a column's j-th
  value tie across every row shard; with `zeros`, all-zero rows and columns too."""
  w = rng.integers(1, 5, shape).astype(np.float32) / 2 * rng.choice([-1, 1], shape)
  w[:, 5] = 1.5
  w[:, 40] = -2.0
  if zeros:
    w[10:30] = 0
    w[:, 17] = 0
  return w


def mask_checks() -> dict:
  mesh = jax.make_mesh((2, 2, 2), sharding.AXES, axis_types=(AxisType.Auto,) * 3)
  rng = np.random.default_rng(0)
  out = {"projection": [], "topk": [], "column_topk": []}
  same = lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b)))
  unsharded = jax.jit(weight_sparsity.project_tensor, static_argnums=2)
  w = _tied(rng, (64, 96), zeros=False)  # no zeros: the projection shows its whole mask
  score = np.abs(_tied(rng, (64, 96), zeros=True))
  for spec in SPECS:
    sh = NamedSharding(mesh, spec)
    placed_w, placed_score = jax.device_put(w, sh), jax.device_put(score, sh)
    for floor in (0, 4, 12):  # 12: past the small-k extraction, both use bisection
      sharded = jax.jit(lambda w, k, f=floor, s=sh: weight_sparsity.project_tensor(w, k, f, s))
      for k in (1, 700, 3001, w.size):
        out["projection"].append(same(sharded(placed_w, k), unsharded(w, k, floor)))
    shard_map = lambda f, s=spec: jax.jit(jax.shard_map(
        f, mesh=mesh, in_specs=(s, P()), out_specs=s))
    topk_all = shard_map(lambda m, k, s=spec: sharded_topk.topk_mask(m, k, s))
    per_column = shard_map(lambda m, j, s=spec: sharded_topk.column_topk_mask(m, j, s))
    for k in (1, 700, 4000, score.size):  # 4000: more than the nonzeros
      out["topk"].append(same(topk_all(placed_score, k), topk.topk_mask(score, k)))
    for j in (1, 4, 12, 64):
      out["column_topk"].append(same(per_column(placed_score, j),
                                     topk.topk_mask(score, j, axis=0)))

  # The sharded path follows the sharding passed in, with no mesh set by the caller:
  # only counts cross devices.
  sh = NamedSharding(mesh, P("fsdp", "tensor"))
  hlo = jax.jit(lambda w: weight_sparsity.project_tensor(w, 700, 4, sh)).lower(
      jax.device_put(w, sh)).compile().as_text()
  out["all_reduces"] = hlo.count("all-reduce(")
  out["gathered"] = _gathered_sizes(hlo)
  out["size"] = w.size
  return out


def test_sharded_masks_equal_single_device_masks():
  checks = in_fresh_process(8, __name__, "mask_checks")
  assert len(checks["projection"]) == len(SPECS) * 3 * 4 and all(checks["projection"])
  assert len(checks["topk"]) == len(SPECS) * 4 and all(checks["topk"])
  assert len(checks["column_topk"]) == len(SPECS) * 4 and all(checks["column_topk"])
  assert checks["all_reduces"] > 0  # the counts' psums: the sharded path ran
  assert max(checks["gathered"], default=0) < checks["size"] // 8


OWN_ROWS_MESHES = ((2, 2, 1), (1, 4, 1), (2, 1, 2))  # (data, fsdp, tensor)


def own_rows_checks() -> dict:
  """AbsTopK of a batch-sharded activation on each mesh: its mask against no mesh's, and
  the largest all-gather of the compiled function, its gradient included."""
  rng = np.random.default_rng(0)
  # Rows of several of topk.BLOCK_ELEMENTS blocks: XLA gathered those; few levels, so
  # ties everywhere, and a row of zeros.
  x = rng.integers(-3, 4, (8, 64, 128)).astype(np.float32)
  x[1, 3] = 0
  k = 32
  f = lambda x: activation_sparsity.abs_topk(x, k)
  want, want_grad = f(x), jax.grad(lambda x: f(x).sum() ** 2)(x)
  out = {"equal": [], "grad_equal": [], "gathered": [], "size": x.size}
  for shape in OWN_ROWS_MESHES:
    mesh = jax.make_mesh(shape, sharding.AXES, axis_types=(AxisType.Auto,) * 3,
                         devices=jax.devices()[:math.prod(shape)])
    with jax.set_mesh(mesh):
      placed = jax.device_put(x, NamedSharding(mesh, P(sharding.BATCH)))
      both = jax.jit(lambda x: (f(x), jax.grad(lambda x: f(x).sum() ** 2)(x)))
      got, grad = both(placed)
      hlo = both.lower(placed).compile().as_text()
    out["equal"].append(bool(np.array_equal(np.asarray(got), np.asarray(want))))
    out["grad_equal"].append(bool(np.array_equal(np.asarray(grad), np.asarray(want_grad))))
    out["gathered"].append(max(_gathered_sizes(hlo), default=0))
  return out


def test_abs_topk_ranks_each_devices_own_rows():
  """Left to XLA, the blocked bisection all-gathered the whole batch on every device and
  each repeated the others' work; now nothing of the activation crosses devices."""
  checks = in_fresh_process(4, __name__, "own_rows_checks")
  assert checks["equal"] == [True] * len(OWN_ROWS_MESHES)
  assert checks["grad_equal"] == [True] * len(OWN_ROWS_MESHES)
  assert checks["gathered"] == [0] * len(OWN_ROWS_MESHES), checks
