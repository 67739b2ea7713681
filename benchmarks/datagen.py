"""Data-generation throughput per core at 128 x 128, Parquet writing included.

One process, one thread. For each system it times, side by side:
  shard      the real shard path: generate, write Parquet (atomic, hashed while written),
             normalization statistics, exactly what a Ray worker does per shard
  compute    generate_examples alone (no I/O), in the shard writer's batches
  reference  the published algorithm (per-Gaussian loop, fft2/ifft2, one example at a time)
  floor      a float64 rfft2 + irfft2 round trip per example, same FFT library (numpy)
and, per example, what the shard path cannot avoid: the inverse FFT of the solution, the
content hash of the shard's bytes (XXH3-128, the manifest's shard hash; sha256, the former
one, for comparison) and writing them to the file system (into a new file, as is and with
its space reserved first, as the shard writer does).

Rates are examples per CPU-second of this process (time.process_time, so other load on the
machine counts only through shared caches and memory), the median of --repeats runs; the
variants are interleaved within each repeat so that drifting load affects them alike, and
the spread of shard/floor over the repeats (each repeat's shard rate over its own floor)
is printed too.
Run:  python benchmarks/datagen.py
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
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from data_gen import allocator  # noqa: E402
from data_gen.parquet_writer import PYARROW_WRITE_OPTIONS  # noqa: E402
from data_gen.parquet_writer import ShardFileWriter, reserve  # noqa: E402
from data_gen.shards import ShardPlan, produce_shard, row_group_rows, write_shard  # noqa: E402
from sciml.core.statistics import example_statistics  # noqa: E402
from sciml.data.manifest import SHARD_HASH, file_sha256, new_digest  # noqa: E402
from sciml.data.schema import arrow_schema, to_table  # noqa: E402
from sciml.physics import SystemSpec, generate_examples  # noqa: E402
from sciml.physics.reference import reference_examples  # noqa: E402

SYSTEMS = ("SYS-1(1,5)", "SYS-2(0.2,1)", "SYS-3(1,10)")
TARGET_RATE = 1000.0  # examples per second per core, every system, Parquet writing included
TARGET_FLOOR = 0.6  # of the floor's rate


def cpu_seconds(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--examples", type=int, default=1024, help="per shard / compute run")
    parser.add_argument("--reference-examples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9, help="runs; single runs vary by +-0.1 of the floor here")
    parser.add_argument("--dir", default=None, help="where shards are written (default: a temporary directory)")
    args = parser.parse_args()
    n, count, repeats = args.resolution, args.examples, args.repeats
    allocator.tune()  # as the Ray workers do; applies to every variant below
    step = row_group_rows(n)
    specs = [SystemSpec.parse(name) for name in SYSTEMS]
    for spec in specs:
        generate_examples(spec, 0, "train", np.arange(16), n)  # warm caches and plans
    fields = np.random.default_rng(0).random((count, n, n))
    spectra = np.fft.rfft2(fields[:step])
    sample = generate_examples(specs[0], 0, "train", np.arange(step), n)
    sample.pop("rejected")
    payload = [np.ascontiguousarray(sample[f]) for f in ("source", "solution")]
    row_bytes = sum(p[0].nbytes for p in payload)

    def floor() -> None:
        for field in fields:
            np.fft.irfft2(np.fft.rfft2(field), s=(n, n))

    def inverse_fft() -> None:  # one per example, in the generator's batches
        for start in range(0, step, 8):
            np.fft.irfft2(spectra[start:start + 8], s=(n, n))

    def hash_only(algorithm: str) -> Callable[[], None]:
        def run() -> None:
            digest = new_digest(algorithm)
            for part in payload:
                digest.update(part)
        return run

    rates: dict[str, list[float]] = {}
    costs: dict[str, list[float]] = {}

    def note(table: dict, key: str, value: float) -> None:
        table.setdefault(key, []).append(value)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)

        def write_only() -> None:  # the fields' bytes to a new file
            with open(root / "raw.bin", "wb") as handle:
                for part in payload:
                    handle.write(part)

        def write_reserved() -> None:  # the same into a file whose space is reserved first, as shards are
            with open(root / "reserved.bin", "wb") as handle:
                reserve(handle, sum(part.nbytes for part in payload))
                for part in payload:
                    handle.write(part)

        def direct_writer() -> None:  # this repository's shard writer, hashing as it writes
            write_shard(root / "direct.parquet", [sample], n, {"k": "v"}, rows=step)

        def direct_writer_sha256() -> None:  # the former shard writer: sha256, no space reserved
            with open(root / "direct-sha.parquet", "wb") as handle:
                writer = ShardFileWriter(handle, arrow_schema(n), "sha256")
                writer.write_row_group(sample)
                writer.close({"k": "v"})

        def pyarrow_writer() -> None:  # the former way: pyarrow.parquet.ParquetWriter, then sha256 of the file
            with pq.ParquetWriter(root / "pyarrow.parquet", arrow_schema(n), **PYARROW_WRITE_OPTIONS) as writer:
                writer.write_table(to_table(sample), row_group_size=step)
            file_sha256(root / "pyarrow.parquet")

        def statistics() -> None:  # on the 256 rows just generated, as the former shard path did
            example_statistics(sample)

        # Per-example costs first: before any shard has been written and deleted (freed disk
        # blocks make the next allocations on some file systems slower for a while).
        for r in range(repeats):
            for name, run in (("irfft2 of the solution", inverse_fft),
                              (f"{SHARD_HASH} of the bytes", hash_only(SHARD_HASH)),
                              ("sha256 of the bytes (before)", hash_only("sha256")),
                              ("write(2) of the bytes", write_only),
                              ("write(2) of the bytes, space reserved", write_reserved),
                              (f"Parquet write + {SHARD_HASH}, shard writer", direct_writer),
                              ("Parquet write + sha256, shard writer (before)", direct_writer_sha256),
                              ("Parquet write + sha256, pyarrow (older)", pyarrow_writer),
                              ("statistics, example_statistics (before)", statistics)):
                note(costs, name, cpu_seconds(run) / step * 1e6)
            for leftover in root.iterdir():
                leftover.unlink()
        for r in range(repeats):
            note(rates, "floor", count / cpu_seconds(floor))
            for spec in specs:
                # Each shard is deleted after its run: gigabytes of dirty pages would throttle the later runs.
                plan = ShardPlan("train", 0, 0, count)
                shard = cpu_seconds(lambda: produce_shard(root, plan, spec, 0, n, f"{spec.name}-{r}"))
                shutil.rmtree(root / "train")
                note(rates, f"shard {spec.name}", count / shard)
                compute = cpu_seconds(lambda: [generate_examples(spec, 0, "train", np.arange(i, min(i + step, count)),
                                                                 n) for i in range(0, count, step)])
                note(rates, f"compute {spec.name}", count / compute)
        reference = {spec.name: args.reference_examples
                     / cpu_seconds(lambda: reference_examples(spec, 0, "train", np.arange(args.reference_examples), n))
                     for spec in specs}

    def median(values: list[float]) -> float:
        return float(np.median(values))

    floor_rate = median(rates["floor"])
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}, pyarrow {pa.__version__}, "
          f"1 thread, n = {n}, {count} examples per run, median of {repeats} interleaved runs")
    print(f"{'system':14} {'shard/s':>8} {'compute/s':>10} {'reference/s':>12} {'floor/s':>8} "
          f"{'shard/floor':>12} {'compute/floor':>14} {'shard/ref':>10} {'shard/floor per run':>22}")
    met_rate = met_shard = met_compute = True
    for spec in specs:
        shard, compute = median(rates[f"shard {spec.name}"]), median(rates[f"compute {spec.name}"])
        met_rate &= shard >= TARGET_RATE
        met_shard &= shard >= TARGET_FLOOR * floor_rate
        met_compute &= compute >= TARGET_FLOOR * floor_rate
        per_run = np.array(rates[f"shard {spec.name}"]) / np.array(rates["floor"])
        print(f"{spec.name:14} {shard:8.0f} {compute:10.0f} {reference[spec.name]:12.1f} {floor_rate:8.0f} "
              f"{shard / floor_rate:12.2f} {compute / floor_rate:14.2f} {shard / reference[spec.name]:10.1f} "
              f"{per_run.min():10.2f} .. {per_run.max():.2f}")
    print()
    print(f"per example (us, median), {row_bytes / 1024:.0f} KiB of field bytes:")
    for name, values in costs.items():
        print(f"  {name:46} {median(values):7.1f}")
    floor_us = 1e6 / floor_rate
    unavoidable = sum(median(costs[k]) for k in ("irfft2 of the solution", f"{SHARD_HASH} of the bytes",
                                                 "write(2) of the bytes, space reserved"))
    print(f"  {'floor round trip':46} {floor_us:7.1f}")
    print(f"  irfft2 + {SHARD_HASH} + write(2) = {unavoidable:.1f} us: with nothing else to do, the shard path could "
          f"reach {floor_us / unavoidable:.2f} of the floor")
    print()
    print(f"target >= {TARGET_RATE:.0f} examples/s/core on the shard path, every system: "
          f"{'met' if met_rate else 'NOT met'}")
    print(f"target >= {TARGET_FLOOR:.0%} of the floor on the shard path (Parquet + {SHARD_HASH} included), "
          f"every system: {'met' if met_shard else 'NOT met'}")
    print(f"          >= {TARGET_FLOOR:.0%} of the floor for compute alone, every system: "
          f"{'met' if met_compute else 'NOT met'}")


if __name__ == "__main__":
    main()
