"""Ray Data views of dataset directories: splits, nested subsets and mixtures."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sciml.core.checks import check_choice, check_number
from sciml.core.layout import SPLITS
from sciml.data.manifest import load_manifest, split_files

# Selections whose shards hold at most this many bytes are read by the driver and handed to
# Ray as tables: Ray Data's read-then-materialize costs seconds of scheduling per dataset
# (5-10 s on a busy 2-core machine) even for a few kilobytes, and a sweep builds one per
# split and N. Larger selections keep Ray Data's parallel reads (and the driver's memory).
DRIVER_READ_LIMIT_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class DataSource:
    """One dataset directory and its share of a mixture (SPEC Q4: equal shares)."""

    path: str
    share: float = 1.0

    def __post_init__(self) -> None:
        check_number("share", self.share, 0, low_open=True)


def split_counts(sources: Sequence[DataSource], split: str, total: int | None) -> list[int]:
    """Rows taken from each source: shares of `total`, or the largest total the shares allow.

    The first rows by index are taken, so a smaller selection nests in a larger one.
    """
    check_choice("split", split, SPLITS)
    available = [split_total(s.path, split) for s in sources]
    weights = [s.share / sum(s.share for s in sources) for s in sources]
    if total is None:
        # A single source gives all its rows; a mixture keeps its shares exact.
        total = available[0] if len(sources) == 1 else int(min(a / w for a, w in zip(available, weights)))
    counts = [int(math.floor(w * total + 1e-9)) for w in weights]
    counts[0] += total - sum(counts)  # rounding remainder goes to the first source
    for source, want, have in zip(sources, counts, available):
        if want > have:
            raise ValueError(
                f"n_train: {source.path} has {have} {split} examples, {want} requested"
            )
    return counts


def split_total(path: str, split: str) -> int:
    return int(load_manifest(path)["counts"][split])


def read_selection(sources: Sequence[DataSource], split: str, total: int | None = None,
                   num_cpus: float | None = None):
    """A Ray Dataset of the first rows (by index) of `split` from each source, shares kept.

    `num_cpus` is what each of its read and map tasks asks for (Ray Data's default: 1). A
    selection read from inside a Tune trial on a cluster the trials fill needs 0: trials hold
    every CPU, and tasks waiting for one would wait forever (docs/cluster.md, "Large datasets").
    """
    import ray.data

    cpus = {} if num_cpus is None else {"num_cpus": num_cpus}
    context = ray.data.DataContext.get_current()
    v2 = context.use_datasource_v2
    if num_cpus is not None:
        # Ray 2.60's datasource v2 lists files in a task of its own that always asks for 1 CPU;
        # v1 lists them here and honours num_cpus in every task.
        context.use_datasource_v2 = False
    try:
        return _read_selection(sources, split, total, cpus)
    finally:
        context.use_datasource_v2 = v2


def _read_selection(sources: Sequence[DataSource], split: str, total: int | None, cpus: dict):
    import ray.data
    from ray.data.expressions import col

    datasets = []
    for origin, (source, count) in enumerate(zip(sources, split_counts(sources, split, total))):
        if count == 0:
            continue
        files = split_files(source.path, split, limit=count)
        ds = ray.data.read_parquet(files, file_extensions=["parquet"], **cpus)
        if count < split_total(source.path, split):
            ds = ds.filter(expr=col("index") < count, **cpus)
        if len(sources) > 1:
            # Indices repeat across sources; `origin` keeps the mixture's row order stable.
            ds = ds.add_column("origin", lambda batch, o=origin: np.full(len(batch["index"]), o, np.int64),
                               batch_format="numpy", **cpus)
        datasets.append(ds)
    if not datasets:
        raise ValueError(f"{split}: the selection holds no examples")
    return datasets[0] if len(datasets) == 1 else datasets[0].union(*datasets[1:])


def materialized_selection(sources: Sequence[DataSource], split: str, total: int | None = None):
    """The rows of ``read_selection``, materialised in the object store.

    Small selections are read here with pyarrow (one block per shard, the blocks a Parquet
    read makes); large ones through Ray Data. Rows and columns are the same either way.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import ray.data

    counts = split_counts(sources, split, total)
    files = [split_files(s.path, split, limit=c) if c else [] for s, c in zip(sources, counts)]
    if sum(os.path.getsize(f) for group in files for f in group) > DRIVER_READ_LIMIT_BYTES:
        return read_selection(sources, split, total).materialize()
    tables = []
    for origin, (source, count, group) in enumerate(zip(sources, counts, files)):
        for file in group:
            table = pq.read_table(file)
            if count < split_total(source.path, split):
                table = table.filter(pc.less(table["index"], count))
            if len(sources) > 1:
                table = table.append_column("origin", pa.array(np.full(table.num_rows, origin, np.int64)))
            if table.num_rows:
                tables.append(table)
    if not tables:
        raise ValueError(f"{split}: the selection holds no examples")
    return ray.data.from_arrow(tables)
