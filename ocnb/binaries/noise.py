"""Observational noise of the SBI simulator, measured on the shipped real member tables (M25 Sect. 3.2, spec B2).

Malhotra et al. (2025) inject noise by interpolating the observed dependence
of the uncertainties on magnitude in their real data. We do the same with the
real member tables shipped with ocnb (:func:`ocnb.datasets.load_members`):

* **Gaia G, BP, RP** and **σ_ϖ(G)**: every Gaia member table (the DR3 cones of
  M67 and the Pleiades, the Almeida+2023 EDR3 lists of 20 clusters, the Gaia
  columns of the multi-band "iso" lists), one row per ``source_id``, about
  17 000 stars with G ≈ 4–20.4. σ_m = 1.0857 σ_F/F from ``*_flux_over_error``
  where a table has it (the archive's pure photon-noise error), else the table's
  magnitude error.
* **2MASS J, H, Ks** and **WISE W1, W2**: the "iso" lists (Gaia + 2MASS + AllWISE,
  21 clusters, ~5 000 stars), restricted to the photometry the paper uses:
  2MASS ``ph_qual == "AAA"`` and WISE ``ph_qual`` starting with ``"AA"`` (spec B1).

Per band: the median magnitude and median σ in 0.1-mag bins holding at least
``min_count`` stars (spec B2 [resolution]); σ(m) interpolates log σ linearly
between the bin medians. Brighter than the first bin σ stays at its value
(saturation is not modelled); fainter than the last bin log σ rises by 0.4 dex
per mag (σ ∝ flux⁻¹, background-limited), the same continuation as
:class:`ocnb.photometry.PhotometricErrorModel`. Simulated stars reach G = 21 and,
for red dwarfs, 2MASS/WISE magnitudes far beyond what 2MASS/WISE detect: those
get the extrapolated (large) σ, and such real stars fall back to the "Gaia" set.

Gaia's calibration floors (Riello+2021: 2.8, 2.8, 3.8 mmag for G, BP, RP) are added in
quadrature by default (``zero_point=True``, spec B2 [resolution]): without them bright
simulated stars would be exact to 0.3 mmag, tighter than real photometry follows any isochrone.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd

__all__ = ["NOISE_BANDS", "MeasuredNoise", "measured_noise", "quality_mask"]

#: Bands with a measured σ(m) relation (the simulator's bands).
NOISE_BANDS = ("G", "BP", "RP", "J", "H", "Ks", "W1", "W2")
_GAIA = ("G", "BP", "RP")
_TWOMASS = ("J", "H", "Ks")
_WISE = ("W1", "W2")
#: Slope (dex of σ per mag) of the faint-side continuation: σ ∝ flux⁻¹.
FAINT_SLOPE = 0.4
#: Member-table sources in order of preference for Gaia columns (one row per source_id).
_GAIA_SOURCES = ("dr3_cone", "almeida", "iso")


@dataclasses.dataclass(frozen=True)
class MeasuredNoise:
    """σ(band, m) and σ_ϖ(G) as median relations in magnitude bins of real stars.

    Build it with :func:`measured_noise` (the shipped member tables, cached) or
    :meth:`from_tables` (any tables in the canonical member schema).

    Attributes
    ----------
    nodes : dict
        ``band → (mag, sigma, count)`` arrays: bin-median magnitude [mag], bin-median
        σ [mag] (σ_ϖ [mas] under the key ``"parallax"``, against G) and the number of stars.
    zero_point : bool
        Riello+2021 Gaia floors added in quadrature to G, BP, RP.
    bin_width : float
        Bin width [mag].
    description : str
        Where the relation comes from.
    """

    nodes: dict
    zero_point: bool = True
    bin_width: float = 0.1
    description: str = ""

    def __repr__(self) -> str:
        ranges = ", ".join(f"{b} {m[0]:.1f}–{m[-1]:.1f}" for b, (m, _, _) in self.nodes.items())
        return f"MeasuredNoise({ranges}; zero_point={self.zero_point}, bins {self.bin_width} mag)"

    @classmethod
    def from_tables(cls, gaia, infrared=None, *, bin_width: float = 0.1, min_count: int = 10,
                    zero_point: bool = True, description: str = "") -> MeasuredNoise:
        """Measure the relations on member tables.

        Parameters
        ----------
        gaia : DataFrame
            Rows with Gaia photometry and ``parallax_error`` (canonical member columns).
        infrared : DataFrame, optional
            Rows with 2MASS and AllWISE photometry, quality flags ``ph_qual`` and
            ``wise_ph_qual``; default ``gaia``.
        bin_width : float
            Magnitude bin [mag] (spec: 0.1).
        min_count : int
            Fewest stars for a bin to count (≥ 1).
        zero_point : bool
            Add the Gaia calibration floors in quadrature.
        """
        from ..photometry import ERROR_COLUMNS, MEMBER_COLUMNS, gaia_mag_errors

        if not (np.isfinite(bin_width) and bin_width > 0):
            raise ValueError(f"bin_width must be > 0 mag, not {bin_width!r}")
        if int(min_count) != min_count or min_count < 1:
            raise ValueError(f"min_count must be a whole number ≥ 1, not {min_count!r}")
        infrared = gaia if infrared is None else infrared

        def col(frame, name):
            if name not in frame.columns:
                return np.full(len(frame), np.nan)
            return frame[name].to_numpy(float, na_value=np.nan)

        nodes = {}
        for band in _GAIA:
            nodes[band] = _binned(col(gaia, MEMBER_COLUMNS[band]), gaia_mag_errors(gaia, band), bin_width, min_count)
        nodes["parallax"] = _binned(col(gaia, "phot_g_mean_mag"), col(gaia, "parallax_error"), bin_width, min_count)
        tm = quality_mask(infrared, "ph_qual", "AAA")
        wise = quality_mask(infrared, "wise_ph_qual", "AA")
        for band, ok in [(b, tm) for b in _TWOMASS] + [(b, wise) for b in _WISE]:
            nodes[band] = _binned(col(infrared, MEMBER_COLUMNS[band])[ok], col(infrared, ERROR_COLUMNS[band])[ok],
                                  bin_width, min_count)
        empty = [b for b, (m, _, _) in nodes.items() if m.size == 0]
        if empty:
            raise ValueError(f"no magnitude bin with ≥ {min_count} usable stars for {empty}: the tables lack "
                             "those columns or good-quality rows")
        return cls(nodes=nodes, zero_point=bool(zero_point), bin_width=float(bin_width), description=description)

    def sigma(self, band: str, mag, extrapolate: bool = True) -> np.ndarray:
        """1σ magnitude uncertainty [mag] at magnitude ``mag`` [mag] in ``band``; NaN where mag is NaN.

        ``extrapolate`` is accepted for compatibility with
        :class:`ocnb.photometry.PhotometricErrorModel`; the faint-side continuation is always on.
        """
        if band not in NOISE_BANDS:
            raise ValueError(f"no measured noise for band {band!r}; choose one of {NOISE_BANDS}")
        sig = self._interp(band, mag)
        if self.zero_point and band in _GAIA:
            from ..photometry import GAIA_ZERO_POINT_SIGMA

            sig = np.hypot(sig, GAIA_ZERO_POINT_SIGMA[band])
        return sig

    def parallax_sigma(self, g_mag) -> np.ndarray:
        """1σ parallax uncertainty σ_ϖ [mas] at Gaia G [mag]."""
        return self._interp("parallax", g_mag)

    def table(self) -> pd.DataFrame:
        """The bin medians as a long table: band, mag [mag], sigma [mag; mas for parallax], n."""
        rows = [pd.DataFrame({"band": b, "mag": m, "sigma": s, "n": n}) for b, (m, s, n) in self.nodes.items()]
        return pd.concat(rows, ignore_index=True)

    def _interp(self, key: str, mag) -> np.ndarray:
        m_nodes, s_nodes, _ = self.nodes[key]
        x = np.asarray(mag, dtype=float)
        log_s = np.log10(s_nodes)
        out = np.interp(x, m_nodes, log_s)  # constant beyond both ends ...
        out = out + FAINT_SLOPE * np.clip(x - m_nodes[-1], 0.0, None)  # ... then σ ∝ 1/flux on the faint side
        return np.where(np.isnan(x), np.nan, np.power(10.0, out))


def quality_mask(frame: pd.DataFrame, column: str, prefix: str) -> np.ndarray:
    """True where ``frame[column]`` (a 2MASS/WISE ``ph_qual`` string) starts with ``prefix`` (spec B1); all
    False when the column is absent."""
    if column not in frame.columns:
        return np.zeros(len(frame), bool)
    return frame[column].astype("string").str.startswith(prefix).fillna(False).to_numpy(bool)


def _binned(mag, sigma, width: float, min_count: int):
    """Median magnitude and median σ in bins of ``width`` (bins with ≥ ``min_count`` stars)."""
    mag = np.asarray(mag, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    ok = np.isfinite(mag) & np.isfinite(sigma) & (sigma > 0)
    mag, sigma = mag[ok], sigma[ok]
    if mag.size == 0:
        return np.empty(0), np.empty(0), np.empty(0, np.int64)
    idx = np.floor(mag / width).astype(np.int64)
    order = np.lexsort((sigma, idx))
    idx, mag_s, sig_s = idx[order], mag[order], sigma[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    counts = np.diff(np.r_[starts, idx.size])
    keep = counts >= min_count
    med_m = np.array([np.median(mag_s[s:s + c]) for s, c in zip(starts[keep], counts[keep], strict=True)])
    med_s = np.array([np.median(sig_s[s:s + c]) for s, c in zip(starts[keep], counts[keep], strict=True)])
    return med_m, med_s, counts[keep].astype(np.int64)


def _member_tables(data_dir=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Gaia rows, one per source_id; multi-band "iso" rows) of every shipped member table."""
    from ..datasets import list_member_clusters, load_members

    listing = list_member_clusters(data_dir=data_dir)
    frames = {s: [] for s in _GAIA_SOURCES}
    for row in listing.itertuples():
        if row.source in frames:
            frames[row.source].append(load_members(row.cluster, source=row.source, data_dir=data_dir))
    per_source = {s: pd.concat(f, ignore_index=True) for s, f in frames.items() if f}
    gaia = pd.concat([per_source[s] for s in _GAIA_SOURCES if s in per_source], ignore_index=True)
    gaia = gaia.drop_duplicates("source_id", keep="first")  # preference: DR3 cones, then Almeida, then iso
    return gaia, per_source.get("iso", gaia.iloc[:0])


