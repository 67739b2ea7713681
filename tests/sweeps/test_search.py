"""Learning-rate search without Ray: seeded Optuna proposals, grid-edge flags and the extension plan."""

import math

import pytest

from sciml.core.tables import LR_AT_EDGE
from sciml.sweeps.results import best_by_validation
from sciml.sweeps.search import cell_asha, edge_extensions, grid_ratios, mark_edges, optuna_lrs

GRID = (3e-4, 1e-3, 3e-3)
CELL = ("SYS-1(5,10)", "med", "poisson", "none", "64K", "scratch", 8, 0)


def test_seeded_optuna_proposals_are_identical_across_calls_and_inside_the_range():
    first = optuna_lrs(CELL, 3e-4, 3e-3, 4, seed=0)
    assert first == optuna_lrs(CELL, 3e-4, 3e-3, 4, seed=0)
    assert len(first) == 4 and all(3e-4 <= lr <= 3e-3 for lr in first)
    assert optuna_lrs(CELL[:-1] + (1,), 3e-4, 3e-3, 4, seed=0) != first  # cells are independent
    assert optuna_lrs(CELL, 3e-4, 3e-3, 4, seed=1) != first
    assert optuna_lrs(CELL, 1e-3, 1e-3, 3, seed=0) == [1e-3]  # a one-value range: that value once


def test_grid_ratios_follow_the_grid_spacing_and_a_one_value_grid_steps_by_3():
    assert grid_ratios((1e-4, 1e-3, 3e-3)) == pytest.approx((10.0, 3.0))
    assert grid_ratios((3e-3,)) == (3.0, 3.0)


def _table(synthetic, val_by_lr):
    """Scratch at N=8 and 32 and a fine-tune at N=8; val_by_lr[(recipe, n)][lr] is its validation error."""
    for (recipe, n), values in val_by_lr.items():
        for seed in (0, 1):
            for lr, val in values.items():
                synthetic.add(recipe, n, val, lr=lr, val=val, seed=seed)
    rows = synthetic.rows()
    return rows, best_by_validation(rows)


def test_edge_extension_adds_exactly_the_next_lr_to_exactly_the_flagged_cells(synthetic):
    rows, best = _table(synthetic, {
        ("scratch", 8): {3e-4: 0.5, 1e-3: 0.4, 3e-3: 0.3},  # best at the top edge -> 9e-3
        ("scratch", 32): {3e-4: 0.2, 1e-3: 0.1, 3e-3: 0.3},  # bracketed: nothing
        ("finetune", 8): {3e-4: 0.1, 1e-3: 0.2, 3e-3: 0.3},  # best at the bottom edge -> 3e-4 / (1e-3 / 3e-4)
    })
    marked = mark_edges(best, rows, GRID)
    flagged = marked[marked[LR_AT_EDGE]]
    assert sorted(set(zip(flagged["recipe"], flagged["n_train"]))) == [("finetune", 8), ("scratch", 8)]
    plan = edge_extensions(marked, rows, GRID)
    assert {(cell[5], cell[6]): lrs for cell, lrs in plan.items()} == {("scratch", 8): [0.009],
                                                                       ("finetune", 8): [9e-05]}


def test_a_cell_that_already_went_beyond_extends_from_its_new_edge_and_caps_at_lr_1(synthetic):
    rows, best = _table(synthetic, {("scratch", 8): {1e-3: 0.5, 3e-3: 0.4, 9e-3: 0.3},
                                    ("scratch", 32): {0.3: 0.5, 0.9: 0.1}})
    plan = edge_extensions(best, rows, GRID)
    assert {cell[6]: lrs for cell, lrs in plan.items()} == {8: [0.027]}  # 0.9 * 3 > 1: not proposed


def test_a_one_value_grid_is_at_both_edges_and_gets_both_neighbours(synthetic):
    rows, best = _table(synthetic, {("scratch", 8): {3e-3: 0.5}})
    plan = edge_extensions(best, rows, (3e-3,))
    assert list(plan.values()) == [[0.001, 0.009]]


def test_optuna_flags_a_best_lr_near_the_range_bounds_and_never_plans_by_itself(synthetic):
    rows, _ = _table(synthetic, {("scratch", 8): {3.3e-4: 0.1, 1e-3: 0.2},
                                 ("scratch", 32): {9e-4: 0.1, 2.5e-3: 0.2}})
    best = mark_edges(best_by_validation(rows, by_seed=True), rows, GRID, search="optuna")
    assert dict(zip(best["n_train"], best[LR_AT_EDGE])) == {8: True, 32: False}


def test_asha_with_ddp_workers_is_refused_naming_the_field():
    from sciml.sweeps.profiles import profile_settings

    smoke = profile_settings("q1", "smoke")
    for scheduler in ("asha", "halving"):
        with pytest.raises(ValueError, match=f"^scheduler: {scheduler} needs local-mode trials"):
            smoke.with_overrides(scheduler=scheduler, workers_per_trial=1)
    for field, value in (("search", "random"), ("scheduler", "hyperband"), ("trials_per_cell", 0),
                         ("grace_period", 0), ("reduction_factor", 1.0), ("extend_edges", -1),
                         ("search_seeds", "all"), ("race_rank", "last")):
        with pytest.raises(ValueError, match=f"^{field}"):
            smoke.with_overrides(**{field: value})


