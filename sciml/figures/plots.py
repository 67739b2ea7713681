"""Figures in the style of the paper: test error vs downstream examples, log-log.

Every plot reads the sweep's results table (one row per cell and seed); with several
seeds the line is the median and the band spans the first to third quartile (App. B.3).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sciml.core.files import atomic_path  # noqa: E402
from sciml.core.tables import RANDOM_INIT  # noqa: E402  (the `pretrain` label the tables use)

_STYLE = {"finetune": "-", "scratch": "--"}


def _series(ax, rows: pd.DataFrame, label: str, color, linestyle: str, marker: str = "o") -> None:
    stats = rows.groupby("n_train")["test_rel_l2"].quantile([0.25, 0.5, 0.75]).unstack().sort_index()
    ax.plot(stats.index, stats[0.5], linestyle=linestyle, marker=marker, color=color, label=label, ms=4)
    if rows.groupby("n_train").size().max() > 1:
        ax.fill_between(stats.index, stats[0.25], stats[0.75], color=color, alpha=0.2, lw=0)


def _zero_shot(ax, rows: pd.DataFrame, label: str, color, linestyle: str) -> None:
    if not rows.empty:
        ax.axhline(rows["test_rel_l2"].median(), color=color, linestyle=linestyle, lw=1.2, label=label)


def _panel(ax, rows: pd.DataFrame, title: str, color_by: str = "pretrain", random_level: bool = True) -> None:
    """Fine-tune and scratch curves plus zero-shot levels for one downstream task."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if color_by == "preset":  # smallest model first, as in the paper's Fig. 4
        groups = list(dict.fromkeys(rows.sort_values("n_params", kind="stable")["preset"]))
    else:
        groups = sorted(rows[color_by].unique(), key=str)
    for i, group in enumerate(groups):
        sub = rows[rows[color_by] == group]
        color = colors[i % len(colors)]
        name = f"{group}" if color_by != "pretrain" else ("scratch" if group == RANDOM_INIT else f"from {group}")
        for recipe, style in _STYLE.items():
            curve = sub[sub["recipe"] == recipe]
            if not curve.empty:
                _series(ax, curve, f"{recipe} ({name})" if color_by != "pretrain" else
                        ("scratch" if recipe == "scratch" else f"fine-tune {name}"), color, style)
        zero = sub[(sub["recipe"] == "zeroshot") & (sub["pretrain"] != RANDOM_INIT)]
        _zero_shot(ax, zero, f"zero-shot ({name})", color, ":")
    if random_level:
        _zero_shot(ax, rows[(rows["recipe"] == "zeroshot") & (rows["pretrain"] == RANDOM_INIT)],
                   "random init", "grey", "-.")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("downstream examples N")
    ax.set_ylabel("test relative L2 error")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _figure(panels: Sequence[tuple[str, pd.DataFrame]], path: str, draw: Callable, columns: int | None = None,
            suptitle: str = "") -> str:
    columns = columns or min(len(panels), 4)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    for ax, (title, frame) in zip(axes.flat, panels):
        draw(ax, frame, title)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    """Write the PNG atomically (never a half-written figure); the temporary name needs the format said."""
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def _by_task(results: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    tasks = list(dict.fromkeys(results["task"]))
    return [(task, results[results["task"] == task]) for task in tasks]


def data_scaling(results: pd.DataFrame, path: str) -> str:
    """Fig. 3: per task, fine-tune vs scratch with the zero-shot level."""
    panels = []
    for task, frame in _by_task(results):
        for preset in dict.fromkeys(frame["preset"]):
            panels.append((f"{task} ({preset})", frame[frame["preset"] == preset]))
    return _figure(panels, path, lambda ax, f, t: _panel(ax, f, t), suptitle="Downstream data scaling")


def model_scaling(results: pd.DataFrame, path: str) -> str:
    """Fig. 4: per task, one fine-tune/scratch curve pair per model preset."""
    return _figure(_by_task(results), path, lambda ax, f, t: _panel(ax, f, t, color_by="preset", random_level=False),
                   suptitle="Model scaling (solid: fine-tune, dashed: scratch)")


def physics_shift(results: pd.DataFrame, path: str) -> str:
    """Fig. 5: one panel per downstream shift (rows: systems)."""
    panels = [(f"{task} shift={frame['shift'].iloc[0]}", frame) for task, frame in _by_task(results)]
    return _figure(panels, path, lambda ax, f, t: _panel(ax, f, t), columns=4, suptitle="Physics shift")


def multi_operator(results: pd.DataFrame, path: str) -> str:
    """Fig. 6: one panel per system: mixed vs same-system pre-training vs scratch."""
    return _figure(_by_task(results), path, lambda ax, f, t: _panel(ax, f, t),
                   suptitle="Multiple operators: mixed vs same-system pre-training")


def data_savings(savings: pd.DataFrame, path: str) -> str:
    """Fig. B.1: scratch examples needed to match fine-tuning with N examples."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = list(savings.groupby(["task", "preset", "pretrain"], sort=False))
    for i, ((task, preset, pretrain), frame) in enumerate(groups):
        color = colors[i % len(colors)]
        exact = frame[frame["bound"] == "exact"]
        above = frame[frame["bound"] == "above"]
        ax.plot(exact["n_train"], exact["scratch_equivalent_n"], "o-", color=color, ms=4,
                label=f"{task} {preset} from {pretrain}")
        if not above.empty:
            ax.plot(above["n_train"], above["scratch_equivalent_n"], "^", color=color, ms=7, mfc="none")
    lo = max(1.0, float(savings["n_train"].min()) / 2) if not savings.empty else 1.0
    hi = float(max(savings["scratch_equivalent_n"].max(), savings["n_train"].max()) * 2) if not savings.empty else 10.0
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="equal data (no savings)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("fine-tuning examples N")
    ax.set_ylabel("scratch examples for the same error")
    ax.set_title("Data savings (open triangles: lower bounds)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


FIGURES = {"q1": data_scaling, "q2": model_scaling, "q3": physics_shift, "q4": multi_operator}
