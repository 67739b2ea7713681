"""SYS-2: the mixing weight lambda that gives an example exactly the target Psi (SPEC 3).

With K = (1 - lambda) D K0 and v = lambda v0, write a = 4 pi^2 D k^T K0 k, b = 2 pi v0.k
and t = lambda / (1 - lambda). By Parseval, with w = |f_hat|^2 times mode multiplicity,

  Psi(t)^2 = sum w x / sum w (1 - x),   x = t^2 b^2 / (a^2 + t^2 b^2),

increasing in t (every x is). Newton on log Psi(s) = log Psi* with s = log t, safeguarded
by bisection inside the bracket found so far, solves it per example, vectorized.
"""

from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 60
# Stop after a Newton step this small: convergence is quadratic, so the point it lands on
# is accurate to about its square. The caller checks the achieved Psi on the full spectrum.
STEP_TOLERANCE = 1e-6
_MAX_STEP = 4.0  # in log t, while the bracket is still open on one side


def log_advection_ratio(s: np.ndarray, a2: np.ndarray, b2: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log Psi, d log Psi / d log t) at log t = s; a2, b2, w are (B, modes)."""
    t2 = np.exp(2.0 * s)[:, None]
    tb2 = t2 * b2
    r = 1.0 / (a2 + tb2)
    x = tb2 * r
    y = a2 * r
    wx = w * x
    sx = wx.sum(axis=1)
    sy = (w * y).sum(axis=1)
    sxy = (wx * y).sum(axis=1)
    return 0.5 * (np.log(sx) - np.log(sy)), sxy * (1.0 / sx + 1.0 / sy)


def solve_log_t(a2: np.ndarray, b2: np.ndarray, w: np.ndarray, psi_target: np.ndarray) -> np.ndarray:
    """log t per example with Psi(t) = psi_target.

    Each example stops updating after its own last step, so its result does not depend on
    the other examples of the batch. Modes with a = 0 (the mean) must be left out.
    """
    goal = np.log(psi_target)
    # Small-t asymptote Psi ~ t sqrt(sum w b^2/a^2 / sum w): exact for small Psi, a fair start otherwise.
    slope = np.sqrt(np.sum(w * (b2 / a2), axis=1) / np.sum(w, axis=1))
    s = goal - np.log(slope)
    lo = np.full_like(s, -np.inf)
    hi = np.full_like(s, np.inf)
    active = np.ones(s.shape, dtype=bool)
    for _ in range(MAX_ITERATIONS):
        value, derivative = log_advection_ratio(s, a2, b2, w)
        h = value - goal
        hi = np.where(active & (h > 0), s, hi)
        lo = np.where(active & (h < 0), s, lo)
        proposal = s + np.clip(-h / derivative, -_MAX_STEP, _MAX_STEP)
        outside = np.isfinite(lo) & np.isfinite(hi) & ((proposal <= lo) | (proposal >= hi))
        proposal = np.where(outside, 0.5 * (lo + hi), proposal)
        last = active & ~outside & (np.abs(proposal - s) < STEP_TOLERANCE)
        s = np.where(active, proposal, s)
        active &= ~last
        if not active.any():
            return s
    raise RuntimeError(f"Psi targeting did not converge in {MAX_ITERATIONS} iterations "
                       f"for {int(active.sum())} example(s)")