class _Trial:
    """The two fields CellASHA reads from a Tune trial."""

    def __init__(self, trial_id: str, lr: float):
        self.trial_id = trial_id
        self.config = {"trial": {"task": "t", "shift": "", "system": "poisson", "pretrain": "p", "preset": "64K",
                                 "recipe": "finetune", "n_train": 8, "seed": 0, "lr": lr}}


def _feed(scheduler, reports):
    """Results in order (trial, validations, val_rel_l2) -> the scheduler's action for each."""
    return [scheduler.on_trial_result(None, trial, {"validations": t, "val_rel_l2": v}) for trial, t, v in reports]


@pytest.mark.parametrize("demote", [False, True])
def test_halving_stops_a_trial_that_passed_a_rung_once_a_later_trial_beats_it(demote):
    from ray.tune.schedulers import TrialScheduler

    scheduler = cell_asha(epochs=30, grace_period=2, reduction_factor=3.0, demote=demote)
    first, second = _Trial("a", 1e-4), _Trial("b", 1e-3)
    for trial in (first, second):
        scheduler.on_trial_add(None, trial)
    actions = _feed(scheduler, [(first, 1, 0.5), (first, 2, 0.4),  # first at the rung: nothing to beat
                                (second, 1, 0.3), (second, 2, 0.2),  # second beats it there
                                (first, 3, 0.39), (second, 3, 0.19)])
    stop, go = TrialScheduler.STOP, TrialScheduler.CONTINUE
    # Plain ASHA keeps both (the first was judged before the second arrived); halving stops the
    # first at its next result, and never the better second.
    assert actions == [go, go, go, go, stop if demote else go, go]


def test_halving_never_stops_the_trial_that_leads_its_rung():
    from ray.tune.schedulers import TrialScheduler

    scheduler = cell_asha(epochs=30, grace_period=2, reduction_factor=3.0, demote=True)
    first, second = _Trial("a", 1e-4), _Trial("b", 1e-3)
    for trial in (first, second):
        scheduler.on_trial_add(None, trial)
    actions = _feed(scheduler, [(first, 2, 0.2), (second, 2, 0.4), (first, 3, 0.19)])
    assert actions == [TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE]


def test_halving_never_stops_a_cells_last_trial_on_the_records_of_one_it_demoted():
    from ray.tune.schedulers import TrialScheduler

    scheduler = cell_asha(epochs=30, grace_period=2, reduction_factor=3.0, demote=True)
    ahead, behind = _Trial("a", 1e-4), _Trial("b", 1e-3)
    for trial in (ahead, behind):
        scheduler.on_trial_add(None, trial)
    # The first trial is ahead in time: it records at rungs 2 and 6 before the second reaches 2.
    actions = _feed(scheduler, [(ahead, 2, 0.40), (ahead, 6, 0.10),
                                (behind, 2, 0.30),  # beats it at rung 2: the first is demoted
                                (ahead, 7, 0.09),  # ... and stopped at its next result
                                (behind, 6, 0.20)])  # worse than the demoted trial's rung-6 record
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    assert actions == [go, go, go, stop, go]


def test_a_demoted_trials_completion_records_nothing_that_could_stop_its_rival():
    from ray.tune.schedulers import TrialScheduler

    scheduler = cell_asha(epochs=30, grace_period=2, reduction_factor=3.0, demote=True)
    ahead, behind = _Trial("a", 1e-4), _Trial("b", 1e-3)
    for trial in (ahead, behind):
        scheduler.on_trial_add(None, trial)
    assert _feed(scheduler, [(ahead, 2, 0.40), (behind, 2, 0.30)]) == [TrialScheduler.CONTINUE] * 2
    # Its next result reaches rung 6: STOP, and Tune then reports the stopped trial complete.
    assert _feed(scheduler, [(ahead, 6, 0.05)]) == [TrialScheduler.STOP]
    scheduler.on_trial_complete(None, ahead, {"validations": 6, "val_rel_l2": 0.05})
    assert _feed(scheduler, [(behind, 6, 0.20)]) == [TrialScheduler.CONTINUE]


def test_a_trial_demoted_at_its_last_validation_finishes_instead_of_stopping():
    """Found in a fresh-clone run: a trial demoted just before its last validation was stopped there, after
    training every epoch, and recorded as stopped early with epochs_run == epochs."""
    from ray.tune.schedulers import TrialScheduler

    scheduler = cell_asha(epochs=4, grace_period=1, reduction_factor=2.0, demote=True)
    ahead, behind = _Trial("a", 1e-4), _Trial("b", 1e-3)
    for trial in (ahead, behind):
        scheduler.on_trial_add(None, trial)
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    assert _feed(scheduler, [(ahead, 1, 0.40), (ahead, 3, 0.30), (behind, 1, 0.20)]) == [go, go, go]  # demoted
    last = {"validations": 4, "val_rel_l2": 0.25, "epoch": 4, "epochs": 4}
    assert scheduler.on_trial_result(None, ahead, last) == go
    # Before its last validation the same demotion stops it.
    scheduler = cell_asha(epochs=5, grace_period=1, reduction_factor=2.0, demote=True)
    for trial in (ahead, behind):
        scheduler.on_trial_add(None, trial)
    assert _feed(scheduler, [(ahead, 1, 0.40), (ahead, 3, 0.30), (behind, 1, 0.20)]) == [go, go, go]
    assert scheduler.on_trial_result(None, ahead, {**last, "epochs": 5}) == stop
