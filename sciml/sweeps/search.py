"""How a sweep chooses learning rates and stops trials: the grid, Optuna, ASHA, grid edges.

- grid (default, the paper's protocol): every cell trains every learning rate of the profile.
- optuna: per cell (task x shift x preset x recipe x N x pre-training x seed) one seeded
  Optuna TPE study proposes `trials_per_cell` learning rates, log-uniform between the
  grid's smallest and largest value, all up front. The runner then runs them as an
  explicit trial list through the same Tune grid machinery as the grid, so resume,
  MLflow and `ray job submit` need nothing new. Proposing up front gives up TPE's
  sequential adaptivity (with a handful of trials per cell TPE is in its random start-up
  phase anyway) for what matters more here: cells independent of each other, and the same
  command proposing the same learning rates (the study's seed is derived from the sweep
  seed and the cell).
- asha: `CellASHA` runs one Tune ASHA (AsyncHyperBandScheduler) per cell inside one Tune
  experiment, so the brackets only ever compare trials of the same cell; time is counted in
  validations (every run validates about `epochs` times whatever its N). A trial is judged
  only against the trials that reached a rung before it, so a cell's first trial always runs
  to the end.
- halving: ASHA's rungs, plus demotion: when a later trial of the cell pushes a trial that
  already passed a rung out of that rung's top 1/reduction_factor, the passed trial is
  stopped at its next validation. The cell's trials are then judged against each other
  whatever their order (successive halving without waiting): with two trials per cell one
  trains to the end and the other stops at the first rung. Needs a cell's trials to run
  side by side (they are consecutive in the trial list, so they do up to the concurrency).
- race: no Tune scheduler; one trial per cell trains the cell's learning rates in lockstep
  and keeps the best 1/reduction_factor at each rung (synchronous successive halving in one
  process: sciml/training/race.py; the runner groups the cells, `runner.races`), ranked by
  default with each candidate's averaged weights too (`race_rank`, the module says why).
- grid edges: a cell whose best learning rate is the smallest or largest one tried is
  flagged; `edge_extensions` plans the next value beyond that edge on the grid's own log
  spacing (a factor 3 for a one-value grid). Optuna's edges are the search range's bounds:
  its cells are flagged (best within half a grid step of a bound), never extended.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterable, Mapping, Sequence

import pandas as pd

from sciml.core.tables import CELL, LR_AT_EDGE
from sciml.sweeps.tune_state import save_state_after_step

ONE_VALUE_GRID_FACTOR = 3.0  # the step beyond a one-value grid (no spacing of its own)
# A trial's cell: everything but the learning rate. With Optuna the seed is part of it.
TRIAL_CELL = ("task", "shift", "system", "pretrain", "preset", "recipe", "n_train", "seed")


def trial_cell(spec: Mapping) -> tuple:
    return tuple(spec.get(name) for name in TRIAL_CELL)


def _cell_seed(seed: int, cell: tuple) -> int:
    """A stable 32-bit seed per (sweep seed, cell): Python's hash() is salted per process."""
    return int(hashlib.sha256(repr((seed, cell)).encode()).hexdigest()[:8], 16)


def optuna_lrs(cell: tuple, low: float, high: float, count: int, seed: int) -> list[float]:
    """`count` learning rates a seeded TPE study proposes for one cell, log-uniform in [low, high].

    Rounded to 4 significant digits (trial names and tables show them); a repeat after
    rounding is dropped, so a cell may get fewer than `count` distinct values.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=_cell_seed(seed, cell)))
    lrs: list[float] = []
    for _ in range(count):
        trial = study.ask()
        lr = low if low == high else trial.suggest_float("lr", low, high, log=True)
        lr = float(f"{lr:.4g}")
        if lr not in lrs:
            lrs.append(lr)
    return lrs


def grid_ratios(lrs: Sequence[float]) -> tuple[float, float]:
    """The grid's own log spacing at its low and high end (a factor 3 for a one-value grid)."""
    values = sorted(set(lrs))
    if len(values) < 2:
        return ONE_VALUE_GRID_FACTOR, ONE_VALUE_GRID_FACTOR
    return values[1] / values[0], values[-1] / values[-2]


