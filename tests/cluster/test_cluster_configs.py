"""Offline checks of the cluster deployment files.

* ``cluster.yaml`` is checked against Ray's own cluster schema
  (``ray/autoscaler/ray-schema.json``) and goes through the same
  ``prepare_config`` + ``validate_config`` path that ``ray up`` takes before
  it contacts AWS.
* ``deploy/kuberay-raycluster.yaml`` goes through Ray's KubeRay autoscaler
  translation (``_derive_autoscaling_config_from_ray_cr``, which also runs
  ``validate_config``). On top of that, its structure is checked.
* ``deploy/Dockerfile`` is checked as text.

Every check is a plain function that raises on a broken config. The
``test_*_rejects_broken`` tests apply one mutation per check to a copy of the
real file and require the check to fail, so that no assertion is vacuous.
No network, no cluster: the whole module runs in about a second.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
KUBERAY_YAML = REPO / "deploy" / "kuberay-raycluster.yaml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"

# The environment contract between the cluster configs and the sweep code.
SHARED_ROOT = "/mnt/shared"
STORAGE_ENV = "SCIML_STORAGE"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_PORT = 5000
DASHBOARD_PORT = 8265

BROKEN = (AssertionError, jsonschema.ValidationError, ValueError)


# --------------------------------------------------------------------------- helpers


def _load_cluster_yaml() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _load_kuberay_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(KUBERAY_YAML.read_text()) if d]


def _ray_schema() -> dict:
    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def _words(cmd: str) -> list[str]:
    """Shell words of ``cmd``, with quoted sub-commands (``bash -c '...'``) split too."""
    out: list[str] = []
    for word in shlex.split(cmd):
        if " " in word.strip():
            out.extend(_words(word))
        else:
            out.append(word)
    return out


def _flags_after(words: list[str], *prefix: str) -> dict[str, str] | None:
    """``--flag value`` / ``--flag=value`` pairs of the command starting with ``prefix``."""
    n = len(prefix)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) == prefix:
            flags: dict[str, str] = {}
            rest = words[i + n :]
            j = 0
            while j < len(rest) and rest[j].startswith("-") and rest[j] not in {"-", "--"}:
                key, eq, val = rest[j].partition("=")
                if eq:
                    flags[key] = val
                    j += 1
                elif j + 1 < len(rest) and not rest[j + 1].startswith("-"):
                    flags[key] = rest[j + 1].rstrip(";'")
                    j += 2
                else:
                    flags[key] = ""
                    j += 1
            return flags
    return None


def _exports(cmd: str) -> dict[str, str]:
    """Variables set by ``export A=x B=y`` (or ``A=x cmd``) in a command string."""
    return dict(re.findall(r"(?:^|[\s;])([A-Z][A-Z0-9_]*)=(\S+?)(?=;|\s|$)", cmd))


def _host_allowed(allowed: list[str], host: str) -> bool:
    # Same rule as mlflow.server.security_utils.is_allowed_host_header (MLflow 3).
    return "*" in allowed or any(
        fnmatch.fnmatch(host, p) if "*" in p else host == p for p in allowed
    )


# MLflow 3 default --allowed-hosts: localhost variants (any port) and private IPs.
_MLFLOW_DEFAULT_ALLOWED = [
    "localhost", "127.0.0.1", "[::1]", "0.0.0.0",
    "localhost:*", "127.0.0.1:*", "[[]::1]:*", "0.0.0.0:*",
    "192.168.*", "10.*", *[f"172.{i}.*" for i in range(16, 32)], "fc00:*", "fd00:*",
]


def _check_mlflow_server_flags(flags: dict[str, str] | None, env: dict[str, str]) -> None:
    assert flags is not None, "no `mlflow server` command"
    assert flags.get("--host") == "0.0.0.0", "MLflow must listen on all interfaces"
    assert flags.get("--port") == str(MLFLOW_PORT), flags
    assert flags.get("--workers") == "1", "SQLite store needs a single server worker"
    assert flags.get("--backend-store-uri", "").startswith("sqlite:///"), flags
    assert flags.get("--artifacts-destination", "").startswith(SHARED_ROOT + "/"), (
        "artifacts must go to shared storage"
    )
    assert env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false", env


# --------------------------------------------------------------------------- cluster.yaml checks


def check_ray_schema(cfg: dict) -> None:
    jsonschema.validate(cfg, _ray_schema())


def check_ray_validate_config(cfg: dict) -> None:
    # What `ray up` does before it talks to AWS: merge aws/defaults.yaml, merge the
    # setup commands, check docker, fill per-type worker limits, then validate.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cfg)))


def check_provider(cfg: dict) -> None:
    p = cfg["provider"]
    assert p["type"] == "aws"
    assert p.get("region"), "provider.region missing"
    zones = p.get("availability_zone", "")
    assert zones and all(z.strip().startswith(p["region"]) for z in zones.split(",")), zones
    assert cfg.get("auth", {}).get("ssh_user"), "auth.ssh_user missing"
    assert cfg.get("idle_timeout_minutes", 0) > 0


def check_head_node(cfg: dict) -> None:
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["node_config"].get("InstanceType"), "head InstanceType missing"
    assert head["resources"].get("CPU", 0) >= 1, "head must advertise CPU"
    assert head["resources"].get("GPU", 0) == 0, "head is the CPU node"
    assert head.get("min_workers", 0) == 0 and head.get("max_workers", 0) == 0


def check_gpu_workers(cfg: dict) -> None:
    gpu_types = {
        name: t
        for name, t in cfg["available_node_types"].items()
        if name != cfg["head_node_type"] and t["resources"].get("GPU", 0) >= 1
    }
    assert gpu_types, "no GPU worker node type"
    for name, t in gpu_types.items():
        assert t.get("min_workers", 0) == 0, f"{name} must scale from 0"
        assert 1 <= t.get("max_workers", cfg["max_workers"]) <= cfg["max_workers"], name
        assert t["node_config"].get("InstanceType"), name
    assert cfg["max_workers"] >= 1


def check_installs_project(cfg: dict) -> None:
    mounts = cfg.get("file_mounts", {})
    remote = next((r for r, local in mounts.items() if local.rstrip("/") in {".", str(REPO)}), None)
    assert remote, "the repo root must be synced to the nodes via file_mounts"
    setup = list(cfg.get("setup_commands", []))
    for who in ("head_setup_commands", "worker_setup_commands"):
        # What each node runs: common setup + its own (see merge_setup_commands).
        cmds = setup + list(cfg.get(who, []))
        torch = [i for i, c in enumerate(cmds) if re.search(r"pip install\b[^&;]*\btorch\b", c)]
        proj = [
            i for i, c in enumerate(cmds)
            if re.search(r"pip install\b.*(?:-e\s+)?" + re.escape(remote.rstrip("/")) + r"/?(\s|$)", c)
        ]
        assert proj, f"{who}: no `pip install {remote}`"
        assert torch and min(torch) < min(proj), f"{who}: torch must be installed first"
    head_cmds = " ".join(setup + cfg.get("head_setup_commands", []))
    assert "boto3" in head_cmds, "the head's autoscaler needs boto3 (defaults are overridden)"


def check_docker_image(cfg: dict) -> None:
    image = cfg["docker"]["image"]
    m = re.fullmatch(r"rayproject/ray(?:-ml)?:(\d+\.\d+)\.\d+-py3\d+-(?:gpu|cu\d+)", image)
    assert m, f"expected a rayproject GPU image, got {image}"
    local = ".".join(ray.__version__.split(".")[:2])
    assert m.group(1) == local, f"image Ray {m.group(1)} != local Ray {local}"
    assert cfg["docker"].get("container_name")


def check_head_runs_mlflow_and_dashboard(cfg: dict) -> None:
    cmds = cfg["head_start_ray_commands"]
    mlflow_cmds = [c for c in cmds if "mlflow server" in c]
    assert len(mlflow_cmds) == 1, "head must start exactly one MLflow server"
    cmd = mlflow_cmds[0]
    assert cmd.rstrip().endswith("&"), "MLflow server must run in the background"
    _check_mlflow_server_flags(_flags_after(_words(cmd), "mlflow", "server"), _exports(cmd))
    allowed = _flags_after(_words(cmd), "mlflow", "server").get("--allowed-hosts")
    allowed = allowed.split(",") if allowed else _MLFLOW_DEFAULT_ALLOWED
    assert _host_allowed(allowed, f"10.0.12.34:{MLFLOW_PORT}"), "workers use the private IP"
    assert _host_allowed(allowed, f"localhost:{MLFLOW_PORT}"), "port-forward uses localhost"

    start = [c for c in cmds if "ray start" in c]
    assert len(start) == 1
    flags = _flags_after(_words(start[0]), "ray", "start")
    assert "--head" in flags and flags.get("--dashboard-host") == "0.0.0.0", flags
    assert flags.get("--dashboard-port", str(DASHBOARD_PORT)) == str(DASHBOARD_PORT)
    assert flags.get("--autoscaling-config") == "~/ray_bootstrap_config.yaml"
    assert cmds.index(mlflow_cmds[0]) > cmds.index("ray stop")


def check_workers_join_head(cfg: dict) -> None:
    start = [c for c in cfg["worker_start_ray_commands"] if "ray start" in c]
    assert len(start) == 1
    flags = _flags_after(_words(start[0]), "ray", "start")
    assert flags.get("--address") == "$RAY_HEAD_IP:6379", flags


def check_nodes_get_env(cfg: dict) -> None:
    for key, host in (("head_start_ray_commands", None), ("worker_start_ray_commands", "$RAY_HEAD_IP")):
        cmd = next(c for c in cfg[key] if "ray start" in c)
        env = _exports(cmd)
        assert env.get(STORAGE_ENV, "").startswith(SHARED_ROOT + "/"), (key, env)
        uri = env.get(TRACKING_ENV, "")
        assert uri.startswith("http://") and uri.endswith(f":{MLFLOW_PORT}"), (key, uri)
        if host:
            assert uri == f"http://{host}:{MLFLOW_PORT}", (key, uri)


def check_shared_storage(cfg: dict) -> None:
    init = " ".join(cfg.get("initialization_commands", []))
    assert re.search(r"mount -t nfs4 .*efs\..*amazonaws\.com:/ " + SHARED_ROOT, init), (
        "initialization_commands must mount EFS at " + SHARED_ROOT
    )
    run_opts = " ".join(cfg["docker"].get("run_options", []))
    assert f"-v {SHARED_ROOT}:{SHARED_ROOT}" in run_opts, "container must see the EFS mount"


# --------------------------------------------------------------------------- KubeRay checks

_RC_SPEC_FIELDS = {
    "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec",
    "workerGroupSpecs", "headServiceAnnotations", "suspend", "managedBy",
    "gcsFaultToleranceOptions", "upgradeStrategy", "authOptions",
}
_HEAD_FIELDS = {"serviceType", "headService", "enableIngress", "rayStartParams", "template", "resources", "labels"}
_WORKER_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds",
    "rayStartParams", "template", "scaleStrategy", "suspend", "numOfHosts", "resources", "labels",
}
_AUTOSCALER_FIELDS = {
    "resources", "image", "imagePullPolicy", "securityContext", "idleTimeoutSeconds",
    "upscalingMode", "env", "envFrom", "volumeMounts", "version",
}


def _raycluster(docs: list[dict]) -> dict:
    rcs = [d for d in docs if d.get("kind") == "RayCluster"]
    assert len(rcs) == 1, "exactly one RayCluster expected"
    return rcs[0]


def _pods(rc: dict) -> list[tuple[str, dict]]:
    spec = rc["spec"]
    return [("head", spec["headGroupSpec"]["template"]["spec"])] + [
        (g["groupName"], g["template"]["spec"]) for g in spec["workerGroupSpecs"]
    ]


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _mlflow_container(rc: dict) -> dict:
    head = rc["spec"]["headGroupSpec"]["template"]["spec"]
    found = [
        c for c in head["containers"]
        if "mlflow server" in " ".join(c.get("command", []) + c.get("args", []))
    ]
    assert len(found) == 1, "head pod must run exactly one `mlflow server`"
    return found[0]


def check_kuberay_kind(docs: list[dict]) -> None:
    rc = _raycluster(docs)
    assert rc["apiVersion"] == "ray.io/v1", rc["apiVersion"]
    assert rc["metadata"].get("name")
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(rc["spec"].get("rayVersion", "")))


def check_kuberay_fields(docs: list[dict]) -> None:
    spec = _raycluster(docs)["spec"]
    assert set(spec) <= _RC_SPEC_FIELDS, set(spec) - _RC_SPEC_FIELDS
    assert set(spec["headGroupSpec"]) <= _HEAD_FIELDS, set(spec["headGroupSpec"]) - _HEAD_FIELDS
    for g in spec["workerGroupSpecs"]:
        assert set(g) <= _WORKER_FIELDS, set(g) - _WORKER_FIELDS
    assert set(spec.get("autoscalerOptions", {})) <= _AUTOSCALER_FIELDS
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        params = group.get("rayStartParams", {})
        assert all(isinstance(v, str) for v in params.values()), "rayStartParams are strings"
    for _, pod in _pods(_raycluster(docs)):
        names = [c["name"] for c in pod["containers"]]
        assert len(names) == len(set(names))
        for c in pod["containers"]:
            assert c.get("image"), c["name"]
            assert all(isinstance(v, str) for v in _env(c).values()), f"{c['name']}: env values are strings"


def check_kuberay_autoscaling(docs: list[dict]) -> None:
    assert _raycluster(docs)["spec"].get("enableInTreeAutoscaling") is True


def check_kuberay_head(docs: list[dict]) -> None:
    head = _raycluster(docs)["spec"]["headGroupSpec"]
    assert head["rayStartParams"].get("dashboard-host") == "0.0.0.0"
    ray_c = head["template"]["spec"]["containers"][0]  # KubeRay: Ray container first
    ports = {p["containerPort"] for p in ray_c.get("ports", [])}
    missing = {6379, DASHBOARD_PORT, 10001, MLFLOW_PORT} - ports
    assert not missing, f"head container lacks ports {missing}"
    assert "nvidia.com/gpu" not in ray_c.get("resources", {}).get("limits", {})


def check_kuberay_gpu_group(docs: list[dict]) -> None:
    def gpu_limit(group: dict) -> int:
        ray_c = group["template"]["spec"]["containers"][0]
        return int(ray_c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))

    groups = [g for g in _raycluster(docs)["spec"]["workerGroupSpecs"] if gpu_limit(g) >= 1]
    assert groups, "no worker group with an nvidia.com/gpu limit"
    for g in groups:
        assert g["minReplicas"] == 0 and g.get("replicas", 0) == 0, g["groupName"]
        assert g["maxReplicas"] >= 1, g["groupName"]


def check_kuberay_ray_autoscaler_view(docs: list[dict]) -> None:
    # The exact translation the in-tree autoscaler applies to the RayCluster CR;
    # it ends with Ray's validate_config.
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    rc = copy.deepcopy(_raycluster(docs))
    rc["metadata"].setdefault("namespace", "default")
    cfg = _derive_autoscaling_config_from_ray_cr(rc)
    workers = {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}
    gpu = {k: v for k, v in workers.items() if v["resources"].get("GPU", 0) >= 1}
    assert gpu, f"autoscaler sees no GPU worker type: {workers}"
    assert all(v["min_workers"] == 0 and v["max_workers"] >= 1 for v in gpu.values()), gpu
    head_res = cfg["available_node_types"][cfg["head_node_type"]]["resources"]
    assert head_res.get("GPU", 0) == 0 and head_res.get("CPU", 0) >= 1, head_res


def check_kuberay_shared_pvc(docs: list[dict]) -> None:
    pvcs = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "PersistentVolumeClaim"}
    assert pvcs, "no PersistentVolumeClaim for shared storage"
    for name, pvc in pvcs.items():
        assert "ReadWriteMany" in pvc["spec"]["accessModes"], f"{name} must be RWX"
    rc = _raycluster(docs)
    for group, pod in _pods(rc):
        vols = {
            v["name"] for v in pod.get("volumes", [])
            if v.get("persistentVolumeClaim", {}).get("claimName") in pvcs
        }
        assert vols, f"{group}: shared PVC not in volumes"
        mounts = {m["mountPath"] for m in pod["containers"][0].get("volumeMounts", []) if m["name"] in vols}
        assert SHARED_ROOT in mounts, f"{group}: shared PVC not mounted at {SHARED_ROOT}"
    mlflow = _mlflow_container(rc)
    assert any(m["mountPath"] == SHARED_ROOT for m in mlflow.get("volumeMounts", []))


def check_kuberay_mlflow(docs: list[dict]) -> None:
    rc = _raycluster(docs)
    c = _mlflow_container(rc)
    words = _words(" ".join(shlex.quote(w) for w in c.get("command", []) + c.get("args", [])))
    flags = _flags_after(words, "mlflow", "server")
    _check_mlflow_server_flags(flags, _env(c))
    svc_host = f"{rc['metadata']['name']}-head-svc"
    allowed = flags["--allowed-hosts"].split(",") if flags.get("--allowed-hosts") else _MLFLOW_DEFAULT_ALLOWED
    for host in (f"{svc_host}:{MLFLOW_PORT}", f"localhost:{MLFLOW_PORT}", f"127.0.0.1:{MLFLOW_PORT}"):
        assert _host_allowed(allowed, host), f"MLflow would reject Host: {host}"


def check_kuberay_env(docs: list[dict]) -> None:
    rc = _raycluster(docs)
    svc_host = f"{rc['metadata']['name']}-head-svc"
    for group, pod in _pods(rc):
        env = _env(pod["containers"][0])
        assert env.get(STORAGE_ENV, "").startswith(SHARED_ROOT + "/"), (group, env)
        uri = urlparse(env.get(TRACKING_ENV, ""))
        assert uri.scheme == "http" and uri.port == MLFLOW_PORT, (group, env)
        assert uri.hostname.split(".")[0] == svc_host, f"{group}: {uri.hostname} is not {svc_host}"


# --------------------------------------------------------------------------- Dockerfile checks


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def check_dockerfile_base(text: str) -> None:
    ins = _dockerfile_instructions(text)
    args = {}
    for op, rest in ins:
        if op == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v.strip('"')
        if op == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), "?"), rest.split()[0])
            break
    else:
        raise AssertionError("no FROM")
    m = re.fullmatch(r"rayproject/ray(?:-ml)?:(\d+\.\d+)\.\d+-py3(\d+)-(?:gpu|cu\d+)", image)
    assert m, f"base image should be a rayproject GPU image, got {image}"
    assert m.group(1) == ".".join(ray.__version__.split(".")[:2]), image
    assert int(m.group(2)) >= 10, "project needs Python >= 3.10"


def check_dockerfile_installs_project(text: str) -> None:
    ins = _dockerfile_instructions(text)
    copy_dst = [rest.split()[-1] for op, rest in ins if op == "COPY" and re.search(r"(^|\s)\.\s+\S+$", rest)]
    assert copy_dst, "the repo (`COPY . <dir>`) is not copied into the image"
    workdir = [rest for op, rest in ins if op == "WORKDIR"]
    targets = {d.rstrip("/") for d in copy_dst} | ({"."} if workdir and workdir[-1].rstrip("/") in copy_dst else set())
    runs = [rest for op, rest in ins if op == "RUN"]
    torch_i = next((i for i, r in enumerate(runs) if re.search(r"pip install\b[^&;]*\btorch\b", r)), None)
    proj_i = next(
        (i for i, r in enumerate(runs)
         if any(re.search(r"pip install\b[^&;]*\s(?:-e\s+)?" + re.escape(t) + r"/?(\s|$)", r) for t in targets)),
        None,
    )
    assert proj_i is not None, "no `pip install` of the copied project"
    assert torch_i is not None and torch_i < proj_i, "torch must be installed before the project"
    assert any(op == "ENV" and STORAGE_ENV in rest for op, rest in ins), f"{STORAGE_ENV} not set"


def check_dockerignore(text: str) -> None:
    entries = {line.strip().rstrip("/") for line in text.splitlines() if line.strip() and not line.startswith("#")}
    assert {".venv", ".git"} <= entries, entries


# --------------------------------------------------------------------------- tests on the real files

AWS_CHECKS = [
    check_ray_schema, check_ray_validate_config, check_provider, check_head_node,
    check_gpu_workers, check_installs_project, check_docker_image,
    check_head_runs_mlflow_and_dashboard, check_workers_join_head, check_nodes_get_env,
    check_shared_storage,
]
KUBERAY_CHECKS = [
    check_kuberay_kind, check_kuberay_fields, check_kuberay_autoscaling, check_kuberay_head,
    check_kuberay_gpu_group, check_kuberay_ray_autoscaler_view, check_kuberay_shared_pvc,
    check_kuberay_mlflow, check_kuberay_env,
]


@pytest.mark.parametrize("check", AWS_CHECKS, ids=lambda f: f.__name__)
def test_cluster_yaml(check):
    check(_load_cluster_yaml())


@pytest.mark.parametrize("check", KUBERAY_CHECKS, ids=lambda f: f.__name__)
def test_kuberay_manifest(check):
    check(_load_kuberay_docs())


def test_dockerfile_base_image():
    check_dockerfile_base(DOCKERFILE.read_text())


def test_dockerfile_installs_project():
    check_dockerfile_installs_project(DOCKERFILE.read_text())


def test_dockerignore_keeps_local_state_out():
    check_dockerignore(DOCKERIGNORE.read_text())


def test_docs_cover_the_workflow():
    text = (REPO / "docs" / "cluster.md").read_text()
    for needle in (
        "ray up cluster.yaml", "ray down cluster.yaml", "ray dashboard cluster.yaml",
        "ray job submit --address http://127.0.0.1:8265 --working-dir .",
        "--runtime-env-json", STORAGE_ENV, TRACKING_ENV, "kubectl apply -f deploy/kuberay-raycluster.yaml",
        "kubectl port-forward", "mlflow ui --backend-store-uri sqlite:///mlruns.db",
    ):
        assert needle in text, needle


# --------------------------------------------------------------------------- each check can fail


def _set(path: str, value):
    def mutate(cfg):
        *parents, last = path.split("/")
        node = cfg
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


_DELETE = object()


def _edit_cmds(key: str, old: str, new: str):
    def mutate(cfg):
        cfg[key] = [c.replace(old, new) for c in cfg[key]]
    return mutate


def _head_cmds(old: str, new: str):
    return _edit_cmds("head_start_ray_commands", old, new)


def _worker_cmds(old: str, new: str):
    return _edit_cmds("worker_start_ray_commands", old, new)


AWS_MUTATIONS = [
    (check_ray_schema, _set("not_a_field", 1)),
    (check_ray_schema, _set("available_node_types/ray.worker.gpu", None)),
    (check_ray_validate_config, _set("head_node_type", "missing.type")),
    (check_provider, _set("provider/availability_zone", "eu-west-1a")),
    (check_head_node, _set("available_node_types/ray.head.cpu/resources", {"CPU": 6, "GPU": 1})),
    (check_gpu_workers, _set("available_node_types/ray.worker.gpu/min_workers", 1)),
    (check_gpu_workers, _set("available_node_types/ray.worker.gpu/resources", {"CPU": 4})),
    (check_installs_project, _set("setup_commands", ['pip install -q "torch==2.13.0"'])),
    (check_installs_project, _set("file_mounts", {})),
    (check_installs_project, _set("head_setup_commands", [])),
    (check_docker_image, _set("docker/image", "rayproject/ray:2.9.0-py311-gpu")),
    (check_docker_image, _set("docker/image", "ubuntu:22.04")),
    (check_head_runs_mlflow_and_dashboard, _head_cmds("--host 0.0.0.0", "--host 127.0.0.1")),
    (check_head_runs_mlflow_and_dashboard, _head_cmds("--workers 1", "--workers 4")),
    (check_head_runs_mlflow_and_dashboard, _head_cmds("JOB_EXECUTION=false", "JOB_EXECUTION=true")),
    (check_head_runs_mlflow_and_dashboard, _head_cmds("--artifacts-destination /mnt/shared/", "--artifacts-destination /tmp/")),
    (check_head_runs_mlflow_and_dashboard, _head_cmds("--dashboard-host=0.0.0.0", "")),
    (check_head_runs_mlflow_and_dashboard, _head_cmds("> $HOME/mlflow/server.log 2>&1 < /dev/null &", "")),
    (check_workers_join_head, _worker_cmds("$RAY_HEAD_IP:6379", "127.0.0.1:6379")),
    (check_nodes_get_env, _worker_cmds("SCIML_STORAGE=/mnt/shared/sciml", "")),
    (check_nodes_get_env, _worker_cmds("http://$RAY_HEAD_IP:5000", "http://localhost:5000")),
    (check_shared_storage, _set("docker/run_options", [])),
    (check_shared_storage, _set("initialization_commands", [])),
]


@pytest.mark.parametrize(
    "check,mutate", AWS_MUTATIONS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(AWS_MUTATIONS)]
)
def test_cluster_yaml_check_rejects_broken(check, mutate):
    cfg = _load_cluster_yaml()
    check(copy.deepcopy(cfg))  # passes on the real file ...
    mutate(cfg)
    with pytest.raises(BROKEN):  # ... and fails once broken
        check(cfg)


def _rc(mutate):
    def apply(docs):
        mutate(_raycluster(docs))
    return apply


def _drop_pvcs(docs):
    docs[:] = [d for d in docs if d.get("kind") != "PersistentVolumeClaim"]


def _worker_container(rc):
    return rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]


def _drop_gpu(rc, where=("limits",)):
    for key in where:
        _worker_container(rc)["resources"][key].pop("nvidia.com/gpu")


def _mlflow_args(rc, old, new):
    c = _mlflow_container(rc)
    c["args"] = [a.replace(old, new) for a in c["args"]]


KUBERAY_MUTATIONS = [
    (check_kuberay_kind, _rc(_set("apiVersion", "ray.io/v1alpha1"))),
    (check_kuberay_kind, _rc(_set("kind", "RayJob"))),
    (check_kuberay_fields, _rc(_set("spec/enableInTreeAutoScaling", True))),
    (check_kuberay_fields, _rc(_set("spec/headGroupSpec/rayStartParams/num-cpus", 0))),
    (check_kuberay_fields, _rc(lambda rc: _worker_container(rc)["env"].append({"name": "X", "value": 1}))),
    (check_kuberay_autoscaling, _rc(_set("spec/enableInTreeAutoscaling", "true"))),
    (check_kuberay_autoscaling, _rc(_set("spec/enableInTreeAutoscaling", _DELETE))),
    (check_kuberay_head, _rc(_set("spec/headGroupSpec/rayStartParams", {}))),
    (check_kuberay_head, _rc(_set("spec/headGroupSpec/template/spec/containers/0/ports/3", {"containerPort": 5001}))),
    (check_kuberay_gpu_group, _rc(_set("spec/workerGroupSpecs/0/minReplicas", 1))),
    (check_kuberay_gpu_group, _rc(_set("spec/workerGroupSpecs/0/replicas", 2))),
    (check_kuberay_gpu_group, _rc(_drop_gpu)),
    (check_kuberay_ray_autoscaler_view, _rc(lambda rc: _drop_gpu(rc, ("limits", "requests")))),
    (check_kuberay_ray_autoscaler_view, _rc(_set("spec/workerGroupSpecs/0/minReplicas", 2))),
    (check_kuberay_shared_pvc, _drop_pvcs),
    (check_kuberay_shared_pvc, _rc(_set("spec/workerGroupSpecs/0/template/spec/volumes", []))),
    (check_kuberay_shared_pvc, _rc(lambda rc: _worker_container(rc).pop("volumeMounts"))),
    (check_kuberay_mlflow, _rc(lambda rc: _mlflow_args(rc, "--workers 1", ""))),
    (check_kuberay_mlflow, _rc(lambda rc: _mlflow_args(rc, "sciml-head-svc*,", ""))),
    (check_kuberay_mlflow, _rc(lambda rc: _mlflow_container(rc).pop("env"))),
    (check_kuberay_env, _rc(lambda rc: _worker_container(rc)["env"].pop(0))),
    (check_kuberay_env, _rc(_set("metadata/name", "other"))),
]


@pytest.mark.parametrize(
    "check,mutate", KUBERAY_MUTATIONS, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(KUBERAY_MUTATIONS)]
)
def test_kuberay_check_rejects_broken(check, mutate):
    docs = _load_kuberay_docs()
    check(copy.deepcopy(docs))
    mutate(docs)
    with pytest.raises(BROKEN):
        check(docs)


@pytest.mark.parametrize(
    "check,old,new",
    [
        (check_dockerfile_base, "FROM rayproject/ray:${RAY_VERSION}-py311-gpu", "FROM python:3.11-slim"),
        (check_dockerfile_base, "ARG RAY_VERSION=2.60.0", "ARG RAY_VERSION=2.9.0"),
        (check_dockerfile_installs_project, "-e /home/ray/sciml", "numpy"),
        (check_dockerfile_installs_project, '${TORCH_PIP_ARGS} "torch==${TORCH_VERSION}"', "numpy"),
        (check_dockerfile_installs_project, "users . /home/ray/sciml", "users pyproject.toml /home/ray/sciml/"),
        (check_dockerfile_installs_project, "ENV SCIML_STORAGE=/mnt/shared/sciml", ""),
    ],
)
def test_dockerfile_check_rejects_broken(check, old, new):
    text = DOCKERFILE.read_text()
    check(text)
    assert old in text, f"mutation target moved: {old!r}"
    with pytest.raises(BROKEN):
        check(text.replace(old, new))
