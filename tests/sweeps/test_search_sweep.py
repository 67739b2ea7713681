"""Q1 at the smoke profile with the opt-in search (Optuna, ASHA) and with grid-edge extension, end to end."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)
NEW_COLUMNS = ["best_epoch", "epochs", "epochs_run", "steps", "train_seconds", "trial_seconds", "stopped_early",
               "search", "scheduler", "lr_at_edge"]


@pytest.fixture(scope="module")
def work(ray_address, new_mlflow_store, tmp_path_factory):
    work = tmp_path_factory.mktemp("search")
    return work, {**os.environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": new_mlflow_store(work)}


def _sweep(work, env, out, *flags):
    command = [sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke",
               "--systems", "poisson", "--out", str(work / out), "--cache", str(work / "cache"), *flags]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_optuna_and_halving_as_the_readme_runs_them_end_to_end_with_the_compute_columns_tags_and_budget(work):
    work, env = work
    stdout = _sweep(work, env, "opt", "--search", "optuna", "--trials-per-cell", "2", "--lrs", "1e-3 1e-2",
                    "--scheduler", "halving", "--grace-period", "1", "--reduction-factor", "2", "--epochs", "4",
                    "--n-values", "4")
    out = work / "opt"
    trials = pd.read_csv(out / "all_trials.csv")
    results = pd.read_csv(out / "results.csv")
    assert set(NEW_COLUMNS) - {"lr_at_edge"} <= set(trials.columns) and set(NEW_COLUMNS) <= set(results.columns)
    trained = trials[trials["recipe"] != "zeroshot"]
    assert (trained["search"] == "optuna").all() and (trained["scheduler"] == "halving").all()
    assert trained["lr"].between(1e-3, 1e-2).all() and trained["lr"].nunique() > 2  # per-cell proposals
    assert (trained["steps"] > 0).all() and (trained["train_seconds"] > 0).all()
    assert (trained["trial_seconds"] >= trained["train_seconds"]).all()
    stopped = trained[trained["stopped_early"]]
    assert (stopped["epochs_run"] < stopped["epochs"]).all() and stopped["test_rel_l2"].map(math.isfinite).all()
    finished = trained[~trained["stopped_early"]]
    assert (finished["epochs_run"] == finished["epochs"]).all()
    # Each seed of each cell keeps its own best lr (Optuna proposes per seed).
    assert (results[results["recipe"] != "zeroshot"].groupby(["recipe", "n_train", "seed"]).size() == 1).all()
    budget = json.loads((out / "budget.json").read_text())
    assert budget["steps"] == int(trials["steps"].sum()) and budget["grid_steps"] > 0
    assert budget["stopped_early"] == len(stopped)
    assert "## Compute budget" in (out / "report.md").read_text() and "trial-seconds" in stdout
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("q1-downstream-data-scaling")
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if r.data.tags.get("recipe") in ("scratch", "finetune")]
    assert runs and all(r.data.tags["search"] == "optuna" and r.data.tags["scheduler"] == "halving" for r in runs)
    killed = [r for r in runs if r.data.tags["stopped_early"] == "True"]
    assert len(killed) == len(stopped) and all(r.info.status == "KILLED" for r in killed)


def test_grid_edges_are_extended_for_exactly_the_flagged_cells(work):
    work, env = work
    stdout = _sweep(work, env, "edges", "--lrs", "3e-3", "--n-values", "4", "--extend-edges", "1", "--no-tracking")
    trials = pd.read_csv(work / "edges" / "all_trials.csv")
    trained = trials[trials["recipe"] != "zeroshot"]
    # A one-value grid is at both edges of every cell: one round adds 1e-3 and 9e-3 to each of them.
    for _, cell in trained.groupby(["recipe", "n_train"]):
        assert sorted(cell["lr"]) == [1e-3, 3e-3, 9e-3]
    assert "grid edges, round 1" in stdout
    results = pd.read_csv(work / "edges" / "results.csv")
    edge = results[results["recipe"] != "zeroshot"]
    assert (edge["lr_at_edge"] == edge["lr"].isin([1e-3, 9e-3])).all()


def test_search_seeds_first_with_race_as_the_readme_runs_it(work):
    """The README's flags (--seeds 3 --scheduler race --grace-period 8 --search-seeds first) at smoke sizes
    (14 epochs: one rung): on the first seed one trial per cell races its learning rates, ranked with their
    averaged weights (the default --race-rank), the later seeds train once at its choice."""
    work, env = work
    stdout = _sweep(work, env, "first", "--seeds", "3", "--scheduler", "race", "--grace-period", "8",
                    "--search-seeds", "first", "--lrs", "1e-3 1e-2", "--n-values", "4", "--epochs", "14")
    out = work / "first"
    trials = pd.read_csv(out / "all_trials.csv")
    trained = trials[trials["recipe"] != "zeroshot"]
    first, later = trained[trained["seed"] == 0], trained[trained["seed"] > 0]
    cells = ["recipe", "n_train"]
    n_cells = first.groupby(cells).ngroups  # fine-tune N=4; scratch N=4 and the profile's extra N=16
    assert n_cells == 3 and (first.groupby(cells)["lr"].apply(sorted) == pd.Series([[1e-3, 1e-2]] * 3).values).all()
    # One Tune trial per cell raced both rates: the loser stopped at the rung, the winner trained to the end.
    assert first["trial_id"].str.split("/").str[0].str.contains("race-0.001-0.01").all()
    assert first["trial_id"].str.split("/").str[0].nunique() == n_cells
    assert (first.groupby(cells)["stopped_early"].sum() == 1).all()
    stopped, winners = first[first["stopped_early"]], first[~first["stopped_early"]]
    assert (stopped["epochs_run"] < stopped["epochs"]).all() and (winners["epochs_run"] == winners["epochs"]).all()
    assert (stopped["steps"] < winners.set_index(cells).loc[stopped.set_index(cells).index, "steps"].values).all()
    assert (later.groupby(cells + ["seed"]).size() == 1).all() and len(later) == 2 * n_cells
    assert (first["scheduler"] == "race").all() and (later["scheduler"] == "fifo").all()
    assert not later["stopped_early"].any()
    # The later seeds train exactly the learning rate with the first seed's lowest validation error.
    chosen = first.loc[first.groupby(cells)["val_rel_l2"].idxmin()].set_index(cells)["lr"]
    assert (chosen == winners.set_index(cells)["lr"].loc[chosen.index]).all()
    assert (later.set_index(cells)["lr"] == chosen.loc[later.set_index(cells).index]).all()
    results = pd.read_csv(out / "results.csv")
    best = results[results["recipe"] != "zeroshot"]
    assert (best.groupby(cells)["seed"].apply(sorted) == pd.Series([[0, 1, 2]] * len(chosen)).values).all()
    assert (best.set_index(cells)["lr"] == chosen.loc[best.set_index(cells).index]).all()
    assert "later seeds: 3 cells at the learning rate seed 0 chose, 6 trials" in stdout
    report = (out / "report.md").read_text()
    assert "each cell's learning rates raced in one trial" in report and "averaged weights" in report
    budget = json.loads((out / "budget.json").read_text())
    assert budget["grid_trials"] - (len(trials) - len(trained)) == 2 * n_cells * 3  # 2 lrs x cells x 3 seeds
    assert budget["steps"] == int(trials["steps"].sum()) < budget["grid_steps"]
    # Every raced learning rate has its own MLflow run, closed by the race, the loser's tagged stopped_early.
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("q1-downstream-data-scaling")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id], max_results=1000)}
    for _, row in first.iterrows():
        run = runs[row["mlflow_run_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["scheduler"] == "race"
        assert run.data.tags["stopped_early"] == str(bool(row["stopped_early"]))
        assert float(run.data.tags["lr"]) == row["lr"]
        assert run.data.metrics["test_rel_l2"] == pytest.approx(row["test_rel_l2"], rel=1e-12)
        # The rung's other error: the candidate's averaged weights, validated with its own up to the rung.
        averaged = client.get_metric_history(run.info.run_id, "val_rel_l2_averaged")
        assert sorted(m.step for m in averaged) == list(range(1, 9))
