"""Figures in the style of the paper: test error vs downstream examples, log-log.

Every plot reads the sweep's cell table (one row per cell: the test error's median and
quartiles over seeds, App. B.3): the line is the median and, with several seeds, the band
spans the first to third quartile. Hollow markers: fine-tunes that kept their pre-trained
start (best epoch 0). Thin lines: the power-law fits err(N) = a N^-alpha + c, when given.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from sciml.core.files import atomic_path  # noqa: E402
from sciml.core.tables import RANDOM_INIT  # noqa: E402  (the `pretrain` label the tables use)

_STYLE = {"finetune": "-", "scratch": "--"}


def _fit_line(ax, fits: pd.DataFrame | None, curve: pd.DataFrame, color) -> bool:
    """The curve's fitted power law as a thin line over its own N range; whether there was one."""
    if fits is None or fits.empty:
        return False
    first = curve.iloc[0]
    match = fits[(fits["task"] == first["task"]) & (fits["recipe"] == first["recipe"])
                 & (fits["preset"] == first["preset"]) & (fits["pretrain"] == first["pretrain"])]
    match = match[match["alpha"].notna()]
    if match.empty:
        return False
    fit = match.iloc[0]
    n = np.geomspace(fit["n_min"], fit["n_max"], 64)
    ax.plot(n, fit["a"] * n ** -fit["alpha"] + fit["c"], color=color, lw=0.7, alpha=0.8)
    return True


def _series(ax, curve: pd.DataFrame, label: str, color, linestyle: str, fits=None) -> dict[str, bool]:
    """One recipe's cells: median line, quartile band, filled markers (hollow where the start was kept)."""
    curve = curve.sort_values("n_train")
    n, median = curve["n_train"].to_numpy(), curve["test_rel_l2"].to_numpy()
    ax.plot(n, median, linestyle=linestyle, color=color, label=label, lw=1.2)
    if curve["n_seeds"].max() > 1:
        ax.fill_between(n, curve["test_q25"], curve["test_q75"], color=color, alpha=0.2, lw=0)
    kept = curve["kept_start"].astype(bool).to_numpy()
    ax.plot(n[~kept], median[~kept], "o", color=color, ms=4, linestyle="none")
    ax.plot(n[kept], median[kept], "o", color=color, ms=6, mfc="none", linestyle="none")
    return {"kept": bool(kept.any()), "fit": _fit_line(ax, fits, curve, color)}


def _zero_shot(ax, rows: pd.DataFrame, label: str, color, linestyle: str) -> None:
    if not rows.empty:
        ax.axhline(rows["test_rel_l2"].median(), color=color, linestyle=linestyle, lw=1.2, label=label)


def _legend(ax, marks: dict[str, bool]) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if marks.get("kept"):
        handles.append(Line2D([], [], marker="o", mfc="none", color="k", linestyle="none", ms=6))
        labels.append("kept its start (best epoch 0)")
    if marks.get("fit"):
        handles.append(Line2D([], [], color="k", lw=0.7))
        labels.append("fit a N^-alpha + c")
    ax.legend(handles, labels, fontsize=7)


