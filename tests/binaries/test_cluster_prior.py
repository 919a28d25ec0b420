"""Cluster-prior weights, q-prior and point estimates (ocnb.binaries.cluster_prior; spec B4–B5).

Inputs are hand-made sample arrays with known answers (TEST FIXTURES), not NPE output.
"""

import numpy as np
import pytest

from ocnb.binaries import THETA_NAMES
from ocnb.binaries.cluster_prior import (
    binary_fraction_law,
    binary_probability,
    cluster_prior_weights,
    distance_pc,
    q_prior_factor,
    star_estimates,
    weighted_mode,
    weighted_percentiles,
)

MEANS = {"log_age": 9.5, "distance": 850.0, "feh": 0.0, "a_v": 0.1}
SIGMAS = {"log_age": 0.05, "distance": 17.0, "feh": 0.05, "a_v": 0.05}
IX = {k: i for i, k in enumerate(THETA_NAMES)}


def samples_around(n_stars=3, n=4000, seed=0, **centre):
    """TEST FIXTURE: samples spread widely around a centre (the wide NPE posterior of a member)."""
    rng = np.random.default_rng(seed)
    s = np.empty((n_stars, n, len(THETA_NAMES)))
    c = {"mass_a": 1.0, "feh": 0.0, "log_age": 9.5, "q": 0.5, "dist_mod": 5 * np.log10(850) - 5, "a_v": 0.1} | centre
    wide = {"mass_a": 0.3, "feh": 0.3, "log_age": 0.4, "q": 0.3, "dist_mod": 0.3, "a_v": 0.4}
    for k, j in IX.items():
        s[..., j] = c[k] + wide[k] * rng.normal(size=(n_stars, n))
    s[..., IX["q"]] = np.clip(s[..., IX["q"]], 0, 1)
    return s


def test_weights_are_the_truncated_gaussian_product():
    s = samples_around(n_stars=1, n=5)
    s[0, 0, [IX["log_age"], IX["feh"], IX["a_v"]]] = [9.5, 0.0, 0.1]
    s[0, 0, IX["dist_mod"]] = 5 * np.log10(850.0) - 5
    s[0, 1, [IX["log_age"], IX["feh"], IX["a_v"], IX["dist_mod"]]] = [9.55, 0.05, 0.15, 5 * np.log10(867.0) - 5]
    s[0, 2, IX["log_age"]] = 9.5 + 5.01 * 0.05  # beyond 5 σ in age alone
    w = cluster_prior_weights(s, MEANS, SIGMAS)
    assert w[0, 0] == pytest.approx(1.0)
    assert w[0, 1] == pytest.approx(np.exp(-0.5 * 4), rel=1e-6)  # 1 σ off in each of the four
    assert w[0, 2] == 0.0
    assert distance_pc(5 * np.log10(850.0) - 5) == pytest.approx(850.0)


def test_q_prior_and_binary_probability():
    m = np.array([0.5, 1.0, 2.0])
    fb = binary_fraction_law(m)
    assert fb == pytest.approx(0.8388 * np.tanh(0.688 * m + 0.079))
    ql = 0.1 / m
    f_single = q_prior_factor(np.zeros(3), m)
    f_binary = q_prior_factor(np.full(3, 0.9), m)
    np.testing.assert_allclose(f_single, (1 - fb) / ql)
    np.testing.assert_allclose(f_binary, fb / (1 - ql))
    # the factor is a density on [0, 1]: it integrates to 1 for every primary mass
    q = np.linspace(0, 1, 200_001)
    for mm in m:
        assert np.trapezoid(q_prior_factor(q, np.full_like(q, mm)), q) == pytest.approx(1.0, abs=2e-3)
    # P_b: the weighted share of samples at or above q_lim
    q_s = np.array([[0.0, 0.05, 0.3, 0.8]])
    m_s = np.full((1, 4), 1.0)
    assert binary_probability(q_s, m_s, np.array([[1.0, 1.0, 1.0, 1.0]]))[0] == pytest.approx(0.5)
    assert binary_probability(q_s, m_s, np.array([[0.0, 0.0, 1.0, 3.0]]))[0] == pytest.approx(1.0)
    assert np.isnan(binary_probability(q_s, m_s, np.zeros((1, 4)))[0])


def test_weighted_mode_and_percentiles():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0.2, 0.02, 3000), rng.normal(0.8, 0.02, 1000)]
    assert weighted_mode(x, np.ones_like(x)) == pytest.approx(0.2, abs=0.02)
    w = np.r_[np.full(3000, 0.1), np.full(1000, 1.0)]
    assert weighted_mode(x, w) == pytest.approx(0.8, abs=0.02)  # the weights move the mode
    assert np.isnan(weighted_mode(x, np.zeros_like(x)))
    y = rng.normal(size=(2, 20_000))
    p = weighted_percentiles(y, np.ones_like(y))
    np.testing.assert_allclose(p, np.percentile(y, [16, 50, 84], axis=1).T, atol=0.03)


def test_star_estimates_under_the_cluster_prior():
    s = samples_around(n_stars=3, seed=2)
    s[2, :, IX["log_age"]] = 8.0  # a star whose every sample is 30 σ from the cluster age: an outlier
    # star 1 is a clear binary: q ≈ 0.7 in every sample
    s[1, :, IX["q"]] = 0.7 + 0.02 * np.random.default_rng(3).normal(size=s.shape[1])
    s[0, :, IX["q"]] = 0.0  # star 0 a clear single
    w = cluster_prior_weights(s, MEANS, SIGMAS)
    est = star_estimates(s, w)
    assert list(est["outlier"]) == [False, False, True] and est.loc[2, "n_valid"] == 0
    assert np.isnan(est.loc[2, "mass_a_mode"]) and np.isnan(est.loc[2, "p_binary"])
    assert est.loc[0, "p_binary"] == 0 and est.loc[0, "q_mode"] == 0
    assert est.loc[1, "p_binary"] == pytest.approx(1.0) and est.loc[1, "q_mode"] == pytest.approx(0.7, abs=0.03)
    # the weights pull the age to the cluster's: the weighted σ shrinks to the prior's
    assert est.loc[0, "log_age_sigma"] < 0.06 < 0.4
    assert 0 < est.loc[0, "valid_fraction"] < 0.2  # most wide samples are outside 5 σ of some parameter


@pytest.mark.parametrize("call, match", [
    (lambda: cluster_prior_weights(samples_around(1, 10), {**MEANS, "a_v": np.nan}, SIGMAS),
     r"means\['a_v'\] = nan is not finite"),
    (lambda: cluster_prior_weights(samples_around(1, 10), MEANS, {**SIGMAS, "distance": 0.0}),
     r"sigmas\['distance'\] = 0.0 must be > 0 \[pc\]"),
    (lambda: cluster_prior_weights(samples_around(1, 10), {k: v for k, v in MEANS.items() if k != "feh"}, SIGMAS),
     r"means lack 'feh' \[dex\]"),
    (lambda: cluster_prior_weights(samples_around(1, 10), MEANS, SIGMAS, use=("age",)),
     r"unknown parameter\(s\) \['age'\]"),
    (lambda: star_estimates(samples_around(1, 10), np.ones((2, 10))), r"weights \(n_stars, n_samples\)"),
])
def test_bad_input_table(call, match):
    with pytest.raises(ValueError, match=match):
        call()
