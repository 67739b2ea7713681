"""sciml.ray_env: Ray is started in one place, and an embedded Ray listens on loopback only."""

import ipaddress
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from sciml.ray_env import JOB_ENV, LOOPBACK_ONLY_ENV, settle_job_outputs, start_or_connect

ROOT = Path(__file__).resolve().parents[1]


def test_start_or_connect_reports_only_what_it_started(ray_address):
    import ray

    assert ray.is_initialized()
    assert start_or_connect() is False  # the session's Ray: not this call's to shut down


@pytest.fixture
def job_upload(tmp_path, monkeypatch):
    """A submitted job's driver standing in its unpacked upload, with HOME and the environment private."""
    upload = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_0123"
    upload.mkdir(parents=True)
    monkeypatch.chdir(upload)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(JOB_ENV, "{}")
    for name in ("SCIML_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    return upload


def test_a_job_leaves_its_upload_for_the_default_storage(job_upload, tmp_path, capsys):
    home = tmp_path / "home"
    assert settle_job_outputs() == str(home / "sciml")
    assert os.getcwd() == str(home / "sciml")
    assert os.environ["SCIML_STORAGE"] == str(home / "sciml")
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{home}/sciml/mlruns.db"
    assert "SCIML_STORAGE=" in capsys.readouterr().err
    # Ray deleting the upload now leaves the driver standing somewhere that exists.
    job_upload.rmdir()
    assert os.path.abspath("runs") == str(home / "sciml" / "runs")


def test_a_job_keeps_the_storage_its_environment_names(job_upload, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIML_STORAGE", str(tmp_path / "shared"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert settle_job_outputs() == str(tmp_path / "shared")
    assert os.getcwd() == str(tmp_path / "shared")
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert capsys.readouterr().err == ""


def test_outside_a_job_upload_nothing_moves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCIML_STORAGE", raising=False)
    monkeypatch.setenv(JOB_ENV, "{}")  # a job submitted without --working-dir
    assert settle_job_outputs() is None
    monkeypatch.delenv(JOB_ENV)  # not a job at all
    assert settle_job_outputs() is None
    assert os.getcwd() == str(tmp_path) and "SCIML_STORAGE" not in os.environ


def test_ray_is_started_only_through_ray_env():
    calls = [f"{path.relative_to(ROOT)}:{number}"
             for folder in ("sciml", "data_gen", "sweeps", "benchmarks") for path in (ROOT / folder).rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bray\.init\(", line) and path.name != "ray_env.py"]
    assert not calls, f"ray.init outside sciml/ray_env.py: {calls}"


def _listening(tree: list[psutil.Process]) -> dict[tuple[str, int], str]:
    found = {}
    for proc in tree:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found[(conn.laddr.ip, conn.laddr.port)] = proc.name()
        except psutil.Error:
            continue
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1
    return address.is_loopback  # False for the wildcards 0.0.0.0 and ::


@pytest.mark.timeout(900)
def test_embedded_sweep_listens_on_loopback_only(new_mlflow_store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": new_mlflow_store(tmp_path)}
    for name in ("RAY_ADDRESS", LOOPBACK_ONLY_ENV):  # its own embedded Ray, set up by the product code alone
        env.pop(name, None)
    command = [sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke",
               "--systems", "poisson", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    log = tmp_path / "sweep.log"
    with open(log, "w") as sink:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    root = psutil.Process(sweep.pid)
    seen: dict[tuple[str, int], str] = {}
    deadline = time.time() + 800
    try:
        while sweep.poll() is None and time.time() < deadline:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            seen.update(_listening(tree))  # Ray's GCS, raylet, agents, workers (all descendants)
            time.sleep(1)
        sweep.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait(timeout=30)
    assert sweep.returncode == 0, log.read_text()[-4000:]
    assert set(pd.read_csv(tmp_path / "out" / "results.csv")["recipe"]) == {"scratch", "finetune", "zeroshot"}
    names = set(seen.values())
    assert {"gcs_server", "raylet"} <= names and len(seen) >= 10, seen  # the sampling saw the cluster
    exposed = {f"{ip}:{port}": name for (ip, port), name in seen.items() if not _loopback(ip)}
    assert not exposed, f"listening beyond loopback: {exposed}"
