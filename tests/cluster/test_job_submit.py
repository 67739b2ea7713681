"""A two-node local Ray cluster runs the smoke Q1 sweep submitted with `ray job submit`."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"  # loopback, but not the 127.0.0.1 Ray rewrites


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(temp_dir: str) -> list[psutil.Process]:
    """Processes of the cluster under `temp_dir` and their descendants, nothing else."""
    roots = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(proc.info["cmdline"] or []):
                roots.append(proc)
        except psutil.Error:
            continue
    found = {p.pid: p for p in roots}
    for proc in roots:
        try:
            found.update({c.pid: c for c in proc.children(recursive=True)})
        except psutil.Error:
            continue
    return list(found.values())


@pytest.fixture
def two_node_cluster():
    temp_dir = tempfile.mkdtemp(prefix="r2n", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    port, dashboard = _free_port(), _free_port()

    def node_ports() -> list[str]:
        # Fixed default ports (agent 52365, metrics, ...) may be held by another Ray on
        # this machine, e.g. the test session's own; every node gets free ones.
        return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"]

    try:
        subprocess.run([RAY, "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=1",
                        "--include-dashboard=true", f"--dashboard-host={HEAD_IP}", f"--dashboard-port={dashboard}",
                        f"--ray-client-server-port={_free_port()}", f"--temp-dir={temp_dir}",
                        "--disable-usage-stats", *node_ports()],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([RAY, "start", f"--address={HEAD_IP}:{port}", f"--node-ip-address={WORKER_IP}",
                        "--num-cpus=1", "--disable-usage-stats", *node_ports()],
                       env=env, check=True, capture_output=True, timeout=120)
        yield {"address": f"http://{HEAD_IP}:{dashboard}", "gcs": f"{HEAD_IP}:{port}", "env": env}
    finally:
        procs = _ours(temp_dir)
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=15)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_the_smoke_sweep_on_two_nodes(two_node_cluster, tmp_path):
    env = two_node_cluster["env"]
    deadline = time.time() + 90
    while True:  # the second node registers with the head asynchronously
        status = subprocess.run([RAY, "status", f"--address={two_node_cluster['gcs']}"], env=env,
                                capture_output=True, text=True, timeout=60)
        if "/2.0 CPU" in status.stdout or time.time() > deadline:
            break
        time.sleep(1)
    assert "/2.0 CPU" in status.stdout, status.stdout
    runtime_env = ('{"env_vars": {"MLFLOW_TRACKING_URI": "sqlite:///%s/mlruns.db", "RAY_AUTH_MODE": "disabled"}}'
                   % tmp_path)
    command = [RAY, "job", "submit", "--address", two_node_cluster["address"], "--submission-id", "q1-smoke",
               "--runtime-env-json", runtime_env, "--",
               sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke",
               "--systems", "poisson", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    deadline = time.time() + 90
    while True:
        submit = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        # The head's dashboard agent takes a few seconds after `ray start` to accept jobs.
        if "No available agent" not in submit.stderr or time.time() > deadline:
            break
        time.sleep(2)
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-2000:]
    job = subprocess.run([RAY, "job", "status", "--address", two_node_cluster["address"], "q1-smoke"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert "q1-smoke' succeeded" in job.stdout + job.stderr
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(table["recipe"]) == {"scratch", "finetune", "zeroshot"}
    assert (tmp_path / "out" / "fig3_data_scaling.png").exists()
    # The job connected to this cluster (both nodes), not to an embedded Ray of its own.
    assert "'CPU': 2.0" in submit.stdout
