"""Photometric bands, Teff-dependent extinction and photometric error models.

Bands are Gaia (E)DR3 G, BP, RP, 2MASS J, H, Ks and WISE W1-W4, all Vega
magnitudes. Three pieces live here:

* :func:`extinction_ratio` / :func:`extinguish`: extinction A_band/A_V as a
  function of the star's effective temperature and of the extinction itself,
  from the precomputed polynomial models of **dustapprox** (Fouesneau et al.
  2022, A&A 658, A144). Their coefficients are read once from the package and
  evaluated with NumPy (dustapprox's own ``predict`` goes through pandas and
  scikit-learn and is ~10-100x slower for large arrays).
* :class:`PhotometricErrorModel`: σ(mag) per band. Gaia G/BP/RP from the DPAC
  log-error-vs-magnitude spline (Riello et al. 2021, A&A 649, A3; the EDR3
  photometric-uncertainty tool) or an empirical fit; 2MASS and WISE from fits
  to the median errors of real cluster members.
* :func:`parallax_error`: σ_ϖ(G), fitted to real Gaia DR3/EDR3 stars.

All empirical coefficients are module constants; the ``fit_*`` functions
recompute them from the real member tables (``ocnb.datasets``) and the tests
check that they reproduce the constants.

Bad input (see ``tests/test_photometry.py``, bad-input table)
-------------------------------------------------------------
Unknown bands or laws, A_V < 0, NaN Teff/A_V/μ, ``n_obs`` ≤ 0 and magnitudes
beyond a model's validity range raise :class:`~ocnb.errors.PhotometryError` /
:class:`~ocnb.errors.PhotometryRangeError` naming the value. Two ranges are
*clipped* by design, as documented where they apply: Teff, A_V and R_V outside
the dustapprox models' validity (:func:`extinction_validity`; ``on_range="raise"``
turns the clip into an error) and magnitudes brighter than the error models'
bright end (saturation is not modelled). Magnitudes fainter than where the
error model reaches S/N = 1 (σ > 1.0857 mag) or G > 21.5 for σ_ϖ are errors unless
``extrapolate=True`` is passed (simulators that remove such stars afterwards).
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import PhotometryError, PhotometryRangeError

__all__ = [
    "BANDS",
    "EMPIRICAL_ERROR_COEFFS",
    "ERROR_COLUMNS",
    "EXTINCTION_LAWS",
    "GAIA_EMPIRICAL_COEFFS",
    "PARALLAX_ERROR_G_MAX",
    "SIGMA_MAX",
    "MEMBER_COLUMNS",
    "PARALLAX_ERROR_TABLE",
    "PhotometricErrorModel",
    "extinction_ratio",
    "extinction_ratios",
    "extinction_validity",
    "extinguish",
    "fit_error_coefficients",
    "fit_gaia_error_coefficients",
    "fit_parallax_error",
    "parallax_error",
]

#: Band names used throughout ocnb (order is the canonical column order).
BANDS = ("G", "BP", "RP", "J", "H", "Ks", "W1", "W2", "W3", "W4")
GAIA_BANDS = ("G", "BP", "RP")
TWOMASS_BANDS = ("J", "H", "Ks")
WISE_BANDS = ("W1", "W2", "W3", "W4")

#: Band -> magnitude column of a member table (Gaia archive / 2MASS PSC / AllWISE names).
MEMBER_COLUMNS = {
    "G": "phot_g_mean_mag",
    "BP": "phot_bp_mean_mag",
    "RP": "phot_rp_mean_mag",
    "J": "j_m",
    "H": "h_m",
    "Ks": "ks_m",
    "W1": "w1mpro",
    "W2": "w2mpro",
    "W3": "w3mpro",
    "W4": "w4mpro",
}
#: Band -> 1σ magnitude-error column of a member table.
ERROR_COLUMNS = {
    "G": "phot_g_mean_mag_error",
    "BP": "phot_bp_mean_mag_error",
    "RP": "phot_rp_mean_mag_error",
    "J": "j_msigcom",
    "H": "h_msigcom",
    "Ks": "ks_msigcom",
    "W1": "w1sigmpro",
    "W2": "w2sigmpro",
    "W3": "w3sigmpro",
    "W4": "w4sigmpro",
}
#: Gaia flux-over-error columns; σ_mag = 2.5/ln(10) / (flux/σ_flux) without the zero-point term.
FLUX_OVER_ERROR_COLUMNS = {
    "G": "phot_g_mean_flux_over_error",
    "BP": "phot_bp_mean_flux_over_error",
    "RP": "phot_rp_mean_flux_over_error",
}
_MAG_PER_FLUX = 2.5 / np.log(10.0)  # 1.0857: σ_mag for a unit relative flux error


def _check_band(band: str) -> str:
    if not isinstance(band, str) or band not in BANDS:
        close = difflib.get_close_matches(str(band), BANDS, n=1, cutoff=0.5) if isinstance(band, str) else []
        upper = [b for b in BANDS if isinstance(band, str) and b.lower() == band.lower()]
        hint = f" (did you mean {(upper or close)[0]!r}?)" if (upper or close) else ""
        raise PhotometryError(f"unknown band {band!r}{hint}; choose one of {BANDS}")
    return band


def _as_float_array(value, name: str, unit: str) -> np.ndarray:
    """``value`` as a float array; a clear error naming the parameter for strings, None, objects."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise PhotometryError(f"{name} must be a number or an array of numbers [{unit}], got {value!r}") from None


