"""make bench's CPU layout: one device per core, as many as split its batch."""

from benchmarks import train_throughput


def test_one_cpu_device_per_core_up_to_a_divisor_of_the_batch():
  assert train_throughput.BATCH_SIZE == 16
  got = {cores: train_throughput.cpu_devices(cores) for cores in (1, 2, 3, 6, 16, 64)}
  assert got == {1: 1, 2: 2, 3: 2, 6: 4, 16: 16, 64: 16}
