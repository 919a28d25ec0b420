"""SIMULATED open clusters for training the CMD ANN (Cavallo et al. 2024, Sect. 2.2, Table 1).

Everything this module returns is **simulated data**: synthetic simple
stellar populations drawn from PARSEC isochrones, not observations.

Recipe (spec ``cmd_quadtree_ann.md`` §2, with ocnb's own building blocks)
-------------------------------------------------------------------------
1. **Parameters** (Table 1, independent uniform draws): log age U(6.7, 10.1),
   [Fe/H] U(−0.8, 0.6), A_V U(0, 5) mag, dMod U(0, 15) mag and
   log10 N_stars U(1, 3.5), N_stars = round(10^u) (10 … 3162).
2. **Isochrone**: the PARSEC v1.2S grid of :mod:`ocnb.isochrones`
   (:class:`~ocnb.isochrones.IsochroneGrid`, phases up to the early AGB,
   PARSEC label ≤ 7). To serve 50,000 clusters quickly the interpolated
   isochrones are precomputed once on a lattice of spacing ≤ 0.05 in log age
   and [M/H] (:func:`isochrone_lattice`, cached in the data home) and each
   cluster uses the **nearest lattice node**; the labels keep the drawn
   continuous values (label noise ≤ 0.025 dex, rms ≈ 0.014 dex).
   [Fe/H] is treated as PARSEC's scaled-solar [M/H].
   **The grid stops at [M/H] = +0.30**: clusters drawn with [Fe/H] in
   (+0.30, +0.60] — about 21 % of the Table-1 prior — are simulated with the
   +0.30 isochrone while their label keeps the drawn value. A network cannot
   tell these metallicities apart; ``meta["feh_clipped_fraction"]`` records
   how many clusters were affected. Pass ``priors={..., "feh": (-0.8, 0.3)}``
   to avoid it.
3. **Masses**: Salpeter IMF, dN/dm ∝ m^−2.35, between the isochrone's
   smallest and largest initial mass (the paper; ``mass_function="salpeter"``);
   every quantity is interpolated linearly in initial mass between isochrone
   points. ``mass_function="kroupa"`` bends the slope to 1.3 below 0.5 M☉, and
   ``"varied"`` draws a present-day mass function per cluster: slope α_low ~
   U(−0.5, 2.35) below a break mass m_b ~ U(0.3, 1.0) M☉, Salpeter above
   (labels ``mf_alpha_low``, ``mf_m_break``). Why: real member lists hold far
   fewer faint stars than Salpeter predicts (IMF turnover, evaporation of
   low-mass stars, faint-end incompleteness): the median G of the Pleiades
   members is 15.8, a Salpeter Pleiades gives 16.8, a Kroupa one 16.0. A
   network trained on Salpeter clusters reads that deficit as age and
   metallicity (a Salpeter-trained ensemble puts a Kroupa Pleiades 0.45 dex
   too old); training on ``"varied"`` clusters takes the luminosity function
   away as an age clue. For speed the IMF is sampled
   only on the isochrone segments that can reach the magnitude cut (noiseless
   G ≤ 18 + margin, the margin covering noise, binaries, differential
   extinction and field-star distances); masses outside cannot pass the cut,
   so the surviving stars are an unbiased sample of the full IMF.
4. **Photometry**: m = M + dMod + A_V · k_band(Teff, A_V) for G, BP, RP, J, H
   with k_band from :func:`ocnb.photometry.extinction_ratio` evaluated **per
   star** at its own Teff (dustapprox, Gordon+2023 law, R_V = 3.1; the paper
   used a Cardelli+89 law through pysvo).
5. **Errors** (:class:`ocnb.photometry.PhotometricErrorModel`): Gaussian noise
   σ(band, m_true) in every band (Gaia: DPAC spline; 2MASS: empirical fit to
   real members). Reported errors are σ at the *observed* magnitude, as in the
   catalogues. 2MASS S/N = 1.0857/σ; a 2MASS band is *usable* when S/N > 7
   (quality letter A or B) and σ ≤ 0.3 mag — the paper's cuts; the letters
   are reproduced in :meth:`SyntheticClusters.cluster` (``ph_qual``), and on
   real M67 members the letters A/B coincide with σ < 1.0857/7.
6. **Cut and N_stars**: stars are kept if observed G ≤ 18; N_stars counts
   **survivors** (it mimics an observed member count). Stars are drawn in
   batches until N_stars survive. A parameter vector whose isochrone cannot
   (practically) reach G ≤ 18 — no point with noiseless G ≤ 18, or less than
   a 10⁻³ chance for a sampled star to pass — is **redrawn**; the rejection
   rate is recorded in ``meta`` (it slightly reshapes the effective prior,
   removing faint = old, distant, extinguished corners).
7. **Parallax**: per star ϖ_true = 1000/d [mas] = 10^(2 − dMod/5) plus
   Gaussian noise of the typical Gaia DR3 σ_ϖ at the star's observed G
   (:func:`ocnb.photometry.parallax_error`). The cluster's ``parallax`` is the
   unweighted **mean of its stars' parallaxes** (what is done with real
   members, spec §1) and ``parallax_error`` = sqrt(Σσ_i²)/N its uncertainty;
   ``parallax_true`` keeps 1000/d. ``parallax_noise=False`` gives the paper's
   noiseless parallax.

Options the paper lists as future work (off by default; for robustness studies)
-------------------------------------------------------------------------------
``binaries``: a fraction ``binary_fraction`` of the stars are unresolved
binaries with a flat mass ratio q ~ U(0, 1); the companion's fluxes (from the
same isochrone, extinguished at its own Teff) are added in every band; a
companion below the isochrone's lowest mass adds no light.
``differential_extinction`` (mag): each star's A_V is A_V + U(−δ, +δ),
clipped at 0.
``field_fraction``: that fraction of each cluster's N_stars are field
contaminants (flag ``is_field``): stars of one older field population per
cluster (log age U(8, 10), [M/H] U(−0.6, 0.2)) along the same line of sight,
each at its own distance modulus dMod + U(−1, +1) with extinction scaled as
A_V · 10^(ΔdMod/5) (dust ∝ distance). They also enter the cluster's mean
parallax, as contaminants do in real member lists. A deliberately simple model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "LABELS",
    "MASS_FUNCTIONS",
    "TABLE1_PRIORS",
    "IsochroneLattice",
    "SyntheticClusters",
    "isochrone_lattice",
    "simulate_clusters",
    "twomass_snr",
    "twomass_usable",
    "twomass_quality_letter",
]

#: Table 1 of Cavallo et al. (2024): uniform priors (low, high) of the synthetic clusters.
TABLE1_PRIORS = {
    "log_age": (6.7, 10.1),
    "feh": (-0.8, 0.6),
    "a_v": (0.0, 5.0),
    "dist_mod": (0.0, 15.0),
    "log_n": (1.0, 3.5),
}
#: Network targets, in output order.
LABELS = ("log_age", "feh", "a_v", "dist_mod")

#: Bands simulated (Gaia DR3 G, BP, RP and 2MASS J, H; the paper's five).
SIM_BANDS = ("G", "BP", "RP", "J", "H")
_MAG_COL = {"G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag",
            "J": "j_m", "H": "h_m"}
_ERR_COL = {"G": "phot_g_mean_mag_error", "BP": "phot_bp_mean_mag_error",
            "RP": "phot_rp_mean_mag_error", "J": "j_msigcom", "H": "h_msigcom"}

#: Salpeter (1955) slope: dN/dm ∝ m^-alpha.
SALPETER_ALPHA = 2.35
#: Mass functions: uniform ranges (low, high) of the break mass m_b [M☉] and the slope below it
#: (Salpeter's above); ``None`` is the paper's single Salpeter slope. See the module docstring, step 3.
MASS_FUNCTIONS: dict = {
    "salpeter": None,
    "kroupa": {"m_break": (0.5, 0.5), "alpha_low": (1.3, 1.3)},
    "varied": {"m_break": (0.3, 1.0), "alpha_low": (-0.5, SALPETER_ALPHA)},
}
#: Magnitude cut (Gaia G, observed), as in the paper.
G_MAX = 18.0
#: 2MASS usability: S/N > 7 (quality A/B) and σ ≤ 0.3 mag (Cavallo+2024 Sect. 2.1).
TWOMASS_MIN_SNR = 7.0
TWOMASS_MAX_SIGMA = 0.3
_MAG_PER_FLUX = 2.5 / np.log(10.0)  # σ_mag = 1.0857 / (S/N)
#: Parameter vectors whose sampled stars pass the cut with probability below this are redrawn.
MIN_SURVIVAL = 1e-3
#: Extra magnitude margin of the IMF sampling region beyond the cut (noise).
_NOISE_MARGIN = 0.5
_BINARY_MARGIN = 2.5 * np.log10(2.0)  # an equal-mass binary is 0.753 mag brighter
#: Field contaminants: population ranges and line-of-sight spread (mag).
FIELD_LOG_AGE = (8.0, 10.0)
FIELD_MH = (-0.6, 0.2)
FIELD_DMOD_SPREAD = 1.0
_CHUNK_STARS = 1_500_000  # stars per generation chunk (memory ~ 1 GB)
_MAX_DRAWS = 6_000_000  # star draws per sampling round of a chunk
_LATTICE_VERSION = "v1"
_CACHE_MIN_NODES = 64  # small lattices are not worth a cache file
_LATTICE_MEMO: dict = {}


# ---------------------------------------------------------------------------
# 2MASS usability
# ---------------------------------------------------------------------------
#: σ (mag) limits of the 2MASS quality letters, S/N = 1.0857/σ: A S/N ≥ 10, B S/N > 7, C S/N ≥ 5.
SIGMA_A = float(_MAG_PER_FLUX / 10.0)
SIGMA_B = float(_MAG_PER_FLUX / TWOMASS_MIN_SNR)
SIGMA_C = float(_MAG_PER_FLUX / 5.0)


def twomass_snr(sigma) -> np.ndarray:
    """2MASS S/N from the magnitude error: 1.0857/σ (NaN/0 σ → 0)."""
    s = np.asarray(sigma, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(s) & (s > 0), _MAG_PER_FLUX / s, 0.0)


def twomass_usable(sigma) -> np.ndarray:
    """True where a 2MASS magnitude with error σ is usable: S/N = 1.0857/σ > 7 and σ ≤ 0.3 mag."""
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (s > 0) & (s < SIGMA_B) & (s <= TWOMASS_MAX_SIGMA)


def twomass_quality_letter(sigma) -> np.ndarray:
    """2MASS ph_qual letter from σ via S/N = 1.0857/σ: A (≥ 10), B (> 7), C (≥ 5), D otherwise.

    On real M67 members (``load_members("M67")``) the catalogue's A/B letters
    correspond to σ < 0.109 / 0.155 mag, i.e. exactly these S/N limits.
    """
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = s > 0
        return np.where(ok & (s <= SIGMA_A), "A", np.where(ok & (s < SIGMA_B), "B",
                                                            np.where(ok & (s <= SIGMA_C), "C", "D")))


# ---------------------------------------------------------------------------
# Isochrone lattice
# ---------------------------------------------------------------------------
_LATTICE_COLS = ("log_teff", "G", "BP", "RP", "J", "H")


@dataclasses.dataclass
class IsochroneLattice:
    """PARSEC isochrones precomputed on a regular (log age, [M/H]) lattice.

    Node ``k = i_mh * len(ages) + i_age`` holds the interpolated isochrone
    :meth:`IsochroneGrid.isochrone(ages[i_age], mhs[i_mh], max_label)` as
    padded arrays of ``width`` points (``length[k]`` real points, the rest
    repeat the last point so that padded segments have zero mass width).
    """

    ages: np.ndarray
    mhs: np.ndarray
    mini: np.ndarray  # (n_nodes, width) float64, non-decreasing
    columns: dict  # name -> (n_nodes, width) float64: log_teff, G, BP, RP, J, H (absolute)
    length: np.ndarray  # (n_nodes,)
    max_label: int = 7
    source: str = ""

    @property
    def n_nodes(self) -> int:
        return self.mini.shape[0]

    @property
    def width(self) -> int:
        return self.mini.shape[1]

    @property
    def spacing(self) -> tuple:
        """(Δ log age, Δ[M/H]) between lattice nodes (0 for a single node)."""
        da = float(np.diff(self.ages).max()) if self.ages.size > 1 else 0.0
        dm = float(np.diff(self.mhs).max()) if self.mhs.size > 1 else 0.0
        return da, dm

    def node_index(self, log_age, mh) -> np.ndarray:
        """Nearest lattice node of each (log age, [M/H]); values outside are clipped to the lattice."""
        return _nearest(self.mhs, mh) * self.ages.size + _nearest(self.ages, log_age)

    def node_params(self, node) -> tuple:
        """(log age, [M/H]) of lattice nodes."""
        node = np.asarray(node)
        return self.ages[node % self.ages.size], self.mhs[node // self.ages.size]

    def segment_imf_weights(self) -> np.ndarray:
        """Salpeter number fraction (unnormalised) of every isochrone segment, (n_nodes, width − 1)."""
        return _salpeter_integral(self.mini[:, :-1], self.mini[:, 1:])


def _nearest(nodes: np.ndarray, x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if nodes.size == 1:
        return np.zeros(x.shape, dtype=np.int64)
    step = (nodes[-1] - nodes[0]) / (nodes.size - 1)
    return np.clip(np.rint((x - nodes[0]) / step), 0, nodes.size - 1).astype(np.int64)


def _lattice_nodes(lo: float, hi: float, step: float) -> np.ndarray:
    if hi - lo < 1e-9:
        return np.array([round(float(lo), 10)])
    n = int(math.ceil((hi - lo) / step - 1e-9)) + 1
    return np.round(np.linspace(lo, hi, n), 10)


def _grid_digest(grid) -> str:
    h = hashlib.sha256()
    for a in (grid.ages, grid.mhs, grid.values, grid.present):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def isochrone_lattice(grid=None, log_age_range=(6.7, 10.1), mh_range=(-0.8, 0.3), step: float = 0.05,
                      max_label: int = 7, cache: bool = True) -> IsochroneLattice:
    """Precompute PARSEC isochrones on a lattice of spacing ≤ ``step`` (both axes).

    Ranges are clipped to the grid (log age 6.0-10.2, [M/H] −2.19…+0.30).
    Uses the public :meth:`IsochroneGrid.isochrone` (phase-wise bilinear
    interpolation), ~0.3 ms per node; lattices with ≥ 64 nodes are cached in
    the data home (``Cache("cmd_ann")``, keyed by a hash of the grid arrays,
    the ranges, the step and ``max_label``). The Table-1 lattice
    (6.7-10.1 × −0.8…+0.30, step 0.05) has 69 × 23 = 1587 nodes.
    """
    from ..isochrones import IsochroneGrid, default_grid

    grid = grid if grid is not None else default_grid()
    if not isinstance(grid, IsochroneGrid):
        raise TypeError(f"grid must be an ocnb.isochrones.IsochroneGrid, not {type(grid).__name__}")
    if not step > 0:
        raise ValueError(f"step must be > 0, not {step!r}")
    a_lo, a_hi = (float(np.clip(v, *grid.age_range)) for v in log_age_range)
    m_lo, m_hi = (float(np.clip(v, *grid.mh_range)) for v in mh_range)
    if a_hi < a_lo or m_hi < m_lo:
        raise ValueError(f"empty lattice range: log age {log_age_range}, [M/H] {mh_range}")
    ages = _lattice_nodes(a_lo, a_hi, step)
    mhs = _lattice_nodes(m_lo, m_hi, step)

    def compute() -> dict:
        isos = [grid.isochrone(a, m, max_label=max_label).data for m in mhs for a in ages]
        width = max(len(d) for d in isos)
        n = len(isos)
        out = {"mini": np.empty((n, width))}
        for c in _LATTICE_COLS:
            out[c] = np.empty((n, width))
        length = np.empty(n, dtype=np.int64)
        for k, d in enumerate(isos):
            m = len(d)
            length[k] = m
            pad = width - m
            mini = np.maximum.accumulate(d["mini"].to_numpy(float))
            out["mini"][k] = np.pad(mini, (0, pad), mode="edge")
            for c in _LATTICE_COLS:
                out[c][k] = np.pad(d[c].to_numpy(float), (0, pad), mode="edge")
        out["length"] = length
        out["ages"] = ages
        out["mhs"] = mhs
        return out

    n_nodes = ages.size * mhs.size
    key = (f"lattice_{_LATTICE_VERSION}_{_grid_digest(grid)}_a{ages[0]:.4f}-{ages[-1]:.4f}"
           f"_m{mhs[0]:.4f}-{mhs[-1]:.4f}_s{step:.4f}_L{int(max_label)}.npz")
    if cache and key in _LATTICE_MEMO:
        return _LATTICE_MEMO[key]
    if cache and n_nodes >= _CACHE_MIN_NODES:
        from ..cache import Cache

        arrays = Cache("cmd_ann").fetch_arrays(key, compute)
    else:
        arrays = compute()
    lat = IsochroneLattice(
        ages=np.asarray(arrays["ages"], float), mhs=np.asarray(arrays["mhs"], float),
        mini=np.asarray(arrays["mini"], float),
        columns={c: np.asarray(arrays[c], float) for c in _LATTICE_COLS},
        length=np.asarray(arrays["length"], np.int64), max_label=int(max_label),
        source=getattr(grid, "source", ""),
    )
    if cache:
        while len(_LATTICE_MEMO) >= 4:  # keep the last few lattices of this process
            _LATTICE_MEMO.pop(next(iter(_LATTICE_MEMO)))
        _LATTICE_MEMO[key] = lat
    return lat


def _salpeter_integral(a, b, alpha: float = SALPETER_ALPHA):
    """∫_a^b m^-alpha dm (unnormalised number of stars), vectorised; 0 where b ≤ a."""
    p = 1.0 - alpha
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return np.where(b > a, (np.power(a, p) - np.power(b, p)) / (alpha - 1.0), 0.0)


def _salpeter_inverse(a, b, u, alpha: float = SALPETER_ALPHA):
    """Mass with Salpeter CDF fraction u between a and b."""
    p = 1.0 - alpha
    ap, bp = np.power(a, p), np.power(b, p)
    return np.power(ap + u * (bp - ap), 1.0 / p)


def _power_law_integral(x, y, alpha):
    """∫_x^y m^-alpha dm for array-valued alpha (alpha = 1 included); 0 where y ≤ x."""
    p = 1.0 - np.asarray(alpha, dtype=float)
    unit = np.abs(p) < 1e-6
    ps = np.where(unit, 1.0, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(unit, np.log(y / x), (np.power(y, ps) - np.power(x, ps)) / ps)
    return np.where(y > x, v, 0.0)


def _power_law_inverse(x, y, f, alpha):
    """Mass at CDF fraction f of m^-alpha between x and y (array-valued alpha)."""
    p = 1.0 - np.asarray(alpha, dtype=float)
    unit = np.abs(p) < 1e-6
    ps = np.where(unit, 1.0, p)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        xp = np.power(x, ps)
        v = np.where(unit, x * np.power(y / x, f), np.power(xp + f * (np.power(y, ps) - xp), 1.0 / ps))
    return np.where(y > x, v, x)


def _mass_function_integral(a, b, m_break, alpha_low):
    """Number of stars between masses a and b for the broken power law (continuous at m_break)."""
    low = _power_law_integral(np.minimum(a, m_break), np.minimum(b, m_break), alpha_low)
    high = _power_law_integral(np.maximum(a, m_break), np.maximum(b, m_break), SALPETER_ALPHA)
    return low * np.power(m_break, alpha_low - SALPETER_ALPHA) + high


def _mass_function_inverse(a, b, u, m_break, alpha_low):
    """Mass with broken-power-law CDF fraction u between a and b (exact across the break)."""
    low = _power_law_integral(np.minimum(a, m_break), np.minimum(b, m_break), alpha_low)
    low = low * np.power(m_break, alpha_low - SALPETER_ALPHA)
    high = _power_law_integral(np.maximum(a, m_break), np.maximum(b, m_break), SALPETER_ALPHA)
    x = u * (low + high)
    with np.errstate(divide="ignore", invalid="ignore"):
        m_low = _power_law_inverse(np.minimum(a, m_break), np.minimum(b, m_break),
                                   np.where(low > 0, x / low, 0.0), alpha_low)
        m_high = _power_law_inverse(np.maximum(a, m_break), np.maximum(b, m_break),
                                    np.where(high > 0, (x - low) / high, 0.0), SALPETER_ALPHA)
    return np.where(x < low, m_low, m_high)


# ---------------------------------------------------------------------------
# The container
# ---------------------------------------------------------------------------
_STAR_FLOAT = (
    "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
    "phot_g_mean_mag_error", "phot_bp_mean_mag_error", "phot_rp_mean_mag_error",
    "j_m", "h_m", "j_msigcom", "h_msigcom", "parallax", "parallax_error", "teff", "mini",
)


class SyntheticClusters:
    """A set of SIMULATED clusters: labels plus all stars in a flat (CSR) layout.

    Attributes
    ----------
    labels : pandas.DataFrame
        One row per cluster: ``log_age, feh, a_v, dist_mod`` (the drawn
        values = training labels), ``n_stars`` (stars with G ≤ 18),
        ``parallax`` / ``parallax_error`` [mas] (mean of the stars' noisy
        parallaxes and its uncertainty), ``parallax_true`` [mas] (1000/d),
        ``log_age_iso`` / ``mh_iso`` (the lattice isochrone actually used),
        ``n_members``, ``n_field``.
    offsets : numpy.ndarray
        int64, length n + 1: stars of cluster i are ``offsets[i]:offsets[i+1]``.
    stars : dict of numpy.ndarray
        Flat per-star arrays (float32 unless noted), canonical member-table
        names: ``phot_g_mean_mag, phot_bp_mean_mag, phot_rp_mean_mag``, their
        ``*_error``, ``j_m, h_m, j_msigcom, h_msigcom`` (2MASS usability follows
        from σ: :func:`twomass_usable`), ``parallax, parallax_error`` [mas],
        ``teff`` [K], ``mini`` [M☉] (primary); with options on also
        ``is_binary``/``mass_ratio``, ``a_v_star``, ``is_field`` (bool/float32).
    meta : dict
        ``simulated: True``, priors, lattice spacing, rejection rate, options,
        seed, models used (JSON-serialisable).
    """

    def __init__(self, labels: pd.DataFrame, offsets: np.ndarray, stars: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any] | None = None):
        self.labels = labels.reset_index(drop=True)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.stars = dict(stars)
        self.meta = dict(meta or {})
        self.meta.setdefault("simulated", True)
        if self.offsets.size != len(self.labels) + 1:
            raise ValueError(f"offsets has {self.offsets.size} entries for {len(self.labels)} clusters")
        n = int(self.offsets[-1])
        for k, v in self.stars.items():
            if len(v) != n:
                raise ValueError(f"star column {k!r} has {len(v)} rows, offsets say {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        opts = [k for k in ("binaries", "differential_extinction", "field_fraction")
                if self.meta.get("options", {}).get(k)]
        return (f"<SyntheticClusters (SIMULATED): {len(self)} clusters, {self.n_stars_total:,} stars"
                f"{', options: ' + ', '.join(opts) if opts else ''}>")

    @property
    def n_stars_total(self) -> int:
        return int(self.offsets[-1])

    @property
    def sizes(self) -> np.ndarray:
        """Stars per cluster (= ``labels.n_stars``)."""
        return np.diff(self.offsets)

    def star_cluster_index(self) -> np.ndarray:
        """Cluster index of every star (flat)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.sizes)

    def y(self, labels=LABELS) -> np.ndarray:
        """Training targets (n, 4) float64 in :data:`LABELS` order."""
        return self.labels[list(labels)].to_numpy(float)

    def cluster(self, i: int) -> pd.DataFrame:
        """Cluster ``i`` as a member table in ocnb's canonical schema (SIMULATED stars).

        Columns of :data:`ocnb.datasets.members.MEMBER_COLUMNS` (NaN where not
        simulated: astrometry other than parallax, Ks, WISE), with
        ``cluster = "SYN-<i>"``, ``source_id = i·10^6 + k``, ``ph_qual`` letters
        from the simulated 2MASS S/N (J, H; Ks is ``U``: not simulated) and the
        extra columns ``teff``, ``mini`` and the option flags.
        """
        from ..datasets.members import MEMBER_COLUMNS

        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"cluster index {i} out of range for {len(self)} clusters")
        i %= len(self)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        n = b - a
        data: dict[str, Any] = {}
        for c in MEMBER_COLUMNS:
            if c in self.stars:
                data[c] = self.stars[c][a:b].astype(np.float64)
            elif c == "source_id":
                data[c] = np.int64(i) * 1_000_000 + np.arange(n, dtype=np.int64)
            elif c == "cluster":
                data[c] = np.full(n, f"SYN-{i:06d}", dtype=object)
            elif c == "ph_qual":
                lj = twomass_quality_letter(self.stars["j_msigcom"][a:b])
                lh = twomass_quality_letter(self.stars["h_msigcom"][a:b])
                data[c] = np.array([x + y + "U" for x, y in zip(lj, lh)], dtype=object)
            elif c == "membership_probability":
                data[c] = np.ones(n)
            else:
                data[c] = np.full(n, np.nan)
        for c, v in self.stars.items():
            if c not in data:
                data[c] = v[a:b].astype(np.float64) if v.dtype.kind == "f" else v[a:b].copy()
        return pd.DataFrame(data)

    def subset(self, idx) -> "SyntheticClusters":
        """A new container with clusters ``idx`` (int indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        sizes = self.sizes[idx]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        starts = self.offsets[idx]
        take = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1], dtype=np.int64)
        stars = {k: v[take] for k, v in self.stars.items()}
        meta = dict(self.meta, subset_of=int(len(self)))
        return SyntheticClusters(self.labels.iloc[idx].reset_index(drop=True), offsets, stars, meta)

    def __getitem__(self, idx) -> "SyntheticClusters":
        if isinstance(idx, slice):
            idx = np.arange(len(self))[idx]
        return self.subset(idx)

    # -- persistence (npz, no pickle) -------------------------------------------
    def save(self, path) -> Path:
        """Write to ``path`` (.npz, uncompressed, no pickles); labels, stars, offsets and meta."""
        path = Path(path)
        arrays = {"offsets": self.offsets, "meta_json": np.array(json.dumps(_jsonable(self.meta)))}
        arrays["label_columns"] = np.array(list(self.labels.columns))
        for c in self.labels.columns:
            arrays[f"label__{c}"] = self.labels[c].to_numpy()
        for k, v in self.stars.items():
            arrays[f"star__{k}"] = v
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "SyntheticClusters":
        """Read a file written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as z:
            cols = [str(c) for c in z["label_columns"]]
            labels = pd.DataFrame({c: z[f"label__{c}"] for c in cols})
            stars = {k[len("star__"):]: z[k] for k in z.files if k.startswith("star__")}
            meta = json.loads(str(z["meta_json"]))
            return cls(labels, z["offsets"], stars, meta)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


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

    def take(self, idx) -> "_Populations":
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
        w = _mass_function_integral(lat.mini[node, :-1], lat.mini[node, 1:], pops.mf_break[:, None],
                                    pops.mf_alpha[:, None])
    margin = opts.margin(pops.is_field, pops.a_v)[:, None]
    weights = np.where(lo <= opts.g_max + margin, w, 0.0)
    passing = np.where(hi <= opts.g_max, w, np.where(lo <= opts.g_max, 0.5 * w, 0.0))
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        survival = np.where(total > 0, passing.sum(axis=1) / total, 0.0)
    return weights, survival, g_app.min(axis=1)


