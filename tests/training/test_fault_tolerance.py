"""A DDP worker killed mid-run: Ray Train restarts it from the last checkpoint."""

import json
import os
import signal
import threading
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from sciml.data.ray_datasets import DataSource
from sciml.training.config import ModelConfig, ResourceConfig, TrainConfig
from sciml.training.runner import DataSelection, TrackingRequest, run_training

EPOCHS = 30


def _training_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "RayTrainWorker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _registered_checkpoint(snapshot) -> bool:
    try:
        return json.loads(snapshot.read_text()).get("latest_checkpoint_result") is not None
    except (OSError, ValueError):
        return False


@pytest.mark.timeout(600)
def test_killed_worker_resumes_and_finishes_the_same_epochs(small_datasets, new_mlflow_store, tmp_path):
    uri = new_mlflow_store(tmp_path)
    cfg = TrainConfig(recipe="scratch", model=ModelConfig(preset=None, width=12, modes=4), epochs=EPOCHS,
                      lr=3e-3, batch_size=16, n_train=256, seed=5)
    outcome = {}

    def train():
        outcome["run"] = run_training(
            cfg, DataSelection((DataSource(small_datasets["pre"]),)), ResourceConfig(workers=1, max_failures=2),
            str(tmp_path / "out"), name="killme", tracking=TrackingRequest("tests", "killme", uri=uri))

    thread = threading.Thread(target=train)
    thread.start()
    # The controller records a checkpoint in this snapshot once it has registered it;
    # a report it has not polled yet (RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, tests/conftest.py)
    # dies with the worker.
    snapshot = tmp_path / "out" / "ray_train" / "killme" / "checkpoint_manager_snapshot.json"
    deadline = time.time() + 240
    killed = None
    while time.time() < deadline and thread.is_alive():
        workers = _training_workers()
        if workers and _registered_checkpoint(snapshot):
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert not thread.is_alive()
    metrics = outcome["run"].metrics
    assert metrics["epochs"] == EPOCHS and metrics["done"]
    client = MlflowClient(uri)
    resumed = client.get_metric_history(outcome["run"].run_id, "resumed_from_epoch")
    assert len(resumed) == 1 and 1 <= resumed[0].value < EPOCHS
    steps = {m.step for m in client.get_metric_history(outcome["run"].run_id, "val_rel_l2")}
    assert steps == set(range(EPOCHS + 1))
    assert killed not in [p.pid for p in _training_workers()]
