"""ocnb.cmd_ann.peers: reading, summarising, rendering and plotting a (small, synthetic) peer-results file."""

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
                    seed_sd={k: 0.02 for k in PARAMS},
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


def test_default_path_is_the_committed_file(repo_root):
    assert peers.default_results_path() == repo_root / "benchmarks" / "peers" / "asteca_vs_ocnb.json"


def test_missing_file_names_path_and_command(tmp_path):
    missing = tmp_path / "nothing.json"
    with pytest.raises(FileNotFoundError) as err:
        peers.load_peer_results(missing)
    assert str(missing) in str(err.value) and "benchmarks/peers/asteca_vs_ocnb.py" in str(err.value)


def test_wrong_file_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not an asteca_vs_ocnb.py results file"):
        peers.load_peer_results(bad)


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


def test_markdown_states_where_ocnb_is_worse(results):
    md = peers.results_markdown(results)
    assert md.startswith(peers.MD_START) and md.rstrip().endswith(peers.MD_END)
    assert "**ocnb is worse than ASteCA on A_V**" in md
    assert "**ocnb is worse than ASteCA on log age**" not in md
    assert "| C0 | log age |" in md and "| C2 |" in md
    assert "C2, ASteCA: every seed failed: boom" in md
    assert "200×" in md  # per-cluster speed ratio


def test_update_results_md_replaces_only_the_section(tmp_path, results):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n| a | b |\n")
    peers.update_results_md(md, peers.results_markdown(results))
    first = md.read_text()
    assert first.startswith("# Benchmark results\n\n| a | b |") and first.count(peers.MD_START) == 1
    results["created"] = "2027-02-02T00:00:00"
    peers.update_results_md(md, peers.results_markdown(results))
    second = md.read_text()
    assert second.count(peers.MD_START) == 1 and "2027-02-02" in second and "2026-01-01" not in second
    assert peers.existing_section(md).startswith(peers.MD_START)


def test_plot(results_file):
    import matplotlib

    matplotlib.use("Agg")
    fig = peers.plot_peer_comparison(peers.load_peer_results(results_file))
    assert len(fig.axes) == 5
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
    md = peers.results_markdown(results)
    assert "left out: Nearby (dMod)" in md and "5.60 (" in md and " ‡ |" in md
