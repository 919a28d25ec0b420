# STATUS: usable — simulate_field, embed_cluster, compare_fields, plot_field_comparison work and are tested
"""SIMULATED Galactic field along a line of sight, and real cluster members embedded in it.

Everything :func:`simulate_field` returns is **simulated data** (``attrs["simulated"] = True``,
negative ``source_id``): a Besançon/TRILEGAL-style star-count model, not observations. It
provides the training and validation cones of the Deep-Sets membership model (issue 15,
deliverable 1b; van Groeningen et al. 2023, "vG23", Sect. 2 and spec A2): the *real* members of a
shipped cluster (:func:`embed_cluster`) inside a simulated field whose stars are the negatives.
Blanco 1 is the held-out real test and is refused by :func:`embed_cluster`.

Model (all parameters in :data:`DEFAULT_MODEL`, overridable through ``model=``)
-------------------------------------------------------------------------------
* **Geometry**: Sun at R0 = 8122 pc, 20.8 pc above the plane (GRAVITY Collaboration 2018;
  Bennett & Bovy 2019; astropy's ``Galactocentric`` v4.0 frame, which does the transforms).
* **Thin disc**: ρ ∝ exp(−(R − R0)/h_R) exp(−|z|/h_z(τ)), h_R = 2600 pc (Jurić et al. 2008).
  Constant star formation over 0–10 Gyr; each age has its own scale height
  h_z(τ) = 300 pc · (min(τ, 2 Gyr) + 0.1 Gyr)/2.1 Gyr)^0.5: the young disc is thin (h_z ∝ σ_W
  in a fixed local potential with the σ_W ∝ τ^~0.45 heating law of Aumer & Binney 2009), stars
  older than 2 Gyr share Jurić et al.'s 300 pc (an unsaturated law, 300 pc only at 10 Gyr, makes
  the disc too thin: the bright counts of the real fields fall 2-5× short). The local density of
  an age group is ∝ SFR/h_z (its surface density is conserved). Age–metallicity relation
  [M/H](τ, R) = 0.05 − 0.035 τ/Gyr − 0.06 dex/kpc (R − R0), Gaussian scatter 0.18 dex
  (a mild AMR with a large scatter, Casagrande et al. 2011; radial gradient Genovali et al. 2014).
* **Thick disc**: h_z = 900 pc, h_R = 2000 pc (Bland-Hawthorn & Gerhard 2016, BHG16), local
  density 6 % of the thin disc's (BHG16 4 ± 2 %, Jurić et al. 2008 12 %; 6 % fits the colour
  distributions of the real fields, :data:`COUNT_FIT`); ages 10–12 Gyr,
  [M/H] = −0.45 ± 0.20 ([Fe/H] ≈ −0.6 with [α/Fe] ≈ +0.2, Salaris et al. 1993 conversion).
* **Stellar halo**: ρ ∝ (r_c² + R² + (z/q)²)^(−n/2), q = 0.64, n = 2.77 (Jurić et al. 2008), core
  r_c = 1 kpc (keeps the centre finite), local density 0.25 % of the thin disc's (Jurić et al.
  2008: 0.5 %; halved to fit the real fields' blue turn-off excess, :data:`COUNT_FIT`); ages 12–13.5 Gyr,
  [M/H] = −1.25 ± 0.30 (Ivezić et al. 2008 [Fe/H] = −1.46 plus α-enhancement).
* **No bulge/bar, warp, flare, spiral arms or clumpy dust**: lines of sight within ~15° of the
  Galactic centre at |b| < 10° are poorly modelled (``attrs["flags"]`` says so).
* **Stars**: PARSEC v1.2S isochrones on the (log age, [M/H]) lattice of :mod:`ocnb.sim`
  (:func:`ocnb.sim.isochrone_lattice`, step 0.1 dex, nearest node), Kroupa-like IMF of
  :mod:`ocnb.sim.mass_function` (α = 1.3 below 0.5 M☉, 2.35 above). The normalisation
  ``n_local_pc3`` is the local density (pc⁻³) of stars with 0.1–1 M☉ of all three components;
  its value, 0.102 pc⁻³ (× ``count_scale``), was **fitted to the real star counts** of the two
  shipped fields (:data:`COUNT_FIT`; Reid et al. 2002 count ≈ 0.1 pc⁻³ near the Sun).
  Unresolved binaries: a fraction ``binary_fraction`` = 0.3 has a
  companion of mass q·m, q ~ U(0, 1), on the same isochrone, whose flux is added.
  **Missing**: white dwarfs and other remnants, post-AGB stars, brown dwarfs, variable stars,
  blends; stars fainter than PARSEC's lowest mass (0.09 M☉) are not drawn.
* **Sampling**: the cone is split into 420 log-spaced distance shells (1 pc to 200 kpc); in each
  shell, for each lattice node and separately for single stars and binaries, the expected number
  of stars that can reach G ≤ g_max is Ω ∫ d² ρ dd × (IMF fraction above the lowest mass bright
  enough: where the isochrone's running minimum of M_G crosses the shell's limit, taken at the
  shell's near edge, with the smallest A_G/A_V of any Teff, a 6σ photometric-noise margin and
  0.75 mag more for binaries). Counts are Poisson, distances ∝ d² within a shell, masses from
  the IMF above that mass; the exact G ≤ g_max cut is applied after noise, so the cut is
  honest (~80 % of the drawn stars pass it). The densities are evaluated along the cone's axis (a
  radius ≲ 2–3° at |b| ≳ 10°; larger cones at low latitude get a flag).
* **Extinction**: a dust layer ρ_d ∝ exp(−|z|/h_d), h_d = 125 pc (Marshall et al. 2006; Drimmel &
  Spergel 2001: 134 pc), with 0.7 mag/kpc of A_V in the plane (e.g. Amôres & Lépine 2005), so
  A_V(d) = a0 h_d/|sin b| (1 − exp(−d |sin b|/h_d)). ``extinction=`` renormalises it: a number is
  the total A_V to infinity (e.g. the Schlegel et al. 1998 value of the direction), a pair
  ``(d_pc, a_v)`` fixes A_V at one distance (e.g. a cluster's CG2020 AVNN at its distance). Each
  star's A_G/A_V, A_BP/A_V, A_RP/A_V depend on its own Teff and A_V
  (:func:`ocnb.photometry.extinction_ratio`, dustapprox, tabulated on a (log Teff, A_V) grid
  and interpolated bilinearly: error < 2e-3 in the ratio).
* **Kinematics**: thin disc velocity ellipsoid (σ_R, σ_φ, σ_z) = (41.9, 28.8, 23.8) km/s ×
  ((τ + τ1)/(10 Gyr + τ1))^(0.307, 0.430, 0.445), τ1 = (0.001, 0.715, 0.001) Gyr (Aumer & Binney
  2009, Table 2); asymmetric drift v_a = σ_R²/80 km/s (Strömberg relation, Dehnen & Binney 1998);
  thick disc (67, 38, 35) km/s lagging 46 km/s, halo (160, 90, 90) km/s lagging 220 km/s (Bensby et al.
  2003, Table 1), all in Galactocentric cylindrical (R, φ, z) components; flat rotation curve
  v_c = 233.4 km/s and the solar motion (12.9, 245.6, 7.78) km/s (Drimmel & Poggio 2018;
  astropy v4.0 defaults, v_c = 245.6 − 12.24 of Schönrich et al. 2010). Positions and
  velocities go Galactocentric → ICRS through ``astropy.coordinates`` (vectorised, all stars at once).
* **Gaia errors**: every simulated star borrows the parallax/pm errors, the three pm/parallax
  correlations and the RUWE of one of the 11 real sources of nearest G in the 1000 random
  DR3 (DR2 for ``release="DR2"``) sources of :func:`ocnb.datasets.load_field` ("random_dr3"),
  its errors rescaled to the simulated star's G by the ratio of :func:`ocnb.photometry.parallax_error`
  at the two magnitudes; noise is drawn from that full 3×3 covariance. Photometric σ from the DPAC
  spline (:class:`ocnb.photometry.PhotometricErrorModel`) with per-star numbers of observations
  (``phot_*_n_obs``: transits ~ lognormal, median 42 in DR3, 27 in DR2; 8.6 G CCD observations per
  transit). DR3 parallaxes carry the Lindegren et al. (2021) zero point Z(G, ν_eff, β)
  (``gaiadr3-zeropoint``; ϖ_obs = ϖ_true + Z, so that ϖ − Z is unbiased), DR2 the global −0.029 mas
  (Lindegren et al. 2018). All sources are 5-parameter solutions with ν_eff from BP−RP
  (Lindegren et al. 2021, eq. 3), ``pseudocolour`` NaN.

Known differences from the real sky (measured in ``tests/membership/test_field.py``)
-------------------------------------------------------------------------------------
Star counts and the G, BP−RP and proper-motion distributions of the two shipped real fields
(the complete DR3 cone at (ra, dec) = (45°, 0°) and the Blanco 1 DR2 cone's non-members) are
reproduced to the margins the tests state (numbers in the test module's docstring); the largest
differences: (1) no high-velocity tail beyond Gaussian ellipsoids: real proper-motion tails are
heavier — in the M67 DR3 cone's pm box (pmra −11.5…−10.5, pmdec −3.5…−2.5 mas/yr, r = 2 deg,
|ϖ − 1.13| > 0.3 mas, G < 18) the real cone has 23 stars, the simulation 7–13 (seeds 0–2), so
field contamination at a cluster's own proper motion is underestimated by up to ~2× where
that motion is far from the field's bulk; (2) the BP−RP distribution depends on the dust
normalisation (a too-thin default dust layer shifts it by ~0.05 mag towards (l, b) = (177°, −49°));
(3) no white dwarfs, (4) no galaxies/QSOs/spurious sources, (5) the errors are a sky average (no
scanning-law pattern), (6) one smooth dust layer, (7) no bulge.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import MemberTableError, OcnbError, UnknownClusterError

__all__ = [
    "DEFAULT_MODEL",
    "COUNT_FIT",
    "FIELD_VERSION",
    "CONE_COLUMNS",
    "TEST_CLUSTERS",
    "FieldModelError",
    "TestClusterError",
    "simulate_field",
    "embed_cluster",
    "degrade_members",
    "dr2_error_level",
    "cone_cuts",
    "compare_fields",
    "plot_field_comparison",
    "extinction_along",
]


class FieldModelError(OcnbError, ValueError):
    """A bad argument of the simulated field: latitude, radius, magnitude limit, model key, cuts."""


class TestClusterError(OcnbError, ValueError):
    """A held-out real test cluster (Blanco 1) was asked for as training/validation data."""

    __test__ = False  # not a pytest test class


#: Clusters reserved for the real test (vG23 reproduction, issue 15): never embedded unless allowed.
TEST_CLUSTERS = ("Blanco 1",)

#: The cone columns every simulated/embedded cone has (brief's cone convention; Gaia archive names).
CONE_COLUMNS = (
    "source_id", "ra", "dec", "l", "b", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
    "pmdec_error", "parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr", "phot_g_mean_mag",
    "phot_bp_mean_mag", "phot_rp_mean_mag", "phot_g_mean_mag_error", "phot_bp_mean_mag_error",
    "phot_rp_mean_mag_error", "bp_rp", "g_rp", "ruwe", "nu_eff_used_in_astrometry", "pseudocolour",
    "ecl_lat", "astrometric_params_solved",
)
_N_OBS_COLUMNS = ("phot_g_n_obs", "phot_bp_n_obs", "phot_rp_n_obs")

#: Galactic model parameters (units in the keys; module docstring for the references).
DEFAULT_MODEL: dict = {
    # Sun and rotation
    "r0_pc": 8122.0, "z_sun_pc": 20.8, "v_circ_kms": 233.4,
    # normalisation: local density (pc^-3) of 0.1-1 Msun stars of all components, times count_scale
    "n_local_pc3": 0.102, "count_scale": 1.0,
    "thick_fraction": 0.06, "halo_fraction": 0.0025,
    # thin disc
    "thin_h_r_pc": 2600.0, "thin_h_z_old_pc": 300.0, "thin_h_z_index": 0.5, "thin_h_z_tau_sat_gyr": 2.0,
    "thin_age_max_gyr": 10.0,
    "thin_mh_0": 0.05, "thin_mh_slope_per_gyr": -0.035, "thin_mh_gradient_per_kpc": -0.06, "thin_mh_sigma": 0.18,
    # thick disc
    "thick_h_r_pc": 2000.0, "thick_h_z_pc": 900.0, "thick_age_gyr": (10.0, 12.0),
    "thick_mh_mean": -0.45, "thick_mh_sigma": 0.20,
    # halo
    "halo_q": 0.64, "halo_n": 2.77, "halo_core_pc": 1000.0, "halo_age_gyr": (12.0, 13.5),
    "halo_mh_mean": -1.25, "halo_mh_sigma": 0.30,
    # kinematics (km/s)
    "thin_sigma_10gyr": (41.899, 28.823, 23.831), "thin_beta": (0.307, 0.430, 0.445),
    "thin_tau1_gyr": (0.001, 0.715, 0.001), "drift_k_kms": 80.0,
    "thick_sigma": (67.0, 38.0, 35.0), "thick_lag_kms": 46.0,
    "halo_sigma": (160.0, 90.0, 90.0), "halo_lag_kms": 220.0,
    # dust
    "dust_h_z_pc": 125.0, "dust_a0_mag_per_kpc": 0.7,
    # stars
    "binary_fraction": 0.3, "imf_m_break": 0.5, "imf_alpha_low": 1.3,
}

#: How ``n_local_pc3`` was fitted (the numbers are re-measured by the tests; see :func:`compare_fields`).
COUNT_FIT = (
    "Fitted by hand (seed 1, then checked on seeds 0-3) on the two real fields shipped: the complete DR3 cone at "
    "(ra, dec) = (45, 0) deg, r = 0.5 deg, G < 18 (698 stars, (l, b) = (177.0, -48.9)) and the Blanco 1 DR2 cone's "
    "non-members (G < 18, ruwe < 1.4, 14523 stars, r = 2.51 deg, b = -79.1). With the literature start (n_local 0.06, "
    "thick 10 %, halo 0.5 %, thin h_z growing as sqrt(age) to 10 Gyr) the simulated/real count ratios were 0.48 "
    "and 0.64, bright stars 2-5x short and the colours too blue (a halo/thick turn-off excess). Saturating the thin "
    "disc's h_z at 2 Gyr, thick 6 %, halo 0.25 % fixed the shapes (Blanco 1: KS D < 0.06 for G, BP-RP, pmra, pmdec, "
    "parallax); n_local = 0.060 / 0.59 = 0.102 pc^-3 then sets the geometric mean of the two count ratios to 1: "
    "measured 0.87-0.94 (DR3 field) and 1.04-1.06 (Blanco 1) over seeds 0-3."
)

#: Version of the simulator's output (part of the cache key: bump it when the recipe changes).
FIELD_VERSION = "v1"
_LATTICE_RANGE = {"log_age_range": (6.6, 10.13), "mh_range": (-2.2, 0.3), "step": 0.1}
_D_EDGES = np.geomspace(1.0, 2.0e5, 421)  # distance shells (pc)
_BINARY_MARGIN = 2.5 * math.log10(2.0)  # an equal-mass binary is 0.75 mag brighter
_N_NEIGHBOURS = 11  # real sources of nearest G to borrow errors from
_KMS_PER_MASYR_KPC = 4.740470446
_SOURCE_ID_OFFSET = 0  # simulated ids are -1, -2, ... (real Gaia ids are positive)
_CORR_COLUMNS = ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr")
_N_LEVEL = 41  # real sources of nearest G whose (rescaled) errors give the median DR2 error at a G
#: Median number of field-of-view transits per source (as in :func:`simulate_field`): photometric
#: errors scale as 1/sqrt(transits), so DR2 / EDR3 magnitude errors ≈ sqrt(42/27) = 1.25.
_TRANSITS = {"DR3": 42.0, "DR2": 27.0}


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def _finite(name: str, value, unit: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise FieldModelError(f"{name} = {value!r} is not a number ({unit})") from None
    if not math.isfinite(v):
        raise FieldModelError(f"{name} = {value!r} must be a finite number ({unit})")
    return v


def _check_model(model) -> dict:
    if model is None:
        return dict(DEFAULT_MODEL)
    if not isinstance(model, Mapping):
        raise FieldModelError(f"model must be a dict of DEFAULT_MODEL keys, not {type(model).__name__}")
    unknown = sorted(set(model) - set(DEFAULT_MODEL))
    if unknown:
        import difflib

        hints = {k: difflib.get_close_matches(k, list(DEFAULT_MODEL), n=1) for k in unknown}
        raise FieldModelError(f"unknown model key(s) {unknown} (close: {hints}); known keys: {sorted(DEFAULT_MODEL)}")
    out = dict(DEFAULT_MODEL, **model)
    for key in ("n_local_pc3", "count_scale", "thin_h_r_pc", "thin_h_z_old_pc", "thick_h_r_pc", "thick_h_z_pc",
                "halo_core_pc", "dust_h_z_pc", "thin_mh_sigma", "thick_mh_sigma", "halo_mh_sigma", "halo_q"):
        v = _finite(f"model[{key!r}]", out[key], "")
        if v <= 0:
            raise FieldModelError(f"model[{key!r}] = {v!r} must be > 0")
    for key in ("thick_fraction", "halo_fraction", "dust_a0_mag_per_kpc", "binary_fraction"):
        v = _finite(f"model[{key!r}]", out[key], "")
        if v < 0 or (key == "binary_fraction" and v > 1):
            upper = " and ≤ 1" if key == "binary_fraction" else ""
            raise FieldModelError(f"model[{key!r}] = {v!r} must be ≥ 0{upper}")
    return out


def _check_direction(l_deg, b_deg, radius_deg, g_max):
    l_deg = _finite("l", l_deg, "deg") % 360.0
    b_deg = _finite("b", b_deg, "deg")
    if abs(b_deg) > 90:
        raise FieldModelError(f"b = {b_deg!r} deg is not a Galactic latitude (|b| ≤ 90 deg)")
    radius_deg = _finite("radius_deg", radius_deg, "deg")
    if not 0 < radius_deg <= 10:
        raise FieldModelError(f"radius_deg = {radius_deg!r} deg must be in (0, 10] deg (a cone search radius; the "
                              "star densities are evaluated along the cone's axis)")
    g_max = _finite("g_max", g_max, "mag")
    if not 8.0 <= g_max <= 21.0:
        raise FieldModelError(f"g_max = {g_max!r} mag must be in [8, 21] mag (Gaia's range; the error models end at "
                              "G ≈ 21)")
    return l_deg, b_deg, radius_deg, g_max


def _check_cuts(pm_box, parallax_range):
    pm = None
    if pm_box is not None:
        vals = np.asarray(pm_box, dtype=float).ravel() if _is_seq(pm_box) else None
        if vals is None or vals.size not in (3, 4) or not np.all(np.isfinite(vals)):
            raise FieldModelError(f"pm_box = {pm_box!r} must be (pmra_c, pmdec_c, radius) [mas/yr] (the circular cut "
                                  "of spec A2) or (pmra_lo, pmra_hi, pmdec_lo, pmdec_hi) [mas/yr], all finite")
        if vals.size == 3 and vals[2] <= 0:
            raise FieldModelError(f"pm_box radius = {vals[2]!r} mas/yr must be > 0")
        if vals.size == 4 and (vals[1] <= vals[0] or vals[3] <= vals[2]):
            raise FieldModelError(f"pm_box = {pm_box!r}: need pmra_lo < pmra_hi and pmdec_lo < pmdec_hi [mas/yr]")
        pm = tuple(float(v) for v in vals)
    plx = None
    if parallax_range is not None:
        vals = np.asarray(parallax_range, dtype=float).ravel() if _is_seq(parallax_range) else None
        if vals is None or vals.size != 2 or not np.all(np.isfinite(vals)) or vals[1] <= vals[0]:
            raise FieldModelError(f"parallax_range = {parallax_range!r} must be (low, high) [mas], finite, low < high")
        plx = (float(vals[0]), float(vals[1]))
    return pm, plx


def _is_seq(x) -> bool:
    return isinstance(x, (tuple, list, np.ndarray))


def _release(release) -> str:
    rel = str(release).upper()
    if rel == "EDR3":
        rel = "DR3"
    if rel not in ("DR2", "DR3"):
        raise FieldModelError(f"release = {release!r}: simulated fields exist for 'DR3' (= EDR3 astrometry) and 'DR2'")
    return rel


# ---------------------------------------------------------------------------
# Dust
# ---------------------------------------------------------------------------
def _dust_shape(d_pc, b_deg, h_pc):
    """∫_0^d exp(−s |sin b|/h) ds [pc]: the A_V(d) shape of an exponential dust layer (stable at b = 0)."""
    s = abs(math.sin(math.radians(b_deg)))
    d = np.asarray(d_pc, dtype=float)
    x = d * s / h_pc
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(x > 1e-8, -np.expm1(-x) / np.where(x > 1e-8, x, 1.0), 1.0 - 0.5 * x)
    return d * f


def extinction_along(d_pc, b_deg: float, extinction=None, model=None) -> np.ndarray:
    """A_V [mag] at distance ``d_pc`` [pc] towards Galactic latitude ``b_deg`` (module docstring, "Extinction").

    ``extinction``: None (0.7 mag/kpc in the plane, h_d = 125 pc), a number (total A_V to infinity),
    or a pair ``(d_pc, a_v)`` (A_V at one distance).
    """
    m = _check_model(model)
    h = float(m["dust_h_z_pc"])
    shape = _dust_shape(d_pc, b_deg, h)
    if extinction is None:
        return m["dust_a0_mag_per_kpc"] / 1000.0 * shape
    if _is_seq(extinction):
        vals = np.asarray(extinction, dtype=float).ravel()
        if vals.size != 2 or not np.all(np.isfinite(vals)) or vals[0] <= 0 or vals[1] < 0:
            raise FieldModelError(f"extinction = {extinction!r} must be (d_pc > 0, a_v ≥ 0) [pc, mag]")
        return vals[1] * shape / float(_dust_shape(vals[0], b_deg, h))
    a_inf = _finite("extinction", extinction, "mag, total A_V to infinity")
    if a_inf < 0:
        raise FieldModelError(f"extinction = {a_inf!r} mag must be ≥ 0")
    s = abs(math.sin(math.radians(b_deg)))
    if s < 0.02:
        raise FieldModelError(f"extinction = {a_inf!r} (A_V to infinity) cannot normalise the dust layer at "
                              f"b = {b_deg:g}"
                              " deg (infinite path); give (d_pc, a_v) instead")
    return a_inf * shape / (h / s)


@functools.lru_cache(maxsize=4)
def _ext_table(band: str):
    """(log Teff nodes, A_V nodes, ratio table) of A_band/A_V (dustapprox G23) on uniform grids (bilinear)."""
    from ..photometry import extinction_ratio, extinction_validity

    a_hi = float(extinction_validity()["a_v"][1])
    lt = np.linspace(np.log10(3000.0), np.log10(50000.0), 245)  # 0.005 dex
    av = np.linspace(0.0, a_hi, round(a_hi / 0.25) + 1)  # 0.25 mag
    tt, aa = np.meshgrid(10 ** lt, av, indexing="ij")
    return lt, av, extinction_ratio(band, tt.ravel(), aa.ravel()).reshape(tt.shape)


def _ext_ratio(band: str, teff, a_v) -> np.ndarray:
    """A_band/A_V per star from the tabulated dustapprox model (bilinear; < 2e-3 from the direct model)."""
    lt, av, tab = _ext_table(band)
    x = (np.clip(np.log10(teff), lt[0], lt[-1]) - lt[0]) / (lt[1] - lt[0])
    y = (np.clip(a_v, av[0], av[-1]) - av[0]) / (av[1] - av[0])
    i = np.minimum(x.astype(np.int64), lt.size - 2)
    j = np.minimum(y.astype(np.int64), av.size - 2)
    tx, ty = x - i, y - j
    flat = tab.reshape(-1)
    k = i * av.size + j
    return ((1 - tx) * ((1 - ty) * flat[k] + ty * flat[k + 1])
            + tx * ((1 - ty) * flat[k + av.size] + ty * flat[k + av.size + 1]))


@functools.lru_cache(maxsize=1)
def _sigma_table():
    """DPAC-spline σ(mag) of G, BP, RP at the reference n_obs of PhotometricErrorModel, on a 0.005-mag grid."""
    from ..photometry import PhotometricErrorModel

    em = PhotometricErrorModel("spline")
    mags = np.arange(3.0, 26.0, 0.005)
    return mags, {b: np.log(em.sigma(b, mags, extrapolate=True)) for b in ("G", "BP", "RP")}, dict(em.n_obs)


def _phot_sigma(band: str, mag, n_obs) -> np.ndarray:
    """σ [mag] of the DPAC spline at ``mag`` for ``n_obs`` observations (Riello et al. 2021 tool, σ ∝ n_obs^-1/2)."""
    mags, logs, n_ref = _sigma_table()
    return np.exp(np.interp(mag, mags, logs[band])) * np.sqrt(n_ref[band] / np.asarray(n_obs, float))


# ---------------------------------------------------------------------------
# Star counts along the line of sight
# ---------------------------------------------------------------------------
def _lattice():
    from ..sim import isochrone_lattice

    return isochrone_lattice(**_LATTICE_RANGE)


@dataclasses.dataclass
class _Component:
    name: str
    node: np.ndarray  # (K,) lattice nodes
    dens: np.ndarray  # (K, J) stars (0.1-1 Msun normalised) per pc^3 at each shell
    age_gyr: np.ndarray  # (K,) age of each node


def _node_edges(nodes: np.ndarray) -> np.ndarray:
    mid = 0.5 * (nodes[1:] + nodes[:-1])
    return np.concatenate([[-np.inf], mid, [np.inf]])


def _age_weights(ages: np.ndarray, lo_gyr: float, hi_gyr: float) -> np.ndarray:
    """Fraction of a population with age uniform in [lo, hi] Gyr that falls in each log-age node's bin."""
    e = _node_edges(ages)
    t = np.clip(np.power(10.0, np.clip(e, -10, 20) - 9.0), lo_gyr, hi_gyr)
    t[0], t[-1] = lo_gyr, hi_gyr
    w = np.diff(t)
    return w / w.sum()


