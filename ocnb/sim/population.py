"""Vectorised generator of SIMULATED star clusters from PARSEC isochrones.

Everything this module returns is **simulated data**: synthetic simple stellar
populations, not observations. It is the engine behind
:func:`ocnb.cmd_ann.simulate_clusters` (Cavallo et al. 2024, Sect. 2.2, which
supplies its Table-1 priors) and is generic: the priors, the allowed [Fe/H]
clip, the magnitude cut, the mass function and the options are arguments.

Recipe
------
1. **Parameters**: independent uniform draws from ``priors`` — log age,
   [Fe/H], A_V [mag], dMod [mag] and log10 N_stars, N_stars = round(10^u) — or
   explicit per-cluster ``params``.
2. **Isochrone**: the PARSEC grid of :mod:`ocnb.isochrones`, precomputed on a
   lattice of spacing ≤ ``lattice_step`` (:func:`ocnb.sim.isochrone_lattice`);
   each cluster uses the **nearest lattice node** and its label keeps the drawn
   continuous value. [Fe/H] is treated as PARSEC's scaled-solar [M/H].
   **Range**: log age must lie inside the grid (6.0–10.2 for PARSEC v1.2S),
   otherwise :class:`~ocnb.errors.IsochroneRangeError`. [Fe/H] beyond the
   grid's [M/H] range (−2.19…+0.30) is *clipped* to the edge isochrone only up
   to ``feh_clip`` dex (default 0: no clip, raise); clipped clusters are
   flagged per cluster (label column ``feh_clipped``) and counted in
   ``meta["feh_clipped_fraction"]`` (both ends; ``feh_clipped_low`` /
   ``feh_clipped_high`` give the counts). A network cannot tell clipped
   metallicities apart.
3. **Masses**: a mass function of :mod:`ocnb.sim.mass_function` (Salpeter,
   Kroupa-like or per-cluster varied broken power law) between the
   isochrone's smallest and largest initial mass; every quantity is
   interpolated linearly in initial mass between isochrone points. For speed
   the mass function is sampled only on the isochrone segments that can reach
   the magnitude cut (noiseless G ≤ g_max + margin, the margin covering noise,
   binaries, differential extinction and field-star distances); masses outside
   cannot pass the cut, so the surviving stars are an unbiased sample.
4. **Photometry**: m = M + dMod + A_V · k_band(Teff, A_V) for G, BP, RP, J, H
   with k_band from :func:`ocnb.photometry.extinction_ratio` evaluated **per
   star** at its own Teff (dustapprox, R_V = 3.1).
5. **Errors** (:class:`ocnb.photometry.PhotometricErrorModel`): Gaussian noise
   σ(band, m_true) in every band; reported errors are σ at the *observed*
   magnitude, as in the catalogues. 2MASS quality follows from σ
   (:mod:`ocnb.sim.quality`).
6. **Cut and N_stars**: stars are kept if observed G ≤ g_max; N_stars counts
   **survivors**. Stars are drawn in batches until N_stars survive. A drawn
   parameter vector whose isochrone cannot (practically) reach G ≤ g_max — no
   point with noiseless G ≤ g_max, or less than a 10⁻³ chance for a sampled
   star to pass — is **redrawn** (rate in ``meta``); explicit ``params`` rows
   that cannot raise ValueError.
7. **Parallax**: per star ϖ_true = 10^(2 − dMod/5) mas plus Gaussian noise of
   the typical Gaia DR3 σ_ϖ at the star's observed G
   (:func:`ocnb.photometry.parallax_error`). The cluster's ``parallax`` is the
   unweighted mean of its stars' parallaxes, ``parallax_error`` = sqrt(Σσ_i²)/N,
   ``parallax_true`` = 1000/d.

Options (off by default)
------------------------
``binaries``: a fraction ``binary_fraction`` of the stars are unresolved
binaries with a flat mass ratio q ~ U(0, 1); the companion's fluxes (same
isochrone, extinguished at its own Teff) are added in every band; a companion
below the isochrone's lowest mass adds no light.
``differential_extinction`` (mag): each star's A_V is A_V + U(−δ, +δ), clipped at 0.
``field_fraction``: that fraction of each cluster's N_stars are field
contaminants (flag ``is_field``): stars of one older field population per
cluster (log age U(``field_log_age``), [M/H] U(``field_mh``)) along the same
line of sight, each at its own distance modulus dMod + U(−1, +1) with
extinction scaled as A_V · 10^(ΔdMod/5) (dust ∝ distance); they enter the
cluster's mean parallax, as contaminants do in real member lists.

Bad input
---------
Every argument is checked before any work: a prior or a ``params`` value
outside its allowed range, NaN/inf, a missing or unknown column or prior key,
low > high, an unknown mass function or extinction law, fractions outside
[0, 1] and negative spreads raise ``ValueError`` (``IsochroneRangeError``, a
``ValueError``, for ranges outside the isochrone grid) naming the argument,
the column or key, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .clusters import STAR_FLOAT_COLUMNS, SyntheticClusters
from .lattice import IsochroneLattice, isochrone_lattice
from .mass_function import (
    SALPETER_ALPHA,
    broken_power_law_integral,
    broken_power_law_inverse,
    check_mass_function_values,
    draw_mass_function,
    mass_function_description,
    mass_function_ranges,
    salpeter_inverse,
)
from .quality import TWOMASS_MAX_SIGMA, TWOMASS_MIN_SNR

__all__ = [
    "simulate_populations",
    "PRIOR_KEYS",
    "PARAM_COLUMNS",
    "SIM_BANDS",
    "G_MAX",
    "MIN_SURVIVAL",
    "MAX_STARS_PER_CLUSTER",
    "FIELD_LOG_AGE",
    "FIELD_MH",
    "FIELD_DMOD_SPREAD",
]

#: Keys of the uniform priors (low, high): log10(age/yr), [Fe/H] (dex), A_V (mag), dMod (mag), log10 N_stars.
PRIOR_KEYS = ("log_age", "feh", "a_v", "dist_mod", "log_n")
#: Required columns of explicit ``params`` (one row per cluster).
PARAM_COLUMNS = ("log_age", "feh", "a_v", "dist_mod", "n_stars")
#: Optional ``params`` columns: a per-cluster mass function (overrides the draw).
OPTIONAL_PARAM_COLUMNS = ("mf_m_break", "mf_alpha_low")
#: Bands simulated (Gaia DR3 G, BP, RP and 2MASS J, H).
SIM_BANDS = ("G", "BP", "RP", "J", "H")
_MAG_COL = {"G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag",
            "J": "j_m", "H": "h_m"}
_ERR_COL = {"G": "phot_g_mean_mag_error", "BP": "phot_bp_mean_mag_error",
            "RP": "phot_rp_mean_mag_error", "J": "j_msigcom", "H": "h_msigcom"}
#: Default magnitude cut (Gaia G, observed).
G_MAX = 18.0
#: Parameter vectors whose sampled stars pass the cut with probability below this are redrawn.
MIN_SURVIVAL = 1e-3
#: Largest N_stars per cluster: all stars are held in memory (~100 bytes each, plus the rejected draws).
MAX_STARS_PER_CLUSTER = 2_000_000
#: Extra magnitude margin of the IMF sampling region beyond the cut (noise).
_NOISE_MARGIN = 0.5
_BINARY_MARGIN = 2.5 * np.log10(2.0)  # an equal-mass binary is 0.753 mag brighter
#: Field contaminants: default population ranges and line-of-sight spread (mag).
FIELD_LOG_AGE = (8.0, 10.0)
FIELD_MH = (-0.6, 0.2)
FIELD_DMOD_SPREAD = 1.0
_CHUNK_STARS = 1_500_000  # stars per generation chunk (memory ~ 1 GB)
_MAX_DRAWS = 6_000_000  # star draws per sampling round of a chunk
_TOL = 1e-9  # range checks: tolerance of float round-off at the grid edges


# ---------------------------------------------------------------------------
# Sampling engine (vectorised over populations)
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class _Populations:
    """Star populations to sample: one per cluster (members) and one per cluster with field stars."""

    node: np.ndarray  # lattice node
    a_v: np.ndarray
    dist_mod: np.ndarray
    need: np.ndarray  # stars that must survive the cut
    cluster: np.ndarray  # owning cluster (0..n-1)
    is_field: np.ndarray  # bool
    mf_break: np.ndarray  # mass-function break [M☉]
    mf_alpha: np.ndarray  # slope below the break (SALPETER_ALPHA: pure Salpeter)

    @property
    def salpeter(self) -> bool:
        return bool(np.all(self.mf_alpha == SALPETER_ALPHA))

    def take(self, idx) -> _Populations:
        return _Populations(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))


@dataclasses.dataclass
class _Options:
    g_max: float
    binaries: bool
    binary_fraction: float
    differential_extinction: float
    parallax_noise: bool
    law: str
    error_model: Any

    def margin(self, is_field: np.ndarray, a_v: np.ndarray) -> np.ndarray:
        """Magnitude margin of the sampling region beyond the cut (brightest possible star)."""
        m = _NOISE_MARGIN + (_BINARY_MARGIN if self.binaries else 0.0) + self.differential_extinction
        field = FIELD_DMOD_SPREAD + a_v * (1.0 - 10 ** (-FIELD_DMOD_SPREAD / 5.0))
        return m + np.where(is_field, field, 0.0)

    def sigma(self, band: str, mag) -> np.ndarray:
        """σ(band, mag) of the error model, extrapolated beyond its validity range.

        Stars are drawn up to ~1.5 mag beyond the cut and noised *before* the cut
        removes them, and a kept star's BP or 2MASS magnitude can lie beyond the
        survey's limit; the model's extrapolation is wanted there, not an error
        (``PhotometricErrorModel.sigma(..., extrapolate=True)``). Error models
        without that keyword are called plainly.
        """
        if _accepts_extrapolate(self.error_model):
            return self.error_model.sigma(band, mag, extrapolate=True)
        return self.error_model.sigma(band, mag)


def _accepts_extrapolate(error_model) -> bool:
    import inspect

    try:
        params = inspect.signature(error_model.sigma).parameters
    except (TypeError, ValueError):
        return False
    return "extrapolate" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _ext_ratio(band, teff, a_v, law):
    from ..photometry import extinction_ratio

    return extinction_ratio(band, teff, a_v, law=law)


def _bright_segments(lat: IsochroneLattice, imf_w: np.ndarray, pops: _Populations, opts: _Options):
    """Sampling weights on isochrone segments and survival estimates, per population.

    Returns ``weights`` (P, width − 1): IMF weight of segments with noiseless
    G ≤ g_max + margin at either end (0 elsewhere), ``survival`` (P,): the
    fraction of that weight expected to pass G ≤ g_max (segments fully below
    count 1, straddling ones 1/2), and ``g_min`` (P,): the brightest noiseless G.
    """
    node = pops.node
    teff = np.power(10.0, lat.columns["log_teff"][node])
    a_v = pops.a_v[:, None]
    g_app = lat.columns["G"][node] + pops.dist_mod[:, None] + a_v * _ext_ratio("G", teff, a_v, opts.law)
    lo = np.minimum(g_app[:, :-1], g_app[:, 1:])
    hi = np.maximum(g_app[:, :-1], g_app[:, 1:])
    if pops.salpeter:
        w = imf_w[node]
    else:
        w = broken_power_law_integral(lat.mini[node, :-1], lat.mini[node, 1:], pops.mf_break[:, None],
                                      pops.mf_alpha[:, None])
    margin = opts.margin(pops.is_field, pops.a_v)[:, None]
    weights = np.where(lo <= opts.g_max + margin, w, 0.0)
    passing = np.where(hi <= opts.g_max, w, np.where(lo <= opts.g_max, 0.5 * w, 0.0))
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        survival = np.where(total > 0, passing.sum(axis=1) / total, 0.0)
    return weights, survival, g_app.min(axis=1)


def _viability(lat, imf_w, pops: _Populations, opts: _Options, chunk: int = 4096) -> np.ndarray:
    """True where a population can practically reach G ≤ g_max (module docstring, step 6)."""
    ok = np.empty(pops.node.size, dtype=bool)
    for s in range(0, pops.node.size, chunk):
        sl = slice(s, s + chunk)
        _, surv, gmin = _bright_segments(lat, imf_w, pops.take(sl), opts)
        ok[sl] = (gmin <= opts.g_max) & (surv >= MIN_SURVIVAL)
    return ok


def _interp(lat: IsochroneLattice, col: str, flat: np.ndarray, t: np.ndarray) -> np.ndarray:
    v = lat.columns[col].reshape(-1)
    a = v[flat]
    return a + t * (v[flat + 1] - a)


def _companion_index(lat: IsochroneLattice, node: np.ndarray, m2: np.ndarray):
    """Flat segment index and fraction of mass m2 on node's isochrone; ``lit`` False below its lowest mass."""
    big = 1e4  # > any initial mass (M☉)
    keys = (lat.mini + big * np.arange(lat.n_nodes)[:, None]).reshape(-1)
    j = np.searchsorted(keys, m2 + big * node, side="right") - 1
    first = node * lat.width
    last = first + lat.length[node] - 2
    j = np.clip(j, first, np.maximum(last, first))
    a = lat.mini.reshape(-1)[j]
    b = lat.mini.reshape(-1)[np.minimum(j + 1, lat.mini.size - 1)]
    t = np.clip(np.where(b > a, (m2 - a) / np.where(b > a, b - a, 1.0), 0.0), 0.0, 1.0)
    lit = m2 >= lat.mini[node, 0]
    return j, t, lit


