"""The grid-edge effect table: each extended cell's answer on the grid alone and with the extension."""

import math

import pytest

from sciml.sweeps.edges import edge_effect, on_grid

GRID = {"finetune": (1e-4, 3e-4, 1e-3), "scratch": (3e-3, 1e-2, 3e-2)}


def _scratch_and_finetune(synthetic, scratch_32_extended=None):
    """Scratch err(N) on its grid (best at the top edge at N=32), a fine-tune at N=8 and 32."""
    for n, errors in ((8, {3e-3: 0.9, 1e-2: 0.5, 3e-2: 0.6}), (32, {3e-3: 0.6, 1e-2: 0.4, 3e-2: 0.3}),
                      (128, {3e-3: 0.2, 1e-2: 0.1, 3e-2: 0.15})):
        for lr, err in errors.items():
            synthetic.add("scratch", n, err, lr=lr)
    for n, err in ((8, 0.35), (32, 0.2)):
        for lr in GRID["finetune"]:
            synthetic.add("finetune", n, err if lr == 3e-4 else 2 * err, lr=lr)
    synthetic.add("zeroshot", 0, 0.5)
    if scratch_32_extended is not None:
        synthetic.add("scratch", 32, scratch_32_extended, lr=9e-2)
    return synthetic.rows()


def test_no_trial_beyond_the_grid_gives_an_empty_table(synthetic):
    rows = _scratch_and_finetune(synthetic)
    assert on_grid(rows, GRID).all()
    assert edge_effect(rows, GRID).empty


def test_a_better_lr_beyond_the_edge_lowers_scratch_and_the_savings_it_implies(synthetic):
    rows = _scratch_and_finetune(synthetic, scratch_32_extended=0.2)
    assert int((~on_grid(rows, GRID)).sum()) == 1
    table = edge_effect(rows, GRID).set_index(["recipe", "n_train"])
    scratch = table.loc[("scratch", 32)]
    assert (scratch["lr_grid"], scratch["lr_extended"]) == (pytest.approx(3e-2), pytest.approx(9e-2))
    assert (scratch["test_grid"], scratch["test_extended"]) == (pytest.approx(0.3), pytest.approx(0.2))
    assert scratch["change"] == pytest.approx(0.2 / 0.3 - 1)
    # The fine-tune at N=32 (0.2) matched scratch at N=128 on the grid scratch curve
    # (0.3 at 32, 0.1 at 128: log-log interpolation) and matches scratch at N=32 once extended.
    finetune = table.loc[("finetune", 32)]
    assert finetune["savings_extended"] == pytest.approx(1.0)
    assert finetune["savings_grid"] > 1.5
    assert math.isnan(finetune["change"])  # its own cell was not extended


def test_an_extension_that_loses_changes_nothing(synthetic):
    rows = _scratch_and_finetune(synthetic, scratch_32_extended=0.9)
    table = edge_effect(rows, GRID).set_index(["recipe", "n_train"])
    scratch = table.loc[("scratch", 32)]
    assert scratch["lr_extended"] == pytest.approx(3e-2) and scratch["change"] == pytest.approx(0.0)
    finetune = table.loc[("finetune", 32)]
    assert finetune["savings_grid"] == pytest.approx(finetune["savings_extended"])


def test_the_report_shows_the_extended_cells_and_writes_edge_effect_csv(synthetic, tmp_path):
    from sciml.sweeps.profiles import profile_settings
    from sciml.sweeps.questions import Q1
    from sciml.sweeps.report import write_outputs
    from sciml.sweeps.results import best_by_validation, data_savings

    rows = _scratch_and_finetune(synthetic, scratch_32_extended=0.2)
    best = best_by_validation(rows)
    settings = profile_settings("q1", "smoke").with_overrides(out=str(tmp_path))
    files = write_outputs(Q1, settings, best, data_savings(best), rows, str(tmp_path), edges=edge_effect(rows, GRID))
    report = (tmp_path / "report.md").read_text()
    assert "## Grid edges: the grid alone vs extended" in report
    assert "1 cells were extended beyond the grid; the extension changed the answer of 1" in report
    assert "edge_effect.csv" in files and len((tmp_path / "edge_effect.csv").read_text().splitlines()) > 1
