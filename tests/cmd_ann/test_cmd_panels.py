"""Notebook-01 panels without a browser: QuadTree inspector, ensemble isochrones, gradient panel.

Widgets are driven as a user would (``widget.value = ...``, ``button.click()``) or through ``set()``;
the assertions read the panels' state and the live bokeh figures (data, ranges, glyph styles).
"""

import importlib.util

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("ipywidgets")

from ocnb import cmd_ann, datasets, stats  # noqa: E402
from ocnb.cmd_ann import estimate, simulate_clusters, train_default  # noqa: E402
from ocnb.cmd_ann.features import QuadTreeFeatures  # noqa: E402
from ocnb.panels import PanelValueError  # noqa: E402

needs_pymc = pytest.mark.skipif(importlib.util.find_spec("pymc") is None, reason="needs pymc (ocnb[bayes])")


@pytest.fixture(scope="module")
def features():
    return QuadTreeFeatures("multi").fit(simulate_clusters(150, seed=5, progress=False))  # SIMULATED


@pytest.fixture(scope="module")
def inspector(features):
    tables = {n: datasets.load_members(n) for n in ("M67", "Pleiades", "Hyades")}
    return cmd_ann.QuadTreeInspector(tables, features)


def assert_frame_contains(fig, x, y):
    """The live figure's axis ranges contain every point (y may be inverted); Reset returns there."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xr = sorted((fig.x_range.start, fig.x_range.end))
    yr = sorted((fig.y_range.start, fig.y_range.end))
    assert xr[0] <= x.min() and x.max() <= xr[1], (xr, x.min(), x.max())
    assert yr[0] <= y.min() and y.max() <= yr[1], (yr, y.min(), y.max())
    assert (fig.x_range.reset_start, fig.x_range.reset_end) == (fig.x_range.start, fig.x_range.end)
    assert (fig.y_range.reset_start, fig.y_range.reset_end) == (fig.y_range.start, fig.y_range.end)


def _colours(fig):
    return [(type(r.glyph).__name__, getattr(r.glyph, "fill_color", None), getattr(r.glyph, "line_color", None))
            for r in fig.renderers]


# ---------------------------------------------------------------------------
# QuadTree inspector
# ---------------------------------------------------------------------------
def test_quadtree_inspector(inspector):
    qi = inspector
    qi.set(cluster="M67", cmd="cmd1", level=3)
    pts, segs = qi.data(**qi.state())
    assert len(pts) > 1000 and set(segs.level) == {1, 2, 3}
    qi.level.value = 1  # what a user's drag does
    assert qi._stream.contents["level"] == 1
    assert set(qi.data(**qi.state())[1].level) == {1}
    qi.picker.value = "Hyades"
    assert "Hyades" in qi.info.value
    qi.cmd.value = "cmd3"
    pts3, _ = qi.data(**qi.state())
    assert 0 < len(pts3) < len(qi.tables["Hyades"])
    qi.set(cmd="CMD1: BP-RP vs G")  # the dropdown label works too
    assert qi.state()["cmd"] == "cmd1"


def test_quadtree_axes_follow_cluster_and_cmd(inspector):
    qi = inspector
    qi.set(cluster="M67", cmd="cmd1", level=3)
    fig = hv.renderer("bokeh").get_plot(qi.plot()).state  # first frame: M67, CMD1
    m67 = qi.data(**qi.state())[0]
    assert_frame_contains(fig, m67["x"], m67["y"])
    # the Pleiades' bright stars and CMD3 were cut off by M67's CMD1 frame
    for change in (dict(cluster="Pleiades"), dict(cmd="cmd3"), dict(cluster="Hyades", cmd="cmd2")):
        qi.set(**change)
        pts = qi.data(**qi.state())[0]
        assert len(pts) > 100
        assert_frame_contains(fig, pts["x"], pts["y"])
    qi.set(cluster="Pleiades", cmd="cmd1")
    ple = qi.data(**qi.state())[0]
    assert ple["y"].min() < m67["y"].min()  # brighter than anything in M67: the frame had to move
    assert_frame_contains(fig, ple["x"], ple["y"])


BAD_INSPECTOR_SET = [
    (dict(cluster="NGC 188"), r"cluster = 'NGC 188' is not one of the options: 'M67', 'Pleiades', 'Hyades'"),
    (dict(cmd="cmd9"), r"cmd = 'cmd9' is not one of the options: 'cmd1', 'cmd2', 'cmd3'"),
    (dict(level=4), r"level = 4 is outside the allowed range \[1, 3\]"),
    (dict(level=1.5), r"level = 1.5: need a whole number"),
    (dict(zoom=2), r"unknown parameter\(s\) \['zoom'\] for QuadTreeInspector"),
]


@pytest.mark.parametrize(("values", "match"), BAD_INSPECTOR_SET)
def test_inspector_set_rejects_bad_values(inspector, values, match):
    before = inspector.state()
    with pytest.raises(PanelValueError, match=match):
        inspector.set(**values)
    assert inspector.state() == before


def test_inspector_bad_construction(features):
    with pytest.raises(PanelValueError, match="at least one member table"):
        cmd_ann.QuadTreeInspector({}, features)
    with pytest.raises(PanelValueError, match=r"start = 'M4' is not one of the tables: \['M67'\]"):
        cmd_ann.QuadTreeInspector({"M67": datasets.load_members("M67")}, features, start="M4")
    with pytest.raises(PanelValueError, match="fitted QuadTreeFeatures"):
        cmd_ann.QuadTreeInspector({"M67": datasets.load_members("M67")}, QuadTreeFeatures("multi"))


# ---------------------------------------------------------------------------
# ensemble isochrones
# ---------------------------------------------------------------------------
def test_ensemble_isochrone_panel():
    model = train_default("fast")
    est = estimate(datasets.load_members("M67"), model)
    panel = est.panel()
    assert isinstance(panel, cmd_ann.EnsembleIsochronePanel)
    assert panel.state()["log_age"] == pytest.approx(np.clip(est.point["log_age"], *panel.grid.age_range),
                                                     abs=0.01)
    paths = panel.ensemble_paths()
    assert len(paths) >= model.ensemble.n_members
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state
    assert len(fig.renderers) >= 3
    assert "M67" in fig.title.text or "NGC 2682" in fig.title.text
    panel.set(dist_mod=panel.state()["dist_mod"] + 0.5)  # the slider isochrone moves, the members' frame stays
    m = panel.members_frame()
    assert_frame_contains(fig, m["x"], m["y"])


# ---------------------------------------------------------------------------
# gradient panel
# ---------------------------------------------------------------------------
@pytest.fixture
def gradient_panel(cavallo, hunt):
    return cmd_ann.GradientPanel(cavallo, hunt, draws=100, tune=100, chains=2)


@needs_pymc
def test_gradient_panel(gradient_panel):
    panel = gradient_panel
    st = panel.state()
    assert st["n"] == 839 and st["quality"] == (0,) and not st["fitted"]
    assert st["min_log_age"] == pytest.approx(8.699)  # exactly the paper's cut (a 0.01 step would round it)
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state  # a live plot, as in a notebook
    panel.min_age.value = 9.0  # what a user's drag does
    n_old = panel.state()["n"]
    assert 100 < n_old < 839 and f"N = {n_old}" in panel.info.value
    res = panel.fit()
    assert res is panel.result and res.n == n_old and panel.state()["fitted"]
    assert res.settings["draws"] == 100 and "α" in panel.fit_info.value and "quick fit" in panel.fit_info.value
    assert res.bounds == stats.FAST_BOUNDS
    band = panel.band_frame()
    assert len(band) == 60 and (band["lo"] <= band["hi"]).all()
    patches = [r for r in fig.renderers if "y" in r.data_source.data and len(r.data_source.data["y"]) == 120]
    assert patches, "no posterior band drawn"
    colours = _colours(fig)
    panel.quality[1].value = True  # add silver: the fit is now stale
    st = panel.state()
    assert st["n"] > n_old and st["quality"] == (0, 1) and not st["fitted"]
    # no glyph changed colour in place (BokehJS echoed such a change as Value('gray'), which Bokeh rejected);
    # the stale band moved to its own grey layer
    assert _colours(fig) == colours
    assert "(previous cuts)" in fig.title.text
    scatter = [r for r in fig.renderers if "name" in r.data_source.data]
    assert len(scatter[0].data_source.data["name"]) == st["n"]
    sel = panel.selection()
    assert_frame_contains(fig, sel["R"], np.r_[sel["feh"] - sel["sigma_feh"], sel["feh"] + sel["sigma_feh"]])
    panel.fit_button.click()
    assert panel.result.n == st["n"] and panel.state()["fitted"] and len(panel.history) == 2
    assert _colours(fig) == colours and "(previous cuts)" not in fig.title.text
    panel.set(r_range=(5.0, 6.0), cmd_min=0.0, min_log_age=9.8)
    assert 0 < panel.state()["n"] < 3 and panel.fit() is None and "nothing to fit" in panel.fit_info.value
    assert panel.result is not None  # one or two clusters: the fit stays, labelled as of the previous cuts
    # the frame follows the (tiny) selection
    panel.set(r_range=(10.0, 16.0), cmd_min=0.0, min_log_age=6.5, quality=(0, 1, 2, 3))
    sel = panel.selection()
    assert sel["R"].max() > 13
    assert_frame_contains(fig, sel["R"], sel["feh"])


@needs_pymc
def test_gradient_panel_empty_selection_clears_the_fit(gradient_panel):
    """N = 0 must not keep showing the fit of other cuts (it did: band, title and text stayed)."""
    panel = gradient_panel
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state
    panel.set(min_log_age=9.3, r_range=(7.0, 9.0))
    assert panel.fit() is not None and panel.state()["fitted"]
    assert "α = " in fig.title.text and "α = " in panel.fit_info.value
    panel.set(min_log_age=10.2)  # nothing is that old
    st = panel.state()
    assert st["n"] == 0 and not st["fitted"] and panel.result is None
    assert "N = 0" in panel.fit_info.value and "previous fit was cleared" in panel.fit_info.value
    assert panel.band_frame().empty
    assert "α" not in fig.title.text and "no cluster passes these cuts" in fig.title.text
    band_glyphs = [r for r in fig.renderers if "lo" in r.data_source.data or "mean" in r.data_source.data]
    assert all(len(next(iter(r.data_source.data.values()))) == 0 for r in band_glyphs)
    assert panel.fit() is None and "nothing to fit" in panel.fit_info.value  # Fit on N = 0 says so too
    panel.set(min_log_age=9.3)  # clusters again, no fit until Fit is pressed
    assert panel.state()["n"] > 3 and panel.result is None and "previous cuts" not in fig.title.text


@needs_pymc
def test_gradient_panel_says_why_a_quick_fit_did_not_converge(gradient_panel):
    """2 x 100 draws cannot reach ESS > 400: the text names the failed bound and what to do, not only 'more draws'."""
    panel = gradient_panel
    panel.set(min_log_age=9.3, r_range=(7.0, 9.0))
    res = panel.fit()
    assert not res.converged
    text = panel.fit_info.value
    assert "NOT converged" in text and "bulk ESS = " in text and "≤ 400" in text
    assert "GradientPanel(draws=200)" in text and "fit_metallicity_gradient" in text and "5000" in text
    assert panel.history[-1]["converged"] is False
    panel.set(cmd_min=0.4)  # the fit is now of other cuts, and the text says so
    assert panel.fit_info.value.startswith("<i>Fit of the previous cuts</i>")
    panel.set(cmd_min=0.5)
    assert panel.fit_info.value == text


@needs_pymc
def test_gradient_panel_default_quick_fit_converges(cavallo, hunt):
    """The panel's own sampler (2 x 1000/1500) converges by FAST_BOUNDS, with margin, on a small and a large cut."""
    panel = cmd_ann.GradientPanel(cavallo, hunt)
    assert panel.sampler == {"draws": 1500, "tune": 1000, "chains": 2, "seed": 0}
    for cuts in (dict(min_log_age=9.3, r_range=(7.0, 9.0)), dict(min_log_age=8.699, r_range=(5.0, 12.0))):
        panel.set(**cuts)
        res = panel.fit()
        assert res.converged, res.convergence()
        assert res.summary["ess_bulk"].min() > 500 and res.summary["r_hat"].max() < 1.02, res.summary
        assert "converged: r̂ < 1.05, ESS > 400" in panel.fit_info.value


