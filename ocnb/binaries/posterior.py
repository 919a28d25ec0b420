"""Per-star posteriors of (M_A, q, [Fe/H], log age, μ, A_V) by NPE (Malhotra et al. 2025, Sects. 3.1–3.2; spec B3).

One amortised neural posterior estimator per band set ("All_Mags", "Gaia_TMASS", "Gaia"), trained on
one shared set of SIMULATED stars and binaries (:func:`ocnb.binaries.simulate_stars`), each on its
own columns. A star is sampled with the first set of :data:`~ocnb.binaries.FALLBACK_ORDER` whose
magnitudes and parallax are all finite (the paper's fall-back order), and the result says which.

What differs from the paper's sbi setup, and why (the resolutions of spec B3):

* **Estimator**: a BayesFlow 2 coupling flow (:class:`ocnb.ml.npe.BoundedNPE`) instead of sbi's
  masked autoregressive flow, in Keras 3 like the other notebooks. The flow works on the logit of
  each parameter inside the Table 1 box, so no sample ever leaks out of the prior (sbi rejects the
  leaking ones), and sampling is one compiled pass for all stars.
* **q as drawn**: the simulator sets q = 0 where q·M_A < 0.1 M☉ (a companion too light to count).
  That spike is not a density a flow can learn, so the flow learns the mass ratio *as drawn*
  (``q_drawn``, continuous on [0, 1]: the photometry does not depend on it below 0.1/M_A, where its
  posterior is the prior) and every sample is censored afterwards, q = 0 where q_drawn·M_A < 0.1 —
  exactly the simulator's rule, so the reported q has the paper's distribution, spike included.
* **Parallax feature**: the network sees asinh(ϖ / 1 mas) rather than ϖ: the Table 1 prior on μ
  (uniform 0–13.5 mag) spreads ϖ from 0.2 to 100 mas, and a z-score of raw ϖ would squeeze every
  cluster beyond 100 pc into a sliver of the input range. asinh is linear near zero (negative
  parallaxes of faint stars stay usable) and logarithmic above.
* **Turn-off proposal**: a quarter of the training draws take M_A from the turn-off window of their own
  isochrone, so that the flow sees enough subgiants and giants (2 % of Table 1 draws); samples are
  importance-resampled back to the Table 1 prior (:mod:`ocnb.binaries.proposal`). Models trained on
  given ``sims`` skip it.
* **Photometric outliers**: a star whose features lie farther from every simulated star than
  99.9 % of held-out simulations do is flagged and gets no numbers (spec B3's "all samples outside
  the prior" cannot happen with a bounded flow, so the same idea is tested on the observables).

Presets (:data:`PRESETS`): ``fast`` (FAST mode, a minute on a laptop), ``laptop`` and ``paper``
(2 × 10⁶ simulations as in the paper, a GPU recommended).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .noise import quality_mask
from .simulate import BAND_SETS, FALLBACK_ORDER, THETA_NAMES, BinaryPrior, make_prior

__all__ = ["PRESETS", "PosteriorPreset", "NPE_PARAMS", "BinaryPosterior", "StarPosteriors", "train_posterior",
           "sample_posteriors", "observables", "features", "M_B_MIN"]

#: Parameters the flow learns (q as drawn; see the module docstring).
NPE_PARAMS = ("mass_a", "q_drawn", "feh", "log_age", "dist_mod", "a_v")
#: Companion mass below which a system counts as single, q = 0 [M☉] (M25 Sect. 3.2).
M_B_MIN = 0.1
STORE_NAMESPACE = "binaries"
STORE_KIND = "ocnb.binaries.posterior"
STORE_KIND_VERSION = 1
#: Held-out simulations whose nearest-neighbour distance sets the outlier threshold, and the quantile.
_OOD_QUANTILE = 0.999
_OOD_REFERENCE = 20_000


@dataclasses.dataclass(frozen=True)
class PosteriorPreset:
    """Training budget of one preset: simulations and the flow's settings (:class:`ocnb.ml.npe.NPESettings`)."""

    n_sims: int
    depth: int
    width: int
    epochs: int
    patience: int
    learning_rate: float = 5e-4
    batch_size: int = 512
    #: Share of training draws whose M_A comes from the isochrone's turn-off window
    #: (:class:`ocnb.binaries.proposal.TurnoffProposal`; undone by importance weights when sampling).
    turnoff_fraction: float = 0.25

    def npe_settings(self, seed: int):
        from ..ml.npe import NPESettings

        return NPESettings(depth=self.depth, width=self.width, epochs=self.epochs, patience=self.patience,
                           learning_rate=self.learning_rate, batch_size=self.batch_size, seed=seed)


