"""Every race policy (grace period x reduction factor) on the reduced laptop Q1: agreement with the grid and steps.

A raced learning rate trains exactly as it would alone (tests/training/test_race.py), and
with `--search-seeds first` only the first seed races: so what any policy decides, and the
optimizer steps it costs, follow exactly from the first seed's full validation curves. This
script

1. trains every grid learning rate of every cell of `sweep_efficiency.py`'s reduced laptop
   Q1 to the end on the first seed, one race without rungs per cell (each validation
   recorded in a local MLflow store under DIR/curves);
2. replays each policy (grace period x reduction factor x what rungs rank by) on those curves
   with the race's own rules (RaceConfig.schedule; candidates ranked by their best validation
   error so far, or by the better of that and their averaged weights' error, sciml/training/race.py);
3. scores it against the grid half of a `sweep_efficiency.py --out DIR` run: the later
   seeds train the chosen learning rate exactly as the grid's trials did, so their test
   errors are the grid's rows.

It also prints, per cell, from which validation on the learning rate the grid chooses
leads the others for good, by either ranking: no policy that decides earlier can agree there.

Usage (after `python benchmarks/sweep_efficiency.py --out DIR`; about 6 minutes)::

    python benchmarks/race_policies.py --out DIR
    python benchmarks/race_policies.py --quick --out DIR   # after sweep_efficiency.py --quick (the test suite)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GRACE_PERIODS = range(1, 17)
REDUCTION_FACTORS = (2.0, 3.0, 4.0)


def curves(args, out: str) -> dict:
    """{(recipe, n): {lr: {"val": [at validation 0 (the start), 1, 2, ...], "averaged": [inf, 1, 2, ...]}}}:
    the validation errors of each run's weights and of their running average, on the first seed,
    cached in DIR/curves."""
    path = os.path.join(out, "curves", "curves.json")
    cached = json.load(open(path)) if os.path.exists(path) else {}
    if cached and all(isinstance(v, dict) for by_lr in cached.values() for v in by_lr.values()):
        return {tuple(json.loads(k)): {float(lr): v for lr, v in by_lr.items()} for k, by_lr in cached.items()}
    from mlflow.tracking import MlflowClient

    from sciml.data.ray_datasets import DataSource
    from sciml.ray_env import ensure_ray
    from sciml.sweeps.trials import TrialSpec, trial_config
    from sciml.training.config import RaceConfig, ResourceConfig
    from sciml.training.runner import DataSelection, TrackingRequest, run_training
    from sweep_efficiency import settings_pair

    grid, _ = settings_pair(args, out)
    data = next(Path(grid.cache, "data").glob("SYS-1_5_10*"))
    checkpoint = str(next(Path(grid.cache, "pretrained").glob("*/model.pt")))
    uri = f"sqlite:///{os.path.join(out, 'curves', 'mlruns.db')}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ensure_ray()
    found = {}
    for recipe in ("scratch", "finetune"):
        lrs = grid.recipe_lrs[recipe]
        for n in grid.n_values:
            trial = TrialSpec(recipe, grid.presets[0], grid.seed, "", task="", n_train=n, lrs=lrs,
                              checkpoint=checkpoint if recipe == "finetune" else None)
            tracking = [TrackingRequest("race-policies", f"{recipe}-N{n}-lr{lr:g}", uri=uri) for lr in lrs]
            outcome = run_training(trial_config(trial, grid, trial.checkpoint), DataSelection((DataSource(str(data)),)),
                                   ResourceConfig(), os.path.join(out, "curves", f"{recipe}-{n}"), tracking=tracking,
                                   race=RaceConfig(lrs, grace_period=10**6))  # no rungs: every lr to the end
            client = MlflowClient(uri)

            def history(run_id: str, metric: str) -> list[float]:
                return [m.value for m in sorted(client.get_metric_history(run_id, metric), key=lambda m: m.step)]

            found[recipe, n] = {c["lr"]: {"val": history(c["mlflow_run_id"], "val_rel_l2"),
                                          "averaged": [math.inf] + history(c["mlflow_run_id"], "val_rel_l2_averaged")}
                                for c in outcome.metrics["race"]}
            print(f"curves: {recipe} N={n} done", flush=True)
    json.dump({json.dumps(list(k)): v for k, v in found.items()}, open(path, "w"))
    return found


def rank_error(curve: dict, validations: int, rank_by: str) -> float:
    """race.rank_error on a recorded curve: the best validation error so far (the start counts), or
    the better of that and the averaged weights' error at `validations`."""
    averaged = curve["averaged"][validations] if rank_by == "averaged" else math.inf
    return min(min(curve["val"][:validations + 1]), averaged)


def replay(race, by_lr: dict[float, dict]) -> tuple[float, dict[float, int]]:
    """The race's decisions on full curves, by its own schedule and ranking (sciml/training/race.py):
    (the learning rate the sweep chooses, by validation error as from its rows; validations each candidate ran)."""
    lrs = list(race.lrs)
    total = len(by_lr[lrs[0]]["val"]) - 1

    def best(lr: float, validations: int) -> float:  # best so far; the start (epoch 0) counts
        return min(by_lr[lr]["val"][:validations + 1])

    running, ran = list(range(len(lrs))), {}
    for rung, keep in race.schedule(total):
        ranked = sorted(running, key=lambda i: (rank_error(by_lr[lrs[i]], rung, race.rank_by), i))
        running = ranked[:keep]
        ran.update({lrs[i]: rung for i in ranked[keep:]})
    ran.update({lrs[i]: total for i in running})
    return min(lrs, key=lambda lr: (best(lr, ran[lr]), lrs.index(lr))), ran


