"""Isochrone lattice (ocnb.sim.lattice)."""

import numpy as np
import pytest

from ocnb.sim import isochrone_lattice


@pytest.fixture(scope="module")
def grid():
    from ocnb.isochrones import default_grid

    return default_grid()


def test_lattice_nodes_equal_grid_isochrones(grid):
    lat = isochrone_lattice(log_age_range=(8.0, 8.1), mh_range=(-0.1, 0.0), step=0.05)
    assert lat.ages.tolist() == [8.0, 8.05, 8.1] and lat.mhs.tolist() == [-0.1, -0.05, 0.0]
    assert lat.n_nodes == 9 and lat.spacing == pytest.approx((0.05, 0.05))
    k = int(lat.node_index(8.05, -0.05))
    assert [float(v) for v in lat.node_params(k)] == pytest.approx([8.05, -0.05])
    iso = grid.isochrone(8.05, -0.05).data
    n = lat.length[k]
    assert n == len(iso)
    np.testing.assert_allclose(lat.columns["G"][k, :n], iso["G"].to_numpy())
    np.testing.assert_allclose(lat.mini[k, :n], iso["mini"].to_numpy())
    # padding repeats the last point: padded segments have zero mass width (no IMF weight)
    assert np.all(lat.mini[k, n - 1:] == lat.mini[k, n - 1])
    assert np.all(lat.segment_imf_weights()[k, n - 1:] == 0)


def test_nearest_node_within_half_a_step():
    lat = isochrone_lattice(log_age_range=(8.0, 8.3), mh_range=(-0.2, 0.0), step=0.1)
    x = np.random.default_rng(1).uniform(8.0, 8.3, 500)
    y = np.random.default_rng(2).uniform(-0.2, 0.0, 500)
    a, m = lat.node_params(lat.node_index(x, y))
    assert np.abs(a - x).max() <= 0.05 + 1e-9 and np.abs(m - y).max() <= 0.05 + 1e-9


def test_range_is_clipped_to_the_grid_and_memoised(grid):
    lat = isochrone_lattice(log_age_range=(10.1, 10.5), mh_range=(0.25, 0.6), step=0.05)
    assert lat.ages[-1] == pytest.approx(grid.age_range[1]) and lat.mhs[-1] == pytest.approx(grid.mh_range[1])
    assert isochrone_lattice(log_age_range=(10.1, 10.5), mh_range=(0.25, 0.6), step=0.05) is lat


@pytest.mark.parametrize("kw, exc, msg", [
    ({"step": 0.0}, ValueError, "step must be > 0, not 0.0"),
    ({"step": float("nan")}, ValueError, "step must be > 0"),
    ({"log_age_range": (11.0, 12.0)}, ValueError, r"log_age_range = \(11.0, 12.0\) lies entirely outside"),
    ({"mh_range": (-3.0, -2.5)}, ValueError, r"mh_range = \(-3.0, -2.5\) lies entirely outside"),
    ({"mh_range": (0.2, 0.1)}, ValueError, "low ≤ high"),
    ({"log_age_range": (8.0, np.nan)}, ValueError, "must be finite"),
    ({"log_age_range": 8.0}, ValueError, "must be a pair"),
    ({"grid": "parsec"}, TypeError, "grid must be an ocnb.isochrones.IsochroneGrid, not str"),
])
def test_lattice_bad_input(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        isochrone_lattice(**{"log_age_range": (8.0, 8.1), "mh_range": (-0.1, 0.0), "cache": False, **kw})