def _mh_weights(mhs: np.ndarray, mean, sigma: float) -> np.ndarray:
    """Gaussian mass in each [M/H] node's bin (outer bins take the tails); mean broadcasts (..., 1)."""
    from scipy.special import ndtr

    e = _node_edges(mhs)
    c = ndtr((e - np.asarray(mean)[..., None]) / sigma)
    return np.diff(c, axis=-1)


def _components(lat, m: dict, d_mid: np.ndarray, l_deg: float, b_deg: float) -> list[_Component]:
    cb, sb = math.cos(math.radians(b_deg)), math.sin(math.radians(b_deg))
    cl, sl = math.cos(math.radians(l_deg)), math.sin(math.radians(l_deg))
    r0, zs = m["r0_pc"], m["z_sun_pc"]
    x = r0 - d_mid * cb * cl
    y = d_mid * cb * sl
    R = np.hypot(x, y)
    z = zs + d_mid * sb
    ages, mhs = lat.ages, lat.mhs
    n_a = ages.size
    n_tot = m["n_local_pc3"] * m["count_scale"]
    n_thin = n_tot / (1.0 + m["thick_fraction"] + m["halo_fraction"])
    out = []

    # thin disc: age groups with their own scale heights, SFR constant in linear age
    p_age = _age_weights(ages, 0.0, m["thin_age_max_gyr"])
    tau = np.power(10.0, ages - 9.0)
    h_z = m["thin_h_z_old_pc"] * np.power(np.minimum(tau + 0.1, m["thin_h_z_tau_sat_gyr"] + 0.1)
                                          / (m["thin_h_z_tau_sat_gyr"] + 0.1), m["thin_h_z_index"])
    local = p_age / h_z * np.exp(-zs / h_z)
    q = np.where(p_age > 0, p_age / h_z / local.sum(), 0.0)  # local share of each age group, Σ q e^{-zs/h} = 1
    radial = np.exp(-(R - r0) / m["thin_h_r_pc"])
    vert = np.exp(-np.abs(z)[None, :] / h_z[:, None])  # (A, J)
    mean = (m["thin_mh_0"] + m["thin_mh_slope_per_gyr"] * tau[:, None]
            + m["thin_mh_gradient_per_kpc"] * (R[None, :] - r0) / 1000.0)  # (A, J)
    p_mh = _mh_weights(mhs, mean, m["thin_mh_sigma"])  # (A, J, M)
    dens = n_thin * (q[:, None] * radial[None, :] * vert)[:, :, None] * p_mh  # (A, J, M)
    dens = np.transpose(dens, (2, 0, 1)).reshape(mhs.size * n_a, -1)  # node = i_mh * n_a + i_age
    out.append(_Component("thin", np.arange(mhs.size * n_a), dens, np.tile(tau, mhs.size)))

    # thick disc and halo: one age-metallicity distribution each, one spatial profile
    thick = (n_thin * m["thick_fraction"] * np.exp(-(R - r0) / m["thick_h_r_pc"])
             * np.exp(-(np.abs(z) - zs) / m["thick_h_z_pc"]))
    rq = np.sqrt(m["halo_core_pc"] ** 2 + R ** 2 + (z / m["halo_q"]) ** 2)
    rq0 = math.sqrt(m["halo_core_pc"] ** 2 + r0 ** 2 + (zs / m["halo_q"]) ** 2)
    halo = n_thin * m["halo_fraction"] * np.power(rq / rq0, -m["halo_n"])
    for name, profile in (("thick", thick), ("halo", halo)):
        pa = _age_weights(ages, *m[f"{name}_age_gyr"])
        pm = _mh_weights(mhs, m[f"{name}_mh_mean"], m[f"{name}_mh_sigma"])
        w = (pm[:, None] * pa[None, :]).reshape(-1)  # node order i_mh * n_a + i_age
        out.append(_Component(name, np.arange(w.size), w[:, None] * profile[None, :], np.tile(tau, mhs.size)))
    # drop negligible nodes
    for c in out:
        keep = c.dens.max(axis=1) > 1e-6 * c.dens.max()
        c.node, c.dens, c.age_gyr = c.node[keep], c.dens[keep], c.age_gyr[keep]
    return out


