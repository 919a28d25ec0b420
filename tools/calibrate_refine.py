"""Measure the refinement's systematic floors on mismatched SIMULATED clusters and ship them.

Writes ``ocnb/cmd_ann/refine_floors.json`` (see :mod:`ocnb.cmd_ann.refine_calibration`).

Usage (repository root)::

    .venv/bin/python tools/calibrate_refine.py            # 80 clusters, seed 0 (~3 min on 2 cores)
    .venv/bin/python tools/calibrate_refine.py --n 16      # a quick look, printed, nothing written
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from ocnb.cmd_ann.refine_calibration import calibrate_refinement, floors_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=80, help="mismatched clusters (default 80)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="write the shipped table (default when --n ≥ 40)")
    ap.add_argument("--n-eff", type=float, default=None,
                    help="try another RefineSettings.n_eff (nothing is written unless it is the default)")
    args = ap.parse_args(argv)
    import dataclasses

    from ocnb.cmd_ann.refine import RefineSettings

    settings = RefineSettings(seed=args.seed)
    if args.n_eff is not None:
        settings = dataclasses.replace(settings, n_eff=args.n_eff)
    out = calibrate_refinement(args.n, args.seed, settings=settings)
    print(json.dumps({k: out[k] for k in ("floors", "coverage", "n", "n_used", "settings_digest")}, indent=1))
    if (args.write or args.n >= 40) and settings == RefineSettings(seed=args.seed):
        doc = {k: out[k] for k in ("floors", "coverage", "n", "n_used", "seed", "settings_digest", "mismatch")}
        doc["generated"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        doc["how"] = "tools/calibrate_refine.py (ocnb.cmd_ann.refine_calibration.calibrate_refinement)"
        path = floors_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, default=float)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the shipped table must be readable
        os.replace(tmp, path)  # atomic: a partial table is never read
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
