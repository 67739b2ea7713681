import numpy as np
import pytest

from sciml.physics.advection import log_advection_ratio, solve_log_t


def problem(seed, batch=6, modes=200):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 50.0, (batch, modes))
    b = rng.normal(0.0, 5.0, (batch, modes))
    w = rng.exponential(1.0, (batch, modes)) * np.exp(-rng.uniform(0, 20, (batch, modes)))
    return a * a, b * b, w


def psi_direct(t, a2, b2, w):
    """Psi from the definition: ||lambda b u|| / ||(1 - lambda) a u|| with u = f / ((1-l) a + i l b)."""
    lam = t / (1 + t)
    power = w / ((1 - lam) ** 2 * a2 + lam**2 * b2)
    return np.sqrt(np.sum(power * lam**2 * b2, axis=1) / np.sum(power * (1 - lam) ** 2 * a2, axis=1))


@pytest.mark.parametrize("target", [1e-4, 0.2, 1.0, 5.0, 300.0])
def test_targets_are_hit(target):
    a2, b2, w = problem(0)
    s = solve_log_t(a2, b2, w, np.full(len(a2), target))
    np.testing.assert_allclose(psi_direct(np.exp(s)[:, None], a2, b2, w), target, rtol=1e-10)


def test_ratio_increases_with_t_and_derivative_is_consistent():
    a2, b2, w = problem(1)
    s = np.linspace(-6, 6, 25)
    values = np.array([log_advection_ratio(np.full(len(a2), x), a2, b2, w)[0] for x in s])
    assert np.all(np.diff(values, axis=0) > 0)
    value, slope = log_advection_ratio(np.zeros(len(a2)), a2, b2, w)
    ahead, _ = log_advection_ratio(np.full(len(a2), 1e-6), a2, b2, w)
    np.testing.assert_allclose((ahead - value) / 1e-6, slope, rtol=1e-4)


def test_each_example_is_solved_independently_of_its_batch():
    a2, b2, w = problem(2)
    targets = np.array([0.3, 0.7, 1.2, 2.0, 4.0, 0.05])
    together = solve_log_t(a2, b2, w, targets)
    alone = np.concatenate([solve_log_t(a2[i:i + 1], b2[i:i + 1], w[i:i + 1], targets[i:i + 1])
                            for i in range(len(targets))])
    np.testing.assert_array_equal(together, alone)
