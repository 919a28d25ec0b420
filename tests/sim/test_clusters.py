"""The SyntheticClusters container (ocnb.sim.clusters)."""

import json

import numpy as np
import pandas as pd
import pytest

from ocnb.sim import SyntheticClusters


def test_cluster_table_schema(sim):
    from ocnb.datasets.members import MEMBER_COLUMNS
    from ocnb.validation import validate_members

    t = sim.cluster(3)
    assert list(t.columns[:len(MEMBER_COLUMNS)]) == MEMBER_COLUMNS
    assert len(t) == sim.labels["n_stars"][3]
    assert t["cluster"].iloc[0] == "SYN-000003" and t["source_id"].is_unique
    assert t["ph_qual"].str.len().eq(3).all()
    validate_members(t)
    assert sim.cluster(-1)["cluster"].iloc[0] == "SYN-000149"


def test_subset_and_save_load(sim, tmp_path):
    sub = sim.subset([7, 2, 7])
    assert len(sub) == 3 and sub.labels["n_stars"].tolist() == sim.labels["n_stars"][[7, 2, 7]].tolist()
    np.testing.assert_array_equal(sub.cluster(2)["phot_g_mean_mag"], sim.cluster(7)["phot_g_mean_mag"])
    assert len(sim[10:20]) == 10
    # negative indices count from the end, as in numpy
    np.testing.assert_array_equal(sim.subset([-1]).cluster(0)["phot_g_mean_mag"],
                                  sim.cluster(len(sim) - 1)["phot_g_mean_mag"])
    mask = np.zeros(len(sim), bool)
    mask[[1, 4]] = True
    assert sim.subset(mask).labels["log_age"].tolist() == sim.labels["log_age"][[1, 4]].tolist()
    path = sim.save(tmp_path / "syn.npz")
    back = SyntheticClusters.load(path)
    pd.testing.assert_frame_equal(back.labels, sim.labels)
    assert back.labels["feh_clipped"].dtype == bool
    assert back.meta == json.loads(json.dumps(sim.meta))
    for k, v in sim.stars.items():
        assert np.array_equal(back.stars[k], v) and back.stars[k].dtype == v.dtype
    assert np.array_equal(back.offsets, sim.offsets)


def test_y_targets(sim):
    y = sim.y()
    assert y.shape == (150, 4) and y.dtype == np.float64
    np.testing.assert_array_equal(y[:, 1], sim.labels["feh"])
    np.testing.assert_array_equal(sim.y(["dist_mod"])[:, 0], sim.labels["dist_mod"])


@pytest.mark.parametrize("call, exc, msg", [
    (lambda s: s.cluster(150), IndexError, "cluster index 150 out of range for 150 clusters"),
    (lambda s: s.subset([0, 150]), IndexError, r"cluster indices \[150\] out of range"),
    (lambda s: s.subset(np.ones(3, bool)), IndexError, r"boolean mask of shape \(3,\) for 150 clusters"),
    (lambda s: s.y(["log_age", "age"]), KeyError, r"no label column\(s\) \['age'\]"),
    (lambda s: SyntheticClusters(s.labels, s.offsets[:-1], {}), ValueError, "offsets has 150 entries for 150"),
    (lambda s: SyntheticClusters(s.labels, s.offsets, {"teff": np.zeros(3)}), ValueError,
     "star column 'teff' has 3 rows"),
])
def test_container_bad_input(sim, call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(sim)
