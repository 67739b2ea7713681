"""The paper's claims, checked against a sweep's results: one verdict per claim and task, never by hand.

Each claim is a list of checks "this error is below that one (times a factor)". A check
holds when the two cells' seed quartiles do not overlap in the claimed order, fails when
they do not overlap the other way, and is within the spread otherwise (with one seed the
quartiles are the value itself: no spread is known). A verdict is
- contradicted: some check fails, and the cell that should be lower is not at a grid edge
  (where a better learning rate could still lower it);
- supported: every check holds, and no cell that should be higher is at a grid edge
  (where it could still improve);
- inconclusive otherwise, and `why` names the checks (missing cells, within the spread,
  at a grid edge, kept its start).
Where a claim is about what fine-tuning learns from its data (data savings, model size),
a check resting on a fine-tune that kept its pre-trained start counts for neither side.
Also here: the checks on the scratch baselines that the claims rest on (issue 12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sciml.core.tables import CLAIM_COLUMNS, LR_AT_EDGE, RANDOM_INIT
from sciml.sweeps.questions import MIXED
from sciml.sweeps.results import cell_summary, flag, spread_text

SHIFT_ORDER = ("none", "mild", "med", "large")
CLOSE = 2.0  # "close": the mixed-pre-training error within this factor of the same-system one at every N
FAR = 2.0  # "far below": at the smallest N, the mixed-pre-training error at least this factor below scratch
HOLDS, FAILS, SPREAD, MISSING = "holds", "fails", "within the seed spread", "missing"


@dataclass(frozen=True)
class Check:
    label: str  # where: "N=8", "mild", "1M vs 64K"
    text: str  # the numbers it rests on
    status: str  # HOLDS, FAILS, SPREAD or MISSING
    blocked: str = ""  # why it cannot count for its status (a grid edge, a kept start)


def _fmt(cell) -> str:
    return spread_text(cell["test_rel_l2"], cell["test_q25"], cell["test_q75"], cell["n_seeds"])


def below(label: str, low, high, factor: float = 1.0, kept_start_matters: bool = False,
          names: tuple[str, str] = ("", "")) -> Check:
    """The check "low * factor < high" between two cell rows (None: missing)."""
    if low is None or high is None:
        gone = [name or "a" for name, cell in zip(names, (low, high)) if cell is None]
        return Check(label, f"{' and '.join(gone)} cell missing", MISSING)
    text = f"{names[0]} {_fmt(low)} vs {names[1]} {_fmt(high)}".strip()
    if factor != 1:
        text += f" (ratio {low['test_rel_l2'] / high['test_rel_l2']:.3g}, needs < {1 / factor:.3g})"
    if low["test_q75"] * factor < high["test_q25"]:
        status, edge = HOLDS, 1  # the higher cell could still improve with a better learning rate
    elif low["test_q25"] * factor > high["test_q75"]:
        status, edge = FAILS, 0  # the lower one could
    else:
        return Check(label, text, SPREAD)
    blocked = []
    if (low, high)[edge][LR_AT_EDGE]:
        blocked.append(f"{names[edge] or 'a cell'} lr at a grid edge")
    if kept_start_matters and (low["kept_start"] or high["kept_start"]):
        blocked.append("kept its start")
    return Check(label, text, status, "; ".join(blocked))


def verdict(checks: list[Check]) -> tuple[str, str]:
    """(verdict, why) from a claim's checks (the rules of the module docstring)."""
    if not checks:
        return "inconclusive", "no cells to compare"
    failing = [c for c in checks if c.status == FAILS and not c.blocked]
    if failing:
        return "contradicted", "fails at " + ", ".join(c.label for c in failing)
    if all(c.status == HOLDS and not c.blocked for c in checks):
        return "supported", ""
    reasons = {}
    for c in checks:
        reason = (c.blocked or c.status) if (c.status != HOLDS or c.blocked) else ""
        if reason:
            reasons.setdefault(reason, []).append(c.label)
    return "inconclusive", "; ".join(f"{reason}: {', '.join(labels)}" for reason, labels in reasons.items())


def _row(question: str, claim: str, scope: str, rule: str, checks: list[Check]) -> dict:
    result, why = verdict(checks)
    evidence = "; ".join(f"{c.label}: {c.text}" for c in checks)
    return {"question": question, "claim": claim, "scope": scope, "rule": rule, "evidence": evidence,
            "verdict": result, "why": why}


