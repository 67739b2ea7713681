"""What extending the grid's edges changed: each trained cell's answer on the grid alone and with
the extension rounds, side by side, and the data savings both ways (issue 10).

Computed from the trial rows, so the report states it without a second sweep: the grid-only
answer is the best learning rate by validation among the grid's own values.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import pandas as pd

from sciml.core.tables import CELL
from sciml.sweeps.results import best_by_validation, cell_summary, data_savings
from sciml.sweeps.search import grid_of

EDGE_EFFECT_COLUMNS = ["task", "preset", "recipe", "pretrain", "n_train", "lr_grid", "lr_extended",
                       "test_grid", "test_extended", "change", "savings_grid", "savings_extended"]
_SAVINGS_KEYS = ["task", "preset", "pretrain", "n_train"]


def on_grid(rows: pd.DataFrame, grid_lrs: Sequence[float] | Mapping[str, Sequence[float]]) -> pd.Series:
    """Rows a plain grid would have run: untrained recipes, and learning rates of the recipe's grid."""
    def keep(row) -> bool:
        if row["recipe"] not in ("scratch", "finetune"):
            return True
        return any(math.isclose(row["lr"], lr, rel_tol=1e-3) for lr in grid_of(grid_lrs, row["recipe"]))

    return rows.apply(keep, axis=1).astype(bool) if len(rows) else pd.Series(dtype=bool)


def edge_effect(rows: pd.DataFrame, grid_lrs: Sequence[float] | Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Per trained cell whose answer the extension rounds changed or could have: grid-only vs extended.

    Empty when no trial ran beyond the grid. `change` is test_extended / test_grid - 1 (negative:
    the extension found a better learning rate).
    """
    grid_only = on_grid(rows, grid_lrs)
    if grid_only.all():
        return pd.DataFrame(columns=EDGE_EFFECT_COLUMNS)
    before, after = best_by_validation(rows[grid_only]), best_by_validation(rows)
    extended_cells = rows[~grid_only][CELL].drop_duplicates()
    after_cells = cell_summary(after)
    cells = cell_summary(before).merge(after_cells, on=CELL, suffixes=("_grid", "_extended"))
    cells = cells.merge(extended_cells, on=CELL)
    cells = cells.rename(columns={"test_rel_l2_grid": "test_grid", "test_rel_l2_extended": "test_extended"})
    cells["change"] = cells["test_extended"] / cells["test_grid"] - 1
    savings = data_savings(before)[_SAVINGS_KEYS + ["savings"]].merge(
        data_savings(after)[_SAVINGS_KEYS + ["savings"]], on=_SAVINGS_KEYS, how="outer",
        suffixes=("_grid", "_extended"))
    # Scratch cells move every fine-tune's savings: show the savings on the fine-tune rows of
    # every N, whether or not that fine-tune cell itself was extended.
    finetunes = after_cells[after_cells["recipe"] == "finetune"][CELL].merge(savings, on=_SAVINGS_KEYS)
    table = cells.merge(finetunes, on=CELL, how="outer")
    for name in ("test_grid", "test_extended", "change"):
        table[name] = table[name].astype(float)
    order = {"scratch": 0, "finetune": 1}
    table = table.assign(_r=table["recipe"].map(order)).sort_values(["task", "preset", "_r", "pretrain", "n_train"])
    return table[EDGE_EFFECT_COLUMNS].reset_index(drop=True)