PRESETS = {
    "fast": PosteriorPreset(n_sims=20_000, depth=4, width=64, epochs=10, patience=3, learning_rate=1e-3),
    # 64 units: sampling time grows with width², and 1000 stars × 20,000 samples must take < 1 min on 2 cores
    "laptop": PosteriorPreset(n_sims=500_000, depth=6, width=64, epochs=100, patience=15),
    "paper": PosteriorPreset(n_sims=2_000_000, depth=8, width=256, epochs=200, patience=20),
}


def _check_band_set(bands: str) -> str:
    if not isinstance(bands, str) or bands not in BAND_SETS:
        raise ValueError(f"unknown band set {bands!r}; choose one of {tuple(BAND_SETS)}")
    return bands


def feature_names(bands: str) -> tuple:
    """Network inputs of a band set: its magnitudes [mag] and ``asinh_parallax`` (asinh(ϖ / 1 mas))."""
    return tuple(BAND_SETS[_check_band_set(bands)]) + ("asinh_parallax",)


def features(obs: pd.DataFrame, bands: str) -> np.ndarray:
    """(n, k) network inputs from canonical observables (columns ``G, BP, RP, J, H, Ks, W1, W2, parallax``)."""
    names = BAND_SETS[_check_band_set(bands)]
    missing = [c for c in (*names, "parallax") if c not in obs.columns]
    if missing:
        raise ValueError(f"observables lack column(s) {missing} for band set {bands!r}; they have {list(obs.columns)}")
    mags = obs[list(names)].to_numpy(float)
    return np.column_stack([mags, np.arcsinh(obs["parallax"].to_numpy(float))])


# Real member tables (canonical ocnb schema) → observables.
_REAL = {"G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag", "J": "j_m", "H": "h_m",
         "Ks": "ks_m", "W1": "w1mpro", "W2": "w2mpro"}


