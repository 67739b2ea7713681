"""The MLflow Model Registry round trip: register, alias `best`, resolve, fine-tune, lineage."""

import os
import subprocess
import sys

import pytest
import torch

from sciml.models import build_fno
from sciml.tracking import Tracker
from sciml.tracking.mlflow_tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from sciml.tracking.registry import (BEST_ALIAS, current_best, fetch_model, is_model_uri, lookup, parse_model_uri,
                                     register_version, registered_model_name)
from sciml.train import main
from sciml.training.checkpoint import load_model, save_model


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _logged_model_run(tracker, tmp_path, width):
    """A finished run holding model/model.pt, as a tracked pre-training leaves it."""
    run_id = tracker.start_run("pre", f"pre-{width}")
    path = tmp_path / f"m{width}" / "model.pt"
    path.parent.mkdir()
    save_model(str(path), build_fno(None, width=width, modes=4))
    tracker.log_artifact(run_id, str(path), "model")
    tracker.end_run(run_id)
    return run_id


def test_names_and_uris():
    assert registered_model_name("SYS-1(1,5)", "d16m8") == "sciml-SYS-1_1_5-d16m8"
    assert registered_model_name("SYS-2(0.2,1)", "64K") == "sciml-SYS-2_0.2_1-64K"
    assert parse_model_uri("models:/sciml-a@best") == ("sciml-a", "best", None)
    assert parse_model_uri("models:/sciml-a/3") == ("sciml-a", None, "3")
    assert is_model_uri("models:/x@best") and not is_model_uri("runs/pre/model.pt") and not is_model_uri(None)
    with pytest.raises(ValueError, match="^checkpoint: must be models:/NAME@ALIAS"):
        parse_model_uri("models:/sciml-a")


def test_best_alias_points_at_the_lowest_validation_error_and_resolves_to_a_file(mlflow_uri, tmp_path):
    tracker = Tracker(mlflow_uri)
    runs = [_logged_model_run(tracker, tmp_path, w) for w in (4, 6, 8)]
    name = "sciml-test-d4m4"
    first = register_version(runs[0], name, 0.5, {"preset": "d4m4"})
    assert first.is_best and current_best(name, mlflow_uri).version == "1"
    second = register_version(runs[1], name, 0.3, {"preset": "d4m4"})
    assert second.is_best and current_best(name, mlflow_uri).version == "2"
    third = register_version(runs[2], name, 0.4, {"preset": "d4m4"})  # worse than version 2: alias stays
    assert not third.is_best and current_best(name, mlflow_uri).version == "2"
    best = lookup(f"models:/{name}@{BEST_ALIAS}", mlflow_uri)
    assert best.run_id == runs[1] and best.source == f"runs:/{runs[1]}/model" and best.tags["val_rel_l2"] == "0.3"

    fetched = fetch_model(f"models:/{name}@best", str(tmp_path / "cache"), mlflow_uri)
    assert fetched.path == str(tmp_path / "cache" / name / "2" / "model.pt")
    assert load_model(fetched.path)[0].hparams["width"] == 6  # version 2 is the width-6 model
    again = fetch_model(f"models:/{name}/2", str(tmp_path / "cache"), mlflow_uri)  # cached: same file
    assert again.path == fetched.path and again.version.run_id == runs[1]
    assert load_model(fetch_model(f"models:/{name}/3", str(tmp_path / "c"), mlflow_uri).path)[0].hparams["width"] == 8

    with pytest.raises(ValueError, match=f"^checkpoint: models:/{name}@nope: registered model '{name}' has no alias"):
        lookup(f"models:/{name}@nope", mlflow_uri)
    with pytest.raises(ValueError, match="has no version 9"):
        lookup(f"models:/{name}/9", mlflow_uri)
    with pytest.raises(ValueError, match=f"no registered model 'sciml-other' \\(registered: {name}\\)"):
        lookup("models:/sciml-other@best", mlflow_uri)


