"""The README's cluster command, run literally against a two-node local Ray cluster."""

import json
import os
import shlex
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
from mlflow.tracking import MlflowClient

from sciml.ray_env import LOOPBACK_ONLY_ENV

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)
# Exactly as README.md gives it; run from the repository root.
README_COMMAND = "ray job submit --working-dir . -- python sweeps/q1_data_scaling.py --profile smoke"
# Loopback addresses, but not 127.0.0.1: a node there listens on loopback only, so no
# other node can join it (Ray rewrites 127.0.0.1 in a joining node's --address to the
# machine's address). Ray binds the gRPC ports of these nodes on all interfaces; no
# `ray start` flag changes that.
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
# Where the driver and a task on each node import `sciml` from, under the same upload.
IMPORT_PROBE = """
import json, os
cwd = os.getcwd()  # before a node sharing the Ray temp dir unpacks the upload afresh under it
import ray, sciml
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as on_node
ray.init()
@ray.remote(num_cpus=1)
def where():
    import sciml
    return ray.get_runtime_context().get_node_id(), sciml.__file__
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
remote = ray.get([where.options(scheduling_strategy=on_node(n, soft=False)).remote() for n in nodes])
print("PROBE " + json.dumps({"cwd": cwd, "driver": sciml.__file__, "workers": [f for _, f in remote]}))
"""


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
def two_node_cluster(tmp_path):
    """Two `ray start` nodes on loopback, started the usual way on one machine: the project's venv first
    on PATH, the second node without --temp-dir (so it shares the head's, as `ray start` does by
    default), and no SCIML_STORAGE / MLFLOW_TRACKING_URI anywhere. HOME is a temporary folder, so the
    job's default storage (~/sciml) lands there."""
    # Short (Ray's socket paths have a length limit) and shared by both nodes: the second node's
    # runtime-env agent then unpacks a job's upload afresh into the folder the driver was started in,
    # deleting it under the driver (the failure of issue 9 item 0).
    temp_dir = tempfile.mkdtemp(prefix="r2n", dir="/tmp")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(home),
           "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    for name in ("RAY_ADDRESS", "SCIML_STORAGE", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    env.pop(LOOPBACK_ONLY_ENV, None)  # the test session's setting: Ray refuses to add a node under it
    port, dashboard = _free_port(), _free_port()

    def node_ports() -> list[str]:
        # Fixed default ports (agent 52365, metrics, ...) may be held by another Ray on
        # this machine, e.g. the test session's own; every node gets free ones.
        return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"]

    try:
        subprocess.run(["ray", "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", "--num-cpus=1",
                        "--include-dashboard=true", f"--dashboard-host={HEAD_IP}", f"--dashboard-port={dashboard}",
                        f"--ray-client-server-port={_free_port()}", f"--temp-dir={temp_dir}",
                        "--disable-usage-stats", *node_ports()],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run(["ray", "start", f"--address={HEAD_IP}:{port}", f"--node-ip-address={WORKER_IP}",
                        "--num-cpus=1", "--disable-usage-stats", *node_ports()],
                       env=env, check=True, capture_output=True, timeout=120)
        yield {"dashboard": f"http://{HEAD_IP}:{dashboard}", "gcs": f"{HEAD_IP}:{port}", "env": env,
               "storage": home / "sciml", "tracking_uri": f"sqlite:///{home}/sciml/mlruns.db"}
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


def _submit(argv: list[str], cluster: dict) -> subprocess.CompletedProcess:
    """`ray job submit` from the repository root, the cluster found through RAY_ADDRESS as a user exports it."""
    env = {**cluster["env"], "RAY_ADDRESS": cluster["dashboard"]}
    deadline = time.time() + 90
    while True:
        submit = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        # The head's dashboard agent takes a few seconds after `ray start` to accept jobs.
        if "No available agent" not in submit.stderr or time.time() > deadline:
            return submit
        time.sleep(2)


@pytest.mark.timeout(900)
def test_readme_ray_job_submit_runs_the_smoke_sweep_on_two_nodes(two_node_cluster):
    cluster, env = two_node_cluster, two_node_cluster["env"]
    assert README_COMMAND in (ROOT / "README.md").read_text(), "the README no longer gives this command"
    deadline = time.time() + 90
    while True:  # the second node registers with the head asynchronously
        status = subprocess.run(["ray", "status", f"--address={cluster['gcs']}"], env=env,
                                capture_output=True, text=True, timeout=60)
        if "/2.0 CPU" in status.stdout or time.time() > deadline:
            break
        time.sleep(1)
    assert "/2.0 CPU" in status.stdout, status.stdout

    submit = _submit(shlex.split(README_COMMAND), cluster)
    assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-2000:]
    assert "succeeded" in submit.stdout + submit.stderr
    # The job connected to this cluster (both nodes), not to an embedded Ray of its own.
    assert "'CPU': 2.0" in submit.stdout
    # The driver left the upload for the default storage (nothing in the environment names one) ...
    assert f"SCIML_STORAGE={cluster['storage']}" in submit.stdout, submit.stdout[-4000:]
    # ... so its results outlive the job's temporary working directory: under ~/sciml ...
    out = cluster["storage"] / "q1-smoke"
    table = pd.read_csv(out / "results.csv")
    assert set(table["recipe"]) == {"scratch", "finetune", "zeroshot"}
    assert (out / "fig3_data_scaling.png").exists()
    # ... and in the tracking store next to them.
    client = MlflowClient(cluster["tracking_uri"])
    experiment = client.get_experiment_by_name("q1-downstream-data-scaling")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert any(r.data.tags.get("kind") == "sweep" and r.info.status == "FINISHED" for r in runs)
    assert sum(r.data.tags.get("kind") != "sweep" for r in runs) >= len(table)

    # The project is installed (pip install -e) and uploaded: driver and both nodes' workers
    # import the uploaded copy, the code that was submitted.
    probe = _submit(["ray", "job", "submit", "--working-dir", ".", "--", "python", "-c", IMPORT_PROBE], cluster)
    assert probe.returncode == 0, probe.stdout[-3000:] + probe.stderr[-2000:]
    found = json.loads(next(line for line in probe.stdout.splitlines() if line.startswith("PROBE "))[6:])
    package = Path(found["cwd"]).name  # the upload is unpacked into _ray_pkg_<hash> on every node
    assert package.startswith("_ray_pkg_"), found
    assert len(found["workers"]) == 2, found
    for path in [found["driver"], *found["workers"]]:
        assert Path(path).parts[-3:] == (package, "sciml", "__init__.py"), found
