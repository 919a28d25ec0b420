"""Systematic floors of the refined intervals, measured on mismatched SIMULATED clusters (issue 14).

The refinement's posterior (:func:`ocnb.cmd_ann.refine.refine`) is the width a perfect model would
allow: with hundreds of members it is a few thousandths of a dex. Real clusters are not made by the
model, so the reported interval adds, in quadrature, a **systematic floor** per parameter. The floor
is measured, not chosen: SIMULATED clusters are drawn with ingredients that deliberately differ from
what the likelihood assumes —

* unresolved-binary fraction 0.1–0.6 (the likelihood: 0.3), a Kroupa instead of a Salpeter mass
  function, the Fitzpatrick (1999) instead of the Gordon et al. (2023) extinction law, differential
  reddening up to ±0.1 mag, 2–10 % field stars, isochrones from the simulator's lattice (nearest
  node) rather than the refinement's bilinear interpolation;
* a start drawn around the truth as wide as the ANN's calibrated interval, and a parallax
  distance with a realistic error;

the refinement runs on each, and the floor is the smallest σ_sys for which
p50 ± √(σ_post² + σ_sys²) contains the truth in 68.3 % of these clusters. :func:`calibrate_refinement` does it;
``tools/calibrate_refine.py`` writes the shipped table ``ocnb/cmd_ann/refine_floors.json``
(with the settings, seed and the coverage before and after), which :func:`systematic_floors` reads.

This cannot capture what no simulator knows (PARSEC's own errors, rotation, a member list's
contamination). For that the interval also adds a **literature floor** (:func:`literature_floors`):
how much published isochrone fits of the same real clusters disagree with each other — the median
scatter between Hunt & Reffert (2023), Cavallo et al. (2024), Cantat-Gaudin et al. (2020) and Dias
et al. (2021) over the ~1,800 clusters with at least 100 members
(:func:`ocnb.datasets.literature_scatter`), one global number per parameter, never fitted to the
benchmark's clusters or to ocnb's residuals. ocnb's refined fit is one more fit of that kind, so its
age, [Fe/H] and A_V carry systematics of that size. The distance modulus gets none: the refinement
anchors it on the members' parallax (zero point and its uncertainty in the likelihood), while the
catalogues' scatter in dMod is that of photometric distances. ``tools/literature_floors.py`` writes
the shipped table ``ocnb/cmd_ann/literature_floors.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .refine import LABELS, RefineSettings

__all__ = ["MISMATCH", "calibration_clusters", "calibrate_refinement", "systematic_floors", "floors_path",
           "settings_digest", "literature_floors", "literature_floors_path", "measure_literature_floors",
           "LITERATURE_FLOOR_PARAMETERS"]

#: Parameters that get the literature floor (dMod is parallax-anchored; see the module docstring).
LITERATURE_FLOOR_PARAMETERS = ("log_age", "feh", "a_v")
LITERATURE_FLOORS_FORMAT = "ocnb.cmd_ann.literature_floors/1"

#: The mismatched ingredients (see the module docstring); one group of clusters per (binary fraction,
#: differential extinction, field fraction), all with the Kroupa mass function and the F99 law.
MISMATCH = {
    "groups": [(0.1, 0.0, 0.02), (0.3, 0.05, 0.05), (0.45, 0.1, 0.1), (0.6, 0.05, 0.03)],
    "mass_function": "kroupa",
    "law": "F99",
    "priors": {"log_age": (7.3, 9.8), "feh": (-0.5, 0.25), "a_v": (0.0, 1.5), "dist_mod": (5.5, 12.5)},
    "n_stars": (80, 800),
    #: Width (1σ) of the start around the truth, and of the proposal: like the ANN's calibrated interval.
    "start_sigma": (0.2, 0.2, 0.2, 0.3),
    #: Parallax error [mas] of the simulated clusters' mean parallax (systematic floor of DR3).
    "parallax_sigma_mas": 0.015,
}


def floors_path() -> Path:
    """The shipped floors table."""
    return Path(__file__).resolve().with_name("refine_floors.json")


def settings_digest(settings: RefineSettings) -> str:
    """Short hash of the refinement settings that shape the posterior (the seed excluded)."""
    d = dataclasses.asdict(settings)
    d.pop("seed", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


class _Parallax:
    """Stand-in for :class:`ocnb.astrometry.ClusterParallax` of a simulated cluster."""

    def __init__(self, dist_mod: float, sigma_mag: float):
        self._mu, self._sigma = float(dist_mod), float(sigma_mag)

    def dist_mod(self) -> float:
        return self._mu

    def dist_mod_sigma(self) -> float:
        return self._sigma

    def loglike(self, dist_mod):
        return -0.5 * ((np.asarray(dist_mod, float) - self._mu) / self._sigma) ** 2


def calibration_clusters(n: int, seed: int = 0):
    """``n`` mismatched SIMULATED clusters (:data:`MISMATCH`): list of (member table, truth dict)."""
    from ..sim.population import simulate_populations

    rng = np.random.default_rng(seed)
    groups = MISMATCH["groups"]
    out = []
    for g, (f_b, dav, f_field) in enumerate(groups):
        k = n // len(groups) + (1 if g < n % len(groups) else 0)
        if k == 0:
            continue
        pri = MISMATCH["priors"]
        params = pd.DataFrame({key: rng.uniform(*pri[key], k) for key in LABELS})
        params["n_stars"] = rng.integers(*MISMATCH["n_stars"], k)
        sc = simulate_populations(0, seed=seed * 100 + g, params=params, binaries=f_b > 0, binary_fraction=f_b,
                                  differential_extinction=dav, field_fraction=f_field, progress=False,
                                  mass_function=MISMATCH["mass_function"], law=MISMATCH["law"])
        out.extend((sc.cluster(i), {key: float(sc.labels[key].iloc[i]) for key in LABELS})
                   for i in range(len(params)))
    return out


def _floor_for_coverage(err, sd, target: float) -> float:
    """Smallest σ_sys ≥ 0 with mean(|err| ≤ √(sd² + σ_sys²)) ≥ target (bisection)."""
    err, sd = np.asarray(err, float), np.asarray(sd, float)
    if err.size == 0 or np.mean(err <= sd) >= target:
        return 0.0
    lo, hi = 0.0, float(np.max(err)) + 1e-9
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if np.mean(err <= np.hypot(sd, mid)) >= target else (mid, hi)
    return hi


def calibrate_refinement(n: int = 40, seed: int = 0, settings: RefineSettings | None = None,
                         progress: bool = True) -> dict:
    """Run the refinement on ``n`` mismatched SIMULATED clusters and measure the systematic floors.

    Returns
    -------
    dict
        ``floors`` {label: σ_sys} [dex or mag], ``table`` (DataFrame: truth, p50, std per cluster),
        ``coverage`` {label: {"raw", "with_floor"}} of the 16–84 % interval on these clusters, and
        the provenance (``n``, ``seed``, ``settings_digest``, ``mismatch``).
    """
    from ..parallel import progress as bar
    from .refine import refine

    settings = settings or RefineSettings(seed=seed)
    rng = np.random.default_rng(seed + 1)
    rows = []
    s0 = np.asarray(MISMATCH["start_sigma"])
    for table, truth in bar(calibration_clusters(n, seed), desc="calibrating the refinement", disable=not progress):
        t = np.array([truth[k] for k in LABELS])
        start = t + rng.normal(0.0, s0)
        plx_sigma_mu = 5 / np.log(10) * MISMATCH["parallax_sigma_mas"] / (1000 / 10 ** (t[3] / 5 + 1))
        plx = _Parallax(t[3] + rng.normal(0.0, plx_sigma_mu), plx_sigma_mu)
        try:
            res = refine(table, start, np.diag(s0 ** 2), parallax=plx, colour_names=("BP-RP",), settings=settings)
        except Exception as err:  # a cluster too poor to refine (e.g. < 10 stars in the window): skipped, counted
            rows.append({"error": str(err)})
            continue
        row = {"error": ""}
        for k in LABELS:
            row[f"{k}_true"] = truth[k]
            row[f"{k}_p50"] = float(res.summary.loc[k, "p50"])
            row[f"{k}_std"] = float(res.summary.loc[k, "std"])
        row["ess"], row["n_stars"] = res.ess, res.n_stars
        rows.append(row)
    table = pd.DataFrame(rows)
    good = table[table["error"] == ""]
    floors, coverage = {}, {}
    for k in LABELS:
        d = np.abs(good[f"{k}_p50"] - good[f"{k}_true"]).to_numpy()
        sd = good[f"{k}_std"].to_numpy()
        floors[k] = _floor_for_coverage(d, sd, 0.6827)
        raw = np.mean(d <= sd)
        wide = np.mean(d <= np.hypot(sd, floors[k]))
        bias = float(np.median((good[f"{k}_p50"] - good[f"{k}_true"]).to_numpy()))
        coverage[k] = {"raw": float(raw), "with_floor": float(wide), "median_error": bias}
    return {"floors": floors, "coverage": coverage, "table": table, "n": int(n), "n_used": len(good),
            "seed": int(seed), "settings_digest": settings_digest(settings), "mismatch": MISMATCH}


def systematic_floors(settings: RefineSettings | None = None) -> tuple[dict, str]:
    """The shipped floors {label: σ_sys} and a note; zeros with a note when the table does not match.

    The table is tied to the refinement settings (``settings_digest``): with other settings the
    floors were not measured, so none are applied and the note says so.
    """
    settings = settings or RefineSettings()
    path = floors_path()
    if not path.exists():
        return dict.fromkeys(LABELS, 0.0), (f"no systematic floors: {path.name} is missing "
                                            "(run tools/calibrate_refine.py)")
    data = json.loads(path.read_text())
    if data.get("settings_digest") != settings_digest(settings):
        return dict.fromkeys(LABELS, 0.0), ("no systematic floors: they were measured with other refinement settings "
                                          f"({data.get('settings_digest')} ≠ {settings_digest(settings)})")
    return {k: float(data["floors"][k]) for k in LABELS}, (
        f"systematic floors from {data['n_used']} mismatched simulated clusters ({path.name})")


def literature_floors_path() -> Path:
    """The shipped literature-floor table."""
    return Path(__file__).resolve().with_name("literature_floors.json")


def measure_literature_floors(min_members: int = 100) -> dict:
    """The literature floors from the shipped catalogues (:func:`ocnb.datasets.literature_scatter`).

    Returns the table ``tools/literature_floors.py`` writes: ``floors`` {label: σ}, the ``scatter`` per
    parameter (median std, clusters, values), ``catalogs``, ``min_members`` and why dMod gets none.
    """
    from ..datasets import literature_scatter

    sc = literature_scatter(min_members=min_members)
    floors = {k: (float(sc.loc[k, "median_std"]) if k in LITERATURE_FLOOR_PARAMETERS else 0.0) for k in LABELS}
    return {"format": LITERATURE_FLOORS_FORMAT, "floors": floors,
            "scatter": {k: {"median_std": float(sc.loc[k, "median_std"]), "n_clusters": int(sc.loc[k, "n_clusters"]),
                            "n_values": int(sc.loc[k, "n_values"])} for k in sc.index},
            "catalogs": list(sc.attrs["catalogs"]), "min_members": int(min_members),
            "not_applied": {"dist_mod": "anchored on the members' parallax; the catalogues' dMod scatter is that of "
                                        "photometric distances"}}


def literature_floors() -> tuple[dict, str]:
    """The shipped literature floors {label: σ} and a note; zeros with a note when the table is missing."""
    path = literature_floors_path()
    if not path.exists():
        return dict.fromkeys(LABELS, 0.0), (f"no literature floors: {path.name} is missing "
                                            "(run tools/literature_floors.py)")
    data = json.loads(path.read_text())
    if data.get("format") != LITERATURE_FLOORS_FORMAT:
        return dict.fromkeys(LABELS, 0.0), f"no literature floors: {path.name} has format {data.get('format')!r}"
    floors = {k: float(data["floors"].get(k, 0.0)) for k in LABELS}
    n = max(int(v.get("n_clusters", 0)) for v in data.get("scatter", {}).values()) if data.get("scatter") else 0
    return floors, (f"literature floors: median scatter between {', '.join(data.get('catalogs', []))} over {n} "
                    f"clusters with >= {data.get('min_members')} members ({path.name}; none on dMod)")
