"""From trial results to the sweep's tables: best learning rate per cell, data savings."""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from sciml.core.tables import CELL, RESULT_COLUMNS, SAVINGS_COLUMNS
from sciml.physics import SYSTEMS


def trial_rows(question: str, trials: Iterable[tuple[Mapping, Mapping, str]],
               n_params: Mapping[str, int]) -> pd.DataFrame:
    """One row per finished trial from (trial spec, final metrics, trial id)."""
    rows = []
    for spec, metrics, trial_id in trials:
        if not metrics or "test_rel_l2" not in metrics:
            continue
        rows.append({
            "question": question, "task": spec["task"], "shift": spec["shift"], "preset": spec["preset"],
            "n_params": n_params[spec["preset"]], "recipe": spec["recipe"], "n_train": int(spec["n_train"]),
            "lr": float(spec["lr"]) if spec["lr"] is not None else math.nan,
            "val_rel_l2": float(metrics["val_rel_l2"]), "test_rel_l2": float(metrics["test_rel_l2"]),
            "trial_id": trial_id, "pretrain": spec["pretrain"], "system": spec["system"],
            "seed": int(spec["seed"]), "mlflow_run_id": metrics.get("mlflow_run_id", ""),
        })
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def best_by_validation(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the learning rate with the lowest mean validation error over seeds; its rows."""
    if rows.empty:
        return rows
    keyed = rows.assign(_lr=rows["lr"].fillna(-1.0))
    mean_val = keyed.groupby(CELL + ["_lr"], dropna=False)["val_rel_l2"].mean().reset_index()
    best = mean_val.loc[mean_val.groupby(CELL, dropna=False)["val_rel_l2"].idxmin(), CELL + ["_lr"]]
    chosen = keyed.merge(best, on=CELL + ["_lr"], how="inner").drop(columns="_lr")
    recipes = {"zeroshot": 0, "scratch": 1, "finetune": 2}
    shifts = {"none": 0, "mild": 1, "med": 2, "large": 3}
    systems = {name: i for i, name in enumerate(SYSTEMS)}  # SYS-1, SYS-2, SYS-3
    chosen = chosen.assign(_r=chosen["recipe"].map(recipes), _s=chosen["shift"].map(shifts).fillna(len(shifts)),
                           _y=chosen["system"].map(systems).fillna(len(systems)))
    chosen = chosen.sort_values(["_y", "_s", "task", "n_params", "preset", "_r", "pretrain", "n_train", "seed"])
    chosen = chosen.drop(columns=["_r", "_s", "_y"])
    return chosen[RESULT_COLUMNS].reset_index(drop=True)


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


def data_savings(best: pd.DataFrame) -> pd.DataFrame:
    """For each fine-tuned point, the scratch examples reaching the same test error, and N_eq / N."""
    rows = []
    med = best.groupby(CELL + ["question"], dropna=False)["test_rel_l2"].median().reset_index()
    for (task, preset), group in med.groupby(["task", "preset"]):
        scratch = group[group["recipe"] == "scratch"]
        if len(scratch) < 2:
            continue
        for _, point in group[group["recipe"] == "finetune"].iterrows():
            n_eq, bound = scratch_equivalent(scratch["n_train"].to_numpy(), scratch["test_rel_l2"].to_numpy(),
                                             point["test_rel_l2"])
            rows.append({"question": point["question"], "task": task, "shift": point["shift"], "preset": preset,
                         "pretrain": point["pretrain"], "n_train": int(point["n_train"]),
                         "finetune_test_rel_l2": point["test_rel_l2"], "scratch_equivalent_n": n_eq,
                         "savings": n_eq / point["n_train"], "bound": bound})
    return pd.DataFrame(rows, columns=SAVINGS_COLUMNS)


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