def _panel(ax, cells: pd.DataFrame, title: str, fits=None, color_by: str = "pretrain",
           random_level: bool = True) -> None:
    """Fine-tune and scratch curves plus zero-shot levels for one downstream task."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if color_by == "preset":  # smallest model first, as in the paper's Fig. 4
        groups = list(dict.fromkeys(cells.sort_values("n_params", kind="stable")["preset"]))
    else:
        groups = sorted(cells[color_by].unique(), key=str)
    marks = {"kept": False, "fit": False}
    for i, group in enumerate(groups):
        sub = cells[cells[color_by] == group]
        color = colors[i % len(colors)]
        name = f"{group}" if color_by != "pretrain" else ("scratch" if group == RANDOM_INIT else f"from {group}")
        for recipe, style in _STYLE.items():
            curve = sub[sub["recipe"] == recipe]
            if not curve.empty:
                drawn = _series(ax, curve, f"{recipe} ({name})" if color_by != "pretrain" else
                                ("scratch" if recipe == "scratch" else f"fine-tune {name}"), color, style, fits)
                marks = {k: marks[k] or drawn[k] for k in marks}
        zero = sub[(sub["recipe"] == "zeroshot") & (sub["pretrain"] != RANDOM_INIT)]
        _zero_shot(ax, zero, f"zero-shot ({name})", color, ":")
    if random_level:
        _zero_shot(ax, cells[(cells["recipe"] == "zeroshot") & (cells["pretrain"] == RANDOM_INIT)],
                   "random init", "grey", "-.")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("downstream examples N")
    ax.set_ylabel("test relative L2 error")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, marks)


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


def _by_task(cells: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    tasks = list(dict.fromkeys(cells["task"]))
    return [(task, cells[cells["task"] == task]) for task in tasks]


def data_scaling(cells: pd.DataFrame, path: str, fits: pd.DataFrame | None = None) -> str:
    """Fig. 3: per task, fine-tune vs scratch with the zero-shot level."""
    panels = []
    for task, frame in _by_task(cells):
        for preset in dict.fromkeys(frame["preset"]):
            panels.append((f"{task} ({preset})", frame[frame["preset"] == preset]))
    return _figure(panels, path, lambda ax, f, t: _panel(ax, f, t, fits), suptitle="Downstream data scaling")


def model_scaling(cells: pd.DataFrame, path: str, fits: pd.DataFrame | None = None) -> str:
    """Fig. 4: per task, one fine-tune/scratch curve pair per model preset."""
    return _figure(_by_task(cells), path,
                   lambda ax, f, t: _panel(ax, f, t, fits, color_by="preset", random_level=False),
                   suptitle="Model scaling (solid: fine-tune, dashed: scratch)")


def physics_shift(cells: pd.DataFrame, path: str, fits: pd.DataFrame | None = None) -> str:
    """Fig. 5: one panel per downstream shift (rows: systems)."""
    panels = [(f"{task} shift={frame['shift'].iloc[0]}", frame) for task, frame in _by_task(cells)]
    return _figure(panels, path, lambda ax, f, t: _panel(ax, f, t, fits), columns=4, suptitle="Physics shift")


def multi_operator(cells: pd.DataFrame, path: str, fits: pd.DataFrame | None = None) -> str:
    """Fig. 6: one panel per system: mixed vs same-system pre-training vs scratch."""
    return _figure(_by_task(cells), path, lambda ax, f, t: _panel(ax, f, t, fits),
                   suptitle="Multiple operators: mixed vs same-system pre-training")


_BOUND_MARKERS = {"above": "^", "below": "v", "mixed": "d"}  # hollow: censored (lower / upper bound / both)


def data_savings(savings: pd.DataFrame, path: str) -> str:
    """Fig. B.1: scratch examples needed to match fine-tuning with N examples (median over seeds, quartile bars).

    Fine-tunes that kept their start have no savings and no point.
    """
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    numbered = savings[savings["savings"].notna()]
    groups = list(numbered.groupby(["task", "preset", "pretrain"], sort=False))
    for i, ((task, preset, pretrain), frame) in enumerate(groups):
        color = colors[i % len(colors)]
        exact = frame[frame["bound"] == "exact"]
        ax.plot(exact["n_train"], exact["scratch_equivalent_n"], "o-", color=color, ms=4,
                label=f"{task} {preset} from {pretrain}")
        for bound, marker in _BOUND_MARKERS.items():
            censored = frame[frame["bound"] == bound]
            if not censored.empty:
                ax.plot(censored["n_train"], censored["scratch_equivalent_n"], marker, color=color, ms=7, mfc="none")
        spread = frame[frame["n_seeds"] > 1]
        if not spread.empty:
            ax.vlines(spread["n_train"], spread["n_train"] * spread["savings_q25"],
                      spread["n_train"] * spread["savings_q75"], color=color, lw=1)
    lo = max(1.0, float(savings["n_train"].min()) / 2) if not savings.empty else 1.0
    top = numbered["scratch_equivalent_n"].max() if not numbered.empty else 0.0
    hi = float(max(top, savings["n_train"].max()) * 2) if not savings.empty else 10.0
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="equal data (no savings)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("fine-tuning examples N")
    ax.set_ylabel("scratch examples for the same error")
    kept = int(savings["savings"].isna().sum())
    ax.set_title("Data savings (open triangles: bounds)" + (f"; {kept} kept-start point(s) not shown" if kept else ""),
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


FIGURES = {"q1": data_scaling, "q2": model_scaling, "q3": physics_shift, "q4": multi_operator}
