"""Paper-format interchange (SPEC 9): the published generator's HDF5 files <-> a dataset directory.

  python -m data_gen.convert import --system S --train A.h5 --val B.h5 --test C.h5 --out DIR
  python -m data_gen.convert export DIR --out-prefix P      # writes P_train.h5, P_val.h5, P_test.h5

HDF5 layout: ``fields`` (n, 2, H, W) float32 = [source, solution], ``tensor`` (n, 3) Poisson
(k11, k22, k12), (n, 5) advection-diffusion (k11, k22, k12, v1, v2), (n, 2) Helmholtz (D, omega),
and for advection-diffusion ``other`` (n, 1) = Psi. Import then export gives back ``fields``,
``tensor`` and ``other`` bit for bit (float32 -> float64 -> float32 is exact).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from sciml.cli import OneLineParser, fail_for_field
from sciml.core.checks import check_choice, check_int, check_resolution
from sciml.core.files import atomic_path, canonical_hash, write_json
from sciml.core.layout import COEFF_COLUMNS, SPLITS
from sciml.core.statistics import example_statistics
from sciml.data.manifest import file_sha256, is_complete, load_manifest, read_split
from sciml.data.schema import MANIFEST_NAME
from sciml.physics import D, SYSTEMS, SystemSpec

from .directory import DatasetConflictError, check_directory, clear_dataset
from .shards import ShardPlan, ShardResult, dataset_manifest, plan_shards, write_shard

PROG = "python -m data_gen.convert"
TENSOR_WIDTH = {"poisson": 3, "advdiff": 5, "helmholtz": 2}
IMPORT_FORMAT = "paper-hdf5"
# Which command-line flag names each field of the library's messages.
FLAGS = {"system": "--system", "train": "--train", "val": "--val", "test": "--test", "files": "--train/--val/--test",
         "value_range": "--range", "lo": "--range", "hi": "--range", "shard_size": "--shard-size",
         "out_dir": "--out", "directory": "DIR", "out_prefix": "--out-prefix"}


class BadInput(ValueError):
    """Input rejected before anything is written; the message starts with the field (an argument name)."""


# ---------------------------------------------------------------- paper layout <-> columns

def columns_from_paper(system: str, fields: np.ndarray, tensor: np.ndarray, other: np.ndarray | None,
                       start: int) -> dict[str, np.ndarray]:
    """Rows of the paper's arrays as this project's columns (index counts from ``start``)."""
    rows = len(fields)
    tensor = np.asarray(tensor, dtype=np.float64)
    zeros = np.zeros(rows)
    if system == "helmholtz":
        coeffs = {"k11": tensor[:, 0], "k22": tensor[:, 0].copy(), "k12": zeros, "v1": zeros, "v2": zeros,
                  "omega": tensor[:, 1]}
    else:
        coeffs = {name: tensor[:, j] if j < tensor.shape[1] else zeros for j, name in enumerate(COEFF_COLUMNS)}
    psi = np.asarray(other, dtype=np.float64)[:, 0] if system == "advdiff" else np.full(rows, np.nan)
    return {"index": np.arange(start, start + rows, dtype=np.int64), "source": fields[:, 0], "solution": fields[:, 1],
            **coeffs, "psi": psi, "sparsity": np.full(rows, np.nan)}


def paper_from_columns(system: str, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This project's columns as the paper's ``fields``, ``tensor`` (and ``other``), float32."""
    out = {"fields": np.stack([columns["source"], columns["solution"]], axis=1).astype(np.float32)}
    if system == "helmholtz":
        out["tensor"] = np.stack([columns["k11"], columns["omega"]], axis=1).astype(np.float32)
    else:
        names = COEFF_COLUMNS[:TENSOR_WIDTH[system]]
        out["tensor"] = np.stack([columns[c] for c in names], axis=1).astype(np.float32)
    if system == "advdiff":
        out["other"] = columns["psi"].astype(np.float32)[:, None]
    return out


# ---------------------------------------------------------------- import

