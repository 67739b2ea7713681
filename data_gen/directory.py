"""The state of an output directory: which dataset it holds, leftovers of interrupted runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sciml.core.files import TEMP_SUFFIX
from sciml.core.layout import SPLITS
from sciml.data.schema import MANIFEST_NAME

MARKER_NAME = ".generating.json"  # names the dataset being written while the manifest is absent
_PART = re.compile(r"^part-(\d{5})\.parquet$")


class DatasetConflictError(ValueError):
    """The output directory holds (part of) a different dataset."""


def existing_hash(directory: Path) -> str | None:
    """Content hash of what the directory holds or is being filled with; None if nothing."""
    for name in (MANIFEST_NAME, MARKER_NAME):
        path = directory / name
        if path.is_file():
            try:
                return str(json.loads(path.read_text())["content_hash"])
            except (ValueError, KeyError, TypeError):
                raise DatasetConflictError(f"out_dir: {path} is not a readable dataset record") from None
    return None


def check_directory(directory: Path, content_hash: str) -> None:
    """Raise DatasetConflictError unless the directory is absent, empty of datasets, or holds this one."""
    if directory.exists() and not directory.is_dir():
        raise DatasetConflictError(f"out_dir: {directory} exists and is not a directory")
    found = existing_hash(directory) if directory.is_dir() else None
    if found is not None and found != content_hash:
        raise DatasetConflictError(
            f"out_dir: {directory} holds a different dataset (content hash {found[:12]}...); "
            "choose another directory or overwrite it (--overwrite)")


def clear_dataset(directory: Path) -> None:
    """Remove a previous dataset: only the files this package writes."""
    for name in (MANIFEST_NAME, MARKER_NAME):
        (directory / name).unlink(missing_ok=True)
    for split in SPLITS:
        folder = directory / split
        if folder.is_dir():
            for path in folder.iterdir():
                if _PART.match(path.name) or path.name.endswith(TEMP_SUFFIX):
                    path.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()


def remove_strays(directory: Path, shards_per_split: dict[str, int]) -> None:
    """Temporary files of interrupted writes, and shard files beyond the planned ones."""
    for split in SPLITS:
        folder = directory / split
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _PART.match(path.name)
            if path.name.endswith(TEMP_SUFFIX) or (match and int(match.group(1)) >= shards_per_split[split]):
                path.unlink()