def _viability(lat, imf_w, pops: _Populations, opts: _Options, chunk: int = 4096) -> np.ndarray:
    """True where a population can practically reach G ≤ g_max (see module docstring, step 6)."""
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
            m = _salpeter_inverse(a, b, rng.random(pop.size))
        else:
            m = _mass_function_inverse(a, b, rng.random(pop.size), pops.mf_break[pop], pops.mf_alpha[pop])
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

        def apparent(band, sel=slice(None)):
            app = (_interp(lat, band, flat[sel], t[sel]) + dmod[sel]
                   + a_v[sel] * _ext_ratio(band, teff[sel], a_v[sel], opts.law))
            if opts.binaries:
                app2 = (_interp(lat, band, j2[sel], t2[sel]) + dmod[sel]
                        + a_v[sel] * _ext_ratio(band, teff2[sel], a_v[sel], opts.law))
                app = _combine(app, app2, lit[sel])
            return app

        em = opts.error_model
        g_true = apparent("G")
        g_obs = g_true + em.sigma("G", g_true) * rng.standard_normal(pop.size)
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
        part["G_err"] = em.sigma("G", g_obs[kidx])
        for band in ("BP", "RP", "J", "H"):
            true = apparent(band, sel)
            obs = true + em.sigma(band, true) * rng.standard_normal(sel.size)
            part[band] = obs
            part[band + "_err"] = em.sigma(band, obs)
        if opts.binaries:
            part["is_binary"] = is_bin[kidx]
            part["mass_ratio"] = q[kidx]
        parts.append(part)
    else:
        raise RuntimeError(f"star sampling did not converge in {max_rounds} rounds "
                           f"({int((need > 0).sum())} populations short)")
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return out, int(drawn.sum())


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------
def _check_priors(priors: Mapping[str, tuple]) -> dict:
    out = {}
    for key in TABLE1_PRIORS:
        if key not in priors:
            raise ValueError(f"priors lacks {key!r}; expected keys {tuple(TABLE1_PRIORS)}")
        lo, hi = (float(v) for v in priors[key])
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise ValueError(f"prior {key!r} = {priors[key]!r} must be (low, high) with low ≤ high")
        out[key] = (lo, hi)
    if out["a_v"][0] < 0:
        raise ValueError(f"prior a_v low = {out['a_v'][0]} < 0: A_V must be ≥ 0")
    if out["log_n"][0] < 0:
        raise ValueError("prior log_n must be ≥ 0 (N_stars ≥ 1)")
    return out


