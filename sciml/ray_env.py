"""Connecting to Ray: an existing cluster when an address is given, else an embedded one."""

from __future__ import annotations

import os

_STARTED_HERE = False  # True when this process started its own (embedded, non-autoscaling) Ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True) -> dict:
    """Initialise Ray once per process; returns the cluster's resources.

    With `address` (or RAY_ADDRESS, as under `ray job submit`) connect to that cluster;
    otherwise start a local Ray (token-authenticated, Ray's default).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs = {"log_to_driver": not quiet, "configure_logging": True, "logging_level": "WARNING",
                  # Workers' Ray Data progress bars would interleave with the training progress.
                  "runtime_env": {"env_vars": {"RAY_DATA_DISABLE_PROGRESS_BARS": "1"}}}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
            global _STARTED_HERE
            _STARTED_HERE = True
        import logging

        import ray.data

        # Ray Data's per-read progress bars and INFO lines drown the training progress.
        ray.data.DataContext.get_current().enable_progress_bars = False
        if quiet:
            logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray.cluster_resources()


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
    if reason and _STARTED_HERE:
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
