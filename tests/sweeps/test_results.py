import math

import numpy as np
import pandas as pd
import pytest

from sciml.sweeps.results import (best_by_validation, cell_summary, data_savings, savings_by_seed,
                                   scratch_equivalent, trial_rows)


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


def test_select_seed_chooses_on_that_seed_alone_and_keeps_every_seeds_row():
    # --search-seeds first: seed 0 tried both lrs, seed 1 only seed 0's choice (1e-3), which is worse for it.
    trials = [(_spec("scratch", 8, 1e-3, 0), {"val_rel_l2": 0.1, "test_rel_l2": 0.1}, "a0"),
              (_spec("scratch", 8, 1e-2, 0), {"val_rel_l2": 0.3, "test_rel_l2": 0.3}, "b0"),
              (_spec("scratch", 8, 1e-3, 1), {"val_rel_l2": 0.6, "test_rel_l2": 0.6}, "a1")]
    rows = trial_rows("q1", trials, {"64K": 1})
    best = best_by_validation(rows, select_seed=0)
    assert list(best["trial_id"]) == ["a0", "a1"]
    # The mean over seeds would have picked 1e-2 (0.3 < 0.35) and lost seed 1's row.
    assert list(best_by_validation(rows)["trial_id"]) == ["b0"]


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


def test_trial_rows_carry_compute_columns_and_default_what_is_missing(synthetic):
    synthetic.add("scratch", 8, 0.5, steps=200, train_seconds=3.5, trial_seconds=7.0, epochs_run=12,
                  stopped_early=True, search="optuna", scheduler="asha")
    synthetic.add("scratch", 16, 0.4)  # an older trial: none of the new metrics
    table = synthetic.rows()
    assert list(table.columns[:11]) == ["question", "task", "shift", "preset", "n_params", "recipe", "n_train", "lr",
                                        "val_rel_l2", "test_rel_l2", "trial_id"]  # readers index these by position
    rows = table.set_index("n_train")
    assert rows.loc[8, "steps"] == 200 and rows.loc[8, "epochs_run"] == 12 and rows.loc[8, "stopped_early"]
    assert (rows.loc[8, "search"], rows.loc[8, "scheduler"]) == ("optuna", "asha")
    assert math.isnan(rows.loc[16, "steps"]) and math.isnan(rows.loc[16, "train_seconds"])
    assert not rows.loc[16, "stopped_early"]
    assert (rows.loc[16, "search"], rows.loc[16, "scheduler"]) == ("grid", "fifo")
    assert rows["best_epoch"].dtype == "int64" and rows["epochs"].dtype == "int64"


def test_kept_start_flags_only_fine_tunes_whose_best_epoch_is_zero(synthetic):
    synthetic.add("finetune", 8, 0.1, best_epoch=0).add("finetune", 16, 0.09, best_epoch=3)
    synthetic.add("scratch", 8, 0.5, best_epoch=0).add("zeroshot", 0, 0.1)
    rows = synthetic.rows()
    kept = rows[rows["kept_start"]]
    assert list(zip(kept["recipe"], kept["n_train"])) == [("finetune", 8)]
    assert rows["kept_start"].dtype == bool


def test_cell_summary_reports_median_and_quartiles_over_seeds(synthetic):
    for seed, err in enumerate([0.5, 0.1, 0.3, 0.2, 0.4]):
        synthetic.add("scratch", 8, err, seed=seed)
    for seed, err in enumerate([1.0, 4.0, 2.0]):
        synthetic.add("finetune", 8, err, seed=seed, best_epoch=0 if seed == 1 else 4)
    cells = cell_summary(synthetic.best()).set_index("recipe")
    scratch, fine = cells.loc["scratch"], cells.loc["finetune"]
    # Sorted 0.1 ... 0.5: quartiles at positions 1 and 3 (linear interpolation).
    assert (scratch["test_q25"], scratch["test_rel_l2"], scratch["test_q75"]) == pytest.approx((0.2, 0.3, 0.4))
    assert scratch["n_seeds"] == 5 and not scratch["kept_start"]
    # Sorted 1, 2, 4: quartiles halfway between neighbours.
    assert (fine["test_q25"], fine["test_rel_l2"], fine["test_q75"]) == pytest.approx((1.5, 2.0, 3.0))
    assert fine["kept_start"] and fine["kept_start_seeds"] == 1 and not fine["lr_at_edge"]


def test_savings_per_seed_then_median_and_quartiles(synthetic):
    # Scratch err = 1/N on every seed; fine-tune at N=8 reaches the scratch error of N = 16, 32, 64.
    for seed, n_eq in enumerate([16, 32, 64]):
        for n in (8, 128):
            synthetic.add("scratch", n, 1.0 / n, seed=seed)
        synthetic.add("finetune", 8, 1.0 / n_eq, seed=seed)
    best = synthetic.best()
    by_seed = savings_by_seed(best).sort_values("seed")
    assert list(by_seed["savings"]) == pytest.approx([2.0, 4.0, 8.0])
    point = data_savings(best).iloc[0]
    assert (point["savings_q25"], point["savings"], point["savings_q75"]) == pytest.approx((3.0, 4.0, 6.0))
    assert point["n_seeds"] == 3 and point["bound"] == "exact" and point["note"] == ""


def test_a_fine_tune_that_kept_its_start_gets_no_savings(synthetic):
    for seed in range(2):
        for n in (8, 64, 512):
            synthetic.add("scratch", n, 1.0 / n, seed=seed)
        synthetic.add("finetune", 8, 1.0 / 64, seed=seed, best_epoch=0 if seed == 0 else 7)
        synthetic.add("finetune", 64, 1.0 / 512, seed=seed)
    savings = data_savings(synthetic.best()).set_index("n_train")
    assert math.isnan(savings.loc[8, "savings"]) and math.isnan(savings.loc[8, "scratch_equivalent_n"])
    assert savings.loc[8, "note"] == "kept its start (best epoch 0) in 1 of 2 seed(s): no savings"
    assert savings.loc[64, "savings"] == pytest.approx(8.0) and savings.loc[64, "note"] == ""
    by_seed = savings_by_seed(synthetic.best())
    kept = by_seed[by_seed["kept_start"]]
    assert len(kept) == 1 and kept["savings"].isna().all()


def test_savings_say_when_scratch_sits_at_a_grid_edge_and_bounds_combine_over_seeds(synthetic):
    for seed in range(2):
        for n in (8, 64):
            synthetic.add("scratch", n, 1.0 / n, seed=seed)
        synthetic.add("finetune", 8, 1.0 / 32 if seed == 0 else 1.0 / 128, seed=seed)  # exact, then above
    best = synthetic.best()
    point = data_savings(best).iloc[0]
    assert point["bound"] == "above" and point["note"] == ""
    edged = best.assign(lr_at_edge=(best["recipe"] == "scratch") & (best["n_train"] == 64))
    assert "grid edge at N=64" in data_savings(edged).iloc[0]["note"]
