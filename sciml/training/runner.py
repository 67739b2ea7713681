"""One training run on Ray Train: datasets in, best model file and MLflow run out."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from sciml.core.files import atomic_path
from sciml.data.manifest import load_manifest
from sciml.data.ray_datasets import DataSource, materialized_selection
from sciml.training.checkpoint import MODEL_FILE
from sciml.training.config import RACE_KEY, LoopConfig, RaceConfig, ResourceConfig, TrackingTarget, TrainConfig
from sciml.training.loop import train_loop_per_worker


@dataclass(frozen=True)
class DataSelection:
    """Training sources (a mixture when several) and the sources of val/test."""

    train: tuple[DataSource, ...]
    evaluation: tuple[DataSource, ...] | None = None

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("data: at least one dataset directory is required")

    @property
    def eval_sources(self) -> tuple[DataSource, ...]:
        return self.evaluation or self.train

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        """Names and content hashes, recorded with every run and model file."""
        def entry(source: DataSource) -> dict[str, Any]:
            manifest = load_manifest(source.path)
            return {"name": manifest["name"], "content_hash": manifest["content_hash"],
                    "path": os.path.abspath(source.path), "share": source.share}

        return {"train": [entry(s) for s in self.train], "eval": [entry(s) for s in self.eval_sources]}

    def ray_datasets(self, cfg: TrainConfig) -> dict[str, Any]:
        """Materialised before the workers start (see `build_trainer`)."""
        datasets = {"val": materialized_selection(self.eval_sources, "val"),
                    "test": materialized_selection(self.eval_sources, "test")}
        if cfg.trains:
            datasets["train"] = materialized_selection(self.train, "train", cfg.n_train)
        return datasets


@dataclass(frozen=True)
class TrackingRequest:
    """Where a run is recorded in MLflow; the tracker resolves the store URI."""

    experiment: str
    run_name: str
    tags: Mapping[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    uri: str | None = None
    # "artifact": copy model.pt into MLflow; "path": record where it is; "none": it is not kept.
    model_record: str = "artifact"

    def __post_init__(self) -> None:
        if self.model_record not in ("artifact", "path", "none"):
            raise ValueError(f"model_record: must be artifact, path or none, got {self.model_record!r}")


@dataclass(frozen=True)
class RunOutcome:
    metrics: dict[str, Any]
    model_path: str
    run_id: str | None


def run_params(cfg: TrainConfig, resources: ResourceConfig, datasets: Mapping[str, Any], n_params: int) -> dict:
    model = cfg.model
    return {
        "recipe": cfg.recipe, "preset": model.label, "width": model.width, "modes": model.modes,
        "n_params": n_params, "lr": cfg.lr, "batch_size": cfg.batch_size, "epochs": cfg.epochs,
        "min_steps": cfg.min_steps, "n_train": cfg.n_train if cfg.n_train is not None else "all",
        "seed": cfg.seed, "workers": resources.workers, "precision": cfg.precision, "loss": cfg.loss,
        "init_checkpoint": cfg.init_checkpoint,
        "train_data": ",".join(f"{d['name']}:{d['content_hash'][:12]}" for d in datasets.get("train", [])),
        "eval_data": ",".join(f"{d['name']}:{d['content_hash'][:12]}" for d in datasets.get("eval", [])),
    }


def run_training(cfg: TrainConfig, data: DataSelection, resources: ResourceConfig, out_dir: str, *,
                 name: str = "run", tracking: TrackingRequest | Sequence[TrackingRequest] | None = None,
                 storage_path: str | None = None, datasets: Mapping[str, Any] | None = None,
                 callbacks: Sequence[Any] = (), progress: bool = False,
                 test_on_improvement: bool = False, race: RaceConfig | None = None) -> RunOutcome:
    """Fit with TorchTrainer (local mode when resources.workers == 0) and export the best model.

    `datasets` may hold pre-built Ray Datasets (a sweep materialises small ones once for
    all trials); otherwise they are read from `data`. With `race`, the run races those
    learning rates (sciml/training/race.py): `tracking` is then one request per learning
    rate, the model file is the winner's, and `metrics["race"]` lists every candidate's
    final metrics with its MLflow run id.
    """
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    described = data.describe()
    runs = _start_runs(cfg, resources, described, tracking, race)
    loop = LoopConfig(
        train=cfg, tracking=runs[0].target if runs and race is None else None, use_gpu=resources.use_gpu,
        # One intra-op thread per allotted CPU: spinning OpenMP threads on a busy core
        # (Ray's own processes) slow small models down by an order of magnitude.
        threads=resources.cpus_per_worker, checkpoint_every=resources.checkpoint_every,
        local_checkpoint_dir=os.path.join(out_dir, "checkpoints"), datasets=described, progress=progress,
        test_on_improvement=test_on_improvement, race=race,
        candidate_tracking=tuple(run.target for run in runs) if race is not None else ())
    try:
        trainer = build_trainer(loop, resources, datasets if datasets is not None else data.ray_datasets(cfg),
                                name=name, storage_path=storage_path or os.path.join(out_dir, "ray_train"),
                                callbacks=callbacks)
        result = trainer.fit()
        model_path = export_model(result.checkpoint, out_dir)
    except BaseException:
        for run in runs:
            run.end("FAILED")
        raise
    finally:
        shutil.rmtree(loop.local_checkpoint_dir, ignore_errors=True)
    metrics = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, bool))}
    if race is None:
        for run in runs:
            run.record_model(model_path)
            run.end("FINISHED")
        return RunOutcome(metrics=metrics, model_path=model_path, run_id=runs[0].run_id if runs else None)
    return _race_outcome(metrics, json.loads(result.metrics[RACE_KEY]), runs, model_path)


def _start_runs(cfg: TrainConfig, resources: ResourceConfig, described: dict, tracking, race) -> list["_TrackedRun"]:
    """The MLflow runs of one run, or of each raced learning rate."""
    if not tracking:
        return []
    if race is None:
        return [_TrackedRun.start(tracking, run_params(cfg, resources, described, cfg.model.n_params))]
    if isinstance(tracking, TrackingRequest) or len(tracking) != len(race.lrs):
        raise ValueError("tracking: a race needs one tracking request per learning rate")
    return [_TrackedRun.start(request, run_params(replace(cfg, lr=lr), resources, described, cfg.model.n_params))
            for request, lr in zip(tracking, race.lrs)]


def _race_outcome(metrics: dict, candidates: list[dict], runs: list["_TrackedRun"], model_path: str) -> RunOutcome:
    """Each candidate's MLflow run closed (tagged when the race stopped it); the winner's model file."""
    for candidate, run in zip(candidates, runs):
        candidate["mlflow_run_id"] = run.run_id
        run.tracker.set_tags(run.run_id, {"stopped_early": bool(candidate["stopped_early"])})
        run.end("FINISHED")
    winner = next(i for i, candidate in enumerate(candidates) if candidate["winner"])
    if runs:
        runs[winner].record_model(model_path)
    return RunOutcome(metrics={**metrics, RACE_KEY: candidates}, model_path=model_path,
                      run_id=runs[winner].run_id if runs else None)


@dataclass(frozen=True)
class _TrackedRun:
    """The MLflow run of one training run, seen from the driver."""

    tracker: Any  # sciml.tracking.Tracker (imported lazily: MLflow is heavy)
    run_id: str
    request: TrackingRequest

    @classmethod
    def start(cls, request: TrackingRequest, params: Mapping[str, Any]) -> "_TrackedRun":
        from sciml.tracking import Tracker

        tracker = Tracker(request.uri)
        run_id = tracker.start_run(request.experiment, request.run_name, params=params, tags=request.tags,
                                   parent_run_id=request.parent_run_id)
        return cls(tracker, run_id, request)

    @property
    def target(self) -> TrackingTarget:
        return TrackingTarget(uri=self.tracker.uri, run_id=self.run_id)

    def record_model(self, model_path: str) -> None:
        if self.request.model_record != "none":
            self.tracker.set_tags(self.run_id, {"model_path": model_path})
        if self.request.model_record == "artifact":
            self.tracker.log_artifact(self.run_id, model_path, "model")

    def end(self, status: str) -> None:
        self.tracker.end_run(self.run_id, status=status)


def build_trainer(loop: LoopConfig, resources: ResourceConfig, datasets: Mapping[str, Any], *, name: str,
                  storage_path: str, callbacks: Sequence[Any] = ()):
    """The TorchTrainer that runs `train_loop_per_worker` with `loop` on every worker.

    The datasets are materialised before the workers start: workers hold their CPUs for
    the whole run, and a lazy dataset would need CPUs for its read tasks meanwhile, which
    deadlocks a small cluster.
    """
    from ray.data.dataset import MaterializedDataset
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if resources.workers == 0:
        scaling = ScalingConfig(num_workers=0)
    else:
        per_worker = {"CPU": resources.cpus_per_worker}
        if resources.use_gpu:
            per_worker["GPU"] = resources.gpus_per_worker
        scaling = ScalingConfig(num_workers=resources.workers, use_gpu=resources.use_gpu,
                                resources_per_worker=per_worker)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop.to_dict(),
        scaling_config=scaling,
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=list(callbacks) or None,
        ),
        datasets={split: ds if isinstance(ds, MaterializedDataset) else ds.materialize()
                  for split, ds in datasets.items()},
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )


def export_model(checkpoint, out_dir: str) -> str:
    """Copy the model file out of the run's final Ray Train checkpoint into `out_dir`."""
    model_path = os.path.join(out_dir, MODEL_FILE)
    with checkpoint.as_directory() as path, atomic_path(model_path) as tmp:
        shutil.copyfile(os.path.join(path, MODEL_FILE), tmp)
    return model_path
