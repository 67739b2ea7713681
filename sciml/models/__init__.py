"""Neural operators: the FNO of SPEC section 6 and its size presets."""

from sciml.models.fno import FNO, build_fno, count_parameters
from sciml.models.presets import PRESETS, spectral_param_count

__all__ = ["FNO", "PRESETS", "build_fno", "count_parameters", "spectral_param_count"]
