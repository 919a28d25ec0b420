"""Notebook 02's MembershipPanel without a browser: geometry of the eqs. 1–3 boundaries, the counts behind the
threshold slider, the linked selection, the live bokeh figures, and a bad-input table.

The cone is SIMULATED here (seeded, built in the test): a cluster around Blanco 1's position (RA 0.85°, so the
cone straddles RA = 0) in a uniform field, with a toy isochrone and thresholds of the spec-A6 form.
"""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ocnb.membership import panels as mp

hv = pytest.importorskip("holoviews")
pytest.importorskip("ipywidgets")
pytest.importorskip("datashader")

from ocnb.panels import PanelValueError  # noqa: E402

PARAMS = dict(name="Synth 1", ra=0.85, dec=-29.95, pmra=18.7, pmdec=2.6, parallax=4.2, dist_pc=238.0)
THRESHOLDS = dict(delta_mu=1.0, delta_plx_plus=0.3, delta_plx_minus=0.35, delta_c=0.15, delta_g=1.2,
                  R_pc=23.0, R90_pc=8.0, delta_c90=0.05)


def toy_isochrone() -> np.ndarray:
    g = np.linspace(6.0, 20.0, 300)
    return np.column_stack([0.05 + 0.04 * (g - 6) + 0.002 * (g - 6) ** 2, g])


def synthetic_cone(n_field: int = 600, n_cluster: int = 120, seed: int = 1) -> pd.DataFrame:
    """A SIMULATED scored cone in the columns of ``MembershipResult.to_frame()``."""
    rng = np.random.default_rng(seed)
    n = n_field + n_cluster
    cl = np.r_[np.zeros(n_field, bool), np.ones(n_cluster, bool)]
    iso = toy_isochrone()
    g = rng.uniform(7, 19, n)
    c = np.where(cl, np.interp(g, iso[:, 1], iso[:, 0]) + rng.normal(0, 0.03, n), rng.uniform(0, 1.4, n))
    plx = np.where(cl, PARAMS["parallax"] + rng.normal(0, 0.08, n), rng.gamma(2, 0.8, n))
    cand = cl | (rng.uniform(size=n) < 0.1)
    p = np.where(cand, np.where(cl, rng.beta(5, 1, n), rng.beta(1, 8, n)), 0.0)
    return pd.DataFrame({
        "source_id": 2_300_000_000_000_000_000 + np.arange(n, dtype=np.int64),
        "ra": np.where(cl, PARAMS["ra"] + rng.normal(0, 1.0, n), rng.uniform(-4, 6, n)) % 360,
        "dec": np.where(cl, PARAMS["dec"] + rng.normal(0, 1.0, n), rng.uniform(-35, -25, n)),
        "pmra": np.where(cl, PARAMS["pmra"] + rng.normal(0, 0.3, n), rng.normal(10, 8, n)),
        "pmdec": np.where(cl, PARAMS["pmdec"] + rng.normal(0, 0.3, n), rng.normal(0, 8, n)),
        "parallax": plx - 0.02, "parallax_corrected": plx,
        "pmra_error": rng.uniform(0.02, 0.3, n), "pmdec_error": rng.uniform(0.02, 0.3, n),
        "parallax_error": rng.uniform(0.02, 0.3, n),
        "phot_g_mean_mag": g, "phot_rp_mean_mag": g - c, "phot_bp_mean_mag": g - 0.1 - 2.2 * c, "g_rp": c,
        "sigma_g": 0.003, "sigma_g_rp": 0.01,
        "p_member": p, "is_candidate": cand, "is_train_member": cl & (rng.uniform(size=n) < 0.5), "truth": cl,
    })


def selection():
    return SimpleNamespace(thresholds=dict(THRESHOLDS), isochrone=toy_isochrone())


@pytest.fixture(scope="module")
def cone():
    return synthetic_cone()


@pytest.fixture(scope="module")
def panel(cone):
    return mp.MembershipPanel(cone, selection(), PARAMS)


