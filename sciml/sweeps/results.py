"""From trial results to the sweep's tables: best learning rate per cell, the cells over seeds, data savings."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from sciml.core.tables import (CELL, CELL_COLUMNS, LR_AT_EDGE, RESULT_COLUMNS, RESULT_INT_COLUMNS, SAVINGS_COLUMNS,
                               SAVINGS_SEED_COLUMNS, SEED_QUANTILES)
from sciml.physics import SYSTEMS

# What a trial that did not report a compute or schedule metric gets. A trial without
# `search`/`scheduler` was run by the plain grid with Tune's FIFO scheduler (the runner's default).
_METRIC_DEFAULTS = {"best_epoch": math.nan, "epochs": math.nan, "epochs_run": math.nan, "steps": math.nan,
                    "train_seconds": math.nan, "trial_seconds": math.nan, "stopped_early": False,
                    "search": "grid", "scheduler": "fifo"}
KEPT_START_NOTE = "kept its start (best epoch 0): no savings"


def trial_rows(question: str, trials: Iterable[tuple[Mapping, Mapping, str]],
               n_params: Mapping[str, int]) -> pd.DataFrame:
    """One row per finished trial from (trial spec, final metrics, trial id)."""
    rows = []
    for spec, metrics, trial_id in trials:
        if not metrics or "test_rel_l2" not in metrics:
            continue
        extra = {name: metrics.get(name, default) for name, default in _METRIC_DEFAULTS.items()}
        extra["stopped_early"] = bool(extra["stopped_early"])
        rows.append({
            "question": question, "task": spec["task"], "shift": spec["shift"], "preset": spec["preset"],
            "n_params": n_params[spec["preset"]], "recipe": spec["recipe"], "n_train": int(spec["n_train"]),
            "lr": float(spec["lr"]) if spec["lr"] is not None else math.nan,
            "val_rel_l2": float(metrics["val_rel_l2"]), "test_rel_l2": float(metrics["test_rel_l2"]),
            "trial_id": trial_id, "pretrain": spec["pretrain"], "system": spec["system"],
            "seed": int(spec["seed"]), "mlflow_run_id": metrics.get("mlflow_run_id", ""), **extra,
            # Best-by-validation counts the pre-trained weights as epoch 0 (issue 9 item 5).
            "kept_start": spec["recipe"] == "finetune" and extra["best_epoch"] == 0,
        })
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for name in RESULT_INT_COLUMNS:  # integers where every trial reported them, NaN-able floats otherwise
        values = pd.to_numeric(frame[name], errors="coerce")
        frame[name] = values.astype("int64") if len(values) and values.notna().all() else values.astype(float)
    return frame.astype({"kept_start": bool, "stopped_early": bool})


def best_by_validation(rows: pd.DataFrame, by_seed: bool = False, select_seed: int | None = None) -> pd.DataFrame:
    """Per cell, the learning rate with the lowest mean validation error over seeds; its rows.

    `by_seed`: each seed picks its own learning rate (Optuna proposes different ones per seed).
    `select_seed`: only that seed's validation errors choose (--search-seeds first: the other
    seeds trained the chosen learning rate alone).
    """
    if rows.empty:
        return rows
    cell = CELL + (["seed"] if by_seed else [])
    keyed = rows.assign(_lr=rows["lr"].fillna(-1.0))
    judged = keyed if select_seed is None else keyed[keyed["seed"] == select_seed]
    mean_val = judged.groupby(cell + ["_lr"], dropna=False)["val_rel_l2"].mean().reset_index()
    best = mean_val.loc[mean_val.groupby(cell, dropna=False)["val_rel_l2"].idxmin(), cell + ["_lr"]]
    chosen = keyed.merge(best, on=cell + ["_lr"], how="inner").drop(columns="_lr")
    recipes = {"zeroshot": 0, "scratch": 1, "finetune": 2}
    shifts = {"none": 0, "mild": 1, "med": 2, "large": 3}
    systems = {name: i for i, name in enumerate(SYSTEMS)}  # SYS-1, SYS-2, SYS-3
    chosen = chosen.assign(_r=chosen["recipe"].map(recipes), _s=chosen["shift"].map(shifts).fillna(len(shifts)),
                           _y=chosen["system"].map(systems).fillna(len(systems)))
    chosen = chosen.sort_values(["_y", "_s", "task", "n_params", "preset", "_r", "pretrain", "n_train", "seed"])
    chosen = chosen.drop(columns=["_r", "_s", "_y"])
    return chosen[RESULT_COLUMNS].reset_index(drop=True)


def seed_quartiles(values) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of one cell's values over its seeds (SPEC 8, App. B.3)."""
    q25, median, q75 = np.quantile(np.asarray(values, float), SEED_QUANTILES)
    return float(q25), float(median), float(q75)