def _apparent(lat, law, flat, t, dmod, a_v, teff, companion, band, sel=slice(None)):
    """Apparent magnitude in ``band`` of drawn stars ``sel``: isochrone + dMod + A_V k(Teff, A_V), plus companion."""
    app = (_interp(lat, band, flat[sel], t[sel]) + dmod[sel]
           + a_v[sel] * _ext_ratio(band, teff[sel], a_v[sel], law))
    if companion is not None:
        j2, t2, teff2, lit = companion
        app2 = (_interp(lat, band, j2[sel], t2[sel]) + dmod[sel]
                + a_v[sel] * _ext_ratio(band, teff2[sel], a_v[sel], law))
        app = _combine(app, app2, lit[sel])
    return app


def _combine(m1, m2, lit):
    """Magnitude of two unresolved stars (m2 ignored where not lit)."""
    f = np.power(10.0, -0.4 * m1) + np.where(lit, np.power(10.0, -0.4 * np.where(lit, m2, 0.0)), 0.0)
    return -2.5 * np.log10(f)


def _generate_chunk(lat, imf_w, pops: _Populations, opts: _Options, rng, max_rounds: int = 400):
    """Draw stars for a set of populations until ``need`` survive the cut; returns kept-star arrays."""
    weights, survival, _ = _bright_segments(lat, imf_w, pops, opts)
    n_pop = pops.node.size
    need = pops.need.astype(np.int64).copy()
    drawn = np.zeros(n_pop, dtype=np.int64)
    passed = np.zeros(n_pop, dtype=np.int64)
    nseg = weights.shape[1]
    cw = np.cumsum(weights, axis=1)
    cw /= cw[:, -1:]
    parts = []
    for _ in range(max_rounds):
        active = np.flatnonzero(need > 0)
        if active.size == 0:
            break
        # expected survival: model estimate first, then the measured rate
        f = np.where(drawn[active] > 0, np.maximum(passed[active], 1) / np.maximum(drawn[active], 1),
                     survival[active])
        f = np.clip(f, MIN_SURVIVAL / 4, 1.0)
        k = np.minimum(np.ceil(need[active] / f * 1.15).astype(np.int64) + 8, 400_000)
        if k.sum() > _MAX_DRAWS:  # bound memory: fewer draws now, more rounds
            k = np.maximum(np.ceil(k * (_MAX_DRAWS / k.sum())).astype(np.int64), 1)
        drawn[active] += k
        pop = np.repeat(active, k)
        row = np.repeat(np.arange(active.size), k)
        # segment ∝ IMF weight within the sampling region, then mass within the segment
        flat_cw = (cw[active] + np.arange(active.size)[:, None]).reshape(-1)
        u = rng.random(pop.size) * (1.0 - 1e-9)
        seg = np.searchsorted(flat_cw, row + u, side="right") - row * nseg
        seg = np.clip(seg, 0, nseg - 1)
        node = pops.node[pop]
        flat = node * lat.width + seg
        a = lat.mini.reshape(-1)[flat]
        b = lat.mini.reshape(-1)[flat + 1]
        if pops.salpeter:
            m = salpeter_inverse(a, b, rng.random(pop.size))
        else:
            m = broken_power_law_inverse(a, b, rng.random(pop.size), pops.mf_break[pop], pops.mf_alpha[pop])
        t = np.clip(np.where(b > a, (m - a) / np.where(b > a, b - a, 1.0), 0.0), 0.0, 1.0)
        teff = np.power(10.0, _interp(lat, "log_teff", flat, t))
        # per-star distance and extinction
        dmod = pops.dist_mod[pop].copy()
        a_v = pops.a_v[pop].copy()
        fld = pops.is_field[pop]
        if fld.any():
            dd = rng.uniform(-FIELD_DMOD_SPREAD, FIELD_DMOD_SPREAD, int(fld.sum()))
            dmod[fld] = np.maximum(dmod[fld] + dd, 0.0)
            a_v[fld] = a_v[fld] * np.power(10.0, dd / 5.0)
        if opts.differential_extinction > 0:
            d = opts.differential_extinction
            a_v = np.maximum(a_v + rng.uniform(-d, d, pop.size), 0.0)
        if opts.binaries:
            is_bin = rng.random(pop.size) < opts.binary_fraction
            q = np.where(is_bin, rng.random(pop.size), 0.0)
            j2, t2, lit = _companion_index(lat, node, m * q)
            lit &= is_bin
            teff2 = np.power(10.0, _interp(lat, "log_teff", j2, t2))
        else:
            is_bin = q = lit = j2 = t2 = teff2 = None

        apparent = functools.partial(_apparent, lat, opts.law, flat, t, dmod, a_v, teff,
                                     (j2, t2, teff2, lit) if opts.binaries else None)
        sigma = opts.sigma
        g_true = apparent("G")
        g_obs = g_true + sigma("G", g_true) * rng.standard_normal(pop.size)
        ok = g_obs <= opts.g_max
        # keep the first `need` survivors of each population, in draw order
        starts = np.concatenate([[0], np.cumsum(k)[:-1]])
        csum = np.cumsum(ok)
        before = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0)
        rank = csum - np.repeat(before, k) - 1
        keep = ok & (rank < np.repeat(need[active], k))
        kidx = np.flatnonzero(keep)
        got = np.bincount(row[kidx], minlength=active.size)
        passed[active] += np.bincount(row, weights=ok, minlength=active.size).astype(np.int64)
        need[active] -= got
        part = {"pop": pop[kidx], "teff": teff[kidx], "mini": m[kidx], "G": g_obs[kidx],
                "a_v": a_v[kidx], "dmod": dmod[kidx]}
        sel = kidx
        part["G_err"] = sigma("G", g_obs[kidx])
        for band in ("BP", "RP", "J", "H"):
            true = apparent(band, sel)
            obs = true + sigma(band, true) * rng.standard_normal(sel.size)
            part[band] = obs
            part[band + "_err"] = sigma(band, obs)
        if opts.binaries:
            part["is_binary"] = is_bin[kidx]
            part["mass_ratio"] = q[kidx]
        parts.append(part)
    else:
        raise RuntimeError(f"star sampling did not converge in {max_rounds} rounds "
                           f"({int((need > 0).sum())} populations short)")
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return out, int(drawn.sum())


