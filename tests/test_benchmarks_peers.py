"""benchmarks/peers/asteca_vs_ocnb.py: it starts, skips ASteCA clearly without Python ≥ 3.12, and runs the
ocnb side on one cluster. Nothing here installs ASteCA or touches the network (the one test that runs the
ASteCA worker is marked slow and needs an existing peer venv)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "peers" / "asteca_vs_ocnb.py"
WORKER = ROOT / "benchmarks" / "peers" / "_asteca_worker.py"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # the script's dataclass needs its module registered
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _load(SCRIPT, "asteca_vs_ocnb")


def _fake_python(folder: Path, version: str) -> Path:
    """An executable that answers the version probe like a Python of ``version`` would."""
    path = folder / f"python-{version}"
    path.write_text(f"#!/bin/sh\necho {version.replace('.', ' ')}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_script_starts(bench):
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--clusters" in out.stdout and "--quick" in out.stdout
    args = bench.parse_args([])
    assert args.seeds == 3 and args.preset == "laptop"
    assert bench.TUTORIAL == {"population": 100, "generations": 20, "min_epsilon": 0.01}
    assert bench.PRIORS == {"loga": (7.0, 10.15), "met": (-1.2, 0.3), "Av": (0.0, 3.0), "dm": (7.0, 14.5)}
    assert bench.OCNB_MODES == {"ocnb_fast": {"parallax": True}, "ocnb_refined": {"refine": True}}
    assert args.ocnb_seeds == [0] and args.ocnb_modes == ["fast", "refined"]
    assert args.asteca_settings == ["issue9", "wide"]


def test_prior_option_is_checked(bench):
    with pytest.raises(SystemExit, match="NAME must be one of"):
        bench.main(["--prior", "age", "7", "9", "--clusters", "M67"])
    with pytest.raises(SystemExit, match="inside the PARSEC grid"):
        bench.main(["--prior", "met", "-3", "0.3", "--clusters", "M67"])


def test_no_interpreter_gives_a_clear_skip(bench, tmp_path):
    path, msg = bench.find_peer_python(candidates=[])
    assert path is None and msg.startswith("SKIPPED: ASteCA needs Python ≥ 3.12; none found")
    old = _fake_python(tmp_path, "3.11.9")
    path, msg = bench.find_peer_python(candidates=[str(tmp_path / "missing"), str(old)])
    assert path is None and "SKIPPED" in msg and str(old) in msg and "--python" in msg
    new = _fake_python(tmp_path, "3.12.1")
    path, msg = bench.find_peer_python(candidates=[str(old), str(new)])
    assert path == str(new) and "3.12.1" in msg
    # an explicit --python is the only one tried
    path, msg = bench.find_peer_python(explicit=str(old))
    assert path is None and str(old) in msg


def test_candidates_follow_env(bench, tmp_path):
    (tmp_path / "pyenv" / "versions" / "3.12.4" / "bin").mkdir(parents=True)
    (tmp_path / "pyenv" / "versions" / "2.7.18").mkdir(parents=True)
    env = {
        "PATH": str(tmp_path / "empty"),
        "PYENV_ROOT": str(tmp_path / "pyenv"),
        bench.PEER_PYTHON_ENV: "/opt/custom/python3",
    }
    cands = bench.python_candidates(env)
    assert cands[0] == "/opt/custom/python3"
    assert str(tmp_path / "pyenv" / "versions" / "3.12.4" / "bin" / "python") in cands
    assert not any("2.7.18" in c for c in cands)


def test_failed_install_is_a_skip_not_a_crash(bench, tmp_path):
    broken = tmp_path / "python-broken"
    broken.write_text("#!/bin/sh\necho 'no venv module' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(bench.PeerUnavailable, match=r"^SKIPPED: could not create the ASteCA venv"):
        bench.ensure_peer_env(str(broken), tmp_path / "venv")


def test_gaia_cmd_table_error_fallbacks(bench):
    members = pd.DataFrame(
        {
            "phot_g_mean_mag": [12.0, 15.0, 17.0, np.nan],
            "phot_bp_mean_mag": [12.4, 15.6, 17.9, 18.0],
            "phot_rp_mean_mag": [11.5, 14.3, 16.0, 16.5],
            "phot_g_mean_mag_error": [0.001, 0.002, 0.003, 0.01],
            "phot_bp_mean_mag_error": [0.003, np.nan, np.nan, 0.01],
            "phot_rp_mean_mag_error": [0.004, np.nan, np.nan, 0.01],
            "dr2_bp_flux_over_error": [np.nan, 200.0, np.nan, np.nan],
            "dr2_rp_flux_over_error": [np.nan, 100.0, np.nan, np.nan],
        }
    )
    table, origins = bench.gaia_cmd_table(members)
    assert list(table.columns) == ["G", "e_G", "BP_RP", "e_BP_RP"] and len(table) == 3  # NaN G dropped
    assert origins == {"table": 1, "dr2_flux_over_error": 1, "error_model": 1}
    assert table.e_BP_RP[0] == pytest.approx(0.005)
    assert table.e_BP_RP[1] == pytest.approx(np.hypot(1.0857 / 200, 1.0857 / 100))
    assert np.all(np.isfinite(table.e_BP_RP)) and np.all(table.e_BP_RP > 0)


def test_pool_runs(bench):
    rng = np.random.default_rng(1)
    runs = []
    for seed, centre in ((1, 9.0), (2, 9.2)):
        x = rng.normal(centre, 0.05, 400)
        runs.append(
            {
                "status": "ok",
                "seed": seed,
                "particles": {"log_age": x.tolist()},
                "weights": [1.0] * 400,
                "p50": {"log_age": float(np.median(x))},
            }
        )
    runs.append({"status": "failed", "seed": 3, "message": "x"})
    pooled = bench.pool_runs(runs)
    assert pooled["p50"]["log_age"] == pytest.approx(9.1, abs=0.03)
    assert pooled["p16"]["log_age"] < 9.05 and pooled["p84"]["log_age"] > 9.15
    assert pooled["seed_sd"]["log_age"] == pytest.approx(
        np.std([runs[0]["p50"]["log_age"], runs[1]["p50"]["log_age"]], ddof=1)
    )


def test_cluster_jobs_and_literature(bench):
    jobs, left = bench.cluster_jobs()
    labels = [j.label for j in jobs]
    assert labels[:6] == ["M67", "Hyades", "Praesepe", "alpha Per", "Blanco 1", "Pleiades"]
    assert {"NGC 2360", "NGC 2243", "NGC 6253", "NGC 752", "Ruprecht 147"} <= set(labels)
    assert all(j.bands == "multi" for j in jobs[:6]) and all(j.bands == "gaia" for j in jobs[6:])
    assert all(j.n_members >= bench.MIN_MEMBERS for j in jobs) and left
    lit = bench.literature("M67")
    assert lit["feh"]["kind"] == "spectroscopic" and set(lit["feh"]["catalogs"]) <= {"SPINA2022", "DONOR2020"}
    assert set(lit["log_age"]["catalogs"]) == {"HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021"}
    assert 9.3 < lit["log_age"]["mean"] < 9.7


def test_run_skips_asteca_and_runs_ocnb_on_one_cluster(bench, tmp_path, capsys, monkeypatch):
    """The real ocnb (fast preset, real M67 members) through the script; ASteCA skipped clearly.

    Until ``estimate`` has issue 14's ``parallax=``/``refine=`` keywords, a thin wrapper stands in for
    them (the ANN result, mode and refine flags added) and the whole-process timing, which runs the
    real ``estimate`` in a fresh process, is left out."""
    from ocnb import cmd_ann

    real = cmd_ann.estimate
    shimmed = bool(bench.estimate_interface_missing(real))
    if shimmed:
        def estimate(members, model=None, name=None, *, parallax=True, refine=False, release=None, seed=0):
            est = real(members, model, name=name)
            est.mode = "refined" if refine else "fast"
            if refine:
                est.flags["refine"] = {"ess": 100.0, "n_samples": 100, "time_s": 0.0, "edge": [], "ppc_p": 0.5,
                                       "ok": True}
            return est

        monkeypatch.setitem(vars(cmd_ann), "estimate", estimate)
    out, md = tmp_path / "r.json", tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nkept\n")
    argv = ["--clusters", "M67", "--preset", "fast", "--ocnb-repeats", "1", "--python",
            str(tmp_path / "no-such-python"), "--out", str(out), "--results-md", str(md)]
    rc = bench.main(argv + (["--no-whole-process"] if shimmed else []))
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SKIPPED: ASteCA needs Python ≥ 3.12" in printed
    res = json.loads(out.read_text())
    assert res["peer"]["status"] == "skipped" and res["peer"]["message"].startswith("SKIPPED")
    (rec,) = res["clusters"]
    assert rec["label"] == "M67" and rec["asteca_issue9"]["status"] == "skipped"
    assert rec["asteca_wide"]["status"] == "skipped"
    for mode in ("ocnb_fast", "ocnb_refined"):
        ocnb = rec[mode]
        assert ocnb["status"] == "ok" and ocnb["model"] == "fast/multi" and ocnb["mode"] == mode[5:]
        assert all(math.isfinite(ocnb["p50"][k]) for k in ("log_age", "feh", "a_v", "dist_mod"))
        assert ocnb["fit_s"] > 0
        if not shimmed:
            assert ocnb["process_s"] > ocnb["fit_s"]
    assert isinstance(rec["ocnb_refined"]["refine"]["ess"], float)
    assert res["machine"]["cores"] == os.cpu_count() and res["versions"]["ocnb"]
    v = res["summary"]["verdicts"]
    assert v["accuracy"]["met"] is None and v["speed"]["met"] is None  # nothing to compare against
    text = md.read_text()
    assert text.startswith("# Benchmark results\n\nkept") and "**ASteCA was not run:** SKIPPED" in text


@pytest.fixture(scope="module")
def report():
    """benchmarks/peers/report.py, imported as the scripts import it (repository root on sys.path)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.peers import report as mod

    return mod