BAD_GRADIENT_SET = [
    (dict(min_log_age=11.0), r"min_log_age = 11 is outside the allowed range \[6.5, 10.2\]"),
    (dict(quality=(0, 5)), r"quality class\(es\) \[5\] unknown"),
    (dict(quality=0), r"quality must be an iterable of classes \[0, 1, 2, 3\], got 0"),
    (dict(quality=(0.5,)), r"quality must be an iterable of classes"),
    (dict(r_range=(12.0, 5.0)), r"r_range = \(12, 5\): need finite low <= high"),
    (dict(r_range=(0.0, 99.0)), r"r_range = \(0, 99\) is outside the allowed range"),
    (dict(cmd_min=float("nan")), r"cmd_min = nan: need a number in \[0, 1\]"),
    (dict(auto="on"), r"auto must be True or False, got 'on'"),
    (dict(draws=100), r"unknown parameter\(s\) \['draws'\] for GradientPanel"),
]


@pytest.mark.parametrize(("values", "match"), BAD_GRADIENT_SET)
def test_gradient_panel_set_rejects_bad_values(gradient_panel, values, match):
    before = gradient_panel.state()
    with pytest.raises(PanelValueError, match=match):
        gradient_panel.set(**values)
    assert gradient_panel.state() == before


def test_gradient_panel_on_own_estimates(cavallo, hunt):
    # a table shaped like our ANN output (no quality column): the quality cut is off and cannot be set
    import pandas as pd

    sub = cavallo.iloc[:300]
    ours = pd.DataFrame({"name": sub["name"].to_numpy(), "logAge_50": sub["logAge50"].to_numpy(),
                         **{f"feh_{p}": sub[f"[Fe/H]{p}"].to_numpy() for p in (16, 50, 84)},
                         **{f"dMod_{p}": sub[f"dMod{p}"].to_numpy() for p in (16, 50, 84)}})
    panel = cmd_ann.GradientPanel(ours, hunt)
    st = panel.state()
    assert st["quality"] is None and all(cb.disabled for cb in panel.quality.values())
    with pytest.raises(PanelValueError, match="no quality column"):
        panel.set(quality=(0,))
    panel.set(**{k: st[k] for k in panel.settable})  # its own state round-trips (None = unchanged)
    assert panel.state() == st


