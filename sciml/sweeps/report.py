"""A sweep's outputs: result tables (Parquet + CSV), figures (PNG) and report.md."""

from __future__ import annotations

import os

import pandas as pd

from sciml.core.files import atomic_path, write_text
from sciml.core.tables import RANDOM_INIT
from sciml.figures import plots
from sciml.sweeps.questions import Question
from sciml.sweeps.results import markdown_table
from sciml.sweeps.settings import SweepSettings


def _atomic_frame(frame: pd.DataFrame, path: str) -> str:
    """Parquet or CSV by ``path``'s extension (the temporary name has none), written atomically."""
    with atomic_path(path) as tmp:
        if path.endswith(".parquet"):
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def _summary(best: pd.DataFrame, savings: pd.DataFrame) -> pd.DataFrame:
    """Median test error per task, preset and N: fine-tune (per pre-training) next to scratch."""
    med = best.groupby(["task", "preset", "pretrain", "recipe", "n_train"], sort=False)["test_rel_l2"].median()
    med = med.reset_index()
    rows = []
    for (task, preset), frame in med.groupby(["task", "preset"], sort=False):
        scratch = frame[frame["recipe"] == "scratch"].set_index("n_train")["test_rel_l2"]
        zero = frame[frame["recipe"] == "zeroshot"]
        for pretrain, ft in frame[frame["recipe"] == "finetune"].groupby("pretrain"):
            zs = zero[zero["pretrain"] == pretrain]["test_rel_l2"]
            for _, point in ft.iterrows():
                n = int(point["n_train"])
                save = savings[(savings["task"] == task) & (savings["preset"] == preset)
                               & (savings["pretrain"] == pretrain) & (savings["n_train"] == n)]
                ratio = ""
                if not save.empty:
                    value, bound = save["savings"].iloc[0], save["bound"].iloc[0]
                    ratio = {"above": f">={value:.3g}x", "below": f"<={value:.3g}x"}.get(bound, f"{value:.3g}x")
                rows.append({"task": task, "preset": preset, "pretrain": pretrain, "N": n,
                             "fine-tune": point["test_rel_l2"], "scratch": scratch.get(n, float("nan")),
                             "zero-shot": zs.iloc[0] if len(zs) else float("nan"), "data savings": ratio})
    return pd.DataFrame(rows)


def write_outputs(question: Question, settings: SweepSettings, best: pd.DataFrame, savings: pd.DataFrame,
                  all_trials: pd.DataFrame, out: str) -> dict[str, str]:
    os.makedirs(out, exist_ok=True)
    files = {
        "results.parquet": _atomic_frame(best, os.path.join(out, "results.parquet")),
        "results.csv": _atomic_frame(best, os.path.join(out, "results.csv")),
        "all_trials.csv": _atomic_frame(all_trials, os.path.join(out, "all_trials.csv")),
        "savings.csv": _atomic_frame(savings, os.path.join(out, "savings.csv")),
    }
    if not best.empty:
        files[question.figure] = plots.FIGURES[question.key](best, os.path.join(out, question.figure))
    if not savings.empty:
        files["figB1_data_savings.png"] = plots.data_savings(savings, os.path.join(out, "figB1_data_savings.png"))
    summary = _summary(best, savings) if not best.empty else pd.DataFrame()
    lines = [
        f"# {question.title} ({settings.profile} profile)",
        "",
        f"Resolution {settings.resolution}^2, {settings.n_pretrain} pre-training examples per dataset, "
        f"downstream N in {list(settings.n_values)}"
        + (f" (scratch also {list(settings.scratch_extra_n)})" if settings.scratch_extra_n else "")
        + f", presets {list(settings.presets)}, learning rates {list(settings.lrs)}, {settings.epochs} epochs"
        + (f" (at least {settings.min_steps} steps)" if settings.min_steps else "")
        + f", {settings.seeds} seed(s). Each cell reports the test error of its best learning rate by validation.",
        "",
    ]
    for label, path in files.items():
        if label.endswith(".png"):
            lines += [f"![{label}]({os.path.basename(path)})", ""]
    if not summary.empty:
        lines += ["## Fine-tune vs scratch (median test relative L2)", "", markdown_table(summary), ""]
    random_init = best if best.empty else best[(best["recipe"] == "zeroshot")
                                                & (best["pretrain"] == RANDOM_INIT)]
    for (task, preset), frame in random_init.groupby(["task", "preset"], sort=False):
        lines.append(f"A randomly initialised {preset} model scores {frame['test_rel_l2'].median():.3g} on {task}.")
    if not random_init.empty:
        lines.append("")
    lines += ["Full tables: `results.csv` / `results.parquet` (best learning rate per cell), "
              "`all_trials.csv` (every trial), `savings.csv` (data savings).", ""]
    files["report.md"] = str(write_text(os.path.join(out, "report.md"), "\n".join(lines)))
    return files
