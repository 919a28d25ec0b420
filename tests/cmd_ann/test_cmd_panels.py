"""Notebook-01 panels without a browser: QuadTree inspector and the ensemble isochrone panel."""

import numpy as np
import pytest

hv = pytest.importorskip("holoviews")

from ocnb import datasets, panels  # noqa: E402
from ocnb.cmd_ann import estimate, simulate_clusters, train_default  # noqa: E402
from ocnb.cmd_ann.features import QuadTreeFeatures  # noqa: E402


@pytest.fixture(scope="module")
def features():
    return QuadTreeFeatures("multi").fit(simulate_clusters(150, seed=5, progress=False))  # SIMULATED


def test_quadtree_inspector(features):
    tables = {n: datasets.load_members(n) for n in ("M67", "Hyades")}
    qi = panels.QuadTreeInspector(tables, features)
    pts, segs = qi.data(**qi.state())
    assert len(pts) > 1000 and set(segs.level) == {1, 2, 3}
    qi.level.value = 1
    assert qi._stream.contents["level"] == 1
    assert set(qi.data(**qi.state())[1].level) == {1}
    qi.picker.value = "Hyades"
    assert "Hyades" in qi.info.value
    qi.cmd.value = [k for k in qi.cmd_names if qi.cmd_names[k] == "cmd3"][0]
    pts3, _ = qi.data(**qi.state())
    assert 0 < len(pts3) < len(tables["Hyades"])
    assert hv.renderer("bokeh").get_plot(qi.plot()).state is not None


def test_ensemble_isochrone_panel():
    model = train_default("fast")
    est = estimate(datasets.load_members("M67"), model)
    panel = est.panel()
    assert panel.state()["log_age"] == pytest.approx(np.clip(est.point["log_age"], *panel.grid.age_range), abs=0.01)
    paths = panel.ensemble_paths()
    assert len(paths) >= model.ensemble.n_members
    fig = hv.renderer("bokeh").get_plot(panel.plot()).state
    assert len(fig.renderers) >= 3
