"""Loaders for the shipped spectra, spectral grids, masks, label tables and line list.

Loaders only (no analysis). Wavelengths are returned in Angstrom; the
``medium`` of each grid is stated (APOGEE and Gaia RVS: vacuum; the VALD line
list: air).
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _registry
from .names import canonical_names

__all__ = [
    "Spectra",
    "XPCoefficients",
    "load_rvs_spectra",
    "load_xp_coefficients",
    "load_xp_sample",
    "xp_config_file",
    "list_xp_files",
    "load_apogee_spectra",
    "apogee_wavelength",
    "load_apogee_masks",
    "load_apogee_element_windows",
    "load_cannon_model",
    "load_cannon_training_labels",
    "load_apogee_labels",
    "load_occam",
    "load_linelist",
]


@dataclass(frozen=True)
class Spectra:
    """A set of spectra on one wavelength grid.

    Attributes
    ----------
    wavelength : ndarray, shape (n_pix,)
        Wavelength [Angstrom] in ``medium``.
    flux : ndarray, shape (n_spec, n_pix)
        Flux (``flux_unit``); NaN marks missing pixels.
    flux_error : ndarray or None
        1-sigma errors, same shape as ``flux``.
    meta : DataFrame
        One row per spectrum.
    medium : {"vacuum", "air"}
    flux_unit : str
    citation : str
    """

    wavelength: np.ndarray
    flux: np.ndarray
    flux_error: np.ndarray | None
    meta: pd.DataFrame
    medium: str
    flux_unit: str = "normalised"
    citation: str = ""

    def __post_init__(self):
        if self.flux.ndim != 2 or self.flux.shape[1] != self.wavelength.shape[0]:
            raise ValueError(
                f"flux shape {self.flux.shape} does not match wavelength {self.wavelength.shape}"
            )
        if self.flux_error is not None and self.flux_error.shape != self.flux.shape:
            raise ValueError("flux_error must have the shape of flux")
        if len(self.meta) != self.flux.shape[0]:
            raise ValueError("meta must have one row per spectrum")
        if self.medium not in ("vacuum", "air"):
            raise ValueError("medium must be 'vacuum' or 'air'")

    def __len__(self) -> int:
        return int(self.flux.shape[0])

    @property
    def n_pixels(self) -> int:
        return int(self.wavelength.shape[0])


@dataclass(frozen=True)
class XPCoefficients:
    """Gaia DR3 XP continuous spectra (coefficients of the BP and RP bases).

    ``bp_coefficients``, ``rp_coefficients``, ``*_coefficient_errors``: (n, 55)
    in the basis units (e-/s); ``*_coefficient_correlations``: (n, 1485), the
    off-diagonal elements of each 55x55 correlation matrix as stored in the
    Gaia archive; ``*_standard_deviation``: (n,). NaN where a band is missing.
    """

    source_id: np.ndarray
    bp_coefficients: np.ndarray
    bp_coefficient_errors: np.ndarray
    bp_coefficient_correlations: np.ndarray
    bp_standard_deviation: np.ndarray
    rp_coefficients: np.ndarray
    rp_coefficient_errors: np.ndarray
    rp_coefficient_correlations: np.ndarray
    rp_standard_deviation: np.ndarray
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)
    citation: str = ""

    def __len__(self) -> int:
        return int(self.source_id.shape[0])


def _citation(dataset: str, data_dir) -> str:
    return _registry.registry(data_dir)["datasets"][dataset]["citation"]


# ---------------------------------------------------------------------------
# Gaia RVS and XP
# ---------------------------------------------------------------------------
def load_rvs_spectra(data_dir=None) -> Spectra:
    """Six Gaia DR3 RVS mean spectra (2401 pixels, 8460-8700 Angstrom, vacuum, rest frame).

    ``flux``/``flux_error`` are continuum-normalised; NaN marks missing edge
    pixels. ``meta``: name, note, source_id, solution_id, ra, dec [deg],
    transit/CCD counts, n_nan_flux. Cite Gaia Collaboration 2023; Seabroke
    et al. 2022; Angelo et al. 2024.
    """
    z = _registry.read_npz("spectra/gaia_rvs/gaia_dr3_rvs_examples.npz", data_dir=data_dir)
    meta = _registry.read_parquet("spectra/gaia_rvs/gaia_dr3_rvs_examples_meta.parquet", data_dir=data_dir)
    order = pd.Series(np.arange(len(meta)), index=meta["source_id"].astype("int64"))
    meta = meta.iloc[order.loc[z["source_id"].astype("int64")].to_numpy()].reset_index(drop=True)
    return Spectra(
        wavelength=z["wavelength_nm"].astype(float) * 10.0,
        flux=z["flux"],
        flux_error=z["flux_error"],
        meta=meta,
        medium="vacuum",
        flux_unit="normalised",
        citation=_citation("GAIA_RVS", data_dir),
    )


def load_xp_coefficients(data_dir=None) -> XPCoefficients:
    """Gaia DR3 XP continuous coefficients of 4 sources (GaiaXPy test stars).

    Sources: Proxima Cen (5853498713190525696), 5762406957886626816,
    5405570973190252288 (BP missing: NaN), 18 Sco (4345775217221821312).
    Sample them with the bases in :func:`xp_config_file`; GaiaXPy's expected
    outputs are in :func:`load_xp_sample`. Cite De Angeli et al. 2023;
    Montegriffo et al. 2023.
    """
    z = _registry.read_npz("spectra/gaia_xp/gaia_dr3_xp_continuous_examples.npz", data_dir=data_dir)
    meta = pd.DataFrame(
        {"source_id": z["source_id"].astype("int64"), "origin_file": z["origin_file"].astype(str)}
    )
    keys = [k for k in XPCoefficients.__dataclass_fields__ if k not in ("meta", "citation")]
    return XPCoefficients(**{k: z[k] for k in keys}, meta=meta, citation=_citation("GAIA_XP", data_dir))


_XP_PREFIX = "spectra/gaia_xp/"


def list_xp_files(data_dir=None) -> list[str]:
    """Registered XP files (config bases and GaiaXPy samples), relative to ``spectra/gaia_xp/``."""
    return sorted(
        r["file"][len(_XP_PREFIX) :]
        for r in _registry.registry(data_dir)["files"]
        if r["file"].startswith(_XP_PREFIX) and not r["file"].endswith(".npz")
    )


def xp_config_file(name: str, data_dir=None):
    """Verified path of an XP basis/configuration file, e.g. ``"bpC03_v375wi_bases.csv.gz"``.

    Files (GaiaXPy 2.1.5 configuration): ``bpC03_v375wi_bases.csv.gz``,
    ``rpC03_v142r_bases.csv.gz``, ``*_dispersion.csv``, ``*_response.csv``,
    ``TabulatedDispersionFunction-DR3-v375wiv142r_20200610.csv``,
    ``OptimisedCalibratedBases_BpId32_RpId37_withNormalisation.xml.gz``.
    """
    rel = name if name.startswith("config/") else f"config/{name}"
    return _registry.data_path(_XP_PREFIX + rel, data_dir=data_dir)


def _parse_array(cell):
    if isinstance(cell, str) and cell.startswith("(") and cell.endswith(")"):
        body = cell[1:-1].strip()
        return np.array([float(x) for x in body.split(",")]) if body else np.array([], dtype=float)
    return cell


def load_xp_sample(name: str, data_dir=None) -> pd.DataFrame:
    """A GaiaXPy reference table with its "(...)" array cells parsed into ndarrays.

    Names: ``XP_CONTINUOUS_RAW``, ``XP_CONTINUOUS_RAW_with_missing_BP``,
    ``18Sco-XP-spectra``, ``calibrator_solution_default`` (flux
    [W m^-2 nm^-1] on 336-1020 nm in 2 nm steps), ``SampledMeanSpectrum``,
    ``converter_solution_0_60_481`` (pseudo-wavelength samples),
    ``XP_SAMPLED_RAW_dr3int6``.
    """
    stem = name[: -len(".csv.gz")] if name.endswith(".csv.gz") else name.removesuffix(".csv")
    data = _registry.read_bytes(f"{_XP_PREFIX}samples/{stem}.csv.gz", data_dir=data_dir)
    df = pd.read_csv(io.BytesIO(gzip.decompress(data)), dtype={"source_id": "int64"})
    for c in df.columns:
        is_text = df[c].dtype == object or pd.api.types.is_string_dtype(df[c])
        if is_text and df[c].astype(str).str.startswith("(").any():
            df[c] = df[c].map(_parse_array).astype(object)
    df.attrs["citation"] = _citation("GAIA_XP", data_dir)
    return df


# ---------------------------------------------------------------------------
# APOGEE
# ---------------------------------------------------------------------------
def apogee_wavelength(grid: str = "aspcap", data_dir=None) -> np.ndarray:
    """APOGEE wavelength grid [Angstrom, vacuum].

    ``grid``: ``"apstar"`` (8575 pixels, 10**(4.179 + 6e-6 i)), ``"aspcap"``
    (7214 pixels, DR12-style gap-removed) or ``"astronn"`` (7514 pixels,
    DR13-17 gap-removed).
    """
    z = _registry.read_npz("apogee/apogee_wavelength_grid.npz", data_dir=data_dir)
    wl = z["wavelength_apstar_8575"]
    if grid == "apstar":
        return wl
    if grid == "aspcap":
        return wl[z["idx_aspcap_dr12_7214"].astype(int)]
    if grid == "astronn":
        return wl[z["idx_astronn_dr13plus_7514"].astype(int)]
    raise ValueError(f"grid must be 'apstar', 'aspcap' or 'astronn', got {grid!r}")


def load_apogee_spectra(kind: str = "combined", data_dir=None) -> Spectra:
    """Real APOGEE spectra (continuum-normalised, 7214-pixel ASPCAP grid, vacuum).

    ``kind="combined"``: one combined spectrum of 2M13012770+5754582;
    ``kind="visit"``: three visits of the binary 2M06133561+2433362 (not
    shifted to rest frame; ``meta`` has snr, vhelio_kms [km/s],
    hjd_minus_2400000). Cite Ting et al. 2019; El-Badry et al. 2018.
    """
    z = _registry.read_npz("spectra/apogee/apogee_payne_example_spectra.npz", data_dir=data_dir)
    wl = z["wavelength_aspcap7214"].astype(float)
    cite = _citation("APOGEE_SPECTRA", data_dir)
    if kind == "combined":
        meta = pd.DataFrame({"apogee_id": [str(z["combined_apogee_id"])], "kind": ["combined"]})
        return Spectra(
            wl, z["combined_flux"][None, :], z["combined_flux_err"][None, :], meta, "vacuum", citation=cite
        )
    if kind == "visit":
        n = z["visit_flux"].shape[0]
        meta = pd.DataFrame(
            {
                "apogee_id": [str(z["visit_apogee_id"])] * n,
                "kind": ["visit"] * n,
                "snr": z["visit_snr"].astype(float),
                "vhelio_kms": z["visit_vhelio_kms"].astype(float),
                "hjd_minus_2400000": z["visit_hjd_minus_2400000"],
            }
        )
        return Spectra(wl, z["visit_flux"], z["visit_flux_err"], meta, "vacuum", citation=cite)
    raise ValueError(f"kind must be 'combined' or 'visit', got {kind!r}")


def load_apogee_masks(data_dir=None) -> dict:
    """APOGEE pixel masks (True = continuum / masked pixel) and RSCA's masked regions.

    Keys: ``cannon_contpix_aspcap7214``/``_apstar8575``,
    ``payne_badpix_mask_*``, ``astronn_dr{13,14,16,17}_contmask_*`` (bool
    arrays), and from RSCA: ``dib_regions_px``, ``velocity_noisy_regions_px``
    (int (k, 2), half-open ranges on the 8575 apStar grid) with
    ``dib_regions_angstrom``, ``velocity_noisy_regions_angstrom`` [Angstrom,
    vacuum].
    """
    out = _registry.read_npz("apogee/apogee_continuum_masks.npz", data_dir=data_dir)
    reg = json.loads(_registry.read_bytes("apogee/rsca_masked_regions.json", data_dir=data_dir))
    out["dib_regions_px"] = np.asarray(reg["interstellar_dib_regions_px"], dtype=int)
    out["velocity_noisy_regions_px"] = np.asarray(reg["velocity_noisy_regions_px"], dtype=int)
    out["dib_regions_angstrom"] = np.asarray(reg["interstellar_dib_regions_angstrom_vac"], dtype=float)
    out["velocity_noisy_regions_angstrom"] = np.asarray(
        reg["velocity_noisy_regions_angstrom_vac"], dtype=float
    )
    return out


def load_apogee_element_windows(data_dir=None) -> dict:
    """ASPCAP element windows.

    DR12 weights (15 elements; the ones RSCA uses), DR14 l31c booleans (26
    elements) and DR14 weights (15 elements), on the grids named in the keys.
    """
    return _registry.read_npz("apogee/apogee_element_windows.npz", data_dir=data_dir)


def load_cannon_model(data_dir=None) -> dict:
    """Trained quadratic Cannon (jobovy/apogee): ``coefficients`` (15, 7214), ``scatter`` (7214,),
    ``baseline_labels`` [4500 K, 2.0, -0.3, 0.05], ``label_names`` (TEFF, LOGG, FE_H, ALPHA_FE)."""
    return _registry.read_npz("apogee/cannon_apokasc_quadratic_model.npz", data_dir=data_dir)


def load_cannon_training_labels(data_dir=None) -> pd.DataFrame:
    """The 1801 APOKASC training labels of the Cannon model (TEFF [K], LOGG, FE_H, ALPHA_FE [dex])."""
    return _registry.read_parquet("apogee/cannon_apokasc_training_labels.parquet", data_dir=data_dir)


_LABELS = {
    "guiglion2020": ("apogee/guiglion2020_rave_apogee_dr16_labels.parquet", "APOGEE_LABELS_GUIGLION2020"),
    "pricejones2020": (
        "apogee/pricejones2020_apogee_dr16_cluster_stars.parquet",
        "APOGEE_LABELS_PRICEJONES2020",
    ),
}


def load_apogee_labels(name: str = "guiglion2020", data_dir=None) -> pd.DataFrame:
    """APOGEE DR16 label tables.

    ``"guiglion2020"``: 3904 RAVE stars, APOGEE DR16 Teff [K], logg, MH, FeH,
    alphaM, [Si,Al,Mg,Ni/Fe] [dex] + Gaia DR2 parallax [mas], G/BP/RP, 2MASS
    JHK, WISE W1/W2 [mag], av50 [mag]. ``"pricejones2020"``: 360 allStar rows
    of stars in 21 chemically tagged clusters (all [X/Fe], Gaia DR2, dist
    [pc], age [Gyr], CLUSTER_ID); sentinels are NaN.
    """
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    key = {"guiglion": "guiglion2020", "pricejones": "pricejones2020"}.get(key, key)
    if key not in _LABELS:
        raise ValueError(f"unknown label table {name!r}; available: {list(_LABELS)}")
    file, ds = _LABELS[key]
    df = _registry.read_parquet(file, data_dir=data_dir)
    df.attrs.update(citation=_citation(ds, data_dir), file=file)
    return df


_OCCAM = {
    ("members", "DR16"): ("apogee/occam_member_dr16.parquet", "OCCAM_DR16", "CLUSTER"),
    ("clusters", "DR16"): ("apogee/occam_cluster_dr16.parquet", "OCCAM_DR16", "NAME"),
    ("members", "DR17"): ("apogee/occam_member_dr17.parquet", "OCCAM_DR17", "CLUSTER"),
}


def load_occam(kind: str = "members", release: str | None = None, data_dir=None) -> pd.DataFrame:
    """OCCAM (APOGEE open-cluster chemical abundances and mapping) tables.

    Parameters
    ----------
    kind : {"members", "clusters"}
    release : {"DR16", "DR17", None}
        None = latest shipped (DR17 members, DR16 clusters). DR17 has no
        cluster table offline.

    Returns
    -------
    DataFrame
        The OCCAM columns (GLON/GLAT [deg], VHELIO_AVG [km/s], FE_H, [X/Fe]
        [dex], PMRA/PMDEC [mas/yr], *_PROB) with missing values as NaN, plus
        ``cluster`` (canonical name).
    """
    kind = str(kind).lower()
    if kind not in ("members", "clusters"):
        raise ValueError(f"kind must be 'members' or 'clusters', got {kind!r}")
    rel = (release or ("DR17" if kind == "members" else "DR16")).upper()
    if (kind, rel) not in _OCCAM:
        raise ValueError(
            f"no OCCAM {kind} table for {rel} offline; available: {sorted(f'{k}/{r}' for k, r in _OCCAM)}"
        )
    file, ds, col = _OCCAM[(kind, rel)]
    df = _registry.read_parquet(file, data_dir=data_dir)
    df.insert(0, "cluster", canonical_names(df[col].astype(str).tolist(), data_dir=data_dir))
    df.attrs.update(citation=_citation(ds, data_dir), release=rel, file=file)
    return df


# ---------------------------------------------------------------------------
# line list
# ---------------------------------------------------------------------------
def load_linelist(format: str = "table", data_dir=None):  # shadows the builtin: mirrors Turbospectrum wording
    """VALD line list of 8460-8700 Angstrom (10488 lines; AIR wavelengths).

    ``format="table"``: DataFrame (wavelength_air_A [Angstrom], species,
    species_code, ion, chi_lower_eV [eV], loggf, fdamp, g_upper, gamma_rad
    [s^-1], description). ``format="turbospectrum"``: the raw Turbospectrum
    text. RVS spectra are on a vacuum grid: convert before matching. Cite VALD
    (Ryabchikova et al. 2015).
    """
    if format == "table":
        data = _registry.read_bytes("linelists/vald_8460_8700_lines.csv.gz", data_dir=data_dir)
        df = pd.read_csv(io.BytesIO(gzip.decompress(data)))
        df.attrs.update(medium="air", citation=_citation("VALD_LINELIST", data_dir))
        return df
    if format == "turbospectrum":
        data = _registry.read_bytes(
            "linelists/vald_8460_8700_turbospectrum_format.list.gz", data_dir=data_dir
        )
        return gzip.decompress(data).decode("utf-8")
    raise ValueError(f"format must be 'table' or 'turbospectrum', got {format!r}")
