"""Sweep settings: one validated dataclass; profiles only choose its numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from sciml.core.checks import (check_choice, check_int, check_ints, check_modes_fit, check_number, check_numbers,
                               check_precision, check_resolution)
from sciml.physics import SYSTEMS
from sciml.training.config import RACE_RANKS

SEARCHES = ("grid", "optuna")  # how a cell's learning rates are chosen (sciml/sweeps/search.py)
# Whether a cell's unpromising learning rates stop early: Tune stops trials (asha, halving), or
# one trial per cell races its learning rates in lockstep (race, sciml/training/race.py).
SCHEDULERS = ("fifo", "asha", "halving", "race")
STOPPING_SCHEDULERS = ("asha", "halving")  # those where Tune stops trials (per-validation reports)
# Which seeds search the learning rate: each seed (its own trials), or the first seed only,
# the others then training once at the first seed's choice (sciml/sweeps/search.py).
SEARCH_SEEDS = ("each", "first")


@dataclass(frozen=True)
class SweepSettings:
    """Everything a sweep needs besides the question; the same fields for every profile."""

    profile: str
    resolution: int
    n_pretrain: int  # training examples per pre-training dataset
    n_downstream: int  # size of each downstream train split (>= the largest N)
    n_val: int
    n_test: int
    presets: tuple[str, ...]
    n_values: tuple[int, ...]  # downstream sizes N for fine-tuning and scratch
    lrs: tuple[float, ...]  # downstream learning-rate grid (fine-tuning; scratch too unless scratch_lrs)
    epochs: int
    batch_size: int
    pretrain_lrs: tuple[float, ...]
    pretrain_epochs: int
    pretrain_batch_size: int
    min_steps: int = 0  # at least this many optimizer steps for small N
    scratch_extra_n: tuple[int, ...] = ()  # larger N for scratch only, for data-savings interpolation
    systems: tuple[str, ...] = ()  # restrict to these systems; () = all of the question's
    ood: bool = False  # Q4: also the out-of-distribution tasks of Q3
    seeds: int = 1
    seed: int = 0
    workers_per_trial: int = 0  # 0 = Train's local mode inside the trial process
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    max_concurrent: int | None = None
    precision: str = "fp32"
    shard_size: int = 1024
    out: str = "runs/sweep"
    cache: str = "runs/cache"  # datasets and pre-trained checkpoints, shared between sweeps
    loss: str = "mse"  # training loss of every stage (the paper's: mse)
    # Scratch starts from random weights and wants larger steps than a fine-tune: its own grid.
    scratch_lrs: tuple[float, ...] = ()  # () = the same grid as fine-tuning (lrs)
    # GPU packing: the share of one GPU a trial of each preset takes (presets not named
    # take gpus_per_worker). Small models leave an H100 mostly idle (docs/cluster.md).
    gpu_share: tuple[tuple[str, float], ...] = ()
    gpu_memory_gb: float = 80.0  # one GPU's memory, for refusing shares a trial cannot fit
    # Registered models replacing pre-training: "LABEL=models:/NAME@ALIAS" or "models:/..." (sweeps.pretrained).
    pretrained: tuple[str, ...] = ()
    # How learning rates are chosen and trials stopped (sciml/sweeps/search.py); grid + fifo is the paper's.
    search: str = "grid"  # grid | optuna
    trials_per_cell: int = 3  # optuna: learning rates proposed per cell
    scheduler: str = "fifo"  # fifo | asha | halving (ASHA plus demotion) | race (sciml/sweeps/search.py)
    grace_period: int = 2  # asha, halving, race: validations before a learning rate can be stopped
    reduction_factor: float = 3.0  # asha, halving, race: keep the best 1/reduction_factor at each rung
    race_rank: str = "averaged"  # race: rank by averaged | best (RaceConfig.rank_by, sciml/training/race.py)
    extend_edges: int = 0  # grid: rounds that add the next lr beyond a cell's best-at-the-edge lr
    search_seeds: str = "each"  # each | first: only the first seed searches; the others train at its choice

    def __post_init__(self) -> None:
        from sciml.training.config import ModelConfig
        from sciml.training.metrics import LOSSES

        check_resolution("resolution", self.resolution)
        for name in ("n_pretrain", "n_downstream", "n_val", "n_test", "epochs", "batch_size",
                     "pretrain_epochs", "pretrain_batch_size", "seeds", "cpus_per_worker", "shard_size"):
            check_int(name, getattr(self, name), 1)
        for name in ("seed", "min_steps", "workers_per_trial"):
            check_int(name, getattr(self, name), 0)
        object.__setattr__(self, "n_values", tuple(sorted(set(check_ints("n_values", self.n_values)))))
        object.__setattr__(self, "scratch_extra_n", tuple(sorted(set(self.scratch_extra_n))))
        if self.scratch_extra_n:
            check_ints("scratch_extra_n", self.scratch_extra_n)
        largest = max(self.n_values + self.scratch_extra_n)
        if largest > self.n_downstream:
            raise ValueError(f"n_values: the largest N ({largest}) exceeds n_downstream ({self.n_downstream})")
        for name in ("lrs", "pretrain_lrs"):
            object.__setattr__(self, name, check_numbers(name, getattr(self, name), 0, 1, low_open=True))
        if self.scratch_lrs:
            object.__setattr__(self, "scratch_lrs", check_numbers("scratch_lrs", self.scratch_lrs, 0, 1,
                                                                  low_open=True))
        check_choice("loss", self.loss, LOSSES)
        if not self.presets:
            raise ValueError("presets: must name at least one model (a preset or dWIDTHmMODES)")
        for preset in self.presets:
            check_modes_fit("presets", ModelConfig.parse(preset).width_and_modes[1], self.resolution, model=preset)
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad:
            raise ValueError(f"systems: must be a subset of {SYSTEMS}, got {list(self.systems)}")
        check_number("gpus_per_worker", self.gpus_per_worker, 0)
        if self.max_concurrent is not None:
            check_int("max_concurrent", self.max_concurrent, 1)
        check_precision("precision", self.precision)
        object.__setattr__(self, "gpu_share", tuple((str(p), float(v)) for p, v in self.gpu_share))
        for preset, share in self.gpu_share:
            check_number("gpu_share", share, 0, low_open=True)
            # Ray schedules fractions of one GPU, or whole GPUs: 1.5 fits no node.
            if share > 1 and share != int(share):
                raise ValueError(f"gpu_share: must be a fraction of one GPU or a whole number, got {preset}={share}")
        check_number("gpu_memory_gb", self.gpu_memory_gb, 0, low_open=True)
        from sciml.sweeps.pretrained import split_entry

        object.__setattr__(self, "pretrained", tuple(self.pretrained))
        for entry in self.pretrained:
            split_entry(entry)
        check_choice("search", self.search, SEARCHES)
        check_choice("scheduler", self.scheduler, SCHEDULERS)
        check_int("trials_per_cell", self.trials_per_cell, 1)
        check_int("grace_period", self.grace_period, 1)
        check_number("reduction_factor", self.reduction_factor, 1, low_open=True)
        check_int("extend_edges", self.extend_edges, 0)
        check_choice("search_seeds", self.search_seeds, SEARCH_SEEDS)
        check_choice("race_rank", self.race_rank, RACE_RANKS)
        if self.scheduler in STOPPING_SCHEDULERS and self.workers_per_trial > 0:
            # Measured with Ray 2.60 (smoke, 2 CPUs): after ASHA stops a DDP trial, the next trials
            # start but never report (TorchTrainer.fit under a stopped Tune trial does not release
            # its workers). Refused until that is solved, rather than a sweep that hangs.
            raise ValueError(f"scheduler: {self.scheduler} needs local-mode trials (workers_per_trial 0) for now: "
                             "a stopped DDP trial does not free its Ray Train workers in Ray 2.60")

    def gpus_for(self, preset: str) -> float:
        """The GPUs one training process of a `preset` trial asks Ray for."""
        return dict(self.gpu_share).get(preset, self.gpus_per_worker)

    @property
    def recipe_lrs(self) -> dict[str, tuple[float, ...]]:
        """The learning-rate grid of each downstream recipe."""
        return {"finetune": self.lrs, "scratch": self.scratch_lrs or self.lrs}

    def with_overrides(self, **overrides: Any) -> "SweepSettings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        # Keeps the keys (and resumability) of sweeps started before these fields.
        if not values["pretrained"]:
            del values["pretrained"]
        if values["search_seeds"] == "each":
            del values["search_seeds"]
        return values