def grid_of(grid_lrs: Sequence[float] | Mapping[str, Sequence[float]], recipe: str) -> Sequence[float]:
    """The learning-rate grid of a recipe: one grid for all, or one per recipe (scratch has its own)."""
    return grid_lrs[recipe] if isinstance(grid_lrs, Mapping) else grid_lrs


def _tried(rows: pd.DataFrame, keys: list[str]) -> dict[tuple, list[float]]:
    trained = rows[rows["recipe"].isin(["scratch", "finetune"])]
    return {key if isinstance(key, tuple) else (key,): sorted(set(group["lr"]))
            for key, group in trained.groupby(keys, sort=False, dropna=False)}


def mark_edges(best: pd.DataFrame, rows: pd.DataFrame, grid_lrs: Sequence[float] | Mapping[str, Sequence[float]],
               search: str = "grid") -> pd.DataFrame:
    """`best` with the `lr_at_edge` column: the cell's best lr is an edge of what it could try.

    grid: the smallest or largest learning rate tried for the cell (extensions included).
    optuna: within half a grid step (log scale) of the search range's bounds.
    """
    best = best.copy()
    if best.empty:
        best[LR_AT_EDGE] = pd.Series(dtype=bool)
        return best
    keys = CELL + (["seed"] if search == "optuna" else [])
    tried = _tried(rows, keys)
    flags = []
    for _, row in best.iterrows():
        if row["recipe"] not in ("scratch", "finetune") or math.isnan(row["lr"]):
            flags.append(False)
            continue
        grid = grid_of(grid_lrs, row["recipe"])
        low_ratio, high_ratio = grid_ratios(grid)
        low, high = min(grid), max(grid)
        lr = float(row["lr"])
        if search == "optuna":
            flags.append(math.log(lr / low) <= 0.5 * math.log(low_ratio) + 1e-12
                         or math.log(high / lr) <= 0.5 * math.log(high_ratio) + 1e-12)
        else:
            values = tried.get(tuple(row[k] for k in keys), [lr])
            flags.append(lr <= min(values) or lr >= max(values))
    best[LR_AT_EDGE] = flags
    return best


def edge_extensions(best: pd.DataFrame, rows: pd.DataFrame, grid_lrs: Sequence[float] | Mapping[str, Sequence[float]],
                    max_lr: float = 1.0) -> dict[tuple, list[float]]:
    """Per flagged grid cell (CELL values), the learning rates to add: one step beyond each edge it sits on.

    A cell tried at one learning rate sits on both edges and gets both neighbours. Values
    above `max_lr` (the settings' bound) are not proposed; cells not at an edge get nothing.
    """
    marked = best if LR_AT_EDGE in best.columns else mark_edges(best, rows, grid_lrs)
    tried = _tried(rows, CELL)
    plan: dict[tuple, list[float]] = {}
    for _, row in marked[marked[LR_AT_EDGE].fillna(False).astype(bool)].iterrows():
        cell = tuple(row[k] for k in CELL)
        if cell in plan:
            continue  # one plan per cell, whatever its number of seeds
        values = tried.get(cell, [float(row["lr"])])
        low_ratio, high_ratio = grid_ratios(grid_of(grid_lrs, row["recipe"]))
        lr, new = float(row["lr"]), []
        if lr <= min(values):
            new.append(float(f"{min(values) / low_ratio:.4g}"))
        if lr >= max(values) and max(values) * high_ratio <= max_lr:
            new.append(float(f"{max(values) * high_ratio:.4g}"))
        new = [v for v in new if v not in values]
        if new:
            plan[cell] = new
    return plan


def _demoted(bracket, trial_id: str) -> set[str]:
    """Trials `trial_id`'s records push out of the top 1/rf of a rung they had passed."""
    out = set()
    for _, recorded in bracket._rungs:
        if trial_id not in recorded or len(recorded) < 2:
            continue
        for other, value in recorded.items():
            if other == trial_id:
                continue
            cutoff = bracket.cutoff({k: v for k, v in recorded.items() if k != other})
            if cutoff is not None and value < cutoff:  # ASHA records -metric for mode min
                out.add(other)
    return out