def test_run_py_keeps_the_peer_section(tmp_path, monkeypatch, report):
    run = _load(ROOT / "benchmarks" / "run.py", "bench_run")
    old = tmp_path / "RESULTS.md"
    section = f"{report.MD_START}\nold peer table\n{report.MD_END}"
    old.write_text(f"# Benchmark results\n\n| x |\n\n{section}\n")
    monkeypatch.setattr(report, "default_results_path", lambda: tmp_path / "absent.json")
    assert run._peer_section(old) == section  # no results file: kept as it was
    (tmp_path / "broken.json").write_text("{")
    monkeypatch.setattr(report, "default_results_path", lambda: tmp_path / "broken.json")
    assert run._peer_section(old) == section  # unreadable results file: kept as well
    results = {"created": "2026-05-05T00:00:00", "settings": {}, "peer": {"status": "ok"}, "clusters": []}
    (tmp_path / "present.json").write_text(json.dumps(results))
    monkeypatch.setattr(report, "default_results_path", lambda: tmp_path / "present.json")
    rendered = run._peer_section(old)  # results file: re-rendered from it
    assert rendered.startswith(report.MD_START) and "2026-05-05" in rendered


# ---------------------------------------------------------------------------
# report.py: the RESULTS.md section (moved out of the package, ocnb.cmd_ann.peers keeps the numbers)
# ---------------------------------------------------------------------------
PARAMS = ("log_age", "feh", "a_v", "dist_mod")