def _first_bad(arr: np.ndarray, bad: np.ndarray) -> str:
    """'value' (or 'value (and k more of n)') of the offending entries, for messages."""
    vals = np.atleast_1d(arr)[np.atleast_1d(bad)]
    text = f"{vals.flat[0]:g}"
    if vals.size > 1:
        text += f" (and {vals.size - 1} more of {np.size(arr)} values)"
    return text


# ---------------------------------------------------------------------------
# Extinction (dustapprox polynomial models)
# ---------------------------------------------------------------------------
#: Extinction laws with dustapprox models for all ten bands: Gordon+2023 and Fitzpatrick 1999.
EXTINCTION_LAWS = ("G23", "F99")
_DUSTAPPROX_DIR = {"G23": "G23", "F99": "f99"}
_SYSTEM_FILE = {"gaia": "gaia_dr3", "twomass": "twomass", "wise": "wise"}
_PASSBANDS = {
    "G": ("gaia", "GAIA_GAIA3.G"),
    "BP": ("gaia", "GAIA_GAIA3.Gbp"),
    "RP": ("gaia", "GAIA_GAIA3.Grp"),
    "J": ("twomass", "2MASS_2MASS.J"),
    "H": ("twomass", "2MASS_2MASS.H"),
    "Ks": ("twomass", "2MASS_2MASS.Ks"),
    "W1": ("wise", "WISE_WISE.W1"),
    "W2": ("wise", "WISE_WISE.W2"),
    "W3": ("wise", "WISE_WISE.W3"),
    "W4": ("wise", "WISE_WISE.W4"),
}


def _dustapprox_file(law: str, system: str):
    if law not in EXTINCTION_LAWS:
        raise PhotometryError(f"unknown extinction law {law!r}; choose one of {EXTINCTION_LAWS}")
    root = importlib.resources.files("dustapprox") / "data" / "precomputed" / "polynomial"
    name = f"oct2025_a0r0_{_SYSTEM_FILE[system]}_kurucz_{law}_teff_A0_R0.ecsv"
    return root / _DUSTAPPROX_DIR[law] / "kurucz" / name


@dataclass(frozen=True)
class _PolyModel:
    """k = A_band/A0 as a polynomial in (A0, R0, Teff/5040 K) (one band, one law)."""

    law: str
    passband: str
    powers: np.ndarray  # (n_terms, 3): exponents of A0, R0, teffnorm
    coefs: np.ndarray  # (n_terms,)
    teff_range: tuple
    a0_range: tuple
    r0_range: tuple
    filename: str

    def __call__(self, teff, a0, r0):
        x = np.clip(np.asarray(teff, dtype=float), *self.teff_range) / 5040.0
        a0 = np.clip(np.asarray(a0, dtype=float), *self.a0_range)
        r0 = np.clip(np.asarray(r0, dtype=float), *self.r0_range)
        # Collapse the (A0, R0) part into the coefficients of a polynomial in
        # teffnorm, then Horner: for scalar A0/R0 (one cluster) this costs
        # only a few array operations per star.
        out = None
        for k in range(int(self.powers[:, 2].max()), -1, -1):
            sel = self.powers[:, 2] == k
            ck = 0.0
            for (pa, pr, _), c in zip(self.powers[sel], self.coefs[sel], strict=True):
                ck = ck + c * (a0**pa if pa else 1.0) * (r0**pr if pr else 1.0)
            out = ck if out is None else out * x + ck
        return np.broadcast_to(out, np.broadcast_shapes(x.shape, a0.shape, r0.shape)).astype(float)


def _poly_model(band: str, law: str) -> _PolyModel:
    _check_band(band)
    if law not in EXTINCTION_LAWS:
        raise PhotometryError(f"unknown extinction law {law!r}; choose one of {EXTINCTION_LAWS}")
    return _load_poly_model(band, law)


@functools.cache
def _load_poly_model(band: str, law: str) -> _PolyModel:
    from dustapprox.io import ecsv

    system, passband = _PASSBANDS[band]
    path = _dustapprox_file(law, system)
    table = ecsv.read(str(path))
    meta = table.attrs
    names = list(meta["model"]["feature_names"])  # e.g. ["A0", "R0", "teffnorm"]
    if sorted(names) != ["A0", "R0", "teffnorm"]:
        raise RuntimeError(f"unexpected dustapprox features {names} in {path}")
    stats = {"mae", "rmse", "mean_residuals", "std_residuals", "mean", "stddev"}
    terms = [c for c in table.columns if c != "passband" and c not in stats]
    row = table.set_index("passband").loc[passband]
    powers, coefs = [], []
    for term in terms:
        p = [0, 0, 0]
        if term != "1":
            for factor in term.split():
                var, _, exp = factor.partition("^")
                p[names.index(var)] += int(exp or 1)
        # reorder to (A0, R0, teffnorm)
        powers.append([p[names.index("A0")], p[names.index("R0")], p[names.index("teffnorm")]])
        coefs.append(float(row[term]))
    ext = meta["extinction"]
    atm = meta["atmosphere"]
    return _PolyModel(
        law=law,
        passband=passband,
        powers=np.array(powers, dtype=int),
        coefs=np.array(coefs),
        teff_range=(float(atm["teff"][0]), float(atm["teff"][1])),
        a0_range=(float(ext["A0"][0]), float(ext["A0"][1])),
        r0_range=(float(ext["R0"][0]), float(ext["R0"][1])),
        filename=str(path),
    )


