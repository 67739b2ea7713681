"""Generate a dataset directory with Ray Data: one map task per missing shard, then the manifest.

Before any work (and before Ray starts) the directory is checked: a complete dataset with
the same content hash is returned as is, one with a different hash is a conflict unless
``overwrite``. A rerun after a crash keeps every finished shard (its footer names the
dataset and its rows) and regenerates the rest, with the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sciml.core.checks import check_int
from sciml.core.files import write_json
from sciml.core.layout import N_COEFFS, SPLITS
from sciml.data.manifest import is_complete, load_manifest
from sciml.data.schema import MANIFEST_NAME
from sciml.physics import SystemSpec

from . import allocator
from .directory import MARKER_NAME, DatasetConflictError, check_directory, clear_dataset, remove_strays
from .request import GenerationRequest
from .shards import ShardPlan, ShardResult, dataset_manifest, plan_shards, produce_shard


def check_output(request: GenerationRequest, out_dir: str | Path, overwrite: bool) -> dict[str, Any] | None:
    """Raise DatasetConflictError for a different dataset; return the manifest if already done."""
    directory = Path(out_dir)
    if overwrite:
        if directory.exists() and not directory.is_dir():
            raise DatasetConflictError(f"out_dir: {directory} exists and is not a directory")
        return None
    check_directory(directory, request.content_hash)
    if (directory / MANIFEST_NAME).is_file() and is_complete(directory):
        return load_manifest(directory)
    return None


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
                     address: str | None = None, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Generate (or finish, or just return) the dataset ``request`` in ``out_dir``; returns its manifest."""
    if not isinstance(request, GenerationRequest):
        raise TypeError(f"request: expected a GenerationRequest, got {type(request).__name__}")
    if num_workers is not None:
        check_int("num_workers", num_workers, 1)
    done = check_output(request, out_dir, overwrite)
    if done is not None:
        return done
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


def ensure_dataset(spec: SystemSpec, directory: str | Path, *, n_train: int, n_val: int, n_test: int,
                   resolution: int, seed: int, shard_size: int) -> dict[str, Any]:
    """The dataset in ``directory``, generated or reused by content; returns its manifest.

    The one door from orchestration (the sweep runner) into generation: callers name what
    they need and never see requests, shards or Ray Data.
    """
    request = GenerationRequest(spec=spec, n_train=n_train, n_val=n_val, n_test=n_test, resolution=resolution,
                                seed=seed, shard_size=shard_size)
    return generate_dataset(request, directory)
