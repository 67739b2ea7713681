import math

import numpy as np
import pandas as pd
import pytest

from sciml.sweeps.results import best_by_validation, data_savings, scratch_equivalent, trial_rows


def test_scratch_equivalent_interpolates_in_log_log():
    n = np.array([8, 64, 512])
    err = np.array([0.5, 0.1, 0.02])
    # Halfway in log error between 0.1 (N=64) and 0.02 (N=512) is sqrt(0.1*0.02).
    value, bound = scratch_equivalent(n, err, math.sqrt(0.1 * 0.02))
    assert bound == "exact"
    assert value == pytest.approx(math.sqrt(64 * 512), rel=1e-9)
    assert scratch_equivalent(n, err, 0.1) == (pytest.approx(64.0), "exact")


def test_scratch_equivalent_marks_censored_points_and_uses_the_envelope():
    n = np.array([8, 64, 512])
    assert scratch_equivalent(n, np.array([0.5, 0.1, 0.02]), 0.01) == (512.0, "above")
    assert scratch_equivalent(n, np.array([0.5, 0.1, 0.02]), 0.9) == (8.0, "below")
    # A worse point at N=512 does not undo what N=64 reached.
    value, bound = scratch_equivalent(n, np.array([0.5, 0.1, 0.3]), 0.2)
    assert bound == "exact" and 8 < value < 64


def _spec(recipe, n, lr, seed=0, pretrain="none"):
    return {"recipe": recipe, "task": "SYS-1(5,10)", "shift": "med", "system": "poisson", "preset": "64K",
            "n_train": n, "lr": lr, "seed": seed, "pretrain": pretrain}


def test_best_learning_rate_is_chosen_by_validation_not_test():
    trials = [
        (_spec("scratch", 8, 1e-3), {"val_rel_l2": 0.3, "test_rel_l2": 0.9}, "a"),
        (_spec("scratch", 8, 1e-2), {"val_rel_l2": 0.2, "test_rel_l2": 0.95}, "b"),
        (_spec("finetune", 8, 1e-3, pretrain="SYS-1(1,5)"), {"val_rel_l2": 0.1, "test_rel_l2": 0.11}, "c"),
        (_spec("zeroshot", 0, None, pretrain="SYS-1(1,5)"), {"val_rel_l2": 0.15, "test_rel_l2": 0.16}, "d"),
    ]
    rows = trial_rows("q1", trials, {"64K": 72000})
    best = best_by_validation(rows)
    assert len(best) == 3
    scratch = best[best["recipe"] == "scratch"].iloc[0]
    assert scratch["trial_id"] == "b" and scratch["lr"] == 1e-2 and scratch["test_rel_l2"] == 0.95
    assert math.isnan(best[best["recipe"] == "zeroshot"].iloc[0]["lr"])
    assert list(best["recipe"]) == ["zeroshot", "scratch", "finetune"]


def test_rows_are_ordered_by_model_size_not_preset_name():
    trials = [({**_spec("scratch", 8, 1e-3), "preset": preset}, {"val_rel_l2": 0.1, "test_rel_l2": 0.1}, preset)
              for preset in ("1M", "d16m8", "64K")]
    best = best_by_validation(trial_rows("q2", trials, {"64K": 67329, "d16m8": 263937, "1M": 1050369}))
    assert list(best["preset"]) == ["64K", "d16m8", "1M"]


def test_rows_are_ordered_by_system_number():
    tasks = (("helmholtz", "SYS-3(1,5)"), ("poisson", "SYS-1(1,2.5)"), ("advdiff", "SYS-2(0.2,0.4)"))
    trials = [({**_spec("scratch", 8, 1e-3), "system": system, "task": task},
               {"val_rel_l2": 0.1, "test_rel_l2": 0.1}, task) for system, task in tasks]
    best = best_by_validation(trial_rows("q4", trials, {"64K": 1}))
    assert list(best["task"]) == ["SYS-1(1,2.5)", "SYS-2(0.2,0.4)", "SYS-3(1,5)"]


def test_learning_rate_choice_uses_the_mean_over_seeds():
    trials = []
    for seed, (v1, v2) in enumerate([(0.1, 0.5), (0.9, 0.4)]):
        trials.append((_spec("scratch", 8, 1e-3, seed), {"val_rel_l2": v1, "test_rel_l2": v1}, f"x{seed}"))
        trials.append((_spec("scratch", 8, 1e-2, seed), {"val_rel_l2": v2, "test_rel_l2": v2}, f"y{seed}"))
    best = best_by_validation(trial_rows("q1", trials, {"64K": 1}))
    # Means: lr 1e-3 -> 0.5, lr 1e-2 -> 0.45; both seeds keep the same lr.
    assert set(best["lr"]) == {1e-2} and len(best) == 2


def test_data_savings_ratio():
    trials = []
    for n, err in [(8, 0.5), (64, 0.1), (512, 0.02)]:
        trials.append((_spec("scratch", n, 1e-3), {"val_rel_l2": err, "test_rel_l2": err}, f"s{n}"))
    trials.append((_spec("finetune", 8, 1e-3, pretrain="P"), {"val_rel_l2": 0.1, "test_rel_l2": 0.1}, "f8"))
    trials.append((_spec("finetune", 64, 1e-3, pretrain="P"), {"val_rel_l2": 0.01, "test_rel_l2": 0.01}, "f64"))
    savings = data_savings(best_by_validation(trial_rows("q1", trials, {"64K": 1})))
    by_n = savings.set_index("n_train")
    assert by_n.loc[8, "savings"] == pytest.approx(8.0) and by_n.loc[8, "bound"] == "exact"
    assert by_n.loc[64, "bound"] == "above" and by_n.loc[64, "scratch_equivalent_n"] == 512
    assert isinstance(savings, pd.DataFrame)