def extinction_validity(law: str = "G23") -> dict:
    """Validity ranges of the dustapprox models: ``{"teff": (K, K), "a_v": (mag, mag), "r_v": (lo, hi)}``.

    Inputs outside are clipped to these ranges before the polynomial is
    evaluated (Teff 3500-50000 K, A0 0.01-20 mag, R0 2.3-5.1 for the
    Kurucz-based G23/F99 models), so cool M dwarfs get the 3500 K value.
    """
    m = _poly_model("G", law)
    return {"teff": m.teff_range, "a_v": m.a0_range, "r_v": m.r0_range}


def _check_extinction_inputs(model: _PolyModel, teff, a_v, r_v, on_range: str):
    """Validated float arrays (teff, a_v, r_v); errors name the parameter, the value and the range."""
    if on_range not in ("clip", "raise"):
        raise PhotometryError(f"on_range must be 'clip' or 'raise', not {on_range!r}")
    teff = _as_float_array(teff, "teff", "K")
    a_v = _as_float_array(a_v, "a_v", "mag")
    r_v = _as_float_array(r_v, "r_v", "")
    for name, arr, unit in (("teff", teff, " K"), ("a_v", a_v, " mag"), ("r_v", r_v, "")):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise PhotometryRangeError(
                f"{name} = {_first_bad(arr, bad)}{unit} is not a finite number; the extinction of a star "
                f"needs a real {name} (drop or fill such stars first)")
    if (a_v < 0).any():
        raise PhotometryRangeError(
            f"a_v = {_first_bad(a_v, a_v < 0)} mag < 0: extinction cannot be negative (a negative A_V would "
            "silently brighten the stars); use a_v = 0 for no extinction")
    if (r_v <= 0).any():
        raise PhotometryRangeError(f"r_v = {_first_bad(r_v, r_v <= 0)} must be > 0 (R_V ≈ 3.1 in the diffuse ISM)")
    if on_range == "raise":
        # A_V below the model's 0.01 is exact (A_band = ratio · A_V → 0), not an extrapolation.
        ranges = (("teff", teff, model.teff_range, " K"), ("a_v", a_v, (0.0, model.a0_range[1]), " mag"),
                  ("r_v", r_v, model.r0_range, ""))
        for name, arr, (lo, hi), unit in ranges:
            bad = (arr < lo) | (arr > hi)
            if bad.any():
                raise PhotometryRangeError(
                    f"{name} = {_first_bad(arr, bad)}{unit} is outside the dustapprox {model.law} model's validity "
                    f"range {lo:g}–{hi:g}{unit} ({model.passband}); with on_range='clip' (the default) it "
                    "is evaluated at the nearest end of the range")
    return teff, a_v, r_v


def extinction_ratio(band: str, teff, a_v, law: str = "G23", r_v: float = 3.1,
                     on_range: str = "clip") -> np.ndarray:
    """Teff-dependent extinction coefficient A_band / A_V.

    Parameters
    ----------
    band : str
        One of :data:`BANDS`.
    teff : array_like
        Effective temperature (K).
    a_v : float or array_like
        Extinction A_V (mag). dustapprox is parametrised by A0, the
        monochromatic extinction at 550 nm; we identify A0 with A_V (they
        differ by a few per cent, much less than typical A_V uncertainties).
    law : {"G23", "F99"}
        Gordon et al. (2023) or Fitzpatrick (1999) extinction curve
        (dustapprox models on Kurucz atmospheres).
    r_v : float or array_like
        R_V (dustapprox's R0); 3.1 by default.
    on_range : {"clip", "raise"}
        What to do with Teff, A_V or R_V outside the model's validity range
        (:func:`extinction_validity`): ``"clip"`` (default, documented
        behaviour: evaluate at the nearest end, e.g. cool M dwarfs get the
        3500 K value) or ``"raise"`` a :class:`~ocnb.errors.PhotometryRangeError`.

    Returns
    -------
    numpy.ndarray
        A_band/A_V, broadcast over the inputs. Teff, A_V and R_V are clipped
        to the model validity range (:func:`extinction_validity`); in
        particular A_V < 0.01 is evaluated at 0.01, which leaves A_band =
        ratio * A_V exact (zero) at A_V = 0.

    Raises
    ------
    PhotometryError
        Unknown band or law.
    PhotometryRangeError
        A_V < 0 (it would brighten the stars), NaN/inf Teff, A_V or R_V,
        R_V ≤ 0; with ``on_range="raise"`` also values outside the range.

    References
    ----------
    Fouesneau M. et al. 2022, A&A 658, A144 (dustapprox).
    """
    model = _poly_model(band, law)
    teff, a_v, r_v = _check_extinction_inputs(model, teff, a_v, r_v, on_range)
    return model(teff, a_v, r_v)


def extinction_ratios(teff, a_v, bands: Iterable[str] = BANDS, law: str = "G23", r_v: float = 3.1,
                      on_range: str = "clip") -> dict:
    """:func:`extinction_ratio` for several bands: ``{band: A_band/A_V}``."""
    return {b: extinction_ratio(b, teff, a_v, law=law, r_v=r_v, on_range=on_range) for b in bands}