@functools.lru_cache(maxsize=4)
def measured_noise(bin_width: float = 0.1, min_count: int = 10, zero_point: bool = True) -> MeasuredNoise:
    """The simulator's noise model measured on the shipped real member tables (cached per process).

    See the module docstring for the tables, quality cuts and the interpolation.
    Loading every member table takes ~1–2 s the first time.

    Parameters
    ----------
    bin_width : float
        Magnitude bin [mag] (spec B2: 0.1).
    min_count : int
        Fewest stars per bin.
    zero_point : bool
        Add Gaia's calibration floors in quadrature (default True).
    """
    gaia, iso = _member_tables()
    desc = (f"median sigma in {bin_width:g}-mag bins (>= {min_count} stars) of the shipped real members: "
            f"Gaia G/BP/RP and parallax from {len(gaia):,} stars (DR3 cones, Almeida EDR3, iso), 2MASS "
            f"(ph_qual AAA) and AllWISE (ph_qual AA..) from {len(iso):,} iso stars; log-linear interpolation, "
            f"constant on the bright side, +{FAINT_SLOPE} dex/mag on the faint side"
            + ("; Gaia zero-point floors in quadrature" if zero_point else ""))
    return MeasuredNoise.from_tables(gaia, iso, bin_width=bin_width, min_count=min_count, zero_point=zero_point,
                                     description=desc)
