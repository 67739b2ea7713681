"""Data-generation throughput per core at 128 x 128, Parquet writing included.

One process, one thread. For each system it times, side by side:
  shard      the real shard path: generate, write Parquet (atomic), sha256, statistics
  compute    generate_examples alone (no I/O), in the shard writer's batches
  reference  the published algorithm (per-Gaussian loop, fft2/ifft2, one example at a time)
  floor      a float64 rfft2 + irfft2 round trip per example, same FFT library (numpy)
Rates are examples per CPU-second of this process (time.process_time, so other load on
the machine does not count), best of --repeats runs. Run:  python benchmarks/datagen.py
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from data_gen import allocator  # noqa: E402
from data_gen.shards import ShardPlan, produce_shard, row_group_rows  # noqa: E402
from sciml.physics import SystemSpec, generate_examples  # noqa: E402
from sciml.physics.reference import reference_examples  # noqa: E402

SYSTEMS = ("SYS-1(1,5)", "SYS-2(0.2,1)", "SYS-3(1,10)")


def best_rate(run: Callable[[int], None], count: int, repeats: int,
              cleanup: Callable[[], None] = lambda: None) -> float:
    """Examples per CPU-second, best of ``repeats`` (run(r) does ``count`` examples)."""
    best = float("inf")
    for r in range(repeats):
        start = time.process_time()
        run(r)
        best = min(best, time.process_time() - start)
        cleanup()
    return count / best


def floor_rate(n: int, count: int, repeats: int) -> float:
    fields = np.random.default_rng(0).random((count, n, n))

    def run(_: int) -> None:
        for field in fields:
            np.fft.irfft2(np.fft.rfft2(field), s=(n, n))

    return best_rate(run, count, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--examples", type=int, default=1024, help="per shard / compute run")
    parser.add_argument("--reference-examples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, count = args.resolution, args.examples
    allocator.tune()  # as the Ray workers do; applies to every variant below
    step = row_group_rows(n)
    floor = floor_rate(n, count, args.repeats)
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, 1 thread, n = {n}, "
          f"{count} examples per run, best of {args.repeats}")
    print(f"{'system':14} {'shard/s':>9} {'compute/s':>10} {'reference/s':>12} {'floor/s':>9} "
          f"{'shard/floor':>12} {'compute/floor':>14} {'shard/ref':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in SYSTEMS:
            spec = SystemSpec.parse(name)
            generate_examples(spec, 0, "train", np.arange(16), n)  # warm caches and plans
            # Each shard is deleted after its run: gigabytes of dirty pages would throttle the later runs.
            shard = best_rate(lambda r: produce_shard(Path(tmp), ShardPlan("train", 0, 0, count), spec, 0, n,
                                                      f"{spec.name}-{r}"), count, args.repeats,
                              cleanup=lambda: shutil.rmtree(Path(tmp) / "train"))
            compute = best_rate(lambda r: [generate_examples(spec, 0, "train", np.arange(i, min(i + step, count)), n)
                                           for i in range(0, count, step)], count, args.repeats)
            reference = best_rate(lambda r: reference_examples(spec, 0, "train", np.arange(args.reference_examples),
                                                               n), args.reference_examples, 1)
            print(f"{name:14} {shard:9.0f} {compute:10.0f} {reference:12.1f} {floor:9.0f} "
                  f"{shard / floor:12.2f} {compute / floor:14.2f} {shard / reference:10.1f}")


if __name__ == "__main__":
    main()