def extinguish(abs_mags, teff, a_v, dist_mod, law: str = "G23", r_v: float = 3.1, on_range: str = "clip"):
    """Apparent magnitudes m = M + μ + A_V · k_band(Teff, A_V).

    Parameters
    ----------
    abs_mags : dict or pandas.DataFrame
        Absolute magnitudes keyed by band name (:data:`BANDS`); other keys or
        columns are passed through unchanged.
    teff : array_like
        Effective temperature (K) of each star (or isochrone point).
    a_v : float or array_like
        A_V (mag), scalar for a cluster or one value per star.
    dist_mod : float or array_like
        True distance modulus μ = 5 log10(d/pc) − 5 (mag).
    law, r_v, on_range
        See :func:`extinction_ratio`.

    Returns
    -------
    dict or pandas.DataFrame
        Same type as ``abs_mags`` with the band entries replaced by apparent
        magnitudes.

    Raises
    ------
    PhotometryError
        ``abs_mags`` holds none of :data:`BANDS` (e.g. lower-case ``"g"``):
        nothing would be extinguished.
    PhotometryRangeError
        A_V < 0, non-finite A_V, Teff or μ (see :func:`extinction_ratio`).
    """
    a_v_arr = _as_float_array(a_v, "a_v", "mag")
    dmod = _as_float_array(dist_mod, "dist_mod", "mag")
    if not np.isfinite(dmod).all():
        raise PhotometryRangeError(f"dist_mod = {_first_bad(dmod, ~np.isfinite(dmod))} mag is not a finite number")
    if (a_v_arr < 0).any():
        raise PhotometryRangeError(
            f"a_v = {_first_bad(a_v_arr, a_v_arr < 0)} mag < 0: extinction cannot be negative (a negative A_V "
            "would silently brighten the stars); use a_v = 0 for no extinction")
    present = [b for b in BANDS if b in abs_mags]
    if not present:
        keys = list(abs_mags.columns if hasattr(abs_mags, "columns") else abs_mags)
        raise PhotometryError(f"abs_mags has none of the bands {BANDS} (keys: {keys[:10]}); nothing to extinguish")
    is_frame = hasattr(abs_mags, "columns")
    out = abs_mags.copy() if is_frame else dict(abs_mags)
    for band in present:
        mag = np.asarray(abs_mags[band], dtype=float)
        out[band] = mag + dist_mod + a_v_arr * extinction_ratio(band, teff, a_v_arr, law=law, r_v=r_v,
                                                                on_range=on_range)
    return out


# ---------------------------------------------------------------------------
# Photometric error models
# ---------------------------------------------------------------------------
# Empirical model shared by 2MASS, WISE, the empirical Gaia option and the
# parallax error:
#     σ(m)^2 = a^2 + b^2 · 10^(0.4 (m - m_ref)) + c^2 · 10^(0.8 (m - m_ref))
# i.e. a floor (calibration), a source-photon term (σ ∝ flux^-1/2) and a
# background/read-noise term (σ ∝ flux^-1). With a, b, c ≥ 0 (non-negative
# least squares on binned medians) σ rises monotonically with magnitude.

#: Reference magnitude of the empirical fits, per band.
ERROR_MAG_REF = {"G": 15.0, "BP": 15.0, "RP": 15.0, "J": 14.0, "H": 14.0, "Ks": 14.0,
                 "W1": 13.0, "W2": 13.0, "W3": 10.0, "W4": 8.0}

#: Fitted (a, b, c) in mag for 2MASS and WISE (real multi-band cluster members,
#: ``load_members(<cluster>, source="iso")`` for the six "iso" clusters), see
#: :func:`fit_error_coefficients`; valid over the fitted magnitude ranges in
#: :data:`EMPIRICAL_ERROR_RANGES`.
EMPIRICAL_ERROR_COEFFS = {
    "J": (0.0218383, 0.0120226, 0.0108986),
    "H": (0.0230062, 0.0153278, 0.026318),
    "Ks": (0.0192111, 0.021923, 0.0400491),
    "W1": (0.0227905, 0.0082549, 0.00276347),
    "W2": (0.0196859, 0.0176881, 0.0103574),
    "W3": (0.0131292, 0.0380429, 0.0513622),
    "W4": (0.0, 0.166412, 0.180876),
}
EMPIRICAL_ERROR_RANGES = {
    "J": (5.8, 17.1),
    "H": (5.2, 16.1),
    "Ks": (4.9, 15.7),
    "W1": (8.2, 16.1),
    "W2": (8.3, 16.2),
    "W3": (8.3, 12.5),
    "W4": (7.8, 9.1),
}

#: Empirical Gaia (a, b, c) fitted on M67's DR3 members (``source="dr3_cone"``), σ without
#: the zero-point term; an alternative to the DPAC spline. Not the Pleiades: Gaia's
#: mean-flux errors include intrinsic variability, and the young, spotted Pleiades stars
#: have 2-7x larger errors than quiet stars of the same magnitude.
GAIA_EMPIRICAL_COEFFS = {
    "G": (0.00016826, 0.000211499, 4.51831e-05),
    "BP": (0.00030865, 0.0011021, 0.0005681),
    "RP": (0.000265452, 0.00114818, 0.00114543),
}

