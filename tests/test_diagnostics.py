"""ocnb.diagnostics: coverage, calibration, coverage curves and SBC ranks for ensembles and posterior samples.

Samples here are drawn from known distributions (TEST FIXTURES), so the expected coverage is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocnb import diagnostics as dg


def gaussian_case(n=3000, s=200, width=1.0, seed=0):
    """Truth ~ N(mu, 1); samples ~ N(mu, width): calibrated for width 1, overconfident below."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n, 2)) * 3
    truth = mu + rng.normal(size=(n, 2))
    samples = mu[:, None, :] + width * rng.normal(size=(n, s, 2))
    return samples, truth


class Pred:
    """Minimal ensemble-prediction stand-in: members (n, M, k) and labels."""

    def __init__(self, members, labels):
        self.members, self.labels = members, labels


def test_coverage_known_case():
    # samples for each row: 0..100 (101 values) -> p16 = 16, p50 = 50, p84 = 84
    n = 10
    members = np.tile(np.linspace(0, 100, 101)[None, :, None], (n, 1, 4))
    truth = np.zeros((n, 4))
    truth[:, 0] = [10, 20, 30, 40, 50, 60, 70, 80, 90, 99]   # 7 of 10 inside [16, 84]
    truth[:, 1] = 50.0                                      # all inside, zero residual
    truth[:, 2] = 100.0                                     # none inside
    truth[:, 3] = np.r_[np.full(5, 40.0), np.full(5, 60.0)]  # inside, residual +-10
    cov = dg.coverage(Pred(members, ("p", "q", "r", "s")), truth)
    assert list(cov.index) == ["p", "q", "r", "s"]
    assert cov.loc["p", "coverage"] == pytest.approx(0.7)
    assert cov.loc["q", "coverage"] == 1.0 and cov.loc["q", "mean_abs_residual"] == 0
    assert cov.loc["r", "coverage"] == 0.0 and cov.loc["r", "bias"] == pytest.approx(-50)
    assert cov.loc["s", "bias"] == pytest.approx(0) and cov.loc["s", "mean_abs_residual"] == 10
    assert cov.loc["s", "mean_halfwidth"] == pytest.approx(34)
    np.testing.assert_allclose(cov["nominal"], 0.68)
    # any interval: 5-95 holds 9 of 10 of the first label
    wide = dg.coverage(members, truth, lower=5, upper=95)
    assert wide.loc["y0", "coverage"] == pytest.approx(0.9) and wide.loc["y0", "nominal"] == pytest.approx(0.9)


def test_posterior_samples_and_ensembles_alike():
    samples, truth = gaussian_case(n=500, s=100)
    a = dg.coverage(samples, truth, labels=["u", "v"])
    b = dg.coverage(Pred(samples, ("u", "v")), pd.DataFrame(truth, columns=["u", "v"]))
    pd.testing.assert_frame_equal(a, b)
    one = dg.coverage(samples[:, :, 0], truth[:, 0])  # one label: (n, S) and (n,)
    assert one.loc["y0", "coverage"] == a.loc["u", "coverage"]


def test_calibrated_samples_cover_nominally():
    samples, truth = gaussian_case()
    curve = dg.coverage_curve(samples, truth, levels=[0.5, 0.68, 0.9])
    # n = 3000 cases: binomial sd of a coverage <= 0.009; 0.03 is > 3 sd
    np.testing.assert_allclose(curve.to_numpy(), np.array([[0.5], [0.68], [0.9]]) * np.ones((1, 2)), atol=0.03)


def test_calibration_widens_an_overconfident_spread():
    fit_s, fit_t = gaussian_case(width=0.5, seed=1)
    check_s, check_t = gaussian_case(width=0.5, seed=2)  # independent cases
    raw = dg.coverage(check_s, check_t)["coverage"]
    assert (raw < 0.45).all()  # N(0, 1) inside +-0.5 sigma: 0.38
    factors = dg.calibration_factors(fit_s, fit_t)
    assert all(1.8 < f < 2.2 for f in factors.values()), factors  # true factor 2
    cov = dg.calibrated_coverage(check_s, check_t, factors)
    assert cov["calibrated"].between(0.64, 0.72).all(), cov
    assert (cov["factor"] == pd.Series(factors)).all()
    lo, mid, hi = (dg.calibrated_interval(check_s, factors)[k] for k in (16, 50, 84))
    assert (lo <= mid).all().all() and (mid <= hi).all().all()


