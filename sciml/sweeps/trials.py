"""Tune trials: the grid a sweep enumerates and the function each trial runs.

A trial is one Ray Train run (local mode or DDP workers) built by `run_training`, the
same path the `sciml.train` CLI uses; Tune only schedules trials and collects metrics.

Each validation of a trial reaches Tune as it happens when ASHA decides on them: in local
mode through the session's report listener, with DDP workers through Ray Train's
TuneReportCallback (which forwards them under any scheduler, as before). The loop's own final report is not forwarded: the trial reports the
final metrics itself, once, after the run (a forwarded `done` would end the trial first).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from typing import Any

from sciml.core.tables import RANDOM_INIT
from sciml.data.ray_datasets import DataSource
from sciml.sweeps.settings import STOPPING_SCHEDULERS, SweepSettings
from sciml.training.config import RACE_KEY


@dataclass(frozen=True)
class TrialSpec:
    """One point of a sweep grid. `recipe` is pretrain, scratch, finetune or zeroshot."""

    recipe: str
    preset: str
    seed: int
    pretrain: str  # pre-training label, or RANDOM_INIT for scratch / the random-model zero-shot
    task: str | None = None  # downstream system name (None when pre-training)
    shift: str | None = None
    system: str | None = None
    n_train: int = 0
    lr: float | None = None
    checkpoint: str | None = None
    lrs: tuple[float, ...] = ()  # a race of these learning rates in one trial (--scheduler race); lr is None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lrs", tuple(float(lr) for lr in self.lrs))  # a list after Tune's config

    @property
    def key(self) -> str:
        parts = [self.recipe, self.task or self.pretrain, self.preset]
        if self.recipe == "finetune" or (self.recipe == "zeroshot" and self.pretrain != RANDOM_INIT):
            parts.append(f"from-{self.pretrain}")
        if self.recipe in ("scratch", "finetune"):
            parts.append(f"N{self.n_train}")
        if self.lr is not None:
            parts.append(f"lr{self.lr:g}")
        if self.lrs:
            parts.append("race-" + "-".join(f"{lr:g}" for lr in self.lrs))
        parts.append(f"s{self.seed}")
        return "_".join("".join(c if c.isalnum() or c in "-." else "-" for c in p) for p in parts)

    def candidates(self) -> list["TrialSpec"]:
        """A race's learning rates as the single-rate trials they stand for (rows, MLflow run names)."""
        return [replace(self, lr=lr, lrs=()) for lr in self.lrs]


@dataclass
class TrialContext:
    """What every trial of one Tune run shares (placed once in the object store)."""

    question: str
    settings: SweepSettings
    sources: dict[str, tuple[DataSource, ...]]  # train/eval sources by task or pre-training label
    datasets: dict[tuple, Any]  # (label, split, limit) -> Ray Dataset
    trials_dir: str
    storage_path: str
    tracking_uri: str | None
    experiment: str
    parent_run_id: str | None

    def dataset_keys(self, trial: TrialSpec) -> dict[str, tuple]:
        label = trial.task or trial.pretrain
        keys = {"val": (label, "val", None), "test": (label, "test", None)}
        if trial.recipe == "pretrain":
            keys["train"] = (label, "train", self.settings.n_pretrain * len(self.sources[label]))
        elif trial.recipe in ("scratch", "finetune"):
            keys["train"] = (label, "train", trial.n_train)
        return keys


def trial_resources(settings: SweepSettings, preset: str | None = None) -> dict[str, float]:
    """Local mode: the trial process trains, so it holds the CPUs. DDP: workers hold them."""
    if settings.workers_per_trial == 0:
        resources = {"cpu": settings.cpus_per_worker}
        gpus = settings.gpus_for(preset) if preset else settings.gpus_per_worker
        if gpus:
            resources["gpu"] = gpus
        return resources
    # Not {"cpu": 0}: Ray 2.60's Tune refuses a request whose every bundle is empty ("Cannot
    # initialize a ResourceRequest with an empty head"). A hundredth of a CPU is a token.
    return {"cpu": 0.01}


