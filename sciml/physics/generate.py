"""Examples as pure functions of (spec, seed, split, index): sources, coefficients, solutions.

Work is vectorized over chunks of a few examples (the complex working set then stays in
cache) and the inverse FFT runs once per example; nothing an example computes depends on
the other examples of its chunk, so any batching gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from sciml.data.schema import COEFF_COLUMNS, COLUMNS, SPLITS

from . import keyed_random
from .constants import PSI_RTOL
from .sources import SOURCE_DRAWS, amplitudes, build_sources, sample_sparsity
from .spec import SystemSpec
from .spectral import advection_ratio, solve_spectral, symbol_parts
from .systems import REGISTRY, System

CHUNK = 16  # examples per vectorized step
MAX_ATTEMPTS = 1000  # SYS-3 redraws per example before giving up


def validate_request(spec: SystemSpec, seed: int, split: str, resolution: int) -> None:
    if not isinstance(spec, SystemSpec):
        raise TypeError(f"spec: expected a SystemSpec, got {type(spec).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed: must be an integer in [0, 2**64), got {seed!r}")
    if split not in SPLITS:
        raise ValueError(f"split: must be one of {', '.join(SPLITS)}, got {split!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or resolution < 8 or resolution % 2:
        raise ValueError(f"resolution: must be an even integer >= 8, got {resolution!r}")


def _indices(indices) -> np.ndarray:
    array = np.asarray(indices)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"indices: expected a 1-D array of integers, got shape {array.shape} dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError("indices: must be >= 0")
    return array


def _attempt(spec: SystemSpec, system: System, seed: int, split: int, indices: np.ndarray,
             attempts: np.ndarray, sparsity: np.ndarray, n: int, exhaustive: bool = False) -> dict[str, np.ndarray]:
    """One draw of each example at the given attempt numbers, float64; 'accepted' says which stand."""
    keys = keyed_random.keys(seed, keyed_random.stream_id(spec.name), keyed_random.PURPOSE_EXAMPLE,
                             split, indices, attempts)
    u = keyed_random.uniforms(keys, 0, SOURCE_DRAWS + system.n_draws)
    f, f_hat = build_sources(amplitudes(u, sparsity), n, system.centre_source)
    terms = system.sample(spec, u[:, SOURCE_DRAWS:], f_hat, exhaustive)
    psi_target = terms.pop("psi_target", np.full(len(indices), np.nan))
    real, imag = symbol_parts(terms, n)
    u_hat, changed = solve_spectral(f_hat, real, imag)
    for row in np.flatnonzero(changed):
        f[row] = np.fft.irfft2(f_hat[row], s=(n, n))
    solution = np.empty_like(f)
    for row in range(len(indices)):
        solution[row] = np.fft.irfft2(u_hat[row], s=(n, n))

    out = {"source": f, "solution": solution, "psi_target": psi_target}
    for name in COEFF_COLUMNS:
        out[name] = terms.get(name, np.zeros(len(indices)))
    out["psi"] = advection_ratio(u_hat, real, imag) if system.targets_psi else np.full(len(indices), np.nan)
    if system.targets_psi:
        off = np.abs(out["psi"] / psi_target - 1.0) > PSI_RTOL
        if off.any():
            if exhaustive:
                raise RuntimeError(f"Psi targeting missed {PSI_RTOL:g} relative for indices {indices[off]}")
            redo = _attempt(spec, system, seed, split, indices[off], attempts[off], sparsity[off], n, True)
            for name in out:
                out[name][off] = redo[name]
    if system.max_abs_u is None:
        out["accepted"] = np.ones(len(indices), dtype=bool)
    else:
        out["accepted"] = np.abs(solution).max(axis=(1, 2)) <= system.max_abs_u
    return out


def _examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int,
              field_dtype: type) -> dict[str, np.ndarray]:
    validate_request(spec, seed, split, resolution)
    indices = _indices(indices)
    system = REGISTRY[spec.system]
    split_id = SPLITS.index(split)
    count, n = len(indices), int(resolution)
    sparsity = sample_sparsity(int(seed), keyed_random.stream_id(spec.name), split_id, indices)
    out = {"index": indices, "sparsity": sparsity,
           "source": np.empty((count, n, n), dtype=field_dtype),
           "solution": np.empty((count, n, n), dtype=field_dtype)}
    for name in COEFF_COLUMNS + ("psi", "psi_target"):
        out[name] = np.empty(count)
    rejected = np.zeros(count, dtype=np.int64)
    for start in range(0, count, CHUNK):
        pending = np.arange(start, min(start + CHUNK, count))
        while pending.size:
            result = _attempt(spec, system, int(seed), split_id, indices[pending], rejected[pending],
                              sparsity[pending], n)
            ok = result.pop("accepted")
            if ok.all() and pending[-1] - pending[0] + 1 == pending.size:
                rows, keep = slice(pending[0], pending[-1] + 1), slice(None)  # common case: no fancy-index copies
            else:
                rows, keep = pending[ok], ok
            for name, values in result.items():
                out[name][rows] = values[keep]
            pending = pending[~ok]
            rejected[pending] += 1
            if pending.size and rejected[pending].max() >= MAX_ATTEMPTS:
                raise RuntimeError(f"{spec.name}: index {indices[pending][0]} rejected {MAX_ATTEMPTS} times")
    out["rejected"] = rejected
    return out


def solve_examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int) -> dict[str, np.ndarray]:
    """Like :func:`generate_examples` but with float64 fields and the SYS-2 'psi_target' too."""
    return _examples(spec, seed, split, indices, resolution, np.float64)


def generate_examples(spec: SystemSpec, seed: int, split: str, indices, resolution: int) -> dict[str, np.ndarray]:
    """Examples ``indices`` (0-based within ``split``) of the dataset (spec, seed) at ``resolution``.

    Returns the columns of ``sciml.data.schema.COLUMNS`` (fields float32 (B, n, n), the
    rest float64, index int64) plus 'rejected' (int64, SYS-3 redraws per example).
    """
    out = _examples(spec, seed, split, indices, resolution, np.float32)
    del out["psi_target"]
    return {name: out[name] for name in COLUMNS + ("rejected",)}