class _Cells:
    """Cell rows by (task, recipe, pretrain, preset, N), with the question's fine-tuned N values."""

    def __init__(self, cells: pd.DataFrame):
        self.cells = cells.assign(**{LR_AT_EDGE: flag(cells, LR_AT_EDGE)})
        self.index = {(r["task"], r["recipe"], r["pretrain"], r["preset"], int(r["n_train"])): r
                      for _, r in self.cells.iterrows()}
        finetuned = self.cells[self.cells["recipe"] == "finetune"]
        self.n_values = sorted({int(n) for n in finetuned["n_train"]})

    def get(self, task, recipe, pretrain, preset, n=0):
        return self.index.get((task, recipe, pretrain, preset, int(n)))

    def pretrainings(self, task) -> list[str]:
        rows = self.cells[(self.cells["task"] == task) & (self.cells["recipe"] == "finetune")]
        return list(dict.fromkeys(rows["pretrain"]))

    def presets(self, task=None) -> list[str]:
        rows = self.cells if task is None else self.cells[self.cells["task"] == task]
        return list(dict.fromkeys(rows.sort_values("n_params", kind="stable")["preset"]))

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.cells["task"]))


def _beats_scratch(cells: _Cells, task: str, preset: str, pretrain: str, prefix: str = "") -> list[Check]:
    return [below(f"{prefix}N={n}", cells.get(task, "finetune", pretrain, preset, n),
                  cells.get(task, "scratch", RANDOM_INIT, preset, n), names=("fine-tune", "scratch"))
            for n in cells.n_values]


def _savings_checks(savings: pd.DataFrame, cells: _Cells, task: str, preset: str, pretrain: str) -> list[Check]:
    """Data savings > 1 at every fine-tuned N (a point without a number cannot count)."""
    rows = savings[(savings["task"] == task) & (savings["preset"] == preset) & (savings["pretrain"] == pretrain)]
    by_n = {int(r["n_train"]): r for _, r in rows.iterrows()}
    scratch_edge = any(row[LR_AT_EDGE] for key, row in cells.index.items()
                       if key[0] == task and key[1] == "scratch" and key[3] == preset)
    checks = []
    for n in cells.n_values:
        point = by_n.get(n)
        if point is None:
            checks.append(Check(f"N={n}", "no savings computed (scratch curve or fine-tune missing)", MISSING))
            continue
        if math.isnan(point["savings"]):
            checks.append(Check(f"N={n}", point["note"], SPREAD, "kept its start"))
            continue
        bound = {"above": ">=", "below": "<="}.get(point["bound"], "")
        text = bound + spread_text(point["savings"], point["savings_q25"], point["savings_q75"], point["n_seeds"], "x")
        if point["savings_q25"] > 1 and point["bound"] in ("exact", "above"):
            status = HOLDS
        elif point["savings_q75"] < 1 and point["bound"] in ("exact", "below"):
            status = FAILS
        else:
            status = SPREAD
        fine = cells.get(task, "finetune", pretrain, preset, n)
        blocked = ("scratch lr at a grid edge" if status == HOLDS and scratch_edge else
                   "fine-tune lr at a grid edge" if status == FAILS and fine is not None and fine[LR_AT_EDGE]
                   else "")
        checks.append(Check(f"N={n}", text, status, blocked))
    return checks


def _q1(cells: _Cells, savings: pd.DataFrame) -> list[dict]:
    rows = []
    for task in cells.tasks():
        presets, pretrains = cells.presets(task), cells.pretrainings(task)
        for preset in presets:
            for pretrain in pretrains:
                scope = task + (f" ({preset})" if len(presets) > 1 else "") + (
                    f" from {pretrain}" if len(pretrains) > 1 else "")
                rows.append(_row("q1", "fine-tuning beats scratch at every N", scope,
                                 "fine-tune below scratch beyond the seed quartiles at every fine-tuned N",
                                 _beats_scratch(cells, task, preset, pretrain)))
                rows.append(_row("q1", "fine-tuning saves data", scope,
                                 "scratch examples for the fine-tuned error / N > 1 (quartiles) at every fine-tuned "
                                 "N; no number for a fine-tune that kept its start",
                                 _savings_checks(savings, cells, task, preset, pretrain)))
    return rows


def _q2(cells: _Cells) -> list[dict]:
    rows = []
    for task in cells.tasks():
        presets = cells.presets(task)
        pretrains = cells.pretrainings(task)
        n = max(cells.n_values) if cells.n_values else 0
        for pretrain in pretrains:
            checks = [below(f"{large} vs {small}", cells.get(task, "finetune", pretrain, large, n),
                            cells.get(task, "finetune", pretrain, small, n), kept_start_matters=True,
                            names=(large, small))
                      for small, large in zip(presets, presets[1:])]
            if len(presets) < 2:
                checks = [Check("presets", f"one model size ({presets[0] if presets else 'none'})", MISSING)]
            rows.append(_row("q2", f"at the largest N ({n}) the fine-tuned error falls with model size",
                             task + (f" from {pretrain}" if len(pretrains) > 1 else ""),
                             "each larger preset's fine-tuned error below the next smaller one's beyond the seed "
                             "quartiles; a fine-tune that kept its start cannot count", checks))
    return rows


def _system_tasks(cells: _Cells) -> dict[str, list[str]]:
    """Tasks grouped by their system label (SYS-1, SYS-2, ...), in table order."""
    groups: dict[str, list[str]] = {}
    for task in cells.tasks():
        groups.setdefault(task.split("(")[0], []).append(task)
    return groups


