"""Examples as pure functions of (spec, seed, split, index): sources, coefficients, solutions.

Random draws are vectorized over the whole request; the grid work over chunks of a few
examples (the complex working set then stays in cache), with each field computed in
float64 and rounded once, straight into the output arrays. Nothing an example computes
depends on the other examples of its chunk (per-example matrix products, row-wise
elementwise work, numpy's batched FFTs give the same numbers as one at a time), so any
batching gives the same bytes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sciml.core.checks import check_choice, check_resolution, check_seed
from sciml.core.layout import COEFF_COLUMNS, COLUMNS, SPLIT_KEYS, SPLITS
from sciml.core.statistics import field_rms

from . import keyed_random
from .constants import PSI_RTOL
from .sources import SOURCE_DRAWS, amplitudes, build_sources, sample_sparsity, spectrum_power
from .spec import SystemSpec
from .spectral import (advection_ratio_moments, advection_ratio_squared_parts, advection_solve_spectral,
                       drop_singular, inverse_symbol, symbol_parts)
from .systems import REGISTRY, System

CHUNK = 8  # examples per vectorized step (the working set then stays in a 1 MiB L2)
MAX_ATTEMPTS = 1000  # SYS-3 redraws per example before giving up


def validate_request(spec: SystemSpec, seed: int, split: str, resolution: int) -> None:
    if not isinstance(spec, SystemSpec):
        raise TypeError(f"spec: expected a SystemSpec, got {type(spec).__name__}")
    check_seed("seed", seed)
    check_choice("split", split, SPLITS)
    check_resolution("resolution", resolution)


def _indices(indices) -> np.ndarray:
    array = np.asarray(indices)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"indices: expected a 1-D array of integers, got shape {array.shape} dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError("indices: must be >= 0")
    return array


def _draws(spec: SystemSpec, system: System, seed: int, split: int, indices: np.ndarray, attempts: np.ndarray,
           sparsity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each example's uniforms (B, draws) and source amplitudes (B, 144) at the given attempts."""
    keys = keyed_random.keys(seed, keyed_random.stream_id(spec.name), keyed_random.PURPOSE_EXAMPLE,
                             split, indices, attempts)
    u = keyed_random.uniforms(keys, 0, SOURCE_DRAWS + system.n_draws)
    return u, amplitudes(u, sparsity)


def _coefficients(spec: SystemSpec, system: System, u: np.ndarray, p: np.ndarray, n: int,
                  exhaustive: bool = False) -> dict[str, np.ndarray]:
    """The coefficient sampler on examples' draws (SYS-2: its Newton iteration, on the sources'
    low modes computed from the amplitudes, before any full-grid work)."""
    return system.sample(spec, u[:, SOURCE_DRAWS:], n, lambda ky, kx: spectrum_power(p, n, ky, kx), exhaustive)


