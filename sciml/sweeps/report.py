"""A sweep's outputs: result tables (Parquet + CSV), figures (PNG) and report.md.

report.md opens with the paper's claims and their computed verdicts, then the compute
budget (when the runner gives one), the trust checks (kept starts, grid edges, scratch
baselines), the figures and the tables. The printed summary shares the same head
(`summary_sections`).
"""

from __future__ import annotations

import math
import os

import pandas as pd

from sciml.core.files import atomic_path, write_text
from sciml.core.tables import LR_AT_EDGE, RANDOM_INIT
from sciml.figures import plots
from sciml.sweeps.claims import evaluate_claims, scratch_warnings
from sciml.sweeps.fits import NOT_FITTED, model_size_fits, scaling_fits
from sciml.sweeps.questions import Question
from sciml.sweeps.results import cell_summary, markdown_table, savings_by_seed, spread_text
from sciml.sweeps.settings import SweepSettings


def _atomic_frame(frame: pd.DataFrame, path: str) -> str:
    """Parquet or CSV by ``path``'s extension (the temporary name has none), written atomically."""
    with atomic_path(path) as tmp:
        if path.endswith(".parquet"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def _cell_text(cell) -> str:
    return "" if cell is None else spread_text(cell["test_rel_l2"], cell["test_q25"], cell["test_q75"], cell["n_seeds"])


def _savings_text(point) -> str:
    if point is None:
        return ""
    if math.isnan(point["savings"]):
        return "none (kept its start)"
    bound = {"above": ">=", "below": "<=", "mixed": "~"}.get(point["bound"], "")
    return bound + spread_text(point["savings"], point["savings_q25"], point["savings_q75"], point["n_seeds"], "x")


def _summary(cells: pd.DataFrame, savings: pd.DataFrame) -> pd.DataFrame:
    """Per task, preset, pre-training and N: fine-tune next to scratch and zero-shot (median [quartiles])."""
    index = {(r["task"], r["preset"], r["recipe"], r["pretrain"], int(r["n_train"])): r for _, r in cells.iterrows()}
    saved = {(r["task"], r["preset"], r["pretrain"], int(r["n_train"])): r for _, r in savings.iterrows()}
    rows = []
    for _, point in cells[cells["recipe"] == "finetune"].iterrows():
        task, preset, pretrain, n = point["task"], point["preset"], point["pretrain"], int(point["n_train"])
        kept = point["kept_start_seeds"]
        save = saved.get((task, preset, pretrain, n))
        rows.append({"task": task, "preset": preset, "pretrain": pretrain, "N": n,
                     "fine-tune": _cell_text(point),
                     "kept start": "" if not kept else ("yes" if kept == point["n_seeds"] else
                                                        f"{kept}/{point['n_seeds']} seeds"),
                     "scratch": _cell_text(index.get((task, preset, "scratch", RANDOM_INIT, n))),
                     "zero-shot": _cell_text(index.get((task, preset, "zeroshot", pretrain, 0))),
                     "data savings": _savings_text(save), "note": "" if save is None else save["note"]})
    return pd.DataFrame(rows)


def _fits_table(fits: pd.DataFrame, exponent: str, keys: list[str]) -> pd.DataFrame:
    def shown(row) -> str:
        if row["method"] == NOT_FITTED:
            return f"not fitted ({row['note']})"
        value = f"{row[exponent]:.3g}"
        if not math.isnan(row[f"{exponent}_low"]):
            value += f" [{row[f'{exponent}_low']:.3g}, {row[f'{exponent}_high']:.3g}]"
        return value + (f" ({row['note']})" if row["note"] else "")

    table = fits[keys].copy()
    table[exponent] = [shown(row) for _, row in fits.iterrows()]
    table["a"], table["c"] = fits["a"], fits["c"]
    table["points"], table["method"] = fits["n_points"], fits["method"]
    return table


def _counts(best: pd.DataFrame, cells: pd.DataFrame) -> list[str]:
    """Kept starts (issue 9 item 5) and grid edges (issue 10), counted and named."""
    finetuned = cells[cells["recipe"] == "finetune"]
    kept = finetuned[finetuned["kept_start"]]
    lines = [f"- Fine-tunes that kept their pre-trained start (best epoch 0; drawn hollow, no data savings): "
             f"{len(kept)} of {len(finetuned)} fine-tuned cells"
             + (f" ({int(kept['kept_start_seeds'].sum())} of {int(finetuned['n_seeds'].sum())} runs)" if len(kept)
                else "") + "."]
    for (task, preset, pretrain), group in kept.groupby(["task", "preset", "pretrain"], sort=False):
        lines.append(f"  - {task} {preset} from {pretrain}: N = {', '.join(str(n) for n in group['n_train'])}")
    trained = cells[cells["recipe"] != "zeroshot"]
    if LR_AT_EDGE in best.columns:
        edge = trained[trained[LR_AT_EDGE]]
        lines.append(f"- Cells whose best learning rate is the smallest or largest tried (`{LR_AT_EDGE}`): "
                     f"{len(edge)} of {len(trained)}.")
        for (task, preset, recipe, pretrain), group in edge.groupby(["task", "preset", "recipe", "pretrain"],
                                                                   sort=False):
            lines.append(f"  - {task} {preset} {recipe}" + (f" from {pretrain}" if recipe == "finetune" else "")
                         + f": N = {', '.join(str(n) for n in group['n_train'])}")
    else:
        lines.append(f"- Grid edges (`{LR_AT_EDGE}`): not checked by this sweep.")
    return lines


def summary_sections(best: pd.DataFrame, savings: pd.DataFrame, budget=None) -> list[str]:
    """The head of report.md and of the printed summary: claims, compute budget, trust checks."""
    cells = cell_summary(best)
    claims = evaluate_claims(best, savings)
    lines = ["## Claims", ""]
    if claims.empty:
        lines += ["No results: no claim can be checked.", ""]
    else:
        lines += ["Verdicts computed from the results (rules in `sciml/sweeps/claims.py`): *supported* when every "
                  "check holds beyond the seed quartiles, *contradicted* when one fails beyond them, "
                  "*inconclusive* otherwise (the reason is given).", "",
                  markdown_table(claims[["claim", "scope", "verdict", "evidence", "rule", "why"]]), ""]
    # The compute budget (the sweep's steps and trial-seconds against the full grid's) is the
    # runner's to measure; it hands a Budget whose summary_lines() go here.
    if budget is not None:
        lines += ["## Compute budget", "", *budget.summary_lines(), ""]
    lines += ["## Checks", "", *_counts(best, cells)]
    lines += [f"- {warning}" for warning in scratch_warnings(best)] or ["- Scratch baselines: monotone in N within "
                                                                       "the seed spread, none best at its last epoch "
                                                                       "at the largest N."]
    return lines + [""]


def _settings_line(settings: SweepSettings) -> str:
    return (f"Resolution {settings.resolution}^2, {settings.n_pretrain} pre-training examples per dataset, "
            f"downstream N in {list(settings.n_values)}"
            + (f" (scratch also {list(settings.scratch_extra_n)})" if settings.scratch_extra_n else "")
            + f", presets {list(settings.presets)}, learning rates {list(settings.lrs)}"
            + (f" (scratch {list(settings.scratch_lrs)})" if settings.scratch_lrs else "")
            + f", {settings.epochs} epochs, {settings.loss} loss"
            + (f" (at least {settings.min_steps} steps)" if settings.min_steps else "")
            + f", {settings.seeds} seed(s). Each cell reports the test error of its best learning rate by validation"
            + (": median [first, third quartile] over seeds." if settings.seeds > 1 else ".")
            + f" {search_line(settings)}")


RANKED_BY = {"averaged": "the better of the best validation error and that of the averaged weights",
             "best": "the best validation error"}


def search_line(s: SweepSettings) -> str:
    """How the learning rates were chosen and trials stopped (sciml/sweeps/search.py)."""
    search = (f"Optuna (TPE), {s.trials_per_cell} learning rates per cell" if s.search == "optuna"
              else "the full grid")
    stop = {"fifo": "every trial ran to the end", "asha": f"ASHA stopped trials early (grace {s.grace_period}, "
            f"factor {s.reduction_factor:g})", "halving": f"ASHA with demotion stopped trials early (grace "
            f"{s.grace_period}, factor {s.reduction_factor:g})", "race": f"each cell's learning rates raced in one "
            f"trial, the best 1/{s.reduction_factor:g} going on at each rung (grace {s.grace_period}, ranked by "
            f"{RANKED_BY[s.race_rank]})"}[s.scheduler]
    if s.seeds > 1 and s.search_seeds == "first":
        return (f"Search: {search} on seed {s.seed} only, where {stop}; the other seeds trained once, at the "
                f"learning rate seed {s.seed} chose.")
    return f"Search: {search}; {stop}."


def _tables(best: pd.DataFrame, savings: pd.DataFrame, all_trials: pd.DataFrame):
    """Every table the sweep writes: (file name, frame) pairs, and the fits the figures draw."""
    cells = cell_summary(best)
    fits = scaling_fits(best)
    tables = [("results.parquet", best), ("results.csv", best), ("cells.csv", cells), ("all_trials.csv", all_trials),
              ("savings.csv", savings), ("savings_by_seed.csv", savings_by_seed(best)),
              ("scaling_fits.csv", fits), ("claims.csv", evaluate_claims(best, savings))]
    model_fits = model_size_fits(best) if best["preset"].nunique() > 1 else None
    if model_fits is not None:
        tables.append(("model_scaling_fits.csv", model_fits))
    return tables, cells, fits, model_fits


def _edge_section(edges: pd.DataFrame) -> list[str]:
    """The cells the grid-edge rounds extended: their answer on the grid alone and with the extension."""
    moved = edges["change"].dropna()
    better = int((moved < -1e-12).sum())
    return ["## Grid edges: the grid alone vs extended", "",
            f"{len(moved)} cells were extended beyond the grid; the extension changed the answer of {better} "
            f"(median change of their test error {100 * float(moved.median()) if len(moved) else 0:+.1f}%). "
            "Savings are the fine-tunes' data savings computed on each scratch curve (`edge_effect.csv`).", "",
            markdown_table(edges.rename(columns={"n_train": "N"})), ""]


def write_outputs(question: Question, settings: SweepSettings, best: pd.DataFrame, savings: pd.DataFrame,
                  all_trials: pd.DataFrame, out: str, budget=None, edges: pd.DataFrame | None = None) -> dict[str, str]:
    os.makedirs(out, exist_ok=True)
    tables, cells, fits, model_fits = _tables(best, savings, all_trials)
    if edges is not None and not edges.empty:
        tables.append(("edge_effect.csv", edges))
    files = {name: _atomic_frame(frame, os.path.join(out, name)) for name, frame in tables}
    if not best.empty:
        files[question.figure] = plots.FIGURES[question.key](cells, os.path.join(out, question.figure), fits=fits)
    if not savings.empty:
        files["figB1_data_savings.png"] = plots.data_savings(savings, os.path.join(out, "figB1_data_savings.png"))
    lines = [f"# {question.title} ({settings.profile} profile)", "", *summary_sections(best, savings, budget),
             "## Settings", "", _settings_line(settings), ""]
    for label, path in files.items():
        if label.endswith(".png"):
            lines += [f"![{label}]({os.path.basename(path)})", ""]
    summary = _summary(cells, savings) if not best.empty else pd.DataFrame()
    if not summary.empty:
        lines += ["## Fine-tune vs scratch (median test relative L2)", "", markdown_table(summary), ""]
    random_init = cells[(cells["recipe"] == "zeroshot") & (cells["pretrain"] == RANDOM_INIT)]
    for _, row in random_init.iterrows():
        lines.append(f"A randomly initialised {row['preset']} model scores {row['test_rel_l2']:.3g} on {row['task']}.")
    if not random_init.empty:
        lines.append("")
    if not fits.empty:
        lines += ["## Scaling fits: err(N) = a N^-alpha + c", "",
                  "Least squares in log space over the cell medians, c >= 0; [2.5%, 97.5%] bootstrap interval of "
                  "alpha over seeds where there are several.", "",
                  markdown_table(_fits_table(fits, "alpha", ["task", "recipe", "preset", "pretrain"])), ""]
    if edges is not None and not edges.empty:
        lines += _edge_section(edges)
    if model_fits is not None and not model_fits.empty:
        lines += ["## Model-size fits at fixed N: err(P) = a P^-beta + c", "",
                  "With 4 or more sizes the offset power law; with 3 a plain log-log slope (c = 0).", "",
                  markdown_table(_fits_table(model_fits, "beta", ["task", "recipe", "pretrain", "n_train"])), ""]
    lines += ["Full tables: `claims.csv` (the verdicts), `results.csv` / `results.parquet` (best learning rate per "
              "cell and seed), `cells.csv` (per cell over seeds), `all_trials.csv` (every trial), `savings.csv` / "
              "`savings_by_seed.csv` (data savings), `scaling_fits.csv`"
              + (", `model_scaling_fits.csv`" if model_fits is not None else "") + " (fits)"
              + (", `edge_effect.csv` (grid alone vs extended)" if edges is not None and not edges.empty else "")
              + ".", ""]
    files["report.md"] = str(write_text(os.path.join(out, "report.md"), "\n".join(lines)))
    return files
