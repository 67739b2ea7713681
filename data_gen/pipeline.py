"""Generate a dataset directory with Ray Data: one map task per missing shard, then the manifest.

Before any work (and before Ray starts) the directory is checked: a complete dataset with
the same content hash is verified shard by shard against its manifest and returned as is,
or repaired (exactly its damaged or missing shards regenerated, same bytes); one with a
different hash is a conflict unless ``overwrite``. A rerun after a crash keeps every
finished shard (its footer names the dataset and its rows) and regenerates the rest, with
the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from sciml.core.checks import check_int
from sciml.core.files import write_json
from sciml.core.layout import N_COEFFS, SPLITS
from sciml.data.verify import BadShard, NotADatasetError, describe_bad, read_manifest, verify_dataset
from sciml.data.schema import MANIFEST_NAME
from sciml.physics import SystemSpec

from . import allocator
from .directory import MARKER_NAME, DatasetConflictError, check_directory, clear_dataset, remove_strays
from .request import GenerationRequest
from .shards import ShardPlan, ShardResult, dataset_manifest, plan_shards, produce_shard


def check_output(request: GenerationRequest, out_dir: str | Path, overwrite: bool
                 ) -> tuple[dict[str, Any] | None, list[BadShard]]:
    """Raise DatasetConflictError for a different dataset; else (manifest, its bad shards) if it has one.

    A finished dataset is verified shard by shard (present, readable, rows, content hash):
    ``(manifest, [])`` is done, ``(manifest, bad)`` needs exactly those shards again, and
    ``(None, [])`` means generate (or finish an interrupted run).
    """
    directory = Path(out_dir)
    if overwrite:
        if directory.exists() and not directory.is_dir():
            raise DatasetConflictError(f"out_dir: {directory} exists and is not a directory")
        return None, []
    check_directory(directory, request.content_hash)
    if (directory / MANIFEST_NAME).is_file():
        try:
            manifest = read_manifest(directory)
        except NotADatasetError:
            return None, []  # a manifest that does not describe its shards: rebuild it with them
        return manifest, verify_dataset(directory, manifest)
    return None, []


def _shard_batch(batch: dict[str, np.ndarray], *, spec: dict, seed: int, resolution: int, directory: str,
                 content_hash: str) -> dict[str, np.ndarray]:
    """Ray Data map function: one shard descriptor in, that shard's metadata out."""
    plan = ShardPlan(str(batch["split"][0]), int(batch["shard"][0]), int(batch["start"][0]), int(batch["stop"][0]))
    with allocator.tuned():
        result = produce_shard(Path(directory), plan, SystemSpec.from_dict(spec), seed, resolution, content_hash)
    stats = np.column_stack([result.rms, result.abs_coeffs])
    return {"split": np.array([plan.split]), "shard": np.array([plan.shard]), "start": np.array([plan.start]),
            "stop": np.array([plan.stop]), "digest": np.array([result.digest]),
            "rejections": np.array([result.rejections]),
            "stats": np.array([stats.astype(np.float64).tobytes()], dtype=object)}


def _run_shards(plans: list[ShardPlan], request: GenerationRequest, directory: Path, num_workers: int | None,
                address: str | None, progress: bool) -> list[ShardResult]:
    from sciml.ray_env import start_or_connect

    # Only here, so validation and reuse never start Ray; before `import ray`, which fixes
    # whether an embedded Ray may bind to loopback only (sciml.ray_env).
    started = start_or_connect(address, quiet=not progress)
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    shown = (context.enable_progress_bars, context.print_on_execution_start)
    try:
        context.enable_progress_bars = context.print_on_execution_start = progress
        workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        items = [{"split": p.split, "shard": p.shard, "start": p.start, "stop": p.stop} for p in plans]
        rows = (ray.data.from_items(items, override_num_blocks=len(items))
                .map_batches(_shard_batch, batch_size=1, compute=ray.data.TaskPoolStrategy(size=workers), num_cpus=1,
                             fn_kwargs={"spec": request.spec.to_dict(), "seed": request.seed,
                                        "resolution": request.resolution, "directory": str(directory.resolve()),
                                        "content_hash": request.content_hash})
                .take_all())
    finally:
        context.enable_progress_bars, context.print_on_execution_start = shown
        if started:
            ray.shutdown()
    by_key = {(r["split"], int(r["start"])): r for r in rows}
    results = []
    for plan in plans:
        row = by_key[(plan.split, plan.start)]
        stats = np.frombuffer(row["stats"], dtype=np.float64).reshape(plan.rows, 1 + N_COEFFS)
        results.append(ShardResult(plan, str(row["digest"]), int(row["rejections"]), stats[:, 0], stats[:, 1:]))
    return results


