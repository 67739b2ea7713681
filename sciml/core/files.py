"""Atomic writes and canonical hashing: the one way files are written in this project.

Every file a reader may pick up (manifests, shards, model files, tables, figures, state)
is written under a temporary name in its final directory and renamed into place, so a
final name never holds half a file, whatever kills the writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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


def copy_file(source: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Copy ``source`` to ``final`` atomically (a reader never sees a partial copy); returns the final path."""
    with atomic_path(final) as tmp:
        shutil.copyfile(source, tmp)
    return Path(final)


def canonical_json(payload: Any) -> str:
    """JSON with sorted keys and no spaces: equal payloads give equal text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_hash(payload: Any) -> str:
    """sha256 (hex) of :func:`canonical_json`: a content identity for settings and requests."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def cache_key(payload: Any, length: int = 12) -> str:
    """A short sha256 prefix naming a cache entry (sweep datasets, pre-trained models) or deriving a seed.

    Its JSON text is frozen as it was first written (default separators, values JSON cannot
    hold as strings), not :func:`canonical_json`: existing cache directories and every
    sweep dataset's seed are keyed by these exact bytes, so switching would silently
    regenerate and retrain everything.
    """
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
