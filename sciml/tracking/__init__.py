"""Experiment tracking (MLflow). Imported lazily by training so workers without tracking skip MLflow."""

from sciml.tracking.mlflow_tracking import DEFAULT_TRACKING_URI, RunLogger, Tracker, resolve_tracking_uri

__all__ = ["DEFAULT_TRACKING_URI", "RunLogger", "Tracker", "resolve_tracking_uri"]