def build_manifest(request: GenerationRequest, results: list[ShardResult]) -> dict[str, Any]:
    return dataset_manifest(results, name=request.spec.name, spec=request.spec_record(), seed=request.seed,
                            resolution=request.resolution, counts=request.counts, shard_size=request.shard_size,
                            content_hash=request.content_hash)


def generate_dataset(request: GenerationRequest, out_dir: str | Path, *, num_workers: int | None = None,
                     address: str | None = None, overwrite: bool = False, progress: bool = True,
                     log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Generate (or finish, repair, or just return) the dataset ``request`` in ``out_dir``; returns its manifest.

    ``log`` is told which shards a repair regenerates (None: nothing is said).
    """
    if not isinstance(request, GenerationRequest):
        raise TypeError(f"request: expected a GenerationRequest, got {type(request).__name__}")
    if num_workers is not None:
        check_int("num_workers", num_workers, 1)
    done, bad = check_output(request, out_dir, overwrite)
    if done is not None and not bad:
        return done
    if done is not None:
        return _repair(request, Path(out_dir), done, bad, num_workers, address, progress, log)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear_dataset(directory)
    write_json(directory / MARKER_NAME, {"name": request.spec.name, "content_hash": request.content_hash})
    plans = plan_shards(request.counts, request.shard_size)
    remove_strays(directory, {split: sum(p.split == split for p in plans) for split in SPLITS})
    results = _run_shards(plans, request, directory, num_workers, address, progress)
    manifest = build_manifest(request, results)
    write_json(directory / MANIFEST_NAME, manifest)
    (directory / MARKER_NAME).unlink(missing_ok=True)
    return manifest


def _repair(request: GenerationRequest, directory: Path, manifest: dict[str, Any], bad: list[BadShard],
            num_workers: int | None, address: str | None, progress: bool,
            log: Callable[[str], None] | None) -> dict[str, Any]:
    """Regenerate exactly the bad shards of a finished dataset; its manifest stays as it is.

    Examples are seeded one by one, so a regenerated shard has the bytes (and hash) the
    manifest recorded; it is checked again, and a mismatch is an error, not a new manifest.
    """
    if log is not None:
        log(f"{directory}: regenerating {len(bad)} damaged or missing shard(s): "
            + "; ".join(str(b) for b in bad))
    plans = []
    for shard in bad:
        entry = shard.entry
        plan = ShardPlan(shard.split, entry["start"] // manifest["shard_size"], entry["start"], entry["stop"])
        if plan.file != entry["file"]:
            raise DatasetConflictError(f"out_dir: {directory}/{MANIFEST_NAME} lists {entry['file']} where the "
                                       f"layout puts {plan.file}; regenerate it (--overwrite)")
        plans.append(plan)
        # A damaged file may keep a valid footer (produce_shard would reuse it): remove it first.
        (directory / entry["file"]).unlink(missing_ok=True)
    _run_shards(plans, request, directory, num_workers, address, progress)
    still = verify_dataset(directory, manifest)
    if still:
        raise DatasetConflictError(f"out_dir: regenerated shards of {directory} still differ from its manifest "
                                   f"({describe_bad(still)}); was it written by another generator version? "
                                   "Regenerate it with --overwrite")
    if log is not None:
        log(f"{directory}: repaired, every shard matches its manifest hash")
    return manifest


def ensure_dataset(spec: SystemSpec, directory: str | Path, *, n_train: int, n_val: int, n_test: int,
                   resolution: int, seed: int, shard_size: int, progress: bool = True,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """The dataset in ``directory``, generated or reused by content; returns its manifest.

    The one door from orchestration (the sweep runner) into generation: callers name what
    they need and never see requests, shards or Ray Data.
    """
    request = GenerationRequest(spec=spec, n_train=n_train, n_val=n_val, n_test=n_test, resolution=resolution,
                                seed=seed, shard_size=shard_size)
    # The sweep owns its cache: a damaged cached dataset is regenerated (shard by shard), not refused.
    return generate_dataset(request, directory, progress=progress, log=log)