def flag(frame: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column that a table may lack (e.g. `lr_at_edge` before the edges are checked): False then."""
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column].fillna(False).astype(bool)


def cell_summary(best: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its test error over seeds as median and quartiles, kept-start and grid-edge flags."""
    if best.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    keyed = best.assign(_edge=flag(best, LR_AT_EDGE), _kept=flag(best, "kept_start"))
    rows = []
    for _, cell in keyed.groupby(["question"] + CELL, sort=False, dropna=False):
        q25, median, q75 = seed_quartiles(cell["test_rel_l2"])
        first = cell.iloc[0]
        rows.append({**{name: first[name] for name in ["question"] + CELL + ["n_params", "lr"]},
                     "test_rel_l2": median, "test_q25": q25, "test_q75": q75,
                     "val_rel_l2": float(cell["val_rel_l2"].median()), "n_seeds": len(cell),
                     "kept_start": bool(cell["_kept"].any()), "kept_start_seeds": int(cell["_kept"].sum()),
                     LR_AT_EDGE: bool(cell["_edge"].any())})
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def scratch_equivalent(scratch_n: np.ndarray, scratch_err: np.ndarray, error: float) -> tuple[float, str]:
    """Scratch examples needed to reach `error`, by log-log interpolation (SPEC section 8).

    Uses the running minimum of the scratch curve (more data never has to be worse).
    Returns (n, bound): bound "exact", "below" (reached with the fewest examples tried)
    or "above" (better than scratch with the most examples tried: n is a lower bound).
    """
    order = np.argsort(scratch_n)
    n = np.asarray(scratch_n, float)[order]
    envelope = np.minimum.accumulate(np.asarray(scratch_err, float)[order])
    if error >= envelope[0]:
        return float(n[0]), "below"
    if error < envelope[-1]:
        return float(n[-1]), "above"
    i = int(np.argmax(envelope <= error))  # first point at or below the error; i >= 1
    x0, x1 = math.log(n[i - 1]), math.log(n[i])
    y0, y1 = math.log(envelope[i - 1]), math.log(envelope[i])
    if y1 == y0:
        return float(n[i]), "exact"
    return float(math.exp(x0 + (math.log(error) - y0) * (x1 - x0) / (y1 - y0))), "exact"


def savings_by_seed(best: pd.DataFrame) -> pd.DataFrame:
    """Per fine-tuned cell and seed: the scratch examples of the same seed reaching its test error, and N_eq / N.

    A fine-tune that kept its pre-trained start gets no number (its error is the zero-shot
    model's, not what fine-tuning on N examples bought): the note says so.
    """
    rows = []
    scratch = best[best["recipe"] == "scratch"]
    curves = {key: group for key, group in scratch.groupby(["task", "preset", "seed"], sort=False)}
    for _, point in best[best["recipe"] == "finetune"].iterrows():
        curve = curves.get((point["task"], point["preset"], point["seed"]))
        if curve is None or len(curve) < 2:
            continue
        row = {name: point[name] for name in ("question", "task", "shift", "preset", "pretrain", "seed")}
        row.update(n_train=int(point["n_train"]), finetune_test_rel_l2=point["test_rel_l2"],
                   kept_start=bool(point["kept_start"]))
        if row["kept_start"]:
            row.update(scratch_equivalent_n=math.nan, savings=math.nan, bound="", note=KEPT_START_NOTE)
        else:
            n_eq, bound = scratch_equivalent(curve["n_train"].to_numpy(), curve["test_rel_l2"].to_numpy(),
                                             point["test_rel_l2"])
            row.update(scratch_equivalent_n=n_eq, savings=n_eq / row["n_train"], bound=bound, note="")
        rows.append(row)
    return pd.DataFrame(rows, columns=SAVINGS_SEED_COLUMNS)


def _combined_bound(bounds: set[str]) -> str:
    """The bound of a median over seeds: censored seeds make it a bound in their direction."""
    if "above" in bounds and "below" in bounds:
        return "mixed"
    return "above" if "above" in bounds else "below" if "below" in bounds else "exact"


def data_savings(best: pd.DataFrame) -> pd.DataFrame:
    """Per fine-tuned cell: data savings per seed, summarised as median and quartiles (App. B.1, B.3).

    No number where any seed kept its start (the note says how many); a note where the
    scratch curve's learning rate sits at a grid edge (scratch may do better: savings inflated).
    """
    per_seed = savings_by_seed(best)
    scratch = best[best["recipe"] == "scratch"]
    edge = scratch[flag(scratch, LR_AT_EDGE)].groupby(["task", "preset"])["n_train"].apply(
        lambda n: sorted(set(n))).to_dict()
    rows = []
    keys = ["question", "task", "shift", "preset", "pretrain", "n_train"]
    for key, group in per_seed.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        kept = int(group["kept_start"].sum())
        row.update(finetune_test_rel_l2=float(group["finetune_test_rel_l2"].median()), n_seeds=len(group))
        if kept:
            row.update(scratch_equivalent_n=math.nan, savings=math.nan, savings_q25=math.nan, savings_q75=math.nan,
                       bound="", note=f"kept its start (best epoch 0) in {kept} of {len(group)} seed(s): no savings")
        else:
            q25, median, q75 = seed_quartiles(group["savings"])
            row.update(scratch_equivalent_n=float(group["scratch_equivalent_n"].median()), savings=median,
                       savings_q25=q25, savings_q75=q75, bound=_combined_bound(set(group["bound"])), note="")
            edges = edge.get((row["task"], row["preset"]))
            if edges:
                row["note"] = (f"scratch lr at a grid edge at N={', '.join(str(n) for n in edges)}: "
                               "scratch may do better, savings may be inflated")
        rows.append(row)
    return pd.DataFrame(rows, columns=SAVINGS_COLUMNS)


def spread_text(median: float, q25: float, q75: float, n_seeds: int, unit: str = "") -> str:
    """Median [first, third quartile] over seeds; the median alone where the seeds agree or there is one."""
    if math.isnan(median):
        return ""
    return f"{median:.3g}{unit}" + (f" [{q25:.3g}, {q75:.3g}]" if n_seeds > 1 and q25 != q75 else "")


def markdown_table(frame: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    """A GitHub markdown table (no extra dependency)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else float_format.format(value)
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