def test_calibration_factors_reproduce_the_original_cmd_ann_formula():
    """Bit-identical to the factor computation of ocnb.cmd_ann.inference.calibrate before the move."""
    samples, truth = gaussian_case(n=400, s=12, width=0.7, seed=3)
    new = dg.calibration_factors(samples, truth)
    frame = lambda v: pd.DataFrame(v, columns=["y0", "y1"])  # noqa: E731
    p16, p50, p84 = (frame(np.percentile(samples, q, axis=1)) for q in (16, 50, 84))
    for j, k in enumerate(["y0", "y1"]):
        t = truth[:, j]
        half = np.where(t >= p50[k], p84[k] - p50[k], p50[k] - p16[k])
        ratio = np.abs(t - p50[k].to_numpy()) / np.maximum(half, 1e-6)
        assert new[k] == float(np.quantile(ratio, 0.68))


def test_sbc_ranks_uniform_when_calibrated_and_u_shaped_when_overconfident():
    good_s, good_t = gaussian_case(n=2000, s=99, seed=4)
    ranks = dg.sbc_ranks(good_s, good_t)
    assert ranks.shape == (2000, 2) and ranks.attrs["n_samples"] == 99
    assert ranks.to_numpy().min() >= 0 and ranks.to_numpy().max() <= 99
    assert (dg.sbc_uniformity(ranks, n_bins=10)["p_value"] > 1e-3).all()
    bad_s, bad_t = gaussian_case(n=2000, s=99, width=0.5, seed=5)
    bad = dg.sbc_ranks(bad_s, bad_t)
    test = dg.sbc_uniformity(bad, n_bins=10)
    assert (test["p_value"] < 1e-10).all()
    ends = ((bad == 0) | (bad == 99)).to_numpy().mean()
    # A too-narrow posterior leaves many truths outside all samples (about 21 % here, 2 % if
    # calibrated): a U shape.
    assert ends > 0.15


def test_sbc_ks_and_rank_c2st_accept_calibrated_and_reject_biased_posteriors():
    good_s, good_t = gaussian_case(n=1000, s=99, seed=6)
    good = dg.sbc_ranks(good_s, good_t)
    test = dg.sbc_uniformity(good)
    assert (test["ks_p_value"] > 0.01).all() and (test["ks_stat"] < 0.06).all()
    c2st_good = dg.sbc_rank_c2st(good)
    bad_s, bad_t = gaussian_case(n=1000, s=99, width=0.5, seed=7)
    bad = dg.sbc_ranks(bad_s, bad_t)
    assert (dg.sbc_uniformity(bad)["ks_p_value"] < 1e-4).all()
    c2st_bad = dg.sbc_rank_c2st(bad)
    # 2000 cases: a chance accuracy lies within ±0.035 of 0.5 (3 sd); a U shape is easy to classify
    assert abs(c2st_good - 0.5) < 0.05 and c2st_bad > 0.6, (c2st_good, c2st_bad)
    fig = dg.plot_sbc_ecdf(bad)
    assert len(fig.axes[0].lines) == 3  # two labels and the zero line
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_sbc_breaks_ties_at_random():
    samples = np.zeros((1000, 9, 1))  # every sample equals the truth (e.g. clipped at a bound)
    ranks = dg.sbc_ranks(samples, np.zeros((1000, 1)))
    assert ranks.to_numpy().min() >= 0 and ranks.to_numpy().max() <= 9
    assert abs(ranks["y0"].mean() - 4.5) < 0.5  # uniform on 0..9 (sd of the mean 0.09)


def test_binned_residuals():
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.uniform(size=(n, 2))
    by = rng.uniform(1.0, 3.5, n)
    offset = np.where(by < 2, 1.0, 0.0)
    members = (truth + offset[:, None])[:, None, :] + np.zeros((1, 3, 1))
    table = dg.binned_residuals(members, truth, by, [1.0, 2.0, 3.5])
    assert table[("y1", "mean")].tolist() == pytest.approx([1.0, 0.0])
    assert table[("y0", "n")].sum() == n


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, truth = gaussian_case(n=200, s=50)
    fig = dg.plot_coverage(samples, truth)
    assert len(fig.axes) == 1
    fig2 = dg.plot_sbc(dg.sbc_ranks(samples, truth))
    assert len(fig2.axes) == 2
    plt.close("all")


S, T = gaussian_case(n=20, s=10)


def _nan(a, where):
    a = np.array(a, dtype=float)
    a[where] = np.nan
    return a


