"""Which system and which coefficient range a dataset samples: ``SYS-1(1,5)`` and friends."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

SYSTEMS = ("poisson", "advdiff", "helmholtz")
_NUMBER = {"poisson": 1, "advdiff": 2, "helmholtz": 3}
_BY_NUMBER = {v: k for k, v in _NUMBER.items()}
# What lo and hi mean for each system, for error messages.
RANGE_MEANING = {
    "poisson": "the range of the diffusion eigenvalue e",
    "advdiff": "the range of the advection-to-diffusion ratio Psi",
    "helmholtz": "the range of the wavenumber omega",
}
_NAME = re.compile(r"^\s*SYS-([123])\(\s*([^,\s]+)\s*,\s*([^)\s]+)\s*\)\s*$")


@dataclass(frozen=True)
class SystemSpec:
    """A PDE system and the range [lo, hi] of its varied coefficient (SPEC section 3)."""

    system: str
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise ValueError(f"system: must be one of {', '.join(SYSTEMS)}, got {self.system!r}")
        meaning = RANGE_MEANING[self.system]
        for field in ("lo", "hi"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{field}: must be a finite number, got {value!r} ({meaning})")
            if self.system == "helmholtz" and (value < 1 or not float(value).is_integer()):
                raise ValueError(f"{field}: must be an integer >= 1, got {value!r} ({meaning})")
            if value <= 0:
                raise ValueError(f"{field}: must be > 0, got {value!r} ({meaning})")
            object.__setattr__(self, field, float(value))
        if self.lo > self.hi:
            raise ValueError(f"lo: must be <= hi, got lo={self.lo:g} > hi={self.hi:g} ({meaning})")

    @property
    def number(self) -> int:
        return _NUMBER[self.system]

    @property
    def name(self) -> str:
        return f"SYS-{self.number}({self.lo:g},{self.hi:g})"

    @classmethod
    def parse(cls, name: str) -> "SystemSpec":
        match = _NAME.match(name)
        if match is None:
            raise ValueError(f"name: expected 'SYS-<1|2|3>(lo,hi)', e.g. 'SYS-1(1,5)', got {name!r}")
        number, lo, hi = match.groups()
        try:
            lo_value, hi_value = float(lo), float(hi)
        except ValueError:
            raise ValueError(f"name: lo and hi must be numbers, got {name!r}") from None
        return cls(_BY_NUMBER[int(number)], lo_value, hi_value)

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SystemSpec":
        """Inverse of :meth:`to_dict`; extra keys (e.g. a manifest's constants) are ignored."""
        missing = [k for k in ("system", "lo", "hi") if k not in d]
        if missing:
            raise ValueError(f"spec: missing keys {missing}")
        return cls(d["system"], d["lo"], d["hi"])

    def __str__(self) -> str:
        return self.name
