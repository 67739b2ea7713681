"""The shared operator and solver against hand-computed manufactured solutions."""

import numpy as np
import pytest

from sciml.physics import D, apply_operator, drop_nyquist, solve, solve_spectral, symbol_parts

N = 32
X, Y = np.meshgrid(np.arange(N) / N, np.arange(N) / N)  # [y, x]

COEFFS = {
    "poisson": {"k11": 0.013, "k22": 0.021, "k12": -0.004},
    "advdiff": {"k11": 0.006, "k22": 0.009, "k12": 0.002, "v1": 0.3, "v2": -0.7},
    "helmholtz": {"k11": D, "k22": D, "omega": 7.0},
}


def manufactured(c):
    """u = sin(2 pi (2x + 3y)) + 0.5 cos(2 pi (-x + 4y)) and f = L u, differentiated by hand."""
    terms = []
    for amp, (a, b), trig, dtrig in ((1.0, (2, 3), np.sin, np.cos), (0.5, (-1, 4), np.cos, lambda z: -np.sin(z))):
        phase = 2 * np.pi * (a * X + b * Y)
        diffusion = 4 * np.pi**2 * (c.get("k11", 0) * a * a + c.get("k22", 0) * b * b + 2 * c.get("k12", 0) * a * b)
        advection = 2 * np.pi * (c.get("v1", 0) * a + c.get("v2", 0) * b)
        terms.append((amp * trig(phase), amp * ((diffusion - c.get("omega", 0)) * trig(phase)
                                                + advection * dtrig(phase))))
    return sum(t[0] for t in terms), sum(t[1] for t in terms)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("system", sorted(COEFFS))
def test_manufactured_solution_is_recovered(system):
    u, f = manufactured(COEFFS[system])
    assert rel(apply_operator(u, COEFFS[system]), f) < 1e-10
    assert rel(solve(f, COEFFS[system]), u) < 1e-10


def test_batched_coefficients_act_per_example():
    batch = {name: np.array([COEFFS["advdiff"].get(name, 0.0), COEFFS["poisson"].get(name, 0.0)])
             for name in ("k11", "k22", "k12", "v1", "v2")}
    (u0, f0), (u1, f1) = manufactured(COEFFS["advdiff"]), manufactured(COEFFS["poisson"])
    out = solve(np.stack([f0, f1]), batch)
    assert rel(out[0], u0) < 1e-10 and rel(out[1], u1) < 1e-10


def test_nyquist_modes_are_zero_in_the_solution_and_left_out_of_checks():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(N, N))
    f -= f.mean()
    u = solve(f, COEFFS["poisson"])
    u_hat = np.fft.rfft2(u)
    assert np.abs(u_hat[N // 2, :]).max() < 1e-12 and np.abs(u_hat[:, N // 2]).max() < 1e-12
    assert rel(apply_operator(u, COEFFS["poisson"]), drop_nyquist(f)) < 1e-12
    assert rel(apply_operator(u, COEFFS["poisson"]), f) > 1e-3  # white noise has Nyquist content


def test_zero_symbol_zeroes_solution_and_source_there():
    rng = np.random.default_rng(2)
    f_hat = np.fft.rfft2(rng.normal(size=(2, 8, 8)))
    f_hat[:, 0, 0] = 0.0  # a centred source: nothing lost at the mean mode
    real, imag = symbol_parts({"k11": 1.0, "k22": 1.0}, 8)
    real = np.broadcast_to(real, f_hat.shape).copy()
    real[1, 1, 2] = 0.0  # a resonance in example 1 only
    kept = f_hat.copy()
    u_hat, changed = solve_spectral(f_hat, real, imag)
    assert changed.tolist() == [False, True]
    assert u_hat[1, 1, 2] == 0 and f_hat[1, 1, 2] == 0 and kept[1, 1, 2] != 0
    assert u_hat[0, 0, 0] == 0  # the mean mode: symbol 0 as well
    np.testing.assert_array_equal(f_hat[0, 1:], kept[0, 1:])
    mask = np.ones(f_hat.shape, bool)
    mask[:, 0, 0] = mask[1, 1, 2] = False
    mask[:, 4, :] = mask[:, :, 4] = False  # Nyquist
    np.testing.assert_allclose(u_hat[mask], (f_hat / np.where(real == 0, 1, real))[mask], rtol=1e-14)


def test_operator_rejects_bad_shapes_and_unknown_coefficients():
    with pytest.raises(ValueError, match="field"):
        apply_operator(np.zeros((5, 5)), COEFFS["poisson"])
    with pytest.raises(KeyError):
        apply_operator(np.zeros((8, 8)), {"kappa": 1.0})
