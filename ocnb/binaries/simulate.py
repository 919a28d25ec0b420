"""SBI training simulator of Malhotra et al. (2025): SIMULATED single stars and unresolved binaries.

Paper: M25 Sect. 3.2 and Table 1; spec ``shared/specs/membership_and_binaries.md`` B1–B2.
Everything produced here is **simulated data**.

Recipe (one system = one star or one unresolved pair)
-----------------------------------------------------
1. **Parameters** θ = (M_A, [Fe/H], log age, q, μ, A_V) from :func:`make_prior`
   (Table 1 with the spec's resolutions, see :class:`BinaryPrior`).
2. **Companion**: M_B = q·M_A. If M_B < 0.1 M☉ the system is a single star and
   q is set to 0 (the paper's spike at q = 0).
3. **Isochrones**: PARSEC v1.2S through the shared engine — the precomputed
   lattice of :func:`ocnb.sim.isochrone_lattice` (nearest node, spacing ≤
   ``lattice_step`` = 0.05 dex in log age and [M/H]) and :func:`ocnb.sim.place_systems`
   (linear interpolation in initial mass, the engine's mass locator). [Fe/H] is
   PARSEC's scaled-solar [M/H]. Bands G, BP, RP (Gaia EDR3 = DR3 passbands),
   J, H, Ks (2MASS) and W1, W2. **WISE W1/W2 are not PARSEC's**: the grid has no
   WISE bands, so they come from the package's Ks − W(Teff) colour–Teff relation
   fitted on real 2MASS + AllWISE members (:func:`ocnb.isochrones.ks_minus_w`).
4. **Extinction** per component at its own Teff and A_V (dustapprox G23 law,
   R_V = 3.1, :func:`ocnb.photometry.extinction_ratio`, for all eight bands),
   then the fluxes are summed: m = −2.5 log10(10^(−0.4 m_A) + 10^(−0.4 m_B));
   m = M + μ + A_X. This replaces the spec's ESA EDR3 law (Gaia, 2MASS) and Yuan+2013
   constants (WISE) by the package's one Teff- and A_V-dependent model for every band
   (W1 ≈ 0.054 A_V, W2 ≈ 0.034 A_V at 5000 K).
5. **Parallax**: d = 10^(1 + μ/5) pc, ϖ_true = 1000/d mas.
6. **Noise** (:mod:`ocnb.binaries.noise`): observed = true + N(0, σ), σ(m_true)
   per band and σ_ϖ(G_true), the median relations measured on the shipped real
   member tables (0.1-mag bins); σ is capped at 1.0857 mag (S/N = 1): a fainter
   real star has no measurement in that band and uses a smaller band set.
   Noise enters the observables only; errors are not network inputs.
7. **Cuts** (the paper's): systems whose primary is more massive than the
   isochrone's most massive star (label ≤ ``max_label``, i.e. already dead at
   that age) and systems with observed G > 21 are dropped. ``n`` counts the
   systems that pass: draws continue in fixed batches until ``n`` survive.

Two more drops keep every label honest, both rare (< 0.1 % of draws): a primary or a
companion (≥ 0.1 M☉) below the isochrone's lowest mass, which exceeds 0.1 M☉ (up to
0.19 M☉) at 18 of the 2 867 nodes of the Table-1 lattice (log age 9.15–9.55, [M/H] −2.0 or
≥ −0.05); PARSEC has no such star there. All drop counts are in ``meta["drops"]``. With the
Table-1 prior about 73 % of draws pass (18 % dead primaries, 9 % G > 21).

Band sets (spec B1): ``"All_Mags"`` = G, BP, RP, J, H, Ks, W1, W2 + ϖ (9 observables),
``"Gaia_TMASS"`` = G, BP, RP, J, H, Ks + ϖ (7), ``"Gaia"`` = G, BP, RP + ϖ (4). The
paper trains the three NPEs on one simulation; here the same seed gives the same systems
and the same noise in every band set, so a smaller set is a column subset of a larger one.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd

__all__ = [
    "BAND_SETS",
    "FALLBACK_ORDER",
    "THETA_NAMES",
    "M_MIN",
    "G_LIMIT",
    "FEH_CLIP",
    "BinaryPrior",
    "SimulatedStars",
    "make_prior",
    "binary_fraction_law",
    "simulate_cluster",
    "simulate_stars",
]

#: θ in the spec's order (B2): M_A [M☉], [Fe/H] [dex], log10(age/yr), q, μ [mag], A_V [mag].
THETA_NAMES = ("mass_a", "feh", "log_age", "q", "dist_mod", "a_v")
#: Observable sets of the three NPEs (spec B1): bands; the parallax is always added.
BAND_SETS = {
    "All_Mags": ("G", "BP", "RP", "J", "H", "Ks", "W1", "W2"),
    "Gaia_TMASS": ("G", "BP", "RP", "J", "H", "Ks"),
    "Gaia": ("G", "BP", "RP"),
}
#: The paper's fall-back order when a star lacks bands of a set.
FALLBACK_ORDER = ("All_Mags", "Gaia_TMASS", "Gaia")
_ALL_BANDS = BAND_SETS["All_Mags"]
#: Lowest stellar mass of the simulations [M☉]: lighter companions are dark (q = 0).
M_MIN = 0.1
#: The paper's faint cut on observed G [mag].
G_LIMIT = 21.0
#: How far [Fe/H] may exceed the grid's highest [M/H] (+0.30) [dex]: Table 1's range reaches +0.45.
FEH_CLIP = 0.15
#: Largest σ injected [mag] (S/N = 1).
SIGMA_CAP = 2.5 / math.log(10.0)
_BATCH = 1 << 17  # draws per batch; fixed, so that the first n systems do not depend on the n asked for
_MAX_EMPTY_BATCHES = 16  # give up after this many batches (2.1 million draws) without one system passing
_LATTICE_COLUMNS = ("log_teff", "label") + _ALL_BANDS
_SUPPORT_LOG_AGE = (6.5, 10.0)


# ---------------------------------------------------------------------------
# Prior (Table 1)
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BinaryPrior:
    """The simulation prior of M25 Table 1 with the spec's resolutions (B2); build it with :func:`make_prior`.

    Each field is a draw range (low, high); low == high fixes a parameter.

    ======== ============== =================================================== =====================
    name     unit           distribution                                        default range
    ======== ============== =================================================== =====================
    mass_a   M☉             low + (high − low)·x, x ~ Beta(1, 5)                [0.1, 9.0]
    feh      dex            low + (high − low)·x, x ~ Beta(10, 2)               [−2.0, 0.45]
    log_age  log10(age/yr)  U(low, high)                                        [7.0, 10.0]
    q        —              U(low, high)                                        [0, 1]
    dist_mod mag            U(low, high); d = 10^(1 + μ/5) pc                   [0, 13.5]
    a_v      mag            U(low, high) (A0 at 550 nm)                         [0, 4]
    ======== ============== =================================================== =====================

    Attributes
    ----------
    mass_a_beta, feh_beta : (float, float)
        Beta shape parameters (a, b) of the rescaled draws.
    log_age_support : (float, float)
        Table 1's "Range" for log age, [6.5, 10.0], which the spec takes as the
        posterior support; draws are U(7, 10). :attr:`bounds` is the union of both.
    feh_form : {"scaled", "literal"}
        "scaled" (the spec's resolution): Beta(10, 2) rescaled onto the range
        (mode +0.2 for the default range). "literal": Table 1 as printed,
        x − 0.9 (support [−0.9, 0.1], mode 0).
    """

    mass_a: tuple = (0.1, 9.0)
    feh: tuple = (-2.0, 0.45)
    log_age: tuple = (7.0, 10.0)
    q: tuple = (0.0, 1.0)
    dist_mod: tuple = (0.0, 13.5)
    a_v: tuple = (0.0, 4.0)
    mass_a_beta: tuple = (1.0, 5.0)
    feh_beta: tuple = (10.0, 2.0)
    log_age_support: tuple = _SUPPORT_LOG_AGE
    feh_form: str = "scaled"

    names = THETA_NAMES

    def __post_init__(self):
        for name in THETA_NAMES + ("log_age_support",):
            object.__setattr__(self, name, _pair(name, getattr(self, name)))
        for name in ("mass_a_beta", "feh_beta"):
            object.__setattr__(self, name, _shapes(name, getattr(self, name)))
        _check_ranges(self)

    @property
    def ranges(self) -> dict:
        """Draw ranges: ``{name: (low, high)}`` in :data:`THETA_NAMES` order."""
        return {k: getattr(self, k) for k in THETA_NAMES}

    @property
    def bounds(self) -> dict:
        """The prior box ``{name: (low, high)}`` (posterior support; log age includes Table 1's 6.5–10)."""
        out = self.ranges
        lo, hi = self.log_age
        out["log_age"] = (min(lo, self.log_age_support[0]), max(hi, self.log_age_support[1]))
        return out

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """:attr:`bounds` as two arrays (low, high) in :data:`THETA_NAMES` order."""
        b = self.bounds
        return np.array([b[k][0] for k in THETA_NAMES]), np.array([b[k][1] for k in THETA_NAMES])

    def contains(self, theta) -> np.ndarray:
        """True for rows of ``theta`` (…, 6) in :data:`THETA_NAMES` order that lie inside :attr:`bounds`."""
        theta = np.asarray(theta, dtype=float)
        lo, hi = self.box()
        return np.all((theta >= lo) & (theta <= hi), axis=-1)

    def sample(self, n: int, rng=None) -> dict:
        """Draw ``n`` parameter vectors: ``{name: float64 array}`` (q before the M_B < 0.1 M☉ rule).

        ``rng``: a :class:`numpy.random.Generator` or a seed.
        """
        n = _count("n", n)
        rng = np.random.default_rng(rng)

        def scaled(rng_range, shape):
            lo, hi = rng_range
            return lo + (hi - lo) * rng.beta(*shape, n)

        return {
            "mass_a": scaled(self.mass_a, self.mass_a_beta),
            "feh": scaled(self.feh, self.feh_beta),
            "log_age": rng.uniform(*self.log_age, n),
            "q": rng.uniform(*self.q, n),
            "dist_mod": rng.uniform(*self.dist_mod, n),
            "a_v": rng.uniform(*self.a_v, n),
        }

    def check_grid(self, grid=None, feh_clip: float = FEH_CLIP):
        """Raise :class:`~ocnb.errors.IsochroneRangeError` (a ValueError) if log age or [Fe/H] leave the grid.

        log age must lie inside the PARSEC grid (6.0–10.2); [Fe/H] inside its [M/H]
        range (−2.19…+0.30), widened by ``feh_clip`` dex on the metal-rich side only.
        """
        from ..errors import IsochroneRangeError
        from ..isochrones import default_grid

        grid = grid if grid is not None else default_grid()
        a_lo, a_hi = grid.age_range
        m_lo, m_hi = grid.mh_range
        for v in self.log_age:
            if not a_lo - 1e-9 <= v <= a_hi + 1e-9:
                raise IsochroneRangeError(
                    f"prior 'log_age' = {self.log_age}: {v} (log10 yr) is outside the PARSEC grid "
                    f"{a_lo:g} ≤ log_age ≤ {a_hi:g}")
        for v in self.feh:
            if not m_lo - 1e-9 <= v <= m_hi + feh_clip + 1e-9:
                raise IsochroneRangeError(
                    f"prior 'feh' = {self.feh}: {v} dex is outside the allowed {m_lo:g} ≤ [Fe/H] ≤ "
                    f"{m_hi + feh_clip:g} (PARSEC grid [M/H] {m_lo:g} … {m_hi:g}; up to feh_clip = {feh_clip:g} "
                    "dex above it the most metal-rich isochrone is used and the system is flagged feh_clipped)")

    def table(self) -> pd.DataFrame:
        """Table 1 as used: parameter, unit, draw range, distribution, box."""
        b = self.bounds
        dist = {
            "mass_a": f"low + (high-low) Beta{self.mass_a_beta}",
            "feh": f"low + (high-low) Beta{self.feh_beta}" + (" (literal: x - 0.9)" if self.feh_form == "literal"
                                                              else ""),
            "log_age": "uniform", "q": "uniform (q = 0 where q M_A < 0.1)", "dist_mod": "uniform",
            "a_v": "uniform",
        }
        units = {"mass_a": "Msun", "feh": "dex", "log_age": "log10(yr)", "q": "", "dist_mod": "mag", "a_v": "mag"}
        return pd.DataFrame([{"parameter": k, "unit": units[k], "low": getattr(self, k)[0],
                              "high": getattr(self, k)[1], "distribution": dist[k], "box_low": b[k][0],
                              "box_high": b[k][1]} for k in THETA_NAMES])

    def to_dict(self) -> dict:
        """Plain-Python description (for metadata)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


def _pair(name: str, value) -> tuple:
    """(low, high) of finite numbers with low ≤ high; a single number fixes the parameter."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"prior {name!r} = {value!r} must be a pair (low, high) of numbers or one number") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"prior {name!r} = {value!r} must be finite numbers (NaN/inf given)")
    if lo > hi:
        raise ValueError(f"prior {name!r} = {value!r}: low {lo:g} > high {hi:g}")
    return lo, hi


def _shapes(name: str, value) -> tuple:
    """Beta shape parameters (a, b), both finite and > 0."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} = {value!r} must be a pair (a, b) of Beta shape parameters") from None
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise ValueError(f"{name} = {value!r}: Beta shape parameters must be finite and > 0")
    return a, b


def _check_ranges(p: BinaryPrior):
    def need(ok, name, value, allowed):
        if not ok:
            raise ValueError(f"prior {name!r} = {value}: allowed {allowed}")

    need(p.mass_a[0] >= M_MIN, "mass_a", p.mass_a, f"M_A ≥ {M_MIN} M☉ (the simulations' lowest stellar mass)")
    need(p.q[0] >= 0 and p.q[1] <= 1, "q", p.q, "0 ≤ q ≤ 1")
    need(p.dist_mod[0] >= 0, "dist_mod", p.dist_mod, "μ ≥ 0 mag (d ≥ 10 pc)")
    need(p.a_v[0] >= 0 and p.a_v[1] <= 20, "a_v", p.a_v, "0 ≤ A_V ≤ 20 mag (the dustapprox models' range)")
    if p.feh_form not in ("scaled", "literal"):
        raise ValueError(f"feh_form must be 'scaled' or 'literal', not {p.feh_form!r}")


def make_prior(*, mass_a=(0.1, 9.0), feh=None, log_age=(7.0, 10.0), q=(0.0, 1.0), dist_mod=(0.0, 13.5),
               a_v=(0.0, 4.0), feh_form: str = "scaled", mass_a_beta=(1.0, 5.0), feh_beta=(10.0, 2.0),
               log_age_support=_SUPPORT_LOG_AGE, feh_clip: float = FEH_CLIP, grid=None) -> BinaryPrior:
    """The simulation prior of M25 Table 1 with the spec's resolutions (B2).

    Parameters
    ----------
    mass_a : (float, float) or float
        Primary initial mass range [M☉]; M_A = low + (high − low)·x, x ~ Beta(1, 5)
        (spec resolution: the Beta rescaled onto [0.1, 9.0]). low ≥ 0.1.
    feh : (float, float) or float, optional
        [Fe/H] range [dex]; default [−2.0, 0.45] with x ~ Beta(10, 2) rescaled onto it
        (spec resolution: Table 1's literal x − 0.9 has support [−0.9, 0.1], which
        conflicts with its own range and with super-solar clusters). With
        ``feh_form="literal"`` the default is [−0.9, 0.1], i.e. exactly x − 0.9.
    log_age : (float, float) or float
        Draw range of log10(age/yr), uniform; default [7.0, 10.0] (Table 1's
        distribution column; its range column [6.5, 10.0] is ``log_age_support``).
    q : (float, float) or float
        Mass-ratio range, uniform in [0, 1].
    dist_mod : (float, float) or float
        Distance modulus μ [mag], uniform in [0, 13.5]; d = 10^(1 + μ/5) pc (10 pc – 5 kpc).
    a_v : (float, float) or float
        A_V [mag] (= A0 at 550 nm), uniform in [0, 4].
    feh_form : {"scaled", "literal"}
        See above (the literal form is kept for comparison, spec B2).
    mass_a_beta, feh_beta : (float, float)
        Beta shapes (Table 1: (1, 5) and (10, 2)).
    log_age_support : (float, float)
        Posterior support of log age (Table 1 range column).
    feh_clip : float
        [Fe/H] may exceed the grid's +0.30 by this much [dex] (default 0.15, so that
        Table 1's +0.45 is allowed; such systems use the +0.30 isochrone and are flagged).
    grid : IsochroneGrid, optional
        The grid the log age and [Fe/H] ranges are checked against (default PARSEC v1.2S).

    Returns
    -------
    BinaryPrior

    Raises
    ------
    ValueError
        A range that is not a finite (low, high) pair, low > high, NaN, M_A < 0.1 M☉,
        q outside [0, 1], μ < 0, A_V outside [0, 20], Beta shapes ≤ 0, an unknown
        ``feh_form``, or ``feh`` given together with ``feh_form="literal"`` and different
        from [−0.9, 0.1]. :class:`~ocnb.errors.IsochroneRangeError` (a ValueError) for
        log age or [Fe/H] outside the PARSEC grid (see :meth:`BinaryPrior.check_grid`).
        Every message names the parameter and the value.
    """
    if feh_form == "literal":
        literal = (-0.9, 0.1)
        if feh is not None and _pair("feh", feh) != literal:
            raise ValueError(f"prior 'feh' = {feh!r} conflicts with feh_form='literal', whose range is "
                             f"x - 0.9 = {literal}; pass one or the other")
        feh = literal
    elif feh is None:
        feh = (-2.0, 0.45)
    if not (isinstance(feh_clip, (int, float)) and math.isfinite(feh_clip) and feh_clip >= 0):
        raise ValueError(f"feh_clip must be a finite number ≥ 0 dex, not {feh_clip!r}")
    prior = BinaryPrior(mass_a=mass_a, feh=feh, log_age=log_age, q=q, dist_mod=dist_mod, a_v=a_v,
                        mass_a_beta=mass_a_beta, feh_beta=feh_beta, log_age_support=log_age_support,
                        feh_form=feh_form)
    prior.check_grid(grid, feh_clip)
    return prior


# ---------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class SimulatedStars:
    """SIMULATED systems from :func:`simulate_stars`: one row per system, plus the run's metadata.

    Attributes
    ----------
    frame : DataFrame
        Columns (units): the true parameters :data:`THETA_NAMES` — ``mass_a`` [M☉],
        ``feh`` [dex], ``log_age`` [log10 yr], ``q`` (0 for singles), ``dist_mod`` [mag],
        ``a_v`` [mag]; ``q_drawn``, the mass ratio as drawn before singles were set to q = 0
        (q = q_drawn where q_drawn·M_A ≥ 0.1 M☉); derived truths ``mass_b`` [M☉] (0 for singles), ``is_binary``,
        ``distance`` [pc], ``parallax_true`` [mas], ``teff_a``, ``teff_b`` [K] (NaN for
        singles), ``label_a`` (PARSEC phase of the primary: 0 PMS, 1 MS, 2 SGB, 3 RGB,
        4–6 CHeB, 7 EAGB), ``log_age_iso``, ``feh_iso`` (the lattice isochrone used),
        ``feh_clipped`` (bool); the noisy observables of the band set — magnitudes ``G,
        BP, RP, J, H, Ks, W1, W2`` [mag, Vega] and ``parallax`` [mas] (float32); with
        ``keep_true``: ``<band>_true`` (noise-free system) and ``<band>_primary``
        (noise-free primary alone) [mag].
    meta : dict
        Seed, prior, band set, counts of draws and drops, noise model, lattice.
    """

    frame: pd.DataFrame
    meta: dict

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (f"<SimulatedStars: {len(self):,} SIMULATED systems ({self.frame['is_binary'].mean():.1%} binaries), "
                f"band set {self.band_set!r}, seed {self.meta.get('seed')}>")

    @property
    def band_set(self) -> str:
        return self.meta["band_set"]

    @property
    def bands(self) -> tuple:
        return BAND_SETS[self.band_set]

    def to_frame(self) -> pd.DataFrame:
        """The table (the object's own frame, not a copy: copy it before changing it)."""
        return self.frame

    def theta(self, dtype=np.float32) -> np.ndarray:
        """True parameters (n, 6) in :data:`THETA_NAMES` order."""
        return self.frame[list(THETA_NAMES)].to_numpy(dtype)

    def observables(self, band_set: str | None = None, dtype=np.float32) -> np.ndarray:
        """Noisy observables (n, k): the bands of ``band_set`` (default: the simulated one), then ϖ."""
        band_set = self.band_set if band_set is None else _check_band_set(band_set)
        missing = [b for b in BAND_SETS[band_set] if b not in self.frame.columns]
        if missing:
            raise ValueError(f"band set {band_set!r} needs {missing}, which were not simulated "
                             f"(band set {self.band_set!r}); simulate with bands={band_set!r} or 'All_Mags'")
        return self.frame[list(BAND_SETS[band_set]) + ["parallax"]].to_numpy(dtype)


def _check_band_set(bands) -> str:
    if not isinstance(bands, str) or bands not in BAND_SETS:
        raise ValueError(f"unknown band set {bands!r}; choose one of {tuple(BAND_SETS)} "
                         "(All_Mags = Gaia + 2MASS + WISE W1/W2, Gaia_TMASS = Gaia + 2MASS, Gaia = G/BP/RP; "
                         "the parallax is always included)")
    return bands


def _count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise ValueError(f"{name} must be a whole number ≥ 0, not {value!r}")
    if not (math.isfinite(value) and value == int(value) and value >= 0):
        raise ValueError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return int(value)


# ---------------------------------------------------------------------------
# Simulator
# ---------------------------------------------------------------------------
def simulation_lattice(prior: BinaryPrior, grid=None, step: float = 0.05, max_label: int = 7):
    """The isochrone lattice :func:`simulate_stars` draws from (cached in the data home)."""
    from ..isochrones import default_grid
    from ..sim import isochrone_lattice

    grid = grid if grid is not None else default_grid()

    m_lo, m_hi = grid.mh_range
    feh = (min(max(prior.feh[0], m_lo), m_hi), min(prior.feh[1], m_hi))  # above +0.30: the edge isochrone
    return isochrone_lattice(grid, prior.log_age, feh, step=step, max_label=max_label,
                             columns=_LATTICE_COLUMNS)


def _simulate_batch(i: int, seed: int, prior: BinaryPrior, lat, noise, bands: tuple, g_max: float, law: str,
                    keep_true: bool, mh_max: float, draw=None) -> tuple[dict, dict]:
    """One batch of ``_BATCH`` draws → (columns of the systems that pass the cuts, drop counts)."""
    from ..sim import place_systems

    # One stream per use (and per band), so that every band set sees the same systems and noise.
    streams = np.random.SeedSequence(seed, spawn_key=(i,)).spawn(3 + len(_ALL_BANDS))
    rng_theta, rng_g, rng_plx = (np.random.default_rng(s) for s in streams[:3])
    rng_band = {b: np.random.default_rng(s) for b, s in zip(_ALL_BANDS, streams[3:], strict=True)}

    th = prior.sample(_BATCH, rng_theta) if draw is None else draw(_BATCH, rng_theta)
    q_drawn = th["q"].copy()  # before censoring: the continuous latent the NPE learns (ocnb.binaries.posterior)
    m_b = th["q"] * th["mass_a"]
    single = m_b < M_MIN  # the companion would be below the simulations' lowest mass: a single star
    th["q"] = np.where(single, 0.0, th["q"])
    m_b = np.where(single, 0.0, m_b)
    sys_ = place_systems(lat, th["log_age"], th["feh"], th["mass_a"], m_b, th["dist_mod"], th["a_v"], law=law)
    dark = sys_.has_companion & ~sys_.companion_lit
    valid = sys_.primary_in_range & ~dark
    drops = {"too_massive": int(sys_.primary_too_massive.sum()),
             "primary_below_isochrone": int((~sys_.primary_in_range & ~sys_.primary_too_massive).sum()),
             "companion_below_isochrone": int((dark & sys_.primary_in_range).sum())}
    idx = np.flatnonzero(valid)
    sys_ = sys_.take(idx)

    def noisy(band, true, rng):
        sig = np.minimum(noise.sigma(band, true), SIGMA_CAP)
        return true + sig * rng.standard_normal(true.size)

    g_true = sys_.apparent("G")
    g_obs = noisy("G", g_true, rng_g)
    keep = np.flatnonzero(g_obs <= g_max)
    drops["faint"] = int(idx.size - keep.size)
    idx, sys_ = idx[keep], sys_.take(keep)

    out = {k: th[k][idx] for k in THETA_NAMES}
    out["q_drawn"] = q_drawn[idx]
    out["mass_b"] = m_b[idx]
    out["is_binary"] = ~single[idx]
    out["distance"] = np.power(10.0, 1.0 + out["dist_mod"] / 5.0)
    out["parallax_true"] = 1000.0 / out["distance"]
    out["teff_a"] = sys_.teff_a
    out["teff_b"] = sys_.teff_b
    out["label_a"] = sys_.value("label").astype(np.int8)
    out["log_age_iso"], out["feh_iso"] = lat.node_params(sys_.node)
    out["feh_clipped"] = out["feh"] > mh_max + 1e-9
    for band in bands:
        true = g_true[keep] if band == "G" else sys_.apparent(band)
        obs = g_obs[keep] if band == "G" else noisy(band, true, rng_band[band])
        out[band] = obs.astype(np.float32)
        if keep_true:
            out[f"{band}_true"] = true
            out[f"{band}_primary"] = sys_.apparent(band, combined=False)
    g_t = g_true[keep]
    out["parallax"] = (out["parallax_true"]
                       + noise.parallax_sigma(g_t) * rng_plx.standard_normal(g_t.size)).astype(np.float32)
    return out, drops


def simulate_stars(n: int, prior: BinaryPrior | None = None, bands: str = "All_Mags", seed: int = 0, *,
                   g_max: float = G_LIMIT, noise=None, keep_true: bool = False, lattice_step: float = 0.05,
                   max_label: int = 7, feh_clip: float = FEH_CLIP, law: str = "G23", grid=None,
                   progress: bool = True, draw=None) -> SimulatedStars:
    """Simulate ``n`` SIMULATED stars and unresolved binaries for SBI (M25 Sect. 3.2; spec B2).

    See the module docstring for the recipe. Vectorised over systems in batches of
    131 072 draws, on one core (two threads were slower: the batch is memory-bound).
    2 × 10⁶ systems take ~8 s once the isochrone lattice is cached in the data home;
    the very first call also builds it (~20 s more). ``benchmarks/bench_binaries_simulate.py``
    measures it. Memory: ~150 bytes per system (~290 MB for 2 × 10⁶) plus the ~160 MB lattice.

    Parameters
    ----------
    n : int
        Number of systems **after** the cuts (≥ 0).
    prior : BinaryPrior, optional
        Default :func:`make_prior` () — Table 1 with the spec's resolutions.
    bands : {"All_Mags", "Gaia_TMASS", "Gaia"}
        Band set whose magnitudes are simulated (the parallax always is). The same
        seed gives the same systems and noise in every set.
    seed : int
        Seed (≥ 0). The first ``k`` systems of a run do not depend on ``n`` ≥ ``k``.
    g_max : float
        Faint cut on observed G [mag] (the paper: 21).
    noise : MeasuredNoise, optional
        Noise model with ``sigma(band, mag)`` and ``parallax_sigma(G)``; default
        :func:`ocnb.binaries.noise.measured_noise` () (the shipped real members).
    keep_true : bool
        Also return the noise-free magnitudes of the system (``<band>_true``) and of
        the primary alone (``<band>_primary``).
    lattice_step : float
        Isochrone lattice spacing in log age and [M/H] [dex]; labels keep the drawn
        values, the isochrone is the nearest node (≤ step/2 away).
    max_label : int
        Highest PARSEC phase simulated (7: up to the early AGB); a primary beyond the
        last point is "too massive for its age" and dropped.
    feh_clip : float
        [Fe/H] up to grid max + ``feh_clip`` dex is built from the grid's most metal-rich
        isochrone and flagged ``feh_clipped``.
    law : {"G23", "F99"}
        dustapprox extinction law.
    grid : IsochroneGrid, optional
        Default PARSEC v1.2S (:func:`ocnb.isochrones.default_grid`).
    progress : bool
        Show a progress bar.
    draw : callable, optional
        ``draw(n, rng) -> {name: array}`` of :data:`THETA_NAMES` replacing the prior's draws (the
        prior still sets the grid checks); :func:`simulate_cluster` uses it for one cluster's members.

    Returns
    -------
    SimulatedStars
        ``.to_frame()`` gives the table (columns and units in :class:`SimulatedStars`);
        ``.theta()`` and ``.observables(band_set)`` the arrays an NPE trains on;
        ``.meta`` the seed, prior, counts (``n_drawn``, ``acceptance``, drops per cut).

    Raises
    ------
    ValueError
        ``n`` or ``seed`` not a whole number ≥ 0, an unknown band set, a ``prior`` that is
        not a :class:`BinaryPrior`, a non-finite ``g_max``, ``lattice_step`` ≤ 0, an unknown
        ``law``, a negative ``feh_clip``, or a prior none of whose draws passes the cuts; log age or [Fe/H] outside
        the grid (:class:`~ocnb.errors.IsochroneRangeError`). Messages name the value.
    """
    from ..isochrones import IsochroneGrid, default_grid
    from ..parallel import progress as progress_bar
    from ..photometry import EXTINCTION_LAWS

    # --- checks, all before any work ---------------------------------------------------------
    n = _count("n", n)
    seed = _count("seed", seed)
    band_set = _check_band_set(bands)
    prior = make_prior() if prior is None else prior
    if not isinstance(prior, BinaryPrior):
        raise ValueError(f"prior must be a BinaryPrior from make_prior(), not {type(prior).__name__}")
    if not (isinstance(g_max, (int, float)) and math.isfinite(g_max)):
        raise ValueError(f"g_max must be a finite magnitude, not {g_max!r}")
    if not (isinstance(lattice_step, (int, float)) and math.isfinite(lattice_step) and lattice_step > 0):
        raise ValueError(f"lattice_step must be a finite number > 0 dex, not {lattice_step!r}")
    if law not in EXTINCTION_LAWS:
        raise ValueError(f"unknown extinction law {law!r}; choose one of {EXTINCTION_LAWS}")
    if not (isinstance(feh_clip, (int, float)) and math.isfinite(feh_clip) and feh_clip >= 0):
        raise ValueError(f"feh_clip must be a finite number ≥ 0 dex, not {feh_clip!r}")
    grid = grid if grid is not None else default_grid()
    if not isinstance(grid, IsochroneGrid):
        raise ValueError(f"grid must be an ocnb.isochrones.IsochroneGrid, not {type(grid).__name__}")
    prior.check_grid(grid, feh_clip)
    if noise is None:
        from .noise import measured_noise

        noise = measured_noise()
    if not (callable(getattr(noise, "sigma", None)) and callable(getattr(noise, "parallax_sigma", None))):
        raise ValueError(f"noise must have sigma(band, mag) and parallax_sigma(g) (MeasuredNoise), "
                         f"not {type(noise).__name__}")
    band_list = BAND_SETS[band_set]

    # --- batches until n systems pass the cuts -----------------------------------------------
    t0 = time.perf_counter()
    lat = simulation_lattice(prior, grid, float(lattice_step), int(max_label))
    mh_max = float(grid.mh_range[1])
    parts, drops = [], {}
    got = n_batches = 0
    bar = progress_bar(total=n, desc="simulating systems", disable=not progress, unit="sys")
    try:
        while got < n:
            out, d = _simulate_batch(n_batches, seed, prior, lat, noise, band_list, float(g_max), law,
                                     bool(keep_true), mh_max, draw)
            n_batches += 1
            parts.append(out)
            for k, v in d.items():
                drops[k] = drops.get(k, 0) + v
            size = out["mass_a"].size
            bar.update(max(min(size, n - got), 0))
            got += size
            if got == 0 and n_batches >= _MAX_EMPTY_BATCHES:
                raise ValueError(f"none of {n_batches * _BATCH:,} draws of the prior {prior.ranges} passes the "
                                 f"cuts (primary alive at its age, observed G ≤ {g_max}): the prior makes "
                                 "only dead or undetectably faint systems; widen it")
    finally:
        bar.close()

    cols = list(parts[0]) if parts else None
    if parts:
        data = {k: np.concatenate([p[k] for p in parts])[:n] for k in cols}
    else:  # n == 0
        empty, _ = _simulate_batch(0, seed, prior, lat, noise, band_list, float(g_max), law, bool(keep_true),
                                   mh_max, draw)
        data = {k: v[:0] for k, v in empty.items()}
    frame = pd.DataFrame(data, copy=False)
    n_drawn = n_batches * _BATCH
    meta = {
        "simulated": True,
        "generator": "ocnb.binaries.simulate_stars" + ("" if draw is None else " (custom draws)"),
        "paper": "Malhotra et al. 2025, Sect. 3.2, Table 1 (spec B2)",
        "seed": int(seed),
        "n": int(n),
        "band_set": band_set,
        "bands": list(band_list),
        "prior": prior.to_dict(),
        "theta_names": list(THETA_NAMES),
        "n_drawn": int(n_drawn),
        "acceptance": float(got / n_drawn) if n_drawn else 0.0,
        "drops": drops,
        "cuts": (f"primary beyond the isochrone's highest initial mass (label <= {int(max_label)}); "
                 f"observed G > {g_max:g}; primary or companion (>= {M_MIN} Msun) below the isochrone's "
                 "lowest mass"),
        "binary_rule": f"M_B = q M_A; M_B < {M_MIN} Msun -> single, q = 0",
        "noise": getattr(noise, "description", repr(noise)) + f"; sigma capped at {SIGMA_CAP:.4f} mag",
        "extinction": f"dustapprox {law}, R_V = 3.1, per component at its own Teff, then fluxes summed",
        "wise": "W1, W2 = Ks(PARSEC) - (Ks - W)(Teff), ocnb.isochrones.ks_minus_w (not PARSEC)",
        "lattice": {"log_age": [float(lat.ages[0]), float(lat.ages[-1]), int(lat.ages.size)],
                    "mh": [float(lat.mhs[0]), float(lat.mhs[-1]), int(lat.mhs.size)],
                    "step": float(lattice_step), "lookup": "nearest node", "max_label": int(max_label),
                    "source": lat.source},
        "feh_clip": float(feh_clip),
        "feh_clipped_fraction": float(frame["feh_clipped"].mean()) if len(frame) else 0.0,
        "g_max": float(g_max),
        "elapsed_s": time.perf_counter() - t0,
    }
    return SimulatedStars(frame, meta)


def binary_fraction_law(mass_a):
    """f_b(M_A) = 0.8388 tanh(0.688 M_A + 0.079): binary fraction at primary mass M_A [M☉] (M25 eq. 8)."""
    return 0.8388 * np.tanh(0.688 * np.asarray(mass_a, float) + 0.079)


def simulate_cluster(n_members: int = 500, *, log_age: float, feh: float, dist_mod: float, a_v: float,
                     binary_fraction="arenou", bands: str = "All_Mags", seed: int = 0, g_max: float = G_LIMIT,
                     keep_true: bool = True, progress: bool = False, **kwargs) -> SimulatedStars:
    """A SIMULATED open cluster for testing the cluster fit (M25 Sect. 4, App. D; spec B7).

    Primaries from the Kroupa (2001) IMF (dN/dm ∝ m^−1.3 below 0.5 M☉; above, the shared engine's
    m^−2.35, within the error of Kroupa's 2.3) on
    [0.1, M_max(age)] (draws beyond the isochrone's last point are dead and dropped by the same
    cut as :func:`simulate_stars`); each is a binary with probability f_b(M_A) (M25 eq. 8, the
    Arenou-style law of :func:`binary_fraction_law`) or a fixed
    ``binary_fraction`` (App. D.5's mass-independent case), with q ~ U(0.1/M_A, 1); the same
    photometry, noise and cuts as :func:`simulate_stars`.

    Parameters
    ----------
    n_members : int
        Members after the cuts (the paper: 500).
    log_age, feh, dist_mod, a_v : float
        The cluster [log10 yr, dex, mag, mag].
    binary_fraction : "arenou" or float
        f_b(M_A) or a constant in [0, 1].
    bands, seed, g_max, keep_true, progress, **kwargs
        As :func:`simulate_stars` (``keep_true`` on by default: the truth of each member).

    Returns
    -------
    SimulatedStars
        With ``meta["cluster"]`` the cluster's parameters.
    """
    from ..sim.mass_function import broken_power_law_inverse

    for name, v in (("log_age", log_age), ("feh", feh), ("dist_mod", dist_mod), ("a_v", a_v)):
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number, not {v!r}")
    if isinstance(binary_fraction, str):
        if binary_fraction != "arenou":
            raise ValueError(f"binary_fraction must be 'arenou' or a number in [0, 1], not {binary_fraction!r}")
    elif not (isinstance(binary_fraction, (int, float)) and 0 <= binary_fraction <= 1):
        raise ValueError(f"binary_fraction must be 'arenou' or a number in [0, 1], not {binary_fraction!r}")
    prior = make_prior(log_age=float(log_age), feh=float(feh), dist_mod=float(dist_mod), a_v=float(a_v))
    m_hi = prior.mass_a[1]

    def draw(n, rng):
        m = broken_power_law_inverse(M_MIN, m_hi, rng.uniform(size=n), 0.5, 1.3)
        fb = binary_fraction_law(m) if binary_fraction == "arenou" else np.full(n, float(binary_fraction))
        binary = rng.uniform(size=n) < fb
        q_lo = np.minimum(M_MIN / m, 1.0)
        q = np.where(binary, q_lo + (1.0 - q_lo) * rng.uniform(size=n), 0.0)
        return {"mass_a": m, "feh": np.full(n, float(feh)), "log_age": np.full(n, float(log_age)), "q": q,
                "dist_mod": np.full(n, float(dist_mod)), "a_v": np.full(n, float(a_v))}

    out = simulate_stars(n_members, prior, bands=bands, seed=seed, g_max=g_max, keep_true=keep_true,
                         progress=progress, draw=draw, **kwargs)
    out.meta["cluster"] = {"log_age": float(log_age), "feh": float(feh), "dist_mod": float(dist_mod),
                           "distance": float(10 ** (1 + dist_mod / 5)), "a_v": float(a_v),
                           "binary_fraction": binary_fraction, "imf": "Kroupa 2001"}
    out.meta["generator"] = "ocnb.binaries.simulate_cluster"
    return out
