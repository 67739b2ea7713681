"""Normalization statistics (SPEC section 5): per-example rms of f and |coefficients|, medians.

numpy only: the generator computes them as it writes shards, the training loop from the
rows it holds, and both must give the same numbers.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .layout import COEFF_COLUMNS, N_COEFFS


def field_rms(fields: np.ndarray) -> np.ndarray:
    """Root mean square of each stored field (B, n, n), accumulated in float64: one dot product per field."""
    out = np.empty(len(fields))
    for start in range(0, len(fields), 8):  # a few rows at a time: no float64 copy of a whole block
        block = fields[start:start + 8]
        for row, values in enumerate(block.reshape(len(block), -1).astype(np.float64), start):
            out[row] = np.sqrt(values @ values / values.size)
    return out


def example_statistics(columns: Mapping[str, np.ndarray], rms: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per example: rms of the stored (float32) source (``field_rms``; pass ``rms`` where it is
    already known), and |coefficients| (B, 6) in COEFF_COLUMNS order."""
    rms = field_rms(columns["source"]) if rms is None else rms
    abs_coeffs = np.abs(np.stack([np.asarray(columns[c], dtype=np.float64) for c in COEFF_COLUMNS], axis=1))
    return rms, abs_coeffs


def normalization(rms: np.ndarray, abs_coeffs: np.ndarray) -> dict[str, Any]:
    """SPEC 5 statistics: f_ref = median rms(f_i); c_ref[j] = median of the nonzero |c_ij| (1.0 if none).

    The median of each coefficient is taken over its own support: in a mixture of systems a
    term that is structurally zero in the others (v1, v2 outside SYS-2, omega outside SYS-3)
    would otherwise have a median of 0 and fall back to 1, putting the channels at scales far
    apart (SPEC A.5 wants them comparable). For one system, where a present term is never 0,
    this is the plain median, and a term absent from the system keeps the fallback 1.
    """
    rms = np.asarray(rms, dtype=np.float64)
    abs_coeffs = np.asarray(abs_coeffs, dtype=np.float64).reshape(-1, N_COEFFS)
    if rms.size == 0:
        raise ValueError("normalization: no examples to compute statistics from")
    c_ref = []
    for column in abs_coeffs.T:
        support = column[column != 0]
        c_ref.append(float(np.median(support)) if support.size else 1.0)
    return {"f_ref": float(np.median(rms)), "c_ref": c_ref, "norm": "rms"}
