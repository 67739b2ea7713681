"""The one periodic operator of all three systems and its spectral solver (SPEC 1 and 3).

  -div(K grad u) + v . grad u - omega * u = f
  symbol(k) = 4 pi^2 k^T K k + 2 pi i (v . k) - omega,   u_hat = f_hat / symbol.

Fields are indexed [y, x] on the grid j / n of [0, 1)^2; transforms are numpy's rfft2
over the last two axes, so wavenumbers are ky (rows, fftfreq) and kx (columns, rfftfreq).
Coefficients are mappings with keys from ``COEFF_COLUMNS``, scalars or one value per
example; an absent key means that term is absent (0).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np

from sciml.data.schema import COEFF_COLUMNS

FOUR_PI2 = 4.0 * np.pi**2
TWO_PI = 2.0 * np.pi


@lru_cache(maxsize=8)
def wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ky (n, 1), kx (1, n//2 + 1)) as float64 integers, matching rfft2's layout."""
    ky = np.fft.fftfreq(n, 1.0 / n).reshape(n, 1)
    kx = np.fft.rfftfreq(n, 1.0 / n).reshape(1, n // 2 + 1)
    ky.setflags(write=False)
    kx.setflags(write=False)
    return ky, kx


@lru_cache(maxsize=8)
def nyquist_mask(n: int) -> np.ndarray:
    """True on the Nyquist row and column (|ky| = n/2 or kx = n/2), where u_hat is set to 0."""
    ky, kx = wavenumbers(n)
    mask = (np.abs(ky) == n // 2) | (kx == n // 2)
    mask.setflags(write=False)
    return mask


@lru_cache(maxsize=8)
def parseval_weights(n: int) -> np.ndarray:
    """Multiplicity of each rfft2 mode in a full-spectrum sum (columns 0 < kx < n/2 count
    twice); 0 on the Nyquist modes. sum(w |g_hat|^2) / n^2 = sum over the grid of g^2."""
    _, kx = wavenumbers(n)
    w = np.where((kx > 0) & (kx < n // 2), 2.0, 1.0) * np.ones((n, 1))
    w[nyquist_mask(n)] = 0.0
    w.setflags(write=False)
    return w


@lru_cache(maxsize=8)
def _bases(n: int) -> dict[str, np.ndarray]:
    """What each coefficient multiplies in the symbol, on the full rfft2 grid."""
    ky, kx = wavenumbers(n)
    full = np.ones((n, n // 2 + 1))
    bases = {"k11": FOUR_PI2 * kx * kx * full, "k22": FOUR_PI2 * ky * ky * full, "k12": 2.0 * FOUR_PI2 * kx * ky,
             "v1": TWO_PI * kx * full, "v2": TWO_PI * ky * full}
    for basis in bases.values():
        basis.setflags(write=False)
    return bases


def _combine(terms: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """sum of coefficient * basis, coefficients shaped (...) broadcast over the grid."""
    out = None
    for value, basis in terms:
        value = value.reshape(value.shape + (1, 1))
        if out is None:
            out = value * basis
        else:
            out += value * basis
    return out


def symbol_parts(coeffs: Mapping[str, object], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Real and imaginary parts of the symbol, broadcast over the coefficient batch.

    Shapes (..., n, n//2 + 1); the imaginary part is None when there is no velocity.
    Terms whose coefficient is absent are skipped (adding an exact 0 changes nothing).
    """
    unknown = set(coeffs) - set(COEFF_COLUMNS)
    if unknown:
        raise KeyError(f"unknown coefficients {sorted(unknown)}; allowed: {COEFF_COLUMNS}")
    values = {name: np.asarray(value, dtype=np.float64) for name, value in coeffs.items()}
    bases = _bases(n)
    real = _combine([(values[k], bases[k]) for k in ("k11", "k22", "k12") if k in values])
    if real is None:
        real = np.zeros((n, n // 2 + 1))
    if "omega" in values:
        real = real - values["omega"].reshape(values["omega"].shape + (1, 1))
    imag = _combine([(values[k], bases[k]) for k in ("v1", "v2") if k in values])
    return real, imag


def solve_spectral(f_hat: np.ndarray, real: np.ndarray,
                   imag: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shared solver core: u_hat = f_hat / symbol, with u_hat = 0 on the Nyquist modes.

    Where the symbol is 0 the source has no solution: u_hat and f_hat are set to 0 there
    (f_hat in place, SPEC 3). Returns (u_hat, changed) where ``changed`` (one flag per
    example) says that f_hat lost a nonzero mode, so the caller must rebuild f from it.
    """
    half = f_hat.shape[-2] // 2
    with np.errstate(divide="ignore", invalid="ignore"):  # zero symbols are handled below
        if imag is None:
            inverse = np.divide(1.0, real)
            singular = real == 0
        else:
            # conj(symbol) / |symbol|^2, written straight into the complex array.
            scale = np.multiply(real, real)
            scale += np.square(imag)
            singular = scale == 0  # |symbol| = 0 (or below 1e-154, where 1/|symbol|^2 overflows anyway)
            np.divide(1.0, scale, out=scale)
            inverse = np.empty(scale.shape, dtype=np.complex128)
            np.multiply(real, scale, out=inverse.real)
            np.negative(scale, out=scale)
            np.multiply(imag, scale, out=inverse.imag)
    inverse[..., half, :] = 0.0
    inverse[..., :, half] = 0.0
    changed = np.zeros(f_hat.shape[:-2], dtype=bool)
    at = np.flatnonzero(singular)
    if at.size:
        inverse.flat[at] = 0.0
        if singular.shape != f_hat.shape:
            at = np.flatnonzero(np.broadcast_to(singular, f_hat.shape))
        lost = at[f_hat.flat[at] != 0]
        if lost.size:
            f_hat.flat[lost] = 0.0
            changed.flat[np.unique(lost // (f_hat.shape[-2] * f_hat.shape[-1]))] = True
    return f_hat * inverse, changed


def _spectral_batch(field: np.ndarray) -> np.ndarray:
    field = np.asarray(field, dtype=np.float64)
    if field.ndim not in (2, 3) or field.shape[-1] != field.shape[-2] or field.shape[-1] % 2:
        raise ValueError(f"field: expected (n, n) or (B, n, n) with n even, got shape {field.shape}")
    return np.fft.rfft2(field)


def solve(f: np.ndarray, coeffs: Mapping[str, object]) -> np.ndarray:
    """u with operator(u) = f, float64, for fields (n, n) or (B, n, n) (modes with a zero symbol -> 0)."""
    f_hat = _spectral_batch(f)
    n = f_hat.shape[-2]
    u_hat, _ = solve_spectral(f_hat, *symbol_parts(coeffs, n))
    return np.fft.irfft2(u_hat, s=(n, n))


def apply_operator(u: np.ndarray, coeffs: Mapping[str, object]) -> np.ndarray:
    """-div(K grad u) + v . grad u - omega u, evaluated spectrally, without the Nyquist modes."""
    u_hat = _spectral_batch(u)
    n = u_hat.shape[-2]
    real, imag = symbol_parts(coeffs, n)
    symbol = real if imag is None else real + 1j * imag
    out = np.where(nyquist_mask(n), 0.0, u_hat * symbol)
    return np.fft.irfft2(out, s=(n, n))


def drop_nyquist(field: np.ndarray) -> np.ndarray:
    """The field without its Nyquist modes: what PDE checks compare against (SPEC 1)."""
    f_hat = _spectral_batch(field)
    n = f_hat.shape[-2]
    return np.fft.irfft2(np.where(nyquist_mask(n), 0.0, f_hat), s=(n, n))


def advection_ratio(u_hat: np.ndarray, real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    """Psi = ||v . grad u|| / ||div(K grad u)|| by Parseval, per example (..., n, m) -> (...).

    ``real`` must be the diffusion part 4 pi^2 k^T K k alone (no omega term).
    """
    n = u_hat.shape[-2]
    power = parseval_weights(n) * (u_hat.real**2 + u_hat.imag**2)
    advection = np.sum(power * (imag * imag), axis=(-2, -1))
    diffusion = np.sum(power * (real * real), axis=(-2, -1))
    return np.sqrt(advection / diffusion)
