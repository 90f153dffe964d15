"""Train-step tokens/s of dense, weight-sparse and weight+activation-sparse models, and
of the dense and weight+activation-sparse ones with bf16 matmuls (`*_bf16`).

Each runs data-parallel over every device of the process: on a CPU, `benchmarks.run`
makes one device per core (`cpu_devices`), the layout that trains fastest there. The
dense and weight+activation-sparse steps also run on one device (`*_one_device`), the
layout of a plain CPU process, for comparison.

All run the real training step (`train_step.build`: sharded, jitted with
donation) in one process, interleaved round by round so that machine noise hits
them alike; each figure is the median over rounds. MFU is the dense model's FLOPs per
token (the same figure for all, so they compare like with like) times tokens/s,
over a float32 matmul peak measured in the same process.
"""

import os
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sparse_gpt import config as config_lib
from sparse_gpt import sharding
from sparse_gpt import train_step as ts

VARIANTS = ("dense", "weight_sparse", "sparse", "dense_bf16", "sparse_bf16")
ONE_DEVICE = ("dense", "sparse")  # also run on one device, as "<variant>_one_device"
BATCH_SIZE = 16


def bench_config(variant: str) -> ml_collections.ConfigDict:
  """The issue's configuration; sparse variants sit at their final density."""
  c = config_lib.defaults()
  sparsity = variant.removesuffix("_bf16")
  c.model.update(n_layer=4, d_model=256, n_head=8, d_head=32, d_mlp=1024, n_ctx=256,
                 afrac=0.25, abstopk_at="all" if sparsity == "sparse" else "none",
                 compute_dtype="bfloat16" if variant.endswith("_bf16") else "float32")
  c.data.vocab_size = 2048
  c.train.update(batch_size=BATCH_SIZE, steps=1000)
  # Anneal ends after the first optimizer step, so every timed step projects at the
  # target density, and sees the zeros of a sparse model (top-k's cost depends on them).
  c.sparsity.update(enabled=sparsity != "dense", target_density=1 / 16,
                    anneal_start=0.0, anneal_end=0.001)
  config_lib.validate(c)
  return c


def model_flops_per_token(m: ml_collections.ConfigDict, vocab: int) -> float:
  """6 x (non-embedding matmul weights + unembedding) + nanoGPT's attention term.

  Attention: 12 x n_layer x n_ctx x (n_head x d_head), i.e. QK^T and PV forward and
  backward over the full (unmasked) n_ctx x n_ctx score matrix: nanoGPT's count, kept so
  that MFUs compare across changes (the step computes 10/16 of it, model.QUERY_CHUNKS).
  """
  hk = m.n_head * m.d_head
  per_layer = 4 * m.d_model * hk + 2 * m.d_model * m.d_mlp
  matmul_params = m.n_layer * per_layer + m.d_model * vocab
  return 6.0 * matmul_params + 12.0 * m.n_layer * m.n_ctx * hk


def cpu_devices(cores: int | None = None) -> int:
  """CPU devices for one per core: the most, up to the core count, that split the batch.

  XLA:CPU runs each device's program on its own thread, with less thread hand-off than
  one device's ops spread over every core (benchmarks/NOTES.md, issue 15).
  """
  cores = cores or os.cpu_count() or 1
  return max(n for n in range(1, min(cores, BATCH_SIZE) + 1) if BATCH_SIZE % n == 0)


def _timed(fn) -> tuple[float, float]:
  """(wall, process CPU) seconds of fn(), which must block until its work is done."""
  wall, cpu = time.perf_counter(), time.process_time()
  fn()
  return time.perf_counter() - wall, time.process_time() - cpu


class _Matmul:
  """Square float32 matmuls of a few sizes; the best size gives the peak."""

  def __init__(self, sizes=(1024, 2048, 3072)):
    self.dot = jax.jit(jnp.dot)
    self.operands = [tuple(jax.random.normal(jax.random.key(i), (n, n)) for i in (0, 1))
                     for n in sizes]
    for a, b in self.operands:
      self.dot(a, b).block_until_ready()  # compile

  def gflops(self) -> tuple[float, float]:
    """Best (per wall second, per CPU second) GFLOP/s over the sizes, one run each."""
    best = (0.0, 0.0)
    for a, b in self.operands:
      flop = 2 * a.shape[0] ** 3
      wall, cpu = _timed(lambda: self.dot(a, b).block_until_ready())
      best = (max(best[0], flop / wall / 1e9), max(best[1], flop / cpu / 1e9))
    return best


