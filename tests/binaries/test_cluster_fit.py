"""Iterative cluster fit (ocnb.binaries.cluster_fit; spec B6) on a SIMULATED cluster with fabricated posteriors.

The per-star posteriors are a TEST FIXTURE: wide Gaussians around each member's true parameters
(offset per star), as an NPE gives them, so that the fit's own logic — weights, modes, age stars,
updates, floors, convergence — is checked against a known cluster without training a network.
"""

import numpy as np
import pytest

from ocnb.binaries import THETA_NAMES, simulate_cluster
from ocnb.binaries.cluster_fit import ClusterFit, fit_cluster
from ocnb.binaries.posterior import StarPosteriors

TRUTH = {"log_age": 9.3, "feh": 0.0, "dist_mod": 9.5, "a_v": 0.3}
WIDTH = {"mass_a": 0.03, "feh": 0.2, "log_age": 0.25, "q": 0.05, "dist_mod": 0.06, "a_v": 0.15}


@pytest.fixture(scope="module")
def cluster():
    return simulate_cluster(300, **TRUTH, seed=5).to_frame()


def fabricated(frame, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    k = len(frame)
    s = np.empty((k, n, len(THETA_NAMES)))
    for j, name in enumerate(THETA_NAMES):
        offset = 0.5 * WIDTH[name] * rng.normal(size=(k, 1))  # each star's posterior is off by ~σ/2
        s[..., j] = frame[name].to_numpy()[:, None] + offset + WIDTH[name] * rng.normal(size=(k, n))
    q = s[..., THETA_NAMES.index("q")]
    q[~frame["is_binary"].to_numpy()] = 0.0
    s[..., THETA_NAMES.index("q")] = np.clip(q, 0, 1)
    s[..., THETA_NAMES.index("a_v")] = np.clip(s[..., THETA_NAMES.index("a_v")], 0, None)
    return StarPosteriors(samples=s, q_drawn=s[..., THETA_NAMES.index("q")], band_set=np.full(k, "All_Mags"),
                          status=np.full(k, "ok"), outlier_distance=np.zeros(k), index=frame.index)


def test_fit_recovers_the_simulated_cluster(cluster):
    fit = fit_cluster(cluster, TRUTH["feh"], posteriors=fabricated(cluster), max_iter=25, progress=False)
    assert isinstance(fit, ClusterFit)
    d_true = 10 ** (1 + TRUTH["dist_mod"] / 5)
    p = fit.params
    # within the cluster σ (floors: 2 % of d, 0.05 mag) and a few × for age from few evolved stars
    assert abs(p["distance"] - d_true) < 2 * p["distance_sigma"]
    assert abs(p["a_v"] - TRUTH["a_v"]) < 2 * p["a_v_sigma"]
    assert abs(p["log_age"] - TRUTH["log_age"]) < 0.15
    assert p["feh"] == 0.0 and p["distance_sigma"] >= 0.02 * p["distance"] - 1e-9
    h = fit.history
    assert set(h["round"]) == {1, 2} and h["n_valid_stars"].iloc[-1] > 150
    stars = fit.to_frame()
    assert len(stars) == len(cluster) and {"mass_a_mode", "q_mode", "p_binary", "label", "used_for_age"} <= set(
        stars.columns)
    ok = ~stars["outlier"]
    # binaries in the fabricated posteriors have q ≈ truth: P_b sorts them from the singles
    truth_bin = cluster["is_binary"].to_numpy()[ok.to_numpy()]
    pb = stars.loc[ok, "p_binary"].to_numpy()
    assert np.mean((pb > 0.5) == truth_bin) > 0.9
    fig = fit.plot()
    assert len(fig.axes) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_a_catalogue_start_is_used_and_the_fit_moves_from_it(cluster):
    d_true = 10 ** (1 + TRUTH["dist_mod"] / 5)
    post = fabricated(cluster, n=800)
    start = {"log_age": TRUTH["log_age"], "distance": 1.05 * d_true, "a_v": TRUTH["a_v"]}
    one = {"posteriors": post, "progress": False, "max_iter": 1}
    plain = fit_cluster(cluster, TRUTH["feh"], **one).history["distance"].iloc[0]
    started = fit_cluster(cluster, TRUTH["feh"], init=start, **one).history["distance"].iloc[0]
    assert started > plain + 0.005 * d_true  # the cluster prior of the first weights sat at the start
    fit = fit_cluster(cluster, TRUTH["feh"], posteriors=post, init=start, max_iter=20, progress=False)
    assert abs(fit.params["distance"] - d_true) < 2 * fit.params["distance_sigma"]


def test_a_main_sequence_only_list_says_the_age_is_unconstrained(cluster):
    ms = cluster[cluster["label_a"] == 1].iloc[:120]
    fit = fit_cluster(ms, 0.0, posteriors=fabricated(ms, n=800), max_iter=12, progress=False)
    assert any("age is unconstrained" in f for f in fit.flags)


@pytest.mark.parametrize("case, match", [
    ("feh", r"feh must be the cluster's spectroscopic \[Fe/H\] in dex, a finite number, not nan"),
    ("rows", r"posteriors hold 300 stars but the member table has 299"),
    ("none", r"only 0 of 300 members have a posterior"),
    ("iter", r"max_iter must be a whole number ≥ 1, not 0"),
    ("init_key", r"init has 'age'; it may set \['log_age', 'distance', 'a_v'\]"),
    ("init_value", r"init\['distance'\] = -5.0 is not a usable starting value"),
])
def test_bad_input_table(cluster, case, match):
    post = fabricated(cluster, n=50)
    kw = dict(posteriors=post, progress=False)
    members, feh = cluster, 0.0
    if case == "feh":
        feh = float("nan")
    elif case == "rows":
        members = cluster.iloc[:-1]
    elif case == "none":
        post.status[:] = "no band set"
    elif case == "iter":
        kw["max_iter"] = 0
    elif case == "init_key":
        kw["init"] = {"age": 9.0}
    elif case == "init_value":
        kw["init"] = {"distance": -5.0}
    with pytest.raises(ValueError, match=match):
        fit_cluster(members, feh, **kw)

