"""MMD² and its permutation test on known cases: equal distributions give uniform p-values,
shifted ones are rejected."""

import numpy as np
from scipy import stats

from engine.robustness.mmd import mmd2, two_sample_test


def test_mmd_is_zero_for_identical_sets_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5))
    assert abs(mmd2(x, x)) < 1e-12
    y = rng.normal(size=(20, 5))
    shifts = [mmd2(x, y + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert shifts == sorted(shifts)


def test_p_values_are_uniform_when_the_distributions_are_equal():
    rng = np.random.default_rng(1)
    ps = [
        two_sample_test(rng.normal(size=(8, 4)), rng.normal(size=(8, 4)), 200, seed=i).p_value
        for i in range(200)
    ]
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert 0.02 < np.mean(np.array(ps) < 0.05) < 0.1  # the test's size is about its level


def test_shifted_distributions_are_rejected():
    rng = np.random.default_rng(2)
    rejected = [
        two_sample_test(rng.normal(size=(8, 4)), rng.normal(1.5, size=(8, 4)), 200, seed=i).p_value
        < 0.05
        for i in range(50)
    ]
    assert np.mean(rejected) > 0.9


def test_needs_two_samples_a_side():
    import pytest

    with pytest.raises(ValueError, match="two samples"):
        two_sample_test(np.zeros((1, 3)), np.zeros((4, 3)))
