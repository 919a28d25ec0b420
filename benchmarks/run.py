"""Run ocnb's benchmarks and write ``benchmarks/RESULTS.md``.

Each ``benchmarks/bench_*.py`` module defines ``run(fast: bool) -> list[dict]``
returning records with keys ``name, value, unit, baseline_name,
baseline_value, ratio, target, passed``: a measurement, a baseline measured in
the same run, their ratio and the issue's target.

Usage::

    .venv/bin/python benchmarks/run.py            # full sizes, writes RESULTS.md
    .venv/bin/python benchmarks/run.py --fast     # small sizes, prints only
    .venv/bin/python benchmarks/run.py isochrones # only bench_isochrones.py
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:.4g}"
    return f"{v} {unit}".strip()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('' where unknown)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu_model()}, "
            f"Python {platform.python_version()}")


def _peer_section(old: Path) -> str | None:
    """The ocnb-vs-ASteCA section (benchmarks/peers/asteca_vs_ocnb.py): re-rendered from its results
    file, or kept as it is in the old RESULTS.md when there is no (readable) results file."""
    from benchmarks.peers import report

    try:
        return report.results_markdown(report.load_default_results())
    except (FileNotFoundError, ValueError):
        return report.existing_section(old)


def _binaries_section(old: Path) -> str | None:
    """The ocnb-vs-sbi section (benchmarks/peers/binaries_vs_sbi.py): re-rendered from its results file, or
    kept as it is in the old RESULTS.md."""
    import json

    from benchmarks.peers import binaries_vs_sbi as b

    try:
        return b.render(json.loads(b.DEFAULT_OUT.read_text()))
    except (FileNotFoundError, ValueError, KeyError):
        text = old.read_text() if old.exists() else ""
        i, j = text.find(b.MD_START), text.find(b.MD_END)
        return text[i:j + len(b.MD_END)] if 0 <= i < j else None


#: Hand-recorded sections (results of scripts too long for this runner, e.g. benchmarks/binaries_*.py), kept
#: verbatim between ``<!-- KEY:start -->`` and ``<!-- KEY:end -->``.
RECORDED_SECTIONS = ("binaries-laptop",)


def _recorded_section(old: Path, key: str) -> str | None:
    text = old.read_text() if old.exists() else ""
    start, end = f"<!-- {key}:start", f"<!-- {key}:end -->"
    i, j = text.find(start), text.find(end)
    return text[i:j + len(end)] if 0 <= i < j else None


def _kept_rows(old: Path, rerun: set[str]) -> tuple[list[str], list[str]]:
    """Table rows and wall times of the benchmarks *not* in ``rerun`` (file stems), as the old RESULTS.md has them."""
    if not old.exists():
        return [], []
    names = {stem.removeprefix("bench_") for stem in rerun}
    rows, walls = [], []
    for line in old.read_text().split("<!-- peers:")[0].splitlines():  # the main table, not the peers' tables
        cells = [c.strip() for c in line.split("|")]
        if line.startswith("| ") and len(cells) > 2 and cells[1] not in names | {"benchmark"}:
            rows.append(line)
        elif line.startswith("Wall time per benchmark file: "):
            walls = [w for w in line.removeprefix("Wall time per benchmark file: ").split(", ")
                     if w.split(" ")[0] not in rerun]
    return rows, walls


def _membership_section(old: Path) -> str | None:
    """The membership peer section (benchmarks/peers/membership_vs_peers.py), kept the same way."""
    from benchmarks.peers import membership_report

    try:
        return membership_report.results_markdown(membership_report.load_default_results())
    except (FileNotFoundError, ValueError):
        return membership_report.existing_section(old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="benchmark names (file stems without bench_)")
    ap.add_argument("--fast", action="store_true", help="small sizes; do not write RESULTS.md")
    ap.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args(argv)

    files = sorted(HERE.glob("bench_*.py"))
    if args.only:
        files = [f for f in files if f.stem.removeprefix("bench_") in args.only]
    rows, sections = [], []
    for f in files:
        t0 = time.perf_counter()
        records = _load(f).run(fast=args.fast)
        wall = time.perf_counter() - t0
        sections.append((f.stem, wall))
        for r in records:
            rows.append({"bench": f.stem, **r})
            print(f"{f.stem:>18} | {r['name']}: {_fmt(r['value'], r['unit'])} "
                  f"(baseline {r.get('baseline_name')}: {_fmt(r.get('baseline_value'), r['unit'])}, "
                  f"ratio {_fmt(r.get('ratio'))}) target {r.get('target')} -> {'PASS' if r.get('passed') else 'FAIL'}")
    if args.fast:
        return 0 if all(r.get("passed") for r in rows) else 1

    lines = [
        "# Benchmark results",
        "",
        f"Measured by `benchmarks/run.py` on {_dt.date.today().isoformat()} — {machine()}.",
        "Each line is one run; ratio = baseline / ocnb (how many times faster ocnb is), both measured in that run.",
        "",
        "| benchmark | measurement | ocnb | baseline | baseline value | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # with names given, the other benchmarks' rows are kept from the old file (each row says what it measured)
    kept, kept_walls = _kept_rows(Path(args.output), {f.stem for f in files}) if args.only else ([], [])
    if kept:
        lines.insert(3, f"Only {', '.join(f.stem for f in files)} re-run on that date; the other rows are from "
                        "earlier runs of this file.")
    lines.extend(kept)
    lines.extend(
        f"| {r['bench'].removeprefix('bench_')} | {r['name']} | {_fmt(r['value'], r['unit'])} | "
        f"{r.get('baseline_name') or '—'} | {_fmt(r.get('baseline_value'), r['unit'])} | "
        f"{_fmt(r.get('ratio'))}{'×' if r.get('ratio') else ''} | {r.get('target') or '—'} | "
        f"{'yes' if r.get('passed') else '**no**'} |"
        for r in rows
    )
    lines += ["", "Wall time per benchmark file: " + ", ".join(kept_walls + [f"{n} {t:.1f} s" for n, t in sections]),
              ""]
    # read before the file is rewritten
    peers = [s for s in (_peer_section(Path(args.output)), _membership_section(Path(args.output)),
                         _binaries_section(Path(args.output)),
                         *(_recorded_section(Path(args.output), k) for k in RECORDED_SECTIONS)) if s]
    Path(args.output).write_text("\n".join(lines) + "".join(f"\n{s}\n" for s in peers))
    print(f"wrote {args.output}")
    return 0 if all(r.get("passed") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
