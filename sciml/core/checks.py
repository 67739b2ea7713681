"""Shared validators. Each raises ValueError('<field>: must be ..., got ...').

Library code names the field (a dataclass attribute or function argument); only a
command line maps a field to its ``--flag`` (``sciml.cli``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

PRECISIONS = ("fp32", "bf16")
MIN_RESOLUTION = 8


def check_int(field: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high] (either bound optional); bools are not integers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{field}: must be {_int_range(low, high)}, got {value!r}")
    return int(value)


def _int_range(low: int | None, high: int | None) -> str:
    if high is None:
        return "an integer" if low is None else f"an integer >= {low}"
    if low is None:
        return f"an integer <= {high}"
    if high == 2**64 - 1 and low == 0:
        return "an integer in [0, 2**64)"
    return f"an integer >= {low} and <= {high}"


def check_seed(field: str, value: Any) -> int:
    """A seed: an integer in [0, 2**64)."""
    return check_int(field, value, 0, 2**64 - 1)


def check_ints(field: str, values: Iterable[Any], low: int = 1) -> tuple[int, ...]:
    """A non-empty sequence of integers >= low."""
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low for v in values):
        raise ValueError(f"{field}: must be a non-empty list of integers >= {low}, got {list(values)}")
    return tuple(int(v) for v in values)


def check_number(field: str, value: Any, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the interval given (closed unless ``*_open``)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low))
    ok = ok and (high is None or (value < high if high_open else value <= high))
    if not ok:
        raise ValueError(f"{field}: must be {_interval(low, high, low_open, high_open)}, got {value!r}")
    return float(value)


def _interval(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_numbers(field: str, values: Iterable[Any], low: float | None = None, high: float | None = None, *,
                  low_open: bool = False, high_open: bool = False) -> tuple[float, ...]:
    """A non-empty sequence of finite numbers in the interval given."""
    values = tuple(values)
    try:
        if not values:
            raise ValueError
        return tuple(check_number(field, v, low, high, low_open=low_open, high_open=high_open) for v in values)
    except ValueError:
        raise ValueError(f"{field}: must be a non-empty list of "
                         f"{_interval(low, high, low_open, high_open).replace('a number', 'numbers').replace('a finite number', 'finite numbers')}"
                         f", got {list(values)}") from None


def check_choice(field: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{field}: must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def check_resolution(field: str, value: Any) -> int:
    """A grid size n: an even integer >= 8 (SPEC 1: the Nyquist modes need an even n)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < MIN_RESOLUTION or value % 2:
        raise ValueError(f"{field}: must be an even integer >= {MIN_RESOLUTION}, got {value!r}")
    return int(value)


def check_modes_fit(field: str, modes: int, resolution: int, *, model: str | None = None) -> None:
    """SPEC 6: m Fourier modes per dimension need a grid of at least 2m (m <= n/2).

    ``model`` names the model the modes belong to, where the field holds several.
    """
    if 2 * modes > resolution:
        owner = f" ({model})" if model else ""
        raise ValueError(f"{field}: m={modes}{owner} must not exceed n/2={resolution // 2} for resolution {resolution} "
                         f"(needs n >= {2 * modes})")


def check_precision(field: str, value: Any) -> str:
    return check_choice(field, value, PRECISIONS)
