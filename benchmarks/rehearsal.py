"""The rehearsal: a sweep at the rehearsal profile on a 3-node loopback Ray cluster, one node lost.

What it does (docs/cluster.md, "Rehearsal"), all on this machine and all under --work:
  1. an MLflow server (sqlite store, proxied artifacts), in its own process group;
  2. a Ray head and two worker nodes, each `ray start --block` with its own --temp-dir,
     ports, loopback address and process group, so one node can be stopped alone
     (`ray stop` would stop every Ray on the machine, other users' included);
  3. `ray job submit --working-dir . -- python sweeps/<question>.py --profile rehearsal ...`
     with SCIML_STORAGE, MLFLOW_TRACKING_URI and SCIML_MATERIALIZE_LIMIT_BYTES set on every
     node (the limit below the pre-training split, so the large-dataset path runs);
  4. once --kill-after downstream trials have finished, the second worker node is stopped
     (SIGTERM to its process group: its raylet and every worker on it end);
  5. after the job: the job's status, `python -m data_gen verify` on every dataset, MLflow
     (no run left RUNNING, no finished trial run twice), Tune's state (trials, retries);
  6. wall time per stage (from the driver's log lines), peak RSS per process (sampled from
     /proc every second), what the node loss cost; all in <work>/rehearsal.json.

Run from the repository root (the job uploads it), with the project's venv:
  nice -n 19 .venv/bin/python benchmarks/rehearsal.py --work /tmp/sciml-rehearsal
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)
# Not 127.0.0.1: a node there listens on loopback only and no other node can join it
# (tests/cluster/test_job_submit.py).
HEAD_IP, WORKER_IPS = "127.0.0.2", ("127.0.0.3", "127.0.0.4")
SCRIPTS = {"q1": "sweeps/q1_data_scaling.py", "q2": "sweeps/q2_model_scaling.py",
           "q3": "sweeps/q3_physics_shift.py", "q4": "sweeps/q4_multi_operator.py"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    return [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}"]


class Sampler(threading.Thread):
    """Peak RSS of every process under the given roots, sampled each second."""

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.roots: dict[str, psutil.Process] = {}
        self.peaks: dict[int, dict] = {}
        self.total_peak = 0
        self.interval = interval
        self.stopped = threading.Event()

    def add(self, role: str, pid: int) -> None:
        self.roots[role] = psutil.Process(pid)

    def run(self) -> None:
        while not self.stopped.is_set():
            total = 0
            for role, root in list(self.roots.items()):
                try:
                    procs = [root] + root.children(recursive=True)
                except psutil.Error:
                    continue
                for proc in procs:
                    try:
                        rss = proc.memory_info().rss
                        name = " ".join(proc.cmdline())[:90] or proc.name()
                    except psutil.Error:
                        continue
                    total += rss
                    entry = self.peaks.setdefault(proc.pid, {"role": role, "pid": proc.pid, "cmd": name, "peak": 0})
                    if rss > entry["peak"]:
                        entry.update(peak=rss, cmd=name)
            self.total_peak = max(self.total_peak, total)
            self.stopped.wait(self.interval)


def start_group(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A process in its own session (process group), so it and its children can be stopped together."""
    return subprocess.Popen(argv, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the group (a node's `ray start --block` stops its raylet and workers), then SIGKILL."""
    try:
        members = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        members = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(members, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def wait_for(predicate, timeout: float, what: str, step: float = 2.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/tmp/sciml-rehearsal", help="everything goes here (deleted first)")
    p.add_argument("--question", choices=sorted(SCRIPTS), default="q1")
    p.add_argument("--sweep-args", default="--systems poisson", help="extra sweep flags after --profile rehearsal")
    p.add_argument("--cpus-per-node", type=int, default=1)
    p.add_argument("--object-store-mb", type=int, default=400, help="per node")
    p.add_argument("--limit-bytes", type=int, default=64 * 1024**2,
                   help="SCIML_MATERIALIZE_LIMIT_BYTES (below the 256 MiB pre-training split: it streams)")
    p.add_argument("--kill-after", type=int, default=1,
                   help="stop the second worker node once this many downstream trials finished (0: never)")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    storage, logs = work / "storage", work / "logs"
    storage.mkdir()
    logs.mkdir()
    # Short temp dirs: Ray's socket paths have a length limit.
    stamp = str(os.getpid())
    temp_dirs = {"head": f"/tmp/rh{stamp}h", "worker1": f"/tmp/rh{stamp}a", "worker2": f"/tmp/rh{stamp}b"}
    mlflow_port, gcs_port, dashboard_port = free_port(), free_port(), free_port()
    tracking_uri = f"http://127.0.0.1:{mlflow_port}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""), "SCIML_STORAGE": str(storage),
           "MLFLOW_TRACKING_URI": tracking_uri, "SCIML_MATERIALIZE_LIMIT_BYTES": str(args.limit_bytes),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    for name in ("RAY_ADDRESS", "SCIML_RAY_LOOPBACK_ONLY"):
        env.pop(name, None)

    sampler = Sampler()
    groups: dict[str, subprocess.Popen] = {}
    record: dict = {"command": " ".join(sys.argv), "work": str(work), "question": args.question,
                    "sweep_args": args.sweep_args, "limit_bytes": args.limit_bytes,
                    "nodes": {"head": HEAD_IP, "worker1": WORKER_IPS[0], "worker2": WORKER_IPS[1],
                              "cpus_each": args.cpus_per_node, "object_store_mb_each": args.object_store_mb}}
    events: list[tuple[float, str]] = []
    t0 = time.time()

    def event(what: str) -> None:
        events.append((time.time() - t0, what))
        print(f"[rehearsal {time.time() - t0:7.1f} s] {what}", flush=True)

    try:
        groups["mlflow"] = start_group(
            ["mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{work}/mlflow.db", "--artifacts-destination", str(work / "mlartifacts")],
            env, logs / "mlflow.log")
        sampler.add("mlflow", groups["mlflow"].pid)
        sampler.start()
        ray_common = [f"--num-cpus={args.cpus_per_node}", f"--object-store-memory={args.object_store_mb * 1024**2}",
                      "--disable-usage-stats", "--block"]
        groups["head"] = start_group(
            ["ray", "start", "--head", f"--node-ip-address={HEAD_IP}", f"--port={gcs_port}",
             "--include-dashboard=true", f"--dashboard-host={HEAD_IP}", f"--dashboard-port={dashboard_port}",
             f"--ray-client-server-port={free_port()}", f"--temp-dir={temp_dirs['head']}", *node_ports(),
             *ray_common], env, logs / "head.log")
        sampler.add("head", groups["head"].pid)
        wait_for(lambda: subprocess.run(["ray", "status", f"--address={HEAD_IP}:{gcs_port}"], env=env,
                                        capture_output=True, timeout=60).returncode == 0, 180, "the head node")
        for node, ip in zip(("worker1", "worker2"), WORKER_IPS):
            groups[node] = start_group(
                ["ray", "start", f"--address={HEAD_IP}:{gcs_port}", f"--node-ip-address={ip}",
                 f"--temp-dir={temp_dirs[node]}", *node_ports(), *ray_common], env, logs / f"{node}.log")
            sampler.add(node, groups[node].pid)
        cpus = 3 * args.cpus_per_node

        def status_has_all() -> bool:
            out = subprocess.run(["ray", "status", f"--address={HEAD_IP}:{gcs_port}"], env=env,
                                 capture_output=True, text=True, timeout=60).stdout
            return f"/{cpus}.0 CPU" in out

        wait_for(status_has_all, 180, f"three nodes ({cpus} CPUs)")
        wait_for(lambda: _mlflow_up(tracking_uri), 120, "the MLflow server")
        event(f"cluster up: 3 nodes, {cpus} CPUs; MLflow at {tracking_uri}")

        submit_env = {**env, "RAY_ADDRESS": f"http://{HEAD_IP}:{dashboard_port}"}
        command = ["ray", "job", "submit", "--working-dir", ".", "--", "python", SCRIPTS[args.question],
                   "--profile", "rehearsal", *args.sweep_args.split()]
        record["job_command"] = " ".join(command)
        job_log = open(logs / "job.log", "w")
        job = subprocess.Popen(command, cwd=ROOT, env=submit_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
        groups["job-submit"] = job
        event("job submitted")
        downstream_done, killed_at = 0, None
        stage_marks = [("datasets ready", re.compile(r"\[sweep\] datasets: ")),
                       ("pre-training started", re.compile(r"\[sweep\] pretrain-\w+: \d+ trials")),
                       ("pre-training done", re.compile(r"\[sweep\] pre-trained ")),
                       ("downstream started", re.compile(r"\[sweep\] downstream-\w+: \d+ trials")),
                       ("sweep finished", re.compile(r"^Files:"))]
        deadline = time.time() + args.timeout
        for line in job.stdout:
            job_log.write(line)
            job_log.flush()
            for label, pattern in stage_marks:
                if pattern.search(line) and label not in {e for _, e in events}:
                    event(label)
            for marker in ("marked KILLED", "trial failed", "resuming", "streamed through Ray Data",
                           "materialised up front", "registered models:/"):
                if marker in line:
                    event(line.strip()[:200])
            if re.search(r"\[sweep\] downstream-\w+ \d+/\d+ ", line):
                downstream_done += 1
                if killed_at is None and args.kill_after and downstream_done >= args.kill_after:
                    event(f"stopping worker2 ({WORKER_IPS[1]}) after {downstream_done} downstream trials")
                    stop_group(groups["worker2"])
                    killed_at = time.time()
                    event("worker2 stopped")
            if time.time() > deadline:
                event("timeout: stopping the job")
                stop_group(job)
                break
        job.wait()
        event(f"job ended: exit {job.returncode}")
        record["job_exit"] = job.returncode
        record["worker2_stopped_at_s"] = None if killed_at is None else round(killed_at - t0, 1)
        record["checks"] = checks(work, storage, tracking_uri, env, killed_at)
    finally:
        sampler.stopped.set()
        for name in ("job-submit", "worker2", "worker1", "head", "mlflow"):
            if name in groups:
                stop_group(groups[name])
        for d in temp_dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        record["events"] = [{"t_s": round(t, 1), "event": e} for t, e in events]
        at = {e: t for t, e in events}
        spans = {"cluster start": ("cluster up", None), "data generation": ("datasets ready", "job submitted"),
                 "pre-training": ("pre-training done", "pre-training started"),
                 "downstream (incl. report)": ("sweep finished", "downstream started")}
        record["stage_s"] = {name: round(at[end] - (at[start] if start else 0), 1) for name, (end, start) in
                             spans.items() if end in at and (start is None or start in at)}
        record["wall_s"] = round(time.time() - t0, 1)
        peaks = sorted(sampler.peaks.values(), key=lambda e: -e["peak"])
        record["peak_rss_total_mb"] = round(sampler.total_peak / 1024**2)
        record["peak_rss_mb"] = [{**e, "peak": round(e["peak"] / 1024**2)} for e in peaks[:25]]
        kinds: dict[str, int] = {}
        for e in peaks:  # the largest process of each kind
            kind = next((k for k in ("ImplicitFunc", "q1_data", "q2_model", "q3_physics", "q4_multi", "raylet",
                                     "gcs_server", "mlflow", "ReadParquet", "IDLE", "dashboard") if k in e["cmd"]),
                        "other")
            kinds[kind] = max(kinds.get(kind, 0), round(e["peak"] / 1024**2))
        record["peak_rss_mb_by_kind"] = kinds
        (work / "rehearsal.json").write_text(json.dumps(record, indent=1))
        print(json.dumps({k: v for k, v in record.items() if k != "peak_rss_mb"}, indent=1))
        print("peak RSS (MB), top 12:")
        for e in record["peak_rss_mb"][:12]:
            print(f"  {e['peak']:6d}  {e['role']:8s} {e['cmd']}")
    return 0 if record.get("job_exit") == 0 and record.get("checks", {}).get("ok") else 1


def _mlflow_up(uri: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def checks(work: Path, storage: Path, uri: str, env: dict, killed_at: float | None) -> dict:
    """After the job: data intact, MLflow closed, no finished trial redone; Tune's view of retries."""
    from mlflow.tracking import MlflowClient

    out: dict = {}
    data_dirs = sorted(glob.glob(str(storage / "cache" / "data" / "*")))
    verify = subprocess.run([sys.executable, "-m", "data_gen", "verify", *data_dirs], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    out["data_verify"] = {"exit": verify.returncode, "datasets": len(data_dirs), "output": verify.stdout[-1500:]}
    client = MlflowClient(uri)
    runs = []
    for exp in client.search_experiments():
        runs += client.search_runs([exp.experiment_id], max_results=10000)
    by_status: dict[str, int] = {}
    for r in runs:
        by_status[r.info.status] = by_status.get(r.info.status, 0) + 1
    finished_names: dict[str, int] = {}
    for r in runs:
        if r.info.status == "FINISHED" and r.data.tags.get("kind") != "sweep":
            finished_names[r.info.run_name] = finished_names.get(r.info.run_name, 0) + 1
    # Work lost with the node: from a killed run's start to the node's stop (its end time is when
    # the sweep closed it, after the Tune run).
    killed = [{"run": r.info.run_name, "orphaned": "orphaned" in r.data.tags,
               "seconds_lost": round(killed_at - r.info.start_time / 1000, 1) if killed_at else None}
              for r in runs if r.info.status == "KILLED"]
    out["mlflow"] = {"runs_by_status": by_status, "running": by_status.get("RUNNING", 0),
                     "finished_twice": sorted(n for n, c in finished_names.items() if c > 1), "killed": killed,
                     "streamed_tags": sorted({r.data.tags.get("datasets", "") for r in runs
                                              if r.data.tags.get("kind") != "sweep"}),
                     "registered_models": [m.name for m in client.search_registered_models()]}
    tune = {}
    for state in sorted(glob.glob(str(storage / "ray" / "*" / "*" / "experiment_state-*.json"))):
        pairs = [(json.loads(t), json.loads(m)) for t, m in json.loads(Path(state).read_text())["trial_data"]]
        statuses: dict[str, int] = {}
        for t, _ in pairs:
            statuses[t["status"]] = statuses.get(t["status"], 0) + 1
        tune[Path(state).parent.name] = {
            "trials": len(pairs), "by_status": statuses,
            "retried": sorted(t.get("custom_dirname", "?") for t, m in pairs if m.get("num_failures", 0))}
    out["tune"] = tune
    out["ok"] = (verify.returncode == 0 and out["mlflow"]["running"] == 0 and not out["mlflow"]["finished_twice"]
                 and all(v["by_status"].keys() <= {"TERMINATED"} for v in tune.values()))
    return out


if __name__ == "__main__":
    sys.exit(main())
