"""Atomic writes and canonical hashing: the one way files are written in this project.

Every file a reader may pick up (manifests, shards, model files, tables, figures, state)
is written under a temporary name in its final directory and renamed into place, so a
final name never holds half a file, whatever kills the writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

TEMP_SUFFIX = ".tmp"


def temp_path(final: str | os.PathLike) -> Path:
    """A unique hidden temporary name next to ``final`` (same directory: the rename is atomic).

    It keeps ``final``'s extension before ``.tmp`` only in the middle of the name, so tools
    that infer a format from the name must be told the format explicitly.
    """
    final = Path(final)
    return final.with_name(f".{final.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")


@contextmanager
def atomic_path(final: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``final``, on error removed.

    The parent directory is created if needed. ``mode`` is applied before the rename
    (temporary files may be created 0600; results are meant to be shared).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, mode)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically; returns the final path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON (values JSON cannot hold become strings) atomically."""
    return write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def canonical_json(payload: Any) -> str:
    """JSON with sorted keys and no spaces: equal payloads give equal text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_hash(payload: Any) -> str:
    """sha256 (hex) of :func:`canonical_json`: a content identity for settings and requests."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
