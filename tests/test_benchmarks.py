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
