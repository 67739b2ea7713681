"""The whole Q1 pipeline at the smoke profile, interrupted and resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sciml.sweeps.tune_state import STATE_FILES

ROOT = Path(__file__).resolve().parents[2]
# End-to-end sweeps; the module fixture alone runs two (up to 540 s by its own limits).
pytestmark = pytest.mark.timeout(900)
REQUIRED = ["question", "task", "shift", "preset", "n_params", "recipe", "n_train", "lr",
            "val_rel_l2", "test_rel_l2", "trial_id"]


def _trial_runs(client, state=None):
    experiment = client.get_experiment_by_name("q1-downstream-data-scaling")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("kind") != "sweep" and (state is None or r.info.status == state)]


def _break_tune_state(storage: Path) -> None:
    """What a kill during Tune's background copy of its state leaves: truncated files."""
    for pattern in STATE_FILES:
        for state_file in storage.glob(f"downstream-*/{pattern}"):
            state_file.write_bytes(state_file.read_bytes()[:7])


def _terminated_in_tune_state(storage: Path) -> set[str]:
    """Trial keys finished in the last complete copy of Tune's state (what a resume restores)."""
    done = set()
    for state_file in storage.glob("downstream-*/experiment_state-*.json.complete"):
        for trial_json, _ in json.loads(state_file.read_text())["trial_data"]:
            trial = json.loads(trial_json)
            if trial["status"] == "TERMINATED":
                done.add(trial["custom_dirname"])
    return done


@pytest.fixture(scope="module")
def resumed_sweep(ray_address, new_mlflow_store, tmp_path_factory):
    work = tmp_path_factory.mktemp("q1")
    uri = new_mlflow_store(work)
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": uri}
    command = [sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke",
               "--systems", "poisson", "--lrs", "1e-3 3e-3", "--out", str(work / "out"),
               "--cache", str(work / "cache")]
    client = MlflowClient(uri)
    first = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if len([r for r in _trial_runs(client, "FINISHED") if r.data.tags.get("recipe") != "pretrain"]) >= 4:
            break
        time.sleep(0.5)
    assert first.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    before = _terminated_in_tune_state(work / "out" / "ray")
    _break_tune_state(work / "out" / "ray")
    started = time.time()
    second = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    return {"work": work, "out": work / "out", "client": client, "before": before, "second": second,
            "seconds": time.time() - started}


def test_resumed_sweep_finishes_without_redoing_finished_trials(resumed_sweep):
    second, client = resumed_sweep["second"], resumed_sweep["client"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming the Tune experiment" in second.stdout
    assert "restored from its last complete copy" in second.stdout
    assert "cached checkpoints reused" in second.stdout
    finished = [r.info.run_name for r in _trial_runs(client, "FINISHED")]
    assert len(resumed_sweep["before"]) >= 2
    for name in resumed_sweep["before"]:
        assert finished.count(name) == 1, f"{name} was trained again"
    parents = client.search_runs([client.get_experiment_by_name("q1-downstream-data-scaling").experiment_id],
                                 "tags.kind = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


def test_results_table_has_one_row_per_cell(resumed_sweep):
    table = pd.read_csv(resumed_sweep["out"] / "results.csv")
    assert list(table.columns[:len(REQUIRED)]) == REQUIRED
    assert set(table["recipe"]) == {"scratch", "finetune", "zeroshot"}
    assert table["task"].unique().tolist() == ["SYS-1(5,10)"] and set(table["shift"]) == {"med"}
    cells = table.groupby(["recipe", "pretrain", "n_train", "preset", "seed"]).size()
    assert (cells == 1).all()
    assert sorted(table[table["recipe"] == "scratch"]["n_train"]) == [4, 8, 16]
    assert sorted(table[table["recipe"] == "finetune"]["n_train"]) == [4, 8]
    assert table[table["recipe"] != "zeroshot"]["lr"].isin([1e-3, 3e-3]).all()
    parquet = pd.read_parquet(resumed_sweep["out"] / "results.parquet")
    pd.testing.assert_frame_equal(parquet.reset_index(drop=True), table, check_dtype=False)
    # The chosen learning rate is the best by validation among the trials of its cell.
    trials = pd.read_csv(resumed_sweep["out"] / "all_trials.csv")
    for _, row in table[table["recipe"] == "scratch"].iterrows():
        cell = trials[(trials["recipe"] == "scratch") & (trials["n_train"] == row["n_train"])]
        assert len(cell) == 2 and row["val_rel_l2"] == cell["val_rel_l2"].min()


def test_figures_report_and_mlflow_artifacts(resumed_sweep):
    out, client = resumed_sweep["out"], resumed_sweep["client"]
    for name in ("fig3_data_scaling.png", "figB1_data_savings.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "![fig3_data_scaling.png](fig3_data_scaling.png)" in report and "| fine-tune |" in report.replace(
        "fine-tune | scratch", "fine-tune |")
    assert "savings" in pd.read_csv(out / "savings.csv").columns
    parent = client.search_runs([client.get_experiment_by_name("q1-downstream-data-scaling").experiment_id],
                                "tags.kind = 'sweep'")[0]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "results")}
    assert {"results/results.csv", "results/fig3_data_scaling.png", "results/report.md"} <= artifacts
    trial = [r for r in _trial_runs(client, "FINISHED") if r.data.tags.get("recipe") == "finetune"][0]
    for tag in ("question", "system", "shift", "preset", "n_train", "recipe", "lr", "seed"):
        assert tag in trial.data.tags
    assert trial.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "val_rel_l2" in trial.data.metrics and "test_rel_l2" in trial.data.metrics


def test_bad_arguments_exit_2_before_any_work(tmp_path):
    for args in (["--profile", "huge"], ["--presets", "3M"], ["--n-values", "8 64", "--profile", "smoke"],
                 ["--systems", "maxwell"], ["--lrs", "-1"]):
        result = subprocess.run([sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), *args,
                                 "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) >= 1
        assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


def test_trials_no_node_of_the_embedded_ray_fits_exit_2_before_any_work(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run([sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke",
                             "--gpus-per-worker", "1", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"),
                             "--no-tracking"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "need 1 CPU and 1 GPU each" in result.stderr and "RAY_ADDRESS" in result.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()
