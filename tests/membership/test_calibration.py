"""ocnb.membership.calibration: the isotonic map of vote fractions and its leave-one-cluster-out scores.

The scores here are SIMULATED: per cluster, each candidate has a true membership probability q, its vote
fraction is an under-confident image of it (q² as 100 binomial draws), and its truth is drawn from q. A
calibration fitted on the other clusters must then bring the held-out expected calibration error down.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocnb.membership.calibration import (
    CALIBRATION_FORMAT,
    ProbabilityCalibration,
    calibration_from_scores,
    fit_calibration,
)


def simulated_scores(name, seed, n_cand=600, n_field=400):
    """One cluster's (name, p, truth, is_candidate): candidates then non-candidates (p = 0, never members)."""
    rng = np.random.default_rng(seed)
    q = rng.beta(2.0, 0.6, n_cand)                      # true membership probability of each candidate
    votes = rng.binomial(100, q ** 2) / 100.0           # under-confident vote fraction
    truth = rng.uniform(size=n_cand) < q
    n = n_cand + n_field
    p = np.zeros(n)
    p[:n_cand] = votes
    t = np.zeros(n, bool)
    t[:n_cand] = truth
    cand = np.arange(n) < n_cand
    return name, p, t, cand


@pytest.fixture(scope="module")
def scores():
    return [simulated_scores(f"cluster {i}", 10 + i) for i in range(3)]


def test_map_is_isotonic_and_corrects_under_confidence(scores):
    cal = calibration_from_scores(scores)
    assert cal.clusters == ["cluster 0", "cluster 1", "cluster 2"]
    assert cal.n_candidates == 1800 and 0 < cal.n_members < 1800
    assert np.all(np.diff(cal.x) >= 0) and np.all(np.diff(cal.y) >= 0)
    assert 0 <= cal.y.min() and cal.y.max() <= 1
    # votes = q^2, so a vote fraction of 0.25 means q ~ 0.5: the map lifts it (binomial and bin noise: wide margins)
    assert 0.35 < float(cal(0.25)) < 0.65
    assert float(cal(0.81)) > 0.8
    assert cal(np.array([-1.0, 2.0])).tolist() == [cal.y[0], cal.y[-1]]   # clipped to the end values


def test_leave_one_cluster_out_scores_improve_calibration(scores):
    held = calibration_from_scores(scores).held_out
    assert set(held["cluster"]) == {"cluster 0", "cluster 1", "cluster 2"}
    assert set(held["kind"]) == {"raw", "calibrated"}
    wide = held.pivot_table(index="cluster", columns="kind", values="ece_candidates")
    # raw ECE ~ E[q - q^2] ~ 0.15; a map fitted on 1,200 other candidates leaves a few hundredths
    assert (wide["raw"] > 0.08).all()
    assert (wide["calibrated"] < 0.07).all()
    assert (wide["calibrated"] < wide["raw"] / 2).all()
    assert held["n_candidates"].eq(600).all()


def test_one_cluster_has_no_held_out_scores():
    cal = calibration_from_scores([simulated_scores("alone", 3)])
    assert cal.held_out.empty and cal.n_candidates == 600


def test_round_trip_frame_and_plot(scores):
    cal = calibration_from_scores(scores)
    again = ProbabilityCalibration.from_dict(cal.to_dict())
    np.testing.assert_array_equal(again.x, cal.x)
    np.testing.assert_array_equal(again.y, cal.y)
    assert again.clusters == cal.clusters and again.n_draws == 100
    pd.testing.assert_frame_equal(again.held_out, cal.held_out)
    assert list(cal.to_frame().columns) == ["vote_fraction", "probability"]
    assert "isotonic" in repr(cal)
    import matplotlib

    matplotlib.use("Agg")
    ax = cal.plot()
    assert ax.get_xlabel() == "fraction of draws called member"


def _few_members():
    name, p, t, cand = simulated_scores("few", 1)
    t[:] = False
    t[:3] = True
    return calibration_from_scores([(name, p, t, cand)])


BAD = [
    ("no clusters", lambda: calibration_from_scores([]), "at least one held-out cluster"),
    ("not a tuple", lambda: calibration_from_scores([np.zeros(3)]), r"\(name, p, truth, is_candidate\)"),
    ("lengths differ", lambda: calibration_from_scores([("x", np.zeros(5), np.zeros(4, bool), np.ones(5, bool))]),
     "cluster 'x'.*one length"),
    ("NaN vote", lambda: calibration_from_scores([("x", np.array([0.5, np.nan]), np.ones(2, bool),
                                                   np.ones(2, bool))]), "finite and in \\[0, 1\\]"),
    ("vote above 1", lambda: calibration_from_scores([("x", np.array([0.5, 1.5]), np.ones(2, bool),
                                                      np.ones(2, bool))]), "finite and in \\[0, 1\\]"),
    ("too few members", _few_members, "at least 5 member.*3 members"),
    ("knots decrease", lambda: ProbabilityCalibration(x=[0, 0.5, 1], y=[0.1, 0.6, 0.4]), "non-decreasing"),
    ("knots outside [0, 1]", lambda: ProbabilityCalibration(x=[0, 1], y=[0.0, 1.2]), "lie in \\[0, 1\\]"),
    ("knots unequal", lambda: ProbabilityCalibration(x=[0, 1], y=[0.5]), "equal 1-D arrays"),
    ("NaN knot", lambda: ProbabilityCalibration(x=[0, np.nan], y=[0.1, 0.2]), "finite"),
    ("other format", lambda: ProbabilityCalibration.from_dict({"format": "x/1", "x": [0], "y": [0]}),
     f"expected '{CALIBRATION_FORMAT}'"),
    ("not a dict", lambda: ProbabilityCalibration.from_dict([1, 2]), "not a membership calibration"),
    ("fit on nothing", lambda: fit_calibration(object(), []), "at least one held-out cluster"),
    ("cluster without truth", lambda: fit_calibration(object(), [type("C", (), {"name": "NGC 1", "truth": None})()]),
     "'NGC 1' has no truth mask"),
]


@pytest.mark.parametrize("name, call, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, match):
    with pytest.raises(ValueError, match=match):
        call()