def test_every_inspector_widget_responds(inspector, caplog):
    fig = hv.renderer("bokeh").get_plot(inspector.plot()).state
    with caplog.at_level("WARNING"):
        for cluster in inspector.picker.options:
            inspector.picker.value = cluster
            for _, cmd in inspector.cmd.options:
                inspector.cmd.value = cmd
                for level in range(1, inspector.level.max + 1):
                    inspector.level.value = level
                pts = inspector.data(**inspector.state())[0]
                assert_frame_contains(fig, pts["x"], pts["y"])
                assert f"{cluster}: {cmd}" in fig.title.text
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.text


@needs_pymc
def test_gradient_auto_refit_and_every_widget(gradient_panel, caplog):
    panel = gradient_panel
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state
    colours = _colours(fig)
    with caplog.at_level("WARNING"):
        panel.auto.value = True  # refit on every change
        panel.cmd_min.value = 0.9
        assert panel.state()["fitted"] and len(panel.history) == 1
        panel.quality[1].value = True  # add silver: refitted at once
        assert panel.state()["fitted"] and panel.state()["quality"] == (0, 1) and len(panel.history) == 2
        panel.auto.value = False
        for q in (2, 3, 0):  # add bronze, wood, then drop gold (never an empty selection)
            box = panel.quality[q]
            box.value = not box.value
            assert (q in panel.state()["quality"]) == box.value and not panel.state()["fitted"]
        panel.r_range.value = (6.0, 11.0)
        panel.cmd_min.value = 0.3
        panel.min_age.value = 8.5
        assert panel.state()["n"] >= 20, panel.state()
        assert not panel.state()["fitted"] and "(previous cuts)" in fig.title.text
        panel.fit_button.click()
        assert panel.state()["fitted"] and len(panel.history) == 3
    assert _colours(fig) == colours
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.text
