"""Notebook 03's star explorer (ocnb.binaries.panels) without a browser: state, set, plots, bad input.

Posterior samples are a TEST FIXTURE (hand-made arrays), the CMD a SIMULATED cluster.
"""

import numpy as np
import pytest

pytest.importorskip("holoviews")

from ocnb.binaries import THETA_NAMES, simulate_cluster
from ocnb.binaries.panels import StarPosteriorPanel
from ocnb.binaries.posterior import StarPosteriors
from ocnb.panels import PanelValueError


@pytest.fixture(scope="module")
def case():
    f = simulate_cluster(30, log_age=9.3, feh=0.0, dist_mod=9.0, a_v=0.2, seed=1).to_frame()
    rng = np.random.default_rng(0)
    s = np.empty((len(f), 200, len(THETA_NAMES)))
    for j, k in enumerate(THETA_NAMES):
        s[..., j] = f[k].to_numpy()[:, None] + 0.05 * rng.normal(size=(len(f), 200))
    q = np.clip(0.5 + 0.05 * rng.normal(size=s.shape[:2]), 0, 1)
    q[:, :50] = 0.0  # a quarter of every star's samples single
    s[..., THETA_NAMES.index("q")] = q
    status = np.full(len(f), "ok")
    status[3] = "photometric outlier"
    s[3] = np.nan
    post = StarPosteriors(samples=s, q_drawn=q, band_set=np.full(len(f), "All_Mags"), status=status,
                          outlier_distance=np.zeros(len(f)), index=f.index)
    w = np.ones(s.shape[:2])
    w[:, 100:] = 0.0
    return post, f, w


def test_state_set_and_plots_follow(case):
    import holoviews as hv

    post, f, w = case
    p = StarPosteriorPanel(post, f, weights=w)
    s = p.state()
    assert s["star"] == 0 and s["cluster_prior"] is True and s["n_valid"] == 100 and s["p_single"] == 0.5
    p.set(star=3, cluster_prior=False)  # position 3 among the stars with a posterior: star index 4
    s = p.state()
    assert s["index"] == f.index[4] and s["n_valid"] == 200 and s["p_single"] == pytest.approx(0.25)
    assert "P(q = 0) = 0.25" in p.readout.value
    layout = p.plot()
    hv.render(layout, backend="bokeh")  # both views draw
    p.set(**{k: p.state()[k] for k in p.settable})  # round trip changes nothing
    assert p.state()["star"] == 3


def test_bad_input(case):
    post, f, w = case
    with pytest.raises(PanelValueError, match="star = 40: choose a position 0 … 28"):
        StarPosteriorPanel(post, f, star=40)
    with pytest.raises(PanelValueError, match=r"weights must have shape \(30, 200\)"):
        StarPosteriorPanel(post, f, weights=w[:, :10])
    with pytest.raises(PanelValueError, match="29 members"):
        StarPosteriorPanel(post, f.iloc[:-1])
    p = StarPosteriorPanel(post, f)
    assert p.prior_box.disabled and p.state()["cluster_prior"] is False
    with pytest.raises(PanelValueError):
        p.set(star=99)


def test_click_on_the_cmd_picks_the_nearest_star_and_sequences_are_drawn(case):
    import holoviews as hv

    post, f, w = case
    cluster = {"log_age": 9.3, "feh": 0.0, "dist_mod": 9.0, "a_v": 0.2}
    p = StarPosteriorPanel(post, f, weights=w, cluster=cluster)
    colour, g = (f["BP"] - f["RP"]).to_numpy(), f["G"].to_numpy()
    pos = p.select_at(colour[10] + 0.001, g[10] - 0.002)  # a click next to star 10 (position 9: star 3 has none)
    assert pos == 9 and p.state()["index"] == f.index[10]
    p.select_at(colour[3], g[3])  # the star without a posterior is never picked
    assert p.state()["index"] != f.index[3]
    layout = p.plot()
    p.tap.event(x=float(colour[20]), y=float(g[20]))  # what a click in the browser sends
    assert p.state()["index"] == f.index[20]
    sq = p.sequences
    assert len(sq) > 10 and np.all(np.isfinite(sq["G"]))
    hv.render(layout, backend="bokeh")
    with pytest.raises(PanelValueError, match=r"cluster lacks \['a_v'\]"):
        StarPosteriorPanel(post, f, cluster={"log_age": 9.3, "feh": 0.0, "dist_mod": 9.0})


