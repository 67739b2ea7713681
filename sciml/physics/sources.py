"""Source functions f ~ S(sigma, s): sparse sums of Gaussians on a 12 x 12 lattice (SPEC 2).

The Gaussians are separable, so a batch of sources is G P G^T with G (n x 12), and its
rfft2 is Gy P Gx^T with the DFTs of G's columns: no FFT of f is needed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import keyed_random
from .constants import AMPLITUDE_RANGE, LATTICE_SIDE, N_GAUSSIANS, SIGMA, SPARSITY_LEVELS, lattice_centres

# Layout of an example's draws: which counter feeds which random number.
DRAW_OCCUPANCY = 0  # N_GAUSSIANS draws: p_i is zero when below s
DRAW_AMPLITUDE = DRAW_OCCUPANCY + N_GAUSSIANS  # N_GAUSSIANS draws: U(1e-3, 1) amplitudes
DRAW_FALLBACK = DRAW_AMPLITUDE + N_GAUSSIANS  # 2 draws: which p_i and its amplitude if all are 0
SOURCE_DRAWS = DRAW_FALLBACK + 2  # the coefficient sampler's draws start here


@lru_cache(maxsize=8)
def gaussian_matrix(n: int) -> np.ndarray:
    """G[j, i] = exp(-(x_j - c_i)^2 / (2 sigma^2)), x_j = j / n: one axis of the lattice.

    Distances are not wrapped, as in the published generator; the outermost centres sit
    5 sigma from the boundary.
    """
    x = np.arange(n, dtype=np.float64) / n
    c = np.asarray(lattice_centres(), dtype=np.float64)
    g = np.exp(-((x[:, None] - c[None, :]) ** 2) / (2.0 * SIGMA**2))
    g.setflags(write=False)
    return g


@lru_cache(maxsize=8)
def spectral_gaussian_matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fft of G along y, rfft of G along x): rfft2(G P G^T) = gy @ P @ gx.T."""
    g = gaussian_matrix(n)
    gy = np.fft.fft(g, axis=0)
    gx_t = np.ascontiguousarray(np.fft.rfft(g, axis=0).T)
    gy.setflags(write=False)
    gx_t.setflags(write=False)
    return gy, gx_t


def sample_sparsity(seed: int, stream: int, split: int, indices: np.ndarray) -> np.ndarray:
    """s per example, in exactly equal shares within every aligned block of 4 indices.

    Each block draws a random permutation of the four levels, so any prefix of a split
    (the nested downstream subsets) is balanced to within one example per level.
    """
    indices = np.asarray(indices, dtype=np.int64)
    levels = len(SPARSITY_LEVELS)
    block_keys = keyed_random.keys(seed, stream, keyed_random.PURPOSE_SPARSITY, split, indices // levels)
    u = keyed_random.uniforms(block_keys, 0, levels)
    slot = indices % levels
    mine = u[np.arange(len(indices)), slot][:, None]
    before = np.arange(levels)[None, :] < slot[:, None]
    rank = np.sum((u < mine) | ((u == mine) & before), axis=1)
    return np.asarray(SPARSITY_LEVELS, dtype=np.float64)[rank]


def amplitudes(u: np.ndarray, sparsity: np.ndarray) -> np.ndarray:
    """p (B, 144) from an example's uniforms: 0 with probability s, else U(1e-3, 1); never all 0."""
    low, high = AMPLITUDE_RANGE
    occupied = u[:, DRAW_OCCUPANCY:DRAW_OCCUPANCY + N_GAUSSIANS] >= sparsity[:, None]
    p = np.where(occupied, low + (high - low) * u[:, DRAW_AMPLITUDE:DRAW_AMPLITUDE + N_GAUSSIANS], 0.0)
    empty = ~occupied.any(axis=1)
    if empty.any():
        rows = np.flatnonzero(empty)
        which = np.minimum((u[rows, DRAW_FALLBACK] * N_GAUSSIANS).astype(np.int64), N_GAUSSIANS - 1)
        p[rows, which] = low + (high - low) * u[rows, DRAW_FALLBACK + 1]
    return p


def build_sources(p: np.ndarray, n: int, centre: bool, out: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sources and their rfft2 for amplitudes p (B, 144), computed in float64.

    f <- f / max(f); if ``centre``, f <- f - mean(f) and the mean mode is set to exactly 0.
    Returns f (B, n, n) and f_hat (B, n, n//2 + 1). With ``out`` (B, n, n) of any float
    dtype, the last step writes f there (e.g. straight into a float32 output, rounding
    the float64 values once) and ``out`` is returned as f.
    """
    g = gaussian_matrix(n)
    gy, gx_t = spectral_gaussian_matrices(n)
    weights = p.reshape(-1, LATTICE_SIDE, LATTICE_SIDE)  # [iy, ix]
    f = (g @ weights) @ g.T
    scale = 1.0 / f.max(axis=(1, 2))
    weights = weights * scale[:, None, None]
    f_hat = gy @ weights @ gx_t
    if out is None:
        out = f
    if centre:
        f *= scale[:, None, None]
        np.subtract(f, (f_hat[:, 0, 0].real / (n * n))[:, None, None], out=out)  # the mean, without another pass
        f_hat[:, 0, 0] = 0.0
    else:
        np.multiply(f, scale[:, None, None], out=out)
    return out, f_hat


@lru_cache(maxsize=16)
def _power_factors(n: int, ky: tuple[int, ...], kx: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """gy at rows +ky then -ky, (2h, 12), and gx^T at columns kx, (12, C): see :func:`spectrum_power`."""
    gy, gx_t = spectral_gaussian_matrices(n)
    rows = np.concatenate([np.asarray(ky), -np.asarray(ky)]) % n
    out = np.ascontiguousarray(gy[rows]), np.ascontiguousarray(gx_t[:, list(kx)])
    for array in out:
        array.setflags(write=False)
    return out


def spectrum_power(p: np.ndarray, n: int, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """|rfft2(G P G^T)|^2 at wavenumbers (+-ky, kx), before normalization and centring.

    ky, kx: non-negative wavenumbers (h,) and (C,). Returns (B, 2, h, C): [:, 0] at +ky,
    [:, 1] at -ky; the normalized sources' power times a positive factor per example,
    except at the mean mode, which centring sets to 0.
    """
    h, c = len(ky), len(kx)
    rows, columns = _power_factors(n, tuple(int(k) for k in ky), tuple(int(k) for k in kx))
    spectrum = np.matmul(rows, np.matmul(p.reshape(-1, LATTICE_SIDE, LATTICE_SIDE), columns))  # (B, 2h, C)
    square = np.square(spectrum.view(np.float64), out=spectrum.view(np.float64))
    return np.add(square[..., 0::2], square[..., 1::2]).reshape(-1, 2, h, c)
