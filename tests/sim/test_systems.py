"""Stars and unresolved pairs of given masses on lattice isochrones (ocnb.sim.place_systems), SIMULATED."""

import numpy as np
import pytest

from ocnb.sim import isochrone_lattice, place_systems

COLS = ("log_teff", "label", "G", "BP", "RP", "J", "H", "Ks", "W1", "W2")


@pytest.fixture(scope="module")
def lat():
    return isochrone_lattice(log_age_range=(9.4, 9.6), mh_range=(-0.1, 0.1), step=0.05, columns=COLS)


def test_matches_the_per_isochrone_api(lat):
    """Same magnitudes as Isochrone.at_mass → photometry.extinguish per component → flux sum, at a lattice node."""
    from ocnb.isochrones import default_grid
    from ocnb.photometry import extinguish

    age, mh = (float(v) for v in lat.node_params(lat.node_index(9.5, 0.0)))
    iso = default_grid().isochrone(age, mh)
    m_a = np.array([0.3, 0.8, 1.0, 1.05])
    m_b = np.array([0.0, 0.5, 0.9, 0.2])
    a_v = np.array([0.0, 0.4, 1.2, 3.0])
    dmod = np.array([5.0, 9.68, 10.0, 12.0])
    sys_ = place_systems(lat, 9.5, 0.0, m_a, m_b, dmod, a_v)
    assert sys_.primary_in_range.all() and sys_.companion_lit.tolist() == [False, True, True, True]
    bands = COLS[2:]
    a = iso.at_mass(m_a)
    b = iso.at_mass(np.where(m_b > 0, m_b, 0.5))
    # Teff = 10^(log Teff interpolated in mass), as the population engine does
    teff_a, teff_b = 10 ** a["log_teff"].to_numpy(), 10 ** b["log_teff"].to_numpy()
    ma = extinguish({k: a[k].to_numpy() for k in bands}, teff_a, a_v, dmod)
    mb = extinguish({k: b[k].to_numpy() for k in bands}, teff_b, a_v, dmod)
    np.testing.assert_allclose(sys_.teff_a, teff_a, rtol=1e-9)
    np.testing.assert_array_equal(sys_.value("label"), a["label"].to_numpy(float))
    for band in bands:
        want = np.where(m_b > 0, -2.5 * np.log10(10 ** (-0.4 * ma[band]) + 10 ** (-0.4 * mb[band])), ma[band])
        np.testing.assert_allclose(sys_.apparent(band), want, atol=1e-9, err_msg=band)
        np.testing.assert_allclose(sys_.apparent(band, combined=False), ma[band], atol=1e-9, err_msg=band)


def test_range_flags_and_take(lat):
    node = lat.node_index(9.5, 0.0)
    lo, hi = lat.mini[node, 0], lat.mini[node, lat.length[node] - 1]
    sys_ = place_systems(lat, 9.5, 0.0, [lo * 0.9, 1.0, hi * 1.5, 1.0], [0.0, lo * 0.5, 0.0, np.nan])
    assert sys_.primary_in_range.tolist() == [False, True, False, True]
    assert sys_.primary_too_massive.tolist() == [False, False, True, False]
    assert sys_.has_companion.tolist() == [False, True, False, False]
    assert not sys_.companion_lit.any() and np.isnan(sys_.teff_b).all()  # a companion below the isochrone is dark
    sub = sys_.take([1, 3])
    assert len(sub) == 2 and sub.primary_in_range.all()
    np.testing.assert_array_equal(sub.apparent("G"), sys_.apparent("G")[[1, 3]])


@pytest.mark.parametrize("kw, msg", [
    ({"mass_a": [1.0, np.nan]}, r"mass_a has non-finite values \[nan\]"),
    ({"log_age": [9.5, np.inf]}, "log_age has non-finite"),
    ({"a_v": -0.1}, r"a_v must be ≥ 0, got \[-0.1"),
    ({"mass_b": [0.5, 0.5, 0.5]}, "mass_a's length 2"),
    ({"law": "CCM"}, "unknown extinction law 'CCM'"),
])
def test_bad_input(lat, kw, msg):
    args = {"log_age": 9.5, "mh": 0.0, "mass_a": [1.0, 0.8], "mass_b": 0.0, **kw}
    law = args.pop("law", "G23")
    with pytest.raises(ValueError, match=msg):
        place_systems(lat, law=law, **args)


def test_band_missing_from_the_lattice_and_bad_columns(lat):
    small = isochrone_lattice(log_age_range=(9.5, 9.5), mh_range=(0.0, 0.0), cache=False)  # default columns
    with pytest.raises(ValueError, match=r"no column 'Ks'.*columns="):
        place_systems(small, 9.5, 0.0, 1.0).apparent("Ks")
    with pytest.raises(ValueError, match=r"columns = \('G', 'V'\)"):
        isochrone_lattice(log_age_range=(9.5, 9.5), mh_range=(0.0, 0.0), columns=("G", "V"), cache=False)
