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