def _est(p50: dict, half: float = 0.1, **extra) -> dict:
    return {"status": "ok", "p16": {k: v - half for k, v in p50.items()}, "p50": dict(p50),
            "p84": {k: v + half for k, v in p50.items()}, **extra}


def _lit(vals: dict) -> dict:
    return {k: {"mean": v, "catalogs": {"HUNT2023": v - 0.01, "DIAS2021": v + 0.01}, "kind": "photometric"}
            for k, v in vals.items()}


@pytest.fixture
def results() -> dict:
    """Three clusters; ocnb is closer on log age and dMod, ASteCA on A_V; ASteCA fails on the third."""
    lit = {"log_age": 9.0, "feh": 0.0, "a_v": 0.2, "dist_mod": 10.0}
    clusters = []
    for i, (do, da) in enumerate([(0.05, 0.20), (0.10, 0.30)]):
        clusters.append({
            "cluster": f"C{i}", "label": f"C{i}", "source": "almeida", "ocnb_bands": "gaia", "n_stars_cmd": 300,
            "literature": _lit(lit),
            "ocnb": _est({"log_age": 9.0 + do, "feh": 0.0, "a_v": 0.2 + 0.3, "dist_mod": 10.0 - do},
                         fit_s=0.05, process_s=5.0, low_quality=(i == 1)),
            "asteca": _est({"log_age": 9.0 - da, "feh": 0.1, "a_v": 0.2 + 0.05, "dist_mod": 10.0 + da}, half=0.5,
                           fit_s=10.0 + i, process_s=12.0, seed_sd=dict.fromkeys(PARAMS, 0.02),
                           runs=[{"status": "ok", "seed": 1}, {"status": "ok", "seed": 2}]),
        })
    clusters.append({
        "cluster": "C2", "label": "C2", "source": "almeida", "ocnb_bands": "gaia", "n_stars_cmd": 60,
        "literature": _lit(lit), "ocnb": _est(lit, fit_s=0.04, process_s=5.0),
        "asteca": {"status": "failed", "message": "every seed failed: boom", "runs": []},
    })
    return {"schema": 1, "created": "2026-01-01T00:00:00", "command": "x", "machine": {"cores": 2, "description": "m"},
            "versions": {"ocnb": "0.1"}, "settings": {"seeds": [1, 2], "priors": {"loga": [7, 10.15]}},
            "peer": {"status": "ok"}, "clusters": clusters, "wall_s": 60.0}


def test_default_path_is_the_committed_file(report):
    assert report.default_results_path() == ROOT / "benchmarks" / "peers" / "asteca_vs_ocnb.json"
    res = report.load_default_results()
    md = report.results_markdown(res)
    assert md.startswith(report.MD_START) and md.rstrip().endswith(report.MD_END)


def test_markdown_states_where_ocnb_is_worse(report, results):
    md = report.results_markdown(results)
    assert md.startswith(report.MD_START) and md.rstrip().endswith(report.MD_END)
    assert "**ocnb is worse than ASteCA on A_V**" in md
    assert "**ocnb is worse than ASteCA on log age**" not in md
    assert "| C0 | log age |" in md and "| C2 |" in md
    assert "C2, ASteCA: every seed failed: boom" in md
    assert "200×" in md  # per-cluster speed ratio


def test_update_results_md_replaces_only_the_section(tmp_path, report, results):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\n| a | b |\n")
    report.update_results_md(md, report.results_markdown(results))
    first = md.read_text()
    assert first.startswith("# Benchmark results\n\n| a | b |") and first.count(report.MD_START) == 1
    results["created"] = "2027-02-02T00:00:00"
    report.update_results_md(md, report.results_markdown(results))
    second = md.read_text()
    assert second.count(report.MD_START) == 1 and "2027-02-02" in second and "2026-01-01" not in second
    assert report.existing_section(md).startswith(report.MD_START)
    assert report.existing_section(tmp_path / "absent.md") is None