def fraction_stars(n=200, seed=0):
    """TEST FIXTURE: a fitted-cluster table with half of the MS stars binaries at q = 0.6."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    m = rng.uniform(0.4, 1.2, n)
    q = np.where(np.arange(n) % 2 == 0, 0.6, 0.0)
    return pd.DataFrame({"q_mode": q, "mass_a_mode": m, "label": np.where(np.arange(n) < 190, 1, 3),
                         "G": np.full(n, 16.0)})


def test_binary_fraction_panel_follows_its_sliders():
    import holoviews as hv

    from ocnb.binaries.panels import BinaryFractionPanel

    st = fraction_stars()
    p = BinaryFractionPanel(st, q_thresh=0.3, n_bins=4, reference={"q_Gaia+": 0.254})
    s = p.state()
    assert (s["n_ms"], s["n_binary"], s["f_b"]) == (190, 95, 0.5)
    assert "95 binaries among 190" in p.readout.value and "q_Gaia+: 0.254" in p.readout.value
    t = p.table()
    assert len(t) == 4 and t["n_ms"].sum() == 190 and abs(t["n_ms"] - 47.5).max() <= 1
    p.set(q_thresh=0.7)
    assert p.state()["n_binary"] == 0
    p.set(n_bins=7)
    assert len(p.table()) == 7
    hv.render(p.plot(), backend="bokeh")
    with pytest.raises(PanelValueError, match="lacks column"):
        BinaryFractionPanel(st.drop(columns="label"))
    with pytest.raises(PanelValueError, match="only 0 main-sequence members"):
        BinaryFractionPanel(st.assign(label=3))
    with pytest.raises(PanelValueError, match=r"q_thresh = 1\.5"):
        BinaryFractionPanel(st, q_thresh=1.5)


def test_cluster_fit_scrubber_follows_the_iterations(case):
    import holoviews as hv
    import pandas as pd

    from ocnb.binaries import ClusterFit
    from ocnb.binaries.panels import ClusterFitPanel

    _, f, _ = case
    hist = pd.DataFrame({"round": [1, 1, 1, 2, 2], "iteration": [1, 2, 3, 1, 2],
                         "log_age": [9.0, 9.2, 9.3, 9.3, 9.31], "distance": [500, 560, 600, 601, 602.0],
                         "a_v": [0.5, 0.3, 0.2, 0.2, 0.21]})
    for k in ("log_age", "distance", "a_v"):
        hist[f"{k}_sigma"] = 0.05 * hist[k]
    fit = ClusterFit(params={"feh": 0.0, "log_age": 9.31, "distance": 602.0, "a_v": 0.21}, history=hist,
                     stars=pd.DataFrame(index=f.index), converged={1: True, 2: True}, flags=[])
    p = ClusterFitPanel(fit, f)
    s = p.state()
    assert (s["iteration"], s["round"], s["step"], s["log_age"]) == (4, 2, 2, 9.31)
    p.set(iteration=1)
    assert p.state()["distance"] == 560 and "round 1, iteration 2" in p.readout.value
    hv.render(p.plot(), backend="bokeh")
    with pytest.raises(PanelValueError, match="iteration = 9: choose 0 … 4"):
        ClusterFitPanel(fit, f, iteration=9)
    with pytest.raises(PanelValueError, match="has 30 stars but members has 29"):
        ClusterFitPanel(fit, f.iloc[:-1])
    with pytest.raises(PanelValueError, match="no iterations"):
        ClusterFitPanel(ClusterFit(params={}, history=hist.iloc[:0], stars=fit.stars, converged={}, flags=[]), f)
