"""Paper-format interchange (SPEC 9): the published generator's HDF5 files <-> a dataset directory.

  python -m data_gen.convert import --system S --train A.h5 --val B.h5 --test C.h5 --out DIR
  python -m data_gen.convert export DIR --out-prefix P      # writes P_train.h5, P_val.h5, P_test.h5

HDF5 layout: ``fields`` (n, 2, H, W) float32 = [source, solution], ``tensor`` (n, 3) Poisson
(k11, k22, k12), (n, 5) advection-diffusion (k11, k22, k12, v1, v2), (n, 2) Helmholtz (D, omega),
and for advection-diffusion ``other`` (n, 1) = Psi. Import then export gives back ``fields``,
``tensor`` and ``other`` bit for bit (float32 -> float64 -> float32 is exact).
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from sciml.data.manifest import (FORMAT_VERSION, SHARD_HASH, canonical_hash, example_statistics, file_sha256,
                                 is_complete, load_manifest, normalization, read_split, software_versions,
                                 write_json_atomic)
from sciml.data.schema import COEFF_COLUMNS, MANIFEST_NAME, SPLITS
from sciml.physics import D, SystemSpec

from .cli import OneLineParser, fail
from .directory import DatasetConflictError, check_directory, clear_dataset
from .shards import ShardPlan, plan_shards, temp_path, write_shard

PROG = "python -m data_gen.convert"
TENSOR_WIDTH = {"poisson": 3, "advdiff": 5, "helmholtz": 2}
IMPORT_FORMAT = "paper-hdf5"


class BadInput(ValueError):
    """Input that the command rejects before writing anything; the message starts with the argument."""


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

def _open_paper_file(flag: str, path: str, system: str) -> tuple[h5py.File, int, int]:
    """Open and check one HDF5 file; returns (file, rows, resolution)."""
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise BadInput(f"{flag}: cannot read {path} as HDF5 ({error})") from None
    try:
        fields = handle.get("fields")
        tensor = handle.get("tensor")
        if not isinstance(fields, h5py.Dataset) or fields.ndim != 4 or fields.shape[1] != 2 \
                or fields.shape[2] != fields.shape[3] or fields.shape[2] % 2 or fields.shape[2] < 8:
            raise BadInput(f"{flag}: {path} needs 'fields' (n, 2, H, H) with H even >= 8")
        rows, width = fields.shape[0], TENSOR_WIDTH[system]
        if not isinstance(tensor, h5py.Dataset) or tensor.shape != (rows, width):
            raise BadInput(f"{flag}: {path} needs 'tensor' ({rows}, {width}) for {system}, "
                           f"got {getattr(tensor, 'shape', None)}")
        if system == "advdiff":
            other = handle.get("other")
            if not isinstance(other, h5py.Dataset) or other.shape != (rows, 1):
                raise BadInput(f"{flag}: {path} needs 'other' ({rows}, 1) = Psi for advdiff")
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
        raise BadInput("--range: no examples to infer it from; give --range LO HI")
    return float(values.min()), float(values.max())


def _paper_batches(system: str, handle: h5py.File, plan: ShardPlan, step: int,
                   stats: list) -> Iterator[dict[str, np.ndarray]]:
    for start in range(plan.start, plan.stop, step):
        stop = min(start + step, plan.stop)
        other = handle["other"][start:stop] if system == "advdiff" else None
        columns = columns_from_paper(system, handle["fields"][start:stop], handle["tensor"][start:stop], other, start)
        stats.append(example_statistics(columns))
        yield columns


def import_paper(system: str, files: dict[str, str], out_dir: str | Path, *, value_range: tuple[float, float] | None
                 = None, shard_size: int = 1024, overwrite: bool = False) -> dict[str, Any]:
    """Turn the paper's HDF5 split files into a dataset directory; returns its manifest."""
    if system not in TENSOR_WIDTH:
        raise BadInput(f"--system: must be one of {', '.join(TENSOR_WIDTH)}, got {system!r}")
    if not files:
        raise BadInput("--train: give at least one of --train, --val, --test")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise BadInput(f"--shard-size: must be an integer >= 1, got {shard_size!r}")
    handles: dict[str, h5py.File] = {}
    try:
        resolution = None
        counts = {split: 0 for split in SPLITS}
        for split, path in files.items():
            handles[split], counts[split], n = _open_paper_file(f"--{split}", path, system)
            if resolution not in (None, n):
                raise BadInput(f"--{split}: grid {n} differs from the other files' {resolution}")
            resolution = n
        if sum(counts.values()) == 0:
            raise BadInput("--train: the files hold no example")
        lo, hi = value_range if value_range is not None else _infer_range(system, handles)
        try:
            spec = SystemSpec(system, lo, hi)
        except ValueError as error:
            raise BadInput(f"--range: {str(error).partition(': ')[2]}") from None
        sources = {split: {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}
                   for split, path in files.items()}
        content_hash = canonical_hash({"format": IMPORT_FORMAT, "spec": spec.to_dict(), "resolution": resolution,
                                       "counts": counts, "files": {s: v["sha256"] for s, v in sources.items()}})
        directory = Path(out_dir)
        if not overwrite:
            try:
                check_directory(directory, content_hash)
            except DatasetConflictError as error:
                raise BadInput(f"--out: {str(error).partition(': ')[2]}") from None
            if is_complete(directory):
                return load_manifest(directory)
        elif directory.exists() and not directory.is_dir():
            raise BadInput(f"--out: {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        clear_dataset(directory)
        results = []
        for plan in plan_shards(counts, shard_size):
            stats: list = []
            footer = {"content_hash": content_hash, "split": plan.split, "start": str(plan.start),
                      "stop": str(plan.stop), "rejections": "0"}
            digest = write_shard(directory / plan.file, _paper_batches(system, handles[plan.split], plan, shard_size,
                                                                       stats), resolution, footer, plan.rows)
            results.append((plan, digest, np.concatenate([s[0] for s in stats]),
                            np.concatenate([s[1] for s in stats])))
    finally:
        for handle in handles.values():
            handle.close()
    reference = next(split for split in SPLITS if counts[split] > 0)
    ref = [r for r in results if r[0].split == reference]
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "spec": {**spec.to_dict(), "diffusion": D,
                 "imported": {"format": IMPORT_FORMAT, "files": sources, "range_inferred": value_range is None}},
        "seed": None,
        "resolution": resolution,
        "counts": counts,
        "shard_size": shard_size,
        "normalization": normalization(np.concatenate([r[2] for r in ref]), np.concatenate([r[3] for r in ref])),
        "rejections": {split: 0 for split in SPLITS},
        "shards": {split: [{"file": p.file, "start": p.start, "stop": p.stop, "rows": p.rows, SHARD_HASH: digest}
                           for p, digest, _, _ in results if p.split == split] for split in SPLITS},
        "content_hash": content_hash,
        "versions": software_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(directory / MANIFEST_NAME, manifest)
    return manifest


# ---------------------------------------------------------------- export

def export_paper(directory: str | Path, out_prefix: str, *, overwrite: bool = False) -> list[str]:
    """Write ``<out_prefix>_<split>.h5`` for each split in the paper's layout; returns the paths."""
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError) as error:
        raise BadInput(f"DIR: {directory} is not a dataset directory ({error})") from None
    if not is_complete(directory):
        raise BadInput(f"DIR: {directory} is not a complete dataset")
    system = manifest["spec"]["system"]
    targets = {split: Path(f"{out_prefix}_{split}.h5") for split in SPLITS}
    for path in targets.values():
        if not path.parent.is_dir():
            raise BadInput(f"--out-prefix: directory {path.parent} does not exist")
        if path.exists() and not overwrite:
            raise BadInput(f"--out-prefix: {path} exists; remove it or pass --overwrite")
    written = []
    for split, path in targets.items():
        arrays = paper_from_columns(system, read_split(directory, split))
        tmp = temp_path(path)
        try:
            with h5py.File(tmp, "w") as handle:
                for name, values in arrays.items():
                    handle.create_dataset(name, data=values, dtype="<f4")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
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
            for split, path in files.items():
                if not Path(path).is_file():
                    raise BadInput(f"--{split}: no such file {path}")
            manifest = import_paper(args.system, files, args.out, shard_size=args.shard_size, overwrite=args.overwrite,
                                    value_range=tuple(args.range) if args.range else None)
            print(f"{manifest['name']}: imported {manifest['counts']} into {args.out}")
        else:
            for path in export_paper(args.directory, args.out_prefix, overwrite=args.overwrite):
                print(path)
    except BadInput as error:
        fail(f"{PROG}: error: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
