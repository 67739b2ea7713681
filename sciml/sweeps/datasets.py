"""The datasets a sweep needs: generated once, reused by content, handed to trials."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sciml.core.files import cache_key
from sciml.data.ray_datasets import DataSource, materialized_selection, read_selection
from sciml.physics import SystemSpec
from sciml.sweeps.questions import Pretraining, Question
from sciml.sweeps.settings import SweepSettings

# Above this many bytes in a sweep's largest split, trials read their selections through Ray
# Data instead of the sweep materialising every selection in the object store up front
# (docs/cluster.md, "Large datasets"). Settable without code edits, e.g. to rehearse the
# large-dataset path with small data: SCIML_MATERIALIZE_LIMIT_BYTES=4096.
MATERIALIZE_LIMIT_ENV = "SCIML_MATERIALIZE_LIMIT_BYTES"
MATERIALIZE_LIMIT_BYTES = 2 * 1024**3


def materialize_limit(environ=None) -> int:
    """The limit in bytes: SCIML_MATERIALIZE_LIMIT_BYTES (a whole number >= 0), else 2 GiB.

    ValueError naming the variable for anything else, so a typo exits 2 instead of silently
    choosing a data path (the CLI checks it before any work).
    """
    text = (os.environ if environ is None else environ).get(MATERIALIZE_LIMIT_ENV, "").strip()
    if not text:
        return MATERIALIZE_LIMIT_BYTES
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{MATERIALIZE_LIMIT_ENV}: must be a whole number of bytes >= 0, got {text!r}")
    return value


def largest_split_bytes(settings: SweepSettings) -> int:
    """Bytes of the two float32 fields of the largest split a trial reads (a pre-training
    may mix three datasets of n_pretrain examples)."""
    s = settings
    return max(s.n_pretrain * 3, s.n_downstream, s.n_val, s.n_test) * 2 * 4 * s.resolution**2


def streams(settings: SweepSettings, environ=None) -> bool:
    """Whether a sweep's trials stream their data (largest split at or above the limit)."""
    return largest_split_bytes(settings) >= materialize_limit(environ)


def dataset_seed(base_seed: int, spec: SystemSpec) -> int:
    """Each dataset gets its own seed: equal seeds would give two systems the same sources."""
    return int(cache_key([base_seed, spec.name], 8), 16) & 0x7FFFFFFF


@dataclass
class SweepData:
    """Directories of every dataset in a sweep, keyed by system name."""

    directories: dict[str, str] = field(default_factory=dict)

    def source(self, spec: SystemSpec) -> DataSource:
        return DataSource(self.directories[spec.name])

    def pretraining_sources(self, pretraining: Pretraining) -> tuple[DataSource, ...]:
        return tuple(self.source(s) for s in pretraining.specs)


@dataclass(frozen=True)
class DatasetRequest:
    """One dataset a sweep needs and the content-addressed cache directory it lives in."""

    name: str
    spec: SystemSpec
    n_train: int
    seed: int
    directory: str


def dataset_requests(question: Question, settings: SweepSettings,
                     skip: frozenset[str] = frozenset()) -> list[DatasetRequest]:
    """Every pre-training and downstream dataset of a sweep, without generating anything.

    Pure (no Ray, no files): the runner generates these and the cost plan counts them, so
    the two cannot name different directories. `skip`: pre-training labels no trial trains
    on (registered models replace them at every preset, --pretrained).
    """
    wanted: dict[str, tuple[SystemSpec, int]] = {}
    for task in question.tasks:
        for pretraining in task.pretrainings:
            if pretraining.label in skip:
                continue
            for spec in pretraining.specs:
                wanted[spec.name] = (spec, settings.n_pretrain)
    for task in question.tasks:
        # A system that is both pre-training and downstream data keeps the larger split.
        size = max(settings.n_downstream, wanted.get(task.name, (None, 0))[1])
        wanted[task.name] = (task.downstream, size)
    requests = []
    for name, (spec, n_train) in wanted.items():
        seed = dataset_seed(settings.seed, spec)
        key = cache_key([spec.to_dict(), n_train, settings.n_val, settings.n_test, settings.resolution, seed])
        directory = os.path.join(os.path.abspath(settings.cache), "data", f"{slug(name)}-n{settings.resolution}-{key}")
        requests.append(DatasetRequest(name, spec, n_train, seed, directory))
    return requests


def prepare_datasets(question: Question, settings: SweepSettings, skip: frozenset[str] = frozenset()) -> SweepData:
    """Generate (or reuse, by content) every pre-training and downstream dataset.

    The sweep owns its cache, so a cached dataset is verified against its manifest each time
    and its damaged or missing shards are regenerated (same bytes; ``ensure_dataset`` says
    which) rather than refused: a user-supplied directory is ``python -m sciml.train``'s
    to refuse, a cache entry is ours to repair.
    """
    from data_gen import ensure_dataset  # the sweep's one door into generation (Ray Data)

    data = SweepData()
    for r in dataset_requests(question, settings, skip):
        ensure_dataset(r.spec, r.directory, n_train=r.n_train, n_val=settings.n_val, n_test=settings.n_test,
                       resolution=settings.resolution, seed=r.seed, shard_size=settings.shard_size)
        data.directories[r.name] = r.directory
    return data


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")


class TrialDatasets:
    """Ray Datasets for trials: val/test per task and the first-N train subsets.

    Small selections are materialised once in the object store so that each trial only
    iterates blocks already in memory (no per-trial Parquet reads); large ones stay lazy,
    and each trial reads (and materialises) only its own selection. Their tasks ask for no
    CPU: the trials hold the cluster's CPUs while they read, so tasks waiting for one would
    wait forever (a smoke sweep with the limit lowered hung exactly so, docs/cluster.md "Large datasets");
    a read briefly shares its trial's cores instead.
    """

    def __init__(self, materialize: bool):
        self._materialize = materialize
        self._cache: dict[tuple, Any] = {}

    def get(self, sources: tuple[DataSource, ...], split: str, limit: int | None = None):
        key = (tuple((s.path, s.share) for s in sources), split, limit)
        if key not in self._cache:
            self._cache[key] = (materialized_selection(sources, split, limit) if self._materialize
                                else read_selection(sources, split, limit, num_cpus=0))
        return self._cache[key]