BAD = [
    ("samples 4-D", lambda: dg.coverage(S[None], T), r"samples must have shape \(n, n_samples, n_labels\)"),
    ("samples with NaN", lambda: dg.coverage(_nan(S, (3, 0, 1)), T), r"samples contain NaN.*first: case 3"),
    ("truth with NaN", lambda: dg.coverage(S, _nan(T, (5, 1))), r"y_true contains NaN.*first: case 5"),
    ("truth rows", lambda: dg.coverage(S, T[:-1]), r"y_true must have shape \(20, 2\)"),
    ("truth columns", lambda: dg.coverage(S, pd.DataFrame(T, columns=["a", "b"]), labels=["a", "c"]),
     r"y_true lacks the label columns \['c'\]"),
    ("labels vs columns", lambda: dg.coverage(S, T, labels=["a"]), r"1 labels \['a'\] for samples with 2 columns"),
    ("reversed interval", lambda: dg.coverage(S, T, lower=84, upper=16), r"0 <= lower < upper <= 100"),
    ("level outside (0, 1)", lambda: dg.coverage_curve(S, T, levels=[0.5, 1.2]), r"strictly between 0 and 1"),
    ("calibration level 1", lambda: dg.calibration_factors(S, T, level=1.0), r"level must be strictly between"),
    ("factors lack a label", lambda: dg.calibrated_interval(S, {"y0": 1.0}), r"factors lack the labels \['y1'\]"),
    ("negative factor", lambda: dg.calibrated_interval(S, {"y0": 1.0, "y1": -2.0}), r"finite and >= 0"),
    ("ranks without S", lambda: dg.sbc_uniformity(pd.DataFrame({"a": [1, 2]})), r"n_samples .* is needed"),
    ("ranks beyond S", lambda: dg.sbc_uniformity(pd.DataFrame({"a": [1, 12]}), n_samples=10), r"ranks must lie in 0"),
    ("c2st without S", lambda: dg.sbc_rank_c2st(pd.DataFrame({"a": [1, 2]})), r"n_samples .* is needed"),
    ("c2st too few", lambda: dg.sbc_rank_c2st(pd.DataFrame({"a": [1, 2]}), n_samples=5), r"at least 10 cases"),
    ("ecdf level", lambda: dg.plot_sbc_ecdf(pd.DataFrame({"a": [1, 2]}), n_samples=5, level=2), r"level must lie"),
    ("bad estimate", lambda: dg.binned_residuals(S, T, np.ones(20), [0, 2], estimate="mode"), r"estimate must be"),
    ("member index", lambda: dg.binned_residuals(S, T, np.ones(20), [0, 2], estimate=10), r"not a member index"),
    ("binning length", lambda: dg.binned_residuals(S, T, np.ones(3), [0, 2]), r"one value per case \(20\)"),
    ("non-numeric", lambda: dg.coverage([["a"]], T), r"samples must be numeric"),
]


