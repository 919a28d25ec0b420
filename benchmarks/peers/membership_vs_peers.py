"""Benchmark ocnb's Deep-Sets membership against two peers on the same real cone (issue 15, deliverable 9).

One run, one cone: the real Gaia DR2 cone around Blanco 1 shipped with ocnb (``load_field("blanco1")``,
14,785 stars, G < 18), scored against the published members of Almeida et al. 2023 (G < 18) cross-matched
into it. Every method sees the same stars:

* **HDBSCAN** (scikit-learn) as Hunt & Reffert (2021, 2023) run it: tangent-plane x, y (gnomonic about
  the cone centre), pmra, pmdec, parallax, ``RobustScaler``, ``min_cluster_size=20``, ``min_samples=10``,
  ``cluster_selection_method`` "leaf" and "eom" (both reported). The cluster is the HDBSCAN cluster
  nearest to the catalogue astrometry of Blanco 1 (HUNT2023 centre, proper motion, parallax), never
  chosen with the member list. Members = HDBSCAN's labels; probabilities = its ``probabilities_``.
* **fastMP** (ASteCA 0.7 ``Membership.fastmp``, the method behind the UCC catalogue) in ASteCA's own
  virtual environment (Python ≥ 3.12; made by ``asteca_vs_ocnb.py``'s helpers, shared with that
  benchmark), through ``_fastmp_worker.py`` (files in, files out); centre from HUNT2023, N_cluster from
  ASteCA's own estimate (``get_nmembers``), seeds 1, 2, 3.
* **ocnb**: the authors' pretrained ``DS10_v02`` ported to Keras and ocnb's own trained model
  (``ocnb.membership.training.default_model``), each through ``prepare_cluster`` and
  ``membership_probability`` (100 error draws). Their seed member list (support sets, cluster parameters,
  candidate boundaries) is the cone's ``ocelot_label == 0`` stars: the 262-star clustering result that
  ships with the cone (ocelot's test fixture), standing in for the CG2020 members the paper uses.

Usage (from the repository root, in the project venv)::

    .venv/bin/python benchmarks/peers/membership_vs_peers.py                  # everything
    .venv/bin/python benchmarks/peers/membership_vs_peers.py --methods hdbscan,fastmp

The full run writes ``benchmarks/peers/membership_vs_peers.json`` and the marked section of
``benchmarks/RESULTS.md`` (``membership_report.py``); runs of a subset of methods write to the data home
unless ``--out`` / ``--results-md`` are given. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.peers.asteca_vs_ocnb import (  # noqa: E402  (repository root put on sys.path above)
    ASTECA_REQUIREMENTS,
    PeerUnavailable,
    _atomic_write,
    _clean_env,
    _finite,
    _result_line,
    _tail,
    ensure_peer_env,
    find_peer_python,
    machine,
    ocnb_versions,
    peer_venv_dir,
)

WORKER = HERE / "_fastmp_worker.py"
DEFAULT_OUT = HERE / "membership_vs_peers.json"
DEFAULT_RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"

FIELD = "blanco1"  # ocnb.datasets.load_field name of the cone
CLUSTER = "Blanco 1"
CATALOG = "hunt2023"  # centre, proper motion, parallax used to pick HDBSCAN's cluster and to centre fastMP
MEMBER_SOURCE = "almeida"  # the published members = the truth
G_MAX = 18.0  # truth: published members with G < 18 (the cone's limit)
P_MIN = 0.5  # a star is a member when its probability is >= P_MIN (issue 15)
#: DR2 (cone) and EDR3 (Almeida) reference epochs [Julian year], for the positional cross-match fallback.
EPOCH_DR2, EPOCH_EDR3 = 2015.5, 2016.0
MATCH_RADIUS_ARCSEC = 0.5
MATCH_MAX_DG = 0.3  # [mag] a positional match must also agree in G (DR2 vs EDR3 G differ by ~0.01-0.05)

HDBSCAN_SETTINGS = {
    "features": ["x (gnomonic, deg)", "y (gnomonic, deg)", "pmra", "pmdec", "parallax"],
    "scaler": "sklearn.preprocessing.RobustScaler",
    "min_cluster_size": 20,
    "min_samples": 10,
    "cluster_selection_methods": ["leaf", "eom"],
    "pick": "nearest catalogue astrometry (HUNT2023)",
}
#: Floors of the scales of the cluster-picking distance (catalogue dispersions can be tiny).
PICK_FLOORS = {"pm": 0.1, "parallax": 0.05, "radius": 0.1}  # mas/yr, mas, deg
FASTMP_SEEDS = (1, 2, 3)
FASTMP_N_RUNS = 1000  # fastMP's default number of resamples
PRETRAINED = "DS10_v02"
N_DRAWS = 100
OCNB_SEED = 42
WORKER_TIMEOUT_S = 900

#: --methods names -> method keys (HDBSCAN is one name and two rows).
METHOD_GROUPS = {
    "hdbscan": ("hdbscan-leaf", "hdbscan-eom"),
    "fastmp": ("fastmp",),
    "ocnb-pretrained": ("ocnb-pretrained",),
    "ocnb-trained": ("ocnb-trained", "ocnb-trained-votes"),
}
ALL_METHODS = tuple(k for v in METHOD_GROUPS.values() for k in v)
METHOD_NAMES = {
    "hdbscan-leaf": "HDBSCAN (leaf)",
    "hdbscan-eom": "HDBSCAN (eom)",
    "fastmp": "fastMP (ASteCA 0.7)",
    "ocnb-pretrained": f"ocnb, authors' pretrained {PRETRAINED}",
    "ocnb-trained": "ocnb, trained here",
    "ocnb-trained-votes": "ocnb, trained here, uncalibrated (vG23's vote fraction)",
}
#: Seeds of ocnb's trained models (``training.default_model(preset, seed=...)``): scored like fastMP's seeds.
OCNB_MODEL_SEEDS = (0, 1, 2)
#: What issue 15 quotes for the peers on this cone (for the table's reference line).
ISSUE_QUOTED = {
    "hdbscan": {"precision": 0.90, "recall": 0.93, "f1": 0.91, "time_s": 0.8},
    "fastmp": {"precision": 0.944, "recall": 0.931, "f1": 0.938, "time_s": 0.02},
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------
def cone_centre(ra, dec) -> tuple[float, float]:
    """Centre of a cone [deg]: the direction of the mean unit vector of its stars (RA wrap-safe)."""
    import numpy as np

    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    v = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).mean(axis=1)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError("cone_centre: no finite positions, or positions that cancel (not a cone)")
    v /= n
    return float(np.degrees(np.arctan2(v[1], v[0])) % 360.0), float(np.degrees(np.arcsin(v[2])))


def gnomonic(ra, dec, ra0: float, dec0: float):
    """Gnomonic (tangent-plane) standard coordinates ξ, η [deg] of (ra, dec) about (ra0, dec0) [deg].

    ξ points east (increasing RA), η north. Stars 90° or more from the centre have no projection
    (ValueError): a cone never reaches that far.
    """
    import numpy as np

    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cos_c = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    if np.any(cos_c <= 0):
        raise ValueError(f"gnomonic: {int((cos_c <= 0).sum())} stars are >= 90 deg from ({ra0}, {dec0})")
    xi = np.cos(dec) * np.sin(ra - a0) / cos_c
    eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cos_c
    return np.degrees(xi), np.degrees(eta)


# ---------------------------------------------------------------------------
# catalogue and truth
# ---------------------------------------------------------------------------
def catalogue_astrometry(name: str = CLUSTER, catalog: str = CATALOG) -> dict:
    """Centre [deg], proper motion [mas/yr], parallax [mas], their member dispersions and r50 [deg]."""
    from ocnb.datasets import load_catalog

    cat = load_catalog(catalog)
    key = name.replace(" ", "").lower()
    rows = cat[cat["name"].astype(str).str.replace(" ", "").str.replace("_", "").str.lower() == key]
    if len(rows) != 1:
        raise KeyError(f"{name!r}: {len(rows)} rows in {catalog} (need exactly one)")
    r = rows.iloc[0]
    return {
        "catalog": catalog.upper(),
        "ra": float(r.RA_ICRS),
        "dec": float(r.DE_ICRS),
        "pmra": float(r.pmRA),
        "pmdec": float(r.pmDE),
        "parallax": float(r.Plx),
        "s_pmra": float(r.s_pmRA),
        "s_pmdec": float(r.s_pmDE),
        "s_parallax": float(r.s_Plx),
        "r50": float(r.r50),
    }


def _local_crossmatch(cone, members, radius_arcsec=MATCH_RADIUS_ARCSEC, max_dg=MATCH_MAX_DG):
    """Cone row of each member (-1: none): source_id equality, then a positional fallback.

    The fallback used only when ``ocnb.membership.evaluation.crossmatch_ids`` is not importable (same
    rules): DR2 and EDR3 share the source_id of most sources; the rest are moved from the EDR3 epoch back
    to the DR2 epoch with their proper motions (0.5 yr) and matched to the nearest cone star not already
    matched, within ``radius_arcsec`` and ``max_dg`` in G.
    """
    import numpy as np

    rows = np.full(len(members), -1, dtype=np.int64)
    index = {int(s): i for i, s in enumerate(cone["source_id"].to_numpy())}
    for j, s in enumerate(members["source_id"].to_numpy()):
        rows[j] = index.get(int(s), -1)
    by_id = int((rows >= 0).sum())
    todo = np.flatnonzero(rows < 0)
    if len(todo):
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        m = members.iloc[todo]
        dt = EPOCH_DR2 - EPOCH_EDR3
        dec = m["dec"].to_numpy(float) + np.nan_to_num(m["pmdec"].to_numpy(float)) * dt / 3.6e6
        ra = m["ra"].to_numpy(float) + np.nan_to_num(m["pmra"].to_numpy(float)) * dt / 3.6e6 / np.cos(np.radians(dec))
        c_m = SkyCoord(ra * u.deg, dec * u.deg)
        c_c = SkyCoord(cone["ra"].to_numpy(float) * u.deg, cone["dec"].to_numpy(float) * u.deg)
        idx, sep, _ = c_m.match_to_catalog_sky(c_c)
        dg = np.abs(m["phot_g_mean_mag"].to_numpy(float) - cone["phot_g_mean_mag"].to_numpy(float)[idx])
        taken = set(rows[rows >= 0].tolist())
        for k in np.argsort(sep.arcsec):
            if sep.arcsec[k] <= radius_arcsec and dg[k] < max_dg and int(idx[k]) not in taken:
                rows[todo[k]] = int(idx[k])
                taken.add(int(idx[k]))
    return rows, {"matched_by_id": by_id, "matched_by_position": int((rows >= 0).sum()) - by_id,
                  "max_sep_arcsec": radius_arcsec, "max_delta_g": max_dg}


def truth_mask(cone, members, g_max: float = G_MAX):
    """Boolean mask over cone rows: the published members with G < ``g_max`` cross-matched into the cone.

    As issue 15 and ``ocnb.membership.training.blanco1_members_truth`` define it (so the notebook and this
    benchmark share one truth): the published list is cut at its own (EDR3) G < ``g_max``, then matched
    with ``ocnb.membership.evaluation.crossmatch_ids`` where it exists, else :func:`_local_crossmatch` (same
    rules: source_id, then position at the cone's epoch + G); the info says which. Published members outside
    the cone cannot be found by any method and are counted, not scored. The few published members that are
    in the cone (DR2 G < 18) but have EDR3 G ≥ ``g_max`` are not in the truth; they are counted too
    (``n_in_cone_published_g_ge_max``).

    Returns ``(mask, rows, info)``: ``rows`` = the cone row of each published member (-1: none), in the
    order of ``members``.
    """
    import numpy as np

    def match(table):
        try:
            from ocnb.membership.evaluation import crossmatch_ids
        except ImportError as err:
            rows, info = _local_crossmatch(cone, table)
            info["crossmatch"] = ("local (benchmarks/peers/membership_vs_peers.py; "
                                  f"ocnb.membership.evaluation.crossmatch_ids not available: {err})")
            return rows, info
        m = crossmatch_ids(cone, table)
        return m["cone_row"].to_numpy(np.int64), {
            "matched_by_id": int(m.attrs["n_source_id"]), "matched_by_position": int(m.attrs["n_position"]),
            "max_sep_arcsec": float(m.attrs["max_sep_arcsec"]), "max_delta_g": float(m.attrs["max_delta_g"]),
            "crossmatch": "ocnb.membership.evaluation.crossmatch_ids"}

    bright = members["phot_g_mean_mag"].to_numpy(float) < g_max
    rows_b, info = match(members[bright].reset_index(drop=True))
    rows_f, _ = match(members[~bright].reset_index(drop=True)) if (~bright).any() else (np.array([], int), {})
    rows = np.full(len(members), -1, dtype=np.int64)
    rows[np.flatnonzero(bright)] = rows_b
    mask = np.zeros(len(cone), dtype=bool)
    mask[rows_b[rows_b >= 0]] = True
    info.update(
        n_published=len(members),
        n_published_g_lt_max=int(bright.sum()),
        n_in_cone=int(mask.sum()),
        n_outside_cone=int((rows_b < 0).sum()),
        n_in_cone_published_g_ge_max=int((rows_f >= 0).sum()),
        g_max=g_max,
    )
    return mask, rows, info


# ---------------------------------------------------------------------------
# scoring (the same rules for every method)
# ---------------------------------------------------------------------------
def _prf(selected, truth) -> dict:
    import numpy as np

    sel, t = np.asarray(selected, bool), np.asarray(truth, bool)
    tp, fp, fn = int((sel & t).sum()), int((sel & ~t).sum()), int((~sel & t).sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "n_selected": tp + fp, "n_true_positive": tp, "n_false_positive": fp, "n_missed": fn, "n_truth": tp + fn,
    }


def _local_reliability(p, truth, n_bins: int = 10):
    """Reliability curve (equal-width bins) and ECE; used only without ``ocnb.membership.evaluation``."""
    import numpy as np
    import pandas as pd

    p, t = np.asarray(p, float), np.asarray(truth, bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=n_bins) / count
        frac = np.bincount(b, weights=t.astype(float), minlength=n_bins) / count
    ece = float(np.nansum(count * np.abs(mean_p - frac)) / max(count.sum(), 1))
    rel = pd.DataFrame({"bin_lower": edges[:-1], "bin_upper": edges[1:], "mean_predicted": mean_p,
                        "observed_fraction": frac, "count": count})
    return rel, ece


def score(p, truth, g, selected=None, p_min: float = P_MIN, g_max: float = G_MAX) -> dict:
    """Scores of one method on the cone stars with G < ``g_max`` (``g``: the cone's G).

    Precision, recall, F1 of ``selected`` (default ``p >= p_min``); Brier score, expected calibration
    error and the reliability curve (10 equal-width bins) of ``p`` over all scored stars, so confident
    field stars count against a method as well as missed members. With ``ocnb.membership.evaluation``
    present its ``evaluate_members`` computes them (the notebook's numbers); else a local equivalent.
    """
    import numpy as np
    import pandas as pd

    p, t, g = np.asarray(p, float), np.asarray(truth, bool), np.asarray(g, float)
    if not (p.shape == t.shape == g.shape):
        raise ValueError(f"score: shapes of p {p.shape}, truth {t.shape} and G {g.shape} differ")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("score: probabilities must be finite and in [0, 1]")
    scored = np.isfinite(g) & (g < g_max)
    try:
        from ocnb.membership.evaluation import evaluate_members
    except ImportError:
        evaluate_members = None
    if evaluate_members is not None:
        ev = evaluate_members(p, t, p_min=p_min, g_max=g_max, cone=pd.DataFrame({"phot_g_mean_mag": g}))
        out = {"brier": float(ev.brier), "ece": float(ev.ece),
               "evaluator": "ocnb.membership.evaluation.evaluate_members"}
        rel = ev.reliability
    else:
        rel, ece = _local_reliability(p[scored], t[scored])
        out = {"brier": float(np.mean((p[scored] - t[scored]) ** 2)), "ece": ece, "evaluator": "local"}
    sel = (p >= p_min) if selected is None else np.asarray(selected, bool)
    out.update(_prf(sel[scored], t[scored]))
    out["n_scored"] = int(scored.sum())
    cols = [c for c in ("bin_lower", "bin_upper", "mean_predicted", "observed_fraction", "count") if c in rel]
    out["reliability"] = {c: [None if not np.isfinite(v) else float(v) for v in rel[c].to_numpy(float)] for c in cols}
    return out


def spearman_with_published(p, rows, published_p) -> float | None:
    """Spearman rank correlation of a method's probabilities with the published ones, over the published
    members that are in the cone (the issue found 0.22 for HDBSCAN's ``probabilities_``)."""
    import numpy as np
    from scipy.stats import spearmanr

    ok = rows >= 0
    if ok.sum() < 3:
        return None
    a, b = np.asarray(p, float)[rows[ok]], np.asarray(published_p, float)[ok]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


# ---------------------------------------------------------------------------
# peer 1: HDBSCAN
# ---------------------------------------------------------------------------
def pick_cluster(labels, x, y, pmra, pmdec, parallax, cat: dict, centre_xy) -> tuple[int | None, list[dict]]:
    """The HDBSCAN cluster nearest to the catalogue astrometry, and the distance of every cluster.

    Distance² = (Δpm / s_pm)² + (Δϖ / s_ϖ)² + (Δpos / r50)², each cluster represented by its members'
    medians; s_pm = the catalogue's proper-motion dispersion (mean of the two components), s_ϖ its
    parallax dispersion, r50 its half-member radius [deg], each floored (:data:`PICK_FLOORS`) so a tiny
    catalogue dispersion does not let one term dominate. ``centre_xy``: the catalogue centre in the same
    tangent plane as x, y. Returns (label, table); label None when HDBSCAN found no cluster.
    """
    import numpy as np

    labels = np.asarray(labels)
    s_pm = max(0.5 * (cat["s_pmra"] + cat["s_pmdec"]), PICK_FLOORS["pm"])
    s_plx = max(cat["s_parallax"], PICK_FLOORS["parallax"])
    s_r = max(cat["r50"], PICK_FLOORS["radius"])
    table = []
    for k in np.unique(labels[labels >= 0]):
        s = labels == k
        d_pm = np.hypot(np.median(pmra[s]) - cat["pmra"], np.median(pmdec[s]) - cat["pmdec"]) / s_pm
        d_plx = (np.median(parallax[s]) - cat["parallax"]) / s_plx
        d_pos = np.hypot(np.median(x[s]) - centre_xy[0], np.median(y[s]) - centre_xy[1]) / s_r
        table.append(
            {
                "label": int(k),
                "n": int(s.sum()),
                "pmra": float(np.median(pmra[s])),
                "pmdec": float(np.median(pmdec[s])),
                "parallax": float(np.median(parallax[s])),
                "distance": float(np.sqrt(d_pm**2 + d_plx**2 + d_pos**2)),
            }
        )
    if not table:
        return None, table
    best = min(table, key=lambda r: r["distance"])
    return best["label"], table


def run_hdbscan(cone, cat: dict, selection: str, repeats: int = 3) -> dict:
    """HDBSCAN on (x, y, pmra, pmdec, parallax), the cluster picked by catalogue astrometry.

    Time = RobustScaler + HDBSCAN fit (median of ``repeats``); the tangent-plane projection is done once
    before (it is part of any pipeline's input preparation, a few ms).
    """
    import numpy as np
    from sklearn.cluster import HDBSCAN
    from sklearn.preprocessing import RobustScaler

    ra0, dec0 = cone_centre(cone["ra"], cone["dec"])
    x, y = gnomonic(cone["ra"], cone["dec"], ra0, dec0)
    cx, cy = gnomonic([cat["ra"]], [cat["dec"]], ra0, dec0)
    pmra, pmdec, plx = (cone[c].to_numpy(float) for c in ("pmra", "pmdec", "parallax"))
    X = np.column_stack([x, y, pmra, pmdec, plx])
    times, fit = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        Xs = RobustScaler().fit_transform(X)
        fit = HDBSCAN(
            min_cluster_size=HDBSCAN_SETTINGS["min_cluster_size"],
            min_samples=HDBSCAN_SETTINGS["min_samples"],
            cluster_selection_method=selection,
            copy=True,  # scikit-learn's default changes in 1.10; explicit, and the input is not reused
        ).fit(Xs)
        times.append(time.perf_counter() - t0)
    labels = fit.labels_
    label, table = pick_cluster(labels, x, y, pmra, pmdec, plx, cat, (float(cx[0]), float(cy[0])))
    sel = labels == label if label is not None else np.zeros(len(cone), bool)
    p = np.where(sel, fit.probabilities_, 0.0)
    return {
        "status": "ok" if label is not None else "failed",
        "message": "" if label is not None else "HDBSCAN found no cluster",
        "probability": p,
        "selected": sel,
        "members_by": "HDBSCAN labels (picked cluster)",
        "time_s": statistics.median(times),
        "times_s": times,
        "time_what": "RobustScaler + HDBSCAN fit",
        "n_clusters_found": int(labels.max() + 1),
        "picked_label": label,
        "clusters": sorted(table, key=lambda r: r["distance"])[:10],
        "cone_centre": [ra0, dec0],
    }


# ---------------------------------------------------------------------------
# peer 2: fastMP in ASteCA's venv
# ---------------------------------------------------------------------------
def fastmp_input(cone):
    """The worker's input table (ASteCA's names); e_G from the cone's ``phot_g_mean_mag_error``."""
    import pandas as pd

    return pd.DataFrame(
        {
            "ra": cone["ra"].to_numpy(float),
            "dec": cone["dec"].to_numpy(float),
            "G": cone["phot_g_mean_mag"].to_numpy(float),
            "e_G": cone["phot_g_mean_mag_error"].to_numpy(float),
            "plx": cone["parallax"].to_numpy(float),
            "e_plx": cone["parallax_error"].to_numpy(float),
            "pmra": cone["pmra"].to_numpy(float),
            "e_pmra": cone["pmra_error"].to_numpy(float),
            "pmde": cone["pmdec"].to_numpy(float),
            "e_pmde": cone["pmdec_error"].to_numpy(float),
        }
    )


def run_fastmp(cone, cat: dict, peer_python: Path, work: Path, seeds=FASTMP_SEEDS,
               n_runs: int = FASTMP_N_RUNS, timeout: float = WORKER_TIMEOUT_S) -> list[dict]:
    """fastMP once per seed, each in a fresh worker process (timed from outside as ``process_s``)."""
    import numpy as np
    import pandas as pd

    work.mkdir(parents=True, exist_ok=True)
    stars = work / "blanco1_cone_fastmp.csv"
    fastmp_input(cone).to_csv(stars, index=False, float_format="%.10g")
    runs = []
    for seed in seeds:
        out = work / f"fastmp_p_seed{seed}.csv"
        out.unlink(missing_ok=True)
        cmd = [
            str(peer_python), str(WORKER), "--stars", str(stars), "--out", str(out),
            "--radec-c", json.dumps([cat["ra"], cat["dec"]]), "--pms-c", json.dumps([cat["pmra"], cat["pmdec"]]),
            "--plx-c", repr(cat["parallax"]), "--seed", str(seed), "--n-runs", str(n_runs),
        ]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
            wall = time.perf_counter() - t0
            res = _result_line(r.stdout, "FASTMP_RESULT") if r.returncode == 0 else None
            err = _tail(r.stderr or r.stdout)
        except subprocess.TimeoutExpired:
            wall, res, err = time.perf_counter() - t0, None, f"timed out after {timeout:.0f} s"
        if res is None or not out.is_file():
            runs.append({"status": "failed", "seed": seed, "process_s": wall, "message": err})
            log(f"  fastMP seed {seed}: FAILED ({_tail(err, 2)})")
            continue
        p = pd.read_csv(out)["p"].to_numpy(float)
        res.update(process_s=wall, probability=np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0))
        runs.append(res)
        log(
            f"  fastMP seed {seed}: N_cluster {res['N_cluster']}, {res['n_p_ge_0.5']} stars p >= 0.5; "
            f"fastmp {res['fastmp_s']:.2f} s, + get_nmembers {res['nmembers_s']:.2f} s, process {wall:.1f} s"
        )
    return runs


# ---------------------------------------------------------------------------
# ocnb
# ---------------------------------------------------------------------------
def _load_model(which: str, preset: str, train_missing: bool = False, release: str = "DR3", seed: int = 0):
    """(model, description). The trained model is read from the model store by its name
    (``ocnb.membership.training.model_name(preset, seed, release)``); it is trained here only with
    ``train_missing`` (``default_model`` trains and saves it when absent, which takes minutes). A stored model
    without a calibration is calibrated by ``default_model`` (seconds; no training). The default is
    the model trained on DR3-precision cones: training at the DR2 cone's own precision measured worse on
    Blanco 1 (``ocnb.membership.training``'s docstring has the numbers)."""
    from ocnb.membership import DeepSetsMembership

    if which == "ocnb-pretrained":
        return DeepSetsMembership.pretrained(PRETRAINED), f"pretrained {PRETRAINED} (van Groeningen et al. 2023)"
    from ocnb import store
    from ocnb.membership import training

    name = training.model_name(preset, seed, release)
    try:
        model = DeepSetsMembership.load(name)
    except store.BundleNotFoundError:
        if not train_missing:
            raise RuntimeError(
                f"no trained model {name!r} in the model store; train it with "
                f"ocnb.membership.training.default_model({preset!r}, seed={seed}, release={release!r}) or pass "
                "--train-missing") from None
        return (training.default_model(preset, seed=seed, release=release),
                f"trained here, preset {preset!r} (model store: {name})")
    if model.calibration_ is None:
        model = training.default_model(preset, seed=seed, release=release)
        return model, f"trained, preset {preset!r} (model store: {name}; calibrated here)"
    return model, f"trained, preset {preset!r} (model store: {name})"


def run_ocnb(cone, truth, which: str, preset: str, n_draws: int = N_DRAWS, repeats: int = 1,
             train_missing: bool = False, seed: int = 0) -> dict:
    """One ocnb model on the cone: prepare_cluster (seed members = ocelot_label 0) + membership_probability.

    Probabilities are mapped back to the cone's rows by source_id (rows that ``prepare_cone`` drops, e.g.
    incomplete photometry, get p = 0 and are counted). Time = prepare_cluster + membership_probability
    (median of ``repeats`` after a warm-up call); the model load is timed separately.
    """
    import numpy as np

    from ocnb.membership import membership_probability, prepare_cluster

    t0 = time.perf_counter()
    model, what = _load_model(which, preset, train_missing, seed=seed)
    load_s = time.perf_counter() - t0
    seed_members = cone["ocelot_label"].to_numpy() == 0

    import inspect

    quiet = {"progress": False} if "progress" in inspect.signature(membership_probability).parameters else {}

    def once():
        prepared = prepare_cluster(cone, seed_members, name=CLUSTER, truth=truth)
        return membership_probability(model, prepared, n_draws=n_draws, seed=OCNB_SEED, **quiet)

    result = once()  # warm-up (graph tracing, isochrone and KD-tree caches)
    times = []
    for _ in range(max(1, repeats)):
        t1 = time.perf_counter()
        result = once()
        times.append(time.perf_counter() - t1)
    pc = result.prepared.cone
    ids = cone["source_id"].to_numpy().tolist()

    def on_cone_rows(values):
        by_id = dict(zip(pc["source_id"].to_numpy().tolist(), np.asarray(values, float).tolist(), strict=True))
        return np.array([by_id.get(s, 0.0) for s in ids])

    p = on_cone_rows(result.probability)
    p_votes = on_cone_rows(getattr(result, "probability_raw", result.probability))
    calibration = getattr(model, "calibration_", None)
    kept = set(pc["source_id"].tolist())
    n_dropped = int(sum(s not in kept for s in ids))
    sel = getattr(result.prepared, "selection", None)
    cand = np.asarray(sel.is_candidate, bool) if sel is not None else None
    t_prep = getattr(result.prepared, "truth", None)
    flags = list(dict.fromkeys(str(f) for f in [*getattr(result.prepared, "flags", []), *getattr(result, "flags", [])]))
    return {
        "status": "ok",
        "message": "",
        "probability": p,
        "probability_votes": p_votes,
        "calibrated": calibration is not None,
        "calibration": None if calibration is None else repr(calibration),
        "model_seed": seed,
        "selected": None,
        "members_by": f"p ≥ {P_MIN}",
        "time_s": statistics.median(times),
        "times_s": times,
        "time_what": f"prepare_cluster + membership_probability ({n_draws} draws)",
        "load_s": load_s,
        "model": what,
        "n_seed_members": int(seed_members.sum()),
        "n_dropped_by_prepare": n_dropped,
        "n_candidates": int(cand.sum()) if cand is not None else None,
        # true members that pass the candidate selection: the most any threshold on p can recover
        "n_truth_candidates": int((np.asarray(t_prep, bool) & cand).sum()) if t_prep is not None and cand is not None
        else None,
        "flags": flags,
    }


# ---------------------------------------------------------------------------
# assembling
# ---------------------------------------------------------------------------
class Truth:
    """What every method is scored against: the truth mask, the cone's G, the published members' cone rows
    and their published probabilities (for the rank correlation)."""

    def __init__(self, mask, g, rows, published_p):
        self.mask, self.g, self.rows, self.published_p = mask, g, rows, published_p

    def score(self, p, selected=None) -> dict:
        out = score(p, self.mask, self.g, selected)
        out["spearman_published"] = spearman_with_published(p, self.rows, self.published_p)
        return out


def method_record(key: str, res: dict, truth: Truth) -> dict:
    """One method's row of the results: its scores and timings (arrays dropped)."""
    rec = {"method": key, "name": METHOD_NAMES[key]}
    rec.update({k: v for k, v in res.items() if k not in ("probability", "probability_votes", "selected")})
    if res.get("status") == "ok":
        rec.update(truth.score(res["probability"], res.get("selected")))
        if res.get("selected") is not None:  # also the p >= 0.5 reading of the same probabilities
            s = truth.score(res["probability"])
            rec["at_p_min"] = {k: s[k] for k in ("precision", "recall", "f1", "n_selected")}
    return rec


SUMMARISED = ("precision", "recall", "f1", "brier", "ece", "spearman_published")


def seeds_summary(per_seed: list[dict], probabilities: list, truth: Truth) -> dict:
    """Mean over seeds of each score (min–max in ``*_range``), and the reliability curve of the seed-mean
    probability (the seeds' curves are near-identical)."""
    import numpy as np

    out = {}
    for k in SUMMARISED:
        vals = [s[k] for s in per_seed if s.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
        out[f"{k}_range"] = [float(min(vals)), float(max(vals))] if vals else None
    out["reliability"] = truth.score(np.mean(probabilities, axis=0))["reliability"]
    return out


def fastmp_record(runs: list[dict], truth: Truth, message: str = "") -> dict:
    """fastMP's row: scores per seed and their mean (min–max in ``*_range``); times are medians over seeds."""
    rec = {"method": "fastmp", "name": METHOD_NAMES["fastmp"], "members_by": f"p ≥ {P_MIN}"}
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        rec.update(status="failed" if runs else "skipped",
                   message=message or "; ".join(r.get("message", "") for r in runs)[:500])
        return rec
    per_seed = []
    for r in ok:
        s = truth.score(r["probability"])
        s.update({k: r[k] for k in ("seed", "N_cluster", "fastmp_s", "nmembers_s", "fit_s", "process_s")})
        per_seed.append(s)
    rec.update({k: v for k, v in per_seed[0].items() if k not in ("seed", "N_cluster", "fastmp_s", "nmembers_s",
                                                                   "fit_s", "process_s")})
    rec.update(seeds_summary(per_seed, [r["probability"] for r in ok], truth))
    rec.update(
        status="ok",
        message="" if len(ok) == len(runs) else f"{len(runs) - len(ok)} of {len(runs)} seeds failed",
        seeds=[s["seed"] for s in per_seed],
        time_s=statistics.median(s["fit_s"] for s in per_seed),
        time_what="get_nmembers (N_cluster) + fastmp, inside the worker",
        fastmp_s=statistics.median(s["fastmp_s"] for s in per_seed),
        process_s=statistics.median(s["process_s"] for s in per_seed),
        per_seed=[{k: v for k, v in s.items() if k != "reliability"} for s in per_seed],
        n_cluster_asteca=sorted({s["N_cluster"] for s in per_seed}),
        warnings=sorted({w for r in ok for w in r.get("warnings", [])}),
    )
    return rec


def ocnb_seeds_record(key: str, runs: list[dict], truth: Truth, votes: bool = False) -> dict:
    """ocnb's trained model over its model seeds, like fastMP's row: per-seed scores, their mean (min–max);
    ``votes`` scores the uncalibrated vote fractions of the same runs. Times are medians over seeds."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return method_record(key, runs[0] if runs else {"status": "not available", "message": "no seed run"},
                             truth)
    column = "probability_votes" if votes else "probability"
    per_seed = []
    for r in ok:
        s = truth.score(r[column])
        s.update(seed=r["model_seed"], time_s=r["time_s"], load_s=r["load_s"], model=r["model"])
        per_seed.append(s)
    rec = {"method": key, "name": METHOD_NAMES[key]}
    # seed-independent fields of the first run (candidates, flags, settings), then the first seed's counts
    rec.update({k: v for k, v in ok[0].items() if k not in ("probability", "probability_votes", "selected")})
    rec.update({k: v for k, v in per_seed[0].items() if k not in ("seed", "time_s", "load_s", "model")})
    rec.update(seeds_summary(per_seed, [r[column] for r in ok], truth))
    failed = [f"seed {r.get('model_seed')}: {r.get('message', '')}" for r in runs if r.get("status") != "ok"]
    rec.update(
        message="; ".join(failed),
        seeds=[s["seed"] for s in per_seed],
        time_s=statistics.median(s["time_s"] for s in per_seed),
        load_s=statistics.median(s["load_s"] for s in per_seed),
        per_seed=[{k: v for k, v in s.items() if k != "reliability"} for s in per_seed],
        calibrated=bool(ok[0].get("calibrated")) and not votes,
    )
    return rec


def parse_methods(text: str) -> list[str]:
    """``"hdbscan,fastmp"`` -> the method keys, in the canonical order (SystemExit on unknown names)."""
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    unknown = [n for n in names if n not in METHOD_GROUPS]
    if unknown or not names:
        raise SystemExit(f"--methods: unknown {unknown or names}; choose from {','.join(METHOD_GROUPS)}")
    want = {k for n in names for k in METHOD_GROUPS[n]}
    return [k for k in ALL_METHODS if k in want]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHOD_GROUPS),
                    help=f"comma-separated subset of {','.join(METHOD_GROUPS)} (default: all)")
    ap.add_argument("--python", help="interpreter >= 3.12 for ASteCA's venv (default: found as asteca_vs_ocnb.py does)")
    ap.add_argument("--venv", help="peer venv folder (default <data home>/peers/asteca-venv, shared with "
                    "asteca_vs_ocnb.py)")
    ap.add_argument("--seeds", type=int, default=len(FASTMP_SEEDS), help="fastMP seeds 1..N (default 3)")
    ap.add_argument("--repeats", type=int, default=3, help="timed HDBSCAN fits (median; default 3)")
    ap.add_argument("--ocnb-repeats", type=int, default=1, help="timed ocnb scorings after a warm-up (median)")
    ap.add_argument("--preset", default="laptop", help="training preset of ocnb's own model (default laptop)")
    ap.add_argument("--ocnb-seeds", default=",".join(map(str, OCNB_MODEL_SEEDS)),
                    help="seeds of ocnb's trained models, comma-separated (default 0,1,2; scored like fastMP's seeds)")
    ap.add_argument("--train-missing", action="store_true",
                    help="train ocnb's model of --preset when the model store has none (default: record "
                    "'not available')")
    ap.add_argument("--n-draws", type=int, default=N_DRAWS, help="ocnb's error draws per star (default 100)")
    ap.add_argument("--note", action="append", default=[], metavar="TEXT",
                    help="a sentence added to the notes of the results (e.g. the machine was busy)")
    ap.add_argument("--out", help=f"results JSON (default {DEFAULT_OUT.relative_to(ROOT)} for the full run, "
                    "the data home otherwise)")
    ap.add_argument("--results-md", help="RESULTS.md whose section is rewritten ('none': do not write; "
                    "default benchmarks/RESULTS.md for the full run only)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_run = time.perf_counter()
    from benchmarks.peers import membership_report
    from ocnb.config import data_home
    from ocnb.datasets import load_field, load_members

    methods = parse_methods(args.methods)
    seeds = list(range(1, args.seeds + 1))
    model_seeds = [int(t) for t in str(args.ocnb_seeds).split(",") if t.strip()]
    partial = [why for why, cond in (
        (f"methods {','.join(methods)}", set(methods) != set(ALL_METHODS)),
        (f"fastMP seeds 1..{args.seeds}", args.seeds != len(FASTMP_SEEDS)),
        (f"ocnb preset {args.preset!r}", args.preset != "laptop"),
        (f"ocnb model seeds {model_seeds}", tuple(model_seeds) != OCNB_MODEL_SEEDS),
        (f"{args.n_draws} draws", args.n_draws != N_DRAWS)) if cond]
    official = not partial
    work = data_home() / "peers" / "work"
    out = Path(args.out) if args.out else (DEFAULT_OUT if official else work / "membership_vs_peers.partial.json")
    md = args.results_md if args.results_md else (str(DEFAULT_RESULTS_MD) if official else "none")

    cone = load_field(FIELD).reset_index(drop=True)
    members = load_members(CLUSTER, source=MEMBER_SOURCE)
    cat = catalogue_astrometry()
    mask, rows, tinfo = truth_mask(cone, members)
    truth = Truth(mask, cone["phot_g_mean_mag"].to_numpy(float), rows,
                  members["membership_probability"].to_numpy(float))
    log(
        f"membership_vs_peers: {FIELD} cone ({len(cone):,} stars, {cone.attrs.get('release', '?')}); truth = "
        f"{tinfo['n_in_cone']} of {tinfo['n_published_g_lt_max']} published {MEMBER_SOURCE} members with G < {G_MAX:g} "
        f"({tinfo['matched_by_id']} by source_id, {tinfo['matched_by_position']} by position, "
        f"{tinfo['n_outside_cone']} outside the cone); methods {', '.join(methods)}"
    )

    # the peer venv first (installs are never timed)
    peer = {"status": "skipped", "message": "", "requirements": list(ASTECA_REQUIREMENTS)}
    peer_python = None
    if "fastmp" in methods:
        base, msg = find_peer_python(args.python)
        if base is None:
            peer["message"] = msg.replace("ASteCA needs", "fastMP (ASteCA) needs").replace(
                "the ocnb side is still run", "HDBSCAN and ocnb are still run")
        else:
            log(msg)
            venv = Path(args.venv) if args.venv else peer_venv_dir()
            try:
                peer_python, pv = ensure_peer_env(base, venv)
                peer.update(status="ok", base_python=base, venv=str(venv), versions=pv)
                log(f"ASteCA {pv['asteca']} in {venv}")
            except PeerUnavailable as err:
                peer["message"] = str(err)
    else:
        peer["message"] = "fastMP not requested (--methods)"
    if "fastmp" in methods and peer["status"] != "ok":
        log(peer["message"])

    records = []
    for key in ("hdbscan-leaf", "hdbscan-eom"):
        if key in methods:
            res = run_hdbscan(cone, cat, key.split("-")[1], repeats=args.repeats)
            records.append(method_record(key, res, truth))
            _log_record(records[-1])
    if "fastmp" in methods:
        runs = run_fastmp(cone, cat, peer_python, work, seeds) if peer_python is not None else []
        records.append(fastmp_record(runs, truth, message=peer["message"]))
        _log_record(records[-1])
    def ocnb_run(key, seed=0):
        try:
            return run_ocnb(cone, truth.mask, key, args.preset, n_draws=args.n_draws, repeats=args.ocnb_repeats,
                            train_missing=args.train_missing, seed=seed)
        except Exception as err:
            return {"status": "not available", "message": f"not available: {type(err).__name__}: {err}",
                    "model_seed": seed}

    if "ocnb-pretrained" in methods:
        records.append(method_record("ocnb-pretrained", ocnb_run("ocnb-pretrained"), truth))
        _log_record(records[-1])
    if "ocnb-trained" in methods:
        runs_ocnb = [ocnb_run("ocnb-trained", seed) for seed in model_seeds]
        for key, votes in (("ocnb-trained", False), ("ocnb-trained-votes", True)):
            records.append(ocnb_seeds_record(key, runs_ocnb, truth, votes=votes))
            _log_record(records[-1])

    versions = ocnb_versions()
    with contextlib.suppress(Exception):
        import sklearn

        versions["scikit-learn"] = sklearn.__version__
    pv = peer.get("versions") or {}
    versions.update({"asteca": pv.get("asteca"), "peer_python": pv.get("python"), "peer_numpy": pv.get("numpy")})
    given = sys.argv[1:] if argv is None else [str(a) for a in argv]
    given = ["…" if i and given[i - 1] == "--note" else a for i, a in enumerate(given)]  # notes are listed below
    results = {
        "schema": 1,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python benchmarks/peers/membership_vs_peers.py", *given]).strip(),
        "machine": machine(),
        "versions": versions,
        "settings": {
            "field": FIELD,
            "cluster": CLUSTER,
            "n_stars": len(cone),
            "release": cone.attrs.get("release"),
            "p_min": P_MIN,
            "g_max": G_MAX,
            "catalogue": cat,
            "hdbscan": {**HDBSCAN_SETTINGS, "pick_floors": PICK_FLOORS, "repeats": args.repeats},
            "fastmp": {"seeds": seeds, "n_runs": FASTMP_N_RUNS, "centre": "HUNT2023 (fixed_centers=True)",
                       "n_cluster": "ASteCA get_nmembers (ripley)", "requirements": list(ASTECA_REQUIREMENTS)},
            "ocnb": {"pretrained": PRETRAINED, "preset": args.preset, "n_draws": args.n_draws, "seed": OCNB_SEED,
                     "model_seeds": model_seeds,
                     "seed_members": "cone ocelot_label == 0 (ocelot's clustering result shipped with the cone)",
                     "repeats": args.ocnb_repeats},
            "methods": methods,
            "official": official,
            "partial_reasons": partial,
        },
        "truth": tinfo,
        "peer": {k: v for k, v in peer.items() if k != "versions"},
        "methods": records,
        "quoted_in_issue": ISSUE_QUOTED,
        "notes": list(args.note),
        "wall_s": time.perf_counter() - t_run,
    }
    results = _finite(results)
    _atomic_write(out, json.dumps(results, indent=1, allow_nan=False, default=_json_default) + "\n")
    log(f"wrote {out}")
    if md and md.lower() != "none":
        membership_report.update_results_md(md, membership_report.results_markdown(results))
        log(f"updated the membership section of {md}")
    log(f"total {results['wall_s']:.0f} s")
    return 0


def _log_record(r: dict) -> None:
    if r.get("status") != "ok":
        log(f"  {r['name']}: {r.get('status')} — {r.get('message', '')}")
        return
    log(
        f"  {r['name']}: P {r['precision']:.3f}, R {r['recall']:.3f}, F1 {r['f1']:.3f}, Brier {r['brier']:.5f}, "
        f"ECE {r['ece']:.4f}, {r['n_selected']} selected ({r['members_by']}), time {r['time_s']:.2f} s"
    )


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


if __name__ == "__main__":
    raise SystemExit(main())