def tune_resources(settings: SweepSettings):
    """What `tune.with_resources` gets: one dict, or (per-preset GPU shares in local mode) a
    function of the trial's config, so a 64K trial takes a quarter GPU and a 256M one a whole."""
    if not settings.gpu_share or settings.workers_per_trial > 0:
        return trial_resources(settings)  # DDP workers take their share through ResourceConfig

    def per_trial(config: dict[str, Any]):
        from ray import tune

        bundle = {k.upper(): v for k, v in trial_resources(settings, config["trial"]["preset"]).items()}
        return tune.PlacementGroupFactory([bundle])

    return per_trial


_TRIAL_FLAGS = "--cpus-per-worker, --gpus-per-worker, --workers-per-trial"


def trial_need(settings: SweepSettings) -> tuple[dict[str, float], int]:
    """What each training process of one trial needs, and how many there are."""
    return {"CPU": settings.cpus_per_worker, "GPU": settings.gpus_per_worker}, max(settings.workers_per_trial, 1)


def require_trial_fit(settings: SweepSettings) -> str | None:
    """``ray_env.require_fit`` for one trial on the connected cluster."""
    from sciml.ray_env import require_fit

    return require_fit(*trial_need(settings), _TRIAL_FLAGS)


def default_concurrency(settings: SweepSettings, cluster: dict[str, float]) -> int:
    """How many trials fit the cluster now (at least one; GPU clusters may autoscale from 0)."""
    if settings.max_concurrent is not None:
        return settings.max_concurrent
    workers = max(settings.workers_per_trial, 1)
    by_cpu = cluster.get("CPU", 1) // (workers * settings.cpus_per_worker)
    # With per-preset shares, as many as the smallest share packs (larger ones wait for room).
    share = min(settings.gpus_for(p) for p in settings.presets)
    if share > 0:
        gpus = cluster.get("GPU", 0)
        # No GPU yet: an autoscaling cluster starts GPU workers once trials ask for them.
        by_gpu = gpus // (workers * share) if gpus else 4
        return int(max(1, by_gpu))
    return int(max(1, by_cpu))


def _random_model(trial: TrialSpec, context: TrialContext, directory: str) -> str:
    """A seeded random-init model with the downstream data's normalization statistics."""
    import torch

    from sciml.data.manifest import load_manifest
    from sciml.training.checkpoint import save_model
    from sciml.training.config import ModelConfig

    torch.manual_seed(trial.seed)
    model = ModelConfig.parse(trial.preset).build()
    stats = load_manifest(context.sources[trial.task][0].path)["normalization"]
    model.set_normalization(stats["f_ref"], stats["c_ref"])
    path = os.path.join(directory, "random_init.pt")
    save_model(path, model, meta={"recipe": "random-init", "seed": trial.seed})
    return path


FINAL_METRICS = ("val_rel_l2", "test_rel_l2", "best_epoch", "epochs", "epochs_run", "steps", "train_seconds",
                 "stopped_early")


