"""`make bench`: training throughput and pruning speed; the last line printed is JSON.

Usage: python -m benchmarks.run
"""

import json
import os
import time

import jax

from benchmarks import prune_speed
from benchmarks import sparse_matmul
from benchmarks import train_throughput


def _table(f: dict) -> str:
  """Per variant: wall-clock figures, then the same per CPU second (steadier when
  other jobs share the machine)."""
  rows = [f"{'variant':<30}{'tokens/s':>9}{'step ms':>9}{'vs dense':>9}{'MFU':>7}"
          f"{'CPU ms':>9}{'vs dense':>9}{'MFU':>7}"]
  for v, label in (("dense", "dense"), ("weight_sparse", "weight-sparse"),
                   ("sparse", "weight+activation-sparse"), ("dense_bf16", "dense, bf16"),
                   ("sparse_bf16", "w+a-sparse, bf16"), ("dense_one_device", "dense, one device"),
                   ("sparse_one_device", "w+a-sparse, one device")):
    rows.append(f"{label:<30}{f[f'{v}_tokens_per_s']:>9.0f}{f[f'{v}_step_ms']:>9.0f}"
                f"{f.get(f'{v}_over_dense', 1.0):>9.2f}{f[f'{v}_mfu']:>7.1%}"
                f"{f[f'{v}_step_cpu_ms']:>9.0f}{f.get(f'{v}_over_dense_cpu', 1.0):>9.2f}"
                f"{f[f'{v}_mfu_cpu']:>7.1%}")
  rows.append(f"{f['devices']} device(s), data-parallel; one device per core is "
              f"{f['dense_over_one_device']:.2f}x (dense) and {f['sparse_over_one_device']:.2f}x "
              "(weight+activation-sparse) the speed of one device; the one-device rows' "
              "'vs dense' is against dense on one device")
  rows.append(f"float32 matmul peak: {f['matmul_peak_gflops']:.1f} GFLOP/s, median of "
              f"rounds ({f['matmul_peak_gflops_per_cpu_s']:.1f} per CPU second; single "
              f"best run {f['matmul_best_gflops']:.1f}, dense MFU against it "
              f"{f['dense_mfu_vs_best']:.1%})")
  rows.append("bf16 matmuls: dense {:.2f}x, weight+activation-sparse {:.2f}x the float32 "
              "speed; loss after {} steps on one batch {:+.4f} / {:+.4f} against "
              "float32".format(f["dense_bf16_speedup"], f["sparse_bf16_speedup"],
                               f["steps_taken"], f["dense_bf16_loss_gap"],
                               f["sparse_bf16_loss_gap"]))
  rows.append("model FLOPs "
              f"{1e3 * f['model_gflops_per_token']:.1f} MFLOP/token, the dense count for "
              "all five")
  return "\n".join(rows)


def main():
  start = time.perf_counter()
  if "JAX_NUM_CPU_DEVICES" not in os.environ:  # before the first use of a device
    jax.config.update("jax_num_cpu_devices", train_throughput.cpu_devices())
  print(f"Benchmarking on {jax.devices()[0].device_kind} "
        f"({jax.device_count()} device(s)); this takes a few minutes.")
  figures = train_throughput.measure()
  figures["throughput_seconds"] = time.perf_counter() - start
  print(_table(figures))
  print(f"targets: weight+activation-sparse >= 0.9x dense: "
        f"{figures['sparse_over_dense'] >= 0.9}; dense MFU >= 70%: "
        f"{figures['dense_mfu'] >= 0.7}")
  crossover = sparse_matmul.measure()
  print("computing with the weight sparsity: BCOO time / dense time for the forward and "
        "input-gradient products at density "
        + ", ".join(f"1/{k.removeprefix('bcoo_time_over_dense_1in')} {v:.2f}" for k, v in
                    crossover.items() if k.startswith("bcoo_time"))
        + f"; crossover density {crossover['bcoo_crossover_density']}")
  figures.update(crossover)
  prune = prune_speed.measure()
  print(f"pruning: {prune}")
  figures.update(prune)
  figures["bench_seconds"] = time.perf_counter() - start
  print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                    for k, v in figures.items()}))


if __name__ == "__main__":
  main()
