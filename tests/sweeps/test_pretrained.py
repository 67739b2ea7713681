"""Sweeps and the Model Registry: the kept pre-training is registered; --pretrained skips pre-training."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sciml.models import build_fno
from sciml.sweeps.cli import main
from sciml.sweeps.profiles import profile_settings
from sciml.sweeps.questions import QUESTIONS
from sciml.sweeps.runner import SweepRunner
from sciml.tracking import Tracker
from sciml.tracking.registry import lookup, register_version
from sciml.training.checkpoint import save_model

ROOT = Path(__file__).resolve().parents[2]


def _register(uri, tmp_path, name, width, modes, preset=None, label="SYS-1(1,5)"):
    """A run holding model/model.pt registered as a version of `name` (tagged as a sweep would tag it)."""
    tracker = Tracker(uri)
    run_id = tracker.start_run("pre", name)
    path = tmp_path / name / "model.pt"
    path.parent.mkdir()
    save_model(str(path), build_fno(preset) if preset else build_fno(None, width=width, modes=modes))
    tracker.log_artifact(run_id, str(path), "model")
    tracker.end_run(run_id)
    tags = {"pretrain_label": label} if label else {}
    return register_version(run_id, name, 0.2, tags, uri=uri).version


@pytest.mark.parametrize("entry, message", [
    ("models:/sciml-small@best", "--pretrained: models:/sciml-small@best is a d8m4 model, the sweep's presets are "
                                 "['64K'] (set --presets d8m4)"),
    ("SYS-9(1,2)=models:/sciml-small@best", "--pretrained: 'SYS-9(1,2)' is not a pre-training of q1"),
    ("models:/sciml-unlabelled/1", "--pretrained: models:/sciml-unlabelled/1 has no pretrain_label tag; "
                                   "give LABEL=models:/sciml-unlabelled/1"),
    ("models:/sciml-none@best", "--pretrained: models:/sciml-none@best: no registered model 'sciml-none'"),
    ("=models:/sciml-small@best", "--pretrained: give LABEL=models:/... or models:/..."),
    ("models:/sciml-small", "--pretrained: must be models:/NAME@ALIAS or models:/NAME/VERSION"),
])
def test_bad_pretrained_models_exit_2_before_any_work(entry, message, mlflow_uri, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _register(mlflow_uri, tmp_path, "sciml-small", 8, 4)
    _register(mlflow_uri, tmp_path, "sciml-unlabelled", 8, 4, label=None)
    with pytest.raises(SystemExit) as exit_info:
        main("q1", ["--profile", "smoke", "--pretrained", entry, "--out", str(tmp_path / "out"),
                    "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"sweeps/q1_*.py: error: {message}"), errors
    assert not (tmp_path / "out").exists()


def test_a_kept_pretraining_is_registered_with_its_model_card(small_datasets, mlflow_uri, tmp_path):
    runner = SweepRunner(QUESTIONS["q1"], profile_settings("q1", "smoke"))
    runner.tracker = Tracker(mlflow_uri)
    run_id = runner.tracker.start_run("q1", "pretrain")
    path = tmp_path / "model.pt"
    save_model(str(path), build_fno("64K"))
    metrics = {"val_rel_l2": 0.25, "test_rel_l2": 0.3, "lr": 3e-3, "mlflow_run_id": run_id}
    assert runner._register(("SYS-1(1,5)", "64K"), str(path), [small_datasets["pre"]], metrics) == \
        "models:/sciml-SYS-1_1_5-64K/1"
    best = lookup("models:/sciml-SYS-1_1_5-64K@best", mlflow_uri)
    assert best.run_id == run_id and best.tags["pretrain_label"] == "SYS-1(1,5)" and best.tags["lr"] == "0.003"
    assert best.tags["test_rel_l2"] == "0.3" and best.tags["preset"] == "64K" and "f_ref" in best.tags["normalization"]
    # No tracker (--no-tracking) or no run: nothing to register, and nothing fails.
    assert runner._register(("SYS-1(1,5)", "64K"), str(path), [small_datasets["pre"]], {"val_rel_l2": 1}) is None


@pytest.mark.timeout(600)
def test_a_sweep_from_a_registered_model_skips_pretraining(ray_address, mlflow_uri, tmp_path):
    version = _register(mlflow_uri, tmp_path, "sciml-SYS-1_1_5-64K", 0, 0, preset="64K")
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": mlflow_uri}
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke", "--systems", "poisson",
         "--n-values", "4", "--pretrained", "models:/sciml-SYS-1_1_5-64K@best", "--out", str(out),
         "--cache", str(tmp_path / "cache")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "registered models:/sciml-SYS-1_1_5-64K/1" in result.stdout
    assert not list((out / "ray").glob("pretrain-*"))  # no pre-training Tune experiment
    # ... nor its data: only the downstream dataset was generated (the plan does not count it either).
    assert [d.name.split("-n16-")[0] for d in (tmp_path / "cache" / "data").iterdir()] == ["SYS-1_5_10"]
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("q1-downstream-data-scaling")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r for r in runs if r.data.tags.get("recipe") == "pretrain"]
    parent = [r for r in runs if r.data.tags.get("kind") == "sweep"][0]
    assert parent.data.tags["pretrained_run_id.SYS-1_1_5.64K"] == version.run_id
    assert parent.data.tags["pretrained_model_uri.SYS-1_1_5.64K"] == "models:/sciml-SYS-1_1_5-64K@best"
    results = pd.read_csv(out / "results.csv")
    assert {"finetune", "scratch", "zeroshot"} <= set(results["recipe"])
    # The sweep fine-tuned from the registered file, and registered nothing new.
    assert len(client.search_model_versions("name='sciml-SYS-1_1_5-64K'")) == 1


def test_the_sweep_run_logs_test_error_against_n_per_recipe(synthetic):
    """What the MLflow UI charts on the sweep run's Model metrics tab: one curve per recipe, step = N."""
    logged = []

    class Recorder:
        def log_metrics(self, run_id, metrics, step=0):
            logged.append((run_id, step, dict(metrics)))

    runner = SweepRunner(QUESTIONS["q1"], profile_settings("q1", "smoke"), tracking=False)
    runner.tracker, runner.parent_run_id = Recorder(), "parent"
    runner._log_curves(synthetic.q1(seeds=3, ns=(8, 32)).best())
    by_step = {step: metrics for _, step, metrics in logged}
    assert sorted(by_step) == [0, 8, 32, 128]
    base = "test_rel_l2/SYS-1_5_10/64K/"
    assert by_step[0] == {base + "zeroshot_from_SYS-1_1_5": pytest.approx(0.3),
                          base + "zeroshot_random_init": pytest.approx(1.5)}
    # Median over the three seeds (scales 1, 1.05, 1.1): the middle one.
    assert by_step[8] == {base + "scratch": pytest.approx(1.05 / 8**0.5),
                          base + "finetune_from_SYS-1_1_5": pytest.approx(0.25 * 1.05 / 8**0.5)}
    assert by_step[128] == {base + "scratch": pytest.approx(1.05 / 128**0.5)}
    assert {run_id for run_id, _, _ in logged} == {"parent"}
