"""Registering a kept pre-trained model, with its model card, in the MLflow Model Registry.

Shared by `python -m sciml.train pretrain` and the sweep runner (which keeps the best
pre-training per data and preset). The model card is what a user fine-tuning months later
needs to trust the file: the data it saw (content hashes), how it normalizes inputs, the
channel layout it expects (SPEC 4), its preset and its errors, and the run that made it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import torch

from sciml.core.layout import CHANNELS
from sciml.data.manifest import load_manifest


def model_preset(hparams: Mapping[str, Any]) -> str:
    """The label of ModelConfig for a model file's hparams (a preset, or dWIDTHmMODES)."""
    return hparams["preset"] or f"d{hparams['width']}m{hparams['modes']}"


def model_card(model_path: str, data_dirs: Sequence[str], metrics: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Version tags for a pre-trained model file trained on `data_dirs`."""
    payload = torch.load(model_path, map_location="cpu", weights_only=True)
    state = payload["state_dict"]
    manifests = [load_manifest(d) for d in data_dirs]
    return {
        "preset": model_preset(payload["hparams"]),
        "hparams": json.dumps(payload["hparams"], sort_keys=True),
        "channels": ",".join(CHANNELS),
        "normalization": json.dumps({"f_ref": float(state["f_ref"]),
                                     "c_ref": [float(v) for v in state["c_ref"].reshape(-1)]}),
        "data": ",".join(m["name"] for m in manifests),
        "data_content_hashes": ",".join(m["content_hash"] for m in manifests),
        "resolution": ",".join(sorted({str(m["resolution"]) for m in manifests})),
        "val_rel_l2": metrics.get("val_rel_l2", ""),
        "test_rel_l2": metrics.get("test_rel_l2", ""),
        "lr": metrics.get("lr", payload.get("meta", {}).get("lr", "")),
        "pretraining_run_id": run_id,
    }


def register_pretrained(model_path: str, data_label: str, data_dirs: Sequence[str], metrics: Mapping[str, Any],
                        run_id: str, uri: str | None = None):
    """Register the run's logged `model/model.pt` as a version of `sciml-<data>-<preset>`.

    Returns a sciml.tracking.registry.Registration.
    """
    from sciml.tracking.registry import register_version, registered_model_name

    card = {"pretrain_label": data_label, **model_card(model_path, data_dirs, metrics, run_id)}
    name = registered_model_name(data_label, card["preset"])
    description = (f"{card['preset']} FNO pre-trained on {data_label} ({card['data']}, {card['resolution']}^2); "
                   f"val_rel_l2 {metrics['val_rel_l2']:.4g}, test_rel_l2 {metrics.get('test_rel_l2', float('nan')):.4g}; "
                   f"run {run_id}")
    return register_version(run_id, name, float(metrics["val_rel_l2"]), card, description, uri)
