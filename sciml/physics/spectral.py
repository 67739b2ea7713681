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

from sciml.core.layout import COEFF_COLUMNS

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
def _factors(n: int) -> dict[str, np.ndarray]:
    """What each coefficient multiplies in the symbol: rows (1, m) for kx terms, columns
    (n, 1) for ky terms, the full grid only for the kx ky term (m = n//2 + 1)."""
    ky, kx = wavenumbers(n)
    factors = {"k11": FOUR_PI2 * kx * kx, "k22": FOUR_PI2 * ky * ky, "k12": 2.0 * FOUR_PI2 * kx * ky,
               "v1": TWO_PI * kx, "v2": TWO_PI * ky}
    for factor in factors.values():
        factor.setflags(write=False)
    return factors


def _combine(terms: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray | None:
    """sum of coefficient * factor in the order given, broadcast to ``shape`` (a new array).

    Coefficients shaped (...) act per example; each product is formed on the factor's own
    (row, column or grid) shape, so the sum is the elementwise one with the same roundings.
    """
    out = None
    for value, factor in terms:
        product = value.reshape(value.shape + (1, 1)) * factor
        if out is None:
            out = product
        elif np.broadcast_shapes(out.shape, product.shape) == shape:
            out = np.add(out, product, out=out if out.shape == shape else None)
        else:
            out = out + product
    if out is not None and out.shape != shape:
        out = np.array(np.broadcast_to(out, shape))
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
    factors = _factors(n)
    batch = np.broadcast_shapes(*(v.shape for v in values.values())) if values else ()
    shape = batch + (n, n // 2 + 1)
    real = _combine([(values[k], factors[k]) for k in ("k11", "k22", "k12") if k in values], shape)
    if real is None:
        real = np.zeros(shape)
    if "omega" in values:
        real -= values["omega"].reshape(values["omega"].shape + (1, 1))
    imag = _combine([(values[k], factors[k]) for k in ("v1", "v2") if k in values], shape)
    return real, imag


def inverse_symbol(real: np.ndarray, imag: np.ndarray | None, overwrite: bool = False
                    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray | None], dict[str, np.ndarray]]:
    """1 / symbol, 0 on the Nyquist modes and where the symbol is 0; and those singular modes.

    Returns (inverse, (mean_zero, singular), parts): inverse is real (no velocity) or
    complex; mean_zero flags a zero symbol at the mean mode (per example: Poisson and
    advection-diffusion always have it); singular is None when no other mode has a zero
    symbol (the common case, found with reductions instead of a mask), else a boolean mask
    shaped like the symbol. parts holds real**2 and imag**2 for a complex symbol (what Psi
    needs). ``overwrite`` lets a real symbol's buffer be reused for the inverse.
    """
    half = real.shape[-2] // 2
    parts: dict[str, np.ndarray] = {}
    singular = None
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # zero symbols are handled below
        if imag is None:
            mean_zero = real[..., 0, 0] == 0
            inverse = np.divide(1.0, real, out=real if overwrite else None)
            inverse[..., 0, 0][mean_zero] = 0.0
            if not (np.isfinite(inverse.max()) and np.isfinite(inverse.min())):
                singular = ~np.isfinite(inverse)  # symbol 0 (or so small that 1/symbol overflows)
        else:
            # conj(symbol) / |symbol|^2, written straight into the complex array.
            parts["real2"] = np.multiply(real, real)
            parts["imag2"] = np.square(imag)
            scale = np.add(parts["real2"], parts["imag2"])
            mean_zero = scale[..., 0, 0] == 0
            np.divide(1.0, scale, out=scale)
            scale[..., 0, 0][mean_zero] = 0.0
            if not np.isfinite(scale.max()):  # scale >= 0: only +inf can appear
                singular = ~np.isfinite(scale)  # |symbol| = 0 (or below 1e-154, where 1/|symbol|^2 overflows)
            inverse = np.empty(scale.shape, dtype=np.complex128)
            np.multiply(real, scale, out=inverse.real)
            np.negative(scale, out=scale)
            np.multiply(imag, scale, out=inverse.imag)
    inverse[..., half, :] = 0.0
    inverse[..., :, half] = 0.0
    if singular is not None:
        inverse[singular] = 0.0
    return inverse, (mean_zero, singular), parts


def drop_singular(f_hat: np.ndarray, zeros: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
    """Zero f_hat where the symbol is 0 (in place); flags of the examples that lost a nonzero mode."""
    mean_zero, singular = zeros
    batch = f_hat.shape[:-2]
    changed = np.broadcast_to(mean_zero, batch) & (f_hat[..., 0, 0] != 0)
    f_hat[..., 0, 0][changed] = 0.0
    if singular is not None:
        at = np.flatnonzero(np.broadcast_to(singular, f_hat.shape))
        lost = at[f_hat.flat[at] != 0]
        if lost.size:
            f_hat.flat[lost] = 0.0
            changed.flat[np.unique(lost // (f_hat.shape[-2] * f_hat.shape[-1]))] = True
    return changed


def solve_spectral(f_hat: np.ndarray, real: np.ndarray,
                   imag: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shared solver core: u_hat = f_hat / symbol, with u_hat = 0 on the Nyquist modes.

    Where the symbol is 0 the source has no solution: u_hat and f_hat are set to 0 there
    (f_hat in place, SPEC 3). Returns (u_hat, changed) where ``changed`` (one flag per
    example) says that f_hat lost a nonzero mode, so the caller must rebuild f from it.
    """
    inverse, zeros, _ = inverse_symbol(real, imag)
    changed = drop_singular(f_hat, zeros)
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
    return advection_ratio_squared_parts(u_hat, real * real, imag * imag)


def advection_ratio_squared_parts(u_hat: np.ndarray, real2: np.ndarray, imag2: np.ndarray) -> np.ndarray:
    """:func:`advection_ratio` from the squared symbol parts (the solver has them already)."""
    n = u_hat.shape[-2]
    power = np.square(u_hat.real)
    square = np.square(u_hat.imag)
    power += square
    power *= parseval_weights(n)
    advection = np.sum(np.multiply(power, imag2, out=square), axis=(-2, -1))
    diffusion = np.sum(np.multiply(power, real2, out=square), axis=(-2, -1))
    return np.sqrt(advection / diffusion)


# ---------------------------------------------------------------- advection-diffusion without omega (SYS-2)

@lru_cache(maxsize=8)
def _moment_weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Parseval weight times kx^a per column, (m, 5); ky^b per row, (5, n); a, b = 0..4."""
    ky, kx = wavenumbers(n)
    columns = parseval_weights(n)[0][:, None] * kx[0][:, None] ** np.arange(5)  # 0 on the Nyquist column
    rows = ky[:, 0][None, :] ** np.arange(5)[:, None]
    columns, rows = np.ascontiguousarray(columns), np.ascontiguousarray(rows)
    for array in (columns, rows):
        array.setflags(write=False)
    return columns, rows


@lru_cache(maxsize=8)
def _symbol_rows(n: int) -> np.ndarray:
    """(n, 4): 1, 4 pi^2 ky^2, ky, 2 pi ky per rfft2 row: the symbol is these times per-column terms."""
    ky, _ = wavenumbers(n)
    ky = ky[:, 0]
    out = np.ascontiguousarray(np.stack([np.ones(n), FOUR_PI2 * ky * ky, ky, TWO_PI * ky], axis=1))
    out.setflags(write=False)
    return out


def _per_example(coeffs: Mapping[str, object], name: str, batch: int) -> np.ndarray:
    value = np.asarray(coeffs[name], dtype=np.float64)
    return value if value.shape == (batch,) else np.broadcast_to(value, (batch,))  # broadcast_to is slow


def advection_solve_spectral(f_hat: np.ndarray, coeffs: Mapping[str, object]) -> np.ndarray | None:
    """u_hat = f_hat / symbol in place for advection-diffusion (k11, k22, k12, v1, v2; no omega), (B, n, m).

    u_hat = f_hat conj(symbol) / |symbol|^2. conj(symbol) is a rank-4 product, rows
    (1, 4 pi^2 ky^2, ky, 2 pi ky) times per-example column terms, computed by one small
    matrix product per example straight into a complex array (real and imaginary parts
    interleaved): fewer passes over the spectrum than the general solver. Returns u_hat
    (f_hat's memory), or None, with f_hat untouched, where this shortcut does not apply
    (a nonzero mean of f, or a zero symbol at another mode): the general solver then
    handles it.
    """
    batch, n, m = f_hat.shape
    if "omega" in coeffs or not {"k11", "k22", "k12", "v1", "v2"} <= set(coeffs) or np.any(f_hat[:, 0, 0]):
        return None
    _, kx = wavenumbers(n)
    kx = kx[0]
    k11, k22, k12, v1, v2 = (_per_example(coeffs, name, batch)[:, None] for name in ("k11", "k22", "k12", "v1", "v2"))
    columns = np.zeros((batch, 4, m, 2))  # per column: (real, imaginary) parts of conj(symbol)
    columns[:, 0, :, 0] = k11 * (FOUR_PI2 * kx * kx)
    columns[:, 1, :, 0] = k22
    columns[:, 2, :, 0] = k12 * (2.0 * FOUR_PI2 * kx)
    columns[:, 0, :, 1] = -v1 * (TWO_PI * kx)
    columns[:, 3, :, 1] = -v2
    inverse = np.matmul(_symbol_rows(n), columns.reshape(batch, 4, 2 * m))  # (B, n, 2m): conj(symbol)
    square = np.square(inverse)
    scale = np.add(square[..., 0::2], square[..., 1::2])  # |symbol|^2, contiguous: strided passes are slow
    half = n // 2
    scale[:, 0, 0] = np.inf  # the mean: u_hat = 0
    scale[:, half, :] = np.inf  # Nyquist: u_hat = 0
    scale[:, :, half] = np.inf
    with np.errstate(divide="ignore"):
        np.divide(1.0, scale, out=scale)
    if not np.isfinite(scale.max()):  # another zero symbol (or one below 1e-154)
        return None
    inverse = inverse.view(np.complex128)
    np.multiply(inverse, scale, out=inverse)
    return np.multiply(f_hat, inverse, out=f_hat)


def advection_ratio_moments(u_hat: np.ndarray, coeffs: Mapping[str, object]) -> np.ndarray:
    """Psi = ||v . grad u|| / ||div(K grad u)|| per example from the power spectrum's moments.

    With P = w |u_hat|^2 (Parseval weights w) and M_ab = sum P kx^a ky^b over the full
    spectrum, ||v . grad u||^2 ~ 4 pi^2 (v1^2 M20 + 2 v1 v2 M11 + v2^2 M02) and
    ||div(K grad u)||^2 ~ 16 pi^4 sum P (k11 kx^2 + k22 ky^2 + 2 k12 kx ky)^2: quadratic
    forms of the coefficients in 8 moments, from two small products per example.
    ``u_hat`` (B, n, m) must be 0 on the Nyquist modes; it is left as it is.
    """
    batch, n, m = u_hat.shape
    columns, rows = _moment_weights(n)
    square = np.square(u_hat.view(np.float64))
    power = np.add(square[..., 0::2], square[..., 1::2])  # |u_hat|^2
    moments = np.matmul(rows, np.matmul(power, columns))  # (B, 5, 5): [b, a] = sum P kx^a ky^b
    k11, k22, k12, v1, v2 = (_per_example(coeffs, name, batch) for name in ("k11", "k22", "k12", "v1", "v2"))

    def moment(a: int, b: int) -> np.ndarray:
        return moments[:, b, a]

    advection = TWO_PI**2 * (v1 * v1 * moment(2, 0) + 2.0 * v1 * v2 * moment(1, 1) + v2 * v2 * moment(0, 2))
    diffusion = FOUR_PI2**2 * (k11 * k11 * moment(4, 0) + k22 * k22 * moment(0, 4)
                               + (4.0 * k12 * k12 + 2.0 * k11 * k22) * moment(2, 2)
                               + 4.0 * k11 * k12 * moment(3, 1) + 4.0 * k22 * k12 * moment(1, 3))
    return np.sqrt(advection / diffusion)