def _q3(cells: _Cells) -> list[dict]:
    rows = []
    shifts = [s for s in SHIFT_ORDER if s in set(cells.cells["shift"])]
    for system, tasks in _system_tasks(cells).items():
        task_of = {cells.cells.loc[cells.cells["task"] == t, "shift"].iloc[0]: t for t in tasks}
        presets = cells.presets()
        for preset in presets:
            scope = system + (f" ({preset})" if len(presets) > 1 else "")
            zero = {}
            for shift in shifts:
                task = task_of.get(shift)
                pretrains = cells.pretrainings(task) if task else []
                zero[shift] = cells.get(task, "zeroshot", pretrains[0], preset) if pretrains else None
            rows.append(_row("q3", "zero-shot error grows with the shift", scope,
                             "zero-shot error of each shift below the next larger shift's beyond the seed quartiles",
                             [below(f"{a} < {b}", zero[a], zero[b], names=(a, b)) for a, b in zip(shifts, shifts[1:])]))
            checks = []
            for shift in shifts:
                task = task_of.get(shift)
                for pretrain in (cells.pretrainings(task) if task else []) or [None]:
                    checks += _beats_scratch(cells, task, preset, pretrain, prefix=f"{shift} ")
            rows.append(_row("q3", "fine-tuning beats scratch at every shift", scope,
                             "fine-tune below scratch beyond the seed quartiles at every shift and fine-tuned N",
                             checks))
    return rows


def _q4(cells: _Cells) -> list[dict]:
    rows = []
    for task in cells.tasks():
        same = [p for p in cells.pretrainings(task) if p != MIXED]
        for preset in cells.presets(task):
            close, far = [], []
            for i, n in enumerate(cells.n_values):
                mixed = cells.get(task, "finetune", MIXED, preset, n)
                own = cells.get(task, "finetune", same[0], preset, n) if same else None
                close.append(below(f"N={n}", mixed, own, factor=1 / CLOSE, names=("mixed", "same-system")))
                far.append(below(f"N={n}", mixed, cells.get(task, "scratch", RANDOM_INIT, preset, n),
                                 factor=FAR if i == 0 else 1.0, names=("mixed", "scratch")))
            scope = task + (f" ({preset})" if len(cells.presets(task)) > 1 else "")
            rows.append(_row("q4", "mixed pre-training stays close to same-system pre-training", scope,
                             f"mixed fine-tuned error below {CLOSE:g}x the same-system one beyond the seed "
                             "quartiles at every N", close))
            rows.append(_row("q4", "mixed pre-training stays far below scratch", scope,
                             f"mixed fine-tuned error below scratch at every N, by {FAR:g}x at the smallest N, "
                             "beyond the seed quartiles", far))
    return rows


def evaluate_claims(best: pd.DataFrame, savings: pd.DataFrame) -> pd.DataFrame:
    """The claims table of the question in `best` (per-seed best rows), computed from its cells and savings."""
    if best.empty:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    question = best["question"].iloc[0]
    cells = _Cells(cell_summary(best))
    rows = {"q1": lambda: _q1(cells, savings), "q2": lambda: _q2(cells), "q3": lambda: _q3(cells),
            "q4": lambda: _q4(cells)}.get(question, lambda: [])()
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def scratch_warnings(best: pd.DataFrame) -> list[str]:
    """Scratch baselines that are not trained enough (issue 12): not monotone in N beyond the seed
    spread, or best at the last epoch run at the largest N (still improving at its end)."""
    warnings = []
    scratch = best[best["recipe"] == "scratch"]
    for (task, preset), curve in scratch.groupby(["task", "preset"], sort=False):
        cells = cell_summary(curve).sort_values("n_train")
        worse = []
        for i in range(1, len(cells)):
            earlier = cells.iloc[:i]
            point = cells.iloc[i]
            better = earlier[earlier["test_q75"] < point["test_q25"]]
            if not better.empty:
                ref = better.iloc[-1]
                worse.append(f"N={point['n_train']} ({point['test_rel_l2']:.3g}) worse than "
                             f"N={ref['n_train']} ({ref['test_rel_l2']:.3g})")
        if worse:
            warnings.append(f"scratch on {task} ({preset}) is not monotone in N beyond the seed spread: "
                            + "; ".join(worse) + ": under-trained or its learning rate is off the grid")
        largest = curve[curve["n_train"] == curve["n_train"].max()]
        last = largest["epochs_run"].where(largest["epochs_run"].notna(), largest["epochs"])
        at_end = int(((largest["best_epoch"] == last) & (last > 0)).sum())
        if at_end:
            warnings.append(f"scratch on {task} ({preset}) at its largest N ({largest['n_train'].iloc[0]}) is best at "
                            f"the last epoch run in {at_end} of {len(largest)} seed(s): still improving at its end")
    return warnings

