"""ocnb.cmd_ann.peers: reading, summarising and plotting a (small, synthetic) peer-results file.

The RESULTS.md rendering lives in ``benchmarks/peers/report.py`` and is tested in
``tests/test_benchmarks_peers.py``."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from ocnb.cmd_ann import peers

PARAMS = ("log_age", "feh", "a_v", "dist_mod")


def _est(p50: dict, half: float = 0.1, **extra) -> dict:
    return {
        "status": "ok",
        "p16": {k: v - half for k, v in p50.items()},
        "p50": dict(p50),
        "p84": {k: v + half for k, v in p50.items()},
        **extra,
    }


def _lit(vals: dict) -> dict:
    return {
        k: {"mean": v, "catalogs": {"HUNT2023": v - 0.01, "DIAS2021": v + 0.01}, "kind": "photometric"}
        for k, v in vals.items()
    }


@pytest.fixture
def results() -> dict:
    """Three clusters; ocnb is closer on log age and dMod, ASteCA on A_V; ASteCA fails on the third."""
    lit = {"log_age": 9.0, "feh": 0.0, "a_v": 0.2, "dist_mod": 10.0}
    clusters = []
    for i, (do, da) in enumerate([(0.05, 0.20), (0.10, 0.30)]):
        clusters.append(
            {
                "cluster": f"C{i}",
                "label": f"C{i}",
                "source": "almeida",
                "ocnb_bands": "gaia",
                "n_stars_cmd": 300,
                "literature": _lit(lit),
                "ocnb": _est(
                    {"log_age": 9.0 + do, "feh": 0.0, "a_v": 0.2 + 0.3, "dist_mod": 10.0 - do},
                    fit_s=0.05,
                    process_s=5.0,
                    low_quality=(i == 1),
                ),
                "asteca": _est(
                    {"log_age": 9.0 - da, "feh": 0.1, "a_v": 0.2 + 0.05, "dist_mod": 10.0 + da},
                    half=0.5,
                    fit_s=10.0 + i,
                    process_s=12.0,
                    seed_sd=dict.fromkeys(PARAMS, 0.02),
                    runs=[{"status": "ok", "seed": 1}, {"status": "ok", "seed": 2}],
                ),
            }
        )
    clusters.append(
        {
            "cluster": "C2",
            "label": "C2",
            "source": "almeida",
            "ocnb_bands": "gaia",
            "n_stars_cmd": 60,
            "literature": _lit(lit),
            "ocnb": _est(lit, fit_s=0.04, process_s=5.0),
            "asteca": {"status": "failed", "message": "every seed failed: boom", "runs": []},
        }
    )
    return {
        "schema": 1,
        "created": "2026-01-01T00:00:00",
        "command": "x",
        "machine": {"cores": 2, "description": "m"},
        "versions": {"ocnb": "0.1"},
        "settings": {"seeds": [1, 2], "priors": {"loga": [7, 10.15]}},
        "peer": {"status": "ok"},
        "clusters": clusters,
        "wall_s": 60.0,
    }


@pytest.fixture
def results_file(tmp_path, results):
    path = tmp_path / "asteca_vs_ocnb.json"
    path.write_text(json.dumps(results))
    return path


def test_package_does_not_know_the_checkout():
    """Installed without a checkout, nothing in the package may point into benchmarks/."""
    import inspect

    src = inspect.getsource(peers)
    assert "default_results_path" not in src and "parents[2]" not in src
    assert not hasattr(peers, "results_markdown") and not hasattr(peers, "MD_START")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# Bad-input table of load_peer_results: (id, make the path from tmp_path, error, regex)
BAD_FILES = [
    ("missing file", lambda p: p / "nothing.json", FileNotFoundError,
     r"no peer-benchmark results at .*nothing\.json \(no such file\); create them with "
     r"`\.venv/bin/python benchmarks/peers/asteca_vs_ocnb\.py`"),
    ("a folder", lambda p: p, FileNotFoundError, r"\(a folder, not a file\)"),
    ("not JSON", lambda p: _write(p, "bad.json", '{"clusters": [,]}'), ValueError,
     r"bad\.json is not valid JSON \(line 1, column 15"),
    ("empty file", lambda p: _write(p, "empty.json", ""), ValueError, r"empty\.json is not valid JSON"),
    ("binary file", lambda p: (p / "bin.json").write_bytes(b"\xff\xfe\x00") and p / "bin.json", ValueError,
     r"bin\.json is not a text \(UTF-8\) file"),
    ("other JSON", lambda p: _write(p, "other.json", json.dumps({"hello": 1})), ValueError,
     r"other\.json is not an asteca_vs_ocnb\.py results file \(no \['clusters', 'settings'\] key\)"),
    ("a JSON list", lambda p: _write(p, "list.json", "[1, 2]"), ValueError, r"not an asteca_vs_ocnb\.py results file"),
    ("clusters not a list", lambda p: _write(p, "c.json", json.dumps({"clusters": {}, "settings": {}})), ValueError,
     r"'clusters' must be a list"),
    ("no path", lambda p: None, TypeError, r"load_peer_results needs the path of a results file.*got None"),
    ("empty path", lambda p: "", TypeError, r"needs the path of a results file"),
]


@pytest.mark.parametrize("name,make,error,pattern", BAD_FILES, ids=[r[0] for r in BAD_FILES])
def test_bad_results_files(tmp_path, name, make, error, pattern):
    with pytest.raises(error, match=pattern):
        peers.load_peer_results(make(tmp_path))


def test_committed_results_load_from_an_explicit_path(repo_root):
    res = peers.load_peer_results(repo_root / "benchmarks" / "peers" / "asteca_vs_ocnb.json")
    assert res["clusters"] and peers.summarize(res)["n_clusters"] == len(res["clusters"])
    assert res["_path"].endswith("asteca_vs_ocnb.json")


def test_table_and_summary(results_file):
    res = peers.load_peer_results(results_file)
    tab = peers.peer_table(res)
    assert len(tab) == 3 * 4
    row = tab[(tab.cluster == "C0") & (tab.parameter == "log_age")].iloc[0]
    assert row.ocnb_absdiff == pytest.approx(0.05) and row.asteca_absdiff == pytest.approx(0.20)
    assert bool(row.ocnb_covers) and bool(row.asteca_covers)
    assert not tab[tab.cluster == "C2"].asteca_ok.any()

    s = peers.summarize(res)
    age = s["per_param"]["log_age"]
    assert age["n"] == 2  # the cluster ASteCA failed on is not compared
    assert age["median_absdiff_ocnb"] == pytest.approx(0.075)
    assert age["median_absdiff_asteca"] == pytest.approx(0.25)
    assert s["per_param"]["a_v"]["ocnb_worse"] and not s["per_param"]["dist_mod"]["ocnb_worse"]
    assert s["per_param"]["a_v"]["coverage_ocnb"] == 0.0  # |Δ| 0.3 > half-width 0.1
    assert s["worse"] == ["a_v"] and s["accuracy_ok"] is False
    sp = s["speed"]
    assert sp["n"] == 2 and sp["median_ratio_fit"] == pytest.approx(np.median([10.0 / 0.05, 11.0 / 0.05]))
    assert sp["min_ratio_fit"] == pytest.approx(200.0) and s["speed_ok"] is True
    assert sp["median_ratio_process"] == pytest.approx(12.0 / 5.0)


def test_plot(results_file):
    import matplotlib

    matplotlib.use("Agg")
    fig = peers.plot_peer_comparison(peers.load_peer_results(results_file))
    assert len(fig.axes) == 5
    with pytest.raises(TypeError, match="needs the results dict"):
        peers.plot_peer_comparison(None)
    assert "A_V" in fig.axes[2].get_title()
    assert fig.axes[4].get_yscale() == "log"


def test_clusters_outside_asteca_priors_are_marked_and_summarised_apart(results):
    results["settings"]["priors"] = {"loga": [7.0, 10.15], "dm": [7.0, 14.5]}
    near = results["clusters"][1]
    near["label"] = "Nearby"
    near["literature"]["dist_mod"]["mean"] = 5.6
    assert peers.outside_prior(results, near) == ["dist_mod"]
    assert peers.outside_prior(results, results["clusters"][0]) == []
    tab = peers.peer_table(results)
    assert tab[tab.label == "Nearby"].lit_outside_prior.sum() == 1
    assert not tab[tab.label == "Nearby"].cluster_in_prior.any()
    s_all, s_in = peers.summarize(results), peers.summarize(results, in_prior_only=True)
    assert s_all["per_param"]["log_age"]["n"] == 2 and s_in["per_param"]["log_age"]["n"] == 1
    assert s_in["n_clusters"] == 2  # C0 and C2 (C2 has no ASteCA estimate)


# ---------------------------------------------------------------------------
# schema 1: the issue-9 view stays exactly as it was
# ---------------------------------------------------------------------------
V1_TABLE_COLUMNS = [
    "cluster", "label", "parameter", "lit_mean", "lit_kind", "lit_values",
    "ocnb_p16", "ocnb_p50", "ocnb_p84", "ocnb_ok", "ocnb_absdiff", "ocnb_covers",
    "asteca_p16", "asteca_p50", "asteca_p84", "asteca_ok", "asteca_absdiff", "asteca_covers",
    "asteca_seed_sd", "ocnb_low_quality", "lit_outside_prior", "cluster_in_prior",
]
V1_TIMING_COLUMNS = [
    "cluster", "label", "n_stars", "ocnb_model", "ocnb_fit_s", "ocnb_process_s", "asteca_fit_s",
    "asteca_process_s", "asteca_n_seeds", "ratio_fit", "ratio_process",
]


def test_schema1_keeps_its_columns_and_keys(results):
    assert peers.methods(results) == ["ocnb", "asteca"]
    assert list(peers.peer_table(results).columns) == V1_TABLE_COLUMNS
    assert list(peers.timing_table(results).columns) == V1_TIMING_COLUMNS
    s = peers.summarize(results)
    assert set(s) == {"per_param", "speed", "worse", "accuracy_ok", "speed_ok", "n_clusters"}
    assert set(s["per_param"]["a_v"]) == {
        "n", "median_absdiff_ocnb", "median_absdiff_asteca", "coverage_ocnb", "coverage_asteca",
        "n_covered_ocnb", "n_covered_asteca", "ocnb_worse",
    }
    assert set(s["speed"]) == {
        "n", "target", "median_ratio_fit", "min_ratio_fit", "n_at_least_target", "median_ratio_process",
        "median_fit_s_ocnb", "median_fit_s_asteca",
    }
    # the mode table of a schema-1 file: the same medians, ocnb against the one ASteCA setting
    mt = peers.mode_table(results)
    assert list(mt.columns) == ["clusters", "ocnb", "ASteCA", "better ASteCA", "ocnb no worse?"]
    assert mt.loc["log age [dex]", "ocnb"] == "0.075 (2/2)" and mt.loc["log age [dex]", "ocnb no worse?"] == "yes"
    assert mt.loc["A_V [mag]", "ocnb no worse?"] == "no"
    # the method-wise summary of the same two methods gives issue 9's numbers
    s2 = peers.summarize(results, methods=("ocnb", "asteca"))
    for k in PARAMS:
        for key in ("n", "median_absdiff_ocnb", "median_absdiff_asteca", "n_covered_ocnb", "n_covered_asteca"):
            assert s2["per_param"][k][key] == s["per_param"][k][key]
        assert s2["per_param"][k]["ocnb_no_worse"] is not s["per_param"][k]["ocnb_worse"]


# ---------------------------------------------------------------------------
# schema 2 (issue 14): ocnb fast / refined, ASteCA issue-9 / wide priors
# ---------------------------------------------------------------------------
LIT = {"log_age": 9.0, "feh": 0.0, "a_v": 0.2, "dist_mod": 10.0}


def _off(d: float) -> dict:
    """p50 off the literature by ``d`` on every parameter."""
    return {k: v + d for k, v in LIT.items()}


@pytest.fixture
def results2() -> dict:
    """Three clusters, four methods. |Δ| per cluster (every parameter): fast 0.30, 0.20, 0.40;
    refined 0.05, 0.10, 0.15; ASteCA issue-9 0.20, 0.30, 0.60; wide 0.10, 0.20, 0.30.
    Fit times [s]: fast 0.01, refined 0.5, ASteCA issue-9 10, wide 20."""
    offs = {"ocnb_fast": (0.30, 0.20, 0.40), "ocnb_refined": (0.05, 0.10, 0.15),
            "asteca_issue9": (0.20, 0.30, 0.60), "asteca_wide": (0.10, 0.20, 0.30)}
    fit = {"ocnb_fast": 0.01, "ocnb_refined": 0.5, "asteca_issue9": 10.0, "asteca_wide": 20.0}
    clusters = []
    for i in range(3):
        rec = {"cluster": f"C{i}", "label": f"C{i}", "source": "almeida", "ocnb_bands": "gaia",
               "n_stars_cmd": 300, "literature": _lit(LIT)}
        for m, o in offs.items():
            half = 0.12 if m.startswith("ocnb") else 0.25
            extra = {"quality": "gold", "low_quality": False} if m.startswith("ocnb") else {
                "seed_sd": dict.fromkeys(PARAMS, 0.03), "runs": [{"status": "ok", "seed": 1}]}
            rec[m] = _est(_off(o[i]), half=half, fit_s=fit[m], **extra)
        rec["ocnb"], rec["asteca"] = rec["ocnb_refined"], rec["asteca_issue9"]
        clusters.append(rec)
    return {
        "schema": 2,
        "created": "2026-12-01T00:00:00",
        "machine": {"cores": 2},
        "settings": {
            "priors": {"loga": [7, 10.15], "dm": [7.0, 14.5]},
            "asteca_settings": {"asteca_issue9": {"label": "issue-9 priors"},
                                "asteca_wide": {"label": "wide priors (dMod 2–14.5)"}},
        },
        "peer": {"status": "ok"},
        "clusters": clusters,
    }


def test_schema2_methods_table_and_summary(results2):
    assert peers.methods(results2) == list(peers.METHODS_V2)
    tab = peers.peer_table(results2)
    assert len(tab) == 3 * 4
    for m in peers.METHODS_V2:
        assert {f"{m}_p50", f"{m}_absdiff", f"{m}_covers", f"{m}_ok"} <= set(tab.columns)
    assert "ocnb_refined_low_quality" in tab and "asteca_wide_seed_sd" in tab and "ocnb_p50" not in tab
    row = tab[(tab.cluster == "C2") & (tab.parameter == "dist_mod")].iloc[0]
    assert row.ocnb_fast_absdiff == pytest.approx(0.40) and row.asteca_wide_absdiff == pytest.approx(0.30)
    assert (row.ocnb_refined_covers, row.asteca_wide_covers) == (False, False)  # 0.15 > 0.12, 0.30 > 0.25

    s = peers.summarize(results2)
    assert s["methods"] == list(peers.METHODS_V2) and s["main"] == "ocnb_refined"
    e = s["per_param"]["a_v"]
    assert e["n"] == 3
    assert e["median_absdiff_ocnb_fast"] == pytest.approx(0.30)
    assert e["median_absdiff_ocnb_refined"] == pytest.approx(0.10)
    assert e["median_absdiff_asteca_issue9"] == pytest.approx(0.30)
    assert e["median_absdiff_asteca_wide"] == pytest.approx(0.20)
    assert e["best_asteca"] == "asteca_wide" and e["median_absdiff_best_asteca"] == pytest.approx(0.20)
    assert e["ocnb_refined_no_worse"] is True and e["ocnb_fast_no_worse"] is False
    # coverage: refined 2/3 (0.05, 0.10 ≤ 0.12), ASteCA issue-9 1/3 (0.20), wide 2/3 (0.10, 0.20)
    assert (e["n_covered_ocnb_refined"], e["n_covered_asteca_issue9"], e["n_covered_asteca_wide"]) == (2, 1, 2)
    assert e["ocnb_refined_covers_no_less"] is True
    assert s["accuracy_ok"] is True and s["coverage_ok"] is True and s["worse"] == []
    assert s["verdicts"]["accuracy"] == {"ocnb_fast": False, "ocnb_refined": True}
    # speed against the FASTER ASteCA setting (issue-9, 10 s): fast 1000× ≥ 100, refined 20× ≥ 10
    assert s["speed"]["ocnb_fast"]["median_ratio_fit"] == pytest.approx(1000.0)
    assert s["speed"]["ocnb_refined"]["median_ratio_fit"] == pytest.approx(20.0)
    assert s["speed"]["ocnb_refined"]["target"] == 10.0 and s["speed_ok"] is True
    assert s["speed"]["asteca_wide"]["median_fit_s"] == pytest.approx(20.0)
    tim = peers.timing_table(results2)
    assert list(tim.asteca_ref) == ["asteca_issue9"] * 3
    assert tim.ratio_fit_ocnb_refined.tolist() == pytest.approx([20.0] * 3)
    # the per-parameter dict is flat: one row per parameter as a DataFrame
    import pandas as pd

    assert pd.DataFrame(s["per_param"]).T.shape[0] == 4


def test_schema2_verdicts_flip_when_the_numbers_do(results2):
    # refined's A_V drifts to |Δ| 0.25 everywhere: worse than the wide setting's median 0.20
    for rec in results2["clusters"]:
        rec["ocnb_refined"]["p50"]["a_v"] = LIT["a_v"] + 0.25
    s = peers.summarize(results2)
    assert s["per_param"]["a_v"]["ocnb_refined_no_worse"] is False
    assert s["worse"] == ["a_v"] and s["accuracy_ok"] is False
    assert peers.mode_table(results2).loc["A_V [mag]", "ocnb refined no worse?"] == "no"
    # ... the better ASteCA setting now loses its edge: issue-9 becomes the better one, and worse than refined
    for rec in results2["clusters"]:
        rec["asteca_wide"]["p50"]["a_v"] = LIT["a_v"] + 0.9
        rec["asteca_issue9"]["p50"]["a_v"] = LIT["a_v"] + 0.4
    s = peers.summarize(results2)
    assert s["per_param"]["a_v"]["best_asteca"] == "asteca_issue9"
    assert s["per_param"]["a_v"]["ocnb_refined_no_worse"] is True and s["accuracy_ok"] is True
    # equal medians count as "no worse"
    for rec in results2["clusters"]:
        rec["asteca_issue9"]["p50"]["a_v"] = LIT["a_v"] + 0.25
    assert peers.summarize(results2)["per_param"]["a_v"]["ocnb_refined_no_worse"] is True
    # speed: the refined fit slows to 2 s -> 5× < 10×
    for rec in results2["clusters"]:
        rec["ocnb_refined"]["fit_s"] = 2.0
    s = peers.summarize(results2)
    assert s["verdicts"]["speed"] == {"ocnb_fast": True, "ocnb_refined": False} and s["speed_ok"] is False


def test_schema2_a_method_that_did_not_run_is_excluded_per_cluster(results2):
    # ASteCA wide failed on C2 (its record still holds numbers: they must not be used)
    results2["clusters"][2]["asteca_wide"]["status"] = "failed"
    tab = peers.peer_table(results2)
    c2 = tab[tab.cluster == "C2"]
    assert not c2.asteca_wide_ok.any() and c2.asteca_wide_p50.isna().all()
    s = peers.summarize(results2)
    e = s["per_param"]["log_age"]
    assert e["n"] == 2  # the SAME clusters for every method
    assert e["median_absdiff_ocnb_refined"] == pytest.approx(0.075)
    assert e["median_absdiff_asteca_wide"] == pytest.approx(0.15)
    assert peers.timing_table(results2).asteca_wide_fit_s.isna().tolist() == [False, False, True]
    # skipped on every cluster: the method leaves the comparison instead of emptying it
    for rec in results2["clusters"]:
        rec["asteca_wide"] = {"status": "skipped", "message": "not requested (--asteca-settings)"}
    assert peers.methods(results2) == ["ocnb_fast", "ocnb_refined", "asteca_issue9"]
    s = peers.summarize(results2)
    assert s["per_param"]["log_age"]["n"] == 3 and s["per_param"]["log_age"]["best_asteca"] == "asteca_issue9"
    assert "ASteCA, wide priors" not in peers.mode_table(results2).columns


def test_schema2_in_prior_subset_and_legacy_view(results2):
    results2["clusters"][1]["literature"]["dist_mod"]["mean"] = 5.6  # a nearby cluster
    for m in peers.METHODS_V2:
        results2["clusters"][1][m]["p50"]["dist_mod"] = 5.6 + {"ocnb_fast": 0.2}.get(m, 0.1)
    s_in = peers.summarize(results2, in_prior_only=True)
    assert s_in["n_clusters"] == 2 and s_in["per_param"]["log_age"]["n"] == 2
    assert s_in["per_param"]["log_age"]["median_absdiff_ocnb_refined"] == pytest.approx(0.10)
    assert "inside ASteCA's priors" in peers.mode_table(results2, in_prior_only=True).columns.name
    # the aliases give issue 9's two-method view of a new file
    legacy = peers.summarize(results2, methods=("ocnb", "asteca"))
    assert legacy["methods"] == ["ocnb", "asteca"] and legacy["per_param"]["feh"]["ocnb_no_worse"] is True
    assert list(peers.peer_table(results2, methods="ocnb_fast").columns[6:9]) == [
        "ocnb_fast_p16", "ocnb_fast_p50", "ocnb_fast_p84"]


def test_schema2_mode_table(results2):
    mt = peers.mode_table(results2)
    assert list(mt.index) == ["log age [dex]", "[Fe/H] [dex]", "A_V [mag]", "dMod [mag]"]
    assert list(mt.columns) == ["clusters", "ocnb fast", "ocnb refined", "ASteCA, issue-9 priors",
                                "ASteCA, wide priors", "better ASteCA", "ocnb refined no worse?"]
    assert mt.loc["dMod [mag]", "ocnb refined"] == "0.100 (2/3)"
    assert mt.loc["dMod [mag]", "ASteCA, issue-9 priors"] == "0.300 (1/3)"
    assert mt.loc["dMod [mag]", "better ASteCA"] == "wide priors"
    assert (mt.clusters == 3).all() and (mt["ocnb refined no worse?"] == "yes").all()


def test_real_schema2_file_from_a_quick_run():
    """A trimmed schema-2 file written by the benchmark (M67, --quick): read, not built by hand."""
    from pathlib import Path

    res = peers.load_peer_results(Path(__file__).parents[1] / "data" / "peers" / "asteca_vs_ocnb_schema2_m67.json")
    assert peers.methods(res) == list(peers.METHODS_V2)
    s = peers.summarize(res)
    e = s["per_param"]["log_age"]
    # refined |9.5151 − 9.458| = 0.0571 against ASteCA wide |9.4886 − 9.458| = 0.0306
    assert e["median_absdiff_ocnb_refined"] == pytest.approx(0.0571, abs=2e-4)
    assert e["best_asteca"] == "asteca_wide" and e["median_absdiff_asteca_wide"] == pytest.approx(0.0306, abs=2e-4)
    assert e["ocnb_refined_no_worse"] is False and s["per_param"]["feh"]["ocnb_refined_no_worse"] is True
    assert s["accuracy_ok"] is False and s["worse"] == ["log_age", "dist_mod"]
    assert peers.method_label(res, "asteca_wide") == "ASteCA, wide priors (dMod 2–14.5)"


def _overlapping_tick_labels(fig) -> list[str]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bad = []
    for i, ax in enumerate(fig.axes):
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            bad += [f"axes {i}: {a} / {b}" for a, b in itertools.pairwise(boxes) if a.overlaps(b)]
    return bad


def test_plot_schema2(results2, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    fig = peers.plot_peer_comparison(results2)
    assert len(fig.axes) == 5
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["ocnb fast", "ocnb refined"]
    ax = fig.axes[2]
    assert "A_V" in ax.get_title() and "✓" in ax.get_title()
    assert ax.get_xlabel() == "|ASteCA (wide priors) − lit.| [mag]" and "[mag]" in ax.get_ylabel()
    assert fig.axes[4].get_yscale() == "log" and "[s]" in fig.axes[4].get_ylabel()
    assert len(fig.axes[0].collections) >= 3  # joining lines, fast and refined points
    assert _overlapping_tick_labels(fig) == []
    fig.savefig(tmp_path / "peers.png", dpi=80)
    assert (tmp_path / "peers.png").stat().st_size > 10_000
    # a full run's 26 clusters with long names: still no tick label running into the next
    import copy

    names = ["NGC 2451A", "Melotte 111", "Ruprecht 147", "alpha Per", "Stock 2", "NGC 6811"] * 5
    big = copy.deepcopy(results2)
    big["clusters"] = [{**copy.deepcopy(results2["clusters"][i % 3]), "cluster": f"X{i}", "label": names[i]}
                       for i in range(26)]
    assert _overlapping_tick_labels(peers.plot_peer_comparison(big)) == []
    # the verdict mark follows the numbers
    for rec in results2["clusters"]:
        rec["ocnb_refined"]["p50"]["a_v"] = LIT["a_v"] + 0.5
    assert "✗" in peers.plot_peer_comparison(results2).axes[2].get_title()


# Bad-input table of the schema-aware functions: (id, change the schema-2 results, call, error, regex)
BAD_SCHEMA2 = [
    ("not a dict", lambda r: None, peers.peer_table, TypeError, r"peer_table needs the results dict"),
    ("no clusters", lambda r: {"schema": 2, "settings": {}}, peers.summarize, ValueError,
     r"summarize: the results dict has no 'clusters' list"),
    ("clusters not a list", lambda r: {**r, "clusters": {}}, peers.methods, ValueError, r"no 'clusters' list"),
    ("unknown method", lambda r: r, lambda r: peers.summarize(r, methods=["ocnb_slow"]), ValueError,
     r"unknown method 'ocnb_slow'"),
    ("method not in file", lambda r: {**r, "clusters": [{k: v for k, v in c.items() if k != "asteca_wide"}
                                                      for c in r["clusters"]]},
     lambda r: peers.timing_table(r, methods=["asteca_wide"]), ValueError,
     r"method 'asteca_wide' is not in this results file"),
    ("no methods", lambda r: r, lambda r: peers.mode_table(r, methods=[]), ValueError, r"methods is empty"),
    ("no ASteCA to plot", lambda r: {**r, "clusters": [{**c, "asteca_issue9": {"status": "skipped"},
                                                         "asteca_wide": {"status": "skipped"}} for c in r["clusters"]]},
     lambda r: peers.plot_peer_comparison(r, methods=["ocnb_fast", "ocnb_refined"]), ValueError,
     r"no ASteCA method with an estimate"),
]


@pytest.mark.parametrize("name,change,call,error,pattern", BAD_SCHEMA2, ids=[r[0] for r in BAD_SCHEMA2])
def test_bad_schema2_input(results2, name, change, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(change(results2))


# Bad-input table of schema-2 files: (id, content, regex)
BAD_SCHEMA2_FILES = [
    ("no settings", {"schema": 2, "clusters": []}, r"not an asteca_vs_ocnb\.py results file \(no \['settings'\] key\)"),
    ("no clusters", {"schema": 2, "settings": {}}, r"\(no \['clusters'\] key\)"),
    ("newer schema", {"schema": 3, "clusters": [], "settings": {}}, r"results schema 3 is not one this ocnb reads"),
    ("schema a string", {"schema": "2", "clusters": [], "settings": {}}, r"results schema '2' is not one"),
]


@pytest.mark.parametrize("name,content,pattern", BAD_SCHEMA2_FILES, ids=[r[0] for r in BAD_SCHEMA2_FILES])
def test_bad_schema2_files(tmp_path, name, content, pattern):
    with pytest.raises(ValueError, match=pattern):
        peers.load_peer_results(_write(tmp_path, "r.json", json.dumps(content)))


def test_with_current_floors_rebuilds_only_the_refined_intervals(results2):
    from ocnb.cmd_ann.refine_calibration import literature_floors

    lit, _ = literature_floors()
    for rec in results2["clusters"]:
        r = rec["ocnb_refined"]
        r["mode"] = "refined"
        r["raw_p16"] = {k: v - 0.02 for k, v in r["p50"].items()}   # a narrow posterior ...
        r["raw_p84"] = {k: v + 0.03 for k, v in r["p50"].items()}
        r["refine"] = {"systematic_floor": {"log_age": 0.0, "feh": 0.05, "a_v": 0.0, "dist_mod": 0.0}}
    before = peers.summarize(results2)
    out = peers.with_current_floors(results2)
    assert "rebuilt with the current floors" in out["derived"] and "not rerun" in out["derived"]
    c0 = out["clusters"][0]["ocnb_refined"]
    p50 = c0["p50"]
    # ... widened by the literature floor (none on dMod) in quadrature with the run's own floor
    assert c0["p16"]["log_age"] == pytest.approx(p50["log_age"] - np.hypot(0.02, lit["log_age"]))
    assert c0["p84"]["feh"] == pytest.approx(p50["feh"] + np.hypot(0.03, np.hypot(0.05, lit["feh"])))
    assert c0["p16"]["dist_mod"] == pytest.approx(p50["dist_mod"] - 0.02)
    # estimates, other methods and the input are untouched
    assert out["clusters"][0]["asteca_wide"] == results2["clusters"][0]["asteca_wide"]
    assert results2["clusters"][0]["ocnb_refined"]["p16"]["log_age"] == pytest.approx(p50["log_age"] - 0.12)
    after = peers.summarize(out)
    for k in peers.PARAMS:
        assert after["per_param"][k]["median_absdiff_ocnb_refined"] == before["per_param"][k][
            "median_absdiff_ocnb_refined"]
    # log age: |Δ| 0.05, 0.10, 0.15 inside ±hypot(0.02, ~0.17): all three now covered
    assert after["per_param"]["log_age"]["n_covered_ocnb_refined"] == 3
