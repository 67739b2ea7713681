import numpy as np

from sciml.physics import keyed_random


def test_draws_are_pure_functions_of_their_key():
    k = keyed_random.keys(5, 11, 1, 0, np.arange(100), 0)
    u = keyed_random.uniforms(k, 0, 50)
    again = keyed_random.uniforms(keyed_random.keys(5, 11, 1, 0, np.array([42, 7]), 0), 10, 40)
    np.testing.assert_array_equal(again, u[[42, 7], 10:])


def test_every_key_word_changes_the_draws():
    base = keyed_random.uniforms(keyed_random.keys(5, 11, 1, 0, np.arange(8), 0), 0, 4)
    for args in ((6, 11, 1, 0, np.arange(8), 0), (5, 12, 1, 0, np.arange(8), 0), (5, 11, 2, 0, np.arange(8), 0),
                 (5, 11, 1, 1, np.arange(8), 0), (5, 11, 1, 0, np.arange(1, 9), 0), (5, 11, 1, 0, np.arange(8), 1)):
        other = keyed_random.uniforms(keyed_random.keys(*args), 0, 4)
        assert not np.any(other == base)


def test_uniforms_look_uniform_and_independent():
    u = keyed_random.uniforms(keyed_random.keys(0, 0, 1, 0, np.arange(20000)), 0, 20)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.002 and abs(u.var() - 1 / 12) < 0.001
    corr = np.corrcoef(u.T)
    assert np.abs(corr - np.eye(20)).max() < 0.03
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.03  # neighbouring indices
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.abs(counts / counts.mean() - 1).max() < 0.02
