"""The configuration of one training run, validated at construction."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from sciml.core.checks import check_choice, check_int, check_number, check_precision, check_seed

RECIPES = ("pretrain", "scratch", "finetune", "evaluate")
RACE_KEY = "race"  # a race's final report: every candidate's final metrics (a JSON list; sciml/training/race.py)
RACE_RANKS = ("averaged", "best")  # what a race's rungs rank candidates by (RaceConfig.rank_by)


@dataclass(frozen=True)
class ModelConfig:
    """A preset name (SPEC section 6) or an explicit width and mode count."""

    preset: str | None = "64K"
    width: int | None = None
    modes: int | None = None

    def __post_init__(self) -> None:
        from sciml.models import PRESETS

        if self.preset is not None:
            check_choice("preset", self.preset, sorted(PRESETS))
            if self.width is not None or self.modes is not None:
                raise ValueError("preset: give either a preset or --width and --modes, not both")
        else:
            if self.width is None or self.modes is None:
                raise ValueError("width/modes: without a preset both --width and --modes are required")
            check_int("width", self.width, 1)
            check_int("modes", self.modes, 1)

    @property
    def label(self) -> str:
        return self.preset if self.preset is not None else f"d{self.width}m{self.modes}"

    @classmethod
    def parse(cls, label: str) -> "ModelConfig":
        """A preset name, or `dWmM` (e.g. d16m8) for width W and M modes: the inverse of `label`."""
        from sciml.models import PRESETS

        if label in PRESETS:
            return cls(preset=label)
        match = re.fullmatch(r"d(\d+)m(\d+)", str(label))
        if match is None:
            raise ValueError(f"preset: must be one of {sorted(PRESETS)} or dWIDTHmMODES (e.g. d16m8), got {label!r}")
        return cls(preset=None, width=int(match[1]), modes=int(match[2]))

    @property
    def width_and_modes(self) -> tuple[int, int]:
        from sciml.models import PRESETS

        return PRESETS[self.preset] if self.preset is not None else (self.width, self.modes)

    def build(self):
        from sciml.models import build_fno

        return build_fno(self.preset, width=self.width, modes=self.modes)

    @property
    def n_params(self) -> int:
        """Total trainable reals, counted on the meta device (nothing allocated)."""
        import torch

        from sciml.models import count_parameters

        with torch.device("meta"):
            return count_parameters(self.build())


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what one run computes (not where it runs or logs)."""

    recipe: str = "scratch"
    model: ModelConfig = ModelConfig()
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    n_train: int | None = None  # first N training examples; None = the whole split
    seed: int = 0
    # Small downstream sets get too few optimizer steps per epoch: train at least this many.
    min_steps: int = 0
    eval_batch_size: int = 256
    init_checkpoint: str | None = None  # model file for finetune / evaluate
    precision: str = "fp32"
    loss: str = "mse"  # training loss (sciml.training.metrics.LOSSES); the paper's is MSE

    def __post_init__(self) -> None:
        from sciml.training.metrics import LOSSES

        check_choice("recipe", self.recipe, RECIPES)
        check_choice("loss", self.loss, LOSSES)
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelConfig(**self.model))
        if self.recipe == "evaluate":
            check_int("epochs", self.epochs, 0, 0)
        else:
            check_int("epochs", self.epochs, 1)
        check_number("lr", self.lr, 0, 1, low_open=True)
        check_int("batch_size", self.batch_size, 1)
        check_int("eval_batch_size", self.eval_batch_size, 1)
        if self.n_train is not None:
            check_int("n_train", self.n_train, 1)
        check_seed("seed", self.seed)
        check_int("min_steps", self.min_steps, 0)
        needs_init = self.recipe in ("finetune", "evaluate")
        if needs_init and not self.init_checkpoint:
            raise ValueError(f"checkpoint: the {self.recipe} recipe needs --checkpoint (a pre-trained model file)")
        if not needs_init and self.init_checkpoint:
            raise ValueError(f"checkpoint: the {self.recipe} recipe starts from random weights; drop --checkpoint")
        check_precision("precision", self.precision)

    @property
    def trains(self) -> bool:
        return self.recipe != "evaluate"

    @property
    def fresh_model(self) -> bool:
        """Random init, normalization statistics from this run's training data."""
        return self.recipe in ("pretrain", "scratch")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data, "training")


@dataclass(frozen=True)
class ResourceConfig:
    """Where a run executes: Ray Train workers, their CPUs/GPUs, fault tolerance."""

    workers: int = 0  # 0 = Ray Train's local mode: the loop runs in the calling process
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    max_failures: int = 2
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        check_int("workers", self.workers, 0)
        check_int("cpus_per_worker", self.cpus_per_worker, 1)
        check_number("gpus_per_worker", self.gpus_per_worker, 0)
        if self.workers == 0 and self.gpus_per_worker > 1:
            raise ValueError("gpus_per_worker: local mode (workers 0) uses at most one GPU")
        check_int("max_failures", self.max_failures, 0)
        check_int("checkpoint_every", self.checkpoint_every, 1)

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0