@pytest.fixture(scope="module")
def figs(panel):
    """The live bokeh figures (what the browser draws), by view: sky, parallax, pm, cmd."""
    grid = hv.renderer("bokeh").get_plot(panel.plot()).state
    by_title = {c[0].title.text.split(" ")[0]: c[0] for c in grid.children}
    assert grid.children[0][0].title.text == "Synth 1: sky (tangent plane)"  # the cluster's name, top left
    return {"sky": by_title["Synth"], "parallax": by_title["Parallax"], "pm": by_title["Proper"],
            "cmd": by_title["CMD:"]}


def _lines(fig):
    """(xs, ys) of every MultiLine glyph with data (hv.Path layers), one entry per path."""
    out = []
    for r in fig.renderers:
        if type(r.glyph).__name__ == "MultiLine":
            out += [(np.asarray(x, float), np.asarray(y, float))
                    for x, y in zip(r.data_source.data["xs"], r.data_source.data["ys"], strict=True)]
    return out


def _ring_count(fig):
    """Rows of the member-ring layer (the scatter whose source holds only the two axes)."""
    rings = [r for r in fig.renderers if type(r.glyph).__name__ == "Scatter" and r.glyph.fill_alpha == 0]
    assert len(rings) == 1, [type(r.glyph).__name__ for r in fig.renderers]
    return len(next(iter(rings[0].data_source.data.values())))


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------
def test_tangent_plane():
    xi, eta = mp.tangent_plane([0.85, 0.85, 359.85], [-29.95, -28.95, -29.95], 0.85, -29.95)
    assert xi[0] == pytest.approx(0.0, abs=1e-12) and eta[0] == pytest.approx(0.0, abs=1e-12)
    assert eta[1] == pytest.approx(1.0, rel=1e-4) and xi[1] == pytest.approx(0.0, abs=1e-12)  # 1° north
    # across RA = 0: one degree of RA to the west is -cos(dec) degrees of xi, not +359 cos(dec)
    assert xi[2] == pytest.approx(-math.cos(math.radians(29.95)), rel=1e-3)


def test_pm_boundary_and_parallax_band():
    zero = mp.pm_boundary(18.7, 2.6, 1.0)
    assert np.hypot(zero[:, 0] - 18.7, zero[:, 1] - 2.6) == pytest.approx(1.0)  # a circle of radius Δ_μ (eq. 4)
    assert np.allclose(zero[0], zero[-1])  # closed
    err = mp.pm_boundary(18.7, 2.6, 1.0, 0.1, 0.2)
    # eq. 1 for a source with σ = (0.1, 0.2): semi-axes Δ_μ + 3σ
    assert np.ptp(err[:, 0]) / 2 == pytest.approx(1.3) and np.ptp(err[:, 1]) / 2 == pytest.approx(1.6, rel=1e-3)
    assert mp.parallax_band(4.2, 0.3, 0.35) == pytest.approx((3.9, 4.55))
    assert mp.parallax_band(4.2, 0.3, 0.35, 0.1) == pytest.approx((3.6, 4.85))
    lo, hi = mp.parallax_band(0.5, 0.3, math.inf)  # Δ⁻ = ∞: no upper limit (spec A6)
    assert lo == pytest.approx(0.2) and hi == math.inf


def test_isochrone_boundary_is_the_eq3_level():
    iso = toy_isochrone()
    a, b = 0.15, 1.2
    paths = mp.isochrone_boundary(iso, a, b)
    assert paths
    pts = np.concatenate(paths)
    # every boundary point is one ellipse away from its nearest isochrone point (eq. 3 with σ = 0)
    d = np.sqrt(((pts[:, None, 0] - iso[None, :, 0]) / a) ** 2 + ((pts[:, None, 1] - iso[None, :, 1]) / b) ** 2)
    assert np.abs(d.min(axis=1) - 1.0).max() < 0.01
    # both sides of the sequence: bluer and redder than the isochrone at G = 13 by about Δ_C
    at13 = pts[np.abs(pts[:, 1] - 13.0) < 0.05]
    c13 = np.interp(13.0, iso[:, 1], iso[:, 0])
    assert at13[:, 0].min() < c13 - 0.1 and at13[:, 0].max() > c13 + 0.1
    # a wider ellipse (3σ added) encloses the narrower boundary
    wide = np.concatenate(mp.isochrone_boundary(iso, a + 0.03, b + 0.01))
    assert np.ptp(wide[:, 0]) > np.ptp(pts[:, 0])


