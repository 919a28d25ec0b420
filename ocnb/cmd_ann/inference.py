"""Train the default Cavallo et al. (2024) model and estimate real clusters (Sects. 3.3–3.5, 4).

:func:`train_default` simulates SIMULATED PARSEC clusters (:func:`simulate_clusters`),
freezes the QuadTree standardisation (:class:`QuadTreeFeatures`), trains the batched
:class:`ANNEnsemble` of a preset (with a progress bar over the epochs; the same seed gives the
same model) and caches the whole model (:class:`CavalloModel`: QuadTree constants, ensemble and
calibration) in the data home as ONE :mod:`ocnb.store` bundle with one manifest, so a crash
during a save can never pair new weights with an old calibration. :func:`estimate` applies it
to a real member table and returns a :class:`ClusterEstimate` with percentiles, fit quality
μ_dist (Sect. 3.4) and flags.

Quality classes (gold/silver/bronze/wood) are defined in the paper relative to the μ_dist
distribution of all 6413 observed clusters. We ship only a few dozen member tables, so the
reference distribution here is that of held-out SIMULATED clusters generated with 30 %
unresolved binaries and 5 % field contaminants (a stand-in for real clusters' imperfections);
:func:`quality_class` accepts any other reference, e.g. the μ_dist of many estimated clusters.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import diagnostics, store
from ..cache import sha256_bytes
from ..config import fast_mode
from ..errors import MemberTableError
from .ensemble import LABELS, PRESETS, ANNEnsemble, EnsemblePrediction, coverage, model_dir
from .features import QuadTreeFeatures, cmd_arrays
from .simulate import SyntheticClusters, simulate_clusters

__all__ = [
    "CavalloModel",
    "ClusterEstimate",
    "QUALITY_NAMES",
    "train_default",
    "estimate",
    "estimate_many",
    "mu_dist",
    "quality_class",
    "literature_comparison",
    "compare_models",
    "real_cluster_check",
    "calibrate",
    "calibrated_interval",
    "calibrated_coverage",
    "LITERATURE_TOLERANCE",
]

QUALITY_NAMES = ("gold", "silver", "bronze", "wood")
_VERSION = "cavallo-bundle/1"
#: ``kind`` of a CavalloModel in :mod:`ocnb.store` (one bundle: features + ensemble + calibration meta).
STORE_KIND = "ocnb.cmd_ann.CavalloModel"
STORE_KIND_VERSION = 1
#: Largest gap (s) between a legacy bundle's ``meta["fit_s"]`` and its ensemble's ``fit_time_s``: both
#: time the same ``fit`` call, so a larger gap means the two files come from different trainings.
_LEGACY_FIT_TIME_TOLERANCE_S = 0.25


# ---------------------------------------------------------------------------
# Fit quality (Sect. 3.4)
# ---------------------------------------------------------------------------
def _isochrone_cmd1(grid, log_age, feh, a_v, dist_mod):
    """Apparent (BP−RP, G) of the PARSEC isochrone, phase by phase, with parameters clipped to the grid.

    Only the three Gaia bands are moved to apparent magnitudes (Teff-dependent extinction, the
    simulator's law), which keeps μ_dist cheap enough to be evaluated several times per estimate.
    """
    from ..photometry import extinction_ratio
    from .refine import batched_isochrones

    iso = batched_isochrones(grid, [float(log_age)], [float(feh)])
    keep = iso["valid"][0]
    a_v = float(max(a_v, 0.0))
    teff = np.power(10.0, iso["log_teff"][0, keep])
    app = {b: iso[b][0, keep] + float(dist_mod) + a_v * extinction_ratio(b, teff, a_v) for b in ("G", "BP", "RP")}
    return app["BP"] - app["RP"], app["G"], iso["label"][keep]


def mu_dist(members, params: dict, scales: dict, grid=None, xy=None) -> float:
    """Mean standardised distance of CMD1 members from the predicted isochrone (Sect. 3.4).

    Parameters
    ----------
    members : DataFrame or dict of arrays
        Member table (canonical columns) or one simulated cluster.
    params : dict
        ``log_age`` [dex], ``feh`` [dex], ``a_v`` [mag], ``dist_mod`` [mag] (the point estimate).
    scales : dict
        :attr:`QuadTreeFeatures.scales_` (the frozen standardisation constants).
    xy : (ndarray, ndarray), optional
        CMD1 of the members (``cmd_arrays(members)["cmd1"]``) when already computed.

    Returns
    -------
    float
        μ_dist in standardised CMD units (NaN if no star enters CMD1).
    """
    from ..isochrones import default_grid, segment_distance

    grid = grid if grid is not None else default_grid()
    x, y = xy if xy is not None else cmd_arrays(members)["cmd1"]
    if x.size == 0:
        return float("nan")
    sx, sy = scales["cmd1"]
    pts = np.column_stack([x / sx, y / sy])
    colour, mag, label = _isochrone_cmd1(grid, params["log_age"], params["feh"], params["a_v"], params["dist_mod"])
    verts = np.column_stack([colour / sx, mag / sy])
    # Segments within each evolutionary phase only: no spurious segments across phase jumps.
    # A single-point phase is a zero-length segment.
    ok = np.all(np.isfinite(verts), axis=1)
    keep = (label[:-1] == label[1:]) & ok[:-1] & ok[1:]
    a, b = verts[:-1][keep], verts[1:][keep]
    lone = [verts[(label == lab) & ok] for lab in np.unique(label) if ((label == lab) & ok).sum() == 1]
    if lone:
        a, b = np.concatenate([a, *lone]), np.concatenate([b, *lone])
    return float(np.mean(segment_distance(pts, a, b)))


def quality_class(mu, reference) -> np.ndarray:
    """Gold (0) / silver (1) / bronze (2) / wood (3) from μ_dist (Sect. 3.4).

    Δ = μ − mode(reference), the mode being the peak of a Gaussian KDE (Scott bandwidth);
    gold Δ ≤ σ, silver ≤ 2σ, bronze ≤ 3σ, wood beyond, σ = std(reference). NaN μ → class 3.
    """
    from scipy.stats import gaussian_kde

    ref = np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    if ref.size < 10:
        raise ValueError(f"quality_class needs a reference of at least 10 finite μ_dist values, got {ref.size}")
    kde = gaussian_kde(ref)
    grid = np.linspace(ref.min(), ref.max(), 2048)
    mode = float(grid[np.argmax(kde(grid))])
    sigma = float(np.std(ref))
    delta = (np.asarray(mu, dtype=float) - mode) / sigma
    cls = np.where(delta <= 1, 0, np.where(delta <= 2, 1, np.where(delta <= 3, 2, 3)))
    return np.where(np.isfinite(delta), cls, 3)


# ---------------------------------------------------------------------------
# The trained bundle
# ---------------------------------------------------------------------------
@dataclass
class CavalloModel:
    """A trained Cavallo estimator: QuadTree constants + ANN ensemble + its test-set diagnostics.

    Attributes
    ----------
    features : QuadTreeFeatures
    ensemble : ANNEnsemble
    preset, bands : str
    meta : dict
        Training sizes and time, coverage of the 16–84 interval on held-out SIMULATED clusters,
        and the μ_dist reference distribution used for quality classes.
    """

    features: QuadTreeFeatures
    ensemble: ANNEnsemble
    preset: str
    bands: str
    meta: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"CavalloModel(preset={self.preset!r}, bands={self.bands!r}, members={self.ensemble.n_members}, "
                f"inputs={self.features.n_features}, trained on {self.meta.get('n_train', '?')} simulated clusters)")

    def predict(self, X) -> EnsemblePrediction:
        return self.ensemble.predict(X)

    @property
    def mass_function(self) -> str:
        """Mass function of the SIMULATED training clusters (``simulate_clusters(mass_function=...)``)."""
        return self.meta.get("mass_function", PRESETS[self.preset].get("mass_function", "salpeter"))

    @property
    def coverage(self) -> pd.DataFrame:
        """Coverage of the 16–84 interval and residuals on held-out SIMULATED clusters."""
        return pd.DataFrame(self.meta["coverage"])

    def to_files(self) -> dict[str, bytes]:
        """The model as files: ``bundle.json`` (preset, bands, QuadTree constants, meta with the
        calibration) and the ensemble's files under ``ensemble/``."""
        doc = {"format": _VERSION, "preset": self.preset, "bands": self.bands,
               "features": self.features.to_dict(), "meta": self.meta}
        files = {"bundle.json": json.dumps(doc, sort_keys=True, default=_json_default).encode()}
        files.update({f"ensemble/{name}": data for name, data in self.ensemble.to_files().items()})
        return files

    def save(self, folder) -> Path:
        """Save as ONE :mod:`ocnb.store` bundle (one manifest for features, ensemble and calibration).

        A crash at any point leaves the previous complete model or the new complete one, never a
        mix of new weights and old calibration.
        """
        folder = Path(folder)
        store.save_bundle(folder, self.to_files(), kind=STORE_KIND, kind_version=STORE_KIND_VERSION,
                          meta={"preset": self.preset, "bands": self.bands, "n_members": self.ensemble.n_members,
                                "n_train": self.meta.get("n_train"), "seed": self.meta.get("seed")})
        return folder

    @classmethod
    def from_bundle(cls, bundle: store.Bundle) -> CavalloModel:
        """Rebuild a model from a verified bundle (new store layout or a pre-store folder)."""
        doc = bundle.json("bundle.json")
        if not isinstance(doc, dict) or doc.get("format") != _VERSION:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise store.BundleError(f"model bundle {bundle.folder} holds format {got!r}, expected {_VERSION!r}",
                                    bundle.folder, "outdated")
        ensemble = ANNEnsemble.from_bundle(bundle.sub("ensemble"))
        try:
            features = QuadTreeFeatures.from_dict(doc["features"])
            model = cls(features=features, ensemble=ensemble, preset=doc["preset"], bands=doc["bands"],
                        meta=doc["meta"])
        except (KeyError, TypeError, ValueError) as err:
            raise store.BundleError(f"model bundle {bundle.folder}: bundle.json is unusable ({err!r})",
                                    bundle.folder, "corrupt") from None
        if model.preset not in PRESETS:
            raise store.BundleError(f"model bundle {bundle.folder}: unknown preset {model.preset!r}",
                                    bundle.folder, "corrupt")
        if ensemble.n_inputs_ != features.n_features:
            raise store.BundleError(f"model bundle {bundle.folder} is mixed: the ensemble takes {ensemble.n_inputs_} "
                                    f"inputs, the QuadTree features give {features.n_features}", bundle.folder,
                                    "mixed")
        if bundle.legacy:
            # The old layout wrote ensemble/ and bundle.json separately, with no record tying them
            # together; both time the same fit() call, so disagreeing times reveal a mixed bundle.
            fit_s, fit_time = model.meta.get("fit_s"), ensemble.fit_time_
            if fit_s is not None and fit_time is not None and abs(float(fit_s) - float(fit_time)) > \
                    _LEGACY_FIT_TIME_TOLERANCE_S:
                raise store.BundleError(
                    f"model bundle {bundle.folder} is mixed: bundle.json records a {float(fit_s):.2f} s fit, "
                    f"ensemble/config.json a {float(fit_time):.2f} s one (files of two different trainings)",
                    bundle.folder, "mixed")
        return model

    @classmethod
    def load(cls, folder) -> CavalloModel:
        """Load a model saved by :meth:`save` (or by ocnb before the store), verifying every file.

        Raises
        ------
        ocnb.store.BundleNotFoundError
            Nothing saved at ``folder`` (a ``FileNotFoundError``).
        ocnb.store.BundleError
            A partial, mixed, corrupted or outdated bundle (a ``CorruptCacheError``), never used.
        """
        bundle = store.load_bundle(folder)
        if not bundle.legacy and bundle.kind != STORE_KIND:
            raise store.BundleError(f"model bundle {folder} holds {bundle.kind!r}, not a CavalloModel",
                                    bundle.folder, "outdated")
        return cls.from_bundle(bundle)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def _reference_mu(model_features, pred: EnsemblePrediction, clusters: SyntheticClusters, grid=None) -> list:
    p50 = pred.quantile(50)
    out = []
    for i in range(len(clusters)):
        params = {k: float(p50.iloc[i][k]) for k in LABELS}
        out.append(mu_dist(clusters.cluster(i), params, model_features.scales_, grid))
    return out


def calibrate(model: CavalloModel, n: int | None = None, seed: int | None = None) -> dict:
    """Widen the ensemble's intervals so that they are calibrated on SIMULATED clusters.

    Ensemble members agree more than their errors warrant (their spread ignores the shared
    bias of the training set), so the raw 16–84 interval covers the truth far less than 68 %.
    For each label, the factor f is the 68th percentile of |truth − p50| / (half-width on the
    truth's side) over a fresh simulated calibration set (:func:`ocnb.diagnostics.calibration_factors`);
    calibrated bounds are p50 ∓ f·(p50 − p16, p84 − p50). Stored in ``model.meta["calibration"]``.
    """
    p = PRESETS[model.preset]
    n = n or p["n_test"]
    seed = (model.meta.get("seed", 0) + 30_011) if seed is None else seed
    cal = simulate_clusters(n, seed=seed, progress=False, mass_function=model.mass_function)
    pred = model.predict(model.features.transform(cal))
    factors = diagnostics.calibration_factors(pred, cal.labels[list(LABELS)], level=0.68, lower=16, upper=84)
    model.meta["calibration"] = {"factors": factors, "n": n, "seed": seed}
    return factors


def calibrated_interval(model: CavalloModel, pred: EnsemblePrediction) -> dict:
    """Calibrated (p16, p84) frames of a prediction (see :func:`calibrate`)."""
    return diagnostics.calibrated_interval(pred, model.meta["calibration"]["factors"], 16, 84)


def calibrated_coverage(model: CavalloModel, test_set: SyntheticClusters) -> pd.DataFrame:
    """Coverage of the raw and the calibrated 16–84 intervals on held-out SIMULATED clusters."""
    pred = model.predict(model.features.transform(test_set))
    return diagnostics.calibrated_coverage(pred, test_set.labels[list(LABELS)],
                                           model.meta["calibration"]["factors"], 16, 84)


@functools.lru_cache(maxsize=1)
def _default_training_set(n: int, seed: int, mass_function: str) -> SyntheticClusters:
    # Kept for the process: the multi-band and Gaia-only models train on the same simulation.
    return simulate_clusters(n, seed=seed, mass_function=mass_function)


def train_default(preset: str | None = None, bands: str = "multi", seed: int = 0, refit: bool = False,
                  train_set: SyntheticClusters | None = None, verbose: int = 0,
                  progress: bool | None = None) -> CavalloModel:
    """Train (or reload from the data home) the Cavallo estimator of a preset.

    Parameters
    ----------
    preset : {"fast", "laptop", "paper"}, optional
        Default ``"fast"`` in FAST mode, else ``"laptop"`` (CPU, ≤ 15 min; see ``PRESETS``).
    bands : {"multi", "gaia"}
        190 inputs (Gaia + 2MASS) or 64 (Gaia only), Sect. 3.5.
    seed : int
        Seed of the simulation and of the ensemble.
    refit : bool
        Retrain even if a cached model exists.
    train_set : SyntheticClusters, optional
        Reuse an existing simulation (e.g. to train the multi-band and Gaia-only models on
        the same clusters); by default ``PRESETS[preset]["n_clusters"]`` are simulated.
    verbose : int
        Passed to :meth:`ANNEnsemble.fit`.
    progress : bool, optional
        Progress bar over the training epochs (loss, val-loss, ETA); default on unless
        ``OCNB_PROGRESS=0``.

    Returns
    -------
    CavalloModel
        Cached as one :mod:`ocnb.store` bundle under
        ``data_home()/models/cmd_ann/cavallo-<preset>-<bands>-s<seed>-<hash>``; a partial, mixed or
        corrupted cache is reported (``RuntimeWarning``) and retrained, never used. A bundle saved
        before the store existed is loaded (verified by its old checksums) and re-saved in the new
        layout. The same seed gives the same model (deterministic training).
    """
    preset = preset or ("fast" if fast_mode() else "laptop")
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if bands not in ("multi", "gaia"):
        raise ValueError(f"bands must be 'multi' or 'gaia', not {bands!r}")
    p = PRESETS[preset]
    # The preset's settings are part of the name: changing a preset never reuses a stale model.
    settings = json.dumps(p, sort_keys=True, default=str).encode()
    tag = f"cavallo-{preset}-{bands}-s{seed}-{sha256_bytes(settings)[:8]}"
    if train_set is not None:
        tag += "-" + sha256_bytes(train_set.labels.select_dtypes("number").to_numpy().tobytes())[:12]
    folder = model_dir(tag)

    def load(path: Path) -> CavalloModel:
        bundle = store.load_bundle(path)
        if not bundle.legacy and bundle.kind != STORE_KIND:
            raise store.BundleError(f"model bundle {path} holds {bundle.kind!r}, not a CavalloModel", path,
                                    "outdated")
        model = CavalloModel.from_bundle(bundle)
        if "calibration" not in model.meta:  # bundles saved before calibration existed
            calibrate(model)
            model.save(path)
        elif bundle.legacy:  # migrate to the store layout: one manifest from now on
            model.save(path)
        return model

    def build() -> CavalloModel:
        return _train(preset, bands, seed, train_set, verbose, progress)

    return store.load_or_build(folder, build, load, lambda model, path: model.save(path), refit=refit,
                               what="cached model")


def _train(preset: str, bands: str, seed: int, train_set: SyntheticClusters | None, verbose: int,
           progress: bool | None) -> CavalloModel:
    p = PRESETS[preset]
    t0 = time.perf_counter()
    mf = p.get("mass_function", "salpeter")
    train = train_set if train_set is not None else _default_training_set(p["n_clusters"], seed, mf)
    t_sim = time.perf_counter() - t0
    feats = QuadTreeFeatures(bands=bands, parallax=p.get("parallax", "raw")).fit(train)
    X = feats.transform(train)
    ens = ANNEnsemble.from_preset(preset, seed=seed)
    t1 = time.perf_counter()
    ens.fit(X, train.labels[list(LABELS)], verbose=verbose, progress=progress)
    t_fit = time.perf_counter() - t1

    # Held-out SIMULATED clusters: calibration (clean) and the μ_dist reference (imperfect).
    test = simulate_clusters(p["n_test"], seed=seed + 10_007, progress=False, mass_function=mf)
    pred = ens.predict(feats.transform(test))
    cov = coverage(pred, test.labels[list(LABELS)])
    n_ref = min(p["n_test"], 300)
    ref_set = simulate_clusters(n_ref, seed=seed + 20_011, binaries=True, binary_fraction=0.3,
                                field_fraction=0.05, progress=False, mass_function=mf)
    ref_pred = ens.predict(feats.transform(ref_set))
    mu_ref = _reference_mu(feats, ref_pred, ref_set)

    meta = {
        "n_train": len(train), "n_test": len(test), "n_reference": n_ref, "seed": seed,
        "mass_function": train.meta.get("mass_function", mf),
        "simulate_s": t_sim, "fit_s": t_fit, "total_s": time.perf_counter() - t0,
        "coverage": cov.reset_index().to_dict(orient="list"),
        "mu_reference": mu_ref,
        "feature_min": np.nanmin(X, axis=0).tolist(), "feature_max": np.nanmax(X, axis=0).tolist(),
        "simulated_training_data": True,
        "test_labels": test.labels[list(LABELS) + ["n_stars"]].to_dict(orient="list"),
        "test_members": pred.members.tolist(),
    }
    model = CavalloModel(feats, ens, preset, bands, meta)
    calibrate(model)
    return model


# ---------------------------------------------------------------------------
# Real clusters
# ---------------------------------------------------------------------------
@dataclass
class ClusterEstimate:
    """Parameters of one real cluster from a :class:`CavalloModel`.

    Attributes
    ----------
    name : str
    summary : DataFrame
        Index ``log_age, feh, a_v, dist_mod``; columns ``mean, std, p16, p50, p84`` (the raw ensemble),
        ``lo_cal, hi_cal`` (the calibrated 68 % interval, :func:`calibrate`), ``at_bound``.
    mu_dist : float
        Mean standardised distance of CMD1 members from the p50 isochrone.
    quality : int
        0 gold … 3 wood (see :func:`quality_class` and the module docstring for the reference).
    flags : dict
        Input diagnostics: star counts per CMD, 2MASS presence, stars dropped, features outside
        the training range, parameters at a prior bound, ``low_quality`` and its ``reason``.
    members : DataFrame
        The member table used.
    prediction : EnsemblePrediction
        The ensemble's draws (fast mode, shifted with the parallax update) or equally weighted
        posterior draws of the refinement (refined mode).
    mode : {"fast", "refined"}
    refinement : RefineResult or None
        The refinement's weighted samples, ESS and checks (refined mode).
    """

    name: str
    summary: pd.DataFrame
    mu_dist: float
    quality: int
    flags: dict
    members: pd.DataFrame
    prediction: EnsemblePrediction
    model: CavalloModel = field(repr=False, default=None)
    mode: str = "fast"
    refinement: object = field(repr=False, default=None)

    @property
    def quality_name(self) -> str:
        return QUALITY_NAMES[int(self.quality)]

    @property
    def point(self) -> dict:
        """p50 values, the point estimate used downstream (spec §5)."""
        return {k: float(self.summary.loc[k, "p50"]) for k in LABELS}

    def to_row(self) -> dict:
        row = {"name": self.name, "mode": self.mode, "quality": self.quality, "quality_name": self.quality_name,
               "mu_dist": self.mu_dist, "low_quality": self.flags["low_quality"], "reason": self.flags["reason"],
               "n_cmd1": self.flags["n_cmd1"], "has_2mass": self.flags["has_2mass"]}
        # Column names as the catalogue's percentiles (log_age_16/50/84, feh_50, ...), which
        # ocnb.cmd_ann.gradient and .galactic accept as they are.
        for k in LABELS:
            for col, out in (("mean", "mean"), ("std", "std"), ("p16", "16"), ("p50", "50"), ("p84", "84"),
                             ("lo_cal", "lo_cal"), ("hi_cal", "hi_cal")):
                row[f"{k}_{out}"] = float(self.summary.loc[k, col])
        return row

    def plot(self, ax=None, n_draws: int = 20, seed: int = 0):
        """Static posterior-predictive CMD: members and isochrones of posterior draws (matplotlib).

        Fast mode draws the ensemble members' predictions, refined mode equally weighted draws of the
        refinement's posterior."""
        import matplotlib.pyplot as plt

        from ..isochrones import default_grid

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 5.5))
        x, y = cmd_arrays(self.members)["cmd1"]
        ax.scatter(x, y, s=3, c="0.35", label=f"{self.name} members ({x.size})")
        grid = default_grid()
        draws = self.prediction.members[0]
        rng = np.random.default_rng(seed)
        for j in rng.permutation(len(draws))[:n_draws]:
            c, m, _ = _isochrone_cmd1(grid, *draws[j])
            ax.plot(c, m, c="C0", lw=0.6, alpha=0.35)
        c, m, _ = _isochrone_cmd1(grid, *(self.point[k] for k in LABELS))
        ax.plot(c, m, c="C3", lw=1.6, label="p50 isochrone")
        ax.set(xlabel="BP − RP [mag]", ylabel="G [mag]", title=f"{self.name} ({self.mode}): {self.quality_name}, "
               f"μ_dist {self.mu_dist:.2f}")
        ax.set_ylim(max(np.nanmax(y) + 0.5, 18.5), np.nanmin(y) - 1)
        ax.set_xlim(np.nanpercentile(x, 0.5) - 0.3, np.nanpercentile(x, 99.5) + 0.3)
        ax.legend(fontsize=7, loc="lower left")
        return ax

    def panel(self):
        """Isochrone overlay panel started at the p50 solution (see :class:`ocnb.panels.IsochronePanel`)."""
        from .panels import EnsembleIsochronePanel

        return EnsembleIsochronePanel(self)


