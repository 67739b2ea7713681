"""benchmarks/rehearsal.py's verdict after the job: data intact, MLflow closed, no finished trial redone.

The run itself (a 3-node cluster for about ten minutes) is documented in docs/cluster.md,
"Rehearsal"; this checks that its checks catch what they look for.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from sciml.tracking import Tracker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rehearsal():
    spec = importlib.util.spec_from_file_location("rehearsal", ROOT / "benchmarks" / "rehearsal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def storage(small_datasets, tmp_path):
    """A sweep's storage: one cached dataset and a Tune experiment whose trials all terminated."""
    root = tmp_path / "storage"
    shutil.copytree(small_datasets["down"], root / "cache" / "data" / "SYS-1_5_10")
    experiment = root / "ray" / "q1-rehearsal" / "downstream-x"
    experiment.mkdir(parents=True)
    trials = [(json.dumps({"status": "TERMINATED", "custom_dirname": name}), json.dumps({"num_failures": failures}))
              for name, failures in (("a", 0), ("b", 1))]
    (experiment / "experiment_state-1.json").write_text(json.dumps({"trial_data": trials}))
    return root


def test_the_checks_pass_a_clean_sweep_and_name_the_retried_trial(rehearsal, storage, mlflow_uri, tmp_path):
    tracker = Tracker(mlflow_uri)
    parent = tracker.start_run("e", "sweep", tags={"kind": "sweep"})
    for name in ("a", "b"):
        tracker.end_run(tracker.start_run("e", name, parent_run_id=parent))
    lost = tracker.start_run("e", "b", parent_run_id=parent, tags={"orphaned": "node lost"})
    tracker.end_run(lost, status="KILLED")
    tracker.end_run(parent)
    result = rehearsal.checks(tmp_path, storage, mlflow_uri, dict(os.environ), None)
    assert result["ok"], result
    assert result["data_verify"]["exit"] == 0 and result["data_verify"]["datasets"] == 1
    assert result["tune"]["downstream-x"] == {"trials": 2, "by_status": {"TERMINATED": 2}, "retried": ["b"]}
    assert [k["run"] for k in result["mlflow"]["killed"]] == ["b"] and result["mlflow"]["killed"][0]["orphaned"]


def test_the_checks_fail_a_damaged_shard_an_open_run_and_a_redone_trial(rehearsal, storage, mlflow_uri, tmp_path):
    tracker = Tracker(mlflow_uri)
    parent = tracker.start_run("e", "sweep", tags={"kind": "sweep"})
    tracker.start_run("e", "open", parent_run_id=parent)
    for _ in range(2):
        tracker.end_run(tracker.start_run("e", "twice", parent_run_id=parent))
    (storage / "cache" / "data" / "SYS-1_5_10" / "train" / "part-00000.parquet").write_bytes(b"")
    result = rehearsal.checks(tmp_path, storage, mlflow_uri, dict(os.environ), None)
    assert not result["ok"]
    assert result["data_verify"]["exit"] == 1 and "part-00000.parquet" in result["data_verify"]["output"]
    assert result["mlflow"]["running"] == 2  # the open trial run and the sweep's own
    assert result["mlflow"]["finished_twice"] == ["twice"]