def _demote(scheduler, trial_id: str) -> set[str]:
    """The live trials `trial_id`'s records demote, taken out of their cell's competition: their
    records at later rungs (they may be ahead in time) must not stop the trial that beat them."""
    bracket = scheduler._trial_info[trial_id]
    demoted = _demoted(bracket, trial_id) & set(scheduler._trial_info)
    for _, recorded in bracket._rungs:
        for other in demoted:
            recorded.pop(other, None)
    return demoted


def _one_cell_asha(epochs: int, grace_period: int, reduction_factor: float):
    from ray.tune.schedulers import AsyncHyperBandScheduler

    # Rungs stop before the last validation (stopping there would only skip the test), and
    # stop_last_trials=False: a run past max_t is finished by its own schedule, not cut.
    return AsyncHyperBandScheduler(
        time_attr="validations", metric="val_rel_l2", mode="min", max_t=max(epochs - 1, grace_period),
        grace_period=grace_period, reduction_factor=reduction_factor, stop_last_trials=False)


def cell_asha(epochs: int, grace_period: int, reduction_factor: float, demote: bool = False):
    """A Tune scheduler: one ASHA per cell on `val_rel_l2` (min), time in validations; `demote`
    (`--scheduler halving`) also stops trials that later trials of their cell push out of a rung."""
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    class CellASHA(FIFOScheduler):
        """Routes each trial's results to the ASHA of its cell; trials are started first in, first out."""
        def __init__(self):
            super().__init__()
            self.cells, self.of_trial = {}, {}  # cell -> its AsyncHyperBandScheduler; trial id -> cell
            self.demoted: set[str] = set()  # trials to stop at their next result

        def set_search_properties(self, metric, mode, **spec) -> bool:  # fixed: val_rel_l2, min
            return True

        def on_trial_add(self, tune_controller, trial):
            self._asha(trial).on_trial_add(tune_controller, trial)

        def _asha(self, trial):
            cell = self.of_trial.setdefault(trial.trial_id, trial_cell(trial.config["trial"]))
            if cell not in self.cells:
                self.cells[cell] = _one_cell_asha(epochs, grace_period, reduction_factor)
            return self.cells[cell]

        def on_trial_result(self, tune_controller, trial, result):
            scheduler = self._asha(trial)
            if trial.trial_id not in scheduler._trial_info:  # restored after a kill: re-register
                scheduler.on_trial_add(tune_controller, trial)
            if trial.trial_id in self.demoted:
                # At its last validation a demoted trial has trained every epoch: stopping it there would only
                # skip its test (and leave a "stopped" row that ran to the end), so it finishes.
                last = result.get("epoch") is not None and result.get("epoch") == result.get("epochs")
                action = TrialScheduler.CONTINUE if last else TrialScheduler.STOP
            else:
                action = scheduler.on_trial_result(tune_controller, trial, result)
            if demote and action == TrialScheduler.CONTINUE:
                self.demoted |= _demote(scheduler, trial.trial_id)
            if action == TrialScheduler.STOP and tune_controller is not None:
                save_state_after_step(tune_controller)  # a stopped trial is finished: record it now
            return action

        def on_trial_complete(self, tune_controller, trial, result):
            if tune_controller is not None:
                save_state_after_step(tune_controller)
            scheduler = self._asha(trial)
            # A demoted trial is out of the competition: ASHA would record its last result at a
            # rung it reached after its demotion.
            if trial.trial_id in self.demoted:
                self.on_trial_remove(tune_controller, trial)
            elif trial.trial_id in scheduler._trial_info:
                scheduler.on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial):
            self.demoted.discard(trial.trial_id)
            scheduler = self._asha(trial)
            scheduler._trial_info.pop(trial.trial_id, None)

        on_trial_error = on_trial_remove  # an errored trial leaves its cell like a removed one

        def debug_string(self) -> str:
            return f"{'halving' if demote else 'ASHA'} per cell: {len(self.cells)} cells"

    return CellASHA()


def cells_of(specs: Iterable[Mapping]) -> list[tuple]:
    return list(dict.fromkeys(trial_cell(s) for s in specs))