#: σ_ϖ (mas) vs G: (median G, median σ_ϖ) in 0.5-mag bins of real Gaia stars — the M67
#: and Pleiades DR3 members (``source="dr3_cone"``), the EDR3 members of 20 clusters
#: (``source="almeida"``) and 1000 random all-sky DR3 sources (``load_field("random_dr3")``);
#: see :func:`fit_parallax_error`.
PARALLAX_ERROR_TABLE = {"DR3": (
    (  # G (mag)
        4.7569, 5.325, 5.752, 6.2988, 6.8159, 7.2669, 7.7468, 8.2543, 8.7696, 9.2343, 9.7662,
        10.275, 10.7721, 11.2817, 11.7741, 12.2547, 12.7145, 13.2625, 13.7547, 14.28, 14.7861,
        15.2492, 15.7347, 16.2668, 16.7431, 17.2523, 17.7375, 18.237, 18.748, 19.2551, 19.7514,
        20.2778, 20.6778,
    ),
    (  # sigma_parallax (mas)
        0.1121, 0.0903, 0.0671, 0.0413, 0.0357, 0.0309, 0.0316, 0.02815, 0.0209, 0.0189,
        0.01865, 0.01966, 0.0178, 0.0211, 0.0177, 0.0147, 0.01578, 0.01579, 0.0186, 0.02151,
        0.026, 0.0321, 0.039, 0.0504, 0.0643, 0.08493, 0.1102, 0.1445, 0.1949, 0.31275, 0.43859,
        0.66999, 1.14343,
    ),
)}

#: Riello et al. (2021) zero-point uncertainties (mag), added in quadrature
#: when ``zero_point=True`` (Gaia archive magnitudes errors omit them).
GAIA_ZERO_POINT_SIGMA = {"G": 0.0027553202, "BP": 0.0027901700, "RP": 0.0037793818}

#: Largest meaningful magnitude error (mag): σ = 2.5/ln 10 · σ_F/F reaches it at S/N = 1. Fainter,
#: a source is not detected and the extrapolated σ grows without bound (466 mag at BP = 30), so
#: :meth:`PhotometricErrorModel.sigma` refuses magnitudes whose σ exceeds it unless
#: ``extrapolate=True``.
SIGMA_MAX = _MAG_PER_FLUX
#: Faint limit (mag) of :func:`parallax_error`: Gaia DR3 parallaxes stop near G = 21 (a few sources
#: reach 21.5; the table's last bin is at G = 20.7, where σ_ϖ ≈ 1.1 mas, and 3.4 mas at 21.5).
PARALLAX_ERROR_G_MAX = 21.5

#: Number of observations the DPAC spline refers to (Riello+2021 tool).
GAIA_SPLINE_REF_NOBS = {"G": 200, "BP": 20, "RP": 20}
#: Default n_obs: medians of phot_*_n_obs in a random all-sky DR3 sample (1000 stars).
GAIA_DEFAULT_NOBS = {"G": 314, "BP": 27, "RP": 28}


def _three_term_sigma(mag, coeffs, m_ref):
    a, b, c = coeffs
    u = np.power(10.0, 0.4 * (np.asarray(mag, dtype=float) - m_ref))
    return np.sqrt(a * a + b * b * u + c * c * u * u)


@functools.lru_cache(maxsize=1)
def _gaia_spline():
    """The DPAC log10(σ/mag) B-splines for G, BP, RP (Riello+2021 tool), from the shipped data."""
    from scipy.interpolate import BSpline

    from .datasets import load_error_spline

    # Checksum-verified read; raises DataIntegrityError naming the file if it is missing or altered.
    table = load_error_spline()
    splines = {}
    for band in GAIA_BANDS:
        knots = table[f"knots_{band}"].dropna().to_numpy(float)
        coeff = table[f"coeff_{band}"].dropna().to_numpy(float)
        spl = BSpline(knots, coeff, 3, extrapolate=False)
        # The tool pads the knot vector with repeated end knots (coefficient
        # 0); the spline is meaningful up to the last distinct interior knot.
        hi = knots[knots < knots[-1]].max()
        splines[band] = (spl, knots[0], hi)
    return splines


def _gaia_spline_sigma(band, mag, n_obs):
    spl, lo, hi = _gaia_spline()[band]
    mag = np.asarray(mag, dtype=float)
    m = np.clip(mag, lo, hi)
    log_sig = spl(m)
    # Fainter than the spline: background-limited, σ ∝ flux^-1 (0.4 dex/mag).
    log_sig = log_sig + 0.4 * np.clip(mag - hi, 0.0, None)
    scale = np.sqrt(GAIA_SPLINE_REF_NOBS[band] / np.asarray(n_obs, dtype=float))
    return np.where(np.isnan(mag), np.nan, np.power(10.0, log_sig) * scale)