@functools.lru_cache(maxsize=2)
def _lattice_tables(key):
    """Per lattice: running-minimum keys of M_G along mass (for the lowest bright-enough mass), top masses."""
    lat = _lattice()
    g = lat.columns["G"]
    prefix_min = np.minimum.accumulate(g, axis=1)  # non-increasing along mass
    big = 1000.0
    keys = (-prefix_min + big * np.arange(lat.n_nodes)[:, None]).reshape(-1)
    m_top = lat.mini[np.arange(lat.n_nodes), lat.length - 1]
    mkeys = (lat.mini + 1e4 * np.arange(lat.n_nodes)[:, None]).reshape(-1)
    return lat, keys, big, m_top, mkeys


def _imf_integral(a, b, m: dict):
    from ..sim.mass_function import broken_power_law_integral

    return broken_power_law_integral(a, b, m["imf_m_break"], m["imf_alpha_low"])


def _imf_draw(a, b, u, m: dict):
    from ..sim.mass_function import broken_power_law_inverse

    return broken_power_law_inverse(a, b, u, m["imf_m_break"], m["imf_alpha_low"])


def _locate(lat, mkeys, node, mass):
    """Flat lattice segment index and fraction of ``mass`` on ``node``'s isochrone; lit=False below its lowest mass."""
    j = np.searchsorted(mkeys, mass + 1e4 * node, side="right") - 1
    first = node * lat.width
    last = first + np.maximum(lat.length[node] - 2, 0)
    j = np.clip(j, first, last)
    mini = lat.mini.reshape(-1)
    a, b = mini[j], mini[j + 1]
    t = np.clip(np.where(b > a, (mass - a) / np.where(b > a, b - a, 1.0), 0.0), 0.0, 1.0)
    return j, t, mass >= lat.mini[node, 0]


def _interp(lat, col: str, j, t):
    v = lat.columns[col].reshape(-1)
    return v[j] + t * (v[j + 1] - v[j])


# ---------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------
def simulate_field(l, b, radius_deg, *, g_max: float = 18.0,  # noqa: E741 - Galactic (l, b) as in the literature
                   seed: int = 0, pm_box=None, parallax_range=None,
                   extinction=None, release: str = "DR3", model: Mapping | None = None,
                   truth_columns: bool = True, cache: bool = False) -> pd.DataFrame:
    """SIMULATED Gaia field in a cone around Galactic (l, b): thin + thick disc + halo (module docstring).

    Parameters
    ----------
    l, b : float
        Galactic longitude and latitude of the cone centre [deg].
    radius_deg : float
        Cone radius [deg], in (0, 10].
    g_max : float
        Magnitude limit: stars with *observed* G ≤ g_max are kept [mag], in [8, 21].
    seed : int
        Seed of every random draw (same seed, same field).
    pm_box : tuple, optional
        Proper-motion cut after noise: (pmra_c, pmdec_c, radius) [mas/yr] for the circle of spec A2,
        or (pmra_lo, pmra_hi, pmdec_lo, pmdec_hi) [mas/yr] for a box.
    parallax_range : (float, float), optional
        Observed (raw, zero point not removed) parallax window [mas] (spec A2's ±10 σ cut).
    extinction : None, float or (d_pc, a_v)
        Dust normalisation (:func:`extinction_along`).
    release : {"DR3", "EDR3", "DR2"}
        Which Gaia release's errors (and parallax zero point) to mimic.
    model : dict, optional
        Overrides of :data:`DEFAULT_MODEL`.
    cache : bool
        Keep the result in the data home (``Cache("membership_fields")``, checksummed Parquet, keyed by
        a hash of every argument, the model and :data:`FIELD_VERSION`) and reuse it: a 10-deg cone at
        low latitude draws millions of stars (~1 min), the same call from the cache takes < 1 s.
    truth_columns : bool
        Add the simulation's truth (``true_parallax``, ``true_pmra``, ``true_pmdec`` [mas, mas/yr],
        ``distance_pc``, ``a_v`` [mag], ``mass`` [M☉], ``log_age``, ``mh`` [dex], ``teff`` [K],
        ``component`` ("thin"/"thick"/"halo"), ``is_binary``).

    Returns
    -------
    DataFrame
        One row per simulated star in the cone columns of :data:`CONE_COLUMNS` plus
        ``phot_{g,bp,rp}_n_obs`` (and the truth columns), ``source_id`` = −1, −2, … ;
        ``attrs``: ``simulated=True``, ``release``, ``seed``, ``l``, ``b``, ``ra``, ``dec``,
        ``radius_deg``, ``area_deg2``, ``g_max``, ``model`` (the parameters used),
        ``n_expected`` (mean number of stars drawn), ``n_drawn``, ``n_g_max`` (stars with G ≤ g_max
        before the pm/parallax cuts),
        ``pm_box``, ``parallax_range``, ``flags`` (list of str), ``notes``.

    Raises
    ------
    FieldModelError
        |b| > 90 deg, radius ≤ 0 or > 10 deg, g_max outside [8, 21] mag, NaN input, an unknown
        model key or a bad value, malformed ``pm_box``/``parallax_range``/``extinction``, unknown release.
    """
    l_deg, b_deg, radius_deg, g_max = _check_direction(l, b, radius_deg, g_max)
    pm_cut, plx_cut = _check_cuts(pm_box, parallax_range)
    rel = _release(release)
    m = _check_model(model)
    extinction_along(1.0, b_deg, extinction, m)  # validates ``extinction`` before any work
    seed = int(seed)
    args = dict(l_deg=l_deg, b_deg=b_deg, radius_deg=radius_deg, g_max=g_max, seed=seed, pm_cut=pm_cut,
                plx_cut=plx_cut, extinction=extinction, rel=rel, m=m, truth_columns=bool(truth_columns))
    if not cache:
        return _jsonable_attrs(_simulate(**args))
    import hashlib
    import json

    from ..cache import Cache

    text = json.dumps(dict(args), sort_keys=True, default=_json_default)
    key = f"field_{FIELD_VERSION}_{hashlib.sha256(text.encode()).hexdigest()[:20]}"
    store = Cache("membership_fields")
    attrs_holder: dict = {}

    def compute():
        df = _jsonable_attrs(_simulate(**args))
        attrs_holder.update(df.attrs)
        return df

    df = store.fetch_frame(key + ".parquet", compute)
    attrs = attrs_holder or json.loads(store.fetch_bytes(key + ".json", lambda: b"{}").decode())
    if attrs_holder:
        store.save_bytes(key + ".json", json.dumps(attrs_holder, default=_json_default).encode())
    df.attrs = dict(attrs)
    return df


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _jsonable_attrs(df: pd.DataFrame) -> pd.DataFrame:
    """attrs through a JSON round trip (tuples → lists), so fresh and cached results look the same."""
    import json

    df.attrs = json.loads(json.dumps(df.attrs, default=_json_default))
    return df


