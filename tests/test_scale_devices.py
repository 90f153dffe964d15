"""Sharding on 8 fake CPU devices: top-k is exact on sharded matrices, the projection and
Adam never gather a parameter matrix, and meshes of several shapes train like one device.

JAX fixes its device count when it starts, so each check runs in a fresh process: the
parent test calls a function of this module there and reads back its JSON result
(`in_fresh_process`, also used by the other scale tests).
"""

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

import tiny_setup
from sparse_gpt import param_kinds
from sparse_gpt import sharding
from sparse_gpt import topk
from sparse_gpt import train_step
from sparse_gpt import weight_sparsity

REPO = pathlib.Path(__file__).resolve().parents[1]


def in_fresh_process(n: int, module: str, function: str):
  """Runs `module.function()` in a new process with n CPU devices; its JSON result."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
             JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(n),
             XLA_FLAGS="--xla_backend_optimization_level=0")  # compiles 2x faster
  code = f"import json, {module} as m; print(json.dumps(m.{function}()))"
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, text=True,
                       capture_output=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-4000:]
  return json.loads(out.stdout.splitlines()[-1])


def _config(**model):
  cfg = tiny_setup.tiny_config(pathlib.Path("unused"), pathlib.Path("unused"))
  cfg.model.update(**model)
  return cfg


def _gathered_sizes(hlo: str) -> list[int]:
  """Elements of the result of every all-gather in compiled HLO text."""
  sizes = []
  for line in hlo.splitlines():
    if m := re.search(r"= (.+?) all-gather(-start)?\(", line):
      sizes += [math.prod(int(d) for d in dims.split(",") if d)
                for dims in re.findall(r"\[([\d,]*)\]", m[1])]
  return sizes


def topk_checks() -> dict:
  """Top-k and the projection of sharded matrices, each compared with unsharded."""
  out = {"topk_equal": [], "projection_equal": []}
  same = lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b)))
  topk_1000 = jax.jit(lambda m: topk.topk_mask(jnp.abs(m), 1000))
  unsharded = jax.jit(weight_sparsity.project_tensor, static_argnums=(1, 2))
  mesh = jax.make_mesh((2, 2, 2), sharding.AXES,
                       axis_types=(jax.sharding.AxisType.Auto,) * 3)
  w = np.asarray(jax.random.normal(jax.random.key(0), (64, 96)))
  for matrix in (w, np.round(w * 2) / 2):  # the second has many ties
    for spec in (P("fsdp", None), P("fsdp", "tensor"), P(("data", "fsdp"), "tensor")):
      placed = jax.device_put(matrix, NamedSharding(mesh, spec))
      out["topk_equal"].append(same(topk_1000(placed), topk_1000(matrix)))
      got = jax.jit(lambda m, s=placed.sharding: weight_sparsity.project_tensor(
          m, 700, 4, s))(placed)
      out["projection_equal"].append(same(got, unsharded(matrix, 700, 4)))
  spec = P("fsdp", "tensor")  # and once without the neuron floor
  placed = jax.device_put(w, NamedSharding(mesh, spec))
  got = jax.jit(lambda m: weight_sparsity.project_tensor(m, 700, 0, placed.sharding))(placed)
  out["projection_equal"].append(same(got, unsharded(w, 700, 0)))
  bias = np.round(np.asarray(jax.random.normal(jax.random.key(1), (96,))))
  placed = jax.device_put(bias, NamedSharding(mesh, P("tensor")))
  got = jax.jit(lambda b: weight_sparsity.project_tensor(b, 20, 4, placed.sharding))(placed)
  out["projection_equal"].append(same(got, unsharded(bias, 20, 4)))
  return out


def update_checks() -> dict:
  """All-gathers of the Adam update and of the projection of every sharded parameter
  on a data x fsdp mesh; where the Adam moments live."""
  out = {}
  cfg = _config(d_model=64, d_mlp=256)
  cfg.sparsity.enabled = True  # the update includes the (sharded) projection
  cfg.mesh.update(data=2, fsdp=4)
  mesh = sharding.make_mesh(cfg.mesh)  # all 8 devices
  training = train_step.build(cfg, mesh)
  tx, state = training.tx, training.abstract
  shardings = jax.tree.map(lambda x: x.sharding, state)

  def project_all(params):
    def one(w, sh):
      return (w if sh.is_fully_replicated
              else weight_sparsity.project_tensor(w, w.size // 8, 4, sh))
    return jax.tree.map(one, params, shardings.params)

  with jax.set_mesh(mesh):
    update = jax.jit(tx.update, out_shardings=(shardings.params, shardings.opt_state))
    hlo = update.lower(state.params, state.opt_state, state.params).compile().as_text()
    hlo += jax.jit(project_all, out_shardings=shardings.params).lower(
        state.params).compile().as_text()
  out["gathered"] = _gathered_sizes(hlo)
  out["smallest_sharded_matrix"] = min(
      x.size for x in jax.tree.leaves(state.params)
      if x.ndim == 2 and not x.sharding.is_fully_replicated)

  # Real arrays: every parameter-shaped optimizer leaf (the Adam moments) sits where
  # its parameter sits.
  state = training.init()
  flat = lambda tree: [(param_kinds.path_name(p), x)
                       for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]
  params = dict(flat(state.params))
  out["moments_like_params"] = [
      x.sharding.is_equivalent_to(params[owner].sharding, x.ndim)
      for name, x in flat(state.opt_state)
      for owner in params if name.endswith("." + owner)]
  out["n_params"] = len(params)
  return out


def test_topk_and_projection_of_sharded_matrices_equal_unsharded():
  checks = in_fresh_process(8, __name__, "topk_checks")
  assert len(checks["topk_equal"]) == 6 and all(checks["topk_equal"])
  assert len(checks["projection_equal"]) == 8 and all(checks["projection_equal"])


def test_projection_and_adam_keep_parameters_sharded():
  checks = in_fresh_process(8, __name__, "update_checks")
  # Only counts cross devices (one per row or column and shard), never weights.
  assert checks["gathered"], "expected the projection's count all-gathers"
  assert max(checks["gathered"]) < checks["smallest_sharded_matrix"]
  assert len(checks["moments_like_params"]) == 2 * checks["n_params"]  # mu and nu
  assert all(checks["moments_like_params"])


MESHES = ((2, 4, 1), (2, 2, 2))  # (data, fsdp, tensor)


def losses_on_meshes() -> dict:
  """Three sparse training steps on one device and on each mesh of MESHES."""
  cfg = _config()
  cfg.train.update(steps=4, batch_size=8)  # density reaches its target at step 2
  cfg.sparsity.sparse_biases = False  # fewer top-k projections: a shorter compile
  batches = np.random.default_rng(0).integers(
      0, cfg.data.vocab_size, (3, 8, cfg.model.n_ctx + 1), dtype=np.int32)
  out = {}
  for shape in ((1, 1, 1),) + MESHES:
    cfg.mesh.update(data=shape[0], fsdp=shape[1], tensor=shape[2])
    mesh = sharding.make_mesh(cfg.mesh, jax.devices()[:math.prod(shape)])
    training = train_step.build(cfg, mesh)
    state, step = training.init(), training.step
    losses = []
    with jax.set_mesh(mesh):
      for batch in batches:
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    out[str(shape)] = dict(losses=losses, params=[
        float(np.abs(np.asarray(x)).sum()) for x in jax.tree.leaves(state.params)],
        nonzeros=int(sum((np.asarray(x) != 0).sum() for x in jax.tree.leaves(state.params))))
  return out


def test_meshes_of_several_shapes_train_like_one_device():
  runs = in_fresh_process(8, __name__, "losses_on_meshes")
  one = runs.pop(str((1, 1, 1)))
  assert len(runs) == len(MESHES)
  for shape, run in runs.items():
    np.testing.assert_allclose(run["losses"], one["losses"], rtol=1e-5, err_msg=shape)
    np.testing.assert_allclose(run["params"], one["params"], rtol=1e-4, err_msg=shape)
    assert run["nonzeros"] == one["nonzeros"], shape
