"""`--pretrained`: sweep from registered foundation models instead of pre-training.

Each entry is `LABEL=models:/NAME@ALIAS` (or `/VERSION`), LABEL being one of the question's
pre-training labels (`SYS-1(1,5)`, `mixed`, ...), or a bare `models:/...`, whose label is
the one the model was registered under (its `pretrain_label` tag). The model's preset,
read from its file, picks the cell (label, preset) it replaces: it must be one of the
sweep's presets. Cells no entry covers are pre-trained as usual, so a Q4 sweep can take a
registered SYS-1 model and still pre-train the others. Aliases are resolved once, when the
sweep starts; the version used is recorded on the sweep's parent run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sciml.sweeps.questions import Question
from sciml.sweeps.settings import SweepSettings
from sciml.tracking.registry import FetchedModel, fetch_model, parse_model_uri, registered_model_name

FIELD = "pretrained"
LABEL_TAG = "pretrain_label"  # the version tag the registration writes (sciml.training.registration)


@dataclass(frozen=True)
class PretrainedModel:
    label: str
    preset: str
    fetched: FetchedModel

    @property
    def path(self) -> str:
        return self.fetched.path


def split_entry(entry: str) -> tuple[str | None, str]:
    """(label or None, models:/ URI) of one --pretrained entry; ValueError naming `pretrained` if malformed."""
    label, sep, uri = entry.rpartition("=")
    if not sep:
        label, uri = None, entry
    elif not label:
        raise ValueError(f"{FIELD}: give LABEL=models:/... or models:/..., got {entry!r}")
    parse_model_uri(uri, FIELD)
    return label, uri


def replaced_labels(question: Question, settings: SweepSettings, cells) -> frozenset[str]:
    """Pre-training labels a registered model replaces at every preset: no trial trains on their data."""
    labels = {p.label for t in question.tasks for p in t.pretrainings}
    return frozenset(label for label in labels if all((label, preset) in cells for preset in settings.presets))


def planned_cells(question: Question, settings: SweepSettings) -> tuple[set[tuple[str, str]], list[str]]:
    """The (label, preset) cells the --pretrained entries replace, known without the registry, for the plan.

    A model registered by a sweep is named `sciml-<label>-<preset>` (registered_model_name), which
    gives its cell; a LABEL= entry under another name is the label's only preset when the sweep has
    one. Other entries are returned apart: only the registry (resolve_pretrained) knows their cell.
    """
    labels = sorted({p.label for t in question.tasks for p in t.pretrainings})
    cells: set[tuple[str, str]] = set()
    unknown: list[str] = []
    for entry in settings.pretrained:
        label, uri = split_entry(entry)
        name = parse_model_uri(uri, FIELD)[0]
        matches = [(lab, preset) for lab in ([label] if label else labels) for preset in settings.presets
                   if registered_model_name(lab, preset) == name]
        if not matches and label in labels and len(settings.presets) == 1:
            matches = [(label, settings.presets[0])]
        if len(matches) == 1:
            cells.add(matches[0])
        else:
            unknown.append(entry)
    return cells, unknown


def resolve_pretrained(question: Question, settings: SweepSettings,
                       uri: str | None = None) -> dict[tuple[str, str], PretrainedModel]:
    """Download every --pretrained model (into `<cache>/pretrained/registry`) and key it by its cell."""
    from sciml.training.checkpoint import read_hparams
    from sciml.training.registration import model_preset

    labels = sorted({p.label for t in question.tasks for p in t.pretrainings})
    cache = os.path.join(os.path.abspath(settings.cache), "pretrained", "registry")
    resolved: dict[tuple[str, str], PretrainedModel] = {}
    for entry in settings.pretrained:
        label, model_uri = split_entry(entry)
        fetched = fetch_model(model_uri, cache, uri, FIELD)
        if label is None:
            label = fetched.version.tags.get(LABEL_TAG)
            if label is None:
                raise ValueError(f"{FIELD}: {model_uri} has no {LABEL_TAG} tag; give LABEL={model_uri} "
                                 f"with LABEL one of {labels}")
        if label not in labels:
            raise ValueError(f"{FIELD}: {label!r} is not a pre-training of {question.key} "
                             f"(with these --systems); it has {labels}")
        preset = model_preset(read_hparams(fetched.path))  # the header only: the weights stay on disk
        if preset not in settings.presets:
            raise ValueError(f"{FIELD}: {model_uri} is a {preset} model, the sweep's presets are "
                             f"{list(settings.presets)} (set --presets {preset})")
        if (label, preset) in resolved:
            raise ValueError(f"{FIELD}: two models for {label} at {preset}: "
                             f"{resolved[label, preset].fetched.requested} and {model_uri}")
        resolved[label, preset] = PretrainedModel(label, preset, fetched)
    return resolved
