"""A sweep's compute budget: what it spent, and what the full grid of the same cells would have.

The sweep's own figures are sums over its trials (every row of all_trials): optimizer
steps, training seconds (measured inside the training loop, steps only) and
trial-seconds (Tune's time_total_s: the whole trial, set-up and evaluation included).

The grid's figures are computed, not run: every training cell (cell = task x shift x
preset x pre-training x recipe x N x seed) trains every grid learning rate for its full
epochs, i.e. `len(grid_lrs) x full steps` where a cell's full steps are its trials'
planned epochs x steps per epoch. The grid's trial-seconds price those steps at this
sweep's measured seconds per step and add this sweep's median per-trial overhead for each
grid trial; evaluation-only trials (zero-shot) are the same in both and counted as measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sciml.core.tables import CELL

TRAINED = ("scratch", "finetune")


@dataclass(frozen=True)
class Budget:
    trials: int
    steps: int
    train_seconds: float
    trial_seconds: float
    grid_trials: int
    grid_steps: int
    grid_trial_seconds: float
    overhead_median: float  # trial seconds - training seconds, per trial
    overhead_total: float
    stopped_early: int
    # The downstream stage as the cluster saw it: wall seconds and trial slots (max concurrent
    # trials); 0 when not measured. Slot-seconds not spent in training steps are start-up,
    # evaluation, logging and scheduling gaps between trials.
    stage_wall_seconds: float = 0.0
    slots: int = 0

    @classmethod
    def from_trials(cls, rows: pd.DataFrame, grid_lrs: Sequence[float] | Mapping[str, Sequence[float]]) -> "Budget":
        """From the all_trials table (every trial, with steps, epochs, epochs_run and the seconds).

        `grid_lrs`: the grid, or the grid of each recipe (scratch may have its own).
        """
        if rows.empty:
            return cls(0, 0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0)
        rows = rows.copy()
        for name in ("steps", "train_seconds", "trial_seconds", "epochs", "epochs_run"):
            rows[name] = pd.to_numeric(rows[name], errors="coerce")
        rows[["steps", "train_seconds"]] = rows[["steps", "train_seconds"]].fillna(0.0)
        overhead = (rows["trial_seconds"] - rows["train_seconds"]).dropna()
        overhead_median = float(overhead.median()) if len(overhead) else 0.0
        steps = int(rows["steps"].sum())
        train_seconds = float(rows["train_seconds"].sum())
        seconds_per_step = train_seconds / steps if steps else 0.0
        trained = rows[rows["recipe"].isin(TRAINED)]
        grid_trials, grid_steps = 0, 0
        for _, cell in trained.groupby(CELL + ["seed"], sort=False, dropna=False):
            run = cell[cell["epochs_run"] > 0]
            if run.empty:
                continue
            first = run.iloc[0]
            full = int(round(first["epochs"] * first["steps"] / first["epochs_run"]))
            lrs = len(grid_lrs[first["recipe"]] if isinstance(grid_lrs, Mapping) else grid_lrs)
            grid_trials += lrs
            grid_steps += lrs * full
        untrained = rows[~rows["recipe"].isin(TRAINED)]
        grid_seconds = (grid_steps * seconds_per_step + grid_trials * overhead_median
                        + float(untrained["trial_seconds"].fillna(0.0).sum()))
        return cls(trials=len(rows), steps=steps, train_seconds=train_seconds,
                   trial_seconds=float(rows["trial_seconds"].fillna(0.0).sum()),
                   grid_trials=grid_trials + len(untrained), grid_steps=grid_steps, grid_trial_seconds=grid_seconds,
                   overhead_median=overhead_median, overhead_total=float(overhead.sum()),
                   stopped_early=int(rows.get("stopped_early", pd.Series(dtype=bool)).fillna(False).astype(bool).sum()))

    @property
    def steps_ratio(self) -> float:
        return self.steps / self.grid_steps if self.grid_steps else math.nan

    @property
    def seconds_ratio(self) -> float:
        return self.trial_seconds / self.grid_trial_seconds if self.grid_trial_seconds else math.nan

    @property
    def training_share(self) -> float:
        """The share of the trials' wall time spent in training steps."""
        return self.train_seconds / self.trial_seconds if self.trial_seconds else math.nan

    @property
    def stage_training_share(self) -> float:
        """The share of the downstream stage's slot-seconds (wall x concurrent trials) in training steps."""
        slot_seconds = self.stage_wall_seconds * self.slots
        return self.train_seconds / slot_seconds if slot_seconds else math.nan

    def summary_lines(self) -> list[str]:
        return [
            f"- This sweep: {self.trials} trials, {self.steps:,} training steps, {self.trial_seconds:,.0f} "
            f"trial-seconds ({self.stopped_early} stopped early).",
            f"- The full grid of the same cells (computed, not run): {self.grid_trials} trials, "
            f"{self.grid_steps:,} training steps, about {self.grid_trial_seconds:,.0f} trial-seconds.",
            f"- Ratio to the grid: {_share(self.steps_ratio)} of the steps, {_share(self.seconds_ratio)} "
            "of the trial-seconds.",
            f"- Share of trial wall time in training steps: {_share(self.training_share)} "
            f"({self.train_seconds:,.0f} of {self.trial_seconds:,.0f} s).",
            f"- Per-trial overhead (trial seconds minus training seconds): median {self.overhead_median:.1f} s, "
            f"total {self.overhead_total:,.0f} s.",
        ] + ([f"- Downstream stage: {self.stage_wall_seconds:,.0f} s wall with up to {self.slots} trials at a time; "
              f"training steps filled {_share(self.stage_training_share)} of its slot-seconds."]
             if self.stage_wall_seconds and self.slots else [])

    def to_dict(self) -> dict:
        return {**asdict(self), "steps_ratio": self.steps_ratio, "seconds_ratio": self.seconds_ratio,
                "training_share": self.training_share, "stage_training_share": self.stage_training_share}


def _share(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.0f}%"
