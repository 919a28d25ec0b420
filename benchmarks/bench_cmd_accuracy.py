"""Accuracy of the Cavallo estimator (notebook 01): held-out simulated clusters and real clusters.

* RMSE of p50 on 1000 held-out SIMULATED clusters, multi-band vs Gaia-only (baseline), Sect. 3.5;
* coverage of the calibrated 16–84 interval on the same clusters (target 0.68);
* median |ours − literature mean| over the shipped real clusters per parameter, beside the
  literature's own spread (median over clusters of the standard deviation between catalogues).

Uses the ``laptop`` preset (``fast`` with ``--fast``; those numbers only show the pipeline runs).
Trains on first use (≈ 10–12 min per model on 2 cores), cached in the data home afterwards.
"""

from __future__ import annotations

import numpy as np


def run(fast: bool = False) -> list[dict]:
    from ocnb.cmd_ann import (
        LABELS,
        LITERATURE_TOLERANCE,
        calibrated_coverage,
        compare_models,
        real_cluster_check,
        simulate_clusters,
        train_default,
    )
    from ocnb.datasets import literature_parameters

    preset = "fast" if fast else "laptop"
    multi, gaia = train_default(preset, "multi"), train_default(preset, "gaia")
    test = simulate_clusters(200 if fast else 1000, seed=2024, progress=False,
                             mass_function=multi.mass_function)
    rmse = compare_models({"multi": multi, "gaia": gaia}, test).pivot(index="label", columns="model", values="rmse")
    cov = calibrated_coverage(multi, test)
    records = [
        {
            "name": f"[{preset}] RMSE {k}, held-out simulated clusters ({len(test)})",
            "value": float(rmse.loc[k, "multi"]), "unit": "dex" if k in ("log_age", "feh") else "mag",
            "baseline_name": "Gaia-only model", "baseline_value": float(rmse.loc[k, "gaia"]),
            "ratio": float(rmse.loc[k, "gaia"] / rmse.loc[k, "multi"]),
            "target": "multi-band better than Gaia-only", "passed": bool(rmse.loc[k, "multi"] < rmse.loc[k, "gaia"]),
        }
        for k in LABELS
    ]
    for k in LABELS:
        c = float(cov.loc[k, "calibrated"])
        records.append({
            "name": f"[{preset}] coverage of the calibrated 16-84 interval, {k}", "value": c, "unit": "",
            "baseline_name": "raw ensemble spread", "baseline_value": float(cov.loc[k, "raw"]), "ratio": None,
            "target": "0.68 ± 0.07", "passed": abs(c - 0.68) <= 0.07,
        })
    check = real_cluster_check(multi, gaia)
    spread = {k: [] for k in LABELS}
    for name in check["name"]:
        lit = literature_parameters(name)
        for k in LABELS:
            v = lit[k].dropna().to_numpy(dtype=float) if k in lit else np.array([])
            if v.size >= 2:
                spread[k].append(np.std(v))
    for k in LABELS:
        d = check[f"d_{k}"].abs().dropna()
        value = float(np.median(d))
        records.append({
            "name": f"[{preset}] median |Δ {k}| vs literature mean, {len(d)} real clusters "
                    f"({int((d < LITERATURE_TOLERANCE[k]).sum())} within {LITERATURE_TOLERANCE[k]})",
            "value": value, "unit": "dex" if k in ("log_age", "feh") else "mag",
            "baseline_name": "spread between literature catalogues (median std)",
            "baseline_value": float(np.median(spread[k])) if spread[k] else None, "ratio": None,
            "target": f"< {LITERATURE_TOLERANCE[k]}", "passed": value < LITERATURE_TOLERANCE[k],
        })
    return records
