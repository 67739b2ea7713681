"""Scaling fits recover known power laws, say when they cannot fit, and bracket the exponent over seeds."""

import math

import numpy as np
import pytest

from sciml.sweeps.fits import (BOOTSTRAP_SEED, NOT_FITTED, OFFSET, SLOPE, bootstrap_exponent, fit_power_law,
                               model_size_fits, scaling_fits)

N = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 2048], float)


@pytest.mark.parametrize("a, alpha, c", [(2.0, 0.6, 0.01), (0.5, 1.2, 0.0), (3.0, 0.3, 0.05), (1.0, 0.5, 0.2)])
def test_fit_recovers_an_exact_power_law(a, alpha, c):
    fit = fit_power_law(N, a * N**-alpha + c)
    assert fit.method == OFFSET and fit.note == ""
    assert fit.a == pytest.approx(a, rel=1e-3) and fit.exponent == pytest.approx(alpha, rel=1e-3)
    assert fit.c == pytest.approx(c, abs=1e-4) and fit.c >= 0 and fit.rmse_log < 1e-3


def test_fit_with_noise_over_seeds_and_its_bootstrap_interval_contain_the_truth():
    a, alpha, c = 2.0, 0.6, 0.01
    rng = np.random.default_rng(7)
    seeds = [a * n**-alpha * np.exp(rng.normal(0.0, 0.05, size=5)) + c for n in N]
    fit = fit_power_law(N, [np.median(s) for s in seeds])
    assert fit.exponent == pytest.approx(alpha, rel=0.05) and fit.a == pytest.approx(a, rel=0.1)
    assert fit.c == pytest.approx(c, abs=0.005)
    low, high = bootstrap_exponent(N, seeds)
    assert low < alpha < high and high - low < 0.2
    assert (low, high) == bootstrap_exponent(N, seeds)  # seeded: the same interval every time


def test_too_few_sizes_are_not_fitted_and_one_seed_has_no_interval():
    fit = fit_power_law(N[:2], [0.5, 0.3])
    assert fit.method == NOT_FITTED and math.isnan(fit.a) and math.isnan(fit.exponent) and "needs 3" in fit.note
    assert fit_power_law([8, 8, 16], [0.5, 0.4, 0.3]).method == NOT_FITTED  # distinct sizes count
    assert all(math.isnan(v) for v in bootstrap_exponent(N[:4], [[0.4], [0.3], [0.2], [0.1]]))


def test_a_rising_curve_is_fitted_at_the_bound_and_said_so():
    fit = fit_power_law(N[:4], [0.1, 0.2, 0.3, 0.4])
    assert "lower search bound" in fit.note and fit.c == 0


def test_log_log_slope_where_three_model_sizes_only():
    p = np.array([67329, 263937, 1050369], float)
    fit = fit_power_law(p, 0.9 * p**-0.25, SLOPE)
    assert fit.method == SLOPE and fit.exponent == pytest.approx(0.25) and fit.a == pytest.approx(0.9)
    assert fit.c == 0 and fit.rmse_log == pytest.approx(0, abs=1e-12)


def test_scaling_fits_table_per_curve(synthetic):
    synthetic.q1(seeds=3, ns=(8, 32, 128, 512))
    synthetic.add("finetune", 8, 0.1, preset="1M").add("finetune", 32, 0.05, preset="1M")  # two points only
    fits = scaling_fits(synthetic.best())
    assert {"task", "recipe", "preset", "pretrain", "a", "alpha", "c", "alpha_low", "alpha_high",
            "n_points"} <= set(fits.columns)
    fits = fits.set_index(["recipe", "preset"])
    scratch = fits.loc[("scratch", "64K")]  # median of scale (1, 1.05, 1.1) times N^-1/2
    assert scratch["alpha"] == pytest.approx(0.5, rel=1e-2) and scratch["n_points"] == 5
    assert scratch["alpha_low"] <= scratch["alpha"] <= scratch["alpha_high"]
    assert (scratch["n_min"], scratch["n_max"]) == (8, 2048) and scratch["bootstrap_seed"] == BOOTSTRAP_SEED
    assert fits.loc[("finetune", "64K"), "a"] == pytest.approx(0.25 * 1.05, rel=2e-2)
    small = fits.loc[("finetune", "1M")]
    assert small["method"] == NOT_FITTED and small["n_points"] == 2 and math.isnan(small["alpha"])
    assert small["bootstrap_samples"] == 0


def test_model_size_fits_choose_their_method_by_the_number_of_sizes(synthetic):
    for preset, n_params in (("64K", 67329), ("d16m8", 263937), ("1M", 1050369), ("16M", 16_000_000)):
        synthetic.add("finetune", 512, 0.01 + n_params**-0.5, preset=preset)
        if preset != "16M":
            synthetic.add("scratch", 512, 0.5 * n_params**-0.2, preset=preset)
    fits = model_size_fits(synthetic.best()).set_index("recipe")
    assert fits.loc["finetune", "method"] == OFFSET and fits.loc["finetune", "beta"] == pytest.approx(0.5, rel=1e-2)
    assert fits.loc["finetune", "c"] == pytest.approx(0.01, rel=1e-2)
    assert fits.loc["scratch", "method"] == SLOPE and fits.loc["scratch", "beta"] == pytest.approx(0.2)
    assert fits.loc["scratch", "n_points"] == 3 and math.isnan(fits.loc["scratch", "beta_low"])
