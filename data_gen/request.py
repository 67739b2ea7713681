"""What to generate: a validated request and the content hash that identifies its dataset."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from sciml.data.manifest import canonical_hash
from sciml.physics import GENERATOR_VERSION, SystemSpec, physical_constants


def _check_int(field: str, value: Any, minimum: int, allowed: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{field}: must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class GenerationRequest:
    """One dataset: system and range, split sizes, grid and seed (shard_size only lays it out)."""

    spec: SystemSpec
    n_train: int
    n_val: int
    n_test: int
    resolution: int
    seed: int = 0
    shard_size: int = 1024

    def __post_init__(self) -> None:
        if not isinstance(self.spec, SystemSpec):
            raise ValueError(f"spec: must be a SystemSpec, got {type(self.spec).__name__}")
        for field in ("n_train", "n_val", "n_test"):
            _check_int(field, getattr(self, field), 0, "an integer >= 0")
            object.__setattr__(self, field, int(getattr(self, field)))
        if self.n_train + self.n_val + self.n_test == 0:
            raise ValueError("n_train: the three splits hold no example; ask for at least one")
        _check_int("resolution", self.resolution, 8, "an even integer >= 8")
        if self.resolution % 2:
            raise ValueError(f"resolution: must be an even integer >= 8, got {self.resolution!r}")
        _check_int("seed", self.seed, 0, "an integer in [0, 2**64)")
        if self.seed >= 2**64:
            raise ValueError(f"seed: must be an integer in [0, 2**64), got {self.seed!r}")
        _check_int("shard_size", self.shard_size, 1, "an integer >= 1")
        for field in ("resolution", "seed", "shard_size"):
            object.__setattr__(self, field, int(getattr(self, field)))

    @property
    def counts(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def spec_record(self) -> dict[str, Any]:
        """The manifest's ``spec``: the system and range plus every constant used."""
        return {**self.spec.to_dict(), **physical_constants()}

    @property
    def content_hash(self) -> str:
        """Identifies the examples, not their layout: shard_size is left out."""
        return canonical_hash({"spec": self.spec_record(), "seed": self.seed, "resolution": self.resolution,
                               "counts": self.counts, "generator_version": GENERATOR_VERSION})
