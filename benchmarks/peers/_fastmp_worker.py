"""One fastMP run (ASteCA 0.7 ``Membership.fastmp``) on one cone; run by ``membership_vs_peers.py`` with the
peer interpreter (Python ≥ 3.12) in ASteCA's own virtual environment.

This file must import nothing from ocnb: it runs in ASteCA's venv. Data come and go through files:

* input: a CSV with columns ``ra, dec, G, e_G, plx, e_plx, pmra, e_pmra, pmde, e_pmde`` (one row per
  cone star, in the cone's order) and the centre (``--radec-c``, ``--pms-c``, ``--plx-c``; HUNT2023's);
* output: ``--out`` gets one column ``p`` (fastMP's membership probability per input row, same order),
  and stdout one line ``FASTMP_RESULT {json}``: ``N_cluster`` (ASteCA's own estimate, ``get_nmembers``,
  the Ripley-K method introduced with fastMP), the timings (``nmembers_s``: ``get_nmembers``;
  ``fastmp_s``: the ``fastmp`` call; ``fit_s``: the two together; ``import_s``), the seed and versions.

The call sequence follows ASteCA's membership tutorial: ``Cluster(ra, dec, mag, ..., pmde, e_pmde)``,
centre attributes ``radec_c``, ``pms_c``, ``plx_c`` set from the catalogue (kept fixed, fastMP's default
``fixed_centers=True``), ``get_nmembers()``, ``Membership(cluster).fastmp(seed=...)``; the probabilities
are then in ``cluster.probs``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import asteca  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

T_IMPORT = time.perf_counter()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stars", required=True, help="CSV: ra, dec, G, e_G, plx, e_plx, pmra, e_pmra, pmde, e_pmde")
    ap.add_argument("--out", required=True, help="CSV written with one column p (same row order)")
    ap.add_argument("--radec-c", required=True, help="JSON [ra, dec] of the centre [deg]")
    ap.add_argument("--pms-c", required=True, help="JSON [pmra, pmdec] of the centre [mas/yr]")
    ap.add_argument("--plx-c", type=float, required=True, help="parallax of the centre [mas]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n-runs", type=int, default=1000, help="fastMP's N_runs (its default, 1000)")
    ap.add_argument("--n-cluster", type=int, default=None,
                    help="fix N_cluster instead of ASteCA's own estimate (not used by the benchmark)")
    args = ap.parse_args(argv)

    df = pd.read_csv(args.stars)
    np.random.seed(args.seed)  # noqa: NPY002 - nothing in fastMP should use it; set for safety
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        cl = asteca.Cluster(
            ra=df["ra"].to_numpy(float),
            dec=df["dec"].to_numpy(float),
            mag=df["G"].to_numpy(float),
            e_mag=df["e_G"].to_numpy(float),
            plx=df["plx"].to_numpy(float),
            e_plx=df["e_plx"].to_numpy(float),
            pmra=df["pmra"].to_numpy(float),
            e_pmra=df["e_pmra"].to_numpy(float),
            pmde=df["pmde"].to_numpy(float),
            e_pmde=df["e_pmde"].to_numpy(float),
            verbose=0,
        )
        cl.radec_c = tuple(float(v) for v in json.loads(args.radec_c))
        cl.pms_c = tuple(float(v) for v in json.loads(args.pms_c))
        cl.plx_c = float(args.plx_c)
        t1 = time.perf_counter()
        if args.n_cluster is None:
            cl.get_nmembers()  # ASteCA's own N_cluster estimate (Ripley K; clipped to [25, 2000])
        else:
            cl.N_cluster = int(args.n_cluster)
        t2 = time.perf_counter()
        memb = asteca.Membership(cl)
        memb.fastmp(N_runs=args.n_runs, seed=args.seed)
        t3 = time.perf_counter()
    probs = np.asarray(cl.probs, dtype=float)
    if probs.shape != (len(df),):
        raise SystemExit(f"fastMP returned {probs.shape} probabilities for {len(df)} stars")
    pd.DataFrame({"p": probs}).to_csv(args.out, index=False, float_format="%.6g")
    out = {
        "status": "ok",
        "seed": args.seed,
        "n_stars": len(df),
        "N_cluster": int(cl.N_cluster),
        "N_cluster_source": "asteca get_nmembers (ripley)" if args.n_cluster is None else "given",
        "n_runs": args.n_runs,
        "radec_c": list(cl.radec_c),
        "pms_c": list(cl.pms_c),
        "plx_c": cl.plx_c,
        "cluster_s": t1 - t0,
        "nmembers_s": t2 - t1,
        "fastmp_s": t3 - t2,
        "fit_s": t3 - t1,
        "import_s": T_IMPORT - T0,
        "n_p_ge_0.5": int((probs >= 0.5).sum()),
        "warnings": sorted({str(w.message).splitlines()[0] for w in caught})[:10],
        "versions": {
            "asteca": getattr(asteca, "__version__", "?"),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": ".".join(map(str, sys.version_info[:3])),
        },
    }
    sys.stdout.write("FASTMP_RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
