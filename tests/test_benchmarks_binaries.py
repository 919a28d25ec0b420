"""benchmarks/peers/binaries_vs_sbi.py: verdicts and the RESULTS.md section from a result record, a clear
SKIPPED line when the sbi environment cannot be made, and (slow) the ocnb side end to end on a tiny budget.
Nothing here installs sbi or touches the network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import binaries_vs_sbi as bench  # noqa: E402


def record(cov68=0.69, cov95=0.95, ks=0.3, per_star=1e-4, dq=0.05):
    """A result record in the script's format (TEST FIXTURE numbers)."""
    return {"status": "ok", "train_s": 60.0, "per_star_s": per_star, "rank_c2st": 0.52,
            "coverage": {"68": {"mass_a": cov68, "q_drawn": cov68}, "95": {"mass_a": cov95, "q_drawn": cov95}},
            "ks_p": {"mass_a": ks, "q_drawn": ks}, "median_abs_mass_a": 0.01, "median_abs_q": dq}


def test_verdicts_follow_the_acceptance():
    v = bench.verdicts(record(), record(cov68=0.74, ks=0.001, per_star=1.5e-2, dq=0.06))
    assert all(ok for ok, _ in v.values()), v
    v = bench.verdicts(record(cov68=0.72, ks=0.005, per_star=2e-3, dq=0.07), record(per_star=1.5e-2, dq=0.06))
    assert not any(ok for ok, _ in v.values()), v
    assert v["sampling ≥ 10× faster than sbi"][1] == "8×"


def test_section_renders_both_methods_and_a_skip_message(tmp_path):
    res = {"date": "2026-12-07 12:00 UTC", "machine": {"cpu": "test CPU", "cores": 2}, "command": "x",
           "versions": {"keras_backend": "tensorflow", "bayesflow": "2.0.12"},
           "settings": {"n_train": 100, "n_test": 10, "n_samples": 50},
           "ocnb": record(), "sbi": {"status": "skipped", "message": "SKIPPED: no network"}}
    res["verdicts"] = bench.verdicts(res["ocnb"], res["sbi"])
    text = bench.render(res)
    assert text.startswith(bench.MD_START) and text.endswith(bench.MD_END)
    assert "SKIPPED: no network" in text and "| ocnb (BayesFlow NPE) | 60 s | 0.10 ms |" in text
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nkept\n")
    from benchmarks.peers.report import update_results_md

    update_results_md(md, text, bench.MD_START, bench.MD_END)
    update_results_md(md, text, bench.MD_START, bench.MD_END)  # replaced, not appended twice
    assert md.read_text().count(bench.MD_START) == 1 and "kept" in md.read_text()


def test_sbi_environment_failure_is_a_clear_skip(tmp_path):
    broken = tmp_path / "venv"
    broken.mkdir()
    (broken / "something").write_text("not a venv")
    rec = bench.run_sbi(None, None, None, None, {}, 10, 0, broken, 1, 200)
    assert rec["status"] == "skipped" and rec["message"].startswith("SKIPPED:") and "not a virtual environment" in \
        rec["message"]


@pytest.mark.slow
def test_ocnb_side_runs_end_to_end_on_a_tiny_budget(tmp_path):
    out = tmp_path / "res.json"
    assert bench.main(["--n-train", "3000", "--n-test", "20", "--n-samples", "100", "--epochs", "2",
                       "--skip-peer", "--out", str(out), "--results-md", ""]) == 0
    res = json.loads(out.read_text())
    assert res["ocnb"]["status"] == "ok" and res["sbi"]["status"] == "skipped"
    assert 0 <= res["ocnb"]["coverage"]["68"]["mass_a"] <= 1 and res["ocnb"]["per_star_s"] > 0
