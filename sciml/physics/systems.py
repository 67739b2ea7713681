"""The three systems as coefficient samplers for the shared solver (SPEC 3).

A system turns an example's uniforms into the coefficients of the terms its operator has
(absent terms stay out of the symbol). SYS-2 also needs the source spectrum, to pick the
mixing weight that gives the drawn Psi exactly: it gets it as a function returning the
sources' spectral power at the wavenumbers it asks for, up to a positive factor per
example (Psi does not depend on the scale of f), so that it can run for a whole batch
before any full-grid spectrum exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from . import advection
from .constants import ADVDIFF_E_RANGE, D, MAX_ABS_U, SIGMA
from .spec import SystemSpec
from .spectral import FOUR_PI2, TWO_PI, nyquist_mask, parseval_weights, wavenumbers

# (ky (h,), kx (C,)), non-negative wavenumbers -> (B, 2, h, C): |rfft2(f)|^2 at (+ky, kx) and
# (-ky, kx), up to a positive factor per example.
Spectrum = Callable[[np.ndarray, np.ndarray], np.ndarray]
Sampler = Callable[[SystemSpec, np.ndarray, int, Spectrum, bool], dict[str, np.ndarray]]


@dataclass(frozen=True)
class System:
    n_draws: int  # uniforms the sampler consumes per example
    centre_source: bool  # subtract the mean of f (needed where the mean mode has symbol 0)
    sample: Sampler  # (spec, uniforms (B, n_draws), n, spectrum, exhaustive) -> coefficient terms
    max_abs_u: float | None  # examples with larger max |u| are rejected and redrawn
    targets_psi: bool  # the sampler also returns "psi_target"
    few_symbols: bool = False  # the coefficients take a few values only (the solver caches their symbols)


def _rotated_tensor(e: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R(theta)^T diag(1, e) R(theta) as (k11, k22, k12)."""
    c, s = np.cos(theta), np.sin(theta)
    return c * c + e * s * s, s * s + e * c * c, (e - 1.0) * s * c


def _sample_poisson(spec: SystemSpec, u: np.ndarray, n: int, spectrum: Spectrum,
                    exhaustive: bool) -> dict[str, np.ndarray]:
    e = spec.lo + (spec.hi - spec.lo) * u[:, 0]
    k11, k22, k12 = _rotated_tensor(e, 2.0 * np.pi * u[:, 1])
    return {"k11": D * k11, "k22": D * k22, "k12": D * k12}


def _sample_helmholtz(spec: SystemSpec, u: np.ndarray, n: int, spectrum: Spectrum,
                      exhaustive: bool) -> dict[str, np.ndarray]:
    count = int(spec.hi - spec.lo) + 1
    omega = spec.lo + np.minimum(np.floor(u[:, 0] * count), count - 1)
    diffusion = np.full(len(u), D)
    return {"k11": diffusion, "k22": diffusion.copy(), "omega": omega}


# Newton for Psi runs on the modes where a Gaussian of width SIGMA still has spectral
# power above e^-24 of its peak (about 1000 of 8320 modes at n = 128): the rest move Psi
# by ~1e-10 relative, far below PSI_RTOL. The achieved Psi is then measured on the full
# spectrum and checked; an example that misses is redone with every mode.
_POWER_CUTOFF = 24.0


@lru_cache(maxsize=8)
def _newton_modes(n: int, exhaustive: bool) -> np.ndarray:
    """Flat rfft2 indices used to target Psi: every mode with weight, or the low ones."""
    ky, kx = wavenumbers(n)
    k2 = ky * ky + kx * kx
    use = (k2 > 0) & ~nyquist_mask(n)
    if not exhaustive:
        use &= FOUR_PI2 * SIGMA**2 * k2 <= _POWER_CUTOFF
    return np.flatnonzero(use)


@dataclass(frozen=True)
class _NewtonPlan:
    ky: np.ndarray  # |ky| and kx of the smallest (+-ky, kx) box holding the modes
    kx: np.ndarray
    at: np.ndarray  # each mode's flat index in that box, laid out (2, len(ky), len(kx))
    factors: np.ndarray  # (5, modes): 4 pi^2 D (kx^2, ky^2, 2 kx ky), 2 pi (kx, ky): a and b per unit coefficient
    weights: np.ndarray  # Parseval weights of the modes


@lru_cache(maxsize=8)
def _newton_plan(n: int, exhaustive: bool, cutoff: float) -> _NewtonPlan:
    """The modes of :func:`_newton_modes` (which depends on ``cutoff``, the current
    _POWER_CUTOFF: part of the cache key) and where to find them."""
    m = n // 2 + 1
    modes = _newton_modes(n, exhaustive)
    row, col = np.divmod(modes, m)
    ky_all, kx_all = wavenumbers(n)
    ky, kx = ky_all[row, 0], kx_all[0, col]
    ky_box = np.arange(int(np.abs(ky).max()) + 1)
    kx_box = np.arange(int(kx.max()) + 1)
    at = ((ky < 0) * len(ky_box) + np.abs(ky).astype(np.int64)) * len(kx_box) + kx.astype(np.int64)
    factors = np.stack([FOUR_PI2 * D * kx * kx, FOUR_PI2 * D * ky * ky, FOUR_PI2 * D * 2.0 * kx * ky,
                        TWO_PI * kx, TWO_PI * ky])
    plan = _NewtonPlan(ky_box, kx_box, at, factors, parseval_weights(n)[row, col])
    for array in vars(plan).values():
        array.setflags(write=False)
    return plan


def _sample_advdiff(spec: SystemSpec, u: np.ndarray, n: int, spectrum: Spectrum,
                    exhaustive: bool) -> dict[str, np.ndarray]:
    e_lo, e_hi = ADVDIFF_E_RANGE
    k11, k22, k12 = _rotated_tensor(e_lo + (e_hi - e_lo) * u[:, 0], 2.0 * np.pi * u[:, 1])
    phi = 2.0 * np.pi * u[:, 2]
    v1, v2 = np.cos(phi), np.sin(phi)
    psi_target = spec.lo + (spec.hi - spec.lo) * u[:, 3]

    plan = _newton_plan(n, exhaustive, _POWER_CUTOFF)
    power = spectrum(plan.ky, plan.kx)
    w = np.take(power.reshape(len(power), -1), plan.at, axis=1)  # (B, modes), row-major
    w *= plan.weights
    # a (diffusion) and b (advection) symbols of K0 and v0 on the modes: one small product per example.
    coeffs = np.zeros((len(u), 2, 5))
    coeffs[:, 0, 0], coeffs[:, 0, 1], coeffs[:, 0, 2] = k11, k22, k12
    coeffs[:, 1, 3], coeffs[:, 1, 4] = v1, v2
    ab = np.matmul(coeffs, plan.factors)  # (B, 2, modes)
    rho = advection.mode_ratio(ab[:, 0], ab[:, 1])
    t = np.exp(advection.solve_log_t(rho, w, psi_target))
    lam = t / (1.0 + t)
    diffusion = D / (1.0 + t)  # (1 - lambda) D without cancellation
    return {"k11": diffusion * k11, "k22": diffusion * k22, "k12": diffusion * k12,
            "v1": lam * v1, "v2": lam * v2, "psi_target": psi_target}


REGISTRY: dict[str, System] = {
    "poisson": System(2, True, _sample_poisson, None, False),
    "advdiff": System(4, True, _sample_advdiff, None, True),
    "helmholtz": System(1, False, _sample_helmholtz, MAX_ABS_U, False, few_symbols=True),  # D and integer omega
}