def _finish_stars(out: dict, opts: _Options, rng, parallax_error) -> dict:
    """Star arrays in the canonical names (float32) plus parallaxes."""
    plx_true = np.power(10.0, 2.0 - out["dmod"] / 5.0)
    sig_plx = parallax_error(out["G"])
    plx = plx_true + (sig_plx * rng.standard_normal(plx_true.size) if opts.parallax_noise else 0.0)
    f32 = np.float32
    stars = {
        "phot_g_mean_mag": out["G"].astype(f32), "phot_bp_mean_mag": out["BP"].astype(f32),
        "phot_rp_mean_mag": out["RP"].astype(f32),
        "phot_g_mean_mag_error": out["G_err"].astype(f32),
        "phot_bp_mean_mag_error": out["BP_err"].astype(f32),
        "phot_rp_mean_mag_error": out["RP_err"].astype(f32),
        "j_m": out["J"].astype(f32), "h_m": out["H"].astype(f32),
        "j_msigcom": out["J_err"].astype(f32), "h_msigcom": out["H_err"].astype(f32),
        "parallax": plx.astype(f32), "parallax_error": sig_plx.astype(f32),
        "teff": out["teff"].astype(f32), "mini": out["mini"].astype(f32),
        "a_v_star": out["a_v"].astype(f32), "is_field": out["is_field"].astype(bool),
        "cluster": out["cluster"].astype(np.int64),
    }
    if "is_binary" in out:
        stars["is_binary"] = out["is_binary"].astype(bool)
        stars["mass_ratio"] = out["mass_ratio"].astype(f32)
    return stars