def _epoch_reports_callback():
    """TuneReportCallback without the loop's final report (the trial sends its own)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class EpochReports(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if metrics and "done" not in metrics[0]:
                super().after_report(run_context, metrics, None)

    return EpochReports()


def trial_config(trial: TrialSpec, settings: SweepSettings, checkpoint: str | None):
    """The training run of one trial (the cost plan counts its optimizer steps from the same config)."""
    from sciml.training.config import ModelConfig, TrainConfig

    pretraining = trial.recipe == "pretrain"
    return TrainConfig(
        recipe={"zeroshot": "evaluate"}.get(trial.recipe, trial.recipe),
        model=ModelConfig.parse(trial.preset),
        epochs=0 if trial.recipe == "zeroshot" else (settings.pretrain_epochs if pretraining else settings.epochs),
        lr=trial.lr or (trial.lrs[0] if trial.lrs else 1e-3),  # a race sets each candidate's own
        batch_size=settings.pretrain_batch_size if pretraining else settings.batch_size,
        n_train=trial.n_train or None,
        seed=trial.seed,
        min_steps=0 if pretraining else settings.min_steps,
        init_checkpoint=checkpoint,
        precision=settings.precision,
        loss=settings.loss,
    )


def race_config(trial: TrialSpec, settings: SweepSettings):
    """The race a trial runs (sciml/training/race.py), or None for a single learning rate."""
    from sciml.training.config import RaceConfig

    if not trial.lrs:
        return None
    return RaceConfig(trial.lrs, grace_period=settings.grace_period, reduction_factor=settings.reduction_factor,
                      rank_by=settings.race_rank)


def _tracking(trial: TrialSpec, context: TrialContext, tags: dict[str, Any], race: bool):
    """The trial's MLflow run request; a race: one per learning rate, named and tagged as its own trial's."""
    from sciml.training.runner import TrackingRequest

    def request(spec: TrialSpec, tags: dict[str, Any]):
        return TrackingRequest(experiment=context.experiment, run_name=spec.key, tags=tags,
                               parent_run_id=context.parent_run_id, uri=context.tracking_uri,
                               model_record="path" if spec.recipe == "pretrain" else "none")

    return [request(t, {**tags, "lr": t.lr}) for t in trial.candidates()] if race else request(trial, tags)


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune trainable: one training (or evaluation) run, then report its final metrics."""
    from ray import tune

    from sciml.training.config import ResourceConfig
    from sciml.training.runner import DataSelection, run_training

    trial = TrialSpec(**config["trial"])
    settings = context.settings
    directory = os.path.join(context.trials_dir, trial.key)
    os.makedirs(directory, exist_ok=True)
    checkpoint = trial.checkpoint
    if trial.recipe == "zeroshot" and trial.pretrain == RANDOM_INIT:
        checkpoint = _random_model(trial, context, directory)
    pretraining = trial.recipe == "pretrain"
    cfg = trial_config(trial, settings, checkpoint)
    resources = ResourceConfig(workers=settings.workers_per_trial, cpus_per_worker=settings.cpus_per_worker,
                               gpus_per_worker=settings.gpus_for(trial.preset))
    label = trial.task or trial.pretrain
    data = DataSelection(train=context.sources[label])
    datasets = {split: context.datasets[key] for split, key in context.dataset_keys(trial).items()}
    from ray.data.dataset import MaterializedDataset

    # What this trial really received (not what the sweep meant to hand it): the large-dataset
    # path's tests and the rehearsal read this tag to prove the data streamed.
    streamed = not all(isinstance(ds, MaterializedDataset) for ds in datasets.values())
    tags = {"question": context.question, "system": trial.system or label, "shift": trial.shift or "",
            "preset": trial.preset, "n_train": trial.n_train, "recipe": trial.recipe,
            "lr": "" if trial.recipe == "zeroshot" else cfg.lr, "seed": trial.seed,
            "task": trial.task or "", "pretrain": trial.pretrain, "loss": settings.loss,
            "search": settings.search, "scheduler": settings.scheduler if not pretraining else "fifo",
            "stopped_early": False,  # the runner sets True on a trial its scheduler stops
            "datasets": "streamed" if streamed else "materialized"}
    race = race_config(trial, settings)
    tracking = _tracking(trial, context, tags, race is not None) if context.tracking_uri else None
    from sciml.training.session import forwarding_reports

    # Validations reach Tune only when a scheduler decides on them: every Tune result costs a
    # result write and (TUNE_GLOBAL_CHECKPOINT_S=0, see the runner) an experiment-state save.
    # A race decides inside its trial: nothing for Tune to stop.
    per_epoch = settings.scheduler in STOPPING_SCHEDULERS and not pretraining

    def forward(metrics: dict[str, Any]) -> None:
        if per_epoch and "done" not in metrics:
            tune.report({**metrics, "trial_key": trial.key})

    callbacks = [_epoch_reports_callback()] if settings.workers_per_trial > 0 and not race else []
    with forwarding_reports(forward):
        outcome = run_training(cfg, data, resources, directory, name=trial.key, tracking=tracking,
                               storage_path=os.path.join(context.storage_path, "train_runs"),
                               datasets=datasets, callbacks=callbacks,
                               test_on_improvement=per_epoch, race=race)
    if not pretraining:  # only pre-trained models are kept (the sweep caches them)
        shutil.rmtree(directory, ignore_errors=True)
    metrics = {k: outcome.metrics[k] for k in FINAL_METRICS if k in outcome.metrics}
    if race:
        metrics[RACE_KEY] = json.dumps(outcome.metrics[RACE_KEY])
    tune.report({**metrics, "model_path": outcome.model_path if pretraining else "",
                 "mlflow_run_id": outcome.run_id or "", "trial_key": trial.key})