def observables(members: pd.DataFrame, release: str = "DR3", zero_point: bool = True) -> pd.DataFrame:
    """Canonical observables of real members: ``G, BP, RP, J, H, Ks, W1, W2`` [mag, Vega], ``parallax`` [mas].

    Spec B1: 2MASS magnitudes only where ``ph_qual == "AAA"`` and WISE W1, W2 only where
    ``wise_ph_qual`` starts with ``"AA"`` (NaN otherwise, so those stars fall back to a smaller band
    set); the parallax minus the Gaia zero point (:func:`ocnb.astrometry.parallax_zero_point`:
    Lindegren+2021 where the columns exist, else the release's global QSO offset; spec B1
    [resolution]). A table that already has the canonical columns (e.g. from
    :func:`~ocnb.binaries.simulate_stars`) is returned as it is.
    """
    if {"G", "BP", "RP", "parallax"} <= set(members.columns):
        return members
    need = ["phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "parallax"]
    missing = [c for c in need if c not in members.columns]
    if missing:
        raise ValueError(f"member table lacks {missing}: need Gaia G, BP, RP [mag] and parallax [mas] "
                         "(or the canonical columns G, BP, RP, parallax)")
    out = pd.DataFrame(index=members.index)
    tm = quality_mask(members, "ph_qual", "AAA")
    wise = quality_mask(members, "wise_ph_qual", "AA")
    for band, col in _REAL.items():
        v = members[col].to_numpy(float) if col in members.columns else np.full(len(members), np.nan)
        if band in ("J", "H", "Ks"):
            v = np.where(tm, v, np.nan)
        elif band in ("W1", "W2"):
            v = np.where(wise, v, np.nan)
        out[band] = v
    plx = members["parallax"].to_numpy(float)
    if zero_point:
        from ..astrometry import parallax_zero_point

        z, _, _ = parallax_zero_point(members, release)
        plx = plx - np.where(np.isfinite(z), z, 0.0)
    out["parallax"] = plx
    if "source_id" in members.columns:
        out["source_id"] = members["source_id"].to_numpy()
    return out


def censor_q(q_drawn: np.ndarray, mass_a: np.ndarray) -> np.ndarray:
    """The simulator's rule: q = 0 where the companion q·M_A is below :data:`M_B_MIN`, else q."""
    return np.where(q_drawn * mass_a < M_B_MIN, 0.0, q_drawn)


class BinaryPosterior:
    """One trained NPE for one band set (build with :func:`train_posterior` or :meth:`load`).

    Attributes
    ----------
    npe : ocnb.ml.npe.BoundedNPE
    bands : str
        Band set ("All_Mags", "Gaia_TMASS" or "Gaia").
    prior : dict
        The simulation prior (:meth:`BinaryPrior.to_dict`).
    meta : dict
        Preset, seed, number of simulations, training time, outlier threshold.
    """

    def __init__(self, npe, bands: str, prior: Mapping, meta: Mapping, reference: np.ndarray):
        self.npe = npe
        self.bands = _check_band_set(bands)
        self.prior = dict(prior)
        self.meta = dict(meta)
        self.reference = np.asarray(reference, np.float32)  # standardised features of held-out simulations
        self._tree = None

    def __repr__(self) -> str:
        return (f"BinaryPosterior({self.bands}, preset {self.meta.get('preset')!r}, "
                f"{self.meta.get('n_sims', '?')} simulations, seed {self.meta.get('seed')})")

    # ---------------------------------------------------------------- outliers
    def _nn_distance(self, xs: np.ndarray) -> np.ndarray:
        from scipy.spatial import cKDTree

        if self._tree is None:
            self._tree = cKDTree(self.reference)
        d, _ = self._tree.query(xs, k=1)
        return d

    def outlier_distance(self, obs: pd.DataFrame) -> np.ndarray:
        """Distance (standardised feature units) from each star to the nearest held-out simulation."""
        xs = self.npe.standardise_x(features(obs, self.bands))
        out = np.full(len(xs), np.nan)
        ok = np.all(np.isfinite(xs), axis=1)
        if ok.any():
            out[ok] = self._nn_distance(xs[ok])
        return out

    # ---------------------------------------------------------------- sampling
    def sample(self, obs: pd.DataFrame, n_samples: int = 20_000, seed: int = 0) -> np.ndarray:
        """(n, n_samples, 7) samples: :data:`~ocnb.binaries.THETA_NAMES` (q censored) then ``q_drawn``.

        A model trained on the turn-off proposal (``meta["proposal"]``) has its samples importance-resampled
        back to the Table 1 prior (:mod:`ocnb.binaries.proposal`).
        """
        raw = self.npe.sample(features(obs, self.bands), n_samples=n_samples, seed=seed)
        idx = {k: i for i, k in enumerate(NPE_PARAMS)}
        if self.meta.get("proposal"):
            from .proposal import TurnoffProposal, systematic_resample

            prop = TurnoffProposal.from_dict(self.meta["proposal"])
            log_w = prop.log_weight(raw[..., idx["mass_a"]], raw[..., idx["log_age"]], raw[..., idx["feh"]])
            pick = systematic_resample(log_w, np.random.default_rng([int(seed), 7]))
            raw = np.take_along_axis(raw, pick[..., None], axis=1)
        q = censor_q(raw[..., idx["q_drawn"]], raw[..., idx["mass_a"]])
        cols = [q if k == "q" else raw[..., idx[k]] for k in THETA_NAMES] + [raw[..., idx["q_drawn"]]]
        return np.stack(cols, axis=-1)

    # ---------------------------------------------------------------- persistence
    def to_files(self) -> dict[str, bytes]:
        buf = io.BytesIO()
        np.save(buf, self.reference)
        meta = {"bands": self.bands, "prior": self.prior, "meta": self.meta}
        return {**self.npe.to_files(), "posterior.json": json.dumps(meta, indent=1, default=float).encode(),
                "reference.npy": buf.getvalue()}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], where: str = "model files") -> BinaryPosterior:
        from ..ml.npe import BoundedNPE

        for key in ("posterior.json", "reference.npy"):
            if key not in files:
                raise ValueError(f"{where}: {key} is missing (has {sorted(files)})")
        npe = BoundedNPE.from_files(files, where)
        meta = json.loads(files["posterior.json"])
        ref = np.load(io.BytesIO(files["reference.npy"]))
        return cls(npe, meta["bands"], meta["prior"], meta["meta"], ref)

    def save(self, name: str, root=None):
        from ..store import ModelStore

        return ModelStore(STORE_NAMESPACE, root).save(name, self.to_files(), kind=STORE_KIND,
                                                      kind_version=STORE_KIND_VERSION, meta=self.meta)

    @classmethod
    def load(cls, name: str, root=None) -> BinaryPosterior:
        from ..store import ModelStore

        st = ModelStore(STORE_NAMESPACE, root)
        bundle = st.load(name, kind=STORE_KIND, kind_version=STORE_KIND_VERSION)
        return cls.from_files(bundle.files, str(st.path(name)))


