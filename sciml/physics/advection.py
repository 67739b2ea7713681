"""SYS-2: the mixing weight lambda that gives an example exactly the target Psi (SPEC 3).

With K = (1 - lambda) D K0 and v = lambda v0, write a = 4 pi^2 D k^T K0 k, b = 2 pi v0.k
and t = lambda / (1 - lambda). By Parseval, with w = |f_hat|^2 times mode multiplicity,

  Psi(t)^2 = sum w x / sum w y,   x = t^2 b^2 / (a^2 + t^2 b^2) = tau / (rho + tau),  y = 1 - x,

with tau = t^2 and rho = a^2 / b^2 per mode, increasing in t (every x is). Newton on
log Psi(s) = log Psi* with s = log t, safeguarded by bisection inside the bracket found so
far, solves it per example.

The work is vectorized over groups of examples, with two fused sums over each example's
modes per iteration: with inv = 1 / (rho + tau) and W = sum w,

  sum w x = tau sum w inv,   sum w y = W - sum w x,   sum w x y = sum w x - tau^2 sum w inv^2

(d log Psi / ds = sum w x y (1 / sum w x + 1 / sum w y)). ``sum w y`` by difference loses
about log10(1 + Psi^2) digits, nothing at the Psi of the systems. An example stops when
its last Newton step, from the quadratic convergence seen so far, predicts an error below
``TOLERANCE``: no extra evaluation only to find a tiny step.
"""

from __future__ import annotations

import numpy as np

MAX_ITERATIONS = 60
# An example is done when the error after its last Newton step, estimated as
# |step|^3 / |previous step|^2 (quadratic convergence: e_{k+1} ~ C e_k^2 with C ~ |step| / |previous|^2),
# is below this, with the step itself small enough to be in the quadratic regime.
TOLERANCE = 1e-14
_QUADRATIC = 1e-4
_MAX_STEP = 4.0  # in log t, while the bracket is still open on one side
_RHO_MAX = 1e100  # rho where b = 0 (x = 0, y = 1), finite so that inv^2 stays a normal number
GROUP = 256  # examples per vectorized solve (their arrays stay within the L3 cache)


def mode_ratio(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """rho = a^2 / b^2 per mode (capped where b = 0); a must be nonzero."""
    with np.errstate(divide="ignore"):
        rho = np.divide(a, b, out=out)
    np.square(rho, out=rho)
    return np.minimum(rho, _RHO_MAX, out=rho)


def _sums(s: np.ndarray, rho: np.ndarray, w: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, ...]:
    """sum w x, sum w y, sum w x y per row at log t = s (each a fixed-order sum over one row)."""
    tau = np.exp(2.0 * s)
    inv = np.add(rho, tau[:, None])
    np.divide(1.0, inv, out=inv)
    q = np.multiply(w, inv)
    sx = tau * np.sum(q, axis=1)
    return sx, total - sx, sx - tau * tau * np.einsum("ij,ij->i", q, inv)


def solve_log_t(rho: np.ndarray, w: np.ndarray, psi_target: np.ndarray) -> np.ndarray:
    """log t per example with Psi(t) = psi_target; rho = a^2/b^2 and w are (B, modes).

    Every operation is elementwise or a sum over one example's modes, and each example
    stops after its own last step, so its result does not depend on the other examples
    of the batch (nor on where its rows sit in memory). Modes with a = 0 (the mean) must
    be left out.
    """
    rho = np.ascontiguousarray(rho, dtype=np.float64)
    w = np.ascontiguousarray(w, dtype=np.float64)
    goal = np.log(np.asarray(psi_target, dtype=np.float64))
    total = np.sum(w, axis=1)
    # Small-t asymptote Psi ~ t sqrt(sum w b^2/a^2 / sum w): exact for small Psi, a fair start otherwise
    # (and below the root: sum w (b^2/a^2) y / sum w y decreases with t).
    with np.errstate(divide="ignore"):
        start = goal - 0.5 * np.log(np.einsum("ij,ij->i", w, np.divide(1.0, rho)) / total)
    out = np.empty(len(goal))
    with np.errstate(divide="ignore", invalid="ignore"):
        for first in range(0, len(goal), GROUP):
            part = slice(first, first + GROUP)
            out[part] = _solve_group(rho[part], w[part], total[part], goal[part], start[part])
    return out


def _solve_group(rho: np.ndarray, w: np.ndarray, total: np.ndarray, goal: np.ndarray, s: np.ndarray) -> np.ndarray:
    count = len(goal)
    out = np.empty(count)
    rows = np.arange(count)  # where each remaining example's result goes
    lo, hi = np.full(count, -np.inf), np.full(count, np.inf)  # the bracket found so far
    last = np.full(count, np.nan)  # |previous Newton step| (nan: none, or it was a bisection)
    for _ in range(MAX_ITERATIONS):
        sx, sy, sxy = _sums(s, rho, w, total)
        h = 0.5 * np.log(sx / sy) - goal
        above = h > 0
        hi = np.where(above, s, hi)
        lo = np.where(h < 0, s, lo)
        step = h / (sxy * (1.0 / sx + 1.0 / sy))
        np.negative(step, out=step)
        step[h == 0] = 0.0
        np.clip(step, -_MAX_STEP, _MAX_STEP, out=step)
        proposal = s + step
        bisect = (proposal <= lo) | (proposal >= hi) | np.isnan(proposal)
        bisect &= (lo > -np.inf) & (hi < np.inf) | np.isnan(proposal)
        size = np.abs(step)
        done = (size * size * size < TOLERANCE * last * last) & (size <= _QUADRATIC) | (size == 0)
        done &= ~bisect
        if bisect.any():
            proposal = np.where(bisect, 0.5 * (lo + hi), proposal)
            size[bisect] = np.nan
        last = size
        if done.any():
            out[rows[done]] = proposal[done]
            if done.all():
                return out
            keep = ~done  # carry on with the rest only
            rows, rho, w, total, goal = rows[keep], rho[keep], w[keep], total[keep], goal[keep]
            proposal, lo, hi, last = proposal[keep], lo[keep], hi[keep], last[keep]
        s = proposal
    raise RuntimeError(f"Psi targeting did not converge in {MAX_ITERATIONS} iterations for {len(rows)} example(s)")
