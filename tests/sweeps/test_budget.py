"""The compute budget against a hand count on a synthetic trials table."""

import math

import pytest

from sciml.sweeps.budget import Budget

GRID = (3e-4, 1e-3, 3e-3)


def test_budget_counts_the_sweep_and_computes_the_full_grid_of_the_same_cells(synthetic):
    # Cell A (scratch N=8): two trials, one stopped after 10 of 30 epochs at 2 steps per epoch.
    synthetic.add("scratch", 8, 0.2, lr=1e-3, epochs=30, epochs_run=30, steps=60, train_seconds=6.0,
                  trial_seconds=10.0)
    synthetic.add("scratch", 8, 0.3, lr=3e-3, epochs=30, epochs_run=10, steps=20, train_seconds=2.0,
                  trial_seconds=5.0, stopped_early=True)
    # Cell B (fine-tune N=32): one trial, 30 epochs at 4 steps per epoch.
    synthetic.add("finetune", 32, 0.1, lr=1e-3, epochs=30, epochs_run=30, steps=120, train_seconds=12.0,
                  trial_seconds=16.0)
    synthetic.add("zeroshot", 0, 0.5, epochs_run=0, steps=0, train_seconds=0.0, trial_seconds=3.0)
    budget = Budget.from_trials(synthetic.rows(), GRID)
    assert (budget.trials, budget.steps, budget.stopped_early) == (4, 200, 1)
    assert budget.train_seconds == pytest.approx(20.0) and budget.trial_seconds == pytest.approx(34.0)
    # Grid: 3 lrs x (30 x 2) for A + 3 lrs x (30 x 4) for B; the zero-shot evaluation as measured.
    assert budget.grid_steps == 3 * 60 + 3 * 120 and budget.grid_trials == 6 + 1
    # Overheads 4, 3, 4, 3 s: median 3.5, total 14. Grid seconds: 540 steps at 0.1 s + 6 x 3.5 + 3.
    assert (budget.overhead_median, budget.overhead_total) == pytest.approx((3.5, 14.0))
    assert budget.grid_trial_seconds == pytest.approx(540 * 0.1 + 6 * 3.5 + 3.0)
    assert budget.steps_ratio == pytest.approx(200 / 540)
    assert budget.training_share == pytest.approx(20 / 34)
    lines = "\n".join(budget.summary_lines())
    assert "200 training steps" in lines and "540 training steps" in lines and "37% of the steps" in lines
    assert budget.to_dict()["steps_ratio"] == pytest.approx(200 / 540)


def test_an_empty_sweep_has_an_empty_budget_without_dividing_by_zero():
    import pandas as pd

    from sciml.core.tables import RESULT_COLUMNS

    budget = Budget.from_trials(pd.DataFrame(columns=RESULT_COLUMNS), GRID)
    assert budget.steps == 0 and "n/a" in "\n".join(budget.summary_lines())


def test_the_stage_share_divides_training_seconds_by_wall_times_slots(synthetic):
    from dataclasses import replace

    synthetic.add("scratch", 8, 0.5, lr=1e-3, steps=100, epochs=30, epochs_run=30, train_seconds=10.0,
                  trial_seconds=12.0)
    budget = Budget.from_trials(synthetic.rows(), GRID)
    assert math.isnan(budget.stage_training_share) and "Downstream stage" not in "\n".join(budget.summary_lines())
    budget = replace(budget, stage_wall_seconds=10.0, slots=2)
    assert budget.stage_training_share == pytest.approx(10.0 / 20.0)
    assert "training steps filled 50% of its slot-seconds" in "\n".join(budget.summary_lines())