@dataclass(frozen=True)
class TrackingTarget:
    """The MLflow run (already started by the driver) the chief worker logs metrics into."""

    uri: str
    run_id: str


@dataclass(frozen=True)
class RaceConfig:
    """Successive halving over learning rates inside one run (sciml/training/race.py).

    Every candidate trains in the same process on the same data, in lockstep; at each rung
    (`grace_period` x `reduction_factor`^k validations) the best 1/`reduction_factor` of the
    candidates still running go on and the others stop. `rank_by`: `averaged`, the better of a
    candidate's best validation error so far and that of a running average of its weights;
    `best`, the former only (sciml/training/race.py says why the average).
    """

    lrs: tuple[float, ...]
    grace_period: int = 4
    reduction_factor: float = 3.0
    rank_by: str = "averaged"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lrs", tuple(float(lr) for lr in self.lrs))
        if len(self.lrs) < 2 or len(set(self.lrs)) != len(self.lrs):
            raise ValueError(f"race.lrs: at least two distinct learning rates, got {list(self.lrs)}")
        for lr in self.lrs:
            check_number("race.lrs", lr, 0, 1, low_open=True)
        check_int("race.grace_period", self.grace_period, 1)
        check_number("race.reduction_factor", self.reduction_factor, 1, low_open=True)
        check_choice("race.rank_by", self.rank_by, RACE_RANKS)

    def rungs(self, validations: int) -> list[int]:
        """The validation counts at which candidates are compared, before the run's last validation."""
        rungs, rung = [], float(self.grace_period)
        while rung < validations:
            rungs.append(int(rung))
            rung *= self.reduction_factor
        return sorted(set(rungs))

    def survivors(self, running: int) -> int:
        """How many of `running` candidates go on past a rung (at least one)."""
        return max(1, int(running / self.reduction_factor))

    def schedule(self, validations: int) -> list[tuple[int, int]]:
        """(rung, candidates going on past it) for each rung where candidates stop, in a run of
        `validations`: known in advance; only which candidates stop depends on their errors."""
        steps, running = [], len(self.lrs)
        for rung in self.rungs(validations):
            if running == 1:
                break
            running = self.survivors(running)
            steps.append((rung, running))
        return steps

    def validations_run(self, validations: int) -> list[int]:
        """How many validations each candidate runs (best first) in a run of `validations`."""
        running, stopped = len(self.lrs), []
        for rung, keep in self.schedule(validations):
            stopped += [rung] * (running - keep)
            running = keep
        return [validations] * running + stopped[::-1]


@dataclass(frozen=True)
class LoopConfig:
    """Everything one training loop needs, sent to every Ray Train worker.

    It travels as a plain dict (`to_dict`) in TorchTrainer's train_loop_config, which Ray
    requires to be a dict, and is rebuilt (and so validated) on each worker.
    """

    train: TrainConfig
    tracking: TrackingTarget | None = None
    use_gpu: bool = False
    threads: int | None = None  # intra-op threads per worker; None keeps torch's default
    checkpoint_every: int = 1  # validations between resumable checkpoints (DDP workers only)
    local_checkpoint_dir: str | None = None  # local mode: where reported checkpoints must outlive the loop
    datasets: Mapping[str, Any] = field(default_factory=dict)  # names and hashes, recorded in the model file
    progress: bool = False  # a progress bar on the chief worker
    # Test the weights at every validation improvement and report it (best_test_rel_l2), so
    # that a run a scheduler stops early (ASHA) still has the test error of its best weights.
    test_on_improvement: bool = False
    # Race these learning rates (train.lr is ignored) with one MLflow run per candidate.
    race: RaceConfig | None = None
    candidate_tracking: tuple[TrackingTarget, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.train, Mapping):
            object.__setattr__(self, "train", TrainConfig.from_dict(self.train))
        if isinstance(self.tracking, Mapping):
            object.__setattr__(self, "tracking", TrackingTarget(**self.tracking))
        if isinstance(self.race, Mapping):
            object.__setattr__(self, "race", RaceConfig(**self.race))
        object.__setattr__(self, "candidate_tracking", tuple(
            TrackingTarget(**t) if isinstance(t, Mapping) else t for t in self.candidate_tracking))
        if self.candidate_tracking and (self.race is None or len(self.candidate_tracking) != len(self.race.lrs)):
            raise ValueError("candidate_tracking: one MLflow run per raced learning rate, and only in a race")
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)  # JSON types only: lists, not tuples
        values["candidate_tracking"] = list(values["candidate_tracking"])
        if values["race"] is not None:
            values["race"]["lrs"] = list(values["race"]["lrs"])
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LoopConfig":
        return _from_dict(cls, data, "loop")


def _from_dict(cls, data: Mapping[str, Any], what: str):
    """Build a config dataclass from its `to_dict` form, refusing keys it does not know."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} settings: {sorted(unknown)}")
    return cls(**dict(data))
