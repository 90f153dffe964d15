"""Ahead-of-time dry run: compile the train step for a topology and report its memory.

A topology is a TPU slice ("v5p-64", "v4-32", "v5e-16", "v6e-8") or GPUs ("8xH100",
"2x8xH100"). Without that hardware's compiler at hand (JAX's TPU topology API needs
libtpu, the GPU one a CUDA build), the step is compiled for as many fake CPU devices,
sharded exactly as on the real mesh. Parameter and optimizer bytes per device follow
from the shardings and are exact; activations and temporaries come from XLA:CPU's
buffer assignment, an estimate of what the TPU or GPU compiler will need (XLA:CPU does
not exploit `model.remat`, so with remat on the estimate is high).
"""

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import ml_collections

from sparse_gpt import config as config_lib
from sparse_gpt import sharding
from sparse_gpt import train_step as ts
from sparse_gpt.errors import ConfigError

GIB = 2**30
# Memory per device (one TPU chip or one GPU), GiB.
HBM_GIB = {"v4": 32, "v5p": 95, "v5e": 16, "v6e": 32,
           "A100": 80, "H100": 80, "H200": 141, "B200": 180}
# TPU generations whose slice names count TensorCores, two per chip.
_CORE_NAMED = ("v4", "v5p")


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str
  chip: str
  devices: int

  @property
  def hbm_bytes(self) -> int:
    return HBM_GIB[self.chip] * GIB


def parse_topology(name: str) -> Topology:
  """"v5p-64" -> 32 v5p chips; "v5e-16" -> 16 chips; "2x8xH100" -> 16 H100s."""
  if m := re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", name):
    chip = "v5e" if m[1] == "v5litepod" else m[1]
    n = int(m[2])
    return Topology(name, chip, n // 2 if chip in _CORE_NAMED else n)
  gpus = "|".join(c for c in HBM_GIB if not c.startswith("v"))
  if m := re.fullmatch(rf"(?:(\d+)x)?(\d+)x({gpus})", name):
    return Topology(name, m[3], int(m[1] or 1) * int(m[2]))
  raise ConfigError(f"--topology={name!r}: use a TPU slice such as v5p-64, v4-32, v5e-16 "
                    f"or v6e-8, or GPUs such as 8xH100 or 2x8xH100 (GPUs: {gpus}).")


def fake_cpu_devices(n: int) -> list:
  """n CPU devices; must run before anything else in the process touches JAX."""
  try:
    jax.config.update("jax_num_cpu_devices", n)
  except RuntimeError as e:
    raise RuntimeError("aot.fake_cpu_devices must run in a fresh process (python -m "
                       "launch.compile does).") from e
  return jax.devices("cpu")


def _bytes_per_device(tree) -> int:
  """Bytes one device holds of a tree of sharded ShapeDtypeStructs."""
  return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
             for x in jax.tree.leaves(tree))


def memory_report(cfg: ml_collections.ConfigDict, topology: Topology) -> dict:
  """Compiles one train step on a mesh of the topology's size; bytes per device."""
  config_lib.validate(cfg)
  devices = fake_cpu_devices(topology.devices)
  mesh = sharding.make_mesh(cfg.mesh, devices)
  training = ts.build(cfg, mesh)  # the step the training loop runs
  state = training.abstract
  batch = jax.ShapeDtypeStruct((cfg.train.batch_size, cfg.model.n_ctx + 1), jnp.int32,
                               sharding=sharding.batch_sharding(mesh))
  with jax.set_mesh(mesh):  # as the training loop runs it
    compiled = training.step.lower(state, batch).compile()
  mem = compiled.memory_analysis()
  report = dict(
      topology=topology.name, devices=topology.devices, chip=topology.chip,
      hbm_bytes=topology.hbm_bytes, compiled_for=f"{len(devices)} fake CPU devices",
      mesh=dict(mesh.shape), remat=cfg.model.remat,
      n_params=sum(x.size for x in jax.tree.leaves(state.params)),
      params_bytes=_bytes_per_device(state.params),
      opt_state_bytes=_bytes_per_device(state.opt_state),
      batch_bytes=_bytes_per_device(batch),
      activation_bytes=mem.temp_size_in_bytes)
  # Donation makes the new state reuse the old one's buffers: arguments + temporaries.
  report["total_bytes"] = (report["params_bytes"] + report["opt_state_bytes"]
                           + report["batch_bytes"] + report["activation_bytes"])
  report["fits"] = report["total_bytes"] <= topology.hbm_bytes
  return report


def format_report(r: dict) -> str:
  gib = lambda b: f"{b / GIB:8.2f} GiB"
  lines = [
      f"{r['topology']}: {r['devices']} x {r['chip']} with {r['hbm_bytes'] // GIB} GiB "
      f"each; mesh {r['mesh']}",
      f"compiled for {r['compiled_for']} (no {r['chip']} compiler here): parameter and "
      "optimizer bytes are exact, activations are XLA:CPU's estimate",
      f"parameters            {r['n_params']:,} in all",
      "per device:",
      f"  parameters          {gib(r['params_bytes'])}",
      f"  optimizer state     {gib(r['opt_state_bytes'])}",
      f"  activations + temp  {gib(r['activation_bytes'])}"
      + (" (XLA:CPU does not schedule for remat: an over-estimate)" if r["remat"] else ""),
      f"  batch               {gib(r['batch_bytes'])}",
      f"  total               {gib(r['total_bytes'])} of {r['hbm_bytes'] // GIB} GiB: "
      + ("fits" if r["fits"] else "DOES NOT FIT; raise mesh.fsdp, lower train.batch_size, "
         "or set model.remat=True"),
  ]
  return "\n".join(lines)
