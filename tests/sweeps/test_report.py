"""report.md opens with the claims; the budget, kept-start and edge counts, fits and tables follow; the
printed summary has the same head."""

import io

import pandas as pd

from sciml.sweeps.profiles import profile_settings
from sciml.sweeps.questions import Q1
from sciml.sweeps.report import write_outputs
from sciml.sweeps.results import data_savings
from sciml.sweeps.runner import SweepOutcome, print_summary


class _Budget:
    def summary_lines(self):
        return ["- training steps: 1,000 of the full grid's 3,000 (0.33x)"]


def _sweep(synthetic, tmp_path, budget=None):
    synthetic.q1(seeds=3)
    synthetic.trials = [(spec, {**m, "best_epoch": 0} if spec["recipe"] == "finetune" and spec["n_train"] == 8
                         else m, key) for spec, m, key in synthetic.trials]
    best = synthetic.best()
    best = best.assign(lr_at_edge=(best["recipe"] == "scratch") & (best["n_train"] == 512))
    savings = data_savings(best)
    settings = profile_settings("q1", "smoke").with_overrides(seeds=3, out=str(tmp_path))
    files = write_outputs(Q1, settings, best, savings, synthetic.rows(), str(tmp_path), budget=budget)
    return best, savings, files


def test_report_opens_with_claims_and_counts_kept_starts_and_edges(synthetic, tmp_path):
    best, savings, files = _sweep(synthetic, tmp_path, budget=_Budget())
    report = (tmp_path / "report.md").read_text()
    lines = report.splitlines()
    assert lines[0].startswith("# Q1 downstream data scaling") and lines[2] == "## Claims"
    assert report.index("## Claims") < report.index("## Compute budget") < report.index("## Checks") \
        < report.index("## Fine-tune vs scratch")
    assert "| fine-tuning beats scratch at every N | SYS-1(5,10) | supported |" in report
    assert "| fine-tuning saves data | SYS-1(5,10) | inconclusive |" in report
    assert "- training steps: 1,000 of the full grid's 3,000 (0.33x)" in report
    assert "1 of 3 fine-tuned cells (3 of 9 runs)" in report and "SYS-1(5,10) 64K from SYS-1(1,5): N = 8" in report
    assert "(`lr_at_edge`): 1 of 7." in report
    assert "none (kept its start)" in report and "## Scaling fits" in report
    claims = pd.read_csv(tmp_path / "claims.csv")
    assert list(claims["verdict"]) == ["supported", "inconclusive"]
    cells = pd.read_csv(tmp_path / "cells.csv")
    assert len(cells) == len(best) // 3 and set(cells["n_seeds"]) == {3}
    fits = pd.read_csv(tmp_path / "scaling_fits.csv")
    assert set(fits["recipe"]) == {"scratch", "finetune"} and fits["alpha_low"].notna().all()
    saved = pd.read_csv(tmp_path / "savings.csv")
    assert saved.loc[saved["n_train"] == 8, "savings"].isna().all()
    assert "no savings" in saved.loc[saved["n_train"] == 8, "note"].iloc[0]
    assert len(pd.read_csv(tmp_path / "savings_by_seed.csv")) == 9
    assert {"fig3_data_scaling.png", "figB1_data_savings.png", "report.md"} <= set(files)
    assert not (tmp_path / "model_scaling_fits.csv").exists()  # one preset: nothing to fit against size


def test_report_without_budget_or_edges_says_so(synthetic, tmp_path):
    synthetic.q1(seeds=1)
    best = synthetic.best()
    settings = profile_settings("q1", "smoke").with_overrides(out=str(tmp_path))
    write_outputs(Q1, settings, best, data_savings(best), synthetic.rows(), str(tmp_path))
    report = (tmp_path / "report.md").read_text()
    assert "## Compute budget" not in report and "Grid edges (`lr_at_edge`): not checked" in report
    assert "0 of 3 fine-tuned cells" in report


def test_printed_summary_puts_claims_first(synthetic, tmp_path):
    best, savings, files = _sweep(synthetic, tmp_path)
    stream = io.StringIO()
    print_summary(SweepOutcome(best, savings, files, None, None), stream=stream, budget=_Budget())
    text = stream.getvalue()
    assert text.index("## Claims") < text.index("## Compute budget") < text.index("Results (") \
        < text.index("Data savings (") < text.index("Files:")
    assert "| fine-tuning beats scratch at every N | SYS-1(5,10) | supported |" in text
    assert "test_q25" in text and "kept_start" in text
