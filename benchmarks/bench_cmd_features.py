"""Benchmark: QuadTree features of SIMULATED clusters (Cavallo et al. 2024, Sect. 3.1).

Timed: ``QuadTreeFeatures.transform`` of 50,000 synthetic clusters (three
CMDs × 63 QuadTree cuts + mean parallax = 190 features), i.e. the vectorised
:func:`ocnb.cmd_ann.features.quadtree_batch` on all clusters at once.

Baselines, measured in the same run on the first clusters and scaled to the
full count: (1) a per-cluster loop over the per-cluster reference
:func:`quadtree_cuts` (NumPy, three CMDs); (2) a straightforward recursive
pure-Python QuadTree (sorted() on every node) for CMD1. Both must give the
same numbers as the batch (checked). Target (issue): 50,000 clusters
featurised in seconds.
"""

from __future__ import annotations

import time

import numpy as np


def _reference_tree():
    """The test-suite's independent recursive QuadTree (one copy, kept in the tests)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tests" / "cmd_ann" / "test_features.py"
    spec = importlib.util.spec_from_file_location("_qt_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.brute_force


def run(fast: bool = False) -> list[dict]:
    from ocnb.cmd_ann.features import QuadTreeFeatures, cmd_masks, quadtree_batch, quadtree_cuts
    from ocnb.cmd_ann.simulate import simulate_clusters

    n = 1_000 if fast else 50_000
    n_loop = 100 if fast else 1_000
    n_brute = 10 if fast else 100
    sc = simulate_clusters(n, seed=1, progress=False)
    qf = QuadTreeFeatures().fit(sc)
    t0 = time.perf_counter()
    X = qf.transform(sc)
    t_vec = time.perf_counter() - t0

    # baseline 1: per-cluster loop over quadtree_cuts, three CMDs + mean parallax
    s = sc.stars
    masks = cmd_masks(s)
    f64 = {k: s[k].astype(np.float64) for k in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
                                                 "j_m", "h_m", "parallax")}
    xy = {"cmd1": (f64["phot_bp_mean_mag"] - f64["phot_rp_mean_mag"], f64["phot_g_mean_mag"]),
          "cmd2": (f64["phot_bp_mean_mag"] - f64["phot_rp_mean_mag"], f64["j_m"]),
          "cmd3": (f64["j_m"] - f64["h_m"], f64["j_m"])}
    t0 = time.perf_counter()
    rows = []
    for i in range(n_loop):
        a, b = sc.offsets[i], sc.offsets[i + 1]
        parts = []
        for c in ("cmd1", "cmd2", "cmd3"):
            m = masks[c][a:b]
            sx, sy = qf.scales_[c]
            parts.append(quadtree_cuts(xy[c][0][a:b][m] / sx, xy[c][1][a:b][m] / sy))
        parts.append([f64["parallax"][a:b].mean()])
        rows.append(np.concatenate(parts))
    t_loop = (time.perf_counter() - t0) * (n / n_loop)
    loop = np.array(rows)
    assert np.array_equal(loop[:, :189], X[:n_loop, :189])
    assert np.allclose(loop[:, 189], X[:n_loop, 189], rtol=1e-9)

    # baseline 2: pure-Python recursive QuadTree on CMD1 vs quadtree_batch on CMD1
    m1 = masks["cmd1"]
    sx, sy = qf.scales_["cmd1"]
    x1, y1 = xy["cmd1"][0][m1] / sx, xy["cmd1"][1][m1] / sy
    off1 = np.concatenate([[0], np.cumsum(np.bincount(sc.star_cluster_index()[m1], minlength=n))])
    t0 = time.perf_counter()
    B = quadtree_batch(x1, y1, off1)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    brute_force = _reference_tree()
    ref = [brute_force(x1[off1[i]:off1[i + 1]], y1[off1[i]:off1[i + 1]]) for i in range(n_brute)]
    t_brute = (time.perf_counter() - t0) * (n / n_brute)
    assert np.array_equal(np.array(ref), B[:n_brute])

    t50k = t_vec * 50_000 / n
    v1, b1 = t_vec, t_loop
    v2, b2 = t_batch, t_brute
    scaled = "" if n == 50_000 else f" (scaled: {t50k:.1f} s)"
    return [
        {"name": f"QuadTreeFeatures.transform: {n:,} SIMULATED clusters → ({n}, 190), "
                 f"{sc.n_stars_total:,} stars",
         "value": v1, "unit": "s",
         "baseline_name": (f"per-cluster loop over quadtree_cuts, 3 CMDs "
                           f"(measured on {n_loop}, scaled to {n:,})"),
         "baseline_value": b1, "ratio": b1 / v1,
         "target": "50,000 clusters featurised in seconds (< 20 s)" + scaled, "passed": bool(t50k < 20.0)},
        {"name": f"quadtree_batch, CMD1 only: {n:,} clusters", "value": v2, "unit": "s",
         "baseline_name": f"recursive pure-Python QuadTree (measured on {n_brute}, scaled to {n:,})",
         "baseline_value": b2, "ratio": b2 / v2,
         "target": "identical cuts, much faster than the brute-force tree", "passed": bool(b2 / v2 > 10)},
    ]


if __name__ == "__main__":
    import sys

    for r in run(fast="--fast" in sys.argv):
        print(r)