def _prior_tag(prior: BinaryPrior) -> str:
    """'' for the default prior, else a short digest (so different priors never share a cached model)."""
    d = prior.to_dict()
    if d == make_prior().to_dict():
        return ""
    return "-p" + hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _recipe_tag(budget: PosteriorPreset) -> str:
    """Digest of what defines a trained model besides its name: the budget, the flow's settings, the format."""
    from ..ml.npe import NPE_FORMAT

    recipe = {"budget": dataclasses.asdict(budget), "npe": dataclasses.asdict(budget.npe_settings(0)),
              "format": NPE_FORMAT, "kind": STORE_KIND_VERSION, "params": NPE_PARAMS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:8]


def model_name(preset: str, bands: str, seed: int, prior: BinaryPrior | None = None,
               budget: PosteriorPreset | None = None) -> str:
    """Store name of a trained posterior: ``<preset>-<bands>-seed<seed>-<recipe digest>[-p<prior digest>]``.

    The recipe digest changes whenever the preset's budget or the flow's settings change, so a model
    trained with an older recipe is never loaded under a preset's name.
    """
    budget = budget or _preset(preset)[1]
    return f"{preset}-{bands}-seed{int(seed)}-{_recipe_tag(budget)}" + _prior_tag(prior or make_prior())


def _preset(preset) -> tuple[str, PosteriorPreset]:
    """(name, budget) of a preset name, a PosteriorPreset (named by its digest) or None (by FAST mode)."""
    if isinstance(preset, PosteriorPreset):
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(preset), sort_keys=True).encode()).hexdigest()[:8]
        return f"custom{digest}", preset
    if preset is None:
        from .. import config

        preset = "fast" if config.fast_mode() else "laptop"
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return preset, PRESETS[preset]