def _simulate(*, l_deg, b_deg, radius_deg, g_max, seed, pm_cut, plx_cut, extinction, rel, m, truth_columns):
    rng = np.random.default_rng(seed)
    flags: list[str] = []
    if (abs(b_deg) < 10 and (l_deg < 15 or l_deg > 345)):
        flags.append("bulge/bar not modelled: counts towards the inner Galaxy are too low")
    if radius_deg > 3 and abs(b_deg) < 10:
        flags.append(f"large cone (r = {radius_deg:g} deg) at low latitude: densities are evaluated on the axis")

    lat, keys, big, m_top, mkeys = _lattice_tables(tuple(sorted(_LATTICE_RANGE.items())))
    d_lo, d_hi = _D_EDGES[:-1], _D_EDGES[1:]
    d_mid = np.sqrt(d_lo * d_hi)
    omega = 2 * math.pi * (1 - math.cos(math.radians(radius_deg)))  # sr
    vol = omega * (d_hi ** 3 - d_lo ** 3) / 3.0  # pc^3 per shell
    a_v_lo = extinction_along(d_lo, b_deg, extinction, m)
    k_min = float(_ext_table("G")[2].min())
    # noise margin: 6 σ_G at g_max for the fewest observations a star gets (5 transits), plus 0.02 mag
    noise_margin = 6.0 * float(_phot_sigma("G", g_max + 0.3, 8.6 * 5)) + 0.02
    norm = float(_imf_integral(0.1, 1.0, m))
    g_col = lat.columns["G"]
    fb = float(m["binary_fraction"])

    parts = []
    n_expected = 0.0
    for comp in _components(lat, m, d_mid, l_deg, b_deg):
        node = comp.node
        top = m_top[node][:, None]
        # singles and unresolved binaries separately: a binary can be up to 0.75 mag brighter than its primary
        for binary, share in ((False, 1.0 - fb), (True, fb)):
            if share <= 0:
                continue
            margin = noise_margin + (_BINARY_MARGIN if binary else 0.0)
            m_lim = g_max + margin - (5 * np.log10(d_lo) - 5) - k_min * a_v_lo  # faintest useful M_G per shell
            # first isochrone point whose running-minimum M_G is brighter than the limit, then the exact
            # crossing inside the segment before it (M_G is linear in mass between points, as in _interp)
            i = np.searchsorted(keys, (-m_lim[None, :] + big * node[:, None]).ravel(), side="right").reshape(
                node.size, -1) - node[:, None] * lat.width
            ok = i < lat.length[node][:, None]
            i1 = np.clip(i, 0, lat.width - 1)
            i0 = np.clip(i - 1, 0, lat.width - 1)
            rows = node[:, None]
            a, b_ = lat.mini[rows, i0], lat.mini[rows, i1]
            ga, gb = g_col[rows, i0], g_col[rows, i1]
            with np.errstate(invalid="ignore", divide="ignore"):
                tc = np.clip(np.where(ga > gb, (ga - m_lim[None, :]) / (ga - gb), 0.0), 0.0, 1.0)
            m_first = np.where(ok, np.where(i > 0, a + tc * (b_ - a), lat.mini[rows, 0]), np.inf)
            frac = np.where(ok & (top > m_first), _imf_integral(np.minimum(m_first, top), top, m), 0.0) / norm
            lam = share * comp.dens * vol[None, :] * frac
            n_expected += float(lam.sum())
            counts = rng.poisson(lam)
            kk, jj = np.nonzero(counts)
            c = counts[kk, jj]
            kk, jj = np.repeat(kk, c), np.repeat(jj, c)
            if kk.size == 0:
                continue
            u = rng.random(kk.size)
            dist = np.cbrt(d_lo[jj] ** 3 + u * (d_hi[jj] ** 3 - d_lo[jj] ** 3))  # ∝ d² within the shell
            mass = _imf_draw(m_first[kk, jj], top[kk, 0], rng.random(kk.size), m)
            parts.append({"node": node[kk], "dist": dist, "mass": mass, "age": comp.age_gyr[kk],
                          "comp": np.full(kk.size, ("thin", "thick", "halo").index(comp.name), np.int8),
                          "binary": np.full(kk.size, binary)})
    if not parts:
        stars = {k: np.empty(0) for k in ("node", "dist", "mass", "age")}
        stars["node"] = stars["node"].astype(np.int64)
        stars["comp"] = np.empty(0, np.int8)
        stars["binary"] = np.empty(0, bool)
    else:
        stars = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return _observe(stars, lat, mkeys, m, rng, l_deg=l_deg, b_deg=b_deg, radius_deg=radius_deg, g_max=g_max,
                    extinction=extinction, release=rel, pm_cut=pm_cut, plx_cut=plx_cut, seed=seed, flags=flags,
                    n_expected=n_expected, truth_columns=truth_columns)


def _cone_positions(rng, n: int, l_deg: float, b_deg: float, radius_deg: float):
    """Uniform positions in a spherical cap around (l, b): Galactic (l, b) arrays [deg]."""
    cos_r = math.cos(math.radians(radius_deg))
    ct = 1 - rng.random(n) * (1 - cos_r)
    st = np.sqrt(np.clip(1 - ct * ct, 0, None))
    ph = rng.random(n) * 2 * math.pi
    v = np.stack([st * np.cos(ph), st * np.sin(ph), ct])  # around +z
    lr, br = math.radians(l_deg), math.radians(b_deg)
    # rotate +z onto (l, b): columns are the local east, north and radial unit vectors
    rad = np.array([math.cos(br) * math.cos(lr), math.cos(br) * math.sin(lr), math.sin(br)])
    east = np.array([-math.sin(lr), math.cos(lr), 0.0])
    north = np.cross(rad, east)
    xyz = east[:, None] * v[0] + north[:, None] * v[1] + rad[:, None] * v[2]
    ll = np.degrees(np.arctan2(xyz[1], xyz[0])) % 360.0
    bb = np.degrees(np.arcsin(np.clip(xyz[2], -1, 1)))
    return ll, bb


def _velocities(rng, stars, m: dict):
    """Galactocentric cylindrical (v_R, v_rot, v_z) [km/s] per star; v_rot along the Galaxy's rotation."""
    n = stars["dist"].size
    comp = stars["comp"]
    sig = np.empty((n, 3))
    lag = np.empty(n)
    thin = comp == 0
    tau = stars["age"][thin]
    s10, beta, tau1 = (np.asarray(m[k], float) for k in ("thin_sigma_10gyr", "thin_beta", "thin_tau1_gyr"))
    sig[thin] = s10 * np.power((tau[:, None] + tau1) / (10.0 + tau1), beta)
    lag[thin] = sig[thin, 0] ** 2 / m["drift_k_kms"]
    for code, name in ((1, "thick"), (2, "halo")):
        sel = comp == code
        sig[sel] = np.asarray(m[f"{name}_sigma"], float)
        lag[sel] = m[f"{name}_lag_kms"]
    v = rng.standard_normal((n, 3)) * sig
    v[:, 1] += m["v_circ_kms"] - lag
    return v