@pytest.mark.parametrize("name, call, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------
# Probabilities of binary events: Brier score, reliability curve, ECE
# ---------------------------------------------------------------------------------------------
def binary_case(n=20000, seed=0, sharpen=1.0):
    """Outcomes drawn with probability q; predictions q**sharpen (calibrated for sharpen = 1)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(size=n)
    y = rng.uniform(size=n) < q
    return q ** sharpen, y


def test_brier_score_known_values():
    assert dg.brier_score([1.0, 0.0, 0.5], [1, 0, 1]) == pytest.approx(0.25 / 3)
    assert dg.brier_score([0.0, 1.0], [True, False]) == 1.0
    p, y = binary_case()
    # calibrated uniform q: E[(q - y)^2] = E[q (1 - q)] = 1/6
    assert dg.brier_score(p, y) == pytest.approx(1 / 6, abs=0.005)
    assert dg.brier_score(np.full(len(y), y.mean()), y) == pytest.approx(y.mean() * (1 - y.mean()))


def test_reliability_curve_uniform_bins_of_a_calibrated_and_a_miscalibrated_model():
    p, y = binary_case()
    curve = dg.reliability_curve(p, y, n_bins=10)
    assert list(curve.columns) == ["bin_lower", "bin_upper", "mean_predicted", "observed_fraction", "count",
                                   "observed_lower", "observed_upper"]
    np.testing.assert_allclose(curve["bin_lower"], np.arange(10) / 10)
    assert curve["count"].sum() == len(p)
    # ~2000 cases per bin: binomial sd <= 0.011; 0.04 is > 3.5 sd
    np.testing.assert_allclose(curve["observed_fraction"], curve["mean_predicted"], atol=0.04)
    inside = (curve["observed_lower"] <= curve["mean_predicted"]) & (curve["mean_predicted"] <= curve["observed_upper"])
    assert inside.sum() >= 8  # 95 % intervals
    assert dg.expected_calibration_error(p, y) < 0.02
    # q**2 under-predicts: the observed fraction lies above the diagonal in every bin
    p2, y2 = binary_case(sharpen=2.0)
    bad = dg.reliability_curve(p2, y2)
    assert (bad["observed_fraction"] > bad["mean_predicted"]).all()
    assert (bad["observed_lower"] > bad["mean_predicted"]).sum() >= 8
    assert dg.expected_calibration_error(p2, y2) > 0.1  # exact: E|sqrt(s) - s| = 1/6


def test_reliability_curve_counts_edges_and_empty_bins():
    p = np.array([0.0, 0.05, 0.1, 0.55, 1.0, 1.0])
    y = np.array([0, 0, 1, 1, 1, 0])
    curve = dg.reliability_curve(p, y, n_bins=4)
    assert curve["count"].tolist() == [3, 0, 1, 2]  # 0.1 in [0, 0.25); 1.0 in the closed last bin
    assert curve.loc[0, "observed_fraction"] == pytest.approx(1 / 3)
    assert curve.loc[0, "mean_predicted"] == pytest.approx(0.05)
    assert np.isnan(curve.loc[1, ["mean_predicted", "observed_fraction", "observed_lower"]].astype(float)).all()
    assert curve.loc[2, "observed_lower"] > 0 and curve.loc[2, "observed_upper"] == 1.0  # 1 of 1
    assert curve.loc[3, "observed_fraction"] == 0.5
    # ECE by hand: (3 |1/3 - 0.05| + 1 |1 - 0.55| + 2 |0.5 - 1|) / 6
    assert dg.expected_calibration_error(p, y, n_bins=4) == pytest.approx((3 * (1 / 3 - 0.05) + 0.45 + 1.0) / 6)


def test_reliability_curve_quantile_bins():
    p, y = binary_case(n=1000, seed=3)
    curve = dg.reliability_curve(p, y, n_bins=5, strategy="quantile")
    assert len(curve) == 5 and curve["count"].tolist() == [200] * 5
    assert curve["bin_lower"].iloc[0] == p.min() and curve["bin_upper"].iloc[-1] == p.max()
    # many equal probabilities (a membership model's p = 0 for most of a field): repeated edges merge
    p0 = np.r_[np.zeros(900), np.linspace(0.1, 1, 100)]
    merged = dg.reliability_curve(p0, p0 > 0.5, n_bins=10, strategy="quantile")
    assert len(merged) < 10 and merged["count"].sum() == 1000 and merged.loc[0, "count"] == 900
    single = dg.reliability_curve(np.zeros(5), np.zeros(5), strategy="quantile")
    assert single["count"].tolist() == [5]


BINARY_BAD = [
    ("length mismatch", lambda: dg.brier_score([0.1, 0.2], [1]), r"same length, got 2 probabilities and 1"),
    ("p above 1", lambda: dg.reliability_curve([0.1, 1.2], [0, 1]),
     r"p must be probabilities in \[0, 1\].*p\[1\] = 1.2"),
    ("p negative", lambda: dg.expected_calibration_error([-0.1, 0.2], [0, 1]), r"in \[0, 1\]: 1 value"),
    ("p NaN", lambda: dg.brier_score([0.1, np.nan], [0, 1]), r"p contains NaN.*first: case 1"),
    ("y NaN", lambda: dg.brier_score([0.1, 0.2], [np.nan, 1]), r"y contains NaN.*first: case 0"),
    ("y not 0/1", lambda: dg.brier_score([0.1, 0.2], [0, 2]), r"y must be outcomes 0/1.*y\[1\] = 2"),
    ("empty", lambda: dg.reliability_curve([], []), r"empty: there is nothing to score"),
    ("2-D p", lambda: dg.brier_score(np.zeros((2, 2)), np.zeros((2, 2))), r"must be 1-D"),
    ("non-numeric", lambda: dg.brier_score(["a"], [1]), r"p and y must be numeric"),
    ("zero bins", lambda: dg.reliability_curve([0.1], [1], n_bins=0), r"n_bins must be a positive integer"),
    ("float bins", lambda: dg.expected_calibration_error([0.1], [1], n_bins=2.5), r"n_bins must be a positive"),
    ("strategy", lambda: dg.reliability_curve([0.1], [1], strategy="kmeans"), r"strategy must be 'uniform' or"),
    ("level", lambda: dg.reliability_curve([0.1], [1], level=1.0), r"level must be strictly between"),
]


@pytest.mark.parametrize("name, call, match", BINARY_BAD, ids=[b[0] for b in BINARY_BAD])
def test_binary_bad_input_table(name, call, match):
    with pytest.raises(ValueError, match=match):
        call()
