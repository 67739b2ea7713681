"""Starting or connecting Ray, for every entry point: an existing cluster when an address is
given, else an embedded one on loopback only.

The driver passes no runtime_env of its own: under ``ray job submit`` Ray would merge it into
the job's and refuse any key both set, and the job should run in the environment it was
submitted with. Ray Train copies the driver's DataContext to its workers, which keeps their
Ray Data progress bars off without one.
"""

from __future__ import annotations

import os
import sys

_EMBEDDED = False  # True while this process runs its own embedded (non-autoscaling) Ray

# Ray binds a node's ports (GCS, raylet, object manager, workers, agents, metrics) to
# loopback only when the node's address is 127.0.0.1. On Linux it replaces 127.0.0.1 by
# the machine's address unless this variable is 0, as on macOS and Windows. Ray reads it
# once, when `ray` is first imported (also in the processes the embedded Ray starts).
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Set by Ray's job supervisor in the environment of a submitted job's driver.
JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def start_or_connect(address: str | None = None, num_cpus: int | None = None, quiet: bool = True) -> bool:
    """Initialise Ray in this process unless it already is; True when this call did.

    With `address` (or RAY_ADDRESS, as under `ray job submit`) connect to that cluster;
    otherwise start an embedded Ray that listens on 127.0.0.1 only (token-authenticated,
    Ray's default). A caller that got True shuts Ray down when it is done with it.
    """
    global _EMBEDDED
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        os.environ[LOOPBACK_ONLY_ENV] = "0"
    import ray

    if ray.is_initialized():
        return False
    # No runtime_env: see the module docstring.
    kwargs = {"log_to_driver": not quiet, "configure_logging": True, "logging_level": "WARNING"}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
        node_ip = ray.util.get_node_ip_address()
        if node_ip != "127.0.0.1":  # ray was imported before this function set the variable
            print(f"[ray] warning: the embedded Ray listens on {node_ip}, not on loopback only; set "
                  f"{LOOPBACK_ONLY_ENV}=0 before importing ray to keep it local", file=sys.stderr)
    _EMBEDDED = not address
    _quiet_ray_data(quiet)
    return True


def ensure_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True) -> dict:
    """Initialise Ray once per process (see start_or_connect); returns the cluster's resources."""
    start_or_connect(address, num_cpus, quiet)
    import ray

    return ray.cluster_resources()


def _quiet_ray_data(quiet: bool) -> None:
    import logging

    import ray.data

    # Ray Data's per-read progress bars and INFO lines drown the training progress; Ray
    # Train workers get this DataContext from the driver.
    ray.data.DataContext.get_current().enable_progress_bars = False
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)


# Where a submitted job's driver keeps its outputs when the environment names no storage.
JOB_STORAGE_DEFAULT = "~/sciml"
_UPLOAD_MARK = os.sep + os.path.join("runtime_resources", "working_dir_files") + os.sep


def settle_job_outputs() -> str | None:
    """Under `ray job submit --working-dir`, keep the driver and its outputs out of the upload.

    The driver starts in the node's unpacked copy of the upload, which Ray owns: it deletes it
    after the job, and a second node sharing the machine's Ray temp dir (two `ray start` on one
    machine without --temp-dir) deletes and unpacks it again while the job runs, taking the
    driver's working directory with it. So, before anything resolves a relative path: outputs
    go to SCIML_STORAGE (default ~/sciml, which only a single-machine cluster shares: a
    multi-node cluster needs shared storage there), MLflow to MLFLOW_TRACKING_URI (default a
    sqlite file in that folder), and the driver works from that folder. Entry points call this
    first; it does nothing outside a job's upload. Returns the folder it moved to, if any.
    """
    if JOB_ENV not in os.environ:
        return None
    try:
        cwd = os.getcwd()
    except FileNotFoundError:  # already gone: the job started in the upload, so settle anyway
        cwd = os.environ.get("PWD", _UPLOAD_MARK)
    if _UPLOAD_MARK not in cwd + os.sep:
        return None
    storage = os.path.abspath(os.path.expanduser(os.environ.get("SCIML_STORAGE") or JOB_STORAGE_DEFAULT))
    defaults = {"SCIML_STORAGE": storage, "MLFLOW_TRACKING_URI": f"sqlite:///{storage}/mlruns.db"}
    chosen = {name: value for name, value in defaults.items() if not os.environ.get(name)}
    os.environ.update(chosen)
    os.makedirs(storage, exist_ok=True)
    os.chdir(storage)
    if chosen:
        print("[ray] this job runs from its uploaded --working-dir, which Ray deletes: "
              + ", ".join(f"{name}={value}" for name, value in chosen.items())
              + " (set them on every node for shared storage on a multi-node cluster: docs/cluster.md)",
              file=sys.stderr, flush=True)
    return storage


class ClusterTooSmall(ValueError):
    """Training processes that no node of the embedded (non-autoscaling) Ray can host."""


def node_resources() -> list[dict[str, float]]:
    """Each alive node's total resources."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def require_fit(need: dict[str, float], count: int, flags: str) -> str | None:
    """Check that `count` processes needing `need` each fit the connected cluster's nodes.

    On the embedded Ray nothing will ever add a node, so a shortfall raises ClusterTooSmall
    (the work would wait forever); on a cluster it is returned, for the caller to say that
    the work waits for the autoscaler. None when they fit.
    """
    reason = shortfall(need, count, node_resources(), flags)
    if reason and _EMBEDDED:
        raise ClusterTooSmall(f"the embedded Ray cannot run this: {reason}; set RAY_ADDRESS (or --address) to a "
                              "cluster that can, or ask for less")
    return reason


def shortfall(need: dict[str, float], count: int, nodes: list[dict[str, float]], flags: str = "") -> str | None:
    """Why `count` processes needing `need` each cannot all be placed on `nodes` (None if they can)."""
    need = {name: float(amount) for name, amount in need.items() if amount > 0}
    if count <= 0:
        return None
    fits = sum(int(min((node.get(name, 0.0) // amount for name, amount in need.items()), default=count))
               for node in nodes)
    if fits >= count:
        return None
    wanted = " and ".join(f"{amount:g} {name}" for name, amount in need.items())
    largest = " and ".join(f"{max((node.get(name, 0.0) for node in nodes), default=0.0):g} {name}" for name in need)
    return (f"{count} training process(es) need {wanted} each{f' ({flags})' if flags else ''}; "
            f"the cluster's nodes fit {fits}, the largest has {largest}")