class PhotometricErrorModel:
    """Magnitude uncertainties σ(band, mag) and noise for simulated photometry.

    Parameters
    ----------
    gaia : {"spline", "empirical"}
        Gaia G/BP/RP: the DPAC log-error-vs-magnitude spline (Riello et al.
        2021; ``ocnb.datasets.load_error_spline()``), scaled by
        sqrt(n_ref/n_obs), or the empirical three-term fit to M67's DR3
        members (:data:`GAIA_EMPIRICAL_COEFFS`). Each band is evaluated at its
        own magnitude.
    n_obs : dict, optional
        Number of Gaia observations per band for the spline (default
        :data:`GAIA_DEFAULT_NOBS`, typical of DR3).
    zero_point : bool
        Add the Riello+2021 calibration zero-point uncertainties in quadrature
        (as in VizieR's e_Gmag). Off by default: the archive's per-source
        errors and the random noise between stars do not contain it.
    floor : float
        Extra error floor (mag) added in quadrature to every band (0 ≤ floor < 1.0857).

    Raises
    ------
    PhotometryError
        ``gaia`` not one of the two models; ``n_obs`` with a non-Gaia band, or
        a value that is not a finite number ≥ 1 (σ ∝ 1/sqrt(n_obs): 0 would
        give an infinite σ); ``floor`` negative, NaN or ≥ 1.0857 mag.

    Notes
    -----
    Validity range: σ is defined where a star is detected, S/N ≥ 1, i.e.
    σ ≤ :data:`SIGMA_MAX` = 1.0857 mag (:meth:`faint_limit` gives the
    magnitude, e.g. BP ≈ 23.4 for the default model). :meth:`sigma` raises
    :class:`~ocnb.errors.PhotometryRangeError` for fainter magnitudes unless
    ``extrapolate=True`` (the σ ∝ flux⁻¹ law continued, for simulators whose
    magnitude cuts remove such stars). Brighter than the bright end of a
    model (G/BP/RP 4.0 for the spline) σ is the value at that end: saturation
    is not modelled (a documented clip, not an error). NaN magnitudes give NaN.

    2MASS (J, H, Ks) and WISE (W1-W4) use σ^2 = a^2 + b^2 u + c^2 u^2 with
    u = 10^(0.4 (m - m_ref)), fitted to binned median errors of real cluster
    members (:func:`fit_error_coefficients`). Saturation (errors that grow
    again for J < ~9, W1 < ~8) is not modelled.
    """

    def __init__(self, gaia: str = "spline", n_obs: Mapping[str, float] | None = None,
                 zero_point: bool = False, floor: float = 0.0):
        if gaia not in ("spline", "empirical"):
            raise PhotometryError(f"gaia must be 'spline' or 'empirical', not {gaia!r}")
        if n_obs is not None and not isinstance(n_obs, Mapping):
            raise PhotometryError(f"n_obs must be a dict {{band: number of observations}} for G, BP, RP, not {n_obs!r}")
        other = [b for b in (n_obs or {}) if b not in GAIA_BANDS]
        if other:
            raise PhotometryError(f"n_obs has band(s) {other}: the number of observations only scales the Gaia "
                                  f"spline, bands {GAIA_BANDS}")
        self.gaia = gaia
        self.n_obs = dict(GAIA_DEFAULT_NOBS, **(n_obs or {}))
        for band, n in self.n_obs.items():
            _check_n_obs(band, n)
        self.zero_point = bool(zero_point)
        try:
            self.floor = float(floor)
        except (TypeError, ValueError):
            raise PhotometryError(f"floor must be a number of mag, not {floor!r}") from None
        if not 0.0 <= self.floor < SIGMA_MAX:
            raise PhotometryError(f"floor = {floor!r} mag must be ≥ 0 and < {SIGMA_MAX:.4f} mag (S/N = 1)")

    def __repr__(self) -> str:
        return (f"PhotometricErrorModel(gaia={self.gaia!r}, n_obs={self.n_obs}, "
                f"zero_point={self.zero_point}, floor={self.floor})")

    def sigma(self, band: str, mag, extrapolate: bool = False) -> np.ndarray:
        """1σ uncertainty (mag) of magnitude ``mag`` in ``band``; NaN where mag is NaN.

        Parameters
        ----------
        band : str
            One of :data:`BANDS`.
        mag : float or array_like
            Magnitudes (mag).
        extrapolate : bool
            Return the extrapolated σ also beyond the validity range (σ >
            :data:`SIGMA_MAX`, i.e. S/N < 1) instead of raising. Meant for
            simulators that draw stars beyond a survey's limit and cut them
            afterwards; never for real photometry.

        Raises
        ------
        PhotometryError
            Unknown band, non-numeric magnitudes.
        PhotometryRangeError
            A magnitude fainter than :meth:`faint_limit` (unless
            ``extrapolate``); the message names band, magnitude and range.
        """
        sig = self._sigma(_check_band(band), _as_float_array(mag, "mag", "mag"))
        if not extrapolate:
            bad = sig > SIGMA_MAX  # NaN compares False: NaN magnitudes stay NaN
            if np.any(bad):
                mag = np.asarray(mag, dtype=float)
                raise PhotometryRangeError(
                    f"{band} = {_first_bad(mag, bad)} mag is outside the {self._model_name(band)} error model's "
                    f"validity range ({band} ≤ {self.faint_limit(band):.2f} mag, where σ reaches "
                    f"{SIGMA_MAX:.4f} mag, S/N = 1): σ would be {np.max(np.atleast_1d(sig)[np.atleast_1d(bad)]):.3g} "
                    "mag. Such a star is not detected; pass extrapolate=True to get the extrapolated σ anyway "
                    "(simulated stars that a magnitude cut removes)")
        return sig

    def _model_name(self, band: str) -> str:
        if band in GAIA_BANDS:
            return "DPAC-spline" if self.gaia == "spline" else "empirical Gaia"
        return "empirical 2MASS" if band in TWOMASS_BANDS else "empirical WISE"

    def faint_limit(self, band: str) -> float:
        """Magnitude (mag) where σ(band) reaches :data:`SIGMA_MAX` (S/N = 1): the faint end of the validity range."""
        _check_band(band)
        lo, hi = 0.0, 40.0
        for _ in range(60):  # bisection on the monotonic faint side of σ(m)
            mid = 0.5 * (lo + hi)
            if self._sigma(band, np.asarray(mid)) > SIGMA_MAX:
                hi = mid
            else:
                lo = mid
        return lo

    def _sigma(self, band: str, mag: np.ndarray) -> np.ndarray:
        if band in GAIA_BANDS:
            if self.gaia == "spline":
                sig = _gaia_spline_sigma(band, mag, _check_n_obs(band, self.n_obs[band]))
            else:
                sig = _three_term_sigma(mag, GAIA_EMPIRICAL_COEFFS[band], ERROR_MAG_REF[band])
            if self.zero_point:
                sig = np.hypot(sig, GAIA_ZERO_POINT_SIGMA[band])
        else:
            sig = _three_term_sigma(mag, EMPIRICAL_ERROR_COEFFS[band], ERROR_MAG_REF[band])
        if self.floor:
            sig = np.hypot(sig, self.floor)
        return sig

    def add_noise(self, mags, rng=None, return_sigma: bool = False, extrapolate: bool = False):
        """Add Gaussian noise N(0, σ(band, mag)) to every band present.

        Parameters
        ----------
        mags : dict or pandas.DataFrame
            Magnitudes keyed by band name; other keys/columns pass through.
        rng : numpy.random.Generator or int, optional
            Random generator (or seed) — pass one for reproducible results.
        return_sigma : bool
            Also return ``{band: σ}`` (σ evaluated at the noiseless magnitude).
        extrapolate : bool
            See :meth:`sigma`: allow magnitudes beyond the validity range.

        Returns
        -------
        dict or pandas.DataFrame (and dict of σ if ``return_sigma``)

        Raises
        ------
        PhotometryError
            ``mags`` holds none of :data:`BANDS`.
        PhotometryRangeError
            As :meth:`sigma`.
        """
        rng = np.random.default_rng(rng)
        if not any(b in mags for b in BANDS):
            keys = list(mags.columns if hasattr(mags, "columns") else mags)
            raise PhotometryError(f"mags has none of the bands {BANDS} (keys: {keys[:10]}); no noise to add")
        is_frame = hasattr(mags, "columns")
        out = mags.copy() if is_frame else dict(mags)
        sigmas = {}
        for band in BANDS:
            if band not in out:
                continue
            m = np.asarray(mags[band], dtype=float)
            sig = self.sigma(band, m, extrapolate=extrapolate)
            out[band] = m + sig * rng.standard_normal(m.shape)
            sigmas[band] = sig
        return (out, sigmas) if return_sigma else out