def _parallax_summary(plx, sig, offsets):
    """Per-cluster unweighted mean parallax and sqrt(Σσ²)/N (float64 from the stored float32)."""
    n = np.diff(offsets)
    if n.size == 0:
        return np.empty(0), np.empty(0)
    starts = offsets[:-1]
    nz = n > 0
    s1 = np.zeros(n.size)
    s2 = np.zeros(n.size)
    if plx.size:
        s1[nz] = np.add.reduceat(plx.astype(np.float64), starts[nz])
        s2[nz] = np.add.reduceat(sig.astype(np.float64) ** 2, starts[nz])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nz, s1 / n, np.nan), np.where(nz, np.sqrt(s2) / n, np.nan)


# ---------------------------------------------------------------------------
# Input checks (each names the argument, column or key, the value and the allowed range)
# ---------------------------------------------------------------------------
def _pair(what: str, value) -> tuple:
    """A finite (low, high) pair with low ≤ high."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} = {value!r} must be a pair (low, high) of numbers") from None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{what} = {value!r} must be finite (low, high) numbers")
    if hi < lo:
        raise ValueError(f"{what} = {value!r} must be (low, high) with low ≤ high")
    return lo, hi


def _feh_clip(feh_clip) -> tuple:
    """(below, above): how far (dex) [Fe/H] may lie beyond the grid's [M/H] range."""
    try:
        vals = (feh_clip, feh_clip) if np.ndim(feh_clip) == 0 else tuple(feh_clip)
        out = tuple(float(v) for v in vals)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 2:
        raise ValueError(f"feh_clip = {feh_clip!r} must be a number or a pair (below, above) in dex")
    if not all(np.isfinite(v) and v >= 0 for v in out):
        raise ValueError(f"feh_clip = {feh_clip!r} must be ≥ 0 dex and finite")
    return out


def _grid_limits(grid, feh_clip: tuple) -> dict:
    """Allowed ranges of log age and [Fe/H] on this grid: name → (low, high)."""
    a_lo, a_hi = grid.age_range
    m_lo, m_hi = grid.mh_range
    return {"log_age": (a_lo, a_hi), "feh": (m_lo - feh_clip[0], m_hi + feh_clip[1])}


