"""The benchmarks run (small sizes) and report well-formed records; their numbers go to RESULTS.md, not asserts."""

import importlib.util
import math
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))
KEYS = {"name", "value", "unit", "baseline_name", "baseline_value", "ratio", "target", "passed"}


@pytest.mark.parametrize("path", BENCH, ids=lambda p: p.stem)
def test_benchmark_runs(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    records = mod.run(fast=True)
    assert records
    for r in records:
        assert KEYS <= set(r), f"{path.name}: record lacks {KEYS - set(r)}"
        assert math.isfinite(r["value"]) and r["value"] > 0
        if r["ratio"] is not None:  # baseline / ocnb, from the raw measurements (the runner formats them)
            assert r["ratio"] == pytest.approx(r["baseline_value"] / r["value"], rel=1e-9)


def test_partial_run_keeps_the_other_rows_and_every_peer_section(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root))
    spec = importlib.util.spec_from_file_location("bench_runner", root / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    from benchmarks.peers import binaries_vs_sbi as b

    old = tmp_path / "RESULTS.md"
    old.write_text("# Benchmark results\n\n| benchmark | measurement |\n|---|---|\n"
                   "| alpha | a row |\n| beta | b row |\n\n"
                   "Wall time per benchmark file: bench_alpha 1.0 s, bench_beta 2.0 s\n\n"
                   f"{b.MD_START}\n| method | training |\n| ocnb | 1 s |\n{b.MD_END}\n\n"
                   "<!-- binaries-laptop:start -->\n## by hand\n<!-- binaries-laptop:end -->\n")
    rows, walls = run._kept_rows(old, {"bench_beta"})
    assert rows == ["| alpha | a row |"] and walls == ["bench_alpha 1.0 s"]
    monkeypatch.setattr(b, "DEFAULT_OUT", tmp_path / "missing.json")  # no results file: the section is kept
    assert run._binaries_section(old) == f"{b.MD_START}\n| method | training |\n| ocnb | 1 s |\n{b.MD_END}"
    assert run._recorded_section(old, "binaries-laptop") == ("<!-- binaries-laptop:start -->\n## by hand\n"
                                                             "<!-- binaries-laptop:end -->")
    assert run._recorded_section(old, "absent") is None
