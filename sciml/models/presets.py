"""Model-size presets of the paper's scaling axis (SPEC section 6) and config validation."""

from __future__ import annotations

# name -> (width d, modes m); spectral parameters 16 d^2 m^2 grow about x16 per step.
PRESETS: dict[str, tuple[int, int]] = {
    "64K": (16, 4),
    "1M": (16, 16),
    "16M": (32, 32),
    "256M": (128, 32),
}


def spectral_param_count(width: int, modes: int, layers: int = 4) -> int:
    """Real spectral parameters: layers x 2 corners x d^2 m^2 complex weights x 2 reals."""
    return layers * 2 * width * width * modes * modes * 2


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1, or a ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def resolve(
    preset: str | None, width: int | None, modes: int | None, layers: int
) -> tuple[str | None, int, int, int]:
    """Validated (preset, width, modes, layers) from a preset name or an explicit width + modes."""
    layers = check_positive_int("layers", layers)
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
        p_width, p_modes = PRESETS[preset]
        # Explicit values are allowed only when they agree (build_fno(**model.hparams)).
        for name, given, expected in (("width", width, p_width), ("modes", modes, p_modes)):
            if given is not None and given != expected:
                raise ValueError(
                    f"{name}={given!r} contradicts preset {preset!r} ({name}={expected})"
                )
        return preset, p_width, p_modes, layers
    if width is None or modes is None:
        missing = "width" if width is None else "modes"
        raise ValueError(
            f"{missing} is required when no preset is given (presets: {sorted(PRESETS)})"
        )
    return None, check_positive_int("width", width), check_positive_int("modes", modes), layers
