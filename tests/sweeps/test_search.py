"""Learning-rate search without Ray: seeded Optuna proposals, grid-edge flags and the extension plan."""

import math

import pytest

from sciml.core.tables import LR_AT_EDGE
from sciml.sweeps.results import best_by_validation
from sciml.sweeps.search import edge_extensions, grid_ratios, mark_edges, optuna_lrs

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
    with pytest.raises(ValueError, match="^scheduler: asha needs local-mode trials"):
        smoke.with_overrides(scheduler="asha", workers_per_trial=1)
    for field, value in (("search", "random"), ("scheduler", "hyperband"), ("trials_per_cell", 0),
                         ("grace_period", 0), ("reduction_factor", 1.0), ("extend_edges", -1)):
        with pytest.raises(ValueError, match=f"^{field}"):
            smoke.with_overrides(**{field: value})
