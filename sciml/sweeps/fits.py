"""Scaling fits: err(x) = a * x^-alpha + c (c >= 0) over cell medians, with bootstrap intervals over seeds.

x is the number of downstream examples N (data scaling, Fig. 3) or the parameter count P
at a fixed N (model scaling, Fig. 4). The fit is least squares in log space, so every
point weighs by its relative error whatever its size: for each alpha on a grid (refined
twice around the best), (a, c) are solved by Gauss-Newton from the relative-error linear
solution, with the c = 0 boundary solved in closed form; the best alpha wins. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sciml.core.tables import MODEL_FIT_COLUMNS, SCALING_FIT_COLUMNS
from sciml.sweeps.results import cell_summary

ALPHA_RANGE = (0.01, 4.0)  # exponents searched for the offset power law
MIN_POINTS = 3  # fewer distinct sizes than this: reported as not fitted
BOOTSTRAP_SAMPLES = 500
BOOTSTRAP_SEED = 0  # recorded in every fit row: the intervals are reproducible
INTERVAL = (2.5, 97.5)  # percentile interval of the exponent
OFFSET, SLOPE, NOT_FITTED = "power_law_offset", "loglog_slope", "not fitted"
_GRID, _ZOOM, _ZOOM_ROUNDS, _GAUSS_NEWTON_STEPS, _CHUNK = 80, 16, 3, 4, 256


@dataclass(frozen=True)
class PowerLaw:
    a: float
    exponent: float
    c: float
    rmse_log: float  # root-mean-square residual of log(err)
    method: str
    note: str = ""


def _closed_form_c0(log_x: np.ndarray, log_y: np.ndarray, alphas: np.ndarray):
    """c = 0: log a = mean(log y + alpha log x); its sum of squared log residuals. alphas (B, A), log_y (B, n)."""
    log_a = np.mean(log_y[:, None, :] + alphas[..., None] * log_x, axis=-1)
    residual = log_a[..., None] - alphas[..., None] * log_x - log_y[:, None, :]
    return np.exp(log_a), np.sum(residual**2, axis=-1)


def _offset_solution(log_x: np.ndarray, log_y: np.ndarray, alphas: np.ndarray):
    """c > 0: (a, c) per alpha, by Gauss-Newton on log residuals; SSE inf where a or c leaves (0, inf)."""
    x = np.exp(-alphas[..., None] * log_x)  # (B, A, n)
    y = np.exp(log_y)[:, None, :]
    u, v = x / y, 1.0 / y  # relative-error linear least squares: a u + c v ~ 1, the starting point
    suu, suv, svv, su, sv = (np.sum(t, axis=-1) for t in (u * u, u * v, v * v, u, v))
    det = suu * svv - suv**2
    a, c = (su * svv - sv * suv) / det, (suu * sv - suv * su) / det

    def sse_of(a, c):
        model = a[..., None] * x + c[..., None]
        valid = (a > 0) & (c > 0) & np.all(model > 0, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sse = np.sum((np.log(np.where(model > 0, model, 1.0)) - log_y[:, None, :]) ** 2, axis=-1)
        return np.where(valid & np.isfinite(sse), sse, np.inf)

    sse = sse_of(a, c)
    for _ in range(_GAUSS_NEWTON_STEPS):
        model = np.maximum(a[..., None] * x + c[..., None], 1e-300)
        r = np.log(model) - log_y[:, None, :]
        j1, j2 = x / model, 1.0 / model
        h11, h12, h22 = (np.sum(t, axis=-1) for t in (j1 * j1, j1 * j2, j2 * j2))
        g1, g2 = np.sum(j1 * r, axis=-1), np.sum(j2 * r, axis=-1)
        det = h11 * h22 - h12**2
        new_a, new_c = a - (h22 * g1 - h12 * g2) / det, c - (h11 * g2 - h12 * g1) / det
        new_sse = sse_of(new_a, new_c)
        better = new_sse < sse  # accept a step only where it helps (no line search needed at this size)
        a, c, sse = np.where(better, new_a, a), np.where(better, new_c, c), np.where(better, new_sse, sse)
    return a, c, sse


def _profile(log_x, log_y, alphas, offset: bool):
    """Best (a, c, SSE) at every alpha of `alphas` (B, A): the c = 0 boundary or the interior."""
    a0, sse0 = _closed_form_c0(log_x, log_y, alphas)
    if not offset:
        return a0, np.zeros_like(a0), sse0
    with np.errstate(all="ignore"):
        a1, c1, sse1 = _offset_solution(log_x, log_y, alphas)
    interior = sse1 < sse0
    return np.where(interior, a1, a0), np.where(interior, c1, 0.0), np.where(interior, sse1, sse0)


def _fit_offset(log_x: np.ndarray, log_y: np.ndarray):
    """Per row of log_y (B, n): a, alpha, c, SSE of the offset power law; and which search bound alpha hit
    (-1 lower, +1 upper, 0 none)."""
    lo, hi = ALPHA_RANGE
    rows = np.arange(log_y.shape[0])
    alphas = np.broadcast_to(np.geomspace(lo, hi, _GRID), (log_y.shape[0], _GRID))
    at_bound = None
    for round_ in range(_ZOOM_ROUNDS + 1):
        a, c, sse = _profile(log_x, log_y, alphas, offset=True)
        best = np.argmin(sse, axis=1)
        if round_ == 0:
            at_bound = np.where(best == 0, -1, np.where(best == _GRID - 1, 1, 0))
        if round_ == _ZOOM_ROUNDS:
            return a[rows, best], alphas[rows, best], c[rows, best], sse[rows, best], at_bound
        left = alphas[rows, np.maximum(best - 1, 0)]
        right = alphas[rows, np.minimum(best + 1, alphas.shape[1] - 1)]
        alphas = np.geomspace(left, right, _ZOOM, axis=1)


def _fit_slope(log_x: np.ndarray, log_y: np.ndarray):
    """Per row: a plain least-squares line in log-log space, err = a x^-beta (beta may be negative)."""
    centred = log_x - log_x.mean()
    slope = (log_y - log_y.mean(axis=1, keepdims=True)) @ centred / np.sum(centred**2)
    log_a = log_y.mean(axis=1) - slope * log_x.mean()
    sse = np.sum((log_a[:, None] + slope[:, None] * log_x - log_y) ** 2, axis=1)
    return np.exp(log_a), -slope, np.zeros_like(slope), sse


def _fit_many(x: np.ndarray, y: np.ndarray, method: str):
    """Fits of y (B, n) against x (n,), in chunks (the offset search holds B x grid x n arrays)."""
    log_x, log_y = np.log(x), np.log(y)
    if method == SLOPE:
        return (*_fit_slope(log_x, log_y), np.zeros(len(y), int))
    parts = [_fit_offset(log_x, log_y[i:i + _CHUNK]) for i in range(0, len(y), _CHUNK)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def fit_power_law(x, y, method: str = OFFSET) -> PowerLaw:
    """err(x) = a x^-exponent + c through positive points (x distinct); NaN and a note below MIN_POINTS."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < MIN_POINTS:
        return PowerLaw(np.nan, np.nan, np.nan, np.nan, NOT_FITTED,
                        f"{len(np.unique(x))} distinct sizes (a fit needs {MIN_POINTS})")
    a, exponent, c, sse, at_bound = (v[0] for v in _fit_many(x, y[None, :], method))
    note = {-1: f"alpha at its lower search bound {ALPHA_RANGE[0]}: no decrease with size to fit",
            1: f"alpha at its upper search bound {ALPHA_RANGE[1]}"}.get(int(at_bound), "")
    return PowerLaw(float(a), float(exponent), float(c), float(np.sqrt(sse / len(x))), method, note)