def _range_error(what: str, value, name: str, grid, feh_clip: tuple):
    from ..errors import IsochroneRangeError

    a_lo, a_hi = grid.age_range
    m_lo, m_hi = grid.mh_range
    if name == "log_age":
        return IsochroneRangeError(
            f"{what} log_age = {value} (log10 yr) is outside the PARSEC isochrone grid: allowed "
            f"{a_lo:g} ≤ log_age ≤ {a_hi:g}. A cluster labelled {value} would be built from the "
            f"{min(max(float(np.ravel(value)[0]), a_lo), a_hi):g} isochrone; use values inside the grid.")
    lo, hi = m_lo - feh_clip[0], m_hi + feh_clip[1]
    return IsochroneRangeError(
        f"{what} feh = {value} (dex) is outside the allowed range {lo:g} ≤ feh ≤ {hi:g}: the PARSEC grid's "
        f"[M/H] spans {m_lo:g} … {m_hi:g} and feh_clip = {feh_clip} dex allows clipping to the edge "
        "isochrone only that far (clipped clusters are flagged in labels['feh_clipped']). Use values inside "
        "that range or pass a larger feh_clip.")


def _check_priors(priors: Mapping[str, tuple], grid, feh_clip: tuple) -> dict:
    if not isinstance(priors, Mapping):
        raise TypeError(f"priors must be a dict {{key: (low, high)}} with keys {PRIOR_KEYS}, "
                        f"not {type(priors).__name__}")
    unknown = sorted(set(priors) - set(PRIOR_KEYS))
    if unknown:
        raise ValueError(f"priors has unknown key(s) {unknown}; expected keys {PRIOR_KEYS}")
    out = {}
    for key in PRIOR_KEYS:
        if key not in priors:
            raise ValueError(f"priors lacks {key!r}; expected keys {PRIOR_KEYS}")
        out[key] = _pair(f"prior {key!r}", priors[key])
    if out["a_v"][0] < 0:
        raise ValueError(f"prior 'a_v' low = {out['a_v'][0]} < 0: A_V must be ≥ 0 mag")
    if out["dist_mod"][0] < 0:
        raise ValueError(f"prior 'dist_mod' low = {out['dist_mod'][0]} < 0 mag: a distance below 10 pc "
                         "is not a star cluster; allowed dist_mod ≥ 0")
    if out["log_n"][0] < 0:
        raise ValueError(f"prior 'log_n' low = {out['log_n'][0]} < 0: N_stars = 10^log_n must be ≥ 1")
    log_n_max = math.log10(MAX_STARS_PER_CLUSTER)
    if out["log_n"][1] > log_n_max + _TOL:
        raise ValueError(f"prior 'log_n' high = {out['log_n'][1]} > {log_n_max:g}: at most "
                         f"{MAX_STARS_PER_CLUSTER:,} stars per cluster (all stars are held in memory)")
    limits = _grid_limits(grid, feh_clip)
    for key, (lo, hi) in limits.items():
        p_lo, p_hi = out[key]
        for v in (p_lo, p_hi):
            if v < lo - _TOL or v > hi + _TOL:
                raise _range_error(f"prior {key!r} = {priors[key]!r}:", v, key, grid, feh_clip)
    return out


def _check_params(params, grid, feh_clip: tuple) -> dict:
    """Explicit per-cluster parameters as float arrays, checked (column → values)."""
    if isinstance(params, Mapping) and params and all(np.ndim(v) == 0 for v in params.values()):
        params = {k: [v] for k, v in params.items()}  # one cluster given as scalars
    try:
        frame = pd.DataFrame(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be a DataFrame or a dict of equal-length columns {PARAM_COLUMNS}: "
                         f"{exc}") from None
    cols = [str(c) for c in frame.columns]
    missing = [c for c in PARAM_COLUMNS if c not in cols]
    unknown = [c for c in cols if c not in PARAM_COLUMNS + OPTIONAL_PARAM_COLUMNS]
    if missing or unknown:
        what = "; ".join(f"{w} column(s) {c}" for w, c in (("missing", missing), ("unknown", unknown)) if c)
        raise ValueError(f"params: {what}. Required {PARAM_COLUMNS}, optional {OPTIONAL_PARAM_COLUMNS}")
    if len(frame) == 0:
        raise ValueError("params has no rows: give at least one cluster")
    lab = {}
    for k in PARAM_COLUMNS + OPTIONAL_PARAM_COLUMNS:
        if k not in frame:
            continue
        try:
            v = np.asarray(frame[k], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"params column {k!r} must be numeric, got {frame[k].tolist()[:5]}") from None
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise ValueError(f"params column {k!r} has non-finite values {v[bad[:5]].tolist()} "
                             f"in rows {bad[:10].tolist()}")
        lab[k] = v

    def check(k, ok, allowed):
        bad = np.flatnonzero(~ok)
        if bad.size:
            raise ValueError(f"params column {k!r} = {lab[k][bad[:5]].tolist()} in rows {bad[:10].tolist()}: "
                             f"allowed {allowed}")

    check("a_v", lab["a_v"] >= 0, "a_v ≥ 0 mag")
    check("dist_mod", lab["dist_mod"] >= 0, "dist_mod ≥ 0 mag (d ≥ 10 pc)")
    n = lab["n_stars"]
    check("n_stars", (n >= 1) & (n == np.round(n)) & (n <= MAX_STARS_PER_CLUSTER),
          f"whole numbers 1 ≤ n_stars ≤ {MAX_STARS_PER_CLUSTER:,}")
    for key, (lo, hi) in _grid_limits(grid, feh_clip).items():
        v = lab[key]
        bad = np.flatnonzero((v < lo - _TOL) | (v > hi + _TOL))
        if bad.size:
            raise _range_error(f"params rows {bad[:10].tolist()}:", v[bad[:5]].tolist(), key, grid, feh_clip)
    return lab


def _check_options(binary_fraction, differential_extinction, field_fraction, g_max, lattice_step, law):
    def num(name, v):
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, not {v!r}") from None

    if not 0.0 <= num("binary_fraction", binary_fraction) <= 1.0:
        raise ValueError(f"binary_fraction must be in [0, 1], not {binary_fraction!r}")
    if not 0.0 <= num("field_fraction", field_fraction) < 1.0:
        raise ValueError(f"field_fraction must be in [0, 1), not {field_fraction!r}")
    d = num("differential_extinction", differential_extinction)
    if not (np.isfinite(d) and d >= 0):
        raise ValueError(f"differential_extinction must be finite and ≥ 0 mag, not {differential_extinction!r}")
    if not np.isfinite(num("g_max", g_max)):
        raise ValueError(f"g_max must be a finite magnitude, not {g_max!r}")
    s = num("lattice_step", lattice_step)
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"lattice_step must be finite and > 0 dex, not {lattice_step!r}")
    from ..photometry import EXTINCTION_LAWS

    if law not in EXTINCTION_LAWS:
        raise ValueError(f"unknown extinction law {law!r}; choose one of {EXTINCTION_LAWS}")


