"""The generator's shortcuts against the general solver: same numbers (to round-off) or same decisions."""

import numpy as np
import pytest

from sciml.physics import SystemSpec, solve_spectral, symbol_parts
from sciml.physics import generate
from sciml.physics.sources import build_sources, gaussian_matrix, spectrum_power
from sciml.physics.spectral import advection_ratio, advection_ratio_moments, advection_solve_spectral
from sciml.physics.systems import REGISTRY

SYS2 = SystemSpec.parse("SYS-2(0.2,1)")


def draws(spec, count, n, seed=0):
    system = REGISTRY[spec.system]
    sparsity = np.full(count, 0.4)
    u, p = generate._draws(spec, system, seed, 0, np.arange(count), np.zeros(count, dtype=np.int64), sparsity)
    return system, u, p


@pytest.mark.parametrize("n", [16, 64])
def test_spectrum_power_is_the_sources_power_up_to_a_factor(n):
    _, _, p = draws(SYS2, 5, n)
    _, f_hat = build_sources(p, n, centre=False)
    ky, kx = np.arange(6), np.arange(5)
    power = spectrum_power(p, n, ky, kx)
    expected = np.abs(f_hat[:, np.concatenate([ky, -ky]) % n][:, :, kx]) ** 2
    ratio = power.reshape(5, -1) / expected.reshape(5, -1)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-12)  # one factor per example
    g = gaussian_matrix(n)
    largest = ((g @ p.reshape(5, 12, 12)) @ g.T).max(axis=(1, 2))  # the factor: (max f)^2 of f before normalization
    np.testing.assert_allclose(ratio[:, 0], largest**2, rtol=1e-12)


@pytest.mark.parametrize("n", [16, 128])
def test_advection_shortcut_matches_the_general_solver(n):
    system, u, p = draws(SYS2, 6, n)
    terms = generate._coefficients(SYS2, system, u, p, n)
    terms.pop("psi_target")
    _, f_hat = build_sources(p, n, centre=True)
    real, imag = symbol_parts(terms, n)
    general, _ = solve_spectral(f_hat.copy(), real, imag)
    fast = advection_solve_spectral(f_hat.copy(), terms)
    scale = np.abs(general).max(axis=(1, 2), keepdims=True)
    assert np.abs(fast - general).max() / scale.min() < 1e-13
    np.testing.assert_allclose(advection_ratio_moments(fast, terms), advection_ratio(general, real, imag), rtol=1e-12)


def test_advection_shortcut_declines_what_it_does_not_handle():
    system, u, p = draws(SYS2, 2, 16)
    terms = generate._coefficients(SYS2, system, u, p, 16)
    terms.pop("psi_target")
    _, f_hat = build_sources(p, 16, centre=False)  # a nonzero mean: no solution there
    before = f_hat.copy()
    assert advection_solve_spectral(f_hat, terms) is None
    np.testing.assert_array_equal(f_hat, before)
    _, f_hat = build_sources(p, 16, centre=True)
    flat = {name: np.zeros(2) for name in terms}  # symbol 0 everywhere
    assert advection_solve_spectral(f_hat, flat) is None


@pytest.mark.parametrize("largest, accepted", [(2.0, True), (2.0 - 1e-12, True), (2.0 + 1e-12, False),
                                               (2.0 + 1e-6, False), (1.9999, True)])
def test_the_limit_is_tested_on_the_float64_values(largest, accepted):
    values = np.zeros((1, 4, 4))
    values[0, 1, 2] = -largest  # float32 rounds 2 +- 1e-12 to 2.0: the float64 values decide
    out = np.empty((1, 4, 4), dtype=np.float32)
    flags = np.ones(1, dtype=bool)
    generate._store(REGISTRY["helmholtz"], values, out, flags)
    assert flags[0] == accepted
    np.testing.assert_array_equal(out, values.astype(np.float32))


def test_cached_symbols_give_the_same_bytes(monkeypatch):
    import dataclasses

    from sciml.core.layout import COLUMNS
    from sciml.physics import generate_examples

    spec = SystemSpec.parse("SYS-3(1,10)")
    cached = generate_examples(spec, 2, "train", np.arange(50), 32, source_rms=True)
    assert cached["rejected"].sum() > 0
    plain = dataclasses.replace(REGISTRY["helmholtz"], few_symbols=False)
    monkeypatch.setitem(REGISTRY, "helmholtz", plain)
    rebuilt = generate_examples(spec, 2, "train", np.arange(50), 32, source_rms=True)
    for name in COLUMNS + ("rejected", "source_rms"):
        np.testing.assert_array_equal(cached[name], rebuilt[name])