def _ann_gaussian(pred: EnsemblePrediction, cal: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ensemble as a Gaussian: p50 vector, raw and calibrated covariances (members' correlations)."""
    draws = np.asarray(pred.members[0], float)
    mean = pred.percentiles[50].iloc[0][list(LABELS)].to_numpy(float)
    raw_sd = np.maximum(pred.std.iloc[0][list(LABELS)].to_numpy(float), 1e-6)
    cal_sd = np.maximum(((cal[84] - cal[16]).iloc[0][list(LABELS)].to_numpy(float)) / 2, 1e-6)
    corr = np.corrcoef(draws.T) if draws.shape[0] > 2 else np.eye(len(LABELS))
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    # Shrink the members' correlations a little: ten members estimate them poorly, and the
    # covariances must stay positive definite.
    corr = 0.8 * corr + 0.2 * np.eye(len(LABELS))
    return mean, corr * np.outer(raw_sd, raw_sd), corr * np.outer(cal_sd, cal_sd)


def _parallax_update(mean, cov, mu_p: float, sigma_p: float):
    """Condition a Gaussian over (log age, [Fe/H], A_V, dMod) on a measured dMod = mu_p ± sigma_p."""
    k = cov[:, 3] / (cov[3, 3] + sigma_p ** 2)
    return mean + k * (mu_p - mean[3]), cov - np.outer(k, cov[3, :])


def estimate(members: pd.DataFrame, model: CavalloModel | None = None, name: str | None = None, *,
             parallax: bool = True, refine: bool = False, release: str | None = None, seed: int = 0,
             refine_settings=None) -> ClusterEstimate:
    """Age, [Fe/H], A_V and distance modulus of a real cluster from its members (Sects. 3.3–3.5, issue 14).

    Two modes share one result type:

    * **fast** (default): the ANN ensemble (Sects. 3.3–3.5) on the QuadTree features, then — with
      ``parallax=True`` — the members' mean parallax as a likelihood on the distance modulus
      (:func:`ocnb.astrometry.cluster_parallax`: zero point from ``gaiadr3-zeropoint`` where the
      columns exist, else a documented global offset, its uncertainty and the angular-covariance
      floor included): the ANN's calibrated Gaussian is conditioned on it, so the CMD parameters
      correlated with dMod (A_V, age) move with it. A few milliseconds.
    * **refined** (``refine=True``): the fast result is the proposal of a likelihood refinement over
      every member's photometry (:func:`ocnb.cmd_ann.refine.refine`: synthetic CMDs from PARSEC with
      unresolved binaries, field outliers, Teff-dependent extinction and the members' own errors,
      plus the parallax term), sampled by adaptive importance sampling with its effective sample
      size reported. About a second.

    Every estimate is graded by :func:`ocnb.cmd_ann.trust.assess`: the paper's μ_dist class capped by
    an out-of-distribution test of the features against the simulated training set, the
    parallax–CMD consistency, the parallax dispersion ("is this one cluster?") and, when refined,
    the refinement's own checks.

    Parameters
    ----------
    members : DataFrame
        Gaia DR3 column names (``phot_g_mean_mag, phot_bp_mean_mag, phot_rp_mean_mag, parallax``,
        ``parallax_error``), 2MASS ``j_m, h_m`` (+ ``j_msigcom, h_msigcom, ph_qual``) when present.
    model : CavalloModel, optional
        Default :func:`train_default` (cached).
    name : str, optional
        Defaults to the table's ``cluster`` column.
    parallax : bool
        Use the members' parallaxes as a likelihood on dMod (default True).
    refine : bool
        Refine over every member (default False).
    release : {"DR3", "EDR3", "DR2"}, optional
        Gaia release of the parallaxes (default: the table's ``attrs["release"]``, else DR3; flagged).
    seed : int
        Seed of the refinement's random draws.
    refine_settings : RefineSettings, optional

    Raises
    ------
    MemberTableError
        Missing G/BP/RP or parallax columns, fewer than 10 stars with G ≤ 18 and BP/RP, no finite
        parallax. Other problems (NaN parallaxes of some members, no 2MASS for a multi-band model,
        features outside the training range, a parameter at a prior bound, a parallax that
        contradicts the CMD, a table that is not one cluster) are returned as flags with
        ``low_quality=True``, never silently.
    """
    from ..astrometry import cluster_parallax
    from ..validation import validate_members
    from . import trust
    from .refine import RefineSettings

    if release is not None and release not in ("DR2", "EDR3", "DR3"):
        raise ValueError(f"release = {release!r}: the Gaia release of the parallaxes must be 'DR2', 'EDR3' or 'DR3'")
    if refine_settings is not None and not isinstance(refine_settings, RefineSettings):
        raise TypeError(f"refine_settings must be an ocnb.cmd_ann.refine.RefineSettings, not "
                        f"{type(refine_settings).__name__}")
    model = model if model is not None else train_default()
    if "parallax" not in getattr(members, "columns", getattr(members, "colnames", [])):
        raise MemberTableError("member table lacks the 'parallax' column [mas] (the ANN's 190th input)")
    # Members with NaN photometry are dropped (and counted); NaN parallaxes only leave the mean.
    table = validate_members(members, require=("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag"),
                             nan="drop")
    if name is None:
        name = str(table["cluster"].iloc[0]) if "cluster" in table and len(table) else "cluster"
    n_nan_plx = int(table["parallax"].isna().sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        X, fl = model.features.transform_with_flags(table)
    flags = fl.iloc[0].to_dict()
    reasons = [flags.get("reason") or ""]
    if n_nan_plx:
        reasons.append(f"{n_nan_plx} members without parallax excluded from the mean parallax")
    n_bright_cut = int((table["phot_g_mean_mag"] > model.features.g_max).sum()) if model.features.g_max else 0
    flags["n_dropped_g_cut"] = n_bright_cut
    flags["n_dropped_nan_photometry"] = int(table.attrs.get("n_dropped_nan", 0))
    if model.bands == "multi" and not flags.get("has_2mass", True):
        reasons.append("no usable 2MASS J/H: the multi-band model sees empty CMD2/CMD3; use a Gaia-only model")
    lo, hi = np.asarray(model.meta["feature_min"]), np.asarray(model.meta["feature_max"])
    outside = np.flatnonzero((X[0] < lo - 1e-9) | (X[0] > hi + 1e-9))
    flags["n_features_outside_training"] = int(outside.size)
    if outside.size:
        names = [model.features.feature_names[i] for i in outside[:4]]
        reasons.append(f"{outside.size} features outside the training range (e.g. {', '.join(names)}): "
                       "magnitudes or colours the simulated clusters never had")
    pred = model.ensemble.predict(X)
    pct = pred.percentiles
    at_bound = pred.at_bound.iloc[0]
    cal = calibrated_interval(model, pred)
    summary = pd.DataFrame({
        "mean": pred.mean.iloc[0], "std": pred.std.iloc[0],
        "p16": pct[16].iloc[0], "p50": pct[50].iloc[0], "p84": pct[84].iloc[0],
        "lo_cal": cal[16].iloc[0], "hi_cal": cal[84].iloc[0], "at_bound": at_bound,
    }).loc[list(LABELS)]
    if at_bound.any():
        reasons.append("at a prior bound: " + ", ".join(k for k in LABELS if at_bound[k]))
    # --- the members' parallax (issue 14, item 1) --------------------------------------------------
    try:
        cp = cluster_parallax(table, release=release)
    except MemberTableError as err:
        cp = None
        reasons.append(f"no parallax likelihood: {err}")
    mean, cov_raw, cov_cal = _ann_gaussian(pred, cal)
    cmd1, scales, mu_ref = cmd_arrays(table)["cmd1"], model.features.scales_, model.meta["mu_reference"]
    ood = trust.ood_test(model, X)
    consistency = (trust.parallax_consistency(float(mean[3]), float(np.sqrt(cov_cal[3, 3])), cp)
                   if cp is not None else {})
    mu_p = cp.dist_mod() if cp is not None else float("nan")
    use_plx = bool(parallax and cp is not None and np.isfinite(mu_p) and consistency.get("consistent", True))
    flags["parallax_used"] = use_plx
    prediction = pred
    if use_plx:
        sig_p = cp.dist_mod_sigma()
        mean_u, cov_u = _parallax_update(mean, cov_cal, mu_p, sig_p)
        _, raw_u = _parallax_update(mean, cov_raw, mu_p, sig_p)
        sd_c, sd_r = np.sqrt(np.diag(cov_u)), np.sqrt(np.diag(raw_u))
        summary["mean"] = mean_u
        summary["p50"] = mean_u
        summary["std"] = sd_r
        summary["p16"], summary["p84"] = mean_u - sd_r, mean_u + sd_r
        summary["lo_cal"], summary["hi_cal"] = mean_u - sd_c, mean_u + sd_c
        prediction = EnsemblePrediction(np.asarray(pred.members, float) + (mean_u - mean)[None, None, :],
                                        index=pred.index)
        # A parallax can agree with a wide ANN interval and still move the isochrone off the members:
        # then CMD and parallax disagree, whatever the z-score said.
        before = {k: float(v) for k, v in zip(LABELS, mean, strict=True)}
        after = {k: float(v) for k, v in zip(LABELS, mean_u, strict=True)}
        moved = abs(mean_u[3] - mean[3]) > 0.1  # a smaller shift cannot move the isochrone off the members
        cls_before = trust.mu_dist_class(mu_dist(table, before, scales, xy=cmd1), mu_ref) if moved else 0
        cls_after = trust.mu_dist_class(mu_dist(table, after, scales, xy=cmd1), mu_ref) if moved else 0
        if cls_after >= 2 and cls_after > cls_before:
            reasons.append(f"the members' parallax distance (dMod {mu_p:.2f} mag) moves the isochrone off the members "
                           f"(class {QUALITY_NAMES[cls_before]} → {QUALITY_NAMES[cls_after]}): parallax and CMD "
                           "disagree")
        mean, cov_cal = mean_u, cov_u
    elif parallax and not consistency.get("consistent", True):
        reasons.append("the members' parallax contradicts the CMD distance: not used as a likelihood")
    # --- refinement on every star (issue 14, item 2) -----------------------------------------------
    mode, refinement = "fast", None
    if refine:
        from .refine import refine as _refine
        from .refine_calibration import literature_floors, systematic_floors

        settings = refine_settings or RefineSettings(seed=seed)
        refinement = _refine(table, mean, 4.0 * cov_cal, parallax=cp if use_plx else None, settings=settings)
        rs = refinement.summary
        # The calibrated interval adds, in quadrature, to the posterior's own width the systematic floor measured
        # on mismatched simulated clusters and the scatter between published fits of real clusters
        # (ocnb.cmd_ann.refine_calibration): two independent sources of model error.
        sim_floors, sim_note = systematic_floors(settings)
        lit_floors, lit_note = literature_floors()
        floors = {k: float(np.hypot(sim_floors[k], lit_floors[k])) for k in LABELS}
        floor_note = f"{sim_note}; {lit_note}"
        floor = pd.Series(floors).loc[list(LABELS)]
        summary = pd.DataFrame({"mean": rs["mean"], "std": rs["std"], "p16": rs["p16"], "p50": rs["p50"],
                                "p84": rs["p84"],
                                "lo_cal": rs["p50"] - np.hypot(rs["p50"] - rs["p16"], floor),
                                "hi_cal": rs["p50"] + np.hypot(rs["p84"] - rs["p50"], floor),
                                "at_bound": rs["at_bound"]}).loc[list(LABELS)]
        prediction = EnsemblePrediction(refinement.draws(100, seed=seed)[None], index=pred.index)
        flags["refine"] = {**refinement.to_dict(), "systematic_floor": floors, "floor_note": floor_note,
                           "floor_parts": {"simulated": sim_floors, "literature": lit_floors}}
        mode = "refined"
    params = {k: float(summary.loc[k, "p50"]) for k in LABELS}
    mu = mu_dist(table, params, scales, xy=cmd1)
    mu_class = trust.mu_dist_class(mu, mu_ref)
    verdict = trust.assess(model, table, X, pred, params, mu, cluster_parallax=cp,
                           refine_info=flags.get("refine"), mu_quality=mu_class, ood=ood)
    quality = int(verdict["quality"])
    reasons += list(verdict["reasons"])
    flags["ood"] = verdict["ood"]
    flags["parallax"] = {**(cp.to_dict() if cp is not None else {}), **consistency}
    flags["trust_notes"] = list(verdict.get("notes", []))
    flags["quality_mu_dist"] = mu_class
    flags["warnings"] = [str(w.message) for w in caught]
    flags["reason"] = "; ".join(dict.fromkeys(r for r in reasons if r))
    flags["low_quality"] = bool(flags["reason"]) or bool(verdict["low_quality"])
    return ClusterEstimate(name=name, summary=summary, mu_dist=mu, quality=quality, flags=flags,
                           members=table, prediction=prediction, model=model, mode=mode, refinement=refinement)


def estimate_many(tables, model: CavalloModel | None = None, errors: str = "collect", **kwargs) -> pd.DataFrame:
    """Estimate several clusters: ``tables`` maps name -> member DataFrame. One row per cluster.

    With ``errors="collect"`` a cluster that cannot be estimated gets a row with its error message
    in ``reason`` (and NaN parameters) instead of stopping the loop. Other keywords (``parallax``,
    ``refine``, ``release``, ``seed``) go to :func:`estimate`.
    """
    from ..parallel import progress

    model = model if model is not None else train_default()
    rows = []
    for name, members in progress(list(tables.items()), desc="clusters"):
        try:
            rows.append(estimate(members, model, name=name, **kwargs).to_row())
        except MemberTableError as err:
            if errors != "collect":
                raise
            rows.append({"name": name, "low_quality": True, "reason": f"error: {err}"})
    return pd.DataFrame(rows)


def compare_models(models: dict, test_set: SyntheticClusters) -> pd.DataFrame:
    """Accuracy of several models on the same held-out SIMULATED clusters (e.g. Gaia-only vs multi-band).

    Returns one row per (model, label): ``rmse``, ``bias``, ``scatter`` of p50 − truth, the
    coverage of the 16–84 interval, and ``n``.
    """
    truth = test_set.labels[list(LABELS)]
    frames = []
    for key, model in models.items():
        cov = coverage(model.predict(model.features.transform(test_set)), truth)
        frames.append(cov.reset_index().assign(model=key))
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "label", "rmse", "bias", "scatter", "coverage", "n"]]


#: Paper-level agreement with the literature (issue acceptance; Cavallo et al. 2024 Sect. 4).
LITERATURE_TOLERANCE = {"log_age": 0.3, "feh": 0.3, "a_v": 0.4, "dist_mod": 0.5}
MULTIBAND_CLUSTERS = ("M67", "Hyades", "Praesepe", "alpha Per", "Blanco 1", "Pleiades")


def real_cluster_check(multi: CavalloModel, gaia: CavalloModel | None = None,
                       catalogs=("HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021")) -> pd.DataFrame:
    """Estimate every shipped real cluster and compare with the mean of the literature values.

    Multi-band members (``MULTIBAND_CLUSTERS``) go through ``multi``; the Almeida et al. Gaia-only
    member lists of the other clusters, then the remaining (distant) ISO clusters, through ``gaia``
    (skipped when None). Tables too poor to estimate get a row whose ``reason`` says why. No real
    cluster is used in training, so all are held out.

    Returns
    -------
    DataFrame
        One row per cluster: ``name, model, n_members, quality_name, low_quality``, our p50
        ``<param>``, the literature mean ``<param>_lit`` (over the catalogues that give it; [Fe/H] only
        from Dias 2021 and Cavallo 2024), ``d_<param>`` and ``ok_<param>`` (|Δ| below
        :data:`LITERATURE_TOLERANCE`).
    """
    from ..datasets import list_member_clusters, literature_parameters, load_members

    jobs = [(name, "iso", multi, "multi-band") for name in MULTIBAND_CLUSTERS]
    if gaia is not None:
        table = list_member_clusters()
        done = {_resolve(n) for n in MULTIBAND_CLUSTERS}
        for source in ("almeida", "iso"):  # Almeida's Gaia-only lists, then the distant ISO clusters
            for n in table.cluster[table.source == source]:
                if n not in done:
                    jobs.append((n, source, gaia, "Gaia only"))
                    done.add(n)
    rows = []
    for name, source, model, label in jobs:
        members = load_members(name, source=source)
        row = {"name": _resolve(name), "model": label, "source": source, "n_members": len(members)}
        try:
            est = estimate(members, model, name=row["name"])
        except MemberTableError as err:  # too few usable members: reported, not estimated
            detail = [ln.strip() for ln in str(err).splitlines() if "stars in CMD1" in ln or "parallax" in ln]
            rows.append({**row, "low_quality": True, "reason": "not estimated: " + (detail[0] if detail else str(err))})
            continue
        lit = literature_parameters(est.name, catalogs=catalogs)
        row.update({"quality_name": est.quality_name, "low_quality": est.flags["low_quality"],
                    "reason": est.flags["reason"]})
        for k in LABELS:
            ours = est.point[k]
            ref = float(np.nanmean(lit[k].to_numpy(dtype=float))) if k in lit and lit[k].notna().any() else np.nan
            row[k], row[f"{k}_lit"], row[f"d_{k}"] = ours, ref, ours - ref
            row[f"ok_{k}"] = bool(abs(ours - ref) < LITERATURE_TOLERANCE[k]) if np.isfinite(ref) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _resolve(name: str) -> str:
    from ..datasets import resolve_cluster_name

    return resolve_cluster_name(name)


def literature_comparison(ours: pd.DataFrame, catalogs=("HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021")
                          ) -> pd.DataFrame:
    """Our p50 values beside the literature: one row per (cluster, catalogue) with differences.

    Columns: ``name, catalog, <param>_ours, <param>_lit, d_<param>`` for ``log_age, feh, a_v, dist_mod``.
    """
    from ..datasets import literature_parameters

    rows = []
    for _, r in ours.iterrows():
        if not np.isfinite(r.get("log_age_50", np.nan)):
            continue
        lit = literature_parameters(r["name"], catalogs=catalogs)
        for _, lit_row in lit.iterrows():
            row = {"name": r["name"], "catalog": lit_row["catalog"]}
            for k in LABELS:
                row[f"{k}_ours"] = r[f"{k}_50"]
                row[f"{k}_lit"] = lit_row.get(k, np.nan)
                row[f"d_{k}"] = row[f"{k}_ours"] - row[f"{k}_lit"]
            rows.append(row)
    return pd.DataFrame(rows)