def _open_paper_file(split: str, path: str, system: str) -> tuple[h5py.File, int, int]:
    """Open and check one HDF5 file; returns (file, rows, resolution)."""
    if not Path(path).is_file():
        raise BadInput(f"{split}: no such file {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise BadInput(f"{split}: cannot read {path} as HDF5 ({error})") from None
    try:
        fields = handle.get("fields")
        tensor = handle.get("tensor")
        if not isinstance(fields, h5py.Dataset) or fields.ndim != 4 or fields.shape[1] != 2 \
                or fields.shape[2] != fields.shape[3]:
            raise BadInput(f"{split}: {path} needs 'fields' (n, 2, H, H)")
        try:
            check_resolution("H", fields.shape[2])
        except ValueError as error:
            raise BadInput(f"{split}: {path} 'fields' (n, 2, H, H): {error}") from None
        rows, width = fields.shape[0], TENSOR_WIDTH[system]
        if not isinstance(tensor, h5py.Dataset) or tensor.shape != (rows, width):
            raise BadInput(f"{split}: {path} needs 'tensor' ({rows}, {width}) for {system}, "
                           f"got {getattr(tensor, 'shape', None)}")
        if system == "advdiff":
            other = handle.get("other")
            if not isinstance(other, h5py.Dataset) or other.shape != (rows, 1):
                raise BadInput(f"{split}: {path} needs 'other' ({rows}, 1) = Psi for advdiff")
    except BadInput:
        handle.close()
        raise
    return handle, rows, int(fields.shape[2])


def _infer_range(system: str, handles: dict[str, h5py.File]) -> tuple[float, float]:
    """The sampled range the files cover: e from trace(K)/D - 1, Psi from 'other', omega."""
    values = []
    for handle in handles.values():
        tensor = np.asarray(handle["tensor"][()], dtype=np.float64)
        if system == "poisson":
            values.append((tensor[:, 0] + tensor[:, 1]) / D - 1.0)
        elif system == "advdiff":
            values.append(np.asarray(handle["other"][()], dtype=np.float64)[:, 0])
        else:
            values.append(tensor[:, 1])
    values = np.concatenate(values)
    if values.size == 0:
        raise BadInput("value_range: no examples to infer it from; give it explicitly")
    return float(values.min()), float(values.max())


def _paper_batches(system: str, handle: h5py.File, plan: ShardPlan, step: int,
                   stats: list) -> Iterator[dict[str, np.ndarray]]:
    for start in range(plan.start, plan.stop, step):
        stop = min(start + step, plan.stop)
        other = handle["other"][start:stop] if system == "advdiff" else None
        columns = columns_from_paper(system, handle["fields"][start:stop], handle["tensor"][start:stop], other, start)
        stats.append(example_statistics(columns))
        yield columns


def _open_all(system: str, files: Mapping[str, str], handles: dict[str, h5py.File]) -> tuple[dict[str, int], int]:
    """Open every split file into ``handles``; returns (rows per split, the common resolution)."""
    resolution = None
    counts = {split: 0 for split in SPLITS}
    for split, path in files.items():
        handles[split], counts[split], n = _open_paper_file(split, path, system)
        if resolution not in (None, n):
            raise BadInput(f"{split}: grid {n} differs from the other files' {resolution}")
        resolution = n
    if sum(counts.values()) == 0:
        raise BadInput("files: the files hold no example")
    return counts, resolution


def _reuse_or_clear(directory: Path, content_hash: str, overwrite: bool) -> dict[str, Any] | None:
    """The manifest if ``directory`` already holds this import; else an emptied directory and None."""
    if not overwrite:
        try:
            check_directory(directory, content_hash)
        except DatasetConflictError as error:
            raise BadInput(str(error)) from None
        if is_complete(directory):
            return load_manifest(directory)
    elif directory.exists() and not directory.is_dir():
        raise BadInput(f"out_dir: {directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    clear_dataset(directory)
    return None


def _write_shards(directory: Path, system: str, handles: dict[str, h5py.File], counts: dict[str, int],
                  shard_size: int, resolution: int, content_hash: str) -> list[ShardResult]:
    results = []
    for plan in plan_shards(counts, shard_size):
        stats: list = []
        footer = {"content_hash": content_hash, "split": plan.split, "start": str(plan.start),
                  "stop": str(plan.stop), "rejections": "0"}
        batches = _paper_batches(system, handles[plan.split], plan, shard_size, stats)
        digest = write_shard(directory / plan.file, batches, resolution, footer, plan.rows)
        results.append(ShardResult(plan, digest, 0, np.concatenate([s[0] for s in stats]),
                                   np.concatenate([s[1] for s in stats])))
    return results


def import_paper(system: str, files: dict[str, str], out_dir: str | Path, *, value_range: tuple[float, float] | None
                 = None, shard_size: int = 1024, overwrite: bool = False) -> dict[str, Any]:
    """Turn the paper's HDF5 split files (``files``: split -> path) into a dataset directory; returns its manifest.

    Every check runs before anything is written; a bad argument is a :class:`BadInput` naming its field.
    """
    try:
        check_choice("system", system, SYSTEMS)
        shard_size = check_int("shard_size", shard_size, 1)
        for split in files:
            check_choice("files", split, SPLITS)
    except ValueError as error:
        raise BadInput(str(error)) from None
    if not files:
        raise BadInput("files: give at least one of the train, val and test files")
    handles: dict[str, h5py.File] = {}
    try:
        counts, resolution = _open_all(system, files, handles)
        lo, hi = value_range if value_range is not None else _infer_range(system, handles)
        try:
            spec = SystemSpec(system, lo, hi)
        except ValueError as error:
            raise BadInput(str(error)) from None
        sources = {split: {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}
                   for split, path in files.items()}
        content_hash = canonical_hash({"format": IMPORT_FORMAT, "spec": spec.to_dict(), "resolution": resolution,
                                       "counts": counts, "files": {s: v["sha256"] for s, v in sources.items()}})
        directory = Path(out_dir)
        done = _reuse_or_clear(directory, content_hash, overwrite)
        if done is not None:
            return done
        results = _write_shards(directory, system, handles, counts, shard_size, resolution, content_hash)
    finally:
        for handle in handles.values():
            handle.close()
    record = {**spec.to_dict(), "diffusion": D,
              "imported": {"format": IMPORT_FORMAT, "files": sources, "range_inferred": value_range is None}}
    manifest = dataset_manifest(results, name=spec.name, spec=record, seed=None, resolution=resolution,
                                counts=counts, shard_size=shard_size, content_hash=content_hash)
    write_json(directory / MANIFEST_NAME, manifest)
    return manifest


# ---------------------------------------------------------------- export

def export_paper(directory: str | Path, out_prefix: str, *, overwrite: bool = False) -> list[str]:
    """Write ``<out_prefix>_<split>.h5`` for each split in the paper's layout; returns the paths."""
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError) as error:
        raise BadInput(f"directory: {directory} is not a dataset directory ({error})") from None
    if not is_complete(directory):
        raise BadInput(f"directory: {directory} is not a complete dataset")
    system = manifest["spec"]["system"]
    targets = {split: Path(f"{out_prefix}_{split}.h5") for split in SPLITS}
    for path in targets.values():
        if not path.parent.is_dir():
            raise BadInput(f"out_prefix: directory {path.parent} does not exist")
        if path.exists() and not overwrite:
            raise BadInput(f"out_prefix: {path} exists; remove it or overwrite it (--overwrite)")
    written = []
    for split, path in targets.items():
        arrays = paper_from_columns(system, read_split(directory, split))
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            for name, values in arrays.items():
                handle.create_dataset(name, data=values, dtype="<f4")
        written.append(str(path))
    return written


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description="Import or export the paper's HDF5 dataset files.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    imp = commands.add_parser("import", help="HDF5 split files -> dataset directory")
    imp.add_argument("--system", required=True, help="poisson | advdiff | helmholtz")
    for split in SPLITS:
        imp.add_argument(f"--{split}", default=None, help=f"HDF5 file of the {split} split")
    imp.add_argument("--out", required=True, help="dataset directory")
    imp.add_argument("--range", nargs=2, type=float, metavar=("LO", "HI"), default=None,
                     help="sampled range to record (default: the range the data cover)")
    imp.add_argument("--shard-size", type=int, default=1024)
    imp.add_argument("--overwrite", action="store_true")
    exp = commands.add_parser("export", help="dataset directory -> HDF5 split files")
    exp.add_argument("directory", metavar="DIR")
    exp.add_argument("--out-prefix", required=True, help="writes PREFIX_train.h5, PREFIX_val.h5, PREFIX_test.h5")
    exp.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "import":
            files = {split: getattr(args, split) for split in SPLITS if getattr(args, split) is not None}
            manifest = import_paper(args.system, files, args.out, shard_size=args.shard_size, overwrite=args.overwrite,
                                    value_range=tuple(args.range) if args.range else None)
            print(f"{manifest['name']}: imported {manifest['counts']} into {args.out}")
        else:
            for path in export_paper(args.directory, args.out_prefix, overwrite=args.overwrite):
                print(path)
    except BadInput as error:
        fail_for_field(PROG, error, FLAGS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
