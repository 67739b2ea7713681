"""Sweep settings: one validated dataclass; profiles only choose its numbers."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from sciml.physics import SYSTEMS


def _ints(name: str, values, low: int = 1) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in values):
        raise ValueError(f"{name}: must be a non-empty list of integers >= {low}, got {list(values)}")
    return values


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

    def __post_init__(self) -> None:
        from sciml.training.config import ModelConfig

        if self.resolution < 8 or self.resolution % 2:
            raise ValueError(f"resolution: must be an even integer >= 8, got {self.resolution}")
        for name in ("n_pretrain", "n_downstream", "n_val", "n_test", "epochs", "batch_size",
                     "pretrain_epochs", "pretrain_batch_size", "seeds", "cpus_per_worker", "shard_size"):
            _ints(name, (getattr(self, name),))
        _ints("seed", (self.seed,), low=0)
        _ints("min_steps", (self.min_steps,), low=0)
        _ints("workers_per_trial", (self.workers_per_trial,), low=0)
        object.__setattr__(self, "n_values", tuple(sorted(set(_ints("n_values", self.n_values)))))
        object.__setattr__(self, "scratch_extra_n", tuple(sorted(set(self.scratch_extra_n))))
        if self.scratch_extra_n:
            _ints("scratch_extra_n", self.scratch_extra_n)
        largest = max(self.n_values + self.scratch_extra_n)
        if largest > self.n_downstream:
            raise ValueError(f"n_values: the largest N ({largest}) exceeds n_downstream ({self.n_downstream})")
        for name in ("lrs", "pretrain_lrs"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values or any(not (0 < v <= 1 and math.isfinite(v)) for v in values):
                raise ValueError(f"{name}: must be a non-empty list of numbers in (0, 1], got {list(values)}")
            object.__setattr__(self, name, values)
        if not self.presets:
            raise ValueError("presets: must name at least one model (a preset or dWIDTHmMODES)")
        models = {p: ModelConfig.parse(p) for p in self.presets}
        too_big = [p for p, m in models.items() if 2 * m.width_and_modes[1] > self.resolution]
        if too_big:
            raise ValueError(f"presets: {too_big} need m <= n/2 but resolution is {self.resolution}")
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad:
            raise ValueError(f"systems: must be a subset of {SYSTEMS}, got {list(self.systems)}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker: must be >= 0, got {self.gpus_per_worker}")
        if self.max_concurrent is not None:
            _ints("max_concurrent", (self.max_concurrent,))
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision: must be fp32 or bf16, got {self.precision!r}")

    def with_overrides(self, **overrides: Any) -> "SweepSettings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