class _Runner:
  """One variant's compiled step, live state and batch."""

  def __init__(self, variant: str, devices=None):
    self.cfg = bench_config(variant)
    self.mesh = sharding.make_mesh(self.cfg.mesh, devices)
    training = ts.build(self.cfg, self.mesh)
    self.state, self.step = training.init(), training.step
    t, m = self.cfg.train, self.cfg.model
    tokens = np.random.default_rng(0).integers(0, self.cfg.data.vocab_size,
                                               (t.batch_size, m.n_ctx + 1), np.int32)
    self.batch = jax.device_put(tokens, sharding.batch_sharding(self.mesh))
    self.tokens_per_step = t.batch_size * m.n_ctx

  def run(self, n: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per step over n steps."""
    def steps():
      for _ in range(n):
        self.state, self.metrics = self.step(self.state, self.batch)
      jax.block_until_ready((self.state, self.metrics))
    with jax.set_mesh(self.mesh):
      jax.block_until_ready(self.state)
      wall, cpu = _timed(steps)
    return wall / n, cpu / n


def measure(rounds: int = 5, steps_per_round: int = 1) -> dict:
  """Tokens/s of the three variants, their ratios, the matmul peak and MFUs.

  Every figure is a median over rounds; each round runs every variant and the matmuls
  once, so that load from other jobs on the machine hits all of them alike. Figures
  per CPU second (`*_cpu`) are steadier than wall-clock ones on a shared machine.
  """
  runners = {v: _Runner(v) for v in VARIANTS}
  runners.update({f"{v}_one_device": _Runner(v, jax.devices()[:1]) for v in ONE_DEVICE})
  for r in runners.values():
    r.run(1)  # compile, and take the sparse runs past the anneal
  matmul = _Matmul()
  times = {name: [] for name in (*runners, "matmul")}
  for _ in range(rounds):
    for v, r in runners.items():
      times[v].append(r.run(steps_per_round))
    times["matmul"].append(matmul.gflops())
  median = {name: [statistics.median(t[i] for t in ts) for i in (0, 1)]
            for name, ts in times.items()}
  best_matmul = max(wall for wall, _ in times["matmul"])
  cfg = runners["dense"].cfg
  flops = model_flops_per_token(cfg.model, cfg.data.vocab_size)
  (peak, peak_cpu), out = median.pop("matmul"), {}
  for v, (wall, cpu) in median.items():
    tokens = runners[v].tokens_per_step
    out[f"{v}_tokens_per_s"] = tokens / wall
    out[f"{v}_step_ms"], out[f"{v}_step_cpu_ms"] = 1e3 * wall, 1e3 * cpu
    out[f"{v}_mfu"] = tokens / wall * flops / 1e9 / peak
    out[f"{v}_mfu_cpu"] = tokens / cpu * flops / 1e9 / peak_cpu
  for v in VARIANTS[1:]:
    out[f"{v}_over_dense"] = out[f"{v}_tokens_per_s"] / out["dense_tokens_per_s"]
    out[f"{v}_over_dense_cpu"] = out["dense_step_cpu_ms"] / out[f"{v}_step_cpu_ms"]
  out["sparse_one_device_over_dense"] = (out["sparse_one_device_tokens_per_s"]
                                         / out["dense_one_device_tokens_per_s"])
  out["sparse_one_device_over_dense_cpu"] = (out["dense_one_device_step_cpu_ms"]
                                             / out["sparse_one_device_step_cpu_ms"])
  for v in ONE_DEVICE:  # what the layout of one device per core buys
    out[f"{v}_over_one_device"] = (out[f"{v}_tokens_per_s"]
                                   / out[f"{v}_one_device_tokens_per_s"])
  # Every runner starts from the same weights and has taken the same steps on the same
  # batch, so the bf16 variants' losses compare directly with their float32 twins'.
  loss = {v: float(r.metrics["loss"]) for v, r in runners.items()}
  for v in ("dense", "sparse"):
    out[f"{v}_bf16_speedup"] = out[f"{v}_bf16_tokens_per_s"] / out[f"{v}_tokens_per_s"]
    out[f"{v}_bf16_loss_gap"] = loss[f"{v}_bf16"] - loss[v]
  out["steps_taken"] = 1 + rounds * steps_per_round
  # The single best matmul run is shown too: on a shared machine it is the rare moment
  # with every core free, which the median step times do not see.
  out.update(model_gflops_per_token=flops / 1e9, matmul_peak_gflops=peak,
             matmul_peak_gflops_per_cpu_s=peak_cpu, matmul_best_gflops=best_matmul,
             dense_mfu_vs_best=out["dense_tokens_per_s"] * flops / 1e9 / best_matmul,
             rounds=rounds, steps_per_round=steps_per_round, devices=jax.device_count())
  return out
