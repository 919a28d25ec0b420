"""The container of SIMULATED populations: per-cluster labels plus all stars in a flat (CSR) layout."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .quality import twomass_quality_letter

__all__ = ["SyntheticClusters", "POPULATION_PARAMETERS", "STAR_FLOAT_COLUMNS"]

#: The physical parameters of a simulated population, in the order of :meth:`SyntheticClusters.y`.
POPULATION_PARAMETERS = ("log_age", "feh", "a_v", "dist_mod")

#: Float32 star columns every simulation has (canonical member-table names).
STAR_FLOAT_COLUMNS = (
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
        values = training labels), ``n_stars`` (stars with G ≤ g_max),
        ``parallax`` / ``parallax_error`` [mas] (mean of the stars' noisy
        parallaxes and its uncertainty), ``parallax_true`` [mas] (1000/d),
        ``log_age_iso`` / ``mh_iso`` (the lattice isochrone actually used),
        ``n_members``, ``n_field``, ``mf_m_break`` [M☉] / ``mf_alpha_low``
        (mass function) and ``feh_clipped`` (bool: the label [Fe/H] lies outside
        the isochrone grid and the cluster was built from the grid's edge
        isochrone; see :func:`ocnb.sim.simulate_populations`).
    offsets : numpy.ndarray
        int64, length n + 1: stars of cluster i are ``offsets[i]:offsets[i+1]``.
    stars : dict of numpy.ndarray
        Flat per-star arrays (float32 unless noted), canonical member-table
        names: ``phot_g_mean_mag, phot_bp_mean_mag, phot_rp_mean_mag``, their
        ``*_error``, ``j_m, h_m, j_msigcom, h_msigcom`` (2MASS usability follows
        from σ: :func:`ocnb.sim.twomass_usable`), ``parallax, parallax_error`` [mas],
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

    def y(self, labels=POPULATION_PARAMETERS) -> np.ndarray:
        """Training targets (n, len(labels)) float64, default ``log_age, feh, a_v, dist_mod``."""
        labels = list(labels)
        missing = [c for c in labels if c not in self.labels.columns]
        if missing:
            raise KeyError(f"no label column(s) {missing}; have {list(self.labels.columns)}")
        return self.labels[labels].to_numpy(float)

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
                data[c] = np.array([x + y + "U" for x, y in zip(lj, lh, strict=True)], dtype=object)
            elif c == "membership_probability":
                data[c] = np.ones(n)
            else:
                data[c] = np.full(n, np.nan)
        for c, v in self.stars.items():
            if c not in data:
                data[c] = v[a:b].astype(np.float64) if v.dtype.kind == "f" else v[a:b].copy()
        return pd.DataFrame(data)

    def subset(self, idx) -> SyntheticClusters:
        """A new container with clusters ``idx`` (int indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} clusters")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"cluster indices {idx[(idx < -len(self)) | (idx >= len(self))][:5].tolist()} "
                             f"out of range for {len(self)} clusters")
        idx = idx % max(len(self), 1)
        sizes = self.sizes[idx]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        starts = self.offsets[idx]
        take = np.repeat(starts - offsets[:-1], sizes) + np.arange(offsets[-1], dtype=np.int64)
        stars = {k: v[take] for k, v in self.stars.items()}
        meta = dict(self.meta, subset_of=len(self))
        return SyntheticClusters(self.labels.iloc[idx].reset_index(drop=True), offsets, stars, meta)

    def __getitem__(self, idx) -> SyntheticClusters:
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
    def load(cls, path) -> SyntheticClusters:
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