def _observe(stars, lat, mkeys, m, rng, *, l_deg, b_deg, radius_deg, g_max, extinction, release, pm_cut, plx_cut,
             seed, flags, n_expected, truth_columns):
    """Photometry, kinematics, Gaia errors and cuts of drawn stars → the cone DataFrame.

    Staged so that the expensive steps only see stars that can still pass: (1) G only and the
    magnitude cut, (2) parallax errors and noise and the parallax window (exact up to the zero
    point, a margin of 0.2 mas), (3) BP/RP, positions, velocities (astropy) and the exact cuts.
    """
    from ..photometry import parallax_error

    n = stars["dist"].size
    # (1) G of primary + companion, noise, cut
    j, t, _ = _locate(lat, mkeys, stars["node"], stars["mass"])
    teff = np.power(10.0, _interp(lat, "log_teff", j, t))
    a_v = extinction_along(stars["dist"], b_deg, extinction, m)
    dmod = 5 * np.log10(stars["dist"]) - 5
    is_bin = stars["binary"]
    q = rng.random(n)
    j2, t2, lit = _locate(lat, mkeys, stars["node"], stars["mass"] * q)
    lit &= is_bin
    teff2 = np.power(10.0, _interp(lat, "log_teff", j2, t2))

    def band_mag(band, sel):
        m1 = _interp(lat, band, j[sel], t[sel]) + dmod[sel] + a_v[sel] * _ext_ratio(band, teff[sel], a_v[sel])
        lt = lit[sel]
        out = m1.copy()
        if lt.any():
            s2 = np.flatnonzero(lt) if isinstance(sel, slice) else np.asarray(sel)[lt]
            m2 = (_interp(lat, band, j2[s2], t2[s2]) + dmod[s2] + a_v[s2] * _ext_ratio(band, teff2[s2], a_v[s2]))
            out[lt] = -2.5 * np.log10(np.power(10.0, -0.4 * m1[lt]) + np.power(10.0, -0.4 * m2))
        return out

    transits = np.maximum(np.rint(np.exp(rng.normal(math.log(_TRANSITS[release]), 0.25, n))), 5)
    g_true = band_mag("G", slice(None))
    g_obs = g_true + _phot_sigma("G", g_true, np.rint(8.6 * transits)) * rng.standard_normal(n)
    idx = np.flatnonzero(g_obs <= g_max)
    g_obs = g_obs[idx]
    # (2) astrometric errors: nearest-G real sources, rescaled to the star's G; noise; parallax pre-cut
    ref = _error_reference(release)
    g_ref = ref["phot_g_mean_mag"]
    pos = np.searchsorted(g_ref, g_obs)
    pick = np.clip(pos + rng.integers(-(_N_NEIGHBOURS // 2), _N_NEIGHBOURS // 2 + 1, idx.size), 0, g_ref.size - 1)
    scale = parallax_error(g_obs, extrapolate=True) / parallax_error(g_ref[pick], extrapolate=True)
    s_plx = ref["parallax_error"][pick] * scale
    s_ra = ref["pmra_error"][pick] * scale
    s_de = ref["pmdec_error"][pick] * scale
    r_pa, r_pd, r_ad = (ref[c][pick] for c in ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr"))
    z = rng.standard_normal((idx.size, 3))
    plx_true = 1000.0 / stars["dist"][idx]
    n_g = idx.size
    if plx_cut is not None:  # |Z| < 0.2 mas everywhere (Lindegren et al. 2021): the exact cut follows
        plx_noisy = plx_true + s_plx * z[:, 0]  # first row of the Cholesky factor: σ_ϖ z_0
        k = np.flatnonzero((plx_noisy >= plx_cut[0] - 0.2) & (plx_noisy <= plx_cut[1] + 0.2))
        idx, g_obs, pick, z, plx_true = idx[k], g_obs[k], pick[k], z[k], plx_true[k]
        s_plx, s_ra, s_de, r_pa, r_pd, r_ad = (v[k] for v in (s_plx, s_ra, s_de, r_pa, r_pd, r_ad))
    n = idx.size
    cov = np.empty((n, 3, 3))
    cov[:, 0, 0], cov[:, 1, 1], cov[:, 2, 2] = s_plx ** 2, s_ra ** 2, s_de ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = r_pa * s_plx * s_ra
    cov[:, 0, 2] = cov[:, 2, 0] = r_pd * s_plx * s_de
    cov[:, 1, 2] = cov[:, 2, 1] = r_ad * s_ra * s_de
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(3)) if n else np.empty((0, 3, 3))
    noise = np.einsum("nij,nj->ni", chol, z)
    # (3) the rest for the survivors
    sub = {k_: v[idx] for k_, v in stars.items()}
    transits = transits[idx]
    n_obs = {"G": np.rint(8.6 * transits), "BP": transits, "RP": transits}
    obs = {"G": g_obs}
    for band in ("BP", "RP"):
        true = band_mag(band, idx)
        obs[band] = true + _phot_sigma(band, true, n_obs[band]) * rng.standard_normal(n)
    sig = {b: _phot_sigma(b, obs[b], n_obs[b]) for b in ("G", "BP", "RP")}
    teff_k, a_v_k, bin_k = teff[idx], a_v[idx], lit[idx]
    ll, bb = _cone_positions(rng, n, l_deg, b_deg, radius_deg)
    v = _velocities(rng, sub, m)
    ra, dec, plx_true, pmra_true, pmdec_true, ecl_lat = _to_icrs(ll, bb, sub["dist"], v, m)
    bp_rp = obs["BP"] - obs["RP"]
    nu_eff = _nu_eff(bp_rp)
    zp = _zero_point(obs["G"], nu_eff, ecl_lat, release)
    plx = plx_true + zp + noise[:, 0]
    pmra = pmra_true + noise[:, 1]
    pmdec = pmdec_true + noise[:, 2]

    out = pd.DataFrame({
        "source_id": -(np.arange(n, dtype=np.int64) + 1),
        "ra": ra, "dec": dec, "l": ll, "b": bb,
        "parallax": plx, "parallax_error": s_plx, "pmra": pmra, "pmra_error": s_ra,
        "pmdec": pmdec, "pmdec_error": s_de,
        "parallax_pmra_corr": r_pa, "parallax_pmdec_corr": r_pd, "pmra_pmdec_corr": r_ad,
        "phot_g_mean_mag": obs["G"], "phot_bp_mean_mag": obs["BP"], "phot_rp_mean_mag": obs["RP"],
        "phot_g_mean_mag_error": sig["G"], "phot_bp_mean_mag_error": sig["BP"], "phot_rp_mean_mag_error": sig["RP"],
        "bp_rp": bp_rp, "g_rp": obs["G"] - obs["RP"],
        "ruwe": ref["ruwe"][pick],
        "nu_eff_used_in_astrometry": nu_eff, "pseudocolour": np.full(n, np.nan), "ecl_lat": ecl_lat,
        "astrometric_params_solved": np.full(n, 31, dtype=np.int16),
        "phot_g_n_obs": n_obs["G"].astype(np.int32), "phot_bp_n_obs": n_obs["BP"].astype(np.int32),
        "phot_rp_n_obs": n_obs["RP"].astype(np.int32),
    })
    if truth_columns:
        log_age, mh = lat.node_params(sub["node"])
        out["true_parallax"] = plx_true
        out["true_pmra"] = pmra_true
        out["true_pmdec"] = pmdec_true
        out["distance_pc"] = sub["dist"]
        out["a_v"] = a_v_k
        out["mass"] = sub["mass"]
        out["log_age"] = log_age
        out["mh"] = mh
        out["teff"] = teff_k
        out["component"] = pd.Categorical.from_codes(sub["comp"].astype(int), ["thin", "thick", "halo"])
        out["is_binary"] = bin_k
    cut = _cut_mask(out, pm_cut, plx_cut)
    out = out.loc[cut].reset_index(drop=True)
    out["source_id"] = -(np.arange(len(out), dtype=np.int64) + 1)
    ra_c, dec_c = _galactic_to_icrs(np.array([l_deg]), np.array([b_deg]))
    out.attrs.update(
        simulated=True, release=release, seed=seed, l=l_deg, b=b_deg, ra=float(ra_c[0]), dec=float(dec_c[0]),
        radius_deg=radius_deg, area_deg2=_cap_area_deg2(radius_deg), g_max=g_max, model=dict(m),
        extinction=extinction, n_expected=n_expected, n_drawn=int(stars["dist"].size), n_g_max=int(n_g),
        pm_box=pm_cut, parallax_range=plx_cut, flags=flags,
        notes=("SIMULATED Galactic field (thin/thick disc + halo, PARSEC, dust layer, velocity ellipsoids, "
               "Gaia errors from real random sources): ocnb.membership.field.simulate_field"),
    )
    return out


def _cap_area_deg2(radius_deg: float) -> float:
    return 2 * math.pi * (1 - math.cos(math.radians(radius_deg))) * (180 / math.pi) ** 2


def _cut_mask(df: pd.DataFrame, pm_cut, plx_cut) -> np.ndarray:
    ok = np.ones(len(df), dtype=bool)
    if pm_cut is not None:
        pmra, pmdec = df["pmra"].to_numpy(float), df["pmdec"].to_numpy(float)
        if len(pm_cut) == 3:
            ok &= np.hypot(pmra - pm_cut[0], pmdec - pm_cut[1]) <= pm_cut[2]
        else:
            ok &= (pmra >= pm_cut[0]) & (pmra <= pm_cut[1]) & (pmdec >= pm_cut[2]) & (pmdec <= pm_cut[3])
    if plx_cut is not None:
        plx = df["parallax"].to_numpy(float)
        ok &= (plx >= plx_cut[0]) & (plx <= plx_cut[1])
    return ok


def cone_cuts(df: pd.DataFrame, pm_box=None, parallax_range=None) -> np.ndarray:
    """Rows passing a spec-A2 proper-motion circle/box and parallax window (as in :func:`simulate_field`)."""
    pm_cut, plx_cut = _check_cuts(pm_box, parallax_range)
    return _cut_mask(df, pm_cut, plx_cut)


def _nu_eff(bp_rp) -> np.ndarray:
    """ν_eff [μm⁻¹] used in EDR3 5-parameter solutions: 1.76 − (1.61/π) atan(0.531 C), clipped to [1.24, 1.72]
    (Lindegren et al. 2021, A&A 649, A2, eq. 3)."""
    c = np.asarray(bp_rp, dtype=float)
    return np.clip(1.76 - (1.61 / math.pi) * np.arctan(0.531 * c), 1.24, 1.72)


def _zero_point(g, nu_eff, ecl_lat, release: str) -> np.ndarray:
    """Parallax zero point Z [mas] to *add* to true parallaxes (ϖ_obs = ϖ_true + Z)."""
    if release == "DR2":
        return np.full(np.shape(g), -0.029)  # Lindegren et al. 2018 global offset
    if np.size(g) == 0:
        return np.empty(0)
    from zero_point import zpt

    zpt.load_tables()
    gg = np.clip(np.asarray(g, float), 6.0, 20.99)
    z = zpt.get_zpt(gg, np.clip(nu_eff, 1.1, 1.9), np.full(gg.size, np.nan), np.asarray(ecl_lat, float),
                    np.full(gg.size, 31), _warnings=False)
    return np.where(np.isfinite(z), z, -0.017)  # -0.017 mas: the EDR3 quasar median (Lindegren+2021)


def _galactic_to_icrs(l_deg, b_deg):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(l=np.asarray(l_deg) * u.deg, b=np.asarray(b_deg) * u.deg, frame="galactic").icrs
    return c.ra.deg, c.dec.deg


def _to_icrs(l_deg, b_deg, dist_pc, v_cyl, m: dict):
    """Galactic positions + Galactocentric cylindrical velocities → (ra, dec, parallax, pmra, pmdec, ecl_lat)."""
    n = np.size(l_deg)
    if n == 0:
        e = np.empty(0)
        return e, e, e, e, e, e
    import astropy.units as u
    from astropy.coordinates import (
        CartesianDifferential,
        CartesianRepresentation,
        Galactocentric,
        SkyCoord,
        galactocentric_frame_defaults,
    )

    with galactocentric_frame_defaults.set("v4.0"):
        gc_frame = Galactocentric()
    pos = SkyCoord(l=l_deg * u.deg, b=b_deg * u.deg, distance=dist_pc * u.pc, frame="galactic")
    gc = pos.transform_to(gc_frame)
    x, y, z = (gc.cartesian.x.to_value(u.pc), gc.cartesian.y.to_value(u.pc), gc.cartesian.z.to_value(u.pc))
    R = np.hypot(x, y)
    cphi, sphi = x / R, y / R
    v_r, v_rot, v_z = v_cyl[:, 0], v_cyl[:, 1], v_cyl[:, 2]
    # astropy's Galactocentric frame: the Sun (x < 0) moves towards +y, i.e. rotation is along −e_φ
    vx = v_r * cphi + v_rot * sphi
    vy = v_r * sphi - v_rot * cphi
    rep = CartesianRepresentation(x * u.pc, y * u.pc, z * u.pc,
                                  differentials=CartesianDifferential(vx * u.km / u.s, vy * u.km / u.s,
                                                                      v_z * u.km / u.s))
    icrs = SkyCoord(gc_frame.realize_frame(rep)).icrs
    ra, dec = icrs.ra.deg, icrs.dec.deg
    plx = 1000.0 / icrs.distance.to_value(u.pc)
    pmra = icrs.pm_ra_cosdec.to_value(u.mas / u.yr)
    pmdec = icrs.pm_dec.to_value(u.mas / u.yr)
    ecl = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").barycentrictrueecliptic.lat.deg
    return ra, dec, plx, pmra, pmdec, ecl


@functools.lru_cache(maxsize=2)
def _error_reference(release: str) -> dict:
    """Real random Gaia sources (``random_dr3``/``random_dr2``) with finite 5-p astrometry, sorted by G."""
    from ..datasets import load_field

    df = load_field("random_dr3" if release == "DR3" else "random_dr2")
    cols = ["phot_g_mean_mag", "parallax_error", "pmra_error", "pmdec_error", "parallax_pmra_corr",
            "parallax_pmdec_corr", "pmra_pmdec_corr", "ruwe"]
    if "ruwe" not in df.columns:  # DR2's gaia_source has no ruwe column
        df = df.assign(ruwe=1.0)
    df = df[cols].dropna().sort_values("phot_g_mean_mag")
    return {c: df[c].to_numpy(float) for c in cols}


# ---------------------------------------------------------------------------
# Real members in a simulated field
# ---------------------------------------------------------------------------
_MEMBER_REQUIRED = ("ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec", "pmdec_error",
                    "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag")


def _cluster_name(members, cluster_name):
    if cluster_name is None and isinstance(members, pd.DataFrame):
        cluster_name = members.attrs.get("cluster")
        col = members["cluster"] if "cluster" in members.columns else None
        if cluster_name is None and col is not None and len(col) and (col == col.iloc[0]).all():
            cluster_name = str(members["cluster"].iloc[0])
    if cluster_name is None:
        raise UnknownClusterError("embed_cluster needs the cluster's name (cluster_name=...) to look up its CG2020 "
                                  "distance and extinction; the member table has no attrs['cluster'] or 'cluster' "
                                  "column")
    from ..datasets import resolve_cluster_name

    return resolve_cluster_name(cluster_name)


def _load_members(name: str) -> pd.DataFrame:
    from ..datasets import load_members

    try:
        return load_members(name, source="almeida")
    except UnknownClusterError:
        return load_members(name, source="dr3_cone")


def _catalogue(name: str) -> dict:
    """CG2020 centre, distance, A_V of a cluster (load_catalog("cantat2020")); NaN where absent."""
    from ..datasets import literature_parameters

    out = {"ra": np.nan, "dec": np.nan, "dist_pc": np.nan, "a_v": np.nan, "source": "CANTAT2020"}
    lit = literature_parameters(name)
    row = lit[lit["catalog"] == "CANTAT2020"]
    if len(row):
        out["dist_pc"], out["a_v"] = float(row["distance_pc"].iloc[0]), float(row["a_v"].iloc[0])
        from ..datasets import load_catalog

        cat = load_catalog("cantat2020")
        hit = cat[cat["Cluster"].astype(str) == str(row["name_in_catalog"].iloc[0])]
        if len(hit):
            out["ra"], out["dec"] = float(hit["RA_ICRS"].iloc[0]), float(hit["DE_ICRS"].iloc[0])
    if not np.isfinite(out["dist_pc"]):
        d = lit["distance_pc"].dropna()
        if len(d):
            out["dist_pc"], out["source"] = float(d.iloc[0]), str(lit.loc[d.index[0], "catalog"])
        a = lit["a_v"].dropna()
        if len(a):
            out["a_v"] = float(a.iloc[0])
    return out


def dr2_error_level(g) -> dict:
    """Median Gaia DR2 astrometric errors at magnitude G: the error model of the simulated DR2 fields.

    The same G-dependent model :func:`simulate_field` samples for ``release="DR2"``: the errors of the
    41 real random DR2 sources (``load_field("random_dr2")``, 1000 sources) of nearest G, each
    rescaled to G by the ratio of :func:`ocnb.photometry.parallax_error` at the two magnitudes, and
    their median (a sky median: no scanning-law pattern). Measured: σ_ϖ = 0.022, 0.056, 0.085, 0.112,
    0.164 mas and σ_μα* = 0.031, 0.097, 0.126, 0.184, 0.275 mas/yr at G = 12, 16, 17, 17.5, 18: 1.15–1.35× (ϖ)
    and 1.7–2.2× (μ) the EDR3 medians of :func:`ocnb.photometry.parallax_error` (EDR3 has 34 instead of
    22 months of data). The real Blanco 1 DR2 cone's median errors are 1.0–1.3× these at G = 14–17.5
    (~2× at G = 12, where DR2's bright-star calibration is worse than the random sources' median).

    Parameters
    ----------
    g : array_like
        Gaia G [mag].

    Returns
    -------
    dict
        ``parallax_error`` [mas], ``pmra_error``, ``pmdec_error`` [mas/yr], arrays shaped like ``g``.
    """
    from ..photometry import parallax_error

    g = np.asarray(g, dtype=float)
    flat = g.reshape(-1)
    ref = _error_reference("DR2")
    g_ref = ref["phot_g_mean_mag"]
    pos = np.searchsorted(g_ref, flat)
    lo = np.clip(pos - _N_LEVEL // 2, 0, g_ref.size - _N_LEVEL)
    win = lo[:, None] + np.arange(_N_LEVEL)[None, :]  # (n, 41) nearest-G window, vectorised
    scale = (parallax_error(flat, extrapolate=True)[:, None]
             / parallax_error(g_ref[win], extrapolate=True))
    return {c: np.median(ref[c][win] * scale, axis=1).reshape(g.shape)
            for c in ("parallax_error", "pmra_error", "pmdec_error")}


def degrade_members(members: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Real (E)DR3 members degraded to Gaia DR2 precision: SIMULATED noise added to real astrometry.

    A model that scores a DR2 cone must be trained on DR2-like cones: the network never sees errors,
    it learns the members' spread in proper motion and parallax from the training cones, and DR2's
    errors at G ~ 17.5 are ~2× EDR3's (the real Blanco 1 DR2 members missed by an EDR3-trained
    model are faint, with large proper-motion offsets). For every member:

    * **astrometry**: σ_DR2 = max(σ_level(G), σ_EDR3) with σ_level from :func:`dr2_error_level`
      (the error model of the simulated DR2 field) replaces ``parallax_error``, ``pmra_error``,
      ``pmdec_error``, and independent Gaussian noise of variance σ_DR2² − σ_EDR3² (≥ 0) is added to
      ``parallax``, ``pmra``, ``pmdec`` — the degraded values scatter by σ_DR2 around the truth as
      far as the EDR3 values were unbiased. The noise is uncorrelated: a DR2 cone has no
      correlation columns (:func:`embed_cluster` drops them), so the covariance is diagonal;
    * **parallax zero point**: the EDR3 zero point of Lindegren et al. (2021) (``gaiadr3-zeropoint``,
      5-parameter formula with ν_eff from BP−RP as in :func:`simulate_field`) is removed and DR2's
      global −0.029 mas (Lindegren et al. 2018) put in, so that :func:`ocnb.membership.prepare_cone`'s
      DR2 correction (ϖ + 0.029) is as consistent for the members as for the simulated field;
    * **photometry**: σ_DR2 = σ_EDR3·sqrt(42/27) (DR2 has ~27 transits per source against ~42) for the
      ``phot_{g,bp,rp}_mean_mag_error`` columns present, and noise of variance σ_DR2² − σ_EDR3² added
      to the magnitudes (DR2 and EDR3 photometric errors are similar: a small change);
    * ``parallax_pmra_corr``, ``parallax_pmdec_corr``, ``pmra_pmdec_corr`` are set to NaN.

    Positions are kept (DR2 position errors, < 1 mas, do not matter on the 50-pc scale of a cone).

    Parameters
    ----------
    members : DataFrame
        A member table (``load_members`` format) with finite astrometry and photometry.
    seed : int
        Seed of the noise (the same seed gives the same degraded table).

    Returns
    -------
    DataFrame
        A copy with the degraded columns; ``attrs`` kept, plus ``release="DR2"`` and a note.

    Raises
    ------
    MemberTableError
        A required column is missing or non-finite.
    """
    missing = [c for c in _MEMBER_REQUIRED if c not in members.columns]
    if missing:
        raise MemberTableError(f"degrade_members: member table lacks column(s) {missing}")
    out = members.reset_index(drop=True).copy()
    vals = out[list(_MEMBER_REQUIRED)].to_numpy(float)
    if not np.isfinite(vals).all():
        raise MemberTableError("degrade_members: NaN/inf in the astrometry or photometry "
                               f"({int((~np.isfinite(vals).all(axis=1)).sum())} row(s)); drop them first")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x445232])  # own stream: "DR2"
    n = len(out)
    g = out["phot_g_mean_mag"].to_numpy(float)
    level = dr2_error_level(g)
    z = rng.standard_normal((n, 3))
    for k, (col, err) in enumerate((("parallax", "parallax_error"), ("pmra", "pmra_error"),
                                    ("pmdec", "pmdec_error"))):
        s1 = out[err].to_numpy(float)
        s2 = np.maximum(level[err], s1)
        out[col] = out[col].to_numpy(float) + np.sqrt(s2 ** 2 - s1 ** 2) * z[:, k]
        out[err] = s2
    # parallax zero point: EDR3 (L21, per star) out, DR2 global offset in
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ecl = SkyCoord(ra=out["ra"].to_numpy(float) * u.deg, dec=out["dec"].to_numpy(float) * u.deg
                   ).barycentrictrueecliptic.lat.deg
    bp_rp = out["phot_bp_mean_mag"].to_numpy(float) - out["phot_rp_mean_mag"].to_numpy(float)
    z_edr3 = _zero_point(g, _nu_eff(bp_rp), ecl, "DR3")
    out["parallax"] = out["parallax"].to_numpy(float) - z_edr3 + _zero_point(g, None, None, "DR2")
    f = math.sqrt(_TRANSITS["DR3"] / _TRANSITS["DR2"])
    zp = rng.standard_normal((n, 3))
    for k, band in enumerate(("g", "bp", "rp")):
        err = f"phot_{band}_mean_mag_error"
        if err in out.columns:
            s1 = out[err].to_numpy(float)
            add = np.where(np.isfinite(s1), s1 * math.sqrt(f ** 2 - 1.0), 0.0)
            out[f"phot_{band}_mean_mag"] = out[f"phot_{band}_mean_mag"].to_numpy(float) + add * zp[:, k]
            out[err] = s1 * f
    for c in _CORR_COLUMNS:
        if c in out.columns:
            out[c] = np.nan
    out.attrs.update(members.attrs)
    out.attrs["release"] = "DR2"
    out.attrs["notes"] = (str(members.attrs.get("notes", "")) + " | members degraded to DR2 precision: SIMULATED "
                          "noise added to real astrometry (ocnb.membership.field.degrade_members)").strip(" |")
    return out


def embed_cluster(members=None, cluster_name: str | None = None, seed: int = 0, field: pd.DataFrame | None = None,
                  cone_cuts: bool = True, *, g_max: float = 18.0, radius_pc: float = 50.0, n_sigma: float = 10.0,
                  allow_test_cluster: bool = False, model: Mapping | None = None, cache: bool = True,
                  release: str = "DR3"):
    """Real cluster members inside a SIMULATED field along their line of sight: a training/validation cone.

    The cone is spec A2's: centre = CG2020 (RA_ICRS, DE_ICRS) (the members' mean where the
    cluster is not in CG2020), radius = (radius_pc / D)·180/π with D = CG2020 DistPc, and — with
    ``cone_cuts`` — the circular proper-motion cut |Δμ| ≤ n_sigma·σ_pm, σ_pm = sqrt((s_μα*² + s_μδ²)/2)
    and |ϖ − ϖ_c| ≤ n_sigma·s_ϖ around the members' means, with the members' own population
    dispersions s (ddof = 0) instead of CG2020's (spec A13.1 uses CG2020's member dispersions;
    the shipped CG2020 table has none, and the members give the same quantity). The field is
    :func:`simulate_field` for that cone with the same cuts, to ``g_max``, with the dust normalised
    so that A_V(D) = the cluster's CG2020 A_V (AVNN). Members fainter than ``g_max``, outside the
    radius or outside the cuts are dropped (counted in ``attrs``), as a real cone search would.

    Parameters
    ----------
    members : DataFrame or str, optional
        A member table (``ocnb.datasets.load_members`` format: ra, dec, parallax, pmra, pmdec with
        errors, G/BP/RP; the three pm/parallax correlations if available) or a cluster name (loads
        ``load_members(name, source="almeida")``, else ``"dr3_cone"``). None: ``cluster_name``'s list.
    cluster_name : str, optional
        The cluster (any alias); default ``members.attrs["cluster"]`` or its ``cluster`` column.
    seed : int
        Seed of the simulated field and of the row shuffle.
    field : DataFrame, optional
        A ready simulated (or real non-member) field to use instead of simulating one; it gets the
        same radius and cuts.
    cone_cuts : bool
        Apply the spec-A2 pm/parallax cuts (False: the whole cone to ``g_max``).
    g_max : float
        Magnitude limit of both field and members [mag].
    radius_pc, n_sigma : float
        Cone radius at the cluster [pc] and width of the cuts (spec A2: 50 pc, 10).
    allow_test_cluster : bool
        Allow Blanco 1, the held-out real test (only for diagnostics, never for training).
    model : dict, optional
        Overrides of :data:`DEFAULT_MODEL`.
    cache : bool
        Cache the simulated field in the data home (:func:`simulate_field`, whose key includes the
        release); nearby clusters have 10-deg cones with millions of drawn stars.
    release : {"DR3", "EDR3", "DR2"}
        The Gaia release the cone imitates: the release of the cone the trained model will score
        (the network never sees errors as inputs; it learns the members' spread from its training
        cones). ``"DR3"``/``"EDR3"``: the members as published (EDR3 astrometry). ``"DR2"``: the
        field gets DR2 errors and the −0.029 mas DR2 zero point (:func:`simulate_field`), and the real
        members are **degraded to DR2 precision: SIMULATED noise added to real astrometry**
        (:func:`degrade_members`); the three pm/parallax correlation columns are dropped from the whole
        cone, because the real DR2 cone (Blanco 1) has none (both are then scored with a diagonal
        covariance). The degradation happens before the cone's means, dispersions and cuts.

    Returns
    -------
    (DataFrame, ndarray of bool)
        The cone (:data:`CONE_COLUMNS`, rows shuffled, RangeIndex; members keep their real
        ``source_id``, field stars have negative ids) and ``truth`` (True = a published member).
        ``attrs``: ``simulated=True`` (the field is simulated, the members are real), ``cluster``,
        ``release`` ("DR3" or "DR2"), ``ra``, ``dec``, ``l``, ``b``, ``radius_deg``, ``dist_pc``, ``a_v``,
        ``pm_box``, ``parallax_range``, ``n_members``, ``n_field``, ``members_dropped`` (dict of
        reasons → counts), ``flags``, ``seed``, ``members_source``.

    Raises
    ------
    TestClusterError
        Blanco 1 without ``allow_test_cluster=True``.
    UnknownClusterError
        A cluster name that no catalogue knows, or no name at all.
    MemberTableError
        Members without a required column, or no member left (all NaN astrometry/photometry, all
        outside the cone, fewer than 2 rows for the dispersions).
    FieldModelError
        Bad ``g_max``/``radius_pc``/``n_sigma``, an unknown ``release`` (and everything
        :func:`simulate_field` refuses).
    """
    rel = _release(release)
    if isinstance(members, str):
        cluster_name = cluster_name or members
        members = None
    name = _cluster_name(members, cluster_name) if (members is not None or cluster_name is not None) else None
    if name is None:
        raise UnknownClusterError("embed_cluster needs members or cluster_name")
    if name in TEST_CLUSTERS and not allow_test_cluster:
        raise TestClusterError(f"{name} is the held-out real test cluster of notebook 02 (its published members are "
                               "the truth of the real test): it never enters training or validation. Pass "
                               "allow_test_cluster=True only for diagnostics")
    g_max = _finite("g_max", g_max, "mag")
    if not 8.0 <= g_max <= 21.0:
        raise FieldModelError(f"g_max = {g_max!r} mag must be in [8, 21] mag")
    radius_pc = _finite("radius_pc", radius_pc, "pc")
    n_sigma = _finite("n_sigma", n_sigma, "")
    if radius_pc <= 0 or n_sigma <= 0:
        raise FieldModelError(f"radius_pc = {radius_pc!r} pc and n_sigma = {n_sigma!r} must be > 0")
    if members is None:
        members = _load_members(name)
    if not isinstance(members, pd.DataFrame):
        raise MemberTableError(f"members must be a DataFrame (a member table) or a cluster name, not "
                               f"{type(members).__name__}")
    missing = [c for c in _MEMBER_REQUIRED if c not in members.columns]
    if missing:
        raise MemberTableError(f"member table of {name} lacks required column(s) {missing} (units: deg, mas, mas/yr, "
                               f"mag; Gaia archive names); it has {list(members.columns)[:20]}")
    dropped: dict = {}
    mem = members.reset_index(drop=True).copy()
    bad = ~np.isfinite(mem[list(_MEMBER_REQUIRED)].to_numpy(float)).all(axis=1)
    if bad.any():
        dropped["nan_astrometry_or_photometry"] = int(bad.sum())
        mem = mem.loc[~bad].reset_index(drop=True)
    if len(mem) < 2:
        raise MemberTableError(f"{name}: {len(mem)} member(s) with finite astrometry and photometry (of "
                               f"{len(members)}); at least 2 are needed for the pm/parallax dispersions")
    flags: list[str] = []
    if bad.any():
        flags.append(f"{int(bad.sum())} member(s) with NaN astrometry/photometry dropped")
    if rel == "DR2":  # before the means/dispersions/cuts: a DR2 cone search sees DR2 astrometry
        mem = degrade_members(mem, seed=seed)
        flags.append("members degraded to DR2 precision: SIMULATED noise added to real (E)DR3 astrometry")
    cat = _catalogue(name)
    if not np.isfinite(cat["dist_pc"]):
        cat["dist_pc"] = 1000.0 / float(np.median(mem["parallax"]))
        flags.append(f"no catalogue distance: D = 1000/median parallax = {cat['dist_pc']:.0f} pc")
    if not (np.isfinite(cat["ra"]) and np.isfinite(cat["dec"])):
        cat["ra"], cat["dec"] = _mean_position(mem["ra"].to_numpy(float), mem["dec"].to_numpy(float))
        flags.append("no CG2020 centre: members' mean position used")
    a_v = cat["a_v"] if np.isfinite(cat["a_v"]) else None
    radius_deg = math.degrees(radius_pc / cat["dist_pc"])
    if radius_deg > 10.0:
        flags.append(f"cone radius {radius_deg:.1f} deg (= {radius_pc:g} pc at {cat['dist_pc']:.0f} pc) "
                     "capped at 10 deg")
        radius_deg = 10.0
    # the members' means and population dispersions (ddof = 0), spec A4
    plx_c, pmra_c, pmdec_c = (float(mem[c].mean()) for c in ("parallax", "pmra", "pmdec"))
    from .cones import a2_dispersions

    s_pm, s_plx = a2_dispersions(mem)  # mem has finite astrometry (checked above)
    pm_box = (pmra_c, pmdec_c, n_sigma * s_pm) if cone_cuts else None
    plx_range = (plx_c - n_sigma * s_plx, plx_c + n_sigma * s_plx) if cone_cuts else None
    if plx_range is not None and plx_range[0] <= 0.2:
        flags.append(f"parallax window {plx_range[0]:.2f}–{plx_range[1]:.2f} mas reaches the distant field: the cone "
                     "holds every background star (vG23 trained only clusters with parallax < 4 mas)")
    elif plx_c > 4.0:
        flags.append(f"parallax {plx_c:.2f} mas > 4 mas: outside vG23's training pool (nearby, very extended)")
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    centre = SkyCoord(ra=cat["ra"] * u.deg, dec=cat["dec"] * u.deg)
    l_c, b_c = float(centre.galactic.l.deg), float(centre.galactic.b.deg)
    # members: the same cone, magnitude limit and cuts
    sep = centre.separation(SkyCoord(ra=mem["ra"].to_numpy(float) * u.deg, dec=mem["dec"].to_numpy(float) * u.deg)).deg
    keep = np.ones(len(mem), dtype=bool)
    for reason, ok in (("fainter_than_g_max", mem["phot_g_mean_mag"].to_numpy(float) <= g_max),
                       ("outside_radius", sep <= radius_deg),
                       ("outside_pm_parallax_cuts", _cut_mask(mem, pm_box, plx_range))):
        n_out = int((keep & ~ok).sum())
        if n_out:
            dropped[reason] = n_out
        keep &= ok
    mem = mem.loc[keep].reset_index(drop=True)
    if len(mem) == 0:
        raise MemberTableError(f"{name}: no member left inside the cone (r = {radius_deg:.3f} deg around "
                               f"({cat['ra']:.3f}, {cat['dec']:.3f}), G ≤ {g_max}, cuts {pm_box}, {plx_range}); "
                               f"dropped: {dropped}")
    # dust normalised to the cluster's own A_V at its distance (A_V = 0 gives a dust-free line of sight)
    extinction = (cat["dist_pc"], max(a_v, 0.0)) if a_v is not None else None
    if a_v is None:
        flags.append("no catalogue A_V: default dust layer (0.7 mag/kpc in the plane)")
    if field is None:
        field = simulate_field(l_c, b_c, radius_deg, g_max=g_max, seed=seed, pm_box=pm_box,
                               parallax_range=plx_range, extinction=extinction, release=rel, model=model,
                               truth_columns=False, cache=cache)
        flags += list(field.attrs.get("flags", []))
    else:
        if not isinstance(field, pd.DataFrame):
            raise FieldModelError(f"field must be a DataFrame (a cone), not {type(field).__name__}")
        fsep = centre.separation(SkyCoord(ra=field["ra"].to_numpy(float) * u.deg,
                                          dec=field["dec"].to_numpy(float) * u.deg)).deg
        fok = (fsep <= radius_deg) & _cut_mask(field, pm_box, plx_range) & (field["phot_g_mean_mag"] <= g_max)
        field = field.loc[np.asarray(fok)].reset_index(drop=True)
        flags.append("field given by the caller (not simulated here)")
    mem_cone = _member_cone(mem, field)
    fld = field.copy()
    # photometric errors on the same footing: catalogue (VizieR) member errors contain the Riello+2021
    # calibration floor, the simulated archive-style errors do not; add it to the field then
    from ..photometry import GAIA_ZERO_POINT_SIGMA

    if float(np.nanmin(mem_cone["phot_g_mean_mag_error"])) >= 0.9 * GAIA_ZERO_POINT_SIGMA["G"]:
        for band, col in (("G", "phot_g_mean_mag_error"), ("BP", "phot_bp_mean_mag_error"),
                          ("RP", "phot_rp_mean_mag_error")):
            fld[col] = np.hypot(fld[col].to_numpy(float), GAIA_ZERO_POINT_SIGMA[band])
        flags.append("members' magnitude errors include the calibration floor: added to the field's")
    cols = list(CONE_COLUMNS)
    if rel == "DR2":  # the real DR2 cone has no correlation columns: train on the same diagonal covariance
        cols = [c for c in cols if c not in _CORR_COLUMNS]
        flags.append("DR2 cone: no pm/parallax correlation columns (as the real DR2 cone)")
    for c in cols:
        if c not in fld.columns:
            fld[c] = np.nan
    cone = pd.concat([mem_cone[cols], fld[cols]], ignore_index=True)
    truth = np.concatenate([np.ones(len(mem_cone), bool), np.zeros(len(fld), bool)])
    perm = np.random.default_rng(seed + 7_919).permutation(len(cone))  # shuffle: row order must not leak truth
    cone = cone.iloc[perm].reset_index(drop=True)
    truth = truth[perm]
    cone.attrs.update(
        simulated=True, release=rel, cluster=name, seed=seed, ra=cat["ra"], dec=cat["dec"], l=l_c, b=b_c,
        radius_deg=radius_deg, area_deg2=_cap_area_deg2(radius_deg), dist_pc=cat["dist_pc"],
        a_v=a_v, g_max=g_max, pm_box=pm_box, parallax_range=plx_range, n_members=int(truth.sum()),
        n_field=int((~truth).sum()), members_dropped=dropped, flags=flags,
        members_source=str(members.attrs.get("source", "")),
        notes=(f"SIMULATED field + real {name} members ({members.attrs.get('citation', 'member table')}); "
               "truth = published member. ocnb.membership.field.embed_cluster"),
    )
    return cone, truth


def _mean_position(ra, dec):
    """Mean (ra, dec) [deg] with RA wrapped at 0/360 (spec A3.4)."""
    ra = np.asarray(ra, float)
    if ra.max() - ra.min() > 180:
        ra = np.where(ra > 180, ra - 360, ra)
    return float(np.mean(ra) % 360), float(np.mean(dec))


def _member_cone(mem: pd.DataFrame, field: pd.DataFrame) -> pd.DataFrame:
    """Members in the cone columns: l, b, colours, ν_eff, ecliptic latitude and solution type filled in."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    out = mem.copy()
    c = SkyCoord(ra=out["ra"].to_numpy(float) * u.deg, dec=out["dec"].to_numpy(float) * u.deg)
    if "l" not in out or out["l"].isna().any():
        out["l"], out["b"] = c.galactic.l.deg, c.galactic.b.deg
    out["bp_rp"] = out["phot_bp_mean_mag"] - out["phot_rp_mean_mag"]
    out["g_rp"] = out["phot_g_mean_mag"] - out["phot_rp_mean_mag"]
    if "ecl_lat" not in out or out["ecl_lat"].isna().any():
        out["ecl_lat"] = c.barycentrictrueecliptic.lat.deg
    if "astrometric_params_solved" not in out or out["astrometric_params_solved"].isna().any():
        out["astrometric_params_solved"] = 31
    if "nu_eff_used_in_astrometry" not in out:
        out["nu_eff_used_in_astrometry"] = np.nan
    if "pseudocolour" not in out:
        out["pseudocolour"] = np.nan
    five = (out["astrometric_params_solved"].to_numpy() == 31) & out["nu_eff_used_in_astrometry"].isna().to_numpy()
    # the member tables lack ν_eff: the same colour relation as the simulated field (consistent zero points)
    out.loc[five, "nu_eff_used_in_astrometry"] = _nu_eff(out.loc[five, "bp_rp"].to_numpy(float))
    six = (out["astrometric_params_solved"].to_numpy() == 95) & out["pseudocolour"].isna().to_numpy()
    out.loc[six, "pseudocolour"] = _nu_eff(out.loc[six, "bp_rp"].to_numpy(float))
    for col in ("parallax_pmra_corr", "parallax_pmdec_corr", "pmra_pmdec_corr", "ruwe"):
        if col not in out:
            out[col] = np.nan
    for band in ("g", "bp", "rp"):
        col = f"phot_{band}_mean_mag_error"
        if col not in out:
            out[col] = np.nan
    return out


# ---------------------------------------------------------------------------
# Simulated vs real
# ---------------------------------------------------------------------------
def _column(df: pd.DataFrame, col: str) -> np.ndarray:
    if col == "bp_rp" and "bp_rp" not in df.columns:
        v = df["phot_bp_mean_mag"].to_numpy(float) - df["phot_rp_mean_mag"].to_numpy(float)
    elif col == "g_rp" and "g_rp" not in df.columns:
        v = df["phot_g_mean_mag"].to_numpy(float) - df["phot_rp_mean_mag"].to_numpy(float)
    else:
        if col not in df.columns:
            raise FieldModelError(f"column {col!r} is missing (have {list(df.columns)[:15]}...)")
        v = df[col].to_numpy(float)
    return v[np.isfinite(v)]


def _area(df: pd.DataFrame, area) -> float | None:
    if area is not None:
        return _finite("area_deg2", area, "deg^2")
    if "area_deg2" in df.attrs:
        return float(df.attrs["area_deg2"])
    if "radius_deg" in df.attrs:
        return _cap_area_deg2(float(df.attrs["radius_deg"]))
    return None


def compare_fields(sim: pd.DataFrame, real: pd.DataFrame,
                   columns=("phot_g_mean_mag", "bp_rp", "pmra", "pmdec", "parallax"), *, sim_area_deg2=None,
                   real_area_deg2=None, g_bins=None) -> pd.DataFrame:
    """Two-sample statistics of a simulated field against a real one (same cone and cuts assumed).

    Parameters
    ----------
    sim, real : DataFrame
        Cones in the cone-column convention (``bp_rp`` is derived when absent).
    columns : sequence of str
        Columns to compare.
    sim_area_deg2, real_area_deg2 : float, optional
        Cone areas [deg²] for surface densities; default from ``attrs["area_deg2"]`` or
        ``attrs["radius_deg"]``, else counts are compared as totals (area 1).
    g_bins : array_like, optional
        G bin edges [mag] of the count table (default 1-mag bins over the common range).

    Returns
    -------
    DataFrame
        One row per column: ``n_sim``, ``n_real``, ``median_sim``, ``median_real``, ``iqr_sim``,
        ``iqr_real``, ``ks`` (two-sample Kolmogorov–Smirnov D), ``ks_p``, ``ad`` (Anderson–Darling
        k-sample statistic, scipy ``anderson_ksamp``), ``ad_p`` (capped by scipy to [0.001, 0.25]);
        a last row ``"counts"`` with the surface densities [deg⁻²] in ``n_sim``/``n_real`` and
        their ratio in ``ratio`` with its Poisson error ``ratio_err``.
        ``attrs["counts"]``: per G bin ``g_lo``, ``g_hi``, ``density_sim``, ``density_real``
        [deg⁻²], Poisson errors ``err_sim``, ``err_real``, ``ratio``, ``ratio_err``.
    """
    from scipy import stats

    rows = []
    for col in columns:
        a, b = _column(sim, col), _column(real, col)
        row = {"column": col, "n_sim": a.size, "n_real": b.size}
        if a.size and b.size:
            row.update(median_sim=float(np.median(a)), median_real=float(np.median(b)),
                       iqr_sim=float(np.subtract(*np.percentile(a, [75, 25]))),
                       iqr_real=float(np.subtract(*np.percentile(b, [75, 25]))))
            ks = stats.ks_2samp(a, b)
            row.update(ks=float(ks.statistic), ks_p=float(ks.pvalue))
            with warnings.catch_warnings():  # scipy warns when it caps the p-value to [0.001, 0.25]
                warnings.simplefilter("ignore", UserWarning)
                ad = stats.anderson_ksamp([a, b])
            row.update(ad=float(ad.statistic), ad_p=float(ad.pvalue))
        rows.append(row)
    a_sim, a_real = _area(sim, sim_area_deg2) or 1.0, _area(real, real_area_deg2) or 1.0
    n_s, n_r = len(sim), len(real)
    ratio = (n_s / a_sim) / (n_r / a_real) if n_r else np.nan
    ratio_err = ratio * math.sqrt(1 / max(n_s, 1) + 1 / max(n_r, 1)) if n_r else np.nan
    rows.append({"column": "counts", "n_sim": n_s / a_sim, "n_real": n_r / a_real, "ratio": ratio,
                 "ratio_err": ratio_err})
    out = pd.DataFrame(rows).set_index("column")
    gs, gr = _column(sim, "phot_g_mean_mag"), _column(real, "phot_g_mean_mag")
    if g_bins is None:
        lo = math.floor(min(gs.min(initial=99), gr.min(initial=99)))
        hi = math.ceil(max(gs.max(initial=0), gr.max(initial=0)))
        g_bins = np.arange(lo, max(hi, lo + 1) + 1, 1.0)
    g_bins = np.asarray(g_bins, float)
    cs, _ = np.histogram(gs, g_bins)
    cr, _ = np.histogram(gr, g_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        counts = pd.DataFrame({
            "g_lo": g_bins[:-1], "g_hi": g_bins[1:], "density_sim": cs / a_sim, "density_real": cr / a_real,
            "err_sim": np.sqrt(cs) / a_sim, "err_real": np.sqrt(cr) / a_real,
            "ratio": np.where(cr > 0, (cs / a_sim) / np.where(cr > 0, cr / a_real, 1), np.nan),
        })
        counts["ratio_err"] = counts["ratio"] * np.sqrt(1 / np.maximum(cs, 1) + 1 / np.maximum(cr, 1))
    out.attrs["counts"] = counts
    out.attrs["areas_deg2"] = (a_sim, a_real)
    return out


def plot_field_comparison(sim: pd.DataFrame, real: pd.DataFrame, *, sim_area_deg2=None, real_area_deg2=None,
                          title: str | None = None):
    """Figure: G counts per deg², CMD, proper-motion plane, parallax — SIMULATED vs real.

    Returns the matplotlib Figure (4 panels).
    """
    import matplotlib.pyplot as plt

    a_sim, a_real = _area(sim, sim_area_deg2) or 1.0, _area(real, real_area_deg2) or 1.0
    fig, ax = plt.subplots(1, 4, figsize=(16, 4))
    gs, gr = _column(sim, "phot_g_mean_mag"), _column(real, "phot_g_mean_mag")
    bins = np.arange(math.floor(min(gs.min(initial=99), gr.min(initial=99))),
                     math.ceil(max(gs.max(initial=0), gr.max(initial=0))) + 0.5, 0.5)
    for g, a, lab, col in ((gr, a_real, "real", "k"), (gs, a_sim, "SIMULATED", "C3")):
        h, _ = np.histogram(g, bins)
        ax[0].errorbar(0.5 * (bins[1:] + bins[:-1]), h / a, yerr=np.sqrt(h) / a, drawstyle="steps-mid",
                       color=col, label=lab)
    ax[0].set(yscale="log", xlabel="G [mag]", ylabel="stars per deg² per 0.5 mag")
    ax[0].legend()
    for df, lab, col in ((real, "real", "k"), (sim, "SIMULATED", "C3")):
        g = df["phot_g_mean_mag"].to_numpy(float)
        c = df["phot_bp_mean_mag"].to_numpy(float) - df["phot_rp_mean_mag"].to_numpy(float)
        ax[1].scatter(c, g, s=2, alpha=0.4, color=col, label=lab, rasterized=True)
        ax[2].scatter(df["pmra"], df["pmdec"], s=2, alpha=0.4, color=col, label=lab, rasterized=True)
    ax[1].set(xlabel="BP − RP [mag]", ylabel="G [mag]", xlim=(-0.5, 4.0))
    ax[1].invert_yaxis()
    pr = np.concatenate([_column(real, "pmra"), _column(sim, "pmra")])
    pd_ = np.concatenate([_column(real, "pmdec"), _column(sim, "pmdec")])
    if pr.size:
        ax[2].set(xlim=np.percentile(pr, [1, 99]), ylim=np.percentile(pd_, [1, 99]))
    ax[2].set(xlabel="pmra [mas/yr]", ylabel="pmdec [mas/yr]")
    pb = np.linspace(-1, 6, 71)
    ax[3].hist(_column(real, "parallax"), pb, histtype="step", color="k", density=True, label="real")
    ax[3].hist(_column(sim, "parallax"), pb, histtype="step", color="C3", density=True, label="SIMULATED")
    ax[3].set(xlabel="parallax [mas]", ylabel="density")
    ax[3].legend()
    fig.suptitle(title or "SIMULATED field vs real field")
    fig.tight_layout()
    return fig
