"""Notebook-01 panels without a browser: QuadTree inspector, ensemble isochrones, gradient panel.

Widgets are driven as a user would (``widget.value = ...``, ``button.click()``) or through ``set()``;
the assertions read the panels' state and the live bokeh figures (data, ranges, glyph styles).
"""

import importlib.util
from pathlib import Path

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
    panel.set(min_log_age=9.3)  # clusters again, no fit until Fit is pressed, and the text no longer says N = 0
    assert panel.state()["n"] > 3 and panel.result is None and "previous cuts" not in fig.title.text
    assert "N = 0" not in panel.fit_info.value and "press Fit" in panel.fit_info.value
    panel.set(auto=True, min_log_age=9.35)  # refit on change ...
    assert panel.state()["fitted"]
    panel.set(min_log_age=10.2)  # ... and an empty selection still says that the fit was cleared
    assert panel.result is None and "previous fit was cleared" in panel.fit_info.value


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


# ---------------------------------------------------------------------------
# the four-panel comparison figures and the FAST-model note
# ---------------------------------------------------------------------------
def _overlapping_texts(fig) -> list:
    """Pairs of visible texts (titles, axis labels, in-view tick labels) whose boxes overlap on the canvas."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            texts += [(t.label1.get_text(), t.label1.get_window_extent(r)) for t in axis.get_major_ticks()
                      if lo - 1e-9 <= t.get_loc() <= hi + 1e-9 and t.label1.get_visible() and t.label1.get_text()]
        texts += [(t.get_text(), t.get_window_extent(r)) for t in (ax.title, ax.xaxis.label, ax.yaxis.label)
                  if t.get_visible() and t.get_text()]
    return [(a, b) for i, (a, ba) in enumerate(texts) for b, bb in texts[i + 1:] if ba.overlaps(bb)]


class _Pred:
    """Stand-in for an EnsemblePrediction: only ``quantile(50)`` is used by the figure."""

    def __init__(self, frame):
        self.frame = frame

    def quantile(self, q):
        assert q == 50
        return self.frame


def test_comparison_figures_carry_units_and_no_tick_label_overlaps():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ocnb.cmd_ann.panels import LABEL_UNITS, plot_literature_comparison, plot_residuals_vs_n

    rng = np.random.default_rng(0)
    n = 200  # a SIMULATED-like truth table spanning the Table-1 priors (wide ranges give long tick labels)
    truth = pd.DataFrame({"log_age": rng.uniform(6.7, 10.1, n), "feh": rng.uniform(-0.8, 0.6, n),
                          "a_v": rng.uniform(0, 5, n), "dist_mod": rng.uniform(0, 15, n),
                          "n_stars": np.round(10 ** rng.uniform(1, 3.5, n))})
    preds = {name: _Pred(truth[list(LABEL_UNITS)] + rng.normal(0, s, (n, 4))) for name, s in
             (("Gaia only", 1.0), ("multi-band", 0.3))}
    fig = plot_residuals_vs_n(preds, truth, title="held-out simulated clusters")
    assert len(fig.axes) == 4
    for ax, k in zip(fig.axes, LABEL_UNITS, strict=True):
        assert ax.get_ylabel().endswith(f"[{LABEL_UNITS[k]}]") and "N stars" in ax.get_xlabel()
        assert [len(c.get_offsets()) for c in ax.collections] == [n, n]
    assert not _overlapping_texts(fig), _overlapping_texts(fig)

    cats = ("CANTAT2020", "CAVALLO2024", "DIAS2021", "HUNT2023")
    lit = pd.DataFrame([{"name": f"c{i}", "catalog": cat,
                         **{f"{k}_lit": truth[k].iloc[i] for k in LABEL_UNITS},
                         **{f"{k}_ours": truth[k].iloc[i] + rng.normal(0, 0.3) for k in LABEL_UNITS}}
                        for i in range(30) for cat in cats])
    fig = plot_literature_comparison(lit, title="real clusters")
    for ax, k in zip(fig.axes, LABEL_UNITS, strict=True):
        unit = f"[{LABEL_UNITS[k]}]"
        assert ax.get_xlabel().endswith(unit) and ax.get_ylabel().endswith(unit)
        assert ax.get_xlim() == ax.get_ylim()  # same range on both axes: the y = x line is the diagonal
        assert sum(len(c.get_offsets()) for c in ax.collections) == len(lit)
    assert not _overlapping_texts(fig), _overlapping_texts(fig)
    with pytest.raises(KeyError, match=r"lit lacks column\(s\) \['feh_ours'\]"):
        plot_literature_comparison(lit.drop(columns="feh_ours"))
    with pytest.raises(KeyError, match="n_stars"):
        plot_residuals_vs_n(preds, truth.drop(columns="n_stars"))
    plt.close("all")


def test_fast_model_note_quotes_the_run_and_the_benchmark():
    """FAST numbers (M67 a few hundred Myr old, 'gold') get a note with the laptop model's and the literature's."""
    from types import SimpleNamespace

    from ocnb.cmd_ann.panels import fast_model_note

    ens = SimpleNamespace(n_members=3, hidden=(64,) * 5, epochs=4)
    fast = SimpleNamespace(preset="fast", ensemble=ens, meta={"n_train": 400, "fit_s": 5.2})
    est = SimpleNamespace(name="NGC 2682", quality_name="gold",
                          point={"log_age": 8.03, "feh": 0.0, "a_v": 1.0, "dist_mod": 7.92})
    results = {"created": "2026-11-21T22:59:56+00:00", "_path": "benchmarks/peers/asteca_vs_ocnb.json",
               "clusters": [{"cluster": "NGC 2682", "label": "M67",
                             "literature": {"log_age": {"mean": 9.458}, "dist_mod": {"mean": 9.658}},
                             "ocnb": {"status": "ok", "model": "laptop/multi", "quality": "silver",
                                      "p50": {"log_age": 9.479, "dist_mod": 9.425}}}]}
    note = fast_model_note(fast, est, results)
    assert "FAST model" in note and "3 networks of 5 × 64 units" in note and "400 simulated clusters" in note
    assert "log age 8.03 (107 Myr)" in note and "7.92 mag (384 pc)" in note and "rated gold" in note
    assert "literature mean is log age 9.46 (2.9 Gyr)" in note and "(854 pc)" in note
    assert "laptop/multi model gave log age 9.48 (3.0 Gyr)" in note and "rated silver" in note
    assert "2026-11-21" in note and "asteca_vs_ocnb.json" in note
    est_m67 = SimpleNamespace(**{**vars(est), "name": "M67"})  # the label spelling finds the same record
    assert "laptop/multi model gave" in fast_model_note(fast, est_m67, results)
    assert "without `OCNB_FAST=1`" in fast_model_note(fast, est)  # no benchmark file: says how to get real numbers
    assert fast_model_note(SimpleNamespace(preset="laptop"), est, results) == ""


def test_fast_model_note_reads_the_refined_mode_of_a_schema2_run():
    """Issue 14's benchmark file (ocnb fast and refined): the note quotes the refined mode's M67 and its medians."""
    from types import SimpleNamespace

    from ocnb.cmd_ann import peers
    from ocnb.cmd_ann.panels import fast_model_note

    results = peers.load_peer_results(Path(__file__).parents[1] / "data" / "peers" / "asteca_vs_ocnb_schema2_m67.json")
    refined = next(r for r in results["clusters"] if r["label"] == "M67")["ocnb_refined"]
    ens = SimpleNamespace(n_members=3, hidden=(64,) * 5, epochs=4)
    fast = SimpleNamespace(preset="fast", ensemble=ens, meta={"n_train": 400, "fit_s": 5.2})
    est = SimpleNamespace(name="M67", quality_name="gold", point={"log_age": 8.03, "feh": 0.0, "a_v": 1.0,
                                                                   "dist_mod": 7.92})
    note = fast_model_note(fast, est, results)
    assert f"model (refined mode) gave log age {refined['p50']['log_age']:.2f}" in note
    assert f"rated {refined['quality']}" in note
    # without a cluster to quote: the refined mode's median |Δ| over the run
    per = peers.summarize(results, methods=("ocnb_refined",))["per_param"]
    summary = fast_model_note(fast, None, results)
    assert "(refined mode) median |Δ|" in summary and f"{per['dist_mod']['median_absdiff_ocnb_refined']:.2f}" in summary
