"""MLflow tracking: one experiment per question, one run per training run.

The store defaults to `sqlite:///mlruns.db` in the working directory (overridable by
MLFLOW_TRACKING_URI). URIs are made absolute in the driver because Ray Tune changes the
working directory of trial processes; on a multi-node cluster use a tracking server.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, Callable, Mapping, TypeVar

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
PARENT_TAG = "mlflow.parentRunId"
# MLflow 3's UI opens an experiment by its kind: without this tag it guesses "GenAI" and
# shows traces and token usage; "custom_model_development" opens the training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
T = TypeVar("T")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI with relative sqlite/file paths made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
    if "://" not in uri:
        return "file://" + os.path.abspath(uri)
    return uri


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a sqlite store live beside the database file (absolute path)."""
    if uri.startswith("sqlite:///"):
        return "file://" + os.path.join(os.path.dirname(uri[len("sqlite:///"):]), "mlartifacts")
    return None


def _retry(call: Callable[[], T], attempts: int = 8) -> T:
    """SQLite allows one writer at a time; concurrent trials retry briefly when locked."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            return call()
        except MlflowException as err:
            if "locked" not in str(err).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)
    raise AssertionError("unreachable")


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _stringify(values: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): ("" if v is None else str(v))[:6000] for k, v in values.items()}


class Tracker:
    """Driver-side operations: experiments, runs, parameters, tags, artifacts."""

    def __init__(self, uri: str | None = None):
        self.uri = resolve_tracking_uri(uri)
        self._client = _client(self.uri)

    def experiment_id(self, name: str) -> str:
        experiment = _retry(lambda: self._client.get_experiment_by_name(name))
        if experiment is not None:
            if EXPERIMENT_KIND_TAG not in (experiment.tags or {}):  # made before the tag existed
                _retry(lambda: self._client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                                               EXPERIMENT_KIND))
            return experiment.experiment_id
        try:
            return _retry(lambda: self._client.create_experiment(name, artifact_location=self._artifact_location(name),
                                                                 tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))
        except Exception:
            # Another process created it first.
            experiment = self._client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _artifact_location(self, name: str) -> str | None:
        root = _artifact_root(self.uri)
        if root is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return f"{root}/{safe}"

    def start_run(self, experiment: str, run_name: str, params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None) -> str:
        all_tags = _stringify(tags or {})
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        experiment_id = self.experiment_id(experiment)
        run = _retry(lambda: self._client.create_run(experiment_id, run_name=run_name, tags=all_tags))
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def run_exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in _stringify(params).items()]
        for start in range(0, len(items), 100):
            _retry(lambda chunk=items[start:start + 100]: self._client.log_batch(run_id, params=chunk))

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in _stringify(tags).items()]
        _retry(lambda: self._client.log_batch(run_id, tags=items))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        RunLogger(self.uri, run_id).log_metrics(metrics, step)

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        if os.path.isdir(path):
            _retry(lambda: self._client.log_artifacts(run_id, path, artifact_path))
        else:
            _retry(lambda: self._client.log_artifact(run_id, path, artifact_path))

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        _retry(lambda: self._client.set_terminated(run_id, status=status))

    def running_children(self, parent_run_id: str) -> list[str]:
        """Ids of the runs under `parent_run_id` still RUNNING (in the parent's experiment)."""
        parent = _retry(lambda: self._client.get_run(parent_run_id))
        runs = _retry(lambda: self._client.search_runs(
            [parent.info.experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'",
            max_results=10000))
        return [r.info.run_id for r in runs]


class RunLogger:
    """Worker-side metric logging into an existing run (rank 0 of a training run).

    Metrics are buffered and written in one batch at most every `flush_seconds` (and on
    `flush()`): one store round trip per validation cost a small laptop trial about as much
    as a tenth of its training (docs/benchmarks.md, "Per-trial overhead"). 0 writes at once.
    """

    def __init__(self, uri: str, run_id: str, flush_seconds: float = 0.0):
        self.uri = uri
        self.run_id = run_id
        self.flush_seconds = flush_seconds
        self._client = _client(uri)
        self._pending: list = []
        self._flushed = time.monotonic()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if time.monotonic() - self._flushed >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        items, self._pending, self._flushed = self._pending, [], time.monotonic()
        if items:
            _retry(lambda: self._client.log_batch(self.run_id, metrics=items))
