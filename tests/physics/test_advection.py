import numpy as np
import pytest

from sciml.physics import advection
from sciml.physics.advection import mode_ratio, solve_log_t


def problem(seed, batch=6, modes=200):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 50.0, (batch, modes))
    b = rng.normal(0.0, 5.0, (batch, modes))
    w = rng.exponential(1.0, (batch, modes)) * np.exp(-rng.uniform(0, 20, (batch, modes)))
    return a * a, b * b, w


def log_advection_ratio(s, rho, w):
    """(log Psi, d log Psi / d log t) at log t = s from the sums the Newton iteration uses; rho, w (B, modes)."""
    w = np.asarray(w, dtype=np.float64)
    sx, sy, sxy = advection._sums(np.asarray(s, dtype=np.float64), np.asarray(rho, dtype=np.float64), w,
                                  np.sum(w, axis=1))
    return 0.5 * np.log(sx / sy), sxy * (1.0 / sx + 1.0 / sy)


def psi_direct(t, a2, b2, w):
    """Psi from the definition: ||lambda b u|| / ||(1 - lambda) a u|| with u = f / ((1-l) a + i l b)."""
    lam = t / (1 + t)
    power = w / ((1 - lam) ** 2 * a2 + lam**2 * b2)
    return np.sqrt(np.sum(power * lam**2 * b2, axis=1) / np.sum(power * (1 - lam) ** 2 * a2, axis=1))


@pytest.mark.parametrize("target", [1e-4, 0.2, 1.0, 5.0, 300.0])
def test_targets_are_hit(target):
    a2, b2, w = problem(0)
    s = solve_log_t(a2 / b2, w, np.full(len(a2), target))
    np.testing.assert_allclose(psi_direct(np.exp(s)[:, None], a2, b2, w), target, rtol=1e-10)


def test_ratio_increases_with_t_and_derivative_is_consistent():
    a2, b2, w = problem(1)
    rho = a2 / b2
    s = np.linspace(-6, 6, 25)
    values = np.array([log_advection_ratio(np.full(len(a2), x), rho, w)[0] for x in s])
    assert np.all(np.diff(values, axis=0) > 0)
    np.testing.assert_allclose(np.exp(values[12]), psi_direct(np.ones((len(a2), 1)), a2, b2, w), rtol=1e-13)
    value, slope = log_advection_ratio(np.zeros(len(a2)), rho, w)
    ahead, _ = log_advection_ratio(np.full(len(a2), 1e-6), rho, w)
    np.testing.assert_allclose((ahead - value) / 1e-6, slope, rtol=1e-4)


def test_modes_without_advection_count_as_pure_diffusion():
    a2, b2, w = problem(3, batch=3)
    b = np.sqrt(b2)
    b[:, :20] = 0.0  # v0 . k = 0 on these modes
    rho = mode_ratio(np.sqrt(a2), b)
    assert np.all(np.isfinite(rho)) and np.all(rho[:, :20] == rho.max())
    s = solve_log_t(rho, w, np.array([0.2, 1.0, 3.0]))
    np.testing.assert_allclose(psi_direct(np.exp(s)[:, None], a2, b * b, w), [0.2, 1.0, 3.0], rtol=1e-10)


def test_each_example_is_solved_independently_of_its_batch(monkeypatch):
    a2, b2, w = problem(2, batch=9)
    targets = np.array([0.3, 0.7, 1.2, 2.0, 4.0, 0.05, 0.5, 9.0, 0.2])
    together = solve_log_t(a2 / b2, w, targets)
    alone = np.concatenate([solve_log_t(a2[i:i + 1] / b2[i:i + 1], w[i:i + 1], targets[i:i + 1])
                            for i in range(len(targets))])
    np.testing.assert_array_equal(together, alone)
    monkeypatch.setattr(advection, "GROUP", 4)  # other groups, other partners, other memory offsets
    reversed_ = solve_log_t(a2[::-1] / b2[::-1], w[::-1], targets[::-1])
    np.testing.assert_array_equal(reversed_[::-1], together)


def test_newton_converges_to_round_off():
    a2, b2, w = problem(4, batch=50, modes=500)
    targets = np.random.default_rng(5).uniform(0.1, 5.0, 50)
    s = solve_log_t(a2 / b2, w, targets)
    value, slope = log_advection_ratio(s, a2 / b2, w)
    # The remaining Newton step is at round-off level.
    assert np.abs((value - np.log(targets)) / slope).max() < 1e-13
