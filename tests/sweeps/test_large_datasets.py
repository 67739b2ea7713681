"""The large-dataset path (splits above the materialization limit stream through Ray Data), at small scale.

Paper-size splits (about 4 GB at 128^2) are what take this path; the tests lower the limit
with SCIML_MATERIALIZE_LIMIT_BYTES instead of generating gigabytes.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sciml.core.tables import RANDOM_INIT
from sciml.sweeps.cli import main
from sciml.sweeps.datasets import MATERIALIZE_LIMIT_BYTES, MATERIALIZE_LIMIT_ENV, materialize_limit, streams
from sciml.sweeps.profiles import profile_settings
from sciml.sweeps.questions import Q1
from sciml.sweeps.runner import SweepRunner

ROOT = Path(__file__).resolve().parents[2]
# The smoke profile's largest split: 3 x 64 pre-training examples x 2 float32 fields of 16^2 = 393,216 B.
FEW_KB = "4096"


def test_the_limit_comes_from_the_environment():
    assert materialize_limit({}) == MATERIALIZE_LIMIT_BYTES == 2 * 1024**3
    assert materialize_limit({MATERIALIZE_LIMIT_ENV: " 4096 "}) == 4096
    assert materialize_limit({MATERIALIZE_LIMIT_ENV: "1_000"}) == 1000
    for bad in ("lots", "-1", "1.5", "4K"):
        with pytest.raises(ValueError, match=f"^{MATERIALIZE_LIMIT_ENV}: .*{bad}"):
            materialize_limit({MATERIALIZE_LIMIT_ENV: bad})
    smoke = profile_settings("q1", "smoke")
    assert not streams(smoke, {}) and streams(smoke, {MATERIALIZE_LIMIT_ENV: FEW_KB})


def test_a_bad_limit_exits_2_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(MATERIALIZE_LIMIT_ENV, "2GB")
    with pytest.raises(SystemExit) as exit_:
        main("q1", ["--profile", "smoke", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert exit_.value.code == 2
    assert f"{MATERIALIZE_LIMIT_ENV}: must be a whole number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


# About a minute on an idle 2-core machine; minutes under the load of a shared one.
@pytest.mark.timeout(480)
def test_a_smoke_sweep_streams_its_data_above_a_lowered_limit(ray_address, new_mlflow_store, tmp_path):
    uri = new_mlflow_store(tmp_path)
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": uri, MATERIALIZE_LIMIT_ENV: FEW_KB}
    # Two trials at a time on the session's 2 CPUs: both hold a CPU while they read (the case that hung).
    args = ["--profile", "smoke", "--systems", "poisson", "--n-values", "4", "--scratch-extra-n", "8",
            "--out", str(tmp_path / "out"),
            "--cache", str(tmp_path / "cache")]
    sweep = subprocess.run([sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), *args], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=450)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    # The driver took the streaming path for both Tune runs ...
    assert sweep.stdout.count("datasets streamed through Ray Data") == 2, sweep.stdout[-3000:]
    assert "materialised up front" not in sweep.stdout
    # ... and every trial received lazy datasets (the tag records what the trial got, not what was meant).
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("q1-downstream-data-scaling")
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if r.data.tags.get("kind") != "sweep"]
    assert runs and {r.data.tags.get("datasets") for r in runs} == {"streamed"}
    assert {r.info.status for r in runs} == {"FINISHED"}

    # The same cells a materialized run has (the runner's own enumeration), each with a finite error.
    question = Q1.restricted_to(("poisson",))
    settings = profile_settings("q1", "smoke").with_overrides(systems=("poisson",), n_values=(4,), scratch_extra_n=(8,))
    placeholder = {("SYS-1(1,5)", "64K"): "<checkpoint>"}
    expected = {(t.recipe, t.pretrain, t.n_train) for t in SweepRunner(question, settings, tracking=False)
                .downstream_trials(placeholder)}
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    got = {(r.recipe, r.pretrain, 0 if r.recipe == "zeroshot" else int(r.n_train)) for r in table.itertuples()}
    assert got == {(recipe, pretrain, 0 if recipe == "zeroshot" else n) for recipe, pretrain, n in expected}
    assert len(table) == len(expected) and RANDOM_INIT in set(table["pretrain"])
    assert all(math.isfinite(v) for v in table["test_rel_l2"])
