"""Every figure renders from a cell table, with quartile bands when seeds repeat, fits and kept-start markers."""

import functools
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sciml.figures import plots
from sciml.sweeps.fits import scaling_fits
from sciml.sweeps.results import best_by_validation, cell_summary, data_savings, trial_rows


@functools.cache  # built and fitted once per seed count: the figure tests only read them
def _tables(seeds: int):
    best = _best(seeds)
    return best, cell_summary(best), scaling_fits(best)


def _best(seeds=1, kept_at=8):
    trials = []
    tasks = [("SYS-1(5,10)", "med", "poisson", "SYS-1(1,5)"), ("SYS-1(10,20)", "large", "poisson", "SYS-1(1,5)")]
    for (task, shift, system, pre), preset, seed in itertools.product(tasks, ["64K", "1M"], range(seeds)):
        base = {"task": task, "shift": shift, "system": system, "preset": preset, "seed": seed}
        trials.append(({**base, "recipe": "zeroshot", "pretrain": pre, "n_train": 0, "lr": None},
                       {"val_rel_l2": 0.2, "test_rel_l2": 0.2, "best_epoch": 0}, "z"))
        trials.append(({**base, "recipe": "zeroshot", "pretrain": "none", "n_train": 0, "lr": None},
                       {"val_rel_l2": 1.5, "test_rel_l2": 1.5, "best_epoch": 0}, "r"))
        for n in (8, 32, 128):
            err = 1.0 / n ** 0.5 * (1 + 0.1 * seed)
            trials.append(({**base, "recipe": "scratch", "pretrain": "none", "n_train": n, "lr": 1e-3},
                           {"val_rel_l2": err, "test_rel_l2": err, "best_epoch": 9}, "s"))
            trials.append(({**base, "recipe": "finetune", "pretrain": pre, "n_train": n, "lr": 1e-3},
                           {"val_rel_l2": err / 4, "test_rel_l2": err / 4, "best_epoch": 0 if n == kept_at else 9},
                           "f"))
    return best_by_validation(trial_rows("q", trials, {"64K": 1, "1M": 2}))


@pytest.mark.parametrize("key", ["q1", "q2", "q3", "q4"])
@pytest.mark.parametrize("seeds", [1, 3])
def test_question_figures_render(key, seeds, tmp_path):
    _, cells, fits = _tables(seeds)
    path = plots.FIGURES[key](cells, str(tmp_path / f"{key}.png"), fits=fits)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.png"]  # no temporary file left


def test_panel_draws_fits_bands_and_hollow_kept_start_points():
    _, cells, fits = _tables(3)
    panel = cells[(cells["task"] == "SYS-1(5,10)") & (cells["preset"] == "64K")]
    fig, ax = plt.subplots()
    try:
        plots._panel(ax, panel, "t", fits)
        hollow = [line for line in ax.lines if line.get_markerfacecolor() == "none" and len(line.get_xdata())]
        assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [8]  # the fine-tune that kept its start
        fitted = [line for line in ax.lines if line.get_linewidth() == 0.7 and len(line.get_xdata()) == 64]
        assert len(fitted) == 2  # fine-tune and scratch
        scratch_fit = fitted[0] if fitted[0].get_ydata()[0] > fitted[1].get_ydata()[0] else fitted[1]
        assert scratch_fit.get_ydata()[0] == pytest.approx(1.1 / 8**0.5, rel=1e-2)  # the seeds' median at N = 8
        assert ax.collections, "no quartile band"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "kept its start (best epoch 0)" in labels and "fit a N^-alpha + c" in labels
    finally:
        plt.close(fig)


def test_data_savings_figure(tmp_path):
    savings = data_savings(_tables(3)[0])
    assert isinstance(savings, pd.DataFrame) and not savings.empty
    assert savings["savings"].isna().any() and savings["savings"].notna().any()  # kept-start points: no number
    path = plots.data_savings(savings, str(tmp_path / "b1.png"))
    assert open(path, "rb").read(4) == b"\x89PNG"
    assert np.isfinite(savings["savings_q25"].dropna()).all()
