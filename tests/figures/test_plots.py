"""Every figure renders from a results table, with quartile bands when seeds repeat."""

import itertools

import pandas as pd
import pytest

from sciml.figures import plots
from sciml.sweeps.results import best_by_validation, data_savings, trial_rows


def _results(seeds=1):
    trials = []
    tasks = [("SYS-1(5,10)", "med", "poisson", "SYS-1(1,5)"), ("SYS-1(10,20)", "large", "poisson", "SYS-1(1,5)")]
    for (task, shift, system, pre), preset, seed in itertools.product(tasks, ["64K", "1M"], range(seeds)):
        base = {"task": task, "shift": shift, "system": system, "preset": preset, "seed": seed}
        trials.append(({**base, "recipe": "zeroshot", "pretrain": pre, "n_train": 0, "lr": None},
                       {"val_rel_l2": 0.2, "test_rel_l2": 0.2}, "z"))
        trials.append(({**base, "recipe": "zeroshot", "pretrain": "none", "n_train": 0, "lr": None},
                       {"val_rel_l2": 1.5, "test_rel_l2": 1.5}, "r"))
        for n in (8, 32, 128):
            err = 1.0 / n ** 0.5 * (1 + 0.1 * seed)
            trials.append(({**base, "recipe": "scratch", "pretrain": "none", "n_train": n, "lr": 1e-3},
                           {"val_rel_l2": err, "test_rel_l2": err}, "s"))
            trials.append(({**base, "recipe": "finetune", "pretrain": pre, "n_train": n, "lr": 1e-3},
                           {"val_rel_l2": err / 4, "test_rel_l2": err / 4}, "f"))
    return best_by_validation(trial_rows("q", trials, {"64K": 1, "1M": 2}))


@pytest.mark.parametrize("key", ["q1", "q2", "q3", "q4"])
@pytest.mark.parametrize("seeds", [1, 3])
def test_question_figures_render(key, seeds, tmp_path):
    path = plots.FIGURES[key](_results(seeds), str(tmp_path / f"{key}.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.png"]  # no temporary file left


def test_data_savings_figure(tmp_path):
    savings = data_savings(_results())
    assert isinstance(savings, pd.DataFrame) and not savings.empty
    path = plots.data_savings(savings, str(tmp_path / "b1.png"))
    assert open(path, "rb").read(4) == b"\x89PNG"
