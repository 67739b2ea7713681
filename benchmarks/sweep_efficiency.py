"""The grid against the opt-in search on a reduced laptop Q1: what the opt-in search saves and what it loses.

Runs the same downstream cells twice in one process, sharing datasets and the pre-trained
checkpoint (made once, before either is timed):

1. the paper's protocol: every grid learning rate, every seed, every trial to the end (grid, fifo);
2. an opt-in combination. Default, the middle of the grace periods (7-9) that agree in every
   cell within 0.40 of the steps (benchmarks/race_policies.py): `--search grid --scheduler race
   --grace-period 8 --search-seeds first` (rungs ranked by `--race-rank averaged`, the default):
   on the first seed, one trial per cell races the grid's learning rates in lockstep and keeps
   the best third at each rung, ranked by the better of each one's best validation error and
   that of its averaged weights; the other seeds train once at the first seed's choice (the
   grid too trains one learning rate for all seeds, chosen by the mean over seeds).
   `--race-rank best --grace-period 13` is the cheapest that agrees without the averaged
   weights. `--scheduler halving` is Tune's per-cell ASHA with demotion over separate trials;
   `--search optuna --trials-per-cell K --search-seeds each` is the per-seed Optuna search.

Prints, opt-in / grid: training steps, trial-seconds and wall seconds of each downstream
run, and the share of cells whose opt-in test error is within 10% of the grid's median or
inside the grid's seed quartiles (issue 10's targets: >= 90% of cells, <= 40% of the
steps, <= 60% of the wall time). Grid edges are not extended in either run (the comparison
is of the search, on the same grid range). "Reduced": the laptop Q1 profile (SYS-1, d16m8,
32^2, its learning-rate grids and epochs) on fewer N and without scratch's extra N.

Examples::

    python benchmarks/sweep_efficiency.py                 # reduced laptop Q1, 3 seeds (tens of minutes)
    python benchmarks/sweep_efficiency.py --race-rank best --grace-period 13
    python benchmarks/sweep_efficiency.py --search optuna --trials-per-cell 2 --grace-period 2 --search-seeds each
    python benchmarks/sweep_efficiency.py --quick         # smoke sizes, for the test suite
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from sciml.cli import OneLineParser, fail  # noqa: E402

CELL_KEYS = ["task", "shift", "system", "preset", "recipe", "pretrain", "n_train"]


def parse(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="benchmarks/sweep_efficiency.py", description=__doc__.splitlines()[0])
    p.add_argument("--n-values", type=int, nargs="+", default=[8, 32, 128, 512], help="downstream sizes N")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, help="downstream epochs (laptop: 30)")
    # Defaults: the best combination measured (docs/results.md, "Cheaper sweeps").
    p.add_argument("--search", choices=("grid", "optuna"), default="grid", help="the opt-in sweep's search")
    p.add_argument("--trials-per-cell", type=int, default=2, help="optuna: learning rates per cell")
    p.add_argument("--scheduler", choices=("asha", "halving", "race"), default="race")
    p.add_argument("--search-seeds", choices=("each", "first"), default="first",
                   help="first: only the first seed searches, the others train once at its choice")
    p.add_argument("--grace-period", type=int, default=8)
    p.add_argument("--race-rank", choices=("averaged", "best"), default="averaged", help="race: what rungs rank by")
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--out", help="working directory (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help="smoke sizes, one seed (< 3 minutes)")
    args = p.parse_args(argv)
    for name in ("seeds", "trials_per_cell", "grace_period"):
        if getattr(args, name) < 1:
            fail(f"benchmarks/sweep_efficiency.py: error: --{name.replace('_', '-')}: must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        fail("benchmarks/sweep_efficiency.py: error: --epochs: must be >= 1")
    return args


def settings_pair(args, out: str):
    from sciml.sweeps.profiles import profile_settings

    if args.quick:
        base = profile_settings("q1", "smoke").with_overrides(
            n_values=(4,), scratch_extra_n=(8,), lrs=(1e-3, 1e-2), epochs=args.epochs or 4, seeds=1,
            systems=("poisson",))
    else:
        base = profile_settings("q1", "laptop").with_overrides(
            n_values=tuple(args.n_values), scratch_extra_n=(), epochs=args.epochs, seeds=args.seeds)
    base = base.with_overrides(extend_edges=0, cache=os.path.join(out, "cache"))
    grid = base.with_overrides(out=os.path.join(out, "grid"), search="grid", scheduler="fifo")
    label = f"{args.search}-{args.scheduler}-g{args.grace_period}-{args.search_seeds}" + (
        f"-{args.race_rank}" if args.scheduler == "race" else "")
    opt = base.with_overrides(out=os.path.join(out, label), search=args.search, scheduler=args.scheduler,
                              trials_per_cell=args.trials_per_cell, grace_period=args.grace_period,
                              reduction_factor=args.reduction_factor, search_seeds=args.search_seeds,
                              race_rank=args.race_rank)
    return grid, opt


def agreement(grid_best, opt_best):
    """Per trained cell: the grid's median and quartiles over seeds, the opt-in median, and whether it agrees
    (within 10% of the grid's median or inside its seed quartiles)."""
    import pandas as pd

    from sciml.sweeps.results import cell_summary

    grid = cell_summary(grid_best).set_index(CELL_KEYS)
    opt = cell_summary(opt_best).set_index(CELL_KEYS)
    recipe = CELL_KEYS.index("recipe")
    rows = []
    for key in grid.index:
        if key not in opt.index or key[recipe] == "zeroshot":
            continue
        g, error = grid.loc[key], float(opt.loc[key]["test_rel_l2"])
        ok = abs(error - g["test_rel_l2"]) <= 0.1 * g["test_rel_l2"] or g["test_q25"] <= error <= g["test_q75"]
        rows.append({"recipe": key[recipe], "n_train": key[CELL_KEYS.index("n_train")],
                     "grid": g["test_rel_l2"], "grid_q25": g["test_q25"], "grid_q75": g["test_q75"],
                     "opt_in": error, "agrees": bool(ok)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    args = parse(argv)
    from sciml.ray_env import ensure_ray
    from sciml.sweeps.datasets import prepare_datasets
    from sciml.sweeps.questions import QUESTIONS
    from sciml.sweeps.report import search_line
    from sciml.sweeps.runner import SweepRunner

    out = args.out or tempfile.mkdtemp(prefix="sweep-efficiency-")
    grid_settings, opt_settings = settings_pair(args, out)
    question = QUESTIONS["q1"].restricted_to(grid_settings.systems)
    cluster = ensure_ray()
    # Datasets and the pre-trained checkpoint first, untimed: both runs reuse them.
    warm = SweepRunner(question, grid_settings, tracking=False)
    warm._pretrain(prepare_datasets(question, grid_settings), cluster)
    outcomes, walls = {}, {}
    for label, settings in (("grid/fifo", grid_settings), ("opt-in", opt_settings)):
        started = time.perf_counter()
        outcomes[label] = SweepRunner(question, settings, tracking=False).run()
        walls[label] = time.perf_counter() - started
    grid, opt = outcomes["grid/fifo"], outcomes["opt-in"]
    cells_table = agreement(grid.results, opt.results)
    good, cells = int(cells_table["agrees"].sum()) if len(cells_table) else 0, len(cells_table)
    print("\n" + cells_table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    cells_table.to_csv(os.path.join(out, "cells.csv"), index=False)
    print(f"\nReduced laptop Q1: N {list(grid_settings.n_values)}, {grid_settings.seeds} seed(s), "
          f"{grid_settings.epochs} epochs, grid lrs {list(grid_settings.lrs)}; opt-in: "
          f"{search_line(opt_settings)}")
    # in-training: training seconds / trial-seconds; of-slots: / (downstream wall x concurrent trials).
    print(f"{'run':<12} {'trials':>7} {'steps':>9} {'trial-s':>9} {'wall-s':>8} {'in-training':>11} "
          f"{'of-slots':>8} {'stopped':>8}")
    for label, outcome in outcomes.items():
        b = outcome.budget
        print(f"{label:<12} {b.trials:>7} {b.steps:>9,} {b.trial_seconds:>9.0f} {walls[label]:>8.0f} "
              f"{100 * b.training_share:>10.0f}% {100 * b.stage_training_share:>7.0f}% {b.stopped_early:>8}")
    print(f"ratio steps (opt-in / grid): {opt.budget.steps / max(grid.budget.steps, 1):.2f}   target <= 0.40")
    print(f"ratio trial-seconds: {opt.budget.trial_seconds / max(grid.budget.trial_seconds, 1e-9):.2f}")
    print(f"ratio wall time: {walls['opt-in'] / walls['grid/fifo']:.2f}   target <= 0.60")
    print(f"cells within 10% of the grid or inside its seed quartiles: {good}/{cells} "
          f"({100 * good / max(cells, 1):.0f}%)   target >= 90%")
    print(f"load average at the end (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"outputs: {out} (cells.csv: the per-cell comparison)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
