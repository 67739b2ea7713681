"""Sweep settings: one validated dataclass; profiles only choose its numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from sciml.core.checks import (check_int, check_ints, check_modes_fit, check_number, check_numbers, check_precision,
                               check_resolution)
from sciml.physics import SYSTEMS


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
    lrs: tuple[float, ...]  # downstream learning-rate grid
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
    # Registered models replacing pre-training: "LABEL=models:/NAME@ALIAS" or "models:/..." (sweeps.pretrained).
    pretrained: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from sciml.training.config import ModelConfig

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
        from sciml.sweeps.pretrained import split_entry

        object.__setattr__(self, "pretrained", tuple(self.pretrained))
        for entry in self.pretrained:
            split_entry(entry)

    def with_overrides(self, **overrides: Any) -> "SweepSettings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if not values["pretrained"]:  # keeps the keys (and resumability) of sweeps started before the field
            del values["pretrained"]
        return values

