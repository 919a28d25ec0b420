"""ocnb.membership.training: presets, the split by cluster, the release of the training cones, the real test.

The training cones are simulated at the release of the cone to be scored (``release="DR2"`` for the real
Blanco 1 DR2 cone). Measured (FAST preset, seed 0, scratch data home, 2 CPU cores): see the module docstring of
``ocnb.membership.training`` and the report of issue 15. No training here except the ``slow`` smoke test.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from ocnb.membership import training as T


# ---------------------------------------------------------------------------
# names and releases
# ---------------------------------------------------------------------------
def test_model_name_includes_the_release():
    assert T.model_name("fast") == "vg23-deepsets-fast-s0"  # the DR3 name is unchanged (saved models keep working)
    assert T.model_name("fast", 0, "DR3") == T.model_name("fast", 0, "EDR3") == T.model_name("fast", 0, "edr3")
    assert T.model_name("fast", 0, "DR2") == "vg23-deepsets-fast-dr2-s0"
    assert T.model_name("laptop", 3, release="dr2") == "vg23-deepsets-laptop-dr2-s3"
    assert T.model_name("fast", 0, "DR2") != T.model_name("fast", 0, "DR3")


def test_release_of():
    cone = pd.DataFrame({"ra": [1.0]})
    cone.attrs["release"] = "EDR3"
    assert T.release_of(cone) == "DR3"
    cone.attrs["release"] = "dr2"
    assert T.release_of(cone) == "DR2"
    holder = type("Prepared", (), {"cone": cone})()  # a PreparedCluster-like object: its .cone is read
    assert T.release_of(holder) == "DR2"


BAD = [
    (lambda: T.model_name("fast", 0, "DR4"), ValueError, r"release = 'DR4'"),
    (lambda: T.model_name("turbo"), ValueError, r"unknown training preset 'turbo'"),
    (lambda: T.release_of(pd.DataFrame({"ra": [1.0]})), ValueError, r"no attrs\['release'\]"),
    (lambda: T.release_of(np.zeros(3)), ValueError, r"no attrs\['release'\].*ndarray"),
    (lambda: T.simulated_cluster("NGC 2360", "fast", release="DR1"), ValueError, r"release = 'DR1'"),
    (lambda: T.training_clusters("fast", release="Gaia"), ValueError, r"release = 'Gaia'"),
    (lambda: T.split_clusters(["NGC 2360"]), ValueError, r"at least two clusters"),
    (lambda: T.blanco1_test_cluster("almeida"), ValueError, r"seed_members must be 'ocelot'"),
]


@pytest.mark.parametrize("call,exc,match", BAD)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------
# split by cluster (spec A8)
# ---------------------------------------------------------------------------
def test_split_clusters_spec_a8():
    names = [f"C{i}" for i in range(10)]
    train, val = T.split_clusters(names)
    assert len(val) == 3 and len(train) == 7  # 30 % validation
    assert set(train) | set(val) == set(names) and not set(train) & set(val)
    assert val == random.Random(42).sample(names, 3)  # spec A8: random.seed(42), then random.sample
    assert train == [n for n in names if n not in val]  # training keeps the input order
    assert T.split_clusters(names) == (train, val)  # deterministic
    assert T.split_clusters(names, seed=1) != (train, val)
    # at least one cluster on each side
    assert [len(x) for x in T.split_clusters(["A", "B"])] == [1, 1]
    assert [len(x) for x in T.split_clusters(["A", "B", "C"])] == [2, 1]


def test_fast_preset_clusters_and_split():
    names = T.training_cluster_names("fast")
    assert len(names) == 8 and "Blanco 1" not in names
    train, val = T.split_clusters(names)
    assert val == ["NGC 2423", "NGC 2360"]  # the FAST validation clusters (measured numbers refer to them)
    assert len(train) == 6


# ---------------------------------------------------------------------------
# the real test and a DR2 training cone
# ---------------------------------------------------------------------------
def test_blanco1_test_cluster():
    b = T.blanco1_test_cluster()
    assert b.name == "Blanco 1"
    assert int(b.truth.sum()) == 356  # Almeida members with G < 18 matched into the DR2 cone
    assert int(b.selection.is_train_member.sum()) <= 262 <= len(b.cone)
    from ocnb.datasets import load_field

    assert int((load_field("blanco1")["ocelot_label"] == 0).sum()) == 262  # the seed list (ocelot)
    assert T.release_of(b) == "DR2"
    assert not any(c.endswith("_corr") for c in b.cone.columns)  # the real DR2 cone: no correlations


def test_calibration_cones_hold_every_member_in_fresh_fields(monkeypatch):
    """The calibration cones: the validation clusters with all their members (the FAST cap of 300 would halve
    the share of members among the candidates) in fields other than the early-stopping ones."""
    from ocnb.datasets import load_members

    calls = []
    monkeypatch.setattr(T, "simulated_cluster", lambda *a, **k: calls.append((a, k)) or len(calls))
    assert T.calibration_clusters("fast", seed=2, progress=False) == [1, 2]
    assert [(a[0], k["seed"], k["subsample"]) for a, k in calls] == [("NGC 2423", 10_002, False),
                                                                      ("NGC 2360", 10_003, False)]
    monkeypatch.undo()
    whole = T.simulated_cluster("NGC 2423", "fast", seed=0, subsample=False)  # 502 published members
    published = load_members("NGC 2423", source="almeida")
    n_bright = int((published["phot_g_mean_mag"] < 18).sum())
    # the cone preparation drops a few members (incomplete rows, outside the radius); the cap would leave <= 300
    assert n_bright >= int(whole.truth.sum()) > max(300, 0.95 * n_bright)


def test_simulated_cluster_dr2():
    """A DR2 training cone as the model will see it (one small FAST cluster; the field is cached)."""
    dr2 = T.simulated_cluster("NGC 752", "fast", seed=0, release="DR2")
    assert dr2.cone.attrs["release"] == "DR2"
    assert not any(c.endswith("_corr") for c in dr2.cone.columns)
    assert "no correlations: diagonal covariance" in dr2.flags
    assert any("degraded to DR2 precision" in f for f in dr2.flags)
    assert any("-0.029" in f for f in dr2.flags)  # prepare_cone's DR2 zero point, as for the real DR2 cone
    assert dr2.truth is not None and dr2.truth.sum() > 200


@pytest.mark.slow
def test_default_model_dr2_smoke(tmp_path, monkeypatch):
    """Train the FAST preset at DR2 in an empty data home: stored under the DR2 name, loaded back (minutes)."""
    monkeypatch.setenv("OCNB_DATA_DIR", str(tmp_path))
    est = T.default_model("fast", seed=0, release="DR2", progress=False)
    from ocnb.membership.model import DeepSetsMembership

    again = DeepSetsMembership.load(T.model_name("fast", 0, "DR2"))
    x = np.zeros((2, 10, 13), np.float32)
    np.testing.assert_allclose(est.predict_logits(x), again.predict_logits(x), rtol=1e-5)
