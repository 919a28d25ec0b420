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


def test_run_skips_asteca_and_runs_ocnb_on_one_cluster(bench, tmp_path, capsys):
    out, md = tmp_path / "r.json", tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nkept\n")
    rc = bench.main(
        [
            "--clusters",
            "M67",
            "--preset",
            "fast",
            "--ocnb-repeats",
            "1",
            "--python",
            str(tmp_path / "no-such-python"),
            "--out",
            str(out),
            "--results-md",
            str(md),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SKIPPED: ASteCA needs Python ≥ 3.12" in printed
    res = json.loads(out.read_text())
    assert res["peer"]["status"] == "skipped" and res["peer"]["message"].startswith("SKIPPED")
    (rec,) = res["clusters"]
    assert rec["label"] == "M67" and rec["asteca"]["status"] == "skipped"
    ocnb = rec["ocnb"]
    assert ocnb["status"] == "ok" and ocnb["model"] == "fast/multi"
    assert all(math.isfinite(ocnb["p50"][k]) for k in ("log_age", "feh", "a_v", "dist_mod"))
    assert ocnb["fit_s"] > 0 and ocnb["process_s"] > ocnb["fit_s"]
    assert res["machine"]["cores"] == os.cpu_count() and res["versions"]["ocnb"]
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
