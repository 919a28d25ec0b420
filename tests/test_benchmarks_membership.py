"""benchmarks/peers/membership_vs_peers.py, membership_report.py and bench_membership.py: the pure pieces
(projection, cluster picking, scoring, rendering), the clear skip of fastMP without Python ≥ 3.12, and the
FAST path of the speed benchmark through run.py. Nothing here installs ASteCA; the one test that runs the
fastMP worker is marked slow and needs an existing peer venv."""

from __future__ import annotations

import importlib.util
import json
import math
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
SCRIPT = PEERS / "membership_vs_peers.py"
WORKER = PEERS / "_fastmp_worker.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def mvp():
    from benchmarks.peers import membership_vs_peers as mod

    return mod


@pytest.fixture(scope="module")
def report():
    from benchmarks.peers import membership_report as mod

    return mod


def _fake_python(folder: Path, version: str) -> Path:
    """An executable that answers the version probe like a Python of ``version`` would."""
    path = folder / f"python-{version}"
    path.write_text(f"#!/bin/sh\necho {version.replace('.', ' ')}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------
def test_gnomonic_projection(mvp):
    x, y = mvp.gnomonic([10.0, 10.0, 12.0], [20.0, 21.0, 20.0], 10.0, 20.0)
    assert x[0] == pytest.approx(0.0, abs=1e-12) and y[0] == pytest.approx(0.0, abs=1e-12)
    # due north on the central meridian: ξ = 0, η = tan(1°) in degrees
    assert x[1] == pytest.approx(0.0, abs=1e-12) and y[1] == pytest.approx(np.degrees(np.tan(np.radians(1.0))))
    # east: ξ > 0, about ΔRA cos δ; η > 0 (great circles bend towards the pole)
    assert x[2] == pytest.approx(2.0 * np.cos(np.radians(20.0)), rel=2e-3) and 0 < y[2] < 0.05
    # RA wrap: 0.1° is east of 359.9°
    xw, _ = mvp.gnomonic([0.1], [-30.0], 359.9, -30.0)
    assert xw[0] == pytest.approx(0.2 * np.cos(np.radians(30.0)), rel=1e-3)
    with pytest.raises(ValueError, match=">= 90 deg"):
        mvp.gnomonic([190.0], [0.0], 10.0, 0.0)


def test_cone_centre_wraps_ra(mvp):
    rng = np.random.default_rng(0)
    ra = np.concatenate([rng.uniform(358.0, 360.0, 500), rng.uniform(0.0, 2.0, 500)])
    dec = rng.uniform(-31.0, -29.0, 1000)
    ra0, dec0 = mvp.cone_centre(ra, dec)
    assert min(ra0, 360.0 - ra0) < 0.2 and dec0 == pytest.approx(-30.0, abs=0.2)
    with pytest.raises(ValueError, match="not a cone"):
        mvp.cone_centre([0.0, 180.0], [0.0, 0.0])


# ---------------------------------------------------------------------------
# HDBSCAN: cluster picked by catalogue astrometry, never by the member list
# ---------------------------------------------------------------------------
CAT = {"catalog": "TEST", "ra": 50.0, "dec": 10.0, "pmra": 5.0, "pmdec": -3.0, "parallax": 2.0,
       "s_pmra": 0.2, "s_pmdec": 0.2, "s_parallax": 0.05, "r50": 0.2}


def _two_blob_cone(seed=1):
    """Field + a large blob far from the catalogue astrometry + a smaller blob at it (label 'b')."""
    rng = np.random.default_rng(seed)
    n_f, n_a, n_b = 1500, 300, 120
    part = np.repeat(["field", "a", "b"], [n_f, n_a, n_b])
    ra = np.concatenate([rng.uniform(48.5, 51.5, n_f), rng.normal(49.3, 0.15, n_a), rng.normal(50.0, 0.1, n_b)])
    dec = np.concatenate([rng.uniform(8.5, 11.5, n_f), rng.normal(10.6, 0.15, n_a), rng.normal(10.0, 0.1, n_b)])
    pmra = np.concatenate([rng.normal(0, 8, n_f), rng.normal(-2.0, 0.15, n_a), rng.normal(5.0, 0.15, n_b)])
    pmdec = np.concatenate([rng.normal(0, 8, n_f), rng.normal(4.0, 0.15, n_a), rng.normal(-3.0, 0.15, n_b)])
    plx = np.concatenate([rng.uniform(0.1, 4.0, n_f), rng.normal(1.0, 0.03, n_a), rng.normal(2.0, 0.03, n_b)])
    return pd.DataFrame({"ra": ra, "dec": dec, "pmra": pmra, "pmdec": pmdec, "parallax": plx}), part


def test_pick_cluster_uses_catalogue_astrometry(mvp):
    cone, part = _two_blob_cone()
    labels = np.where(part == "a", 0, np.where(part == "b", 1, -1))
    x, y = mvp.gnomonic(cone.ra, cone.dec, 50.0, 10.0)
    args = (x, y, cone.pmra.to_numpy(), cone.pmdec.to_numpy(), cone.parallax.to_numpy())
    label, table = mvp.pick_cluster(labels, *args, CAT, (0.0, 0.0))
    assert label == 1 and {r["label"] for r in table} == {0, 1}  # the smaller blob, the one at the catalogue
    far = dict(CAT, pmra=-2.0, pmdec=4.0, parallax=1.0, ra=49.3, dec=10.6)
    cx, cy = mvp.gnomonic([49.3], [10.6], 50.0, 10.0)
    assert mvp.pick_cluster(labels, *args, far, (cx[0], cy[0]))[0] == 0
    assert mvp.pick_cluster(np.full(len(cone), -1), *args, CAT, (0.0, 0.0)) == (None, [])


def test_run_hdbscan_on_two_blobs(mvp):
    cone, part = _two_blob_cone()
    res = mvp.run_hdbscan(cone, CAT, "leaf", repeats=1)
    assert res["status"] == "ok" and res["n_clusters_found"] >= 2
    sel = res["selected"]
    assert (sel & (part == "b")).sum() >= 0.9 * (part == "b").sum()
    assert (sel & (part == "a")).sum() == 0
    p = res["probability"]
    assert np.all(p[~sel] == 0) and np.all((p[sel] > 0) & (p[sel] <= 1)) and res["time_s"] > 0


# ---------------------------------------------------------------------------
# scoring and the truth
# ---------------------------------------------------------------------------
def test_score_counts_and_brier(mvp):
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.0, 0.0, 0.0])
    g = np.array([12, 13, 14, 15, 16, 17, 17.5, 19.0])  # the last star is fainter than G = 18: not scored
    s = mvp.score(p, truth, g)
    assert (s["n_selected"], s["n_true_positive"], s["n_missed"], s["n_scored"]) == (3, 2, 1, 7)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["brier"] == pytest.approx(np.mean((p[:7] - truth[:7]) ** 2))
    assert 0 <= s["ece"] <= 1 and sum(s["reliability"]["count"]) == 7
    hard = mvp.score(p, truth, g, selected=np.array([1, 1, 1, 1, 0, 0, 0, 0], bool))
    assert hard["recall"] == 1.0 and hard["precision"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        mvp.score(p + 0.5, truth, g)
    with pytest.raises(ValueError, match="shapes"):
        mvp.score(p[:3], truth, g)


def test_local_fallbacks_agree_with_the_package(mvp, monkeypatch):
    """The local cross-match and scores (used without ocnb.membership.evaluation) give the package's numbers."""
    from ocnb.datasets import load_field, load_members

    pytest.importorskip("ocnb.membership.evaluation", reason="ocnb.membership.evaluation not written yet")
    cone = load_field("blanco1").reset_index(drop=True)
    members = load_members("Blanco 1", source="almeida")
    mask, rows, info = mvp.truth_mask(cone, members)
    bright = members["phot_g_mean_mag"].to_numpy(float) < 18.0
    local_rows, local_info = mvp._local_crossmatch(cone, members[bright].reset_index(drop=True))
    assert np.array_equal(rows[bright], local_rows) and np.all(rows[~bright] == -1)
    assert info["matched_by_position"] == local_info["matched_by_position"] > 0
    assert info["n_in_cone"] == int(mask.sum()) >= 300
    training = pytest.importorskip("ocnb.membership.training")
    assert np.array_equal(mask, training.blanco1_members_truth(cone))  # the notebook's truth
    p = np.where(mask, 0.83, 0.0)  # values away from the bin edges
    p[np.flatnonzero(~mask)[:50]] = 0.64
    g = cone["phot_g_mean_mag"].to_numpy(float)
    pkg = mvp.score(p, mask, g)
    monkeypatch.setitem(sys.modules, "ocnb.membership.evaluation", None)  # import now fails -> local
    loc = mvp.score(p, mask, g)
    assert pkg["evaluator"] != loc["evaluator"] == "local"
    for k in ("precision", "recall", "f1", "brier", "ece"):
        assert loc[k] == pytest.approx(pkg[k], rel=1e-9, abs=1e-12), k


def test_ocnb_seeds_record_averages_seeds_and_scores_the_votes_separately(mvp):
    g = np.full(6, 15.0)
    truth = mvp.Truth(np.array([1, 1, 1, 0, 0, 0], bool), g, np.array([0, 1, 2]), np.array([0.9, 0.8, 0.7]))

    def run(seed, p, votes):
        return {"status": "ok", "probability": np.array(p, float), "probability_votes": np.array(votes, float),
                "model_seed": seed, "time_s": 0.1 * (seed + 1), "load_s": 0.05, "model": f"m{seed}",
                "calibrated": True, "n_candidates": 6}

    runs = [run(0, [0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0.4, 0.9, 0.9, 0.0, 0.0, 0.0]),
            run(1, [0.9, 0.9, 0.2, 0.6, 0.1, 0.1], [0.9, 0.9, 0.1, 0.6, 0.0, 0.0]),
            {"status": "not available", "message": "no model", "model_seed": 2}]
    rec = mvp.ocnb_seeds_record("ocnb-trained", runs, truth)
    assert rec["seeds"] == [0, 1] and [s["f1"] for s in rec["per_seed"]] == [1.0, pytest.approx(2 / 3)]
    assert rec["f1"] == pytest.approx((1 + 2 / 3) / 2) and rec["f1_range"] == [pytest.approx(2 / 3), 1.0]
    assert rec["time_s"] == pytest.approx(0.15) and rec["calibrated"] is True and "seed 2: no model" in rec["message"]
    assert "probability" not in rec and "probability_votes" not in rec
    votes = mvp.ocnb_seeds_record("ocnb-trained-votes", runs, truth, votes=True)
    assert [s["f1"] for s in votes["per_seed"]] == [pytest.approx(0.8), pytest.approx(2 / 3)]
    assert votes["calibrated"] is False and votes["name"].endswith("(vG23's vote fraction)")
    none = mvp.ocnb_seeds_record("ocnb-trained", runs[2:], truth)
    assert none["status"] == "not available"


def test_parse_methods(mvp):
    assert mvp.parse_methods("fastmp,hdbscan") == ["hdbscan-leaf", "hdbscan-eom", "fastmp"]
    assert mvp.parse_methods("ocnb-trained") == ["ocnb-trained", "ocnb-trained-votes"]
    with pytest.raises(SystemExit, match="unknown"):
        mvp.parse_methods("hdbscan,dbscan")


# ---------------------------------------------------------------------------
# fastMP: the clear skip, and the worker stays free of ocnb
# ---------------------------------------------------------------------------
def test_fastmp_skipped_without_python_312(mvp, tmp_path, capsys):
    out, md = tmp_path / "r.json", tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nkept\n")
    old = _fake_python(tmp_path, "3.11.9")
    rc = mvp.main(["--methods", "fastmp", "--python", str(old), "--out", str(out), "--results-md", str(md)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SKIPPED: fastMP (ASteCA) needs Python ≥ 3.12" in printed and "HDBSCAN and ocnb are still run" in printed
    res = json.loads(out.read_text())
    assert res["peer"]["status"] == "skipped" and str(old) in res["peer"]["message"]
    (rec,) = res["methods"]
    assert rec["method"] == "fastmp" and rec["status"] == "skipped" and rec["message"].startswith("SKIPPED")
    assert res["truth"]["n_in_cone"] >= 300 and res["settings"]["official"] is False
    text = md.read_text()
    assert text.startswith("# Benchmark results\n\nkept") and "**fastMP was not run:** SKIPPED" in text


def test_worker_imports_nothing_from_ocnb():
    import ast

    tree = ast.parse(WORKER.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "asteca" in names and not any(n.split(".")[0] in ("ocnb", "benchmarks") for n in names)
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--methods" in out.stdout


def _peer_venv_python() -> Path | None:
    from ocnb.config import data_home

    for venv in (data_home() / "peers" / "asteca-venv", Path.home() / ".ocnb_data" / "peers" / "asteca-venv"):
        if (venv / "bin" / "python").exists():
            return venv / "bin" / "python"
    return None


@pytest.mark.slow
def test_fastmp_worker_finds_a_synthetic_cluster(mvp, tmp_path):
    """The worker runs fastMP in an existing peer venv (made by the scripts; this test never installs it)."""
    from benchmarks.peers.asteca_vs_ocnb import probe_peer

    py = _peer_venv_python()
    if py is None or probe_peer(py) is None:
        pytest.skip("no ASteCA venv yet: run benchmarks/peers/membership_vs_peers.py --methods fastmp once")
    cone, part = _two_blob_cone(seed=3)
    rng = np.random.default_rng(4)
    n = len(cone)
    cone = cone.assign(phot_g_mean_mag=rng.uniform(10, 18, n), phot_g_mean_mag_error=np.full(n, 0.002),
                       parallax_error=np.full(n, 0.05), pmra_error=np.full(n, 0.08), pmdec_error=np.full(n, 0.08))
    runs = mvp.run_fastmp(cone, CAT, py, tmp_path, seeds=(1,))
    (r,) = runs
    assert r["status"] == "ok" and r["fastmp_s"] > 0 and r["N_cluster"] >= 25
    p = r["probability"]
    assert p.shape == (n,) and p[part == "b"].mean() > 0.5 and p[part == "a"].mean() < 0.1


# ---------------------------------------------------------------------------
# JSON -> markdown, RESULTS.md handling
# ---------------------------------------------------------------------------
def _method(key, name, f1, brier, status="ok", **extra):
    base = {"method": key, "name": name, "status": status, "members_by": "p >= 0.5", "precision": f1,
            "recall": f1, "f1": f1, "brier": brier, "ece": 0.01, "n_selected": 350, "spearman_published": 0.3,
            "time_s": 0.5}
    base.update(extra)
    return base


@pytest.fixture
def results() -> dict:
    return {
        "schema": 1, "created": "2026-12-07T04:00:00+00:00", "command": "x", "machine": {"description": "m"},
        "versions": {"ocnb": "0.1", "asteca": "0.7.0"},
        "settings": {"field": "blanco1", "n_stars": 14785, "release": "DR2", "g_max": 18.0,
                     "methods": ["hdbscan-leaf", "fastmp", "ocnb-trained"], "official": True},
        "truth": {"n_in_cone": 356, "n_published_g_lt_max": 412, "n_published": 564, "matched_by_id": 345,
                  "matched_by_position": 11, "max_sep_arcsec": 0.5, "max_delta_g": 0.3, "n_outside_cone": 56,
                  "crossmatch": "c"},
        "peer": {"status": "ok"},
        "methods": [
            _method("hdbscan-leaf", "HDBSCAN (leaf)", 0.94, 0.005, n_clusters_found=7, picked_label=0,
                    at_p_min={"precision": 0.96, "recall": 0.7, "f1": 0.81, "n_selected": 260}),
            _method("fastmp", "fastMP (ASteCA 0.7)", 0.967, 0.0015, f1_range=[0.96, 0.97], seeds=[1, 2, 3],
                    n_cluster_asteca=[369], fastmp_s=0.05, process_s=5.0),
            _method("ocnb-trained", "ocnb, trained here", 0.975, 0.0010, model="m", load_s=1.2, n_candidates=900),
        ],
        "quoted_in_issue": {"fastmp": {"precision": 0.944, "recall": 0.931, "f1": 0.938, "time_s": 0.02}},
        "wall_s": 60.0,
    }


def test_markdown_table_and_verdict(report, results):
    md = report.results_markdown(results)
    assert md.startswith(report.MD_START) and md.rstrip().endswith(report.MD_END)
    assert "| HDBSCAN (leaf) |" in md and "| fastMP (ASteCA 0.7) |" in md and "0.967 (0.960–0.970)" in md
    assert "356 of the 412 published members" in md and "p ≥ 0.5: P 0.960, R 0.700, F1 0.810" in md
    assert "F1 0.9750 vs best peer 0.9670 (fastMP (ASteCA 0.7)) — **met**" in md and "**not met**" not in md
    results["methods"][2].update(per_seed=[{"f1": 0.98, "brier": 0.001}, {"f1": 0.96, "brier": 0.0012}],
                                 seeds=[0, 1], calibrated=True)
    md = report.results_markdown(results)
    assert "trained models (mean of seeds [0, 1])" in md and "F1 per seed 0.980/0.960" in md
    assert "F1 above the best peer's for 1 of 2 model seeds (0.9800, 0.9600)" in md
    assert "Brier below for 2 of 2" in md and "calibrated (isotonic map" in md
    results["methods"][2]["brier"] = 0.002
    assert "Brier 0.00200 vs best peer 0.00150 (fastMP (ASteCA 0.7)) — **not met**" in report.results_markdown(results)
    results["methods"][2] = {"method": "ocnb-trained", "name": "ocnb, trained here", "status": "not available",
                             "message": "not available: ModuleNotFoundError: No module named 'x'"}
    md = report.results_markdown(results)
    assert "**not judged**" in md and "not available: ModuleNotFoundError" in md
    results["peer"] = {"status": "skipped", "message": "SKIPPED: fastMP (ASteCA) needs Python ≥ 3.12; none found"}
    assert "**fastMP was not run:** SKIPPED" in report.results_markdown(results)


def test_update_results_md_replaces_only_its_section(tmp_path, report, results):
    from benchmarks.peers import report as asteca_report

    md = tmp_path / "RESULTS.md"
    other = f"{asteca_report.MD_START}\nasteca table\n{asteca_report.MD_END}"
    md.write_text(f"# Benchmark results\n\n| a |\n\n{other}\n")
    report.update_results_md(md, report.results_markdown(results))
    results["created"] = "2027-01-01T00:00:00"
    report.update_results_md(md, report.results_markdown(results))
    text = md.read_text()
    assert text.count(report.MD_START) == 1 and "2027-01-01" in text and "2026-12-07" not in text
    assert other in text and text.startswith("# Benchmark results\n\n| a |")
    assert report.existing_section(md).startswith(report.MD_START)
    assert report.existing_section(tmp_path / "absent.md") is None


def test_load_results_errors(tmp_path, report):
    with pytest.raises(FileNotFoundError, match=r"membership_vs_peers\.py"):
        report.load_results(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not a JSON results file"):
        report.load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"clusters": []}))
    with pytest.raises(ValueError, match="no 'methods' list"):
        report.load_results(tmp_path / "other.json")


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_py_keeps_the_membership_section(tmp_path, monkeypatch, report, results):
    run = _load(ROOT / "benchmarks" / "run.py", "bench_run_membership")
    old = tmp_path / "RESULTS.md"
    section = f"{report.MD_START}\nold membership table\n{report.MD_END}"
    old.write_text(f"# Benchmark results\n\n| x |\n\n{section}\n")
    monkeypatch.setattr(report, "default_results_path", lambda: tmp_path / "absent.json")
    assert run._membership_section(old) == section  # no results file: kept as it was
    (tmp_path / "broken.json").write_text("{")
    monkeypatch.setattr(report, "default_results_path", lambda: tmp_path / "broken.json")
    assert run._membership_section(old) == section  # unreadable: kept as well
    (tmp_path / "present.json").write_text(json.dumps(results))
    monkeypatch.setattr(report, "default_results_path", lambda: tmp_path / "present.json")
    rendered = run._membership_section(old)  # results file: re-rendered from it
    assert rendered.startswith(report.MD_START) and "2026-12-07" in rendered


def test_committed_results_render(report):
    """The committed JSON (when there is one) is a results file that renders."""
    if not report.default_results_path().is_file():
        pytest.skip("no committed benchmarks/peers/membership_vs_peers.json yet")
    md = report.results_markdown(report.load_default_results())
    assert md.startswith(report.MD_START) and "| fastMP" in md


# ---------------------------------------------------------------------------
# the speed benchmark's FAST path, as run.py --fast membership runs it
# ---------------------------------------------------------------------------
def _missing_api() -> str | None:
    """The first module bench_membership needs that does not exist (None: all there)."""
    for mod in ("ocnb.membership.features", "ocnb.membership.model", "ocnb.membership.probability"):
        if importlib.util.find_spec(mod) is None:
            return mod
    return None


def test_bench_membership_fast_path_via_run_py(capsys):
    missing = _missing_api()
    if missing:
        pytest.skip(f"bench_membership needs {missing}, which does not exist yet")
    run = _load(ROOT / "benchmarks" / "run.py", "bench_run_membership_fast")
    bench = _load(ROOT / "benchmarks" / "bench_membership.py", "bench_membership_tiling")
    run.main(["--fast", "membership"])  # exit status = targets met: timing-dependent, not asserted here
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "bench_membership |" in ln]
    assert len(lines) == 3
    assert "candidates × 100 draws" in lines[0] and "per-star loop" in lines[0]
    assert "compute floor of 10⁵ × 100 evaluations: 3.9 TFLOP" in lines[1] and "GFLOP/s" in lines[1]
    assert "training epoch" in lines[2]
    assert bench.flops_per_instance() == 387_200  # 10 rows x (13->64 + 4 x 64->64) + pooled rows + head
    assert 1 < bench.gemm_gflops(n_rows=4096, repeats=2) < 1e5
    prepared = bench._prepared()
    big = bench.tiled(prepared, 700)
    assert int(big.selection.is_candidate.sum()) == 700 and len(big.cone) == len(big.features)
    assert int(big.selection.is_train_member.sum()) == int(prepared.selection.is_train_member.sum())
    assert math.isfinite(float(np.asarray(big.features, float)[:700].sum()))
