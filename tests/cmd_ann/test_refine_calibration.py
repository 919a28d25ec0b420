"""ocnb.cmd_ann.refine_calibration: systematic floors of the refined intervals (issue 14, item 2).

The floors are measured on mismatched SIMULATED clusters by ``tools/calibrate_refine.py`` and shipped in
``ocnb/cmd_ann/refine_floors.json``; these tests check how the table is read (with a private copy written
to a temporary folder), that the shipped one matches the current settings, the coverage bisection and the
mismatched clusters themselves.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ocnb.cmd_ann import refine_calibration as rc
from ocnb.cmd_ann.refine import LABELS, RefineSettings

FLOORS = {"log_age": 0.05, "feh": 0.1, "a_v": 0.07, "dist_mod": 0.06}


def _write_table(path, digest, floors=FLOORS, n_used=40):
    path.write_text(json.dumps({"floors": floors, "n": n_used, "n_used": n_used, "seed": 0,
                                "settings_digest": digest}))
    return path


def test_settings_digest_ignores_the_seed_and_nothing_else():
    base = rc.settings_digest(RefineSettings())
    assert base == rc.settings_digest(RefineSettings(seed=7))
    assert len(base) == 12 and int(base, 16) >= 0
    for change in ({"binary_fraction": 0.4}, {"outlier_fraction": 0.1}, {"sigma_floor_mag": 0.05},
                   {"law": "F99"}, {"n_final": 64}):
        assert rc.settings_digest(RefineSettings(**change)) != base, change


def test_systematic_floors_read_a_table_of_the_same_settings(tmp_path, monkeypatch):
    path = _write_table(tmp_path / "refine_floors.json", rc.settings_digest(RefineSettings()))
    monkeypatch.setattr(rc, "floors_path", lambda: path)
    floors, note = rc.systematic_floors()
    assert floors == FLOORS and list(floors) == list(LABELS)
    assert "40 mismatched simulated clusters" in note and path.name in note
    same, _ = rc.systematic_floors(RefineSettings(seed=3))  # the seed does not change the posterior's shape
    assert same == FLOORS


def test_systematic_floors_are_zero_with_a_note_for_other_settings(tmp_path, monkeypatch):
    path = _write_table(tmp_path / "refine_floors.json", "0123456789ab")
    monkeypatch.setattr(rc, "floors_path", lambda: path)
    floors, note = rc.systematic_floors()
    assert floors == dict.fromkeys(LABELS, 0.0)
    assert "other refinement settings" in note and "0123456789ab" in note
    assert rc.settings_digest(RefineSettings()) in note
    other = RefineSettings(binary_fraction=0.5)
    path = _write_table(path, rc.settings_digest(RefineSettings()))
    floors, note = rc.systematic_floors(other)
    assert floors == dict.fromkeys(LABELS, 0.0) and rc.settings_digest(other) in note


def test_systematic_floors_are_zero_with_a_note_without_a_table(tmp_path, monkeypatch):
    monkeypatch.setattr(rc, "floors_path", lambda: tmp_path / "refine_floors.json")
    floors, note = rc.systematic_floors()
    assert floors == dict.fromkeys(LABELS, 0.0)
    assert "missing" in note and "tools/calibrate_refine.py" in note


def test_the_shipped_floors_match_the_current_settings():
    path = rc.floors_path()
    if not path.exists():
        pytest.skip(f"{path} is not there yet: run tools/calibrate_refine.py")
    doc = json.loads(path.read_text())
    digest = rc.settings_digest(RefineSettings())
    assert doc["settings_digest"] == digest, (
        f"the shipped floors were measured with other refinement settings ({doc['settings_digest']} ≠ {digest}): "
        "rerun tools/calibrate_refine.py")
    floors, note = rc.systematic_floors()
    assert floors == {k: float(doc["floors"][k]) for k in LABELS} and "mismatched simulated clusters" in note
    # a floor is a systematic error of a few hundredths to tenths, never negative or absurd
    assert all(0.0 <= floors[k] < 0.5 for k in LABELS), floors
    assert doc["n_used"] >= 40 and doc["n_used"] <= doc["n"]
    for k in LABELS:  # the floors reach the 68.3 % coverage they were fitted for
        assert doc["coverage"][k]["with_floor"] >= 0.6827 - 1e-9
        assert doc["coverage"][k]["with_floor"] >= doc["coverage"][k]["raw"]


def test_the_shipped_floors_are_readable_by_everyone():
    """A data file of the package must not be private to the user who generated it (mkstemp makes 0600)."""
    path = rc.floors_path()
    if not path.exists():
        pytest.skip(f"{path} is not there yet: run tools/calibrate_refine.py")
    assert path.stat().st_mode & 0o044 == 0o044, f"{path} has mode {oct(path.stat().st_mode & 0o777)}"


# ---------------------------------------------------------------------------------------------------------------
# The coverage bisection
# ---------------------------------------------------------------------------------------------------------------
def test_floor_for_coverage_reaches_the_target_and_no_less_floor_does():
    rng = np.random.default_rng(0)
    err = np.abs(rng.normal(0, 0.1, 400))
    sd = np.full(400, 0.02)
    target = 0.6827
    f = rc._floor_for_coverage(err, sd, target)
    assert np.mean(err <= np.hypot(sd, f)) >= target
    assert np.mean(err <= np.hypot(sd, f * 0.999)) < target  # the smallest such floor
    # the errors are |N(0, 0.1)|: the 68.3 % quantile of |err| is 0.1 (±5 % for 400 draws)
    assert f == pytest.approx(np.sqrt(np.quantile(err, target) ** 2 - 0.02 ** 2), rel=0.02)
    assert 0.09 < f < 0.11


def test_floor_for_coverage_is_zero_when_the_posterior_already_covers():
    err = np.array([0.01, 0.02, 0.03, 0.5])
    assert rc._floor_for_coverage(err, np.full(4, 0.05), 0.6827) == 0.0
    assert rc._floor_for_coverage(np.array([]), np.array([]), 0.6827) == 0.0


def test_floor_for_coverage_with_zero_width_posteriors_is_the_error_quantile():
    err = np.linspace(0.01, 1.0, 100)
    f = rc._floor_for_coverage(err, np.zeros(100), 0.5)
    assert np.mean(err <= f) >= 0.5 and f == pytest.approx(0.50, abs=0.011)


# ---------------------------------------------------------------------------------------------------------------
# The mismatched clusters
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clusters():
    return rc.calibration_clusters(4, seed=0)


def test_calibration_clusters_are_four_simulated_tables_with_truths(clusters):
    assert len(clusters) == 4
    pri = rc.MISMATCH["priors"]
    hi_n = rc.MISMATCH["n_stars"][1]
    for table, truth in clusters:
        assert isinstance(table, pd.DataFrame) and set(truth) == set(LABELS)
        for k in LABELS:
            assert pri[k][0] <= truth[k] <= pri[k][1], (k, truth[k])
        assert {"phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "parallax"} <= set(table.columns)
        assert 10 <= len(table) <= hi_n  # G ≤ 18 cuts the faint end of n_stars ∈ [80, 800)
        assert np.isfinite(table["phot_g_mean_mag"]).all() and table["phot_g_mean_mag"].max() <= 18.0 + 1e-6
    # one cluster per mismatch group, so the ingredients differ: binary fractions 0.1, 0.3, 0.45, 0.6
    frac = [float(t["is_binary"].mean()) if "is_binary" in t else 0.0 for t, _ in clusters]
    assert frac[0] < frac[3], frac
    assert len({tuple(round(v, 6) for v in tr.values()) for _, tr in clusters}) == 4


def test_calibration_clusters_are_reproducible():
    a = rc.calibration_clusters(2, seed=3)
    b = rc.calibration_clusters(2, seed=3)
    for (ta, tra), (tb, trb) in zip(a, b, strict=True):
        assert tra == trb
        pd.testing.assert_frame_equal(ta, tb)
    c = rc.calibration_clusters(2, seed=4)
    assert [tr for _, tr in c] != [tr for _, tr in a]


def test_calibration_parallax_stand_in_is_a_gaussian_on_dist_mod():
    p = rc._Parallax(10.0, 0.05)
    assert p.dist_mod() == 10.0 and p.dist_mod_sigma() == 0.05
    np.testing.assert_allclose(p.loglike([10.0, 10.05, 9.9]), [0.0, -0.5, -2.0])


# ---------------------------------------------------------------------------------------------------------------
# literature floors: the scatter between published fits of real clusters
# ---------------------------------------------------------------------------------------------------------------
def test_the_shipped_literature_floors_are_the_catalogues_scatter():
    """The shipped table equals a fresh measurement from the shipped catalogues (a few seconds)."""
    doc = json.loads(rc.literature_floors_path().read_text())
    fresh = rc.measure_literature_floors(min_members=doc["min_members"])
    assert fresh["floors"] == pytest.approx(doc["floors"], rel=1e-12), "rerun tools/literature_floors.py"
    assert fresh["scatter"] == doc["scatter"] and fresh["catalogs"] == doc["catalogs"]
    floors, note = rc.literature_floors()
    assert floors["dist_mod"] == 0.0 and set(floors) == set(LABELS)
    # isochrone fits of the same clusters disagree by about 0.1-0.3 dex / mag: a measured, not a chosen, number
    assert all(0.1 < floors[k] < 0.3 for k in rc.LITERATURE_FLOOR_PARAMETERS), floors
    assert doc["scatter"]["log_age"]["n_clusters"] > 1000 and "clusters with >= 100 members" in note


def test_literature_floors_are_zero_with_a_note_without_a_table(tmp_path, monkeypatch):
    monkeypatch.setattr(rc, "literature_floors_path", lambda: tmp_path / "literature_floors.json")
    floors, note = rc.literature_floors()
    assert floors == dict.fromkeys(LABELS, 0.0) and "tools/literature_floors.py" in note
    (tmp_path / "literature_floors.json").write_text(json.dumps({"format": "other/1", "floors": {"log_age": 1}}))
    floors, note = rc.literature_floors()
    assert floors == dict.fromkeys(LABELS, 0.0) and "format 'other/1'" in note
