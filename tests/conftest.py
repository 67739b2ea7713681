"""Shared fixtures: one local Ray on loopback for the whole session, small datasets."""

import os
from pathlib import Path

import pytest

from sciml.ray_env import LOOPBACK_ONLY_ENV, start_or_connect

# Before Ray is imported anywhere (test modules import it at collection): no usage
# reporting, no token auth, and Ray nodes on 127.0.0.1 listening on loopback only.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ[LOOPBACK_ONLY_ENV] = "0"
# Ray Train's controller polls its workers every 2 s, and a worker's report waits for the
# poll (a queue of one): every DDP epoch took >= 2 s and a run's end 2-6 s more. Polled
# 10x as often the tests' DDP runs do the same work; every Ray the tests start (the
# session's, `ray start` nodes, a sweep's embedded one) inherits this environment.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for every test; library calls reuse it, subprocesses join it by address."""
    ray = pytest.importorskip("ray")
    started = start_or_connect(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def _dataset(root, name, n_train, resolution=16, n_val=32, n_test=32, seed=7):
    from data_gen import GenerationRequest, generate_dataset
    from sciml.physics import SystemSpec

    request = GenerationRequest(spec=SystemSpec.parse(name), n_train=n_train, n_val=n_val, n_test=n_test,
                                resolution=resolution, seed=seed, shard_size=64)
    directory = root / name.replace("(", "_").replace(")", "").replace(",", "_")
    generate_dataset(request, directory, progress=False)
    return str(directory)


@pytest.fixture(scope="session")
def small_datasets(ray_address, tmp_path_factory):
    """A pre-training set SYS-1(1,5) and a shifted downstream set SYS-1(5,10) at 16^2."""
    root = tmp_path_factory.mktemp("datasets")
    return {"pre": _dataset(root, "SYS-1(1,5)", 256, seed=1), "down": _dataset(root, "SYS-1(5,10)", 64, seed=2),
            "adv": _dataset(root, "SYS-2(0.2,1)", 64, seed=3)}


@pytest.fixture(scope="session")
def new_mlflow_store(tmp_path_factory):
    """`new_mlflow_store(directory)`: the URI of a new, empty sqlite MLflow store in `directory`.

    A copy of one made once per session: creating a store runs MLflow's schema migrations
    (about 130 alembic scripts, 2-6 s on a 2-core machine) each time.
    """
    import shutil

    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlruns.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # creates the tables

    def new_store(directory, name="mlruns.db") -> str:
        path = Path(directory) / name
        assert not path.exists(), f"{path} exists already"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return new_store


@pytest.fixture
def mlflow_uri(new_mlflow_store, tmp_path, monkeypatch):
    """A private sqlite MLflow store per test."""
    uri = new_mlflow_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
