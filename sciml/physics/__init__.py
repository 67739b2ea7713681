"""The science: sources, the three PDE systems and their spectral solver (SPEC 1-5).

Pure numpy: no storage, torch or Ray (tests/test_architecture.py). The names it shares
with storage and models (splits, coefficients, channels) come from ``sciml.core.layout``.
``generate_examples`` is the entry point for dataset generation.
"""

from .constants import D, GENERATOR_VERSION, physical_constants
from .generate import generate_examples, solve_examples
from .spec import SYSTEMS, SystemSpec
from .spectral import apply_operator, drop_nyquist, solve, solve_spectral, symbol_parts

__all__ = [
    "D",
    "GENERATOR_VERSION",
    "SYSTEMS",
    "SystemSpec",
    "apply_operator",
    "drop_nyquist",
    "generate_examples",
    "physical_constants",
    "solve",
    "solve_examples",
    "solve_spectral",
    "symbol_parts",
]
