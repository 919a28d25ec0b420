"""ocnb.cmd_ann.peers: reading, summarising and plotting a (small, synthetic) peer-results file.

The RESULTS.md rendering lives in ``benchmarks/peers/report.py`` and is tested in
``tests/test_benchmarks_peers.py``."""

from __future__ import annotations

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
