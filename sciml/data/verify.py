"""Checking a dataset directory against its manifest: damaged data is never trusted.

:func:`verify_dataset` checks every shard the manifest lists: the file is present, its
Parquet footer is readable and holds the rows recorded, and its bytes have the content
hash recorded (``manifest.shard_hash``: XXH3-128, or sha256 in older datasets). The hash
reads every byte once; XXH3 runs at memory speed, so the cost is that of reading the
files (measured in docs/benchmarks.md, "Verifying a dataset"). Readers that refuse a
damaged dataset (``python -m sciml.train``) raise :func:`check_dataset`'s error, which
names the shard and the command that repairs it (:func:`repair_command`).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pyarrow.parquet as pq

from sciml.core.layout import SPLITS

from .manifest import file_hash, load_manifest, shard_hash
from .schema import MANIFEST_NAME


class NotADatasetError(ValueError):
    """The directory holds no readable manifest, or one whose shards do not tile its splits."""


@dataclass(frozen=True)
class BadShard:
    """One shard that failed verification: its manifest entry and why."""

    split: str
    entry: Mapping[str, Any]
    reason: str

    @property
    def file(self) -> str:
        return str(self.entry["file"])

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest, checked to tile every split with its shards; NotADatasetError otherwise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADatasetError(f"{directory} is not a directory")
    if not (directory / MANIFEST_NAME).is_file():
        raise NotADatasetError(f"{directory} holds no {MANIFEST_NAME} (not a dataset, or its generation never "
                               "finished)")
    try:
        manifest = load_manifest(directory)
        for split in SPLITS:
            position = 0
            for entry in sorted(manifest["shards"][split], key=lambda e: e["start"]):
                shard_hash(entry)  # raises KeyError without a hash
                if entry["start"] != position or entry["rows"] != entry["stop"] - entry["start"]:
                    raise ValueError(f"shard {entry['file']} does not continue split {split} at row {position}")
                position = entry["stop"]
            if position != manifest["counts"][split]:
                raise ValueError(f"the {split} shards hold {position} rows, counts say {manifest['counts'][split]}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NotADatasetError(f"{directory / MANIFEST_NAME} is not a readable dataset manifest ({error})") from None
    return manifest


def _check_shard(directory: Path, split: str, entry: Mapping[str, Any]) -> BadShard | None:
    path = directory / entry["file"]
    if not path.is_file():
        return BadShard(split, entry, "missing")
    try:
        rows = pq.read_metadata(path).num_rows
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        return BadShard(split, entry, f"not a readable Parquet file ({' '.join(str(error).split())[:120]})")
    if rows != entry["rows"]:
        return BadShard(split, entry, f"holds {rows} rows, the manifest lists {entry['rows']}")
    algorithm, value = shard_hash(entry)
    try:
        found = file_hash(path, algorithm)
    except OSError as error:
        return BadShard(split, entry, f"cannot be read ({error})")
    if found != value:
        return BadShard(split, entry, f"{algorithm} content hash {found[:12]}... differs from the manifest's "
                                      f"{value[:12]}... (damaged or changed)")
    return None


def verify_dataset(directory: str | os.PathLike, manifest: Mapping[str, Any] | None = None) -> list[BadShard]:
    """Every shard of the dataset that is missing, unreadable, of the wrong length or hash ([] = intact).

    Raises NotADatasetError when the directory holds no readable manifest.
    """
    directory = Path(directory)
    manifest = read_manifest(directory) if manifest is None else manifest
    bad = []
    for split in SPLITS:
        for entry in manifest["shards"][split]:
            problem = _check_shard(directory, split, entry)
            if problem is not None:
                bad.append(problem)
    return bad


def repair_command(directory: str | os.PathLike, manifest: Mapping[str, Any]) -> str:
    """The command that regenerates the damaged or missing shards of a generated dataset, in place.

    A rerun of ``python -m data_gen`` with the manifest's own arguments verifies the shards
    and regenerates exactly the bad ones (same bytes: examples are seeded one by one).
    Imported datasets (no seed) are repaired by importing them again.
    """
    spec, counts = manifest.get("spec", {}), manifest.get("counts", {})
    if manifest.get("seed") is None or not {"system", "lo", "hi"} <= set(spec):
        return f"import it again (python -m data_gen.convert ... --out {shlex.quote(str(directory))})"
    return shlex.join(["python", "-m", "data_gen", "--system", str(spec["system"]), "--range", repr(spec["lo"]),
                       repr(spec["hi"]), "--n-train", str(counts["train"]), "--n-val", str(counts["val"]),
                       "--n-test", str(counts["test"]), "--resolution", str(manifest["resolution"]),
                       "--seed", str(manifest["seed"]), "--shard-size", str(manifest["shard_size"]),
                       "--out", str(directory)])


def describe_bad(bad: list[BadShard], limit: int = 3) -> str:
    """The first ``limit`` bad shards on one line, with a count of the rest."""
    text = "; ".join(str(b) for b in bad[:limit])
    return text + (f"; and {len(bad) - limit} more" if len(bad) > limit else "")


def check_dataset(directory: str | os.PathLike, field: str = "data") -> dict[str, Any]:
    """The manifest of an intact dataset; ValueError('<field>: ...') naming the bad shards and the repair."""
    try:
        manifest = read_manifest(directory)
    except NotADatasetError as error:
        raise ValueError(f"{field}: {error} (run python -m data_gen first)") from None
    bad = verify_dataset(directory, manifest)
    if bad:
        raise ValueError(f"{field}: {directory} is damaged, {len(bad)} shard(s) fail verification: "
                         f"{describe_bad(bad)}; repair with: {repair_command(directory, manifest)}")
    return manifest
