"""The three systems as coefficient samplers for the shared solver (SPEC 3).

A system turns an example's uniforms into the coefficients of the terms its operator has
(absent terms stay out of the symbol). SYS-2 also needs the source spectrum, to pick the
mixing weight that gives the drawn Psi exactly.
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

Sampler = Callable[[SystemSpec, np.ndarray, np.ndarray, bool], dict[str, np.ndarray]]


@dataclass(frozen=True)
class System:
    n_draws: int  # uniforms the sampler consumes per example
    centre_source: bool  # subtract the mean of f (needed where the mean mode has symbol 0)
    sample: Sampler  # (spec, uniforms (B, n_draws), f_hat, exhaustive) -> coefficient terms
    max_abs_u: float | None  # examples with larger max |u| are rejected and redrawn
    targets_psi: bool  # the sampler also returns "psi_target"


def _rotated_tensor(e: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R(theta)^T diag(1, e) R(theta) as (k11, k22, k12)."""
    c, s = np.cos(theta), np.sin(theta)
    return c * c + e * s * s, s * s + e * c * c, (e - 1.0) * s * c


def _sample_poisson(spec: SystemSpec, u: np.ndarray, f_hat: np.ndarray, exhaustive: bool) -> dict[str, np.ndarray]:
    e = spec.lo + (spec.hi - spec.lo) * u[:, 0]
    k11, k22, k12 = _rotated_tensor(e, 2.0 * np.pi * u[:, 1])
    return {"k11": D * k11, "k22": D * k22, "k12": D * k12}


def _sample_helmholtz(spec: SystemSpec, u: np.ndarray, f_hat: np.ndarray, exhaustive: bool) -> dict[str, np.ndarray]:
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


def _sample_advdiff(spec: SystemSpec, u: np.ndarray, f_hat: np.ndarray, exhaustive: bool) -> dict[str, np.ndarray]:
    e_lo, e_hi = ADVDIFF_E_RANGE
    k11, k22, k12 = _rotated_tensor(e_lo + (e_hi - e_lo) * u[:, 0], 2.0 * np.pi * u[:, 1])
    phi = 2.0 * np.pi * u[:, 2]
    v1, v2 = np.cos(phi), np.sin(phi)
    psi_target = spec.lo + (spec.hi - spec.lo) * u[:, 3]

    n = f_hat.shape[-2]
    modes = _newton_modes(n, exhaustive)
    ky, kx = wavenumbers(n)
    kx = np.broadcast_to(kx, (n, n // 2 + 1)).ravel()[modes]
    ky = np.broadcast_to(ky, (n, n // 2 + 1)).ravel()[modes]
    a = (FOUR_PI2 * D) * (k11[:, None] * (kx * kx) + k22[:, None] * (ky * ky) + (2.0 * k12)[:, None] * (kx * ky))
    b = TWO_PI * (v1[:, None] * kx + v2[:, None] * ky)
    f_modes = f_hat.reshape(len(f_hat), -1)[:, modes]
    w = parseval_weights(n).ravel()[modes] * (f_modes.real**2 + f_modes.imag**2)
    t = np.exp(advection.solve_log_t(a * a, b * b, w, psi_target))
    lam = t / (1.0 + t)
    diffusion = D / (1.0 + t)  # (1 - lambda) D without cancellation
    return {"k11": diffusion * k11, "k22": diffusion * k22, "k12": diffusion * k12,
            "v1": lam * v1, "v2": lam * v2, "psi_target": psi_target}


REGISTRY: dict[str, System] = {
    "poisson": System(2, True, _sample_poisson, None, False),
    "advdiff": System(4, True, _sample_advdiff, None, True),
    "helmholtz": System(1, False, _sample_helmholtz, MAX_ABS_U, False),
}
