"""Physical and sampling constants of the three systems (SPEC sections 2-3).

Changing any value here changes every generated dataset: bump GENERATOR_VERSION with it
so that content hashes of old datasets no longer match.
"""

from __future__ import annotations

# Bumped whenever the generated numbers change for the same (spec, seed, split, index).
GENERATOR_VERSION = 1

D = 0.01  # diffusion scale
SIGMA = 1.0 / 32.0  # Gaussian width, independent of the grid
LATTICE_SIDE = 12  # 12 x 12 = 144 centres
N_GAUSSIANS = LATTICE_SIDE * LATTICE_SIDE
LATTICE_SPACING = 2.0 * SIGMA
LATTICE_CENTER = 0.5
SPARSITY_LEVELS = (0.2, 0.4, 0.6, 0.8)
AMPLITUDE_RANGE = (1e-3, 1.0)
ADVDIFF_E_RANGE = (1.0, 5.0)  # SYS-2 base-tensor eigenvalue
MAX_ABS_U = 2.0  # SYS-3: larger solutions (near resonance) are rejected and redrawn
PSI_RTOL = 1e-6  # SYS-2: achieved Psi vs target


def physical_constants() -> dict:
    """The constants as recorded in a dataset manifest."""
    return {
        "diffusion": D,
        "sigma": SIGMA,
        "n_gaussians": N_GAUSSIANS,
        "lattice_spacing": LATTICE_SPACING,
        "lattice_center": [LATTICE_CENTER, LATTICE_CENTER],
        "sparsity_levels": list(SPARSITY_LEVELS),
        "amplitude_range": list(AMPLITUDE_RANGE),
        "advdiff_e_range": list(ADVDIFF_E_RANGE),
        "max_abs_u": MAX_ABS_U,
        "psi_rtol": PSI_RTOL,
        "generator_version": GENERATOR_VERSION,
    }


def lattice_centres() -> list[float]:
    """The 12 centre coordinates along one axis, symmetric about LATTICE_CENTER."""
    half = (LATTICE_SIDE - 1) / 2.0
    return [LATTICE_CENTER + (i - half) * LATTICE_SPACING for i in range(LATTICE_SIDE)]

