"""MLflow Model Registry: pre-trained models people can fine-tune from later.

One registered model per (pre-training data, preset), e.g. `sciml-SYS-1_1_5-d16m8`; each
pre-training run that is kept adds a version whose source is the run's `model` artifact
folder (`runs:/RUN/model`, holding `model.pt`), with the model card in its tags. The alias
`best` points at the version with the lowest validation error. `models:/NAME@ALIAS` and
`models:/NAME/VERSION` resolve to a local model file (downloaded once into a cache folder).

The registry needs a database-backed store (sqlite:///..., or a tracking server on one):
every store this project configures is one (see mlflow_tracking.DEFAULT_TRACKING_URI).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping

from sciml.tracking.mlflow_tracking import _retry, _stringify, resolve_tracking_uri

MODELS_SCHEME = "models:/"
BEST_ALIAS = "best"
MODEL_ARTIFACT_DIR = "model"  # the run artifact folder a version's source points at
MODEL_FILE_NAME = "model.pt"  # sciml.training.checkpoint.MODEL_FILE (tracking may not import training)
VAL_TAG = "val_rel_l2"
# Lineage tags on a run that starts from a registered model.
PRETRAINED_RUN_TAG = "pretrained_run_id"
PRETRAINED_URI_TAG = "pretrained_model_uri"
_URI = re.compile(r"models:/([^/@]+)(?:@([^/@]+)|/(\d+))")


def registered_model_name(data_label: str, preset: str) -> str:
    """`sciml-<data>-<preset>` with every character MLflow or a URI dislikes as `_` (SYS-1(1,5) -> SYS-1_1_5)."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{data_label}-{preset}")
    return "sciml-" + re.sub(r"_+(?=-|$)", "", safe)


def is_model_uri(text: str | None) -> bool:
    return bool(text) and str(text).startswith(MODELS_SCHEME)


def parse_model_uri(text: str, field: str = "checkpoint") -> tuple[str, str | None, str | None]:
    """(name, alias, version) of `models:/NAME@ALIAS` or `models:/NAME/VERSION`."""
    match = _URI.fullmatch(str(text))
    if match is None:
        raise ValueError(f"{field}: must be models:/NAME@ALIAS or models:/NAME/VERSION, got {text!r}")
    return match.group(1), match.group(2), match.group(3)


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version, as the registry describes it."""

    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"{MODELS_SCHEME}{self.name}/{self.version}"


@dataclass(frozen=True)
class Registration:
    version: ModelVersionInfo
    is_best: bool  # whether the `best` alias points at this version now


@dataclass(frozen=True)
class FetchedModel:
    path: str  # the local model file
    requested: str  # the URI as given (an alias stays an alias here)
    version: ModelVersionInfo


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _info(mv) -> ModelVersionInfo:
    return ModelVersionInfo(name=mv.name, version=str(mv.version), run_id=mv.run_id or "", source=mv.source,
                            tags=dict(mv.tags or {}))


def _val(info: ModelVersionInfo | None) -> float:
    try:
        return float(info.tags[VAL_TAG]) if info else float("inf")
    except (KeyError, ValueError):
        return float("inf")


def _require_database_store(uri: str) -> None:
    if uri.startswith("file:"):
        raise ValueError(f"tracking_uri: the MLflow Model Registry needs a database store "
                         f"(e.g. sqlite:///mlruns.db or a tracking server), got {uri}")


def register_version(run_id: str, name: str, val_rel_l2: float, tags: Mapping[str, Any],
                     description: str = "", uri: str | None = None) -> Registration:
    """Add the run's `model` artifact folder as a new version of `name`; move `best` if it is better.

    The run must already hold `model/model.pt`. Two registrations racing on one name can
    both read the old alias; the later write wins, so `best` is best-effort under races.
    """
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(uri)
    _require_database_store(uri)
    client = _client(uri)
    try:
        _retry(lambda: client.create_registered_model(
            name, description="Pre-trained FNO (sciml): fine-tune with "
                              f"python -m sciml.train finetune --checkpoint models:/{name}@{BEST_ALIAS}"))
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    all_tags = _stringify({**tags, VAL_TAG: repr(float(val_rel_l2)), "run_id": run_id})
    mv = _retry(lambda: client.create_model_version(name, f"runs:/{run_id}/{MODEL_ARTIFACT_DIR}", run_id=run_id,
                                                    tags=all_tags, description=description))
    info = _info(mv)
    current = current_best(name, uri)
    is_best = current is None or float(val_rel_l2) < _val(current) or current.version == info.version
    if is_best:
        _retry(lambda: client.set_registered_model_alias(name, BEST_ALIAS, info.version))
    return Registration(info, is_best)


def current_best(name: str, uri: str | None = None) -> ModelVersionInfo | None:
    from mlflow.exceptions import MlflowException

    client = _client(resolve_tracking_uri(uri))
    try:
        return _info(client.get_model_version_by_alias(name, BEST_ALIAS))
    except MlflowException:
        return None


def lookup(model_uri: str, uri: str | None = None, field: str = "checkpoint") -> ModelVersionInfo:
    """The version `models:/NAME@ALIAS` or `models:/NAME/VERSION` names; ValueError naming `field` if none."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(model_uri, field)
    client = _client(resolve_tracking_uri(uri))
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as err:
        known = [m.name for m in client.search_registered_models(max_results=1000)]
        where = (f"registered model {name!r} has no alias {alias!r}" if alias else
                 f"registered model {name!r} has no version {version}") if name in known else \
            f"no registered model {name!r} (registered: {', '.join(sorted(known)) or 'none'})"
        raise ValueError(f"{field}: {model_uri}: {where} in {resolve_tracking_uri(uri)}") from err
    return _info(mv)


def fetch_model(model_uri: str, cache_dir: str, uri: str | None = None, field: str = "checkpoint") -> FetchedModel:
    """Resolve `model_uri` and download its model file once into `cache_dir/NAME/VERSION/model.pt`.

    Versions are immutable, so a file already there is reused; the download goes to a
    temporary folder first and is renamed into place (a reader never sees half a file).
    """
    import mlflow.artifacts

    uri = resolve_tracking_uri(uri)
    info = lookup(model_uri, uri, field)
    folder = os.path.join(os.path.abspath(cache_dir), info.name, info.version)
    path = os.path.join(folder, MODEL_FILE_NAME)
    if not os.path.isfile(path):
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".download-", dir=folder)
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{info.source.rstrip('/')}/{MODEL_FILE_NAME}", dst_path=staging, tracking_uri=uri)
            os.replace(local, path)
        except Exception as err:
            raise ValueError(f"{field}: {model_uri} (version {info.version}) has no {MODEL_FILE_NAME} "
                             f"at {info.source}: {err}") from err
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return FetchedModel(path=path, requested=model_uri, version=info)


def lineage_tags(fetched: FetchedModel) -> dict[str, str]:
    """Tags for a run that starts from a registered model: back to the pre-training run."""
    return {PRETRAINED_RUN_TAG: fetched.version.run_id, PRETRAINED_URI_TAG: fetched.requested,
            "pretrained_model_version": fetched.version.uri}