def _check_mass_function(mass_function):
    """Ranges of a mass-function name or dict (None for Salpeter), with clear errors."""
    if isinstance(mass_function, str):
        if mass_function not in MASS_FUNCTIONS:
            raise ValueError(f"unknown mass_function {mass_function!r}; choose one of {sorted(MASS_FUNCTIONS)} "
                             "or pass {'m_break': (lo, hi), 'alpha_low': (lo, hi)}")
        ranges = MASS_FUNCTIONS[mass_function]
    else:
        ranges = dict(mass_function)
    if ranges is None:
        return None
    if set(ranges) != {"m_break", "alpha_low"}:
        raise ValueError(f"mass_function dict needs exactly the keys 'm_break' and 'alpha_low', not {sorted(ranges)}")
    out = {k: tuple(float(v) for v in ranges[k]) for k in ("m_break", "alpha_low")}
    _check_mass_function_values({"mf_m_break": np.array(out["m_break"]), "mf_alpha_low": np.array(out["alpha_low"])})
    if out["m_break"][1] < out["m_break"][0] or out["alpha_low"][1] < out["alpha_low"][0]:
        raise ValueError(f"mass_function ranges must be (low, high) with low ≤ high: {out}")
    return out


def _check_mass_function_values(lab):
    if not (np.all(np.isfinite(lab["mf_m_break"])) and np.all(lab["mf_m_break"] > 0)):
        raise ValueError("mass-function break mass m_break must be finite and > 0 M☉")
    if not np.all(np.isfinite(lab["mf_alpha_low"])):
        raise ValueError("mass-function slope alpha_low must be finite")


