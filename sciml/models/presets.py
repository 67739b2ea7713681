"""Model-size presets of the paper's scaling axis (SPEC section 6) and config validation."""

from __future__ import annotations

from sciml.core.checks import check_choice, check_int

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


def resolve(
    preset: str | None, width: int | None, modes: int | None, layers: int
) -> tuple[str | None, int, int, int]:
    """Validated (preset, width, modes, layers) from a preset name or an explicit width + modes."""
    layers = check_int("layers", layers, 1)
    if preset is not None:
        check_choice("preset", preset, tuple(PRESETS))
        p_width, p_modes = PRESETS[preset]
        # Explicit values are allowed only when they agree (build_fno(**model.hparams)).
        for name, given, expected in (("width", width, p_width), ("modes", modes, p_modes)):
            if given is not None and given != expected:
                raise ValueError(f"{name}: {given!r} contradicts preset {preset!r} ({name}={expected})")
        return preset, p_width, p_modes, layers
    if width is None or modes is None:
        missing = "width" if width is None else "modes"
        raise ValueError(f"{missing}: required when no preset is given (presets: {', '.join(PRESETS)})")
    return None, check_int("width", width, 1), check_int("modes", modes, 1), layers