def train_posterior(preset: str | PosteriorPreset | None = None, bands: str = "All_Mags", seed: int = 0,
                    prior: BinaryPrior | None = None, *, refit: bool = False, cache: bool = True,
                    progress: bool | None = None, sims=None, store_root=None) -> BinaryPosterior:
    """Train (or load from the model store) the NPE of one band set.

    Parameters
    ----------
    preset : {"fast", "laptop", "paper"} or PosteriorPreset, optional
        Training budget (:data:`PRESETS`); default ``fast`` in FAST mode, else ``laptop``.
    bands : {"All_Mags", "Gaia_TMASS", "Gaia"}
        Band set (the parallax is always an input).
    seed : int
        Seeds the simulations and the training (same seed, same model).
    prior : BinaryPrior, optional
        Default :func:`~ocnb.binaries.make_prior` () (Table 1 with the spec's resolutions).
    refit : bool
        Train even if the store holds this model.
    cache : bool
        Load from / save to the model store (``data_home()/models/binaries/<name>``).
    sims : SimulatedStars, optional
        Simulations to train on (default: ``preset.n_sims`` from :func:`~ocnb.binaries.simulate_stars`
        with ``seed``; the three band sets share them, as in the paper). With ``cache`` the model trained on
        them is saved under the preset's name all the same.

    Returns
    -------
    BinaryPosterior
    """
    from ..ml.npe import BoundedNPE
    from .simulate import simulate_stars

    bands = _check_band_set(bands)
    name_preset, pre = _preset(preset)
    prior = prior or make_prior()
    if not isinstance(prior, BinaryPrior):
        raise ValueError(f"prior must be a BinaryPrior from make_prior(), not {type(prior).__name__}")
    name = model_name(name_preset, bands, seed, prior, pre)
    if cache and not refit and sims is None:
        from ..store import BundleError, BundleNotFoundError

        try:
            return BinaryPosterior.load(name, store_root)
        except BundleNotFoundError:
            pass
        except (BundleError, ValueError) as err:
            import warnings

            warnings.warn(f"cached posterior {name} is unusable ({err}); training it again", RuntimeWarning,
                          stacklevel=2)
    proposal = None
    if sims is None:
        draw = None
        if pre.turnoff_fraction > 0:
            from .proposal import TurnoffProposal
            from .simulate import simulation_lattice

            proposal = TurnoffProposal.from_lattice(prior, simulation_lattice(prior), pre.turnoff_fraction)
            draw = proposal.draw(prior)
        sims = simulate_stars(pre.n_sims, prior, bands="All_Mags", seed=seed, progress=progress is not False,
                              draw=draw)
    frame = sims.to_frame() if hasattr(sims, "to_frame") else sims
    theta = frame[list(NPE_PARAMS)].to_numpy(float)
    x = features(frame, bands)
    finite = np.all(np.isfinite(x), axis=1)
    theta, x = theta[finite], x[finite]
    box = prior.bounds
    bounds = {k: box["q" if k == "q_drawn" else k] for k in NPE_PARAMS}
    npe = BoundedNPE(NPE_PARAMS, bounds, feature_names(bands), pre.npe_settings(seed))
    npe.fit(theta, x, progress=progress, desc=f"NPE {bands} ({name_preset})")
    # Outlier threshold from held-out simulations (the flow's validation rows are a random 10 %; a
    # fresh simulation would cost time, and these were never fitted on directly).
    rng = np.random.default_rng(seed + 1)
    rows = rng.permutation(len(x))
    n_ref = min(_OOD_REFERENCE, len(x) // 2)
    ref, probe = rows[:n_ref], rows[n_ref:2 * n_ref]
    xs = npe.standardise_x(x)
    post = BinaryPosterior(npe, bands, prior.to_dict(), {}, xs[ref])
    if probe.size:
        d = post._nn_distance(xs[probe])
        threshold = float(np.quantile(d, _OOD_QUANTILE)) * 1.5
    else:
        threshold = float("inf")
    post.meta = {"preset": name_preset, "seed": int(seed), "n_sims": len(x), "bands": bands,
                 "outlier_threshold": threshold, "history": npe.history_,
                 "fit_seconds": npe.history_.get("fit_seconds"), "name": name,
                 "proposal": None if proposal is None else proposal.to_dict()}
    if cache:
        post.save(name, store_root)
    return post


@dataclasses.dataclass
class StarPosteriors:
    """Posterior samples of every star (from :func:`sample_posteriors`).

    Attributes
    ----------
    samples : ndarray (n_stars, n_samples, 6)
        :data:`~ocnb.binaries.THETA_NAMES` order: M_A [M☉], [Fe/H] [dex], log age [yr], q (0 for
        singles), μ [mag], A_V [mag]; NaN for stars without a posterior.
    q_drawn : ndarray (n_stars, n_samples)
        The mass ratio before censoring (what the flow learns; for SBC).
    band_set : ndarray of str
        Band set used per star ("" where none could be).
    status : ndarray of str
        ``ok``, ``no band set`` (no set with all magnitudes and the parallax finite) or
        ``photometric outlier`` (observables unlike any simulated star).
    outlier_distance : ndarray
        Nearest-simulation distance (standardised units) and ``threshold`` it is compared with.
    """

    samples: np.ndarray
    q_drawn: np.ndarray
    band_set: np.ndarray
    status: np.ndarray
    outlier_distance: np.ndarray
    index: pd.Index
    seconds: float = float("nan")

    @property
    def ok(self) -> np.ndarray:
        return self.status == "ok"

    def to_frame(self) -> pd.DataFrame:
        """One row per star: band set, status, and the 16/50/84th percentiles of every parameter."""
        out = pd.DataFrame({"band_set": self.band_set, "status": self.status,
                            "outlier_distance": self.outlier_distance}, index=self.index)
        with np.errstate(all="ignore"):
            for j, k in enumerate(THETA_NAMES):
                s = self.samples[..., j]
                for p in (16, 50, 84):
                    out[f"{k}_p{p}"] = np.where(self.ok, np.nanpercentile(np.where(self.ok[:, None], s, 0.0), p,
                                                                          axis=1), np.nan)
            single = self.samples[..., THETA_NAMES.index("q")] == 0
            out["p_single"] = np.where(self.ok, single.mean(axis=1), np.nan)
        return out

    def plot(self, star: int = 0, weights=None, fig=None, title: str | None = None):
        """Corner plot of one star's M_A–q posterior and its marginals (M25 Fig. 2).

        ``weights`` (n_samples,), e.g. one row of :func:`ocnb.binaries.cluster_prior.cluster_prior_weights`,
        shows the posterior under the cluster prior instead of the NPE's own.
        """
        import matplotlib.pyplot as plt

        if not self.ok[star]:
            raise ValueError(f"star {star} has no posterior ({self.status[star]})")
        m = self.samples[star, :, THETA_NAMES.index("mass_a")]
        q = self.samples[star, :, THETA_NAMES.index("q")]
        w = np.ones_like(m) if weights is None else np.asarray(weights, float)
        if w.shape != m.shape or not np.any(w > 0):
            raise ValueError(f"weights must be {m.shape} with some > 0 (got shape {w.shape})")
        fig = fig or plt.figure(figsize=(5.0, 4.6))
        gs = fig.add_gridspec(2, 2, width_ratios=(3, 1), height_ratios=(1, 3), hspace=0.05, wspace=0.05)
        ax = fig.add_subplot(gs[1, 0])
        keep = w > 0
        ax.hist2d(m[keep], q[keep], bins=50, weights=w[keep], cmap="Blues")
        ax.set_xlabel("primary mass M_A [M☉]")
        ax.set_ylabel("mass ratio q")
        top = fig.add_subplot(gs[0, 0], sharex=ax)
        top.hist(m[keep], bins=50, weights=w[keep], color="C0")
        top.tick_params(labelbottom=False)
        right = fig.add_subplot(gs[1, 1], sharey=ax)
        right.hist(q[keep], bins=50, weights=w[keep], orientation="horizontal", color="C0")
        right.tick_params(labelleft=False)
        p_single = float(np.sum(w[q == 0]) / np.sum(w))
        top.set_title(title or f"star {self.index[star]} ({self.band_set[star]}): P(q = 0) = {p_single:.2f}",
                      fontsize=9)
        return fig


def _choose_band_sets(obs: pd.DataFrame, available=FALLBACK_ORDER) -> np.ndarray:
    """First set of :data:`FALLBACK_ORDER` (among ``available``) whose magnitudes and parallax are all finite,
    per star ("" if none)."""
    out = np.full(len(obs), "", dtype=object)
    for bands in reversed([b for b in FALLBACK_ORDER if b in available]):  # the last wins: the richest set
        cols = [*BAND_SETS[bands], "parallax"]
        have = np.ones(len(obs), bool)
        for c in cols:
            have &= np.isfinite(obs[c].to_numpy(float)) if c in obs.columns else False
        out[have] = bands
    return out


def sample_posteriors(members: pd.DataFrame, models: Mapping[str, BinaryPosterior] | BinaryPosterior | None = None,
                      n_samples: int = 20_000, seed: int = 0, preset: str | None = None,
                      release: str = "DR3", train_missing: bool = True) -> StarPosteriors:
    """Posterior samples for every star, each with the richest complete band set (spec B3 fall-back).

    Parameters
    ----------
    members : DataFrame
        Real members (Gaia/2MASS/WISE columns, see :func:`observables`) or canonical observables.
    models : mapping or BinaryPosterior, optional
        ``{band set: BinaryPosterior}``; default: :func:`train_posterior` (``preset``) per set needed.
        A single model serves only its own band set (other stars get ``no band set``).
    n_samples : int
        Samples per star (the paper: 20 000).
    seed : int
        Sampling seed.
    release : str
        Gaia release of the parallaxes (zero point).
    train_missing : bool
        Train (or load) the model of a band set that some star needs and ``models`` lacks; with
        ``False`` such a star falls back further, to the next set of the order that ``models`` has
        (its ``band_set`` says which was used).

    Returns
    -------
    StarPosteriors
    """
    import time

    obs = observables(members, release=release)
    if isinstance(models, BinaryPosterior):
        # one model serves the stars complete in its own set (a richer set is complete in a poorer one)
        models = {models.bands: models}
        sets = _choose_band_sets(obs, tuple(models))
    else:
        sets = _choose_band_sets(obs, FALLBACK_ORDER if train_missing or not models else tuple(models))
    models = dict(models or {})
    n, d = len(obs), len(THETA_NAMES)
    samples = np.full((n, n_samples, d), np.nan)
    q_drawn = np.full((n, n_samples), np.nan)
    status = np.where(sets == "", "no band set", "ok").astype(object)
    dist = np.full(n, np.nan)
    t0 = time.perf_counter()
    for bands in FALLBACK_ORDER:
        rows = np.flatnonzero(sets == bands)
        if rows.size == 0:
            continue
        if bands not in models:
            models[bands] = train_posterior(preset, bands=bands, seed=0)
        model = models[bands]
        sub = obs.iloc[rows]
        dist[rows] = model.outlier_distance(sub)
        bad = dist[rows] > model.meta.get("outlier_threshold", np.inf)
        status[rows[bad]] = "photometric outlier"
        good = rows[~bad]
        if good.size:
            s = model.sample(obs.iloc[good], n_samples=n_samples, seed=seed)
            samples[good] = s[..., :d]
            q_drawn[good] = s[..., d]
    return StarPosteriors(samples=samples, q_drawn=q_drawn, band_set=sets.astype(str), status=status.astype(str),
                          outlier_distance=dist, index=obs.index, seconds=time.perf_counter() - t0)
