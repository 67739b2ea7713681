"""Reading a dataset directory's ``manifest.json`` and its shards; no Ray needed.

The manifest lists each split's shards in index order; a dataset is complete when its
manifest exists and every listed shard file is present. Readers use plain pyarrow.
``data_gen`` writes it (``data_gen.shards.dataset_manifest``, exactly MANIFEST_KEYS).

Each shard entry carries a content hash of the shard file's bytes under a key that names
the algorithm: ``"xxh3_128"`` (XXH3, 128 bits, hex of the canonical big-endian digest) in
datasets written now, ``"sha256"`` in older ones. XXH3 is not cryptographic: it detects
corruption and accidental change (and shows two shards are the same bytes), not tampering;
it hashes at memory speed where sha256 cost about as much as an FFT per example.
:func:`shard_hash` reads either form and :func:`verify_shard` checks a file against it;
:mod:`.verify` checks a whole dataset (every shard present, readable, rows, hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow.parquet as pq

from sciml.core.checks import check_choice, check_int
from sciml.core.layout import COLUMNS, FIELD_COLUMNS, SPLITS

from .schema import MANIFEST_NAME, table_to_numpy

FORMAT_VERSION = 1
# The shard content hash written now: its algorithm, which is also its key in a shard entry.
SHARD_HASH = "xxh3_128"
SHARD_HASHES = ("xxh3_128", "sha256")  # the algorithms a shard entry may name (older datasets: sha256)
MANIFEST_KEYS = ("format_version", "name", "spec", "seed", "resolution", "counts", "shard_size",
                 "normalization", "rejections", "shards", "content_hash", "versions", "created")


def new_digest(algorithm: str = SHARD_HASH):
    """A fresh hashlib-style object (``update``, ``hexdigest``) for one of SHARD_HASHES."""
    if algorithm == "xxh3_128":
        import xxhash  # only where shards are hashed: plain readers do not need it

        return xxhash.xxh3_128()
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown shard hash algorithm {algorithm!r}; known: {', '.join(SHARD_HASHES)}")


def file_hash(path: str | os.PathLike, algorithm: str = SHARD_HASH) -> str:
    """Hex digest of a file's bytes with ``algorithm`` (default: the shard hash written now)."""
    digest = new_digest(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    return file_hash(path, "sha256")


def shard_hash(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(algorithm, hex digest) of a manifest shard entry, whichever algorithm it names."""
    for algorithm in SHARD_HASHES:
        if algorithm in entry:
            return algorithm, str(entry[algorithm])
    raise KeyError(f"shard entry {entry.get('file')!r} has no content hash (expected one of {SHARD_HASHES})")


def verify_shard(directory: str | os.PathLike, entry: Mapping[str, Any]) -> bool:
    """True when the shard file of ``entry`` exists and has the content hash the entry records."""
    algorithm, value = shard_hash(entry)
    path = Path(directory) / entry["file"]
    return path.is_file() and file_hash(path, algorithm) == value


def software_versions() -> dict[str, str]:
    """Versions that produced a dataset (looked up without importing Ray)."""
    out = {"python": platform.python_version()}
    for key, dist in (("numpy", "numpy"), ("pyarrow", "pyarrow"), ("ray", "ray"), ("sciml", "sciml-foundation")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = "not installed"
    return out


def load_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    with open(path) as handle:
        manifest = json.load(handle)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    return manifest


def _check_split(manifest: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    check_choice("split", split, SPLITS)
    return sorted(manifest["shards"][split], key=lambda shard: shard["start"])


def split_files(directory: str | os.PathLike, split: str, limit: int | None = None) -> list[str]:
    """Absolute shard paths of ``split`` in index order, only those covering its first ``limit`` rows."""
    directory = Path(directory).resolve()
    manifest = load_manifest(directory)
    shards = _check_split(manifest, split)
    if limit is not None:
        limit = check_int("limit", limit, 0)
        shards = [s for s in shards if s["start"] < limit]
    return [str(directory / s["file"]) for s in shards]


def read_split(directory: str | os.PathLike, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """The first ``limit`` rows (all by default) of ``split`` as numpy, sorted by index.

    Fields come back as ``(rows, n, n)`` float32. Only the row groups needed are read.
    """
    directory = Path(directory).resolve()
    manifest = load_manifest(directory)
    shards = _check_split(manifest, split)
    if limit is not None:
        check_int("limit", limit, 0)
    total = manifest["counts"][split]
    wanted = total if limit is None else min(int(limit), total)
    parts: list[dict[str, np.ndarray]] = []
    for shard in shards:
        if shard["start"] >= wanted:
            break
        need = min(shard["stop"], wanted) - shard["start"]
        parquet = pq.ParquetFile(directory / shard["file"])
        groups, rows = [], 0
        for group in range(parquet.num_row_groups):
            if rows >= need:
                break
            groups.append(group)
            rows += parquet.metadata.row_group(group).num_rows
        parts.append({k: v[:need] for k, v in table_to_numpy(parquet.read_row_groups(groups)).items()})
    if not parts:
        return _empty_columns(manifest["resolution"])
    out = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    order = np.argsort(out["index"], kind="stable")
    if np.any(order != np.arange(len(order))):
        out = {name: values[order] for name, values in out.items()}
    return out


def _empty_columns(n: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        if name in FIELD_COLUMNS:
            out[name] = np.empty((0, n, n), dtype=np.float32)
        elif name == "index":
            out[name] = np.empty(0, dtype=np.int64)
        else:
            out[name] = np.empty(0, dtype=np.float64)
    return out


def is_complete(directory: str | os.PathLike) -> bool:
    """True when the manifest exists, its shards tile every split and all shard files exist."""
    directory = Path(directory)
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError):
        return False
    for split in SPLITS:
        position = 0
        for shard in _check_split(manifest, split):
            if shard["start"] != position or shard["rows"] != shard["stop"] - shard["start"]:
                return False
            if not (directory / shard["file"]).is_file():
                return False
            position = shard["stop"]
        if position != manifest["counts"][split]:
            return False
    return True