def _solve(spec: SystemSpec, system: System, u: np.ndarray, p: np.ndarray, n: int, source: np.ndarray,
           solution: np.ndarray, exhaustive: bool = False, terms: dict[str, np.ndarray] | None = None,
           source_rms: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Solve examples from their draws: fields into ``source`` / ``solution`` (B, n, n), any float dtype.

    Returns the per-example columns (coefficients, psi, psi_target) and 'accepted'.
    Everything is computed in float64; each field is rounded to the output dtype once.
    ``terms`` are the sampler's coefficients for these examples when already computed
    (the sampler then runs once for a whole round); the grid work runs in chunks of CHUNK.
    With ``source_rms`` (B,), each stored source's rms goes there, computed right after
    the source is written, while it is in cache.
    """
    count = len(u)
    if terms is None:
        terms = _coefficients(spec, system, u, p, n, exhaustive)
    terms = dict(terms)
    out = {"psi_target": terms.pop("psi_target", np.full(count, np.nan))}
    for name in COEFF_COLUMNS:
        out[name] = terms.get(name, np.zeros(count))
    out["psi"] = np.full(count, np.nan)
    out["accepted"] = np.ones(count, dtype=bool)
    for start in range(0, count, CHUNK):
        block = slice(start, min(start + CHUNK, count))
        src = source[block]
        _, f_hat = build_sources(p[block], n, system.centre_source, out=src)
        if source_rms is not None:  # while the source is in cache
            source_rms[block] = field_rms(src)
        changed = _solve_chunk(system, {name: value[block] for name, value in terms.items()}, f_hat, n, src,
                               solution[block], out["psi"][block], out["accepted"][block])
        if source_rms is not None and changed.size:  # sources that lost a mode where the symbol is 0 were rebuilt
            source_rms[start + changed] = field_rms(src[changed])
    if system.targets_psi:
        off = np.abs(out["psi"] / out["psi_target"] - 1.0) > PSI_RTOL
        if off.any():
            if exhaustive:
                raise RuntimeError(f"Psi targeting missed {PSI_RTOL:g} relative for {int(off.sum())} example(s)")
            # Newton on every mode with weight for these examples (same draws, same sources).
            fields = np.empty((2, int(off.sum()), n, n), dtype=solution.dtype)
            redo_rms = None if source_rms is None else np.empty(int(off.sum()))
            redo = _solve(spec, system, u[off], p[off], n, fields[0], fields[1], True, source_rms=redo_rms)
            source[off], solution[off] = fields[0], fields[1]
            if source_rms is not None:
                source_rms[off] = redo_rms
            for name in out:
                out[name][off] = redo[name]
    return out


def _solve_chunk(system: System, terms: dict[str, np.ndarray], f_hat: np.ndarray, n: int, source: np.ndarray,
                 solution: np.ndarray, psi: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """u_hat = f_hat / symbol and u for a few examples; fills solution, psi and accepted in place.

    Returns the rows whose source was rebuilt (it lost a nonzero mode where the symbol is 0).
    """
    if system.targets_psi:  # advection-diffusion: its own shortcut (None where it does not apply)
        u_hat = advection_solve_spectral(f_hat, terms)
        if u_hat is not None:
            psi[...] = advection_ratio_moments(u_hat, terms)  # while u_hat is in cache
            solution[...] = np.fft.irfft2(u_hat, s=(n, n))
            return np.empty(0, dtype=np.int64)
    inverses = _cached_inverses(terms, n) if system.few_symbols and not system.targets_psi else None
    if inverses is not None:  # each example's 1 / symbol, the numbers the batch would give it
        for row, inverse in enumerate(inverses):
            np.multiply(f_hat[row], inverse, out=f_hat[row])
        u_hat, changed = f_hat, np.empty(0, dtype=np.int64)
    else:
        real, imag = symbol_parts(terms, n)
        inverse, zeros, parts = inverse_symbol(real, imag, overwrite=True)
        changed = np.flatnonzero(drop_singular(f_hat, zeros))
        for row in changed:
            source[row] = np.fft.irfft2(f_hat[row], s=(n, n))
        u_hat = np.multiply(f_hat, inverse, out=f_hat)  # f_hat is not needed any more
    values = np.fft.irfft2(u_hat, s=(n, n))  # batched: the same numbers as one example at a time
    if system.targets_psi:
        psi[...] = advection_ratio_squared_parts(u_hat, parts["real2"], parts["imag2"])
    _store(system, values, solution, accepted)
    return changed


def _cached_inverses(terms: dict[str, np.ndarray], n: int) -> list[np.ndarray] | None:
    """1 / symbol per example from a cache keyed by its coefficients, or None if one has a zero symbol.

    For systems whose coefficients take a few values (SYS-3: D and an integer omega), so that
    the symbol need not be rebuilt for every example. Everything in :func:`symbol_parts` and
    :func:`inverse_symbol` is elementwise per example, so an example's inverse computed alone
    is the one it gets in any batch, to the bit.
    """
    names = tuple(sorted(terms))
    columns = [np.asarray(terms[name], dtype=np.float64).tolist() for name in names]
    inverses = [_inverse_for(n, names, values) for values in zip(*columns)]
    return None if any(inverse is None for inverse in inverses) else inverses


@lru_cache(maxsize=128)  # SYS-3(o1,o2): one entry per integer omega (a miss costs what the batch would)
def _inverse_for(n: int, names: tuple[str, ...], values: tuple[float, ...]) -> np.ndarray | None:
    real, imag = symbol_parts({name: np.array([value]) for name, value in zip(names, values)}, n)
    inverse, (mean_zero, singular), _ = inverse_symbol(real, imag, overwrite=True)
    if mean_zero.any() or singular is not None:  # the general path drops those modes from f_hat
        return None
    inverse = inverse[0]
    inverse.setflags(write=False)
    return inverse


def _store(system: System, values: np.ndarray, solution: np.ndarray, accepted: np.ndarray) -> None:
    """solution[...] = values (rounded once) and, for systems with a limit, accepted = max |u| <= limit.

    The test is on the float64 values; with a float32 output it reads the rounded field
    (half the bytes) and only looks at the float64 values where that cannot decide:
    rounding is monotone, so round(max |u|) = max |round(u)|, and it is below (above)
    round(limit) only if max |u| is below (above) the limit.
    """
    solution[...] = values
    limit = system.max_abs_u
    if limit is None:
        return
    extreme = np.maximum(solution.max(axis=(1, 2)), -solution.min(axis=(1, 2)))
    if solution.dtype == np.float64:
        accepted[...] = extreme <= limit
        return
    bound = solution.dtype.type(limit)
    ok = extreme < bound
    tie = extreme == bound
    if tie.any():
        exact = values[tie]
        ok[tie] = np.maximum(exact.max(axis=(1, 2)), -exact.min(axis=(1, 2))) <= limit
    accepted[...] = ok


def _attempt(spec: SystemSpec, system: System, seed: int, split: int, indices: np.ndarray,
             attempts: np.ndarray, sparsity: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """One draw of each example at the given attempt numbers, float64 fields; 'accepted' says which stand."""
    u, p = _draws(spec, system, seed, split, indices, attempts, sparsity)
    fields = np.empty((2, len(indices), n, n))
    out = _solve(spec, system, u, p, n, fields[0], fields[1])
    out["source"], out["solution"] = fields[0], fields[1]
    return out


def _examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int,
              field_dtype: type, source_rms: bool = False) -> dict[str, np.ndarray]:
    validate_request(spec, seed, split, resolution)
    indices = _indices(indices)
    system = REGISTRY[spec.system]
    split_id = SPLIT_KEYS[split]
    count, n = len(indices), int(resolution)
    sparsity = sample_sparsity(int(seed), keyed_random.stream_id(spec.name), split_id, indices)
    out = {"index": indices, "sparsity": sparsity,
           "source": np.empty((count, n, n), dtype=field_dtype),
           "solution": np.empty((count, n, n), dtype=field_dtype)}
    for name in COEFF_COLUMNS + ("psi", "psi_target"):
        out[name] = np.empty(count)
    if source_rms:
        out["source_rms"] = np.empty(count)
    rejected = np.zeros(count, dtype=np.int64)
    pending = np.arange(count)
    # Rounds: every pending example is drawn and gets its coefficients (vectorized over all of
    # them), then solved in chunks; SYS-3 examples whose solution is too large are redrawn in
    # the next round.
    while pending.size:
        u, p = _draws(spec, system, int(seed), split_id, indices[pending], rejected[pending], sparsity[pending])
        terms = _coefficients(spec, system, u, p, n)  # once for the whole round
        accepted = np.empty(pending.size, dtype=bool)
        # The fields straight into the output where the rows are contiguous (the common case: no
        # redraws), else through a buffer for a few chunks at a time.
        step = pending.size if pending[-1] - pending[0] + 1 == pending.size else 8 * CHUNK
        for start in range(0, pending.size, step):
            part = slice(start, start + step)
            rows = pending[part]
            rms = np.empty(len(rows)) if source_rms else None
            block = np.s_[rows[0]:rows[-1] + 1] if step == pending.size else None
            fields = (out["source"][block], out["solution"][block]) if block is not None \
                else np.empty((2, len(rows), n, n), dtype=field_dtype)
            result = _solve(spec, system, u[part], p[part], n, fields[0], fields[1],
                            terms={name: value[part] for name, value in terms.items()}, source_rms=rms)
            ok = accepted[part] = result.pop("accepted")
            if block is None:
                out["source"][rows[ok]], out["solution"][rows[ok]] = fields[0][ok], fields[1][ok]
            for name, values in result.items():
                out[name][rows[ok]] = values[ok]
            if source_rms:
                out["source_rms"][rows[ok]] = rms[ok]
        pending = pending[~accepted]
        rejected[pending] += 1
        if pending.size and rejected[pending].max() >= MAX_ATTEMPTS:
            raise RuntimeError(f"{spec.name}: index {indices[pending][0]} rejected {MAX_ATTEMPTS} times")
    out["rejected"] = rejected
    return out


def solve_examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int) -> dict[str, np.ndarray]:
    """Like :func:`generate_examples` but with float64 fields and the SYS-2 'psi_target' too."""
    return _examples(spec, seed, split, indices, resolution, np.float64)


def generate_examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int, *,
                      source_rms: bool = False) -> dict[str, np.ndarray]:
    """Examples ``indices`` (0-based within ``split``) of the dataset (spec, seed) at ``resolution``.

    Returns the columns of ``sciml.core.layout.COLUMNS`` (fields float32 (B, n, n), the
    rest float64, index int64) plus 'rejected' (int64, SYS-3 redraws per example), and
    with ``source_rms`` 'source_rms': the rms of each stored (float32) source, accumulated
    in float64 (``sciml.core.statistics.field_rms``), computed while the rows are still
    in cache.
    """
    out = _examples(spec, seed, split, indices, resolution, np.float32, source_rms)
    del out["psi_target"]
    return {name: out[name] for name in COLUMNS + ("rejected",) + (("source_rms",) if source_rms else ())}
