"""What to generate: a validated request and the content hash that identifies its dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sciml.core.checks import check_int, check_resolution, check_seed
from sciml.core.files import canonical_hash
from sciml.physics import GENERATOR_VERSION, SystemSpec, physical_constants


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
            object.__setattr__(self, field, check_int(field, getattr(self, field), 0))
        if self.n_train + self.n_val + self.n_test == 0:
            raise ValueError("n_train: the three splits hold no example; ask for at least one")
        object.__setattr__(self, "resolution", check_resolution("resolution", self.resolution))
        object.__setattr__(self, "seed", check_seed("seed", self.seed))
        object.__setattr__(self, "shard_size", check_int("shard_size", self.shard_size, 1))

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