def test_markdown_marks_clusters_outside_asteca_priors(report, results):
    results["settings"]["priors"] = {"loga": [7.0, 10.15], "dm": [7.0, 14.5]}
    near = results["clusters"][1]
    near["label"] = "Nearby"
    near["literature"]["dist_mod"]["mean"] = 5.6
    md = report.results_markdown(results)
    assert "left out: Nearby (dMod)" in md and "5.60 (" in md and " ‡ |" in md


def test_the_committed_section_is_what_report_renders(report):
    """RESULTS.md's peer section is the rendering of the committed JSON (so the move changed nothing)."""
    committed = report.existing_section(ROOT / "benchmarks" / "RESULTS.md")
    if committed is None:
        pytest.skip("RESULTS.md has no peer section")
    assert committed == report.results_markdown(report.load_default_results())


def _peer_venv_python() -> Path | None:
    from ocnb.config import data_home

    for venv in (data_home() / "peers" / "asteca-venv", Path.home() / ".ocnb_data" / "peers" / "asteca-venv"):
        if (venv / "bin" / "python").exists():
            return venv / "bin" / "python"
    return None


@pytest.mark.slow
def test_asteca_worker_fits_m67_quickly(bench, tmp_path):
    """The worker runs in an existing peer venv (made by the script; this test never installs it)."""
    py = _peer_venv_python()
    if py is None or bench.probe_peer(py) is None:
        pytest.skip("no ASteCA venv yet: run benchmarks/peers/asteca_vs_ocnb.py --quick once")
    from ocnb.datasets import load_members

    grid = bench.export_grid(tmp_path / "grid")
    assert len(list(grid.glob("parsec_mh*.dat"))) == 11
    table, _ = bench.gaia_cmd_table(load_members("M67", source="iso"))
    csv = tmp_path / "m67.csv"
    table.to_csv(csv, index=False)
    r = subprocess.run(
        [
            str(py),
            str(WORKER),
            "--grid",
            str(grid),
            "--members",
            str(csv),
            "--seed",
            "1",
            "--population",
            "30",
            "--generations",
            "4",
            "--priors",
            json.dumps(bench.PRIORS),
            "--max-mass",
            "11000",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=bench._clean_env(),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = bench._result_line(r.stdout, "ASTECA_RESULT")
    assert res["status"] == "ok" and res["n_generations"] == 4 and res["fit_s"] > 0
    assert 7.0 <= res["p50"]["log_age"] <= 10.15 and 7.0 <= res["p50"]["dist_mod"] <= 14.5
    assert len(res["particles"]["log_age"]) == len(res["weights"]) == 30


# ---------------------------------------------------------------------------
# issue 14: schema 2 — ocnb fast + refined, ASteCA with issue-9 and wide priors, acceptance verdicts
# ---------------------------------------------------------------------------
LIT14 = {"log_age": 9.0, "feh": 0.0, "a_v": 0.2, "dist_mod": 10.0}
CLUSTERS14 = ("C0", "C1", "C2", "Near")  # Near: literature dMod 5.6, outside issue 9's dMod prior 7–14.5
#: |p50 − literature| of each method per cluster (the same for every parameter unless a test changes it).
OFFSETS14 = {
    "ocnb_fast": (0.20, 0.20, 0.20, 0.20),  # median 0.20 (all), 0.20 (inside the priors)
    "ocnb_refined": (0.05, 0.10, 0.02, 0.04),  # median 0.045 (all), 0.05 (inside)
    "asteca_issue9": (0.03, 0.08, 0.01, 1.50),  # median 0.055 (all), 0.03 (inside)
    "asteca_wide": (0.06, 0.06, 0.06, 0.06),  # median 0.06 (all), 0.06 (inside)
}
HALF14 = {"ocnb_fast": 0.5, "ocnb_refined": 0.06, "asteca_issue9": 0.5, "asteca_wide": 0.01}
FIT14 = {"ocnb_fast": 0.02, "ocnb_refined": 0.5, "asteca_issue9": 8.0, "asteca_wide": 10.0}


def _est14(method: str, i: int, lit: dict, shift: float = 0.0) -> dict:
    p50 = {k: v + OFFSETS14[method][i] + shift for k, v in lit.items()}
    rec = _est(p50, half=HALF14[method], fit_s=FIT14[method], process_s=10 * FIT14[method])
    if method.startswith("ocnb"):
        rec.update(quality="gold", low_quality=False, mode=method[5:])
    if method == "ocnb_refined":
        rec["refine"] = {"ess": 412.0, "n_samples": 2000, "time_s": 0.4, "edge": [], "ppc_p": 0.31, "ok": True}
        rec["parallax"] = {"parallax": 1.15, "sigma": 0.011, "z": -0.4}
        rec["ood"] = {"flag": False}
    if method.startswith("asteca"):
        rec.update(seed_sd=dict.fromkeys(PARAMS, 0.02), runs=[{"status": "ok", "seed": 1}])
    return rec


def _results14(seed1_shift: float | None = 0.02) -> dict:
    clusters = []
    for i, name in enumerate(CLUSTERS14):
        lit = dict(LIT14, dist_mod=5.6 if name == "Near" else 10.0)
        rec = {"cluster": name, "label": name, "source": "almeida", "ocnb_bands": "gaia", "n_members": 200,
               "n_stars_cmd": 200, "literature": _lit(lit)}
        for m in OFFSETS14:
            rec[m] = _est14(m, i, lit)
        if seed1_shift is not None:
            rec["ocnb_by_seed"] = {"1": {m: _est14(m, i, lit, seed1_shift) for m in ("ocnb_fast", "ocnb_refined")}}
        rec["ocnb"], rec["asteca"] = rec["ocnb_refined"], rec["asteca_issue9"]
        clusters.append(rec)
    settings = {"seeds": [1, 2, 3], "ocnb_seeds": [0] if seed1_shift is None else [0, 1],
                "ocnb_modes": {"ocnb_fast": {"parallax": True}, "ocnb_refined": {"refine": True}},
                "priors": {"loga": [7.0, 10.15], "met": [-1.2, 0.3], "Av": [0.0, 3.0], "dm": [7.0, 14.5]},
                "asteca_settings": {"asteca_issue9": {"label": "issue-9 priors", "priors": {"dm": [7.0, 14.5]}},
                                    "asteca_wide": {"label": "wide", "priors": {"dm": [2.0, 14.5]}}}}
    return {"schema": 2, "created": "2026-06-01T00:00:00", "command": "x", "machine": {"cores": 2, "description": "m"},
            "versions": {"ocnb": "0.1"}, "settings": settings, "peer": {"status": "ok"}, "clusters": clusters,
            "wall_s": 120.0}


def test_compare_medians_over_both_sets(report):
    s = report.compare(_results14())
    assert s["all"]["n_clusters"] == 4 and s["in_prior"]["n_clusters"] == 3
    assert s["in_prior"]["clusters"] == ["C0", "C1", "C2"]
    for k in PARAMS:
        a, i = s["all"]["per_param"][k]["median_absdiff"], s["in_prior"]["per_param"][k]["median_absdiff"]
        assert a["ocnb_refined"] == pytest.approx(0.045) and i["ocnb_refined"] == pytest.approx(0.05)
        assert a["asteca_issue9"] == pytest.approx(0.055) and i["asteca_issue9"] == pytest.approx(0.03)
        assert a["asteca_wide"] == pytest.approx(0.06) and a["ocnb_fast"] == pytest.approx(0.20)
        assert s["all"]["per_param"][k]["n_covered"] == {"ocnb_fast": 4, "ocnb_refined": 3, "asteca_issue9": 3,
                                                          "asteca_wide": 0}


def test_verdicts_follow_the_issue_wording(report):
    v = report.verdicts(_results14())
    # all four clusters: refined 0.045 ≤ better ASteCA 0.055 (issue-9 priors) for every parameter
    assert v["accuracy"]["all"]["met"] is True
    assert v["accuracy"]["all"]["per_param"]["dist_mod"]["best_asteca"] == "asteca_issue9"
    # inside the issue-9 priors ASteCA (0.03) is better than refined (0.05): not met, so not met overall
    assert v["accuracy"]["in_prior"]["met"] is False and v["accuracy"]["met"] is False
    assert v["speed"]["ocnb_refined"]["median_ratio_fit"] == pytest.approx(16.0)  # 8 s (faster ASteCA) / 0.5 s
    assert v["speed"]["ocnb_fast"]["median_ratio_fit"] == pytest.approx(400.0)
    assert v["speed"]["met"] is True
    assert v["coverage"]["met"] is True and v["coverage"]["met_against"] == ["asteca_issue9", "asteca_wide"]
    assert v["stability"]["evaluated"] and v["stability"]["max_spread"] == pytest.approx(0.02)
    assert v["stability"]["met"] is True


@pytest.mark.parametrize(
    ("change", "criterion", "expected"),
    [
        # the refined fit slows to 1 s: 8 s / 1 s = 8× < 10×
        (lambda r: [c["ocnb_refined"].update(fit_s=1.0) for c in r["clusters"]], "speed", False),
        # the fast mode slows to 0.1 s: 80× < 100×
        (lambda r: [c["ocnb_fast"].update(fit_s=0.1) for c in r["clusters"]], "speed", False),
        # a narrow refined A_V interval: covers 0 of 4 where ASteCA issue-9 covers 3 of 4
        (lambda r: [c["ocnb_refined"]["p16"].update(a_v=c["ocnb_refined"]["p50"]["a_v"] - 1e-3)
                    or c["ocnb_refined"]["p84"].update(a_v=c["ocnb_refined"]["p50"]["a_v"] + 1e-3)
                    for c in r["clusters"]], "coverage", False),
        # second seed 0.05 worse on every cluster: spread 0.05 > 0.03
        (lambda r: [c["ocnb_by_seed"]["1"]["ocnb_refined"]["p50"].update(log_age=LIT14["log_age"] + 0.2)
                    for c in r["clusters"]], "stability", False),
        # refined better than ASteCA inside the priors too
        (lambda r: [c["ocnb_refined"]["p50"].update({k: v + 0.0 for k, v in c["ocnb_refined"]["p50"].items()})
                    or c["ocnb_refined"].update(p50=dict(LIT14, dist_mod=c["literature"]["dist_mod"]["mean"]))
                    for c in r["clusters"]], "accuracy", True),
    ],
)
def test_verdicts_flip_with_the_numbers(report, change, criterion, expected):
    res = _results14()
    change(res)
    assert report.verdicts(res)[criterion]["met"] is expected


def test_coverage_verdict_names_the_asteca_setting(report):
    res = _results14()
    for c in res["clusters"]:  # refined A_V interval shrinks to nothing: 0 covered
        c["ocnb_refined"]["p16"]["a_v"] = c["ocnb_refined"]["p84"]["a_v"] = c["ocnb_refined"]["p50"]["a_v"]
    cov = report.verdicts(res)["coverage"]
    # ASteCA issue-9 covers A_V 3 of 4 times, the wide setting 0 of 4: met against the wide setting only
    assert cov["met_against"] == ["asteca_wide"] and cov["met"] is False
    assert cov["by_setting"]["asteca_issue9"]["per_param"]["a_v"] == {"refined": 0, "asteca": 3, "n": 4}


def test_stability_needs_two_seeds(report):
    st = report.verdicts(_results14(seed1_shift=None))["stability"]
    assert st["evaluated"] is False and st["met"] is None
    assert any("Stability: not evaluated" in ln and "--ocnb-seeds 0 1" in ln
               for ln in report.verdict_lines(report.compare(_results14(seed1_shift=None))))


def test_medians_use_the_same_clusters_for_every_method(report):
    res = _results14()
    res["clusters"][3]["asteca_wide"] = {"status": "failed", "message": "every seed failed: boom", "runs": []}
    s = report.compare(res)
    e = s["all"]["per_param"]["log_age"]
    assert e["n"] == 3 and e["clusters"] == ["C0", "C1", "C2"]  # Near dropped for ALL methods, not only ASteCA
    assert e["median_absdiff"]["ocnb_refined"] == pytest.approx(0.05)


def test_a_method_not_run_is_left_out_not_fatal(report):
    res = _results14(seed1_shift=None)
    for c in res["clusters"]:
        c["asteca_wide"] = {"status": "skipped", "message": "not requested (--asteca-settings)"}
    s = report.compare(res)
    assert "asteca_wide" not in s["methods"] and s["all"]["per_param"]["feh"]["median_absdiff"]["asteca_wide"] is None
    v = s["verdicts"]
    assert v["accuracy"]["all"]["per_param"]["feh"]["best_asteca"] == "asteca_issue9"
    assert list(v["coverage"]["by_setting"]) == ["asteca_issue9"]
    # no ASteCA at all: accuracy, speed and coverage cannot be judged
    for c in res["clusters"]:
        c["asteca_issue9"] = {"status": "skipped", "message": "SKIPPED: no Python 3.12"}
    v = report.verdicts(res)
    assert v["accuracy"]["met"] is None and v["speed"]["met"] is None and v["coverage"]["met"] is None
    md = report.results_markdown(res)
    assert "— not evaluated" in md and "**met**" not in md


def test_markdown_v2_renders_the_verdicts_and_all_columns(report):
    res = _results14()
    md = report.results_markdown(res)
    assert md.startswith(report.MD_START) and md.rstrip().endswith(report.MD_END)
    acc_all = next(ln for ln in md.splitlines() if ln.startswith("- Accuracy, 4 clusters (all)"))
    acc_in = next(ln for ln in md.splitlines() if ln.startswith("- Accuracy, 3 clusters (inside"))
    assert acc_all.split("— ")[1].startswith("**met**") and acc_in.split("— ")[1].startswith("**not met**")
    assert "log age 0.045 vs 0.055 (ASteCA, issue-9 priors) ✓" in acc_all
    assert "refined fit 16× faster" in md and "fast-mode fit 400× faster" in md
    assert "Stability: refined median |Δ| of ocnb model seeds [0, 1] differ by at most 0.020" in md
    assert "| ocnb fast | ocnb refined | ASteCA issue-9 priors | ASteCA wide priors | literature |" in md
    assert "ESS 412/2000; PPC p 0.31" in md and "plx z -0.4, in distribution" in md
    assert "left out: Near (dMod)" in md and " ‡ |" in md
    # a worse run renders 'not met' on the same lines (never hard-coded)
    for c in res["clusters"]:
        c["ocnb_refined"]["fit_s"] = 5.0
    md2 = report.results_markdown(res)
    assert "refined fit 1.6× faster" in md2 and "target ≥ 10×) — **not met**" in md2


def test_schema1_files_render_as_before(report, results):
    """A schema-1 file (issue 9: one ocnb, one ASteCA) still gets issue 9's section."""
    md = report.results_markdown(results)
    assert "Issue-9 criteria" in md and "Issue-14 acceptance" not in md


# -- the script with a fake ocnb estimate and a fake ASteCA worker --------------------------------------------
def _fake_summary(offset: float) -> pd.DataFrame:
    p50 = pd.Series({"log_age": 9.5 + offset, "feh": 0.0, "a_v": 0.1 + offset, "dist_mod": 9.7 + offset})
    return pd.DataFrame({"mean": p50, "std": 0.1, "p16": p50 - 0.1, "p50": p50, "p84": p50 + 0.1,
                         "lo_cal": p50 - 0.15, "hi_cal": p50 + 0.15, "at_bound": False})


class _FakeEstimate:
    def __init__(self, refine: bool, seed: int):
        self.mode = "refined" if refine else "fast"
        self.summary = _fake_summary(0.01 * seed + (0.02 if refine else 0.0))
        self.quality_name = "silver"
        self.low_quality = False
        self.flags = {"reason": "", "low_quality": False, "parallax": {"z": np.float64(0.3)},
                      "ood": {"flag": np.bool_(False)}}
        if refine:
            self.flags["refine"] = {"ess": np.float64(350.0), "n_samples": 1000, "time_s": 0.01,
                                    "edge": [], "ppc_p": 0.4, "ok": True}


@pytest.fixture
def fake_ocnb(monkeypatch):
    """ocnb.cmd_ann.estimate / train_default replaced (issue 14's interface, no Keras): records the calls."""
    from ocnb import cmd_ann

    calls = []

    def train_default(preset=None, bands="multi", seed=0, **kw):
        return {"preset": preset, "bands": bands, "seed": seed}

    def estimate(members, model=None, name=None, *, parallax=True, refine=False, release=None, seed=0):
        calls.append({"name": name, "parallax": parallax, "refine": refine, "model_seed": model["seed"]})
        return _FakeEstimate(refine, model["seed"])

    # setitem on the module dict: monkeypatch.setattr would import Keras through the lazy __getattr__
    monkeypatch.setitem(vars(cmd_ann), "estimate", estimate)
    monkeypatch.setitem(vars(cmd_ann), "train_default", train_default)
    return calls


FAKE_WORKER = """#!{python}
import json, sys
a = sys.argv[2:]
arg = lambda k: a[a.index(k) + 1]
priors, seed = json.loads(arg("--priors")), int(arg("--seed"))
names = {{"loga": "log_age", "met": "feh", "Av": "a_v", "dm": "dist_mod"}}
out = {{"status": "ok", "seed": seed, "n_stars": 100, "p16": {{}}, "p50": {{}}, "p84": {{}}, "particles": {{}},
       "weights": [1.0, 1.0, 1.0], "fit_s": 2.0, "epsilon": 0.5, "ess": 3.0, "n_generations": 2,
       "priors": priors, "versions": {{"asteca": "fake", "pyabc": "fake"}}}}
for k, (lo, hi) in priors.items():
    mid = 0.5 * (lo + hi)
    out["particles"][names[k]] = [mid - 0.1, mid, mid + 0.1]
    out["p16"][names[k]], out["p50"][names[k]], out["p84"][names[k]] = mid - 0.1, mid, mid + 0.1
print("ASTECA_RESULT " + json.dumps(out))
"""


def test_run_ocnb_calls_both_modes_with_the_agreed_keywords(bench, fake_ocnb):
    jobs, _ = bench.cluster_jobs(["M67"])
    out = bench.run_ocnb(jobs, "laptop", repeats=2, whole_process=False, seed=0, refine_repeats=1)
    rec = out[jobs[0].cluster]
    fast = [c for c in fake_ocnb if not c["refine"]]
    refined = [c for c in fake_ocnb if c["refine"]]
    assert len(fast) == 3 and all(c["parallax"] is True for c in fast)  # warm-up + 2 timed
    assert len(refined) == 2  # warm-up + 1 timed (refine_repeats)
    assert rec["ocnb_fast"]["mode"] == "fast" and len(rec["ocnb_fast"]["fit_s_runs"]) == 2
    assert rec["ocnb_refined"]["refine"]["ess"] == 350.0 and rec["ocnb_refined"]["quality"] == "silver"
    assert rec["ocnb_refined"]["ood"] == {"flag": False} and json.dumps(rec)  # numpy flags made JSON-able
    assert rec["ocnb_refined"]["p50"]["log_age"] == pytest.approx(9.52)
    assert rec["ocnb_refined"]["p16"]["log_age"] == pytest.approx(9.37)  # the calibrated interval
    fake_ocnb.clear()
    bench.run_ocnb(jobs, "laptop", repeats=5, whole_process=True, seed=1, timed=False)
    assert len(fake_ocnb) == 2 and {c["model_seed"] for c in fake_ocnb} == {1}  # untimed: one call per mode


def test_ocnb_one_runs_the_requested_mode(bench, fake_ocnb, capsys):
    assert bench.ocnb_one("M67", "iso", "multi", "laptop", "ocnb_refined", 1) == 0
    res = bench._result_line(capsys.readouterr().out, "OCNB_RESULT")
    assert fake_ocnb == [{"name": "M67", "parallax": True, "refine": True, "model_seed": 1}]
    assert res["p50"]["log_age"] == pytest.approx(9.53) and res["fit_s"] >= 0


def test_old_estimate_stops_with_a_clear_message(bench, monkeypatch, capsys):
    from ocnb import cmd_ann

    def estimate(members, model=None, name=None):  # the issue-9 signature
        raise AssertionError("must not be called")

    monkeypatch.setitem(vars(cmd_ann), "estimate", estimate)
    assert bench.estimate_interface_missing() == ["parallax", "refine"]
    with pytest.raises(SystemExit) as err:
        bench.main(["--clusters", "M67", "--skip-peer", "--out", "/nonexistent/x.json"])
    assert err.value.code == 2
    printed = capsys.readouterr().out
    assert "has no parallax=, refine= keyword" in printed and "ocnb/cmd_ann/inference.py" in printed
    assert bench.estimate_interface_missing(lambda members, model=None, **kw: None) == []


def test_one_run_does_both_modes_and_both_asteca_settings(bench, report, fake_ocnb, monkeypatch, tmp_path, capsys):
    fake = tmp_path / "python-fake"
    fake.write_text(FAKE_WORKER.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(bench, "find_peer_python", lambda explicit=None: (str(fake), "peer interpreter: fake"))
    monkeypatch.setattr(bench, "ensure_peer_env", lambda base, venv: (fake, {"asteca": "fake", "pyabc": "fake"}))
    monkeypatch.setattr(bench, "export_grid", lambda dest: tmp_path)
    out, md = tmp_path / "r.json", tmp_path / "RESULTS.md"
    rc = bench.main(["--clusters", "M67", "--seeds", "2", "--ocnb-seeds", "0", "1", "--ocnb-repeats", "1",
                     "--no-whole-process", "--out", str(out), "--results-md", str(md)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["schema"] == 2 and res["settings"]["ocnb_seeds"] == [0, 1]
    assert res["settings"]["asteca_settings"]["asteca_wide"]["priors"]["dm"] == [2.0, 14.5]
    assert res["settings"]["priors"]["dm"] == [7.0, 14.5]  # the in-prior subset is judged on issue 9's priors
    (rec,) = res["clusters"]
    assert rec["ocnb_fast"]["mode"] == "fast" and rec["ocnb_refined"]["mode"] == "refined"
    assert rec["asteca_issue9"]["priors"]["dm"] == [7.0, 14.5] and rec["asteca_wide"]["priors"]["dm"] == [2.0, 14.5]
    assert rec["asteca_issue9"]["p50"]["dist_mod"] == pytest.approx(10.75)  # the fake worker: prior midpoint
    assert rec["asteca_wide"]["p50"]["dist_mod"] == pytest.approx(8.25)
    assert len(rec["asteca_wide"]["runs"]) == 2 and rec["asteca_wide"]["fit_s"] == 2.0
    assert rec["ocnb_by_seed"]["1"]["ocnb_refined"]["seed"] == 1
    assert rec["ocnb"] == rec["ocnb_refined"] and rec["asteca"] == rec["asteca_issue9"]  # aliases for peers.py
    assert res["summary"]["verdicts"] == json.loads(json.dumps(report.verdicts(res)))
    assert res["summary"]["verdicts"]["stability"]["max_spread"] == pytest.approx(0.01)
    text = md.read_text()
    assert "### Issue-14 acceptance" in text and "Stability: refined median" in text
    printed = capsys.readouterr().out
    assert "ASteCA (wide priors (dMod 2–14.5)) M67 seed 2" in printed and "Speed: refined fit" in printed


@pytest.mark.parametrize(
    ("argv", "official"),
    [
        ([], True),
        (["--ocnb-seeds", "0", "1"], True),
        (["--ocnb-repeats", "3", "--refine-repeats", "2"], True),
        (["--quick"], False),
        (["--clusters", "M67"], False),
        (["--seeds", "1"], False),
        (["--preset", "fast"], False),
        (["--skip-peer"], False),
        (["--prior", "dm", "1", "14.5"], False),
        (["--asteca-settings", "wide"], False),
        (["--ocnb-modes", "refined"], False),
        (["--ocnb-seeds", "1", "0"], False),
    ],
)
def test_only_the_full_run_writes_the_committed_results(bench, argv, official):
    assert bench.official_run(bench.parse_args(argv)) is official


def test_wide_priors(bench):
    assert bench.PRIORS_WIDE == {**bench.PRIORS, "dm": (2.0, 14.5)}
    assert bench.wide_priors(None) == bench.PRIORS_WIDE
    assert bench.wide_priors([("Av", "0", "4")])["Av"] == (0.0, 4.0)
    assert bench.PRIORS["dm"] == (7.0, 14.5)  # issue 9's setting untouched