def _check_n_obs(band: str, n) -> float:
    try:
        value = float(n)
    except (TypeError, ValueError):
        raise PhotometryError(f"n_obs[{band!r}] = {n!r} is not a number of observations") from None
    if not (np.isfinite(value) and value >= 1):
        raise PhotometryError(
            f"n_obs[{band!r}] = {n!r}: the number of Gaia observations must be a finite number ≥ 1 "
            f"(σ scales as sqrt({GAIA_SPLINE_REF_NOBS[band]}/n_obs); 0 or less gives an infinite or NaN σ)")
    return value


def parallax_error(g_mag, release: str = "DR3", extrapolate: bool = False) -> np.ndarray:
    """Typical Gaia parallax uncertainty σ_ϖ (mas) at magnitude G.

    Median σ_ϖ of real Gaia (E)DR3 stars in 0.5-mag bins of G (:data:`PARALLAX_ERROR_TABLE`,
    refit with :func:`fit_parallax_error`), interpolated linearly in log σ;
    brighter than the first node the first value is kept, fainter than the
    last node log σ is extrapolated with the slope of the last two nodes.
    The bright end (G < 11) is *not* monotonic: σ_ϖ grows again for bright,
    gated/saturated stars. It is a sky median: the actual σ_ϖ varies by
    ~±30% with the scanning law.

    Parameters
    ----------
    g_mag : array_like
        Gaia G (mag).
    release : {"DR3", "EDR3"}
        DR3 astrometry is EDR3's, so both use the same table.
    extrapolate : bool
        Allow G > :data:`PARALLAX_ERROR_G_MAX` (21.5 mag, Gaia's faint limit),
        where the log-linear extrapolation explodes (7.6e22 mas at G = 60);
        only for simulated stars that a magnitude cut removes.

    Raises
    ------
    PhotometryRangeError
        G fainter than 21.5 mag (unless ``extrapolate``); NaN G gives NaN.
    PhotometryError
        Unknown release, non-numeric G.
    """
    rel = str(release).upper()
    if rel == "EDR3":
        rel = "DR3"
    if rel not in PARALLAX_ERROR_TABLE:
        raise PhotometryError(f"no parallax-error model for release {release!r}; choose DR3 or EDR3")
    nodes, sig = (np.asarray(v, dtype=float) for v in PARALLAX_ERROR_TABLE[rel])
    g = _as_float_array(g_mag, "g_mag", "mag")
    if not extrapolate:
        bad = g > PARALLAX_ERROR_G_MAX
        if np.any(bad):
            raise PhotometryRangeError(
                f"G = {_first_bad(g, bad)} mag is outside the parallax-error model's validity range "
                f"(G ≤ {PARALLAX_ERROR_G_MAX:g} mag, Gaia's faint limit; measured nodes G {nodes[0]:g}–{nodes[-1]:g}); "
                "pass extrapolate=True for the extrapolated σ_ϖ")
    logs = np.log10(sig)
    out = np.interp(g, nodes, logs)
    slope = (logs[-1] - logs[-2]) / (nodes[-1] - nodes[-2])
    out = np.where(g > nodes[-1], logs[-1] + slope * (g - nodes[-1]), out)
    return np.power(10.0, out)


