"""Shards: which rows each file holds, writing or re-validating one file, and the manifest listing them.

A shard is ``DIR/<split>/part-NNNNN.parquet`` with the rows [start, stop) of its split,
sorted by index, in row groups of a fixed size. It is written under a temporary name in
the same directory and renamed into place, so a final name always holds a whole shard.
The writer (:mod:`.parquet_writer`: the file pyarrow writes with fixed options, without
its per-value level encoding) hashes the bytes as it writes them, and the footer carries
only deterministic metadata, so the same shard has the same bytes however and whenever it
was produced.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow.parquet as pq

from sciml.core.files import atomic_path
from sciml.core.layout import COEFF_COLUMNS, SPLITS
from sciml.core.statistics import example_statistics, normalization
from sciml.data.manifest import FORMAT_VERSION, SHARD_HASH, file_hash, software_versions
from sciml.data.schema import arrow_schema, shard_name, table_to_numpy
from sciml.physics import SystemSpec, generate_examples

from .parquet_writer import ShardFileWriter, expected_size, reserve

_FIELD_BYTES_PER_GROUP = 16 << 20  # per field column: bounds the memory of one row group
_META_PREFIX = "sciml."


def row_group_rows(resolution: int) -> int:
    """Rows per row group (and per generation step): a function of the grid only."""
    return max(1, min(1024, _FIELD_BYTES_PER_GROUP // (4 * resolution * resolution)))


@dataclass(frozen=True)
class ShardPlan:
    split: str
    shard: int
    start: int
    stop: int

    @property
    def file(self) -> str:
        """Path relative to the dataset directory, as the manifest records it."""
        return f"{self.split}/{shard_name(self.shard)}"

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_shards(counts: Mapping[str, int], shard_size: int) -> list[ShardPlan]:
    return [ShardPlan(split, start // shard_size, start, min(start + shard_size, counts[split]))
            for split in SPLITS for start in range(0, counts[split], shard_size)]


@dataclass(frozen=True)
class ShardResult:
    """What the manifest and the normalization statistics need from one shard."""

    plan: ShardPlan
    digest: str  # the shard file's content hash (manifest.SHARD_HASH)
    rejections: int
    rms: np.ndarray  # per example, of the stored source
    abs_coeffs: np.ndarray  # (rows, 6) in COEFF_COLUMNS order


def write_shard(final: Path, batches: Iterable[Mapping[str, np.ndarray]], resolution: int,
                footer: Mapping[str, str], rows: int | None = None) -> str:
    """Write column batches (one row group each) as ``final`` atomically; return its content hash.

    ``footer`` goes into the file's key-value metadata under the ``sciml.`` prefix; it is
    read after the batches are consumed, so a generator may fill it in as it goes. With
    ``rows`` (the total), the file's disk space is reserved up front (see ``reserve``).
    """
    schema = arrow_schema(resolution)
    with atomic_path(final) as tmp, open(tmp, "wb") as handle:
        reserved = rows is not None and reserve(handle, expected_size(schema, rows))
        writer = ShardFileWriter(handle, schema)
        for columns in batches:
            writer.write_row_group(columns)
        digest = writer.close({_META_PREFIX + k: str(v) for k, v in footer.items()})
        if reserved:
            handle.truncate()  # at the end of what was written: drop the rest of the reservation
    return digest


def read_footer(path: Path) -> tuple[dict[str, str], int] | None:
    """The ``sciml.`` footer metadata and row count of a shard; None if it is not a readable shard."""
    try:
        meta = pq.read_metadata(path)
    except (OSError, ValueError):
        return None
    prefix = _META_PREFIX.encode()
    footer = {k[len(prefix):].decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.startswith(prefix)}
    return footer, meta.num_rows


def expected_footer(plan: ShardPlan, content_hash: str) -> dict[str, str]:
    return {"content_hash": content_hash, "split": plan.split, "start": str(plan.start), "stop": str(plan.stop)}


def _generated_batches(spec: SystemSpec, seed: int, resolution: int, plan: ShardPlan, footer: dict[str, str],
                       stats: list[tuple[np.ndarray, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    step = row_group_rows(resolution)
    rejections = 0
    for start in range(plan.start, plan.stop, step):
        columns = generate_examples(spec, seed, plan.split, np.arange(start, min(start + step, plan.stop)), resolution,
                                    source_rms=True)
        rejections += int(columns.pop("rejected").sum())
        stats.append(example_statistics(columns, rms=columns.pop("source_rms")))  # rms from the generator
        yield columns
    footer["rejections"] = str(rejections)


def produce_shard(directory: Path, plan: ShardPlan, spec: SystemSpec, seed: int, resolution: int,
                  content_hash: str) -> ShardResult:
    """Reuse the shard if its file already holds exactly these rows of this dataset, else write it."""
    final = directory / plan.file
    footer = expected_footer(plan, content_hash)
    found = read_footer(final) if final.is_file() else None
    if found is not None and found[1] == plan.rows and "rejections" in found[0] \
            and all(found[0].get(k) == v for k, v in footer.items()):
        columns = table_to_numpy(pq.read_table(final, columns=["source", *COEFF_COLUMNS]))
        rms, abs_coeffs = example_statistics(columns)
        return ShardResult(plan, file_hash(final), int(found[0]["rejections"]), rms, abs_coeffs)
    stats: list[tuple[np.ndarray, np.ndarray]] = []
    digest = write_shard(final, _generated_batches(spec, seed, resolution, plan, footer, stats), resolution, footer,
                         plan.rows)
    rms = np.concatenate([s[0] for s in stats])
    abs_coeffs = np.concatenate([s[1] for s in stats])
    return ShardResult(plan, digest, int(footer["rejections"]), rms, abs_coeffs)


def dataset_manifest(results: Sequence[ShardResult], *, name: str, spec: Mapping[str, Any], seed: int | None,
                     resolution: int, counts: Mapping[str, int], shard_size: int, content_hash: str
                     ) -> dict[str, Any]:
    """The manifest of a dataset made of ``results`` (generated or imported), keys in MANIFEST_KEYS order.

    The normalization statistics come from the first split that holds examples (train,
    else val, else test): SPEC 5 takes them from the training data.
    """
    reference = next(split for split in SPLITS if counts[split] > 0)
    ref_results = [r for r in results if r.plan.split == reference]
    norm = normalization(np.concatenate([r.rms for r in ref_results]),
                         np.concatenate([r.abs_coeffs for r in ref_results]))
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "spec": dict(spec),
        "seed": seed,
        "resolution": resolution,
        "counts": dict(counts),
        "shard_size": shard_size,
        "normalization": norm,
        "rejections": {split: sum(r.rejections for r in results if r.plan.split == split) for split in SPLITS},
        "shards": {split: [{"file": r.plan.file, "start": r.plan.start, "stop": r.plan.stop, "rows": r.plan.rows,
                            SHARD_HASH: r.digest} for r in results if r.plan.split == split] for split in SPLITS},
        "content_hash": content_hash,
        "versions": software_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
