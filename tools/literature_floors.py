"""Measure the literature floors of the refined intervals and ship them.

Writes ``ocnb/cmd_ann/literature_floors.json`` (see :mod:`ocnb.cmd_ann.refine_calibration`): the median scatter
between published catalogues' fits of the same clusters, from the catalogues shipped in the package.

Usage (repository root)::

    .venv/bin/python tools/literature_floors.py              # clusters with >= 100 members (a few seconds)
    .venv/bin/python tools/literature_floors.py --print      # print only, nothing written
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from ocnb.cmd_ann.refine_calibration import literature_floors_path, measure_literature_floors

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-members", type=int, default=100, help="HUNT2023 N of the clusters used (default 100)")
    ap.add_argument("--print", action="store_true", help="print the table, write nothing")
    args = ap.parse_args(argv)
    table = measure_literature_floors(min_members=args.min_members)
    text = json.dumps(table, indent=1) + "\n"
    print(text)
    if args.print:
        return 0
    path = literature_floors_path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".literature_floors.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:  # written whole, then renamed: never a partial table
        fh.write(text)
    os.replace(tmp, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