# ---------------------------------------------------------------------------
# Fitting the empirical constants from real member tables
# ---------------------------------------------------------------------------
def _as_frame(members):
    import pandas as pd

    if isinstance(members, (list, tuple)):
        return pd.concat(list(members), ignore_index=True)
    return members


def binned_median_errors(mag, sigma, bin_width: float = 0.5, min_count: int = 10):
    """Median magnitude and median σ in magnitude bins (bins with ≥ ``min_count`` stars)."""
    mag = np.asarray(mag, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    ok = np.isfinite(mag) & np.isfinite(sigma) & (sigma > 0)
    mag, sigma = mag[ok], sigma[ok]
    if mag.size == 0:
        return np.array([]), np.array([]), np.array([], dtype=int)
    edges = np.arange(np.floor(mag.min() / bin_width) * bin_width, mag.max() + bin_width, bin_width)
    idx = np.digitize(mag, edges) - 1
    mm, ss, nn = [], [], []
    for i in range(len(edges) - 1):
        sel = idx == i
        if sel.sum() >= min_count:
            mm.append(np.median(mag[sel]))
            ss.append(np.median(sigma[sel]))
            nn.append(int(sel.sum()))
    return np.array(mm), np.array(ss), np.array(nn)


def _fit_three_term(mag_bins, sig_bins, m_ref):
    """Non-negative least squares of σ^2 on (1, u, u^2), relative residuals."""
    from scipy.optimize import nnls

    u = np.power(10.0, 0.4 * (mag_bins - m_ref))
    design = np.stack([np.ones_like(u), u, u * u], axis=1) / (sig_bins**2)[:, None]
    sol, _ = nnls(design, np.ones_like(u))
    return tuple(float(np.sqrt(s)) for s in sol)


def _quality_mask(frame, band):
    """Rows with usable photometry in ``band`` (2MASS: ph_qual A/B/C)."""
    col, err = MEMBER_COLUMNS[band], ERROR_COLUMNS[band]
    ok = np.isfinite(frame[col].to_numpy(float, na_value=np.nan)) & np.isfinite(
        frame[err].to_numpy(float, na_value=np.nan))
    if band in TWOMASS_BANDS and "ph_qual" in frame.columns:
        letter = frame["ph_qual"].astype("string").str[TWOMASS_BANDS.index(band)]
        ok &= letter.isin(["A", "B", "C"]).fillna(False).to_numpy(bool)
    return ok


def fit_error_coefficients(members, bands: Iterable[str] = TWOMASS_BANDS + WISE_BANDS,
                           bin_width: float = 0.5, min_count: int = 10) -> dict:
    """Refit :data:`EMPIRICAL_ERROR_COEFFS` from real member tables.

    Parameters
    ----------
    members : DataFrame or list of DataFrames
        Member tables with the :data:`MEMBER_COLUMNS` / :data:`ERROR_COLUMNS`
        names (e.g. ``load_members(c, source="iso")`` for the six "iso" clusters).
    bands : iterable of str
        2MASS/WISE bands to fit.

    Returns
    -------
    dict
        ``{band: (a, b, c)}`` (mag).
    """
    frame = _as_frame(members)
    out = {}
    for band in bands:
        ok = _quality_mask(frame, band)
        mag = frame[MEMBER_COLUMNS[band]].to_numpy(float, na_value=np.nan)[ok]
        sig = frame[ERROR_COLUMNS[band]].to_numpy(float, na_value=np.nan)[ok]
        mb, sb, _ = binned_median_errors(mag, sig, bin_width, min_count)
        out[band] = _fit_three_term(mb, sb, ERROR_MAG_REF[band])
    return out


def gaia_mag_errors(frame, band):
    """σ_mag of a Gaia band from flux/σ_flux if present, else the ``*_error`` column."""
    foe = FLUX_OVER_ERROR_COLUMNS[band]
    if foe in frame.columns:
        return _MAG_PER_FLUX / frame[foe].to_numpy(float, na_value=np.nan)
    return frame[ERROR_COLUMNS[band]].to_numpy(float, na_value=np.nan)


def fit_gaia_error_coefficients(members, bin_width: float = 0.5, min_count: int = 10) -> dict:
    """Refit :data:`GAIA_EMPIRICAL_COEFFS` (σ without zero-point term) from Gaia member tables."""
    frame = _as_frame(members)
    out = {}
    for band in GAIA_BANDS:
        mag = frame[MEMBER_COLUMNS[band]].to_numpy(float, na_value=np.nan)
        mb, sb, _ = binned_median_errors(mag, gaia_mag_errors(frame, band), bin_width, min_count)
        out[band] = _fit_three_term(mb, sb, ERROR_MAG_REF[band])
    return out


def fit_parallax_error(members, bin_width: float = 0.5, min_count: int = 10) -> tuple:
    """Refit :data:`PARALLAX_ERROR_TABLE`: (median G, median σ_ϖ) per 0.5-mag bin.

    ``members``: tables with ``phot_g_mean_mag`` and ``parallax_error`` (mas):
    the two ``source="dr3_cone"`` member lists, the 20 ``source="almeida"``
    ones and ``load_field("random_dr3")`` give :data:`PARALLAX_ERROR_TABLE`.
    """
    frame = _as_frame(members)
    mb, sb, _ = binned_median_errors(frame["phot_g_mean_mag"].to_numpy(float, na_value=np.nan),
                                     frame["parallax_error"].to_numpy(float, na_value=np.nan),
                                     bin_width, min_count)
    return tuple(np.round(mb, 4).tolist()), tuple(np.round(sb, 5).tolist())
