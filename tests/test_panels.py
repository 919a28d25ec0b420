"""Panels work without a browser: widgets drive streams, streams drive the plotted data."""

from __future__ import annotations

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")
pytest.importorskip("ipywidgets")

from ocnb import datasets, panels  # noqa: E402
from ocnb.isochrones import IsochroneGrid  # noqa: E402


@pytest.fixture(scope="module")
def grid():
    return IsochroneGrid.load()


@pytest.fixture(scope="module")
def m67():
    return datasets.load_members("M67")


def _rendered_isochrone_xy(fig):
    """The isochrone glyph data of a live bokeh figure (what the browser draws)."""
    xs = []
    for r in fig.renderers:
        data = r.data_source.data
        if "xs" in data:  # hv.Path -> MultiLine
            xs.append(np.concatenate([np.asarray(x) for x in data["xs"]]))
    assert xs, "no isochrone drawn"
    return np.concatenate(xs)


def test_slider_moves_isochrone(grid, m67):
    panel = panels.IsochronePanel(m67, grid=grid, log_age=9.55, mh=0.0, a_v=0.11, dist_mod=9.68)
    first = panel.isochrone_frame()
    # A live plot, as in a notebook: it subscribes to the panel's streams.
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state
    x0 = _rendered_isochrone_xy(fig)
    assert len(panel.members_frame()) > 1000
    panel.sliders["a_v"].value = 1.0  # what a user's drag does
    assert panel._stream.contents["a_v"] == pytest.approx(1.0)
    second = panel.isochrone_frame()
    # reddening moves the isochrone to redder colours: E(BP-RP) ~ 0.4 per mag of A_V (for ~6000 K stars)
    shift = np.nanmedian(second["x"].to_numpy()) - np.nanmedian(first["x"].to_numpy())
    assert 0.25 < shift < 0.6
    x1 = _rendered_isochrone_xy(fig)
    assert not np.allclose(np.nanmedian(x0), np.nanmedian(x1))
    assert "A_V 1.00" in panel.readout.value


def test_set_clips_and_rejects_unknown(grid, m67):
    panel = panels.IsochronePanel(m67, grid=grid)
    panel.set(log_age=99.0, mh=float("nan"))
    assert panel.state()["log_age"] == pytest.approx(grid.age_range[1])
    with pytest.raises(ValueError, match="unknown parameter"):
        panel.set(age=9)
    with pytest.raises(ValueError, match="unknown CMD"):
        panels.IsochronePanel(m67, cmd="UBV", grid=grid)


def test_explorer_picks_cluster_and_loads_literature(grid):
    ex = panels.ClusterExplorer(start="M67", grid=grid)
    assert ex.cluster == "NGC 2682"
    lit = ex.literature().set_index("catalog")
    used = ex.load_solution("HUNT2023")
    assert used["log_age"] == pytest.approx(lit.loc["HUNT2023", "log_age"])
    assert ex.gaia.state()["log_age"] == pytest.approx(lit.loc["HUNT2023", "log_age"], abs=0.01)
    assert ex.tmass.state()["log_age"] == pytest.approx(ex.gaia.state()["log_age"])  # one set of sliders
    tmass = ex.tmass.members_frame()  # J-Ks vs Ks uses one column twice
    assert len(tmass) > 1000 and tmass["x"].between(-0.5, 1.5).mean() > 0.95
    n_m67 = len(ex.gaia.members)
    other = next(c for c in ex.picker.options if c != "NGC 2682")
    ex.picker.value = other
    assert ex.cluster == other and len(ex.gaia.members) != n_m67
    assert other in ex.info.value
    for cat, button in ex.buttons.items():
        assert button.disabled == (cat not in set(ex.literature()["catalog"]))


def test_sky_maps_render():
    clusters = datasets.load_clusters()
    layout = panels.sky_maps(clusters)
    assert len(layout) == 2
    fig = hv.render(layout, backend="bokeh")
    assert fig is not None
    points = panels.sky_maps(clusters.head(200), datashade=False)
    assert len(points) == 2
