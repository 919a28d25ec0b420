"""ocnb.membership.evaluation: scores against a truth, the DR2/EDR3 cross-match, the Sect. 4 statistics.

Small hand-made cones (TEST FIXTURES) with known answers, and the real Blanco 1 DR2 cone with the Almeida et
al. (2023) EDR3 members for the cross-match.
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from ocnb.membership.evaluation import (
    MembershipEvaluation,
    crossmatch_ids,
    evaluate_members,
    faint_fraction,
    miss_breakdown,
    truth_mask,
)
from ocnb.membership.probability import MembershipInputError, MembershipResult

SID = 1_000_000_000_000_000


def small_cone():
    """10 stars: p, truth and G chosen so that every count is known (star 9 is fainter than G = 18)."""
    p = np.array([0.9, 0.8, 0.6, 0.55, 0.3, 0.1, 0.0, 0.0, 0.7, 0.95])
    truth = np.array([1, 1, 0, 1, 1, 0, 0, 1, 0, 1], bool)
    g = np.array([12, 13, 14, 15, 16, 17, 17.5, 17.9, 16, 18.5])
    cand = p > 0
    cone = pd.DataFrame({"source_id": SID + np.arange(10), "ra": 10 + np.arange(10) * 0.01,
                         "dec": np.full(10, -30.0), "phot_g_mean_mag": g})
    return p, truth, cone, cand


def stand_in_result(p, cone, cand, truth=None, name="Fixture", passes=None, f_r=None):
    n = len(cone)
    passes = passes or {}
    sel = types.SimpleNamespace(is_candidate=cand, is_train_member=np.zeros(n, bool),
                                pass_pm=passes.get("pm", np.ones(n, bool)),
                                pass_plx=passes.get("plx", np.ones(n, bool)),
                                pass_cmd=passes.get("cmd", np.ones(n, bool)))
    feats = np.zeros((n, 5))
    if f_r is not None:
        feats[:, 0] = f_r
    prep = types.SimpleNamespace(name=name, cone=cone, selection=sel, features=feats, truth=truth, flags=[])
    return MembershipResult(np.asarray(p, float), prep, [], 100)


def test_scores_of_a_known_case():
    p, truth, cone, cand = small_cone()
    ev = evaluate_members(stand_in_result(p, cone, cand), truth, p_min=0.5, g_max=18.0)
    # scored: stars 0-8 (G < 18). Predicted p >= 0.5: 0, 1, 2, 3, 8 -> TP 0, 1, 3; FP 2, 8; FN 4, 7
    assert (ev.tp, ev.fp, ev.fn, ev.tn) == (3, 2, 2, 2)
    assert ev.precision == pytest.approx(0.6) and ev.recall == pytest.approx(0.6) and ev.f1 == pytest.approx(0.6)
    assert ev.n_scored == 9 and ev.n_true == 5 and ev.n_predicted == 5
    ps, ts = p[:9], truth[:9]
    assert ev.brier == pytest.approx(np.mean((ps - ts) ** 2))
    c = cand[:9]
    assert ev.brier_candidates == pytest.approx(np.mean((ps[c] - ts[c]) ** 2))
    assert ev.n_candidates == 7 and ev.n_true_candidates == 4
    assert ev.reliability["count"].sum() == 9 and ev.reliability_candidates["count"].sum() == 7
    # without the magnitude cut, star 9 (p 0.95, member) is a true positive too
    all_stars = evaluate_members(p, truth, g_max=None, cone=cone)
    assert (all_stars.tp, all_stars.n_scored) == (4, 10) and np.isnan(all_stars.brier_candidates)
    # thresholds: recall never rises with the threshold
    rec = ev.thresholds["recall"].to_numpy()
    assert (np.diff(rec) <= 0).all() and ev.thresholds["threshold"].iloc[0] == 0.05
    row = ev.to_frame()
    assert row.index.tolist() == ["Fixture"] and row.loc["Fixture", "f1"] == pytest.approx(0.6)
    assert len(pd.concat([row, all_stars.to_frame()])) == 2


def test_truth_as_mask_ids_or_table_and_scored_frames_agree():
    p, truth, cone, cand = small_cone()
    res = stand_in_result(p, cone, cand)
    ids = cone["source_id"].to_numpy()[truth]
    table = cone[truth].copy()
    table.attrs["release"] = "DR3"
    frame = cone.assign(p_member=p, is_candidate=cand)
    evs = [evaluate_members(res, truth), evaluate_members(res, ids), evaluate_members(res, table),
           evaluate_members(frame, truth), evaluate_members(p, truth, cone=cone)]
    for ev in evs[1:]:
        assert (ev.tp, ev.fp, ev.fn, ev.brier) == (evs[0].tp, evs[0].fp, evs[0].fn, evs[0].brier)
    assert np.isnan(evs[-1].brier_candidates)  # a bare array carries no candidate mask
    np.testing.assert_array_equal(truth_mask(cone, table), truth)


def test_evaluation_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, truth, cone, cand = small_cone()
    ev = evaluate_members(stand_in_result(p, cone, cand), truth)
    assert isinstance(ev, MembershipEvaluation)
    fig = ev.plot()
    assert len(fig.axes) == 2  # reliability diagram (with its count inset), the threshold curves
    assert len(fig.axes[0].child_axes) == 1 and fig.axes[1].get_xlabel() == "probability threshold"
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# Cross-match
# ---------------------------------------------------------------------------------------------
def test_crossmatch_ids_then_positions_propagated_to_the_cone_epoch():
    # cone (DR2, epoch 2015.5): 6 sources
    cone = pd.DataFrame({"source_id": SID + np.arange(6), "ra": [10.0, 10.01, 10.02, 10.03, 10.04, 10.05],
                         "dec": np.full(6, -30.0), "phot_g_mean_mag": [12.0, 13, 14, 15, 16, 17]})
    cone.attrs["release"] = "DR2"
    # members (EDR3, 2016.0): 0 same id; 1 new id, moved by its pm (+400 mas/yr in dec: 0.2 arcsec in 0.5 yr);
    # 2 new id at the right place but 1 mag off; 3 new id 2 arcsec away; 4 and 5 new ids both near source 4
    mas = 1 / 3.6e6
    members = pd.DataFrame({
        "source_id": [SID, 9 * SID + 1, 9 * SID + 2, 9 * SID + 3, 9 * SID + 4, 9 * SID + 5],
        "ra": [10.0, 10.01, 10.02, 10.03 + 2000 * mas / np.cos(np.deg2rad(30)), 10.04, 10.04],
        "dec": [-30.0, -30.0 + 200 * mas, -30.0, -30.0, -30.0 + 100 * mas, -30.0 + 300 * mas],
        "phot_g_mean_mag": [12.02, 13.01, 15.0, 15.0, 16.0, 16.0],
        "pmra": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "pmdec": [0.0, 400.0, 0.0, 0.0, 0.0, 0.0],
    })
    members.attrs["release"] = "EDR3"
    x = crossmatch_ids(cone, members)
    assert x["match"].tolist() == ["source_id", "position", "none", "none", "position", "none"]
    assert x["cone_row"].tolist() == [0, 1, -1, -1, 4, -1]
    assert x["cone_source_id"].tolist() == [SID, SID + 1, -1, -1, SID + 4, -1]
    assert x.loc[1, "separation_arcsec"] < 1e-3  # the 0.2 arcsec offset was the proper motion
    assert x.loc[4, "separation_arcsec"] == pytest.approx(0.1, abs=1e-3)
    assert x.attrs["n_source_id"] == 1 and x.attrs["n_position"] == 2 and x.attrs["n_unmatched"] == 3
    assert x.attrs["epochs"]["propagated_yr"] == -0.5
    # without propagation member 1 is 0.2 arcsec off: still inside 0.5 arcsec, but not inside 0.1
    strict = crossmatch_ids(cone, members, max_sep_arcsec=0.1, member_epoch=2015.5)
    assert strict.loc[1, "match"] == "none"


def test_crossmatch_blanco1_dr2_cone_with_almeida_edr3_members():
    from ocnb.datasets import load_field, load_members

    cone = load_field("blanco1")
    members = load_members("Blanco 1", source="almeida")
    x = crossmatch_ids(cone, members)
    bright = members["phot_g_mean_mag"].to_numpy() < 18
    counts = x.loc[bright, "match"].value_counts().to_dict()
    # 412 members with G < 18; 379 lie inside the 2.52 deg cone; 345 match by id, 11 by position
    assert bright.sum() == 412
    assert counts == {"source_id": 345, "position": 11, "none": 56}
    assert x.attrs["n_source_id"] == 346 and x.attrs["n_position"] == 11
    pos = x[x["match"] == "position"]
    assert pos["separation_arcsec"].max() < 0.01 and pos["delta_g"].abs().max() < 0.05  # the same stars
    assert len(set(x.loc[x["cone_row"] >= 0, "cone_row"])) == 357  # one-to-one


# ---------------------------------------------------------------------------------------------
# Miss breakdown and faint fraction
# ---------------------------------------------------------------------------------------------
def test_miss_breakdown_counts_by_hand():
    n = 10
    cone = pd.DataFrame({"source_id": SID + np.arange(n), "ra": np.zeros(n), "dec": np.zeros(n),
                         "phot_g_mean_mag": np.full(n, 15.0)})
    truth = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    cand = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0], bool)
    p = np.array([0.9, 0.6, 0.05, 0.0, 0, 0, 0, 0, 0.5, 0])
    passes = {"pm": np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 0], bool),
              "plx": np.array([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], bool),
              "cmd": np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 1], bool)}
    f_r = np.array([1, 2, 36.0, 40.0, 0, 0, 0, 0, 0, 0])
    res = stand_in_result(p, cone, cand, passes=passes, f_r=f_r)
    row = miss_breakdown(res, truth).iloc[0]
    # missed: 2, 3 (candidates with p < 0.1) and 4-7 (not candidates)
    assert row["n_true"] == 8 and row["n_missed"] == 6 and row["missed_fraction"] == pytest.approx(0.75)
    assert row["n_missed_candidates"] == 2 and row["candidate_share"] == pytest.approx(1 / 3)
    assert row["f_r_mean"] == pytest.approx(38.0) and row["f_r_std"] == pytest.approx(np.std([36, 40], ddof=1))
    assert row["n_not_candidates"] == 4
    assert (row["fail_pm"], row["fail_plx"], row["fail_cmd"]) == (0.5, 0.5, 0.25)
    # a prepared cluster alone: only the non-candidates are missed
    only = miss_breakdown(res.prepared, truth).iloc[0]
    assert only["n_missed"] == 4 and only["n_missed_candidates"] == 0


def test_faint_fraction():
    n = 8
    g = np.array([12, 14, 16, 17.5, 18.5, 19, 19.5, 20.0])
    cone = pd.DataFrame({"source_id": SID + np.arange(n), "phot_g_mean_mag": g})
    p = np.array([0.9, 0.5, 0.2, 0.05, 0.8, 0.1, 0.0, 0.3])
    res = stand_in_result(p, cone, p > 0)
    assert faint_fraction(res) == pytest.approx(3 / 6)  # p >= 0.1: stars 0, 1, 2, 4, 5, 7
    assert faint_fraction(res, p_min=0.5) == pytest.approx(1 / 3)
    shallow = stand_in_result(p[:4], cone.iloc[:4], p[:4] > 0)  # the cone stops at G = 17.5
    assert np.isnan(faint_fraction(shallow))
    assert np.isnan(faint_fraction(stand_in_result(np.zeros(n), cone, np.zeros(n, bool))))


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------
P, TRUTH, CONE, CAND = small_cone()
RES = stand_in_result(P, CONE, CAND)
BAD = [
    ("p above 1", lambda: evaluate_members(np.r_[P[:-1], 1.5], TRUTH, cone=CONE), r"finite and in \[0, 1\].*row 9"),
    ("p NaN", lambda: evaluate_members(np.r_[np.nan, P[1:]], TRUTH, cone=CONE), r"first: row 0"),
    ("empty", lambda: evaluate_members(np.array([]), np.array([], bool), g_max=None), r"non-empty 1-D"),
    ("length mismatch", lambda: evaluate_members(P[:5], TRUTH, cone=CONE), r"5 probabilities for a cone of 10"),
    ("mask length", lambda: evaluate_members(RES, TRUTH[:4]), r"one value per cone row \(10\)"),
    ("no cone for g_max", lambda: evaluate_members(P, TRUTH), r"a cone .* is needed"),
    ("p_min 0", lambda: evaluate_members(RES, TRUTH, p_min=0), r"p_min must lie in \(0, 1\]"),
    ("p_min text", lambda: evaluate_members(RES, TRUTH, p_min="x"), r"p_min must be a number"),
    ("no truth member", lambda: evaluate_members(RES, np.zeros(10, bool)), r"none of the 9 scored stars"),
    ("nothing bright", lambda: evaluate_members(RES, TRUTH, g_max=5), r"no star of the cone has G < g_max = 5"),
    ("float truth", lambda: evaluate_members(RES, TRUTH.astype(float)), r"boolean mask, an integer array"),
    ("truth table without ids", lambda: evaluate_members(RES, pd.DataFrame({"x": [1]})), r"needs a 'source_id'"),
    ("frame without p_member", lambda: evaluate_members(CONE, TRUTH), r"needs a 'p_member' column"),
    ("strings", lambda: evaluate_members(object(), TRUTH, cone=CONE), r"probabilities must be"),
    ("cross-match columns", lambda: crossmatch_ids(CONE, CONE.drop(columns="ra")), r"members lacks .*\['ra'\]"),
    ("cross-match radius", lambda: crossmatch_ids(CONE, CONE, max_sep_arcsec=0), r"must be positive"),
    ("cross-match type", lambda: crossmatch_ids(CONE.to_numpy(), CONE), r"cone must be a DataFrame"),
    ("miss breakdown input", lambda: miss_breakdown(P, TRUTH), r"needs a MembershipResult or a PreparedCluster"),
    ("p_miss", lambda: miss_breakdown(RES, TRUTH, p_miss=0), r"p_miss must lie in"),
    ("faint fraction input", lambda: faint_fraction(P), r"needs a MembershipResult"),
    ("faint p_min", lambda: faint_fraction(RES, p_min=2), r"p_min must lie in"),
]


@pytest.mark.parametrize("name, call, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_table(name, call, match):
    with pytest.raises(MembershipInputError, match=match):
        call()
