"""The science's own vocabulary: splits and their random-number keys, coefficients, channels.

Physics generates with these names, storage stores them, models read them: they live
here, below all three, so that none of them needs another's imports (SPEC sections 3-4).
"""

from __future__ import annotations

SPLITS = ("train", "val", "test")

# Each split's number in the random-number keys of its examples (physics.keyed_random).
# Changing a number changes every example of every dataset: bump
# sciml.physics.constants.GENERATOR_VERSION with it (tests/core/test_layout.py ties the two).
SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}

# Constant PDE coefficients of the one operator, in model-channel order (SPEC section 4):
# K = [[k11, k12], [k12, k22]], v = (v1, v2), omega.
COEFF_COLUMNS = ("k11", "k22", "k12", "v1", "v2", "omega")
N_COEFFS = len(COEFF_COLUMNS)

# Model input channels: the source f followed by the broadcast coefficients.
CHANNELS = ("f",) + COEFF_COLUMNS
IN_CHANNELS = len(CHANNELS)

# What one example holds: its index in the split, the two fields (n, n), the coefficients,
# the achieved advection-to-diffusion ratio (SYS-2, else NaN) and the source sparsity.
FIELD_COLUMNS = ("source", "solution")
COLUMNS = ("index",) + FIELD_COLUMNS + COEFF_COLUMNS + ("psi", "sparsity")
