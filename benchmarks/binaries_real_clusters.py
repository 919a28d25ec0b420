"""Issue-16 item 7: the iterative cluster fit of the `laptop` models on the real MALHOTRA2026 clusters shipped.

Run from the repository root: ``.venv/bin/python benchmarks/binaries_real_clusters.py [out.json]``.

Loads (or trains, about 26 min each on 2 cores) ``train_posterior("laptop", bands=...)`` for the three band
sets, then for each cluster: 20,000 posterior samples per member with the paper's fall-back order, the
two-round fit with [Fe/H] fixed to the MALHOTRA2026 value, and the cluster's log age, distance and A_V
beside MALHOTRA2026. M67 uses its Gaia + 2MASS + WISE list (``source="iso"``); the other clusters their
Gaia-only published lists (``source="almeida"``, Gaia EDR3) where one is shipped, else the ``auto`` list.
Prints one JSON line per cluster, then the medians of |Δ distance| / distance and |Δ A_V| over the
non-M67 clusters (acceptance: ≤ 3 % and ≤ 0.1 mag; M67: distance within 2 %, A_V within 0.05 mag, log age
within 0.1 dex). Writes everything to ``out.json`` (default ``binaries_real_clusters.json`` in the data home).
"""

import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ocnb import binaries as bn
from ocnb import datasets
from ocnb.config import data_home
from ocnb.errors import UnknownClusterError

CLUSTERS = ["M67", "Blanco 1", "Melotte 111", "NGC 1039", "NGC 2287", "NGC 2360", "NGC 6633", "NGC 6811",
            "NGC 752", "Ruprecht 147"]


def _members(name: str) -> pd.DataFrame:
    if name == "M67":
        return datasets.load_members(name, source="iso")
    try:
        return datasets.load_members(name, source="almeida")
    except UnknownClusterError:
        return datasets.load_members(name)


def main(out_path: Path) -> dict:
    models = {b: bn.train_posterior("laptop", bands=b, seed=0) for b in bn.FALLBACK_ORDER}
    ref = datasets.load_catalog("MALHOTRA2026").set_index("name")
    rows = []
    for name in CLUSTERS:
        key = "NGC 2682" if name == "M67" else name
        r = ref.loc[key]
        m = _members(name)
        t0 = time.perf_counter()
        post = bn.sample_posteriors(m, models, n_samples=20_000, seed=4, train_missing=False)
        fit = bn.fit_cluster(m, float(r["[Fe/H]"]), posteriors=post, progress=False)
        p = fit.params
        row = {
            "cluster": name, "source": m.attrs.get("source"), "n_members": len(m),
            "band_sets": pd.Series(post.band_set).value_counts().to_dict(),
            "statuses": pd.Series(post.status).value_counts().to_dict(),
            "seconds": time.perf_counter() - t0,
            "log_age": p["log_age"], "log_age_sigma": p["log_age_sigma"],
            "distance": p["distance"], "distance_sigma": p["distance_sigma"],
            "a_v": p["a_v"], "a_v_sigma": p["a_v_sigma"], "feh": p["feh"],
            "ref_log_age": float(r["logAge"]), "ref_distance": float(r["D"]), "ref_a_v": float(r["AV"]),
            "converged": {str(k): v for k, v in fit.converged.items()}, "flags": fit.flags,
        }
        row["d_log_age"] = row["log_age"] - row["ref_log_age"]
        row["rel_d_distance"] = row["distance"] / row["ref_distance"] - 1
        row["d_a_v"] = row["a_v"] - row["ref_a_v"]
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
        del post, fit
    df = pd.DataFrame(rows).set_index("cluster")
    others = df.drop(index="M67")
    summary = {
        "median_abs_rel_d_distance": float(others["rel_d_distance"].abs().median()),
        "median_abs_d_a_v": float(others["d_a_v"].abs().median()),
        "median_abs_d_log_age": float(others["d_log_age"].abs().median()),
        "m67": df.loc["M67", ["d_log_age", "rel_d_distance", "d_a_v"]].astype(float).to_dict(),
    }
    print(df[["n_members", "log_age", "ref_log_age", "distance", "ref_distance", "a_v", "ref_a_v",
              "rel_d_distance", "d_a_v"]].round(3).to_string())
    print(json.dumps(summary), flush=True)
    out = {"clusters": rows, "summary": summary}
    out_path.write_text(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else data_home() / "binaries_real_clusters.json")