def _draw(rng, n, priors):
    lab = {k: rng.uniform(*priors[k], n) for k in ("log_age", "feh", "a_v", "dist_mod")}
    lab["n_stars"] = np.maximum(np.rint(np.power(10.0, rng.uniform(*priors["log_n"], n))), 1).astype(np.int64)
    return lab


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------
def simulate_populations(n: int, seed: int = 0, *, priors: Mapping[str, tuple] | None = None, grid=None,
                         binaries: bool = False, binary_fraction: float = 0.3,
                         differential_extinction: float = 0.0, field_fraction: float = 0.0,
                         progress: bool = True, params=None, lattice_step: float = 0.05,
                         error_model=None, parallax_noise: bool = True, g_max: float = G_MAX,
                         law: str = "G23", mass_function="salpeter", feh_clip=0.0,
                         field_log_age=FIELD_LOG_AGE, field_mh=FIELD_MH) -> SyntheticClusters:
    """Simulate ``n`` SIMULATED star clusters from PARSEC isochrones (see the module docstring).

    Parameters
    ----------
    n : int
        Number of clusters (≥ 0). Ignored when ``params`` is given.
    seed : int
        Seed of all random draws (same seed and arguments → same clusters, bit for bit).
    priors : dict
        Uniform priors (low, high) with exactly the keys of :data:`PRIOR_KEYS`:
        ``log_age`` [log10 yr], ``feh`` [dex], ``a_v`` [mag] (≥ 0), ``dist_mod``
        [mag] (≥ 0) and ``log_n`` (log10 N_stars, ≥ 0); low == high fixes a
        parameter. Required unless ``params`` is given (then only recorded).
        log_age must lie inside the grid; feh inside the grid's [M/H] range
        widened by ``feh_clip``.
    grid : IsochroneGrid, optional
        PARSEC grid (default :func:`ocnb.isochrones.default_grid`).
    binaries, binary_fraction : bool, float
        Unresolved binaries with a flat mass ratio; fraction in [0, 1].
    differential_extinction : float
        Half-width δ ≥ 0 (mag) of a uniform per-star A_V spread (off: 0).
    field_fraction : float
        Fraction in [0, 1) of each cluster's N_stars that are field contaminants (off: 0).
    progress : bool
        Show a progress bar (:func:`ocnb.parallel.progress`).
    params : DataFrame or dict, optional
        Explicit per-cluster :data:`PARAM_COLUMNS` (``log_age, feh, a_v,
        dist_mod, n_stars``; optional ``mf_m_break, mf_alpha_low``) instead of
        prior draws; a dict of scalars is one cluster. Same ranges as the priors;
        n_stars whole numbers ≥ 1. Rows that cannot produce stars with G ≤
        g_max raise ValueError.
    lattice_step : float
        Isochrone lattice spacing in log age and [M/H] (dex, ≤ 0.05 recommended).
    error_model : PhotometricErrorModel, optional
        Default ``PhotometricErrorModel()`` (DPAC spline + empirical 2MASS).
    parallax_noise : bool
        Per-star Gaia parallax noise (default True; False = exact 1000/d).
    g_max : float
        Magnitude cut on observed G.
    law : {"G23", "F99"}
        dustapprox extinction law.
    mass_function : {"salpeter", "kroupa", "varied"} or dict
        :func:`ocnb.sim.mass_function_ranges`; ``params`` may carry
        ``mf_m_break``/``mf_alpha_low`` columns.
    feh_clip : float or (float, float)
        How far (dex) [Fe/H] may lie below / above the grid's [M/H] range; such
        clusters are built from the edge isochrone, keep their label and are
        flagged (``labels["feh_clipped"]``, ``meta["feh_clipped_fraction"]``).
        Default 0: any [Fe/H] outside the grid raises.
    field_log_age, field_mh : (float, float)
        Uniform ranges of the field population's log age and [M/H] (inside the grid).

    Returns
    -------
    SyntheticClusters
        ``meta["generator"]`` is ``"ocnb.sim.simulate_populations"``.

    Raises
    ------
    IsochroneRangeError
        A log_age or [Fe/H] prior or ``params`` value outside the grid (beyond ``feh_clip``).
    ValueError
        Any other bad argument (the message names it, the value and the allowed range).
    """
    from ..isochrones import IsochroneGrid, default_grid
    from ..parallel import progress as progress_bar
    from ..photometry import PhotometricErrorModel, parallax_error

    # --- checks: all before any work --------------------------------------------------------
    _check_options(binary_fraction, differential_extinction, field_fraction, g_max, lattice_step, law)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number ≥ 0, not {seed!r}")
    if error_model is not None and not callable(getattr(error_model, "sigma", None)):
        raise TypeError(f"error_model must have a sigma(band, mag) method (ocnb.photometry.PhotometricErrorModel), "
                        f"not {type(error_model).__name__}")
    grid = grid if grid is not None else default_grid()
    if not isinstance(grid, IsochroneGrid):
        raise TypeError(f"grid must be an ocnb.isochrones.IsochroneGrid, not {type(grid).__name__}")
    clip = _feh_clip(feh_clip)
    if priors is None and params is None:
        raise ValueError(f"give priors {{key: (low, high)}} with keys {PRIOR_KEYS}, or explicit params")
    priors = _check_priors(priors, grid, clip) if priors is not None else None
    f_age = _pair("field_log_age", field_log_age)
    f_mh = _pair("field_mh", field_mh)
    for what, (lo, hi), (g_lo, g_hi) in (("field_log_age", f_age, grid.age_range),
                                         ("field_mh", f_mh, grid.mh_range)):
        if lo < g_lo - _TOL or hi > g_hi + _TOL:
            raise ValueError(f"{what} = {(lo, hi)} must lie inside the PARSEC grid ({g_lo:g} … {g_hi:g})")
    mf_ranges = mass_function_ranges(mass_function)
    if params is not None:
        given = _check_params(params, grid, clip)
    else:
        try:
            n_int = int(n)
        except (TypeError, ValueError):
            raise ValueError(f"n must be a whole number ≥ 0, not {n!r}") from None
        if n_int != n:
            raise ValueError(f"n must be a whole number ≥ 0, not {n!r}")
        n = n_int
        if n < 0:
            raise ValueError(f"n must be ≥ 0, not {n}")

    em = error_model if error_model is not None else PhotometricErrorModel()
    opts = _Options(g_max=float(g_max), binaries=bool(binaries), binary_fraction=float(binary_fraction),
                    differential_extinction=float(differential_extinction),
                    parallax_noise=bool(parallax_noise), law=law, error_model=em)
    ss = np.random.SeedSequence(seed)
    rng_params, rng_field = (np.random.default_rng(s) for s in ss.spawn(2))
    # Own stream, so that Salpeter clusters stay identical to those made before the option existed.
    rng_mf = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(10_001,)))

    if params is not None:
        lab = {k: given[k] for k in PARAM_COLUMNS}
        lab["n_stars"] = lab["n_stars"].astype(np.int64)
        n = lab["log_age"].size
        age_rng = (lab["log_age"].min(), lab["log_age"].max())
        mh_rng = (lab["feh"].min(), lab["feh"].max())
        lab.update(draw_mass_function(rng_mf, n, mf_ranges))
        for key in OPTIONAL_PARAM_COLUMNS:
            if key in given:
                lab[key] = given[key]
        check_mass_function_values(lab)
    else:
        age_rng, mh_rng = priors["log_age"], priors["feh"]
    if field_fraction > 0:
        age_rng = (min(age_rng[0], f_age[0]), max(age_rng[1], f_age[1]))
        mh_rng = (min(mh_rng[0], f_mh[0]), max(mh_rng[1], f_mh[1]))
    lat = isochrone_lattice(grid, age_rng, mh_rng, step=lattice_step)
    imf_w = lat.segment_imf_weights()
    mh_min, mh_max = (float(v) for v in grid.mh_range)

    def member_pops(lab, idx):
        return _Populations(node=lat.node_index(lab["log_age"][idx], lab["feh"][idx]),
                            a_v=lab["a_v"][idx], dist_mod=lab["dist_mod"][idx],
                            need=lab["n_stars"][idx], cluster=np.asarray(idx),
                            is_field=np.zeros(np.size(idx), bool),
                            mf_break=lab["mf_m_break"][idx], mf_alpha=lab["mf_alpha_low"][idx])

    def field_salpeter(k):  # field populations keep Salpeter's IMF
        return dict(mf_break=np.ones(k), mf_alpha=np.full(k, SALPETER_ALPHA))

    # 1. parameters, redrawing vectors that cannot reach the cut
    n_draws = n_rejected = 0
    if params is not None:
        ok = _viability(lat, imf_w, member_pops(lab, np.arange(n)), opts)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            raise ValueError(f"{bad.size} parameter rows cannot produce stars with G ≤ {g_max} "
                             f"(rows {bad[:10].tolist()}{'...' if bad.size > 10 else ''}): too old, "
                             "distant or extinguished")
        n_draws = n
    else:
        lab = _draw(rng_params, n, priors)
        lab.update(draw_mass_function(rng_mf, n, mf_ranges))
        todo = np.arange(n)
        n_draws = n
        for _ in range(1000):
            if todo.size == 0:
                break
            ok = _viability(lat, imf_w, member_pops(lab, todo), opts)
            bad = todo[~ok]
            n_rejected += bad.size
            if bad.size:
                new = _draw(rng_params, bad.size, priors)
                for k in new:
                    lab[k][bad] = new[k]
                n_draws += bad.size
            todo = bad
        else:
            raise RuntimeError(f"could not draw viable cluster parameters in 1000 rounds: nearly every draw "
                               f"of the priors {priors} is too old, distant or extinguished to give stars "
                               f"with G ≤ {g_max}; narrow the priors")

    # 2. field populations (optional)
    n_field = np.zeros(n, dtype=np.int64)
    field_unavailable = 0
    pops_field = None
    if field_fraction > 0 and n:
        n_field = np.rint(field_fraction * lab["n_stars"]).astype(np.int64)
        n_field = np.minimum(n_field, lab["n_stars"] - 1)
        fa = rng_field.uniform(*f_age, n)
        fm = rng_field.uniform(*f_mh, n)
        todo = np.flatnonzero(n_field > 0)
        for _ in range(20):
            if todo.size == 0:
                break
            pf = _Populations(node=lat.node_index(fa[todo], fm[todo]), a_v=lab["a_v"][todo],
                              dist_mod=lab["dist_mod"][todo], need=n_field[todo], cluster=todo,
                              is_field=np.ones(todo.size, bool), **field_salpeter(todo.size))
            ok = _viability(lat, imf_w, pf, opts)
            todo = todo[~ok]
            fa[todo] = rng_field.uniform(*f_age, todo.size)
            fm[todo] = rng_field.uniform(*f_mh, todo.size)
        field_unavailable = int(todo.size)
        n_field[todo] = 0
        has = np.flatnonzero(n_field > 0)
        pops_field = _Populations(node=lat.node_index(fa[has], fm[has]), a_v=lab["a_v"][has],
                                  dist_mod=lab["dist_mod"][has], need=n_field[has], cluster=has,
                                  is_field=np.ones(has.size, bool), **field_salpeter(has.size))
    n_members = lab["n_stars"] - n_field
    pops_mem = member_pops(dict(lab, n_stars=n_members), np.arange(n))
    if pops_field is not None:
        pops = _Populations(*(np.concatenate([getattr(pops_mem, f.name), getattr(pops_field, f.name)])
                              for f in dataclasses.fields(_Populations)))
    else:
        pops = pops_mem

    # 3. stars, in chunks of whole clusters
    bounds = [0]
    csum = np.cumsum(lab["n_stars"])
    while bounds[-1] < n:
        start_stars = csum[bounds[-1] - 1] if bounds[-1] > 0 else 0
        stop = int(np.searchsorted(csum, start_stars + _CHUNK_STARS, side="right"))
        bounds.append(max(stop, bounds[-1] + 1))
    chunk_rngs = [np.random.default_rng(s) for s in ss.spawn(len(bounds))]
    pop_order = np.argsort(pops.cluster, kind="stable")
    pop_cluster_sorted = pops.cluster[pop_order]
    star_parts = []
    n_drawn_stars = 0
    bar = progress_bar(total=n, desc="simulating clusters", disable=not progress, unit="cl")
    try:
        for c, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            p0, p1 = np.searchsorted(pop_cluster_sorted, [lo, hi])
            sub = pops.take(pop_order[p0:p1])
            out, drawn = _generate_chunk(lat, imf_w, sub, opts, chunk_rngs[c])
            n_drawn_stars += drawn
            cl = sub.cluster[out["pop"]]
            isf = sub.is_field[out["pop"]]
            order = np.argsort(cl * 2 + isf, kind="stable")
            out = {k: v[order] for k, v in out.items()}
            out["cluster"] = cl[order]
            out["is_field"] = isf[order]
            del out["pop"]
            star_parts.append(_finish_stars(out, opts, chunk_rngs[c], parallax_error))
            bar.update(hi - lo)
    finally:
        bar.close()

    if star_parts:
        stars = {k: np.concatenate([p[k] for p in star_parts]) for k in star_parts[0]}
    else:
        stars = {k: np.empty(0, np.float32) for k in STAR_FLOAT_COLUMNS}
        stars.update(cluster=np.empty(0, np.int64), is_field=np.empty(0, bool),
                     a_v_star=np.empty(0, np.float32))
    cluster_of_star = stars.pop("cluster")
    sizes = np.bincount(cluster_of_star, minlength=n)
    if not np.array_equal(sizes, lab["n_stars"]):
        raise RuntimeError("internal error: star counts differ from n_stars")
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if not binaries:
        stars.pop("is_binary", None)
        stars.pop("mass_ratio", None)
    if differential_extinction <= 0 and field_fraction <= 0:
        stars.pop("a_v_star", None)
    if field_fraction <= 0:
        stars.pop("is_field", None)

    plx_mean, plx_err = _parallax_summary(stars["parallax"], stars["parallax_error"], offsets)
    iso_age, iso_mh = lat.node_params(lat.node_index(lab["log_age"], lab["feh"]))
    clip_low = lab["feh"] < mh_min - _TOL
    clip_high = lab["feh"] > mh_max + _TOL
    labels = pd.DataFrame({
        "log_age": lab["log_age"], "feh": lab["feh"], "a_v": lab["a_v"], "dist_mod": lab["dist_mod"],
        "n_stars": lab["n_stars"].astype(np.int64), "parallax": plx_mean, "parallax_error": plx_err,
        "parallax_true": np.power(10.0, 2.0 - lab["dist_mod"] / 5.0),
        "log_age_iso": iso_age, "mh_iso": iso_mh,
        "n_members": n_members.astype(np.int64), "n_field": n_field.astype(np.int64),
        "mf_m_break": lab["mf_m_break"], "mf_alpha_low": lab["mf_alpha_low"],
        "feh_clipped": clip_low | clip_high,
    })
    meta = {
        "simulated": True,
        "generator": "ocnb.sim.simulate_populations",
        "seed": int(seed),
        "priors": {k: list(v) for k, v in priors.items()} if priors is not None else None,
        "params_given": params is not None,
        "n_clusters": int(n),
        "n_draws": int(n_draws),
        "n_rejected": int(n_rejected),
        "rejection_rate": float(n_rejected / n_draws) if n_draws else 0.0,
        "rejection_rule": (f"no noiseless isochrone point with G <= {g_max}, "
                           f"or pass probability < {MIN_SURVIVAL}"),
        "draws_per_star": float(n_drawn_stars / max(int(lab["n_stars"].sum()), 1)) if n else 0.0,
        "feh_isochrone_min": mh_min,
        "feh_isochrone_max": mh_max,
        "feh_clip_allowed": list(clip),
        "feh_clipped_low": int(clip_low.sum()),
        "feh_clipped_high": int(clip_high.sum()),
        "feh_clipped_fraction": float(np.mean(clip_low | clip_high)) if n else 0.0,
        "lattice": {"log_age": [float(lat.ages[0]), float(lat.ages[-1]), int(lat.ages.size)],
                    "mh": [float(lat.mhs[0]), float(lat.mhs[-1]), int(lat.mhs.size)],
                    "spacing": list(lat.spacing), "step": float(lattice_step), "lookup": "nearest node",
                    "max_label": int(lat.max_label), "source": lat.source},
        "imf": mass_function_description(mf_ranges),
        "mass_function": mass_function if isinstance(mass_function, str) else dict(mf_ranges),
        "extinction": f"dustapprox {law}, R_V=3.1, per-star Teff and A_V",
        "error_model": repr(em),
        "twomass_usable": f"S/N = 1.0857/sigma > {TWOMASS_MIN_SNR} and sigma <= {TWOMASS_MAX_SIGMA} mag",
        "g_max": float(g_max),
        "parallax": ("per star 1000/d + N(0, parallax_error(G_obs)); cluster parallax = mean over stars, "
                     "parallax_error = sqrt(sum sigma^2)/N")
        if parallax_noise else "per star 1000/d, no noise",
        "options": {"binaries": bool(binaries),
                    "binary_fraction": float(binary_fraction) if binaries else 0.0,
                    "differential_extinction": float(differential_extinction),
                    "field_fraction": float(field_fraction), "field_unavailable": field_unavailable,
                    "field_log_age": list(f_age), "field_mh": list(f_mh),
                    "parallax_noise": bool(parallax_noise)},
    }
    return SyntheticClusters(labels, offsets, stars, meta)