def decided_from(by_lr: dict[float, dict], chosen: float, rank_by: str) -> int | None:
    """The first validation from which `chosen` ranks first for good, by `rank_by` (None: never)."""
    total = len(next(iter(by_lr.values()))["val"]) - 1
    leads = [all(rank_error(by_lr[chosen], v, rank_by) < rank_error(by_lr[lr], v, rank_by)
                 for lr in by_lr if lr != chosen) for v in range(total + 1)]
    if not leads[-1]:
        return None
    first = total
    while first > 0 and leads[first - 1]:
        first -= 1
    return first


def main(argv=None) -> int:
    import pandas as pd

    from sciml.sweeps.trials import TrialSpec, trial_config
    from sciml.training.config import RACE_RANKS, RaceConfig
    from sciml.training.loop import EpochSchedule
    from sweep_efficiency import agreement, parse, settings_pair

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the --out DIR of a sweep_efficiency.py run (its grid half)")
    p.add_argument("--quick", action="store_true", help="that run was sweep_efficiency.py --quick")
    own = p.parse_args(argv)
    args = parse(["--out", own.out] + (["--quick"] if own.quick else []))
    grid_settings, _ = settings_pair(args, args.out)
    grid_rows = pd.read_csv(os.path.join(grid_settings.out, "all_trials.csv"))
    grid_best = pd.read_csv(os.path.join(grid_settings.out, "results.csv"))
    grid_steps = int(json.load(open(os.path.join(grid_settings.out, "budget.json")))["steps"])
    found = curves(args, args.out)
    schedules = {}
    for recipe, n in found:
        trial = TrialSpec(recipe, grid_settings.presets[0], 0, "", n_train=n, lr=1e-3,
                          checkpoint="-" if recipe == "finetune" else None)
        schedules[recipe, n] = EpochSchedule.plan(trial_config(trial, grid_settings, trial.checkpoint), n, 1)

    def score(race_of) -> tuple[int, float, str]:
        chosen_rows, steps, picks = [], 0, []
        for (recipe, n), by_lr in sorted(found.items()):
            schedule = schedules[recipe, n]
            chosen, ran = replay(race_of(tuple(sorted(by_lr))), by_lr)
            steps += sum(schedule.epochs_at(v) for v in ran.values()) * schedule.steps_per_epoch
            steps += (grid_settings.seeds - 1) * schedule.total_steps  # the later seeds, once each
            cell = grid_rows[(grid_rows["recipe"] == recipe) & (grid_rows["n_train"] == n)]
            chosen_rows.append(cell[cell["lr"] == chosen])
            picks.append(f"{recipe[0]}{n}:{chosen:g}")
        table = agreement(grid_best, pd.concat(chosen_rows))
        misses = {f"{r.recipe[0]}{r.n_train}" for r in table.itertuples() if not r.agrees}
        marked = [pick + ("!" if pick.split(":")[0] in misses else "") for pick in picks]
        return int(table["agrees"].sum()), steps / grid_steps, " ".join(marked)

    print("Per cell (first seed): the grid's learning rate, and from which validation it ranks first for good, "
          "by the best validation error so far / with the averaged weights")
    grid_choice = {(r.recipe, r.n_train): r.lr for r in grid_best[grid_best["recipe"] != "zeroshot"].itertuples()}
    for (recipe, n), by_lr in sorted(found.items()):
        leads = [decided_from(by_lr, grid_choice[recipe, n], rank_by) for rank_by in ("best", "averaged")]
        total = len(next(iter(by_lr.values()))["val"]) - 1
        print(f"  {recipe:8s} N={n:4d}: lr {grid_choice[recipe, n]:g}, ranks first from validation "
              + " / ".join("never" if lead is None else str(lead) for lead in leads) + f" of {total}")
    rows = []
    for rank_by in RACE_RANKS:
        for grace in GRACE_PERIODS:
            for factor in REDUCTION_FACTORS:
                agree, ratio, picks = score(lambda lrs: RaceConfig(lrs, grace_period=grace, reduction_factor=factor,
                                                                   rank_by=rank_by))
                rows.append((rank_by, grace, factor, agree, ratio, picks))
    columns = ["rank_by", "grace", "factor", "cells_agreeing", "steps_ratio", "choices (! = miss)"]
    table = pd.DataFrame(rows, columns=columns)
    # With three rates every factor keeps one after the first rung: one row per distinct outcome.
    table = (table.groupby([c for c in columns if c != "factor"], as_index=False)
             .agg(factor=("factor", lambda f: ",".join(f"{v:g}" for v in f))))[columns]
    table = table.sort_values(["cells_agreeing", "steps_ratio", "rank_by"], ascending=[False, True, True])
    print(f"\nPolicies ({len(found)} cells, {grid_settings.seeds} seeds, the first searching; issue 10: >= 90% of "
          "cells, <= 0.40 of the steps):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    table.to_csv(os.path.join(args.out, "race_policies.csv"), index=False)
    for rank_by in RACE_RANKS:
        best = table[(table["steps_ratio"] <= 0.40) & (table["rank_by"] == rank_by)].head(1)
        if not best.empty:
            print(f"best within 0.40 of the steps, ranked by {rank_by}: grace {int(best['grace'].iloc[0])}, factor "
                  f"{best['factor'].iloc[0]}: {int(best['cells_agreeing'].iloc[0])}/{len(found)} cells, "
                  f"{best['steps_ratio'].iloc[0]:.3f} of the steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
