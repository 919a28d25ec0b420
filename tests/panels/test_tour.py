"""Tour panels without a browser: widgets drive streams, streams drive the plotted data and ranges."""

from __future__ import annotations

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("ipywidgets")

from ocnb import datasets, panels  # noqa: E402
from ocnb.isochrones import IsochroneGrid  # noqa: E402
from ocnb.panels import PanelValueError  # noqa: E402


@pytest.fixture(scope="module")
def grid():
    return IsochroneGrid.load()


@pytest.fixture(scope="module")
def m67():
    return datasets.load_members("M67")


@pytest.fixture(scope="module")
def explorer(grid):
    return panels.ClusterExplorer(start="M67", grid=grid)


def _rendered_isochrone_xy(fig):
    """The isochrone glyph data of a live bokeh figure (what the browser draws)."""
    xs = []
    for r in fig.renderers:
        data = r.data_source.data
        if "xs" in data:  # hv.Path -> MultiLine
            xs.append(np.concatenate([np.asarray(x) for x in data["xs"]]))
    assert xs, "no isochrone drawn"
    return np.concatenate(xs)


def assert_frame_contains(fig, x, y):
    """The live figure's axis ranges contain every point (y may be inverted)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xr = sorted((fig.x_range.start, fig.x_range.end))
    yr = sorted((fig.y_range.start, fig.y_range.end))
    assert xr[0] <= x.min() and x.max() <= xr[1], (xr, x.min(), x.max())
    assert yr[0] <= y.min() and y.max() <= yr[1], (yr, y.min(), y.max())
    # bokeh's Reset returns to these ranges, not to the first cluster's
    assert (fig.x_range.reset_start, fig.x_range.reset_end) == (fig.x_range.start, fig.x_range.end)
    assert (fig.y_range.reset_start, fig.y_range.reset_end) == (fig.y_range.start, fig.y_range.end)


def test_slider_moves_isochrone(grid, m67):
    panel = panels.IsochronePanel(m67, grid=grid, log_age=9.55, mh=0.0, a_v=0.11, dist_mod=9.68)
    first = panel.isochrone_frame()
    # A live plot, as in a notebook: it subscribes to the panel's streams.
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state
    x0 = _rendered_isochrone_xy(fig)
    assert len(panel.members_frame()) > 1000
    frame0 = (fig.x_range.start, fig.x_range.end)
    panel.sliders["a_v"].value = 1.0  # what a user's drag does
    assert panel._stream.contents["a_v"] == pytest.approx(1.0)
    second = panel.isochrone_frame()
    # reddening moves the isochrone to redder colours: E(BP-RP) ~ 0.4 per mag of A_V (for ~6000 K stars)
    shift = np.nanmedian(second["x"].to_numpy()) - np.nanmedian(first["x"].to_numpy())
    assert 0.25 < shift < 0.6
    x1 = _rendered_isochrone_xy(fig)
    assert not np.allclose(np.nanmedian(x0), np.nanmedian(x1))
    assert "A_V 1.00" in panel.readout.value
    # the frame follows the members, not the isochrone: a slider moves the line, not the axes
    assert (fig.x_range.start, fig.x_range.end) == frame0
    m = panel.members_frame()
    assert_frame_contains(fig, m["x"], m["y"])


def test_set_rejects_unknown_and_out_of_range(grid, m67):
    panel = panels.IsochronePanel(m67, grid=grid)
    before = panel.state()
    with pytest.raises(PanelValueError, match=r"log_age = 99 is outside the allowed range \[6(\.\d+)?, 10\.2\]"):
        panel.set(log_age=99.0)
    with pytest.raises(PanelValueError, match=r"mh = nan"):
        panel.set(mh=float("nan"))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['age'\]"):
        panel.set(age=9)
    assert panel.state() == before
    panel.set(log_age=99.0, mh=float("nan"), clip=True)  # clip: to the grid, NaN skipped
    assert panel.state()["log_age"] == pytest.approx(grid.age_range[1])
    assert panel.state()["mh"] == before["mh"]
    with pytest.raises(ValueError, match="unknown CMD 'UBV'"):
        panels.IsochronePanel(m67, cmd="UBV", grid=grid)


def test_picker_shows_common_names(explorer):
    labels = {v: k for k, v in explorer.picker.options}
    assert labels["NGC 2682"] == "M67 (NGC 2682)"
    assert labels["Melotte 22"] == "Pleiades (Melotte 22)"
    assert labels["Melotte 25"] == "Hyades (Melotte 25)"
    assert labels["NGC 2632"] == "Praesepe (NGC 2632)"
    assert labels["Theia 517"] == "M39 (Theia 517)"
    # clusters with a common name come first, then the rest
    named = [("(" in k) for k, _ in explorer.picker.options]
    assert named == sorted(named, reverse=True)
    assert explorer.cluster == "NGC 2682" and "M67 (NGC 2682)" in explorer.info.value


@pytest.mark.parametrize(("name", "n_largest"), [("Theia 517", 277), ("IC 4665", 250), ("Pleiades", 1217)])
def test_largest_member_list_is_loaded(explorer, name, n_largest):
    explorer.set(cluster=name)
    lists = datasets.list_member_clusters()
    canonical = datasets.resolve_cluster_name(name)
    assert n_largest == lists.loc[lists["cluster"] == canonical, "n_stars"].max()
    st = explorer.state()
    assert st["cluster"] == canonical and st["n_members"] == n_largest
    assert f"{n_largest} members" in explorer.info.value


def test_gaia_only_list_gets_no_empty_2mass_plot(explorer):
    fig = hv.renderer("bokeh").get_plot(explorer.plot()).state
    explorer.set(cluster="Theia 517")  # Almeida list: Gaia only
    st = explorer.state()
    assert st["source"] == "almeida" and not st["has_2mass"]
    assert "2MASS: no" in explorer.info.value
    # the note is drawn once, inside the 2MASS plot: not in its title, not as a legend entry
    shown = [c[0].title.text for c in fig.children]
    shown += [item.label["value"] for c in fig.children for lg in c[0].legend for item in lg.items]
    shown += [str(t) for c in fig.children for r in c[0].renderers if "text" in r.data_source.data
              for t in r.data_source.data["text"] if r.visible]
    note = "no 2MASS photometry in the 'almeida' list (Gaia only)"
    assert sum(note in s for s in shown) == 1, shown
    assert not any("members (0)" in s for s in shown), shown
    # the multi-band list of the same cluster has 2MASS for M67; switch source where there is one
    explorer.set(cluster="Pleiades")
    assert explorer.state()["source"] == "almeida"
    explorer.set(source="iso")
    st = explorer.state()
    assert st["has_2mass"] and st["n_members"] == 756 and "2MASS: yes" in explorer.info.value
    tm = explorer.tmass.members_frame()
    assert len(tm) > 500 and tm["x"].between(-0.5, 1.5).mean() > 0.95


def test_active_solution_is_shown(explorer):
    explorer.set(cluster="M67")
    lit = explorer.literature().set_index("catalog")
    st = explorer.state()
    assert st["solution"] == "HUNT2023" and not st["modified"]
    assert "literature solution: <b>HUNT2023</b>" in explorer.info.value
    assert explorer.buttons["HUNT2023"].button_style == "success"
    explorer.buttons["DIAS2021"].click()  # what a user's click does
    st = explorer.state()
    assert st["solution"] == "DIAS2021" and explorer.buttons["HUNT2023"].button_style == ""
    assert st["log_age"] == pytest.approx(lit.loc["DIAS2021", "log_age"], abs=0.01)
    assert explorer.tmass.state()["log_age"] == pytest.approx(st["log_age"])  # one set of sliders
    explorer.set(a_v=1.0)
    assert explorer.state()["modified"] and "DIAS2021</b> (modified by hand)" in explorer.info.value
    explorer.set(solution="CANTAT2020")
    assert explorer.state()["solution"] == "CANTAT2020" and not explorer.state()["modified"]
    for cat, button in explorer.buttons.items():
        assert button.disabled == (cat not in set(lit.index))


def test_axes_follow_each_cluster(explorer):
    fig = hv.renderer("bokeh").get_plot(explorer.plot()).state
    gaia_fig = fig.children[0][0]
    for name in ("M67", "Pleiades", "Hyades"):
        explorer.set(cluster=name)
        m = explorer.gaia.members_frame()
        assert len(m) > 300
        assert_frame_contains(gaia_fig, m["x"], m["y"])
    # bright Pleiades stars are inside the frame (the M67 frame stopped near G = 8)
    assert min(gaia_fig.y_range.start, gaia_fig.y_range.end) < 3.0


BAD_EXPLORER_SET = [
    (dict(cluster="Nowhere 1"), r"cluster = 'Nowhere 1': unknown cluster"),
    (dict(cluster="NGC 188"), r"cluster = 'NGC 188' is not one of the options"),  # known, but no members shipped
    (dict(source="almeida"), r"source = 'almeida' is not one of the options: 'iso', 'dr3_cone'"),
    (dict(solution="GAIA2099"), r"solution = 'GAIA2099': NGC 2682 has solutions from \["),
    (dict(dist_mod=25.0), r"dist_mod = 25 is outside the allowed range \[0, 18\]"),
    (dict(colour="red"), r"unknown parameter\(s\) \['colour'\] for ClusterExplorer"),
]


@pytest.mark.parametrize(("values", "match"), BAD_EXPLORER_SET)
def test_explorer_set_rejects_bad_values(explorer, values, match):
    explorer.set(cluster="M67", source="iso")
    before = explorer.state()
    with pytest.raises(PanelValueError, match=match):
        explorer.set(**values)
    assert explorer.state() == before


def test_explorer_start_with_no_members(grid):
    with pytest.raises(PanelValueError, match=r"no shipped member list for \['NGC 188'\]"):
        panels.ClusterExplorer(clusters=["M67", "NGC 188"], grid=grid)


def test_sky_maps_render():
    clusters = datasets.load_clusters()
    layout = panels.sky_maps(clusters)
    assert len(layout) == 2
    fig = hv.render(layout, backend="bokeh")
    assert fig is not None
    points = panels.sky_maps(clusters.head(200), datashade=False)
    assert len(points) == 2
    with pytest.raises(KeyError, match=r"sky_maps needs column\(s\) \['l'\]"):
        panels.sky_maps(clusters.drop(columns="l"))


def test_every_widget_of_the_explorer_responds(grid, caplog):
    """Every cluster and member list, every button and slider, on a live figure: no error, no callback warning."""
    ex = panels.ClusterExplorer(start="M67", grid=grid)
    fig = hv.renderer("bokeh").get_plot(ex.plot()).state
    with caplog.at_level("WARNING"):
        for _, name in ex.picker.options:
            ex.picker.value = name
            sources = [src for _, src in ex.source.options]
            # every list of the clusters that have several (multi-band iso vs the larger Gaia-only lists)
            for src in sources if name in ("Melotte 22", "NGC 2682", "Theia 517") else sources[:1]:
                ex.source.value = src
                m = ex.gaia.members_frame()
                assert_frame_contains(fig.children[0][0], m["x"], m["y"])
                assert f"{len(ex.gaia.members)} members ({src}" in ex.info.value
        ex.set(cluster="Pleiades")
        for cat, button in ex.buttons.items():
            if not button.disabled:
                button.click()
                assert ex.state()["solution"] == cat
        for key, slider in ex.gaia.sliders.items():
            slider.value = (slider.min + slider.max) / 2
            assert ex.tmass.state()[key] == pytest.approx(slider.value)
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.text


def test_changing_cluster_updates_the_same_glyphs(explorer):
    """The live plot keeps its glyphs: a DynamicMap frame whose layers change label makes holoviews add new
    glyphs and hide the old ones, which the browser then reports ("reference already known")."""
    fig = hv.renderer("bokeh").get_plot(explorer.plot()).state
    before = [sorted(r.id for r in c[0].renderers) for c in fig.children]
    for name in ("Theia 517", "Pleiades", "NGC 2682"):  # Gaia only, then 2MASS lists again
        explorer.set(cluster=name)
        assert [sorted(r.id for r in c[0].renderers) for c in fig.children] == before, name
        assert all(r.visible for c in fig.children for r in c[0].renderers), name
    explorer.set(source=explorer.source.options[-1][1])
    assert [sorted(r.id for r in c[0].renderers) for c in fig.children] == before
