"""Training runs on Ray Train: learning, fine-tuning from saved weights, DDP, evaluation."""

import math

import pytest
import torch
from mlflow.tracking import MlflowClient

from sciml.data.ray_datasets import DataSource
from sciml.training.checkpoint import load_model
from sciml.training.config import ModelConfig, ResourceConfig, TrainConfig
from sciml.training.runner import DataSelection, TrackingRequest, run_training

MODEL = ModelConfig(preset=None, width=12, modes=4)


def _run(cfg, data_dir, out, resources=ResourceConfig(), name="run", uri=None, tags=None):
    tracking = TrackingRequest(experiment="tests", run_name=name, uri=uri, tags=tags or {}) if uri else None
    return run_training(cfg, DataSelection((DataSource(data_dir),)), resources, str(out), name=name,
                        tracking=tracking)


@pytest.fixture(scope="module")
def pretrained(small_datasets, new_mlflow_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    uri = new_mlflow_store(out)
    cfg = TrainConfig(recipe="pretrain", model=MODEL, epochs=12, lr=3e-3, batch_size=16, seed=0)
    outcome = _run(cfg, small_datasets["pre"], out, name="pre", uri=uri)
    return outcome, uri


def test_pretraining_learns_far_below_the_zero_predictor(pretrained):
    outcome, uri = pretrained
    assert outcome.metrics["epochs"] == 12
    assert outcome.metrics["val_rel_l2"] < 0.35  # a zero prediction scores 1.0
    assert outcome.metrics["test_rel_l2"] < 0.35
    history = MlflowClient(uri).get_metric_history(outcome.run_id, "val_rel_l2")
    assert [m.step for m in history] == list(range(13))  # epoch 0 = the initial weights
    assert history[-1].value < history[0].value / 2
    run = MlflowClient(uri).get_run(outcome.run_id)
    assert run.data.params["recipe"] == "pretrain" and int(run.data.params["n_params"]) > 0
    assert "SYS-1(1,5)" in run.data.params["train_data"]
    assert run.data.metrics["test_rel_l2"] == pytest.approx(outcome.metrics["test_rel_l2"])
    assert run.info.status == "FINISHED"


def test_model_file_loads_weights_only_with_statistics(pretrained, small_datasets):
    from sciml.data.manifest import load_manifest

    outcome, _ = pretrained
    payload = torch.load(outcome.model_path, weights_only=True)
    assert payload["hparams"] == {"preset": None, "width": 12, "modes": 4, "layers": 4}
    model, _ = load_model(outcome.model_path)
    stats = load_manifest(small_datasets["pre"])["normalization"]
    # Statistics of the full pre-training split (the manifest computes the same medians).
    assert float(model.f_ref) == pytest.approx(stats["f_ref"], rel=1e-6)
    assert model.c_ref.tolist() == pytest.approx(stats["c_ref"], rel=1e-6)


def test_finetuning_starts_from_exactly_the_saved_weights(pretrained, small_datasets, tmp_path):
    outcome, uri = pretrained
    zero = _run(TrainConfig(recipe="evaluate", model=MODEL, epochs=0, init_checkpoint=outcome.model_path),
                small_datasets["down"], tmp_path / "zs", name="zs", uri=uri)
    ft = _run(TrainConfig(recipe="finetune", model=MODEL, epochs=3, lr=1e-3, batch_size=8, n_train=16,
                          init_checkpoint=outcome.model_path), small_datasets["down"], tmp_path / "ft",
              name="ft", uri=uri)
    client = MlflowClient(uri)
    start = client.get_metric_history(ft.run_id, "val_rel_l2")[0]
    assert start.step == 0 and start.value == zero.metrics["val_rel_l2"]
    pre_model, _ = load_model(outcome.model_path)
    tuned, payload = load_model(ft.model_path)
    # The downstream data has other statistics; the pre-trained ones are kept unchanged.
    assert torch.equal(tuned.f_ref, pre_model.f_ref) and torch.equal(tuned.c_ref, pre_model.c_ref)
    assert payload["meta"]["pretrained_from"]["train"][0]["name"] == "SYS-1(1,5)"
    assert ft.metrics["n_train"] == 16
    assert ft.metrics["val_rel_l2"] <= zero.metrics["val_rel_l2"]  # best-by-validation includes epoch 0


def test_min_steps_stretch_small_downstream_runs(pretrained, small_datasets, tmp_path):
    outcome, _ = pretrained
    ft = _run(TrainConfig(recipe="finetune", model=MODEL, epochs=2, lr=1e-3, batch_size=8, n_train=8,
                          min_steps=5, init_checkpoint=outcome.model_path), small_datasets["down"], tmp_path)
    assert ft.metrics["epochs"] == 5  # one step per epoch with 8 examples in batches of 8


@pytest.mark.timeout(600)
def test_two_workers_follow_the_same_loss_curve_as_one(small_datasets, new_mlflow_store, tmp_path):
    cfg = TrainConfig(recipe="scratch", model=MODEL, epochs=4, lr=3e-3, batch_size=16, n_train=128, seed=3)
    uri = new_mlflow_store(tmp_path)
    curves = {}
    for workers in (1, 2):
        outcome = _run(cfg, small_datasets["pre"], tmp_path / f"w{workers}", ResourceConfig(workers=workers),
                       name=f"w{workers}", uri=uri)
        history = MlflowClient(uri).get_metric_history(outcome.run_id, "train_loss")
        curves[workers] = [m.value for m in sorted(history, key=lambda m: m.step)]
        assert outcome.metrics["epochs"] == 4
    for curve in curves.values():
        assert curve[-1] < curve[0]
    # DDP averages gradients over the same global batch: the curves agree closely.
    for one, two in zip(curves[1], curves[2]):
        assert math.isclose(one, two, rel_tol=0.35)


@pytest.mark.timeout(600)
def test_a_race_with_two_ddp_workers_stops_the_same_learning_rates_as_local_mode(small_datasets, new_mlflow_store,
                                                                                  tmp_path):
    from sciml.training.config import RaceConfig

    cfg = TrainConfig(recipe="scratch", model=MODEL, epochs=3, lr=1e-3, batch_size=16, n_train=64, seed=5)
    race = RaceConfig((1e-4, 3e-3, 3e-2), grace_period=1)
    uri = new_mlflow_store(tmp_path)
    outcomes = {}
    for workers in (0, 2):
        tracking = [TrackingRequest(experiment="tests", run_name=f"w{workers}-lr{lr:g}", uri=uri, tags={"lr": lr})
                    for lr in race.lrs]
        outcomes[workers] = run_training(cfg, DataSelection((DataSource(small_datasets["pre"]),)),
                                         ResourceConfig(workers=workers), str(tmp_path / f"w{workers}"),
                                         name=f"race{workers}", tracking=tracking, race=race)
    client = MlflowClient(uri)
    for outcome in outcomes.values():
        candidates = outcome.metrics["race"]
        assert [c["lr"] for c in candidates] == list(race.lrs)
        assert sorted(c["epochs_run"] for c in candidates) == [1, 1, 3]  # one of three goes on after validation 1
        (winner,) = [c for c in candidates if c["winner"]]
        assert not winner["stopped_early"] and outcome.metrics["test_rel_l2"] == winner["test_rel_l2"]
        assert load_model(outcome.model_path)[1]["meta"]["lr"] == winner["lr"]
        for c in candidates:
            run = client.get_run(c["mlflow_run_id"])
            assert run.info.status == "FINISHED" and run.data.tags["stopped_early"] == str(c["stopped_early"])
        assert outcome.run_id == winner["mlflow_run_id"]
    # Every DDP worker made the decisions local mode made (all-reduced validation errors).
    local, ddp = ([c["winner"] for c in outcomes[w].metrics["race"]] for w in (0, 2))
    assert local == ddp
    for one, two in zip(outcomes[0].metrics["race"], outcomes[2].metrics["race"]):
        assert math.isclose(one["val_rel_l2"], two["val_rel_l2"], rel_tol=0.1)
