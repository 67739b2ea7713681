"""Slow reference: the published generator's algorithm, one example at a time.

Each source is a loop over the 144 Gaussians on the full grid and the PDE is solved with
complex fft2 / ifft2. It draws the same random numbers and coefficients as the fast path,
so the two must agree to round-off; tests use it as an independent check and the
benchmark as the baseline the fast path is measured against.
"""

from __future__ import annotations

import numpy as np

from sciml.core.layout import COEFF_COLUMNS, SPLIT_KEYS

from . import keyed_random
from .constants import LATTICE_SIDE, SIGMA, lattice_centres
from .sources import SOURCE_DRAWS, amplitudes, sample_sparsity
from .spec import SystemSpec
from .systems import REGISTRY


def reference_source(p: np.ndarray, n: int, centre: bool) -> np.ndarray:
    """One source from amplitudes p (144,), summing full-grid Gaussians one by one."""
    x = np.arange(n) / n
    x_grid, y_grid = np.meshgrid(x, x)  # [y, x]
    centres = lattice_centres()
    source = np.zeros((n, n))
    for i in range(LATTICE_SIDE):  # row of the lattice: y
        for j in range(LATTICE_SIDE):  # column: x
            r2 = (x_grid - centres[j]) ** 2 + (y_grid - centres[i]) ** 2
            source += p[i * LATTICE_SIDE + j] * np.exp(-r2 / (2.0 * SIGMA**2))
    source /= source.max()
    return source - source.mean() if centre else source


def _full_symbol(coeffs: dict[str, float], n: int) -> np.ndarray:
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k, k)
    symbol = 4.0 * np.pi**2 * (coeffs["k11"] * kx**2 + coeffs["k22"] * ky**2 + 2.0 * coeffs["k12"] * kx * ky)
    symbol = symbol + 2j * np.pi * (coeffs["v1"] * kx + coeffs["v2"] * ky) - coeffs["omega"]
    return symbol, (np.abs(kx) == n // 2) | (np.abs(ky) == n // 2)


def reference_examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int) -> dict[str, np.ndarray]:
    """The examples of :func:`sciml.physics.solve_examples`, computed the slow way (float64)."""
    system = REGISTRY[spec.system]
    stream = keyed_random.stream_id(spec.name)
    split_id = SPLIT_KEYS[split]
    indices = np.asarray(indices, dtype=np.int64)
    n = resolution
    sparsity = sample_sparsity(seed, stream, split_id, indices)
    rows: list[dict[str, object]] = []
    for index, s in zip(indices, sparsity):
        for attempt in range(1000):
            key = keyed_random.keys(seed, stream, keyed_random.PURPOSE_EXAMPLE, split_id, np.array([index]), attempt)
            u = keyed_random.uniforms(key, 0, SOURCE_DRAWS + system.n_draws)
            f = reference_source(amplitudes(u, np.array([s]))[0], n, system.centre_source)
            power = np.abs(np.fft.rfft2(f)) ** 2

            def spectrum(ky, kx, power=power):  # |f_hat|^2 at (+ky, kx) and (-ky, kx)
                return power[np.ix_(np.concatenate([ky, -ky]) % n, kx)].reshape(1, 2, len(ky), len(kx))

            terms = system.sample(spec, u[:, SOURCE_DRAWS:], n, spectrum, False)
            coeffs = {name: float(terms[name][0]) if name in terms else 0.0 for name in COEFF_COLUMNS}
            symbol, nyquist = _full_symbol(coeffs, n)
            f_hat = np.fft.fft2(f)
            singular = symbol == 0
            if np.any(singular & (f_hat != 0)):
                f_hat[singular] = 0.0
                f = np.real(np.fft.ifft2(f_hat))
            u_hat = np.where(singular | nyquist, 0.0, f_hat / np.where(singular, 1.0, symbol))
            solution = np.real(np.fft.ifft2(u_hat))
            if system.max_abs_u is None or np.abs(solution).max() <= system.max_abs_u:
                break
        rows.append({"index": index, "source": f, "solution": solution, "sparsity": s, "rejected": attempt,
                     **coeffs})
    return {name: np.array([row[name] for row in rows]) for name in rows[0]} if rows else {}