def test_experiments_are_tagged_to_open_on_their_training_runs(mlflow_uri):
    tracker = Tracker(mlflow_uri)
    created = tracker.experiment_id("new")
    assert _client(mlflow_uri).get_experiment(created).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    # An experiment made before the tag existed gets it the next time it is used.
    old = _client(mlflow_uri).create_experiment("old")
    assert EXPERIMENT_KIND_TAG not in _client(mlflow_uri).get_experiment(old).tags
    assert tracker.experiment_id("old") == old
    assert _client(mlflow_uri).get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_unknown_model_or_alias_exits_2_before_any_work(small_datasets, mlflow_uri, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["finetune", "--data", small_datasets["down"], "--out", str(tmp_path / "out")]
    assert main([*args, "--checkpoint", "models:/sciml-nothing@best"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # MLflow logs its DB setup
    assert len(errors) == 1 and errors[0].startswith("error: checkpoint: models:/sciml-nothing@best: no registered model")
    assert main([*args, "--checkpoint", "models:/sciml-nothing"]) == 2
    assert capsys.readouterr().err.startswith("error: checkpoint: must be models:/NAME@ALIAS or models:/NAME/VERSION")
    assert not (tmp_path / "out").exists()


def _cli(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "sciml.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=400)


@pytest.mark.timeout(900)
def test_pretrain_registers_and_finetune_from_the_registry_records_lineage(small_datasets, ray_address, mlflow_uri,
                                                                           tmp_path):
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": mlflow_uri}
    tiny = ["--width", "8", "--modes", "4", "--epochs", "1", "--batch-size", "64"]
    pre = _cli("pretrain", "--data", small_datasets["pre"], *tiny, "--out", str(tmp_path / "pre"), env=env,
               cwd=tmp_path)
    assert pre.returncode == 0, pre.stderr[-3000:]
    name = "sciml-SYS-1_1_5-d8m4"
    assert f"registered models:/{name}/1 (alias best)" in pre.stderr
    best = lookup(f"models:/{name}@best", mlflow_uri)
    pre_run = _client(mlflow_uri).get_run(best.run_id)
    assert pre_run.data.tags["recipe"] == "pretrain"
    # The model card: data hashes, channel layout, normalization, preset, errors, lineage.
    from sciml.data.manifest import load_manifest

    manifest = load_manifest(small_datasets["pre"])
    payload = torch.load(tmp_path / "pre" / "model.pt", weights_only=True)
    assert best.tags["data_content_hashes"] == manifest["content_hash"]
    assert best.tags["channels"] == "f,k11,k22,k12,v1,v2,omega" and best.tags["preset"] == "d8m4"
    assert f"{float(payload['state_dict']['f_ref'])}" in best.tags["normalization"]
    assert float(best.tags["val_rel_l2"]) == pytest.approx(pre_run.data.metrics["val_rel_l2"])
    assert best.tags["pretraining_run_id"] == best.run_id and "test_rel_l2" in best.tags

    ft = _cli("finetune", "--data", small_datasets["down"], "--checkpoint", f"models:/{name}@best", "--n-train", "16",
              "--epochs", "1", "--out", str(tmp_path / "ft"), env=env, cwd=tmp_path)
    assert ft.returncode == 0, ft.stderr[-3000:]
    assert ft.stdout.strip().splitlines()[-1].startswith("test_rel_l2=")
    runs = _client(mlflow_uri).search_runs([_client(mlflow_uri).get_experiment_by_name("train").experiment_id],
                                           filter_string="tags.recipe = 'finetune'")
    assert len(runs) == 1
    tags = runs[0].data.tags
    assert tags["pretrained_run_id"] == best.run_id == pre_run.info.run_id
    assert tags["pretrained_model_uri"] == f"models:/{name}@best"
    assert tags["pretrained_model_version"] == f"models:/{name}/1"
    # The fine-tuned model started from the registered file: its lineage names the pre-training data.
    ft_meta = torch.load(tmp_path / "ft" / "model.pt", weights_only=True)["meta"]
    assert ft_meta["pretrained_from"]["train"][0]["content_hash"] == manifest["content_hash"]
    # A fine-tune is not registered: only pre-trainings are foundation models.
    assert [m.name for m in _client(mlflow_uri).search_registered_models()] == [name]