def test_isochrone_paths_break_at_jumps():
    iso = np.r_[toy_isochrone(), [[1.2, 10.0], [1.25, 9.8]]]  # late phases appended after the main sequence
    pieces = mp._isochrone_paths(iso, 0.15, 1.2)
    assert [len(p) for p in pieces] == [300, 2]


# ---------------------------------------------------------------------------
# counts
# ---------------------------------------------------------------------------
def test_membership_counts(cone):
    c = mp.membership_counts(cone, 0.5)
    member = cone["is_candidate"] & (cone["p_member"] >= 0.5)
    truth = cone["truth"]
    tp, fp, fn = int((member & truth).sum()), int((member & ~truth).sum()), int((~member & truth).sum())
    assert (c["n_stars"], c["n_candidates"], c["n_members"]) == (len(cone), int(cone["is_candidate"].sum()),
                                                                  int(member.sum()))
    assert (c["tp"], c["fp"], c["fn"], c["n_true"]) == (tp, fp, fn, int(truth.sum()))
    assert c["precision"] == pytest.approx(tp / (tp + fp)) and c["recall"] == pytest.approx(tp / (tp + fn))
    assert c["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert 0.8 < c["f1"] < 1.0  # the toy scores are good, not perfect: the test can fail
    # p_min = 0: every candidate and no field star; p_min = 1: only p = 1
    assert mp.membership_counts(cone, 0.0)["n_members"] == c["n_candidates"]
    assert mp.membership_counts(cone, 1.0)["n_members"] == int((cone["p_member"] >= 1.0).sum())
    # scores for G < 15 only; the member count still covers every star
    bright = mp.membership_counts(cone, 0.5, g_max=15.0)
    assert bright["n_members"] == c["n_members"]
    assert bright["n_true"] == int((truth & (cone["phot_g_mean_mag"] < 15)).sum())
    # no truth column: counts only
    assert "f1" not in mp.membership_counts(cone.drop(columns="truth"), 0.5)
    assert "f1" not in mp.membership_counts(cone.assign(truth=np.nan), 0.5)


# ---------------------------------------------------------------------------
# the panel
# ---------------------------------------------------------------------------
def test_slider_updates_counts_rings_and_readout(panel, figs, cone):
    panel.set(p_min=0.5)
    st = panel.state()
    assert st["p_min"] == 0.5 and st["datashade"] is False
    assert st["n_members"] == mp.membership_counts(cone, 0.5)["n_members"]
    assert all(_ring_count(f) == st["n_members"] for f in figs.values())
    panel.threshold.value = 0.9  # what a user's drag does
    st9 = panel.state()
    assert st9["n_members"] == int((cone["is_candidate"] & (cone["p_member"] >= 0.9)).sum()) < st["n_members"]
    assert all(_ring_count(f) == st9["n_members"] for f in figs.values())
    assert st9["recall"] < st["recall"] and st9["precision"] >= st["precision"]
    assert f"<b>{st9['n_members']}</b> members with p ≥ 0.90" in panel.readout.value
    assert f"F1 {st9['f1']:.3f}" in panel.readout.value
    panel.set(**{k: panel.state()[k] for k in panel.settable})  # its own state round-trips
    assert panel.state() == st9
    panel.set(p_min=0.5)


def test_boundaries_drawn_as_in_fig1(panel, figs):
    pm = _lines(figs["pm"])
    radii = sorted(float(np.median(np.hypot(x - PARAMS["pmra"], y - PARAMS["pmdec"]))) for x, y in pm)
    assert radii[0] == pytest.approx(THRESHOLDS["delta_mu"], rel=1e-3)  # zero-uncertainty circle
    assert THRESHOLDS["delta_mu"] < radii[1] < THRESHOLDS["delta_mu"] + 3 * 0.3  # median-error ellipse
    levels = sorted({float(y[0]) for x, y in _lines(figs["parallax"])})
    assert levels[1] == pytest.approx(PARAMS["parallax"] - THRESHOLDS["delta_plx_plus"])
    assert levels[2] == pytest.approx(PARAMS["parallax"] + THRESHOLDS["delta_plx_minus"])
    assert levels[0] < levels[1] and levels[3] > levels[2]  # the median-error band is wider
    cmd = _lines(figs["cmd"])
    iso = toy_isochrone()
    assert any(len(x) == len(iso) and np.allclose(x, iso[:, 0]) for x, _ in cmd)  # the isochrone itself
    assert len(cmd) >= 3
    sky = _lines(figs["sky"])
    r90_deg = math.degrees(THRESHOLDS["R90_pc"] / PARAMS["dist_pc"])
    assert len(sky) == 1 and np.hypot(*sky[0]) == pytest.approx(r90_deg)
    b = panel.boundaries
    assert b["delta_mu"] == THRESHOLDS["delta_mu"] and b["median_errors"]["pmra_error"] > 0


def test_linked_selection(panel, figs, cone):
    # a box selected in the proper-motion view (what the browser's box-select sends) selects the same stars in
    # every view and is counted in the readout
    box = (hv.dim("pmra") > 17.5) & (hv.dim("pmra") < 20.0) & (hv.dim("pmdec") > 1.5) & (hv.dim("pmdec") < 3.7)
    assert panel.clear_button.disabled
    panel.select(box)
    try:
        inside = cone["pmra"].between(17.5, 20.0, inclusive="neither") & \
            cone["pmdec"].between(1.5, 3.7, inclusive="neither")
        st = panel.state()
        # the candidates in the box (the field is drawn, not linked)
        assert st["n_selected"] == int((inside & cone["is_candidate"]).sum()) and 0 < st["n_selected"] < len(cone)
        member = cone["is_candidate"] & (cone["p_member"] >= 0.5)
        assert st["n_selected_members"] == int((inside & member).sum())
        assert f"selected: {st['n_selected']} candidates" in panel.readout.value
        for name, fig in figs.items():  # each view draws the selected candidates in their own layer
            sizes = sorted(len(r.data_source.data.get("p_member", [])) for r in fig.renderers
                           if type(r.glyph).__name__ == "Scatter" and r.visible)
            n_cand_sel = int((inside & cone["is_candidate"]).sum())
            assert n_cand_sel in sizes and int(cone["is_candidate"].sum()) in sizes, (name, sizes)
        assert not panel.clear_button.disabled
        panel.clear_button.click()  # what a user's click does
    finally:
        panel.clear_selection()
    assert panel.link.selection_expr is None and panel.clear_button.disabled
    assert panel.state()["n_selected"] == int(cone["is_candidate"].sum()) and "selected:" not in panel.readout.value


def test_clear_button_after_a_box_drawn_in_the_browser(panel, figs):
    """A box drawn with bokeh's box-select tool reaches link_selections through the view's SelectionXY stream
    (emulated here on holoviews' streams); "clear selection" clears it."""
    streams = list(panel.link._selection_expr_streams.items())  # holoviews internals: one per linked layer
    pm_layers = [s for el, s in streams if {d.name for d in el.kdims} == {"pmra", "pmdec"}]
    assert len(pm_layers) == 1  # the candidates (the field is drawn, not linked)
    for seq in pm_layers:
        box = next(x for x in seq.input_streams[0].input_stream.input_streams if type(x).__name__ == "SelectionXY")
        box.event(bounds=(17.5, 1.5, 20.0, 3.7), x_selection=(17.5, 20.0), y_selection=(1.5, 3.7))
    try:
        st = panel.state()
        assert 0 < st["n_selected"] < st["n_candidates"] and not panel.clear_button.disabled
        assert "pmra" in repr(panel.link.selection_expr)
        panel.clear_button.click()
        assert panel.link.selection_expr is None and panel.state()["n_selected"] == st["n_candidates"]
    finally:
        panel.clear_selection()
    assert "selected:" not in panel.readout.value and panel.clear_button.disabled


def test_datashaded_field_and_bp_rp(cone):
    big = synthetic_cone(n_field=3000, n_cluster=100, seed=2)
    auto = mp.MembershipPanel(big, selection(), PARAMS, datashade_min=2000, colour="bp_rp")
    assert auto.state()["datashade"] is True
    grid = hv.renderer("bokeh").get_plot(auto.plot()).state
    glyphs = {type(r.glyph).__name__ for c in grid.children for r in c[0].renderers}
    assert "Image" in glyphs  # the field is a raster
    cmd = next(c[0] for c in grid.children if c[0].title.text.startswith("CMD"))
    assert "BP − RP" in cmd.title.text and not _lines(cmd)  # eq. 3 is in G − G_RP: no isochrone band here
    assert np.allclose(auto.data["bp_rp"], big["phot_bp_mean_mag"] - big["phot_rp_mean_mag"])
    small = mp.MembershipPanel(cone, datashade=False)
    assert small.state()["datashade"] is False


def test_without_selection_or_params_and_from_result(cone):
    plain = mp.MembershipPanel(cone.drop(columns=["truth", "is_candidate", "is_train_member", "g_rp"]))
    st = plain.state()
    assert "f1" not in st and st["n_candidates"] == int((cone["p_member"] > 0).sum())
    assert not any(plain.boundaries[k] for k in ("pm", "plx", "cmd", "sky"))
    # centred on the candidates across RA = 0: offsets of a few degrees, not ~360
    assert plain.centre[0] < 2.0 or plain.centre[0] > 358.0
    assert np.abs(plain.data["xi"]).max() < 10
    hv.renderer("bokeh").get_plot(plain.plot())  # draws without boundaries
    result = SimpleNamespace(to_frame=lambda: cone,
                             prepared=SimpleNamespace(name="Blanco 1", selection=selection(), params=PARAMS))
    built = mp.MembershipPanel.from_result(result, p_min=0.7, g_max=18.0)
    st = built.state()
    assert st["p_min"] == 0.7 and st["g_max"] == 18.0 and "<b>Blanco 1</b>" in built.readout.value
    assert built.boundaries["pm"]
    # no finite proper-motion errors: the zero-uncertainty circle only (and no All-NaN warning)
    no_err = mp.MembershipPanel(cone.assign(pmra_error=np.nan), selection(), PARAMS)
    assert no_err.boundaries["pm"] and not no_err.boundaries["pm_err"] and no_err.boundaries["plx_err"]


def test_every_widget_responds_without_warnings(panel, figs, caplog):
    with caplog.at_level("WARNING"):
        for v in (0.0, 0.25, 1.0, 0.5):
            panel.threshold.value = v
            assert all(_ring_count(f) == panel.state()["n_members"] for f in figs.values())
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.text


def test_import_is_light():
    code = ("import sys, ocnb.membership.panels\n"
            "assert not {'holoviews', 'bokeh', 'ipywidgets', 'datashader'} & set(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def _bad_truth(df):
    return df.assign(truth=np.where(df["truth"], "yes", "no"))


BAD_INPUT = [
    (lambda df: df.drop(columns="p_member"), {}, r"no column\(s\) \['p_member'\]; use MembershipResult\.to_frame"),
    (lambda df: df.drop(columns="pmra"), {}, r"no column\(s\) \['pmra'\]"),
    (lambda df: df.drop(columns=["parallax", "parallax_corrected"]), {}, r"parallax_corrected \(or parallax\)"),
    (lambda df: df.drop(columns=["g_rp", "phot_rp_mean_mag"]), {}, r"g_rp \(or phot_g_mean_mag and phot_rp_mean_mag"),
    (lambda df: df.iloc[:0], {}, r"the frame has no stars"),
    (lambda df: df.assign(p_member=df["p_member"] * 2), {}, r"'p_member' must be a probability in \[0, 1\]"),
    (lambda df: df.assign(p_member=np.nan), {}, r"'p_member' must be a probability"),
    (_bad_truth, {}, r"column 'truth' must hold True/False"),
    (lambda df: df.assign(truth=df["truth"].where(df.index > 3)), {}, r"'truth' has 4 missing value"),
    (lambda df: df, dict(colour="u_g"), r"colour = 'u_g' is not a CMD colour this panel draws; use one of"),
    (lambda df: df, dict(p_min=1.2), r"p_min = 1.2: need a probability threshold in \[0, 1\]"),
    (lambda df: df, dict(p_min=float("nan")), r"p_min = nan: need a probability threshold"),
    (lambda df: df.to_numpy(), {}, r"needs a DataFrame"),
    (lambda df: df, dict(selection=selection(), params=None), r"boundaries need the cluster means too: pass params="),
    (lambda df: df, dict(selection=SimpleNamespace(thresholds={"delta_mu": 1.0}, isochrone=toy_isochrone())),
     r"selection\.thresholds has no \['delta_plx_plus'"),
    (lambda df: df, dict(selection=SimpleNamespace(thresholds=THRESHOLDS, isochrone=np.zeros((5, 3)))),
     r"isochrone must be an \(n, 2\) array"),
    (lambda df: df, dict(params={"ra": 1.0, "dec": -30.0, "pmra": 18.0}), r"params has no cluster mean 'pmdec'"),
    (lambda df: df, dict(params={"dec": -30.0}), r"params has no cluster centre 'ra'"),
]


@pytest.mark.parametrize(("edit", "kw", "match"), BAD_INPUT)
def test_bad_input(cone, edit, kw, match):
    kw = dict(kw)
    if "selection" in kw and "params" not in kw:
        kw["params"] = PARAMS
    if "params" in kw and "selection" not in kw:
        kw["selection"] = selection()
    with pytest.raises(PanelValueError, match=match):
        mp.MembershipPanel(edit(cone), **kw)


BAD_SET = [
    (dict(p_min=1.5), r"p_min = 1.5 is outside the allowed range \[0, 1\]"),
    (dict(p_min=-0.1), r"p_min = -0.1 is outside the allowed range \[0, 1\]"),
    (dict(p_min=float("nan")), r"p_min = nan: need a number in \[0, 1\]"),
    (dict(p_min="high"), r"p_min must be a number, got 'high'"),
    (dict(threshold=0.5), r"unknown parameter\(s\) \['threshold'\] for MembershipPanel; use \['p_min'\]"),
]


@pytest.mark.parametrize(("values", "match"), BAD_SET)
def test_set_rejects_bad_values(panel, values, match):
    before = panel.state()
    with pytest.raises(PanelValueError, match=match):
        panel.set(**values)
    assert panel.state() == before


def test_counts_reject_bad_threshold(cone):
    with pytest.raises(PanelValueError, match=r"p_min = 2 is outside \[0, 1\]"):
        mp.membership_counts(cone, 2.0)
    panel = mp.MembershipPanel(cone)
    panel.set(p_min=3.0, clip=True)  # clip: to the slider's range
    assert panel.state()["p_min"] == 1.0


def test_pm_and_parallax_views_frame_the_candidates_not_the_field_tails(cone):
    """A field star at 500 mas/yr (or 40 mas) must not shrink the cluster to a dot; the sky keeps every star."""
    far = cone.copy()
    far.loc[0, ["pmra", "pmdec", "parallax_corrected", "is_candidate", "p_member"]] = [500.0, -600.0, 40.0, False, 0.0]
    panel = mp.MembershipPanel(far, selection(), PARAMS)
    cand = far[far["is_candidate"]]
    pm = panel.axis_ranges("pm")
    assert pm["x"][0] <= cand["pmra"].min() and pm["x"][1] >= cand["pmra"].max() and pm["x"][1] < 500
    assert pm["y"][0] > -600 and pm["y"][1] >= cand["pmdec"].max()
    assert panel.axis_ranges("parallax")["y"][1] < 40
    sky = panel.axis_ranges("sky")
    assert sky["x"][0] <= panel.data["xi"].min() and sky["x"][1] >= panel.data["xi"].max()