def _draw_mass_function(rng, n, ranges):
    """Per-cluster break mass [M☉] and low-mass slope; Salpeter everywhere when ranges is None."""
    if ranges is None:
        return {"mf_m_break": np.ones(n), "mf_alpha_low": np.full(n, SALPETER_ALPHA)}
    return {"mf_m_break": rng.uniform(*ranges["m_break"], n), "mf_alpha_low": rng.uniform(*ranges["alpha_low"], n)}


def _draw(rng, n, priors):
    lab = {k: rng.uniform(*priors[k], n) for k in ("log_age", "feh", "a_v", "dist_mod")}
    lab["n_stars"] = np.maximum(np.rint(np.power(10.0, rng.uniform(*priors["log_n"], n))), 1).astype(np.int64)
    return lab


def simulate_clusters(n: int, seed: int = 0, priors: Mapping[str, tuple] = TABLE1_PRIORS, grid=None,
                      binaries: bool = False, binary_fraction: float = 0.3,
                      differential_extinction: float = 0.0, field_fraction: float = 0.0,
                      progress: bool = True, *, params=None, lattice_step: float = 0.05,
                      error_model=None, parallax_noise: bool = True, g_max: float = G_MAX,
                      law: str = "G23", mass_function="salpeter") -> SyntheticClusters:
    """Simulate ``n`` SIMULATED open clusters (Cavallo+2024 Sect. 2.2); see the module docstring.

    Parameters
    ----------
    n : int
        Number of clusters (the paper: 50,000). Ignored when ``params`` is given.
    seed : int
        Seed of all random draws (same seed and arguments → same clusters).
    priors : dict
        Uniform priors (low, high) for ``log_age, feh, a_v, dist_mod, log_n``
        (:data:`TABLE1_PRIORS`); low == high fixes a parameter.
    grid : IsochroneGrid, optional
        PARSEC grid (default :func:`ocnb.isochrones.default_grid`).
    binaries, binary_fraction : bool, float
        Unresolved binaries with flat mass ratio (future work in the paper; off).
    differential_extinction : float
        Half-width δ (mag) of a uniform per-star A_V spread (off: 0).
    field_fraction : float
        Fraction of each cluster's N_stars that are field contaminants (off: 0).
    progress : bool
        Show a progress bar (:func:`ocnb.parallel.progress`).
    params : DataFrame or dict, optional
        Explicit per-cluster ``log_age, feh, a_v, dist_mod, n_stars`` instead of
        prior draws (e.g. an M67-like cluster). Non-viable rows raise ValueError.
    lattice_step : float
        Isochrone lattice spacing in log age and [M/H] (≤ 0.05 recommended).
    error_model : PhotometricErrorModel, optional
        Default ``PhotometricErrorModel()`` (DPAC spline + empirical 2MASS).
    parallax_noise : bool
        Per-star Gaia parallax noise (default True; False = the paper's exact 1000/d).
    g_max : float
        Magnitude cut on observed G (18).
    law : {"G23", "F99"}
        dustapprox extinction law.
    mass_function : {"salpeter", "kroupa", "varied"} or dict
        Stellar mass function (module docstring, step 3): the paper's Salpeter slope, a
        Kroupa-like break at 0.5 M☉, or a per-cluster break mass and low-mass slope drawn from
        ``MASS_FUNCTIONS["varied"]``; a dict ``{"m_break": (lo, hi), "alpha_low": (lo, hi)}``
        sets other ranges. ``params`` may carry ``mf_m_break``/``mf_alpha_low`` columns.

    Returns
    -------
    SyntheticClusters
    """
    from ..isochrones import default_grid
    from ..parallel import progress as progress_bar
    from ..photometry import PhotometricErrorModel, parallax_error

    if not 0.0 <= binary_fraction <= 1.0:
        raise ValueError(f"binary_fraction must be in [0, 1], not {binary_fraction!r}")
    if not 0.0 <= field_fraction < 1.0:
        raise ValueError(f"field_fraction must be in [0, 1), not {field_fraction!r}")
    if differential_extinction < 0:
        raise ValueError(f"differential_extinction must be ≥ 0 mag, not {differential_extinction!r}")
    priors = _check_priors(priors)
    grid = grid if grid is not None else default_grid()
    em = error_model if error_model is not None else PhotometricErrorModel()
    opts = _Options(g_max=float(g_max), binaries=bool(binaries), binary_fraction=float(binary_fraction),
                    differential_extinction=float(differential_extinction),
                    parallax_noise=bool(parallax_noise), law=law, error_model=em)
    ss = np.random.SeedSequence(seed)
    rng_params, rng_field = (np.random.default_rng(s) for s in ss.spawn(2))
    mf_ranges = _check_mass_function(mass_function)
    # Own stream, so that Salpeter clusters stay identical to those made before the option existed.
    rng_mf = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(10_001,)))

    if params is not None:
        frame = pd.DataFrame(params)
        lab = {k: np.asarray(frame[k], dtype=float) for k in (*LABELS, "n_stars")}
        lab["n_stars"] = lab["n_stars"].astype(np.int64)
        if (lab["n_stars"] < 1).any():
            raise ValueError("params n_stars must be ≥ 1")
        n = lab["log_age"].size
        age_rng = (lab["log_age"].min(), lab["log_age"].max())
        mh_rng = (lab["feh"].min(), lab["feh"].max())
        lab.update(_draw_mass_function(rng_mf, n, mf_ranges))
        for key in ("mf_m_break", "mf_alpha_low"):
            if key in frame:
                lab[key] = np.asarray(frame[key], dtype=float)
        _check_mass_function_values(lab)
    else:
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be ≥ 0, not {n}")
        age_rng, mh_rng = priors["log_age"], priors["feh"]
    if field_fraction > 0:
        age_rng = (min(age_rng[0], FIELD_LOG_AGE[0]), max(age_rng[1], FIELD_LOG_AGE[1]))
        mh_rng = (min(mh_rng[0], FIELD_MH[0]), max(mh_rng[1], FIELD_MH[1]))
    lat = isochrone_lattice(grid, age_rng, mh_rng, step=lattice_step)
    imf_w = lat.segment_imf_weights()
    mh_max = float(grid.mh_range[1])

    def member_pops(lab, idx):
        return _Populations(node=lat.node_index(lab["log_age"][idx], lab["feh"][idx]),
                            a_v=lab["a_v"][idx], dist_mod=lab["dist_mod"][idx],
                            need=lab["n_stars"][idx], cluster=np.asarray(idx),
                            is_field=np.zeros(np.size(idx), bool),
                            mf_break=lab["mf_m_break"][idx], mf_alpha=lab["mf_alpha_low"][idx])

    def field_salpeter(k):  # field populations keep the paper's Salpeter IMF
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
        lab.update(_draw_mass_function(rng_mf, n, mf_ranges))
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
            raise RuntimeError("could not draw viable cluster parameters in 1000 rounds; check the priors")

    # 2. field populations (optional)
    n_field = np.zeros(n, dtype=np.int64)
    field_unavailable = 0
    pops_field = None
    if field_fraction > 0 and n:
        n_field = np.rint(field_fraction * lab["n_stars"]).astype(np.int64)
        n_field = np.minimum(n_field, lab["n_stars"] - 1)
        f_age = rng_field.uniform(*FIELD_LOG_AGE, n)
        f_mh = rng_field.uniform(*FIELD_MH, n)
        todo = np.flatnonzero(n_field > 0)
        for attempt in range(20):
            if todo.size == 0:
                break
            pf = _Populations(node=lat.node_index(f_age[todo], f_mh[todo]), a_v=lab["a_v"][todo],
                              dist_mod=lab["dist_mod"][todo], need=n_field[todo], cluster=todo,
                              is_field=np.ones(todo.size, bool), **field_salpeter(todo.size))
            ok = _viability(lat, imf_w, pf, opts)
            todo = todo[~ok]
            f_age[todo] = rng_field.uniform(*FIELD_LOG_AGE, todo.size)
            f_mh[todo] = rng_field.uniform(*FIELD_MH, todo.size)
        field_unavailable = int(todo.size)
        n_field[todo] = 0
        has = np.flatnonzero(n_field > 0)
        pops_field = _Populations(node=lat.node_index(f_age[has], f_mh[has]), a_v=lab["a_v"][has],
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
        for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
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
        stars = {k: np.empty(0, np.float32) for k in _STAR_FLOAT}
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
    labels = pd.DataFrame({
        "log_age": lab["log_age"], "feh": lab["feh"], "a_v": lab["a_v"], "dist_mod": lab["dist_mod"],
        "n_stars": lab["n_stars"].astype(np.int64), "parallax": plx_mean, "parallax_error": plx_err,
        "parallax_true": np.power(10.0, 2.0 - lab["dist_mod"] / 5.0),
        "log_age_iso": iso_age, "mh_iso": iso_mh,
        "n_members": n_members.astype(np.int64), "n_field": n_field.astype(np.int64),
        "mf_m_break": lab["mf_m_break"], "mf_alpha_low": lab["mf_alpha_low"],
    })
    meta = {
        "simulated": True,
        "generator": "ocnb.cmd_ann.simulate.simulate_clusters (Cavallo et al. 2024, Sect. 2.2)",
        "seed": int(seed),
        "priors": {k: list(v) for k, v in priors.items()},
        "params_given": params is not None,
        "n_clusters": int(n),
        "n_draws": int(n_draws),
        "n_rejected": int(n_rejected),
        "rejection_rate": float(n_rejected / n_draws) if n_draws else 0.0,
        "rejection_rule": (f"no noiseless isochrone point with G <= {g_max}, "
                           f"or pass probability < {MIN_SURVIVAL}"),
        "draws_per_star": float(n_drawn_stars / max(int(lab["n_stars"].sum()), 1)) if n else 0.0,
        "feh_isochrone_max": mh_max,
        "feh_clipped_fraction": float(np.mean(lab["feh"] > mh_max + 1e-9)) if n else 0.0,
        "lattice": {"log_age": [float(lat.ages[0]), float(lat.ages[-1]), int(lat.ages.size)],
                    "mh": [float(lat.mhs[0]), float(lat.mhs[-1]), int(lat.mhs.size)],
                    "spacing": list(lat.spacing), "step": float(lattice_step), "lookup": "nearest node",
                    "max_label": int(lat.max_label), "source": lat.source},
        "imf": (f"Salpeter, alpha={SALPETER_ALPHA}" if mf_ranges is None else
                f"broken power law: alpha_low ~ U{tuple(mf_ranges['alpha_low'])} below m_break ~ "
                f"U{tuple(mf_ranges['m_break'])} Msun, Salpeter alpha={SALPETER_ALPHA} above"),
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
                    "parallax_noise": bool(parallax_noise)},
    }
    return SyntheticClusters(labels, offsets, stars, meta)


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
