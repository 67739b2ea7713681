"""Reading (and atomically writing) a dataset directory's ``manifest.json``; no Ray needed.

The manifest lists each split's shards in index order; a dataset is complete when its
manifest exists and every listed shard file is present. Readers use plain pyarrow.

Each shard entry carries a content hash of the shard file's bytes under a key that names
the algorithm: ``"xxh3_128"`` (XXH3, 128 bits, hex of the canonical big-endian digest) in
datasets written now, ``"sha256"`` in older ones. XXH3 is not cryptographic: it detects
corruption and accidental change (and shows two shards are the same bytes), not tampering;
it hashes at memory speed where sha256 cost about as much as an FFT per example.
:func:`shard_hash` reads either form and :func:`verify_shard` checks a file against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow.parquet as pq

from .schema import COEFF_COLUMNS, COLUMNS, FIELD_COLUMNS, MANIFEST_NAME, SPLITS, table_to_numpy

FORMAT_VERSION = 1
# The shard content hash written now: its algorithm, which is also its key in a shard entry.
SHARD_HASH = "xxh3_128"
SHARD_HASHES = ("xxh3_128", "sha256")  # the algorithms a shard entry may name (older datasets: sha256)
MANIFEST_KEYS = ("format_version", "name", "spec", "seed", "resolution", "counts", "shard_size",
                 "normalization", "rejections", "shards", "content_hash", "versions", "created")


def canonical_hash(payload: Any) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of ``payload``."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


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


def normalization(rms: np.ndarray, abs_coeffs: np.ndarray) -> dict[str, Any]:
    """SPEC 5 statistics: f_ref = median rms(f_i); c_ref[j] = median |c_ij| (1.0 where that is 0)."""
    rms = np.asarray(rms, dtype=np.float64)
    abs_coeffs = np.asarray(abs_coeffs, dtype=np.float64).reshape(-1, len(COEFF_COLUMNS))
    if rms.size == 0:
        raise ValueError("normalization: no examples to compute statistics from")
    c_ref = np.median(abs_coeffs, axis=0)
    c_ref = np.where(c_ref == 0, 1.0, c_ref)
    return {"f_ref": float(np.median(rms)), "c_ref": [float(c) for c in c_ref], "norm": "rms"}


def field_rms(fields: np.ndarray) -> np.ndarray:
    """Root mean square of each stored field (B, n, n), accumulated in float64: one dot product per field."""
    out = np.empty(len(fields))
    for start in range(0, len(fields), 8):  # a few rows at a time: no float64 copy of a whole block
        block = fields[start:start + 8]
        for row, values in enumerate(block.reshape(len(block), -1).astype(np.float64), start):
            out[row] = np.sqrt(values @ values / values.size)
    return out


def example_statistics(columns: Mapping[str, np.ndarray], rms: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per example: rms of the stored (float32) source (``field_rms``; pass ``rms`` where it is
    already known), and |coefficients|."""
    rms = field_rms(columns["source"]) if rms is None else rms
    abs_coeffs = np.abs(np.stack([np.asarray(columns[c], dtype=np.float64) for c in COEFF_COLUMNS], axis=1))
    return rms, abs_coeffs


def write_json_atomic(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write JSON through a temporary file in the same directory and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a manifest is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_NAME
    with open(path) as handle:
        manifest = json.load(handle)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    return manifest


def _check_split(manifest: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    return sorted(manifest["shards"][split], key=lambda shard: shard["start"])


def split_files(directory: str | os.PathLike, split: str, limit: int | None = None) -> list[str]:
    """Absolute shard paths of ``split`` in index order, only those covering its first ``limit`` rows."""
    directory = Path(directory).resolve()
    manifest = load_manifest(directory)
    shards = _check_split(manifest, split)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit: must be >= 0, got {limit}")
        shards = [s for s in shards if s["start"] < limit]
    return [str(directory / s["file"]) for s in shards]


def read_split(directory: str | os.PathLike, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """The first ``limit`` rows (all by default) of ``split`` as numpy, sorted by index.

    Fields come back as ``(rows, n, n)`` float32. Only the row groups needed are read.
    """
    directory = Path(directory).resolve()
    manifest = load_manifest(directory)
    shards = _check_split(manifest, split)
    if limit is not None and limit < 0:
        raise ValueError(f"limit: must be >= 0, got {limit}")
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
