"""Model files and resumable training state; both load with torch.load(weights_only=True)."""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from sciml.core.files import atomic_path

MODEL_FORMAT = "sciml-fno/1"
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through the project's one atomic writer: a reader never sees half a file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def model_payload(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor] | None = None,
                  meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The model file: architecture, weights with the normalization buffers, run metadata."""
    return {
        "format": MODEL_FORMAT,
        "hparams": dict(model.hparams),
        "state_dict": dict(state_dict) if state_dict is not None else _cpu_state(model),
        "meta": dict(meta or {}),
    }


def save_model(path: str, model: torch.nn.Module, state_dict=None, meta=None) -> None:
    atomic_torch_save(model_payload(model, state_dict, meta), path)


def read_model_file(path: str, map_location: str | torch.device = "cpu", *, mmap: bool = False) -> dict[str, Any]:
    """The payload of a model file, checked to be one; ValueError('checkpoint: ...') otherwise.

    With ``mmap`` the weights stay on disk until touched: validation reads the header
    (format, hparams, meta) without loading the tensors, so a run loads the file once.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint: no such model file: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # noqa: BLE001 - torch.load raises a different type for each kind of garbage
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise ValueError(f"checkpoint: {path} is not a {MODEL_FORMAT} model file (torch.load: {reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT \
            or not isinstance(payload.get("hparams"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"checkpoint: {path} is not a {MODEL_FORMAT} model file")
    return payload


def read_hparams(path: str) -> dict[str, Any]:
    """The architecture a model file describes (build_fno keyword arguments), weights left on disk."""
    return dict(read_model_file(path, mmap=True)["hparams"])


def load_model(path: str, map_location: str | torch.device = "cpu"):
    """Rebuild the model a model file describes; returns (model, payload)."""
    payload = read_model_file(path, map_location)
    model = build_from_hparams(payload["hparams"])
    model.load_state_dict(payload["state_dict"])
    return model, payload


def build_from_hparams(hparams: Mapping[str, Any]) -> torch.nn.Module:
    from sciml.models import build_fno

    if hparams.get("preset"):
        return build_fno(hparams["preset"])
    return build_fno(None, width=hparams["width"], modes=hparams["modes"], layers=hparams.get("layers", 4))