def bootstrap_exponent(x, seed_values, method: str = OFFSET, samples: int = BOOTSTRAP_SAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of the exponent: per size, resample its seeds with replacement, take the median, refit.

    `seed_values[i]` are the per-seed errors at x[i]. NaN, NaN when no size has two seeds.
    """
    if max(len(v) for v in seed_values) < 2 or len(np.unique(x)) < MIN_POINTS:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    medians = np.empty((samples, len(seed_values)))
    for i, values in enumerate(seed_values):
        values = np.asarray(values, float)
        medians[:, i] = np.median(values[rng.integers(0, len(values), size=(samples, len(values)))], axis=1)
    exponents = _fit_many(np.asarray(x, float), medians, method)[1]
    low, high = np.percentile(exponents, INTERVAL)
    return float(low), float(high)


def _fit_row(sizes: pd.Series, medians: pd.Series, per_seed: list, method: str) -> dict:
    fit = fit_power_law(sizes, medians, method)
    low, high = (bootstrap_exponent(sizes.to_numpy(), per_seed, method) if fit.method != NOT_FITTED
                 else (np.nan, np.nan))
    samples = BOOTSTRAP_SAMPLES if not np.isnan(low) else 0
    return {"a": fit.a, "exponent": fit.exponent, "c": fit.c, "low": low, "high": high, "n_points": len(sizes),
            "x_min": sizes.min(), "x_max": sizes.max(), "rmse_log": fit.rmse_log, "method": fit.method,
            "note": fit.note, "bootstrap_samples": samples, "bootstrap_seed": BOOTSTRAP_SEED}


def _named(row: dict, exponent: str, x: str) -> dict:
    names = {"exponent": exponent, "low": f"{exponent}_low", "high": f"{exponent}_high", "x_min": f"{x}_min",
             "x_max": f"{x}_max"}
    return {names.get(k, k): v for k, v in row.items()}


def _fits(best: pd.DataFrame, keys: list[str], along: str, size: str, method_of, exponent: str, x: str,
          columns: list[str]) -> pd.DataFrame:
    """One fit per group of trained cells sharing `keys`, of the error against `size` across `along`."""
    trained = best[best["recipe"].isin(["scratch", "finetune"])]
    seeds = {k: g["test_rel_l2"].to_numpy() for k, g in trained.groupby(keys + [along], sort=False)}
    rows = []
    for key, points in cell_summary(trained).groupby(keys, sort=False):
        points = points.sort_values(size)
        per_seed = [seeds[(*key, value)] for value in points[along]]
        row = _fit_row(points[size], points["test_rel_l2"], per_seed, method_of(points[size]))
        rows.append({**dict(zip(keys, key)), **_named(row, exponent, x)})
    return pd.DataFrame(rows, columns=columns)


def scaling_fits(best: pd.DataFrame) -> pd.DataFrame:
    """Per (task, recipe, preset, pre-training): err(N) = a N^-alpha + c over the cell medians (Fig. 3/4)."""
    return _fits(best, ["task", "shift", "recipe", "preset", "pretrain"], "n_train", "n_train",
                 lambda sizes: OFFSET, "alpha", "n", SCALING_FIT_COLUMNS)


def model_size_fits(best: pd.DataFrame) -> pd.DataFrame:
    """Per (task, recipe, pre-training, N): err(P) over the presets' parameter counts P (Fig. 4).

    With 4 or more model sizes the offset power law a P^-beta + c; with exactly 3 a plain
    log-log slope (c = 0: three points do not pin three parameters); fewer: not fitted.
    """
    return _fits(best, ["task", "shift", "recipe", "pretrain", "n_train"], "preset", "n_params",
                 lambda sizes: OFFSET if sizes.nunique() > MIN_POINTS else SLOPE, "beta", "p", MODEL_FIT_COLUMNS)
