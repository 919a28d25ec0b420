"""How far to trust one cluster estimate: the quality classes of ocnb (issue 14 item 6; Cavallo et al. 2024 Sect. 3.4).

The paper grades an estimate by μ_dist alone (the mean distance of the members from the predicted isochrone,
:func:`ocnb.cmd_ann.mu_dist`). μ_dist only says whether *some* isochrone passes through the stars: a table
of random field stars, uniform noise or a real cluster whose parallaxes were scaled by ten can still earn
gold. :func:`assess` therefore starts from the μ_dist class and lets three independent checks **cap** it.

Quality classes (what the notebook shows)
-----------------------------------------
==========  =======================================================================================
class       meaning
==========  =======================================================================================
0 gold      μ_dist within 1σ of the mode of the reference distribution, and every check passed
1 silver    μ_dist within 2σ, or a check shows mild tension (below)
2 bronze    μ_dist within 3σ, or the CMD distance contradicts the parallax, or the likelihood
            refinement failed / its posterior predictive check rejects the fit
3 wood      μ_dist beyond 3σ, or the table is not like any simulated cluster (out of distribution),
            or its parallaxes show that it is not one cluster
==========  =======================================================================================

The class is ``max(μ_dist class, cap of every failed check)``; ``low_quality`` is set by every failed
check (never by the μ_dist class alone) and ``reasons`` says why, one sentence per check.

=================================================  =========  ===========  ==========================
check                                              caps at    low_quality  constant
=================================================  =========  ===========  ==========================
features out of the simulated distribution (OOD)   wood       yes          :data:`OOD_QUANTILE`
parallax dispersion: "not one cluster"             wood       yes          :data:`DISPERSED_*`
parallax vs CMD distance modulus, |z| > 3          bronze     yes          :data:`PARALLAX_Z_MAX`
parallax vs CMD distance modulus, 2 < |z| ≤ 3      silver     no (note)    :data:`PARALLAX_Z_TENSION`
no usable parallax (no check possible)             silver     no (note)
refinement ``ok`` is False                         bronze     yes
refinement ``ppc_p`` < 0.01                        bronze     yes          :data:`PPC_P_MIN`
=================================================  =========  ===========  ==========================

1. Out of distribution (:class:`OODReference`, :func:`ood_test`)
   The network was trained on SIMULATED clusters only; on an input unlike all of them its output is an
   extrapolation, however confident. The test asks whether the QuadTree feature vector X of the table
   (64 or 190 numbers, exactly the network's input) could come from the model's own simulator.

   *Reference*: ``n_reference + n_heldout`` clusters drawn with the model's generator
   (:func:`~ocnb.cmd_ann.simulate.simulate_clusters`, Table-1 priors, the model's mass function), half of
   them clean (the training distribution) and half with 30 % unresolved binaries and 5 % field
   contaminants (the imperfect clusters of the μ_dist reference, ``_reference_mu``), so that the
   imperfections of real member lists are not what the test detects. Sizes :data:`OOD_SIZES`
   (2,000 + 1,000 for the laptop preset; 300 + 200 for FAST).

   *Score*: each feature is mapped to a normal score through the reference's empirical CDF
   (:data:`OOD_KNOTS` quantile knots, linear in between; beyond the reference range the score continues
   linearly, one unit per reference standard deviation). The QuadTree cuts are bounded, skewed and
   strongly correlated, so a plain z-score puts real clusters far in the tails of a Gaussian that does not
   describe the sample (measured: it rated the old nearby NGC 752 and Ruprecht 147 more unusual than a
   table of uniform noise). On the normal scores a PCA keeps the components that explain
   :data:`OOD_VARIANCE` of the variance (at most ``n_reference / 5``); the score is Hotelling's
   T² in those components plus the residual Q statistic in units of the mean residual variance,
   ``s = Σ_k (p_k² / λ_k) + ‖r‖² / λ_res``: large when X lies far along the simulated manifold *or* off it.

   *Threshold*: the :data:`OOD_QUANTILE` (99.5 %) quantile of the scores of the ``n_heldout`` HELD-OUT
   simulated clusters, so the false-alarm rate on simulated clusters is 0.5 % by construction (±0.2 %
   binomial with 1,000 held-out clusters; measured 0.6 % on 3,000 fresh ones, 1.4–2.6 % on clusters with
   50 % binaries, 15 % field stars and 0.2 mag differential extinction). FAST mode rests on 200 held-out
   clusters: its threshold is rough (3 % false alarms measured on 100 fresh clusters). The p-value of a
   table is (1 + the number of held-out scores at least as large) / (1 + n_heldout).

   What it cannot see: the QuadTree features of a field cone or of random field stars look like those of
   some simulated cluster (old, distant, reddened) for the Gaia-only model (score 0.3–0.5 of the
   threshold); only their parallaxes give them away (check 2). Tables without 2MASS are far outside the
   multi-band model's distribution (empty CMD2/CMD3).

   The reference (normal-score knots, PCA, threshold, held-out scores) is built once per model and cached
   in the data home as an :mod:`ocnb.store` bundle (checksummed, atomic) named
   ``models/cmd_ann/ood-<digest>`` where the digest (:func:`model_digest`) hashes the model's preset,
   bands, QuadTree constants and training/calibration record; a different model never reuses it, a
   corrupted one is rebuilt. It is kept out of ``model.meta`` so that the model bundle, and with it the
   model's identity, does not change after training. Building it takes 8 s (Gaia-only) or 12 s
   (multi-band) for a laptop model on a 2-core CPU, mostly simulation; loading it 5 ms; a test ~1 ms.

2. Parallax (:func:`parallax_consistency`, :func:`parallax_dispersion`)
   *Consistency*: the network's own (CMD) distance modulus μ_ANN ± σ_ANN (p50 and the half-width of the
   calibrated 68 % interval of the raw ensemble) against the members' mean parallax ϖ ± σ_ϖ
   (:class:`ocnb.astrometry.ClusterParallax`, zero-point corrected, σ including systematics). Tested in
   parallax space, z = (ϖ − ϖ(μ_ANN)) / √(σ_ϖ² + (ϖ(μ_ANN) · ln10/5 · σ_ANN)²), ϖ(μ) = 10**(2 − μ/5) mas,
   which stays defined for small or negative mean parallaxes (distant clusters, field tables).
   *Dispersion*: a cluster's parallaxes scatter by their errors plus the cluster's depth; a field cone's
   by a kpc of depth. The table is "not one cluster" when the robust reduced χ² of the parallaxes about
   the mean exceeds :data:`DISPERSED_CHI2_ROBUST`, or more than :data:`DISPERSED_FRAC_REJECTED` of the
   members are clipped as outliers, or a *significant* excess spread reads as a line-of-sight depth
   beyond :data:`DISPERSED_DEPTH_PC` (the ``dispersion`` diagnostic of
   :func:`ocnb.astrometry.cluster_parallax`; the same cuts as its ``"dispersed"`` flags).

3. Refinement (``refine_info`` of ``estimate(..., refine=True)``): ``ok`` False (low ESS, posterior on a
   prior edge) or a posterior predictive p-value ``ppc_p`` below :data:`PPC_P_MIN`.

Measured (laptop models, seed 0; issue 14): none of the 26 real peer clusters is OOD (largest score 0.23 of
the threshold for the Gaia-only model, 0.09 for the multi-band one) or inconsistent (largest |z| 2.2);
1,000 random DR3 stars, a field cone, 500 stars of uniform CMD noise and M67 with parallaxes ×10 all end
bronze or wood with ``low_quality=True`` for both models.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import store
from ..cache import sha256_bytes
from ..config import data_home
from ..errors import MemberTableError

__all__ = [
    "QUALITY_NAMES",
    "OOD_QUANTILE",
    "OOD_VARIANCE",
    "OOD_KNOTS",
    "OOD_SIZES",
    "OOD_IMPERFECT",
    "PARALLAX_Z_MAX",
    "PARALLAX_Z_TENSION",
    "PPC_P_MIN",
    "DISPERSED_CHI2_ROBUST",
    "DISPERSED_FRAC_REJECTED",
    "DISPERSED_DEPTH_PC",
    "OODResult",
    "OODReference",
    "model_digest",
    "ood_reference",
    "ood_test",
    "parallax_consistency",
    "parallax_dispersion",
    "mu_dist_class",
    "assess",
]

#: Names of the classes 0..3 (the same as ``ocnb.cmd_ann.QUALITY_NAMES``).
QUALITY_NAMES = ("gold", "silver", "bronze", "wood")
#: Quantile of the held-out simulated scores used as OOD threshold: 0.5 % false alarms on simulated clusters.
OOD_QUANTILE = 0.995
#: Fraction of the normal-score variance kept by the PCA (the rest enters the residual Q statistic).
OOD_VARIANCE = 0.999
#: Quantile knots of the per-feature normal-score map (fewer when the reference is smaller).
OOD_KNOTS = 201
#: (n_reference, n_heldout) simulated clusters per preset; other presets use the laptop sizes.
OOD_SIZES = {"fast": (300, 200), "laptop": (2000, 1000), "paper": (4000, 2000)}
#: Imperfections of the second half of the reference (as the μ_dist reference of ``train_default``).
OOD_IMPERFECT = {"binaries": True, "binary_fraction": 0.3, "field_fraction": 0.05}
#: Offset of the reference simulation's seed from the model's training seed (training uses +0, the test set
#: +10_007, the μ_dist reference +20_011, the calibration +30_011).
OOD_SEED_OFFSET = 50_021
#: |z| of the parallax–CMD test beyond which the distances contradict each other (bronze, low_quality).
PARALLAX_Z_MAX = 3.0
#: |z| above which (up to PARALLAX_Z_MAX) the two distances are in tension (at best silver, a note).
PARALLAX_Z_TENSION = 2.0
#: Posterior predictive p-value of the refinement below which the refined fit is rejected (bronze, low_quality).
PPC_P_MIN = 0.01
#: "Not one cluster": robust reduced χ² of the parallaxes about the mean (errors ⊕ 10 pc depth) above this...
DISPERSED_CHI2_ROBUST = 4.0
#: ... or more than this fraction of the members clipped as parallax outliers ...
DISPERSED_FRAC_REJECTED = 0.3
#: ... or a significant spread beyond the errors equal to a line-of-sight depth above this [pc].
DISPERSED_DEPTH_PC = 100.0

STORE_KIND = "ocnb.cmd_ann.trust.OODReference"
STORE_KIND_VERSION = 1
_FORMAT = "ocnb-ood-reference/1"
# Training record of a model that is NOT part of its identity: bulky copies of test-set predictions (they
# follow from the weights, which the calibration factors and coverage already pin down) and anything trust
# might store there itself.
_DIGEST_SKIP = ("test_members", "test_labels", "ood", "ood_reference", "trust")
_MEMORY: OrderedDict[str, OODReference] = OrderedDict()
_MEMORY_SIZE = 8


# ---------------------------------------------------------------------------------------------------------------
# Out-of-distribution test
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class OODResult:
    """Out-of-distribution test of one feature vector against a model's simulated clusters.

    Attributes
    ----------
    score : float
        T² + Q of the normal-scored features (dimensionless; held-out simulated clusters average about the
        number of features); ``inf`` when a feature is not finite.
    threshold : float
        The ``quantile`` of the held-out simulated clusters' scores.
    quantile : float
        0.995: the false-alarm rate on simulated clusters is 1 − quantile.
    is_ood : bool
        ``score > threshold`` (or a non-finite feature).
    n_reference : int
        Simulated clusters the normal-score map and the PCA were fitted on.
    p_value : float
        (1 + number of held-out scores ≥ score) / (1 + n_heldout).
    n_heldout : int
        Held-out simulated clusters behind ``threshold`` and ``p_value``.
    top_features : list of (str, float)
        The three features with the largest share of the score (:meth:`OODReference.contributions`).
    reason : str
        One sentence for ``reasons`` when ``is_ood``; empty otherwise.
    """

    score: float
    threshold: float
    quantile: float
    is_ood: bool
    n_reference: int
    p_value: float = float("nan")
    n_heldout: int = 0
    top_features: list = field(default_factory=list)
    reason: str = ""

    @property
    def ratio(self) -> float:
        """score / threshold (> 1: out of distribution)."""
        return float(self.score / self.threshold) if self.threshold > 0 else float("inf")

    def to_dict(self) -> dict:
        """JSON-able dict (infinite score as None)."""
        return {"score": float(self.score) if np.isfinite(self.score) else None, "threshold": float(self.threshold),
                "ratio": self.ratio if np.isfinite(self.ratio) else None, "quantile": float(self.quantile),
                "is_ood": bool(self.is_ood), "n_reference": int(self.n_reference), "p_value": float(self.p_value),
                "n_heldout": int(self.n_heldout), "top_features": [[str(n), float(z)] for n, z in self.top_features],
                "reason": self.reason}


@dataclass
class OODReference:
    """The simulated distribution of a model's input features: normal-score map, PCA and threshold.

    Made by :meth:`fit` (any arrays) or :func:`ood_reference` (a model's own simulated clusters, cached).

    Attributes
    ----------
    knots : ndarray (K, F)
        Per feature, the distinct quantile knots of the reference (NaN-padded; ``n_knots`` valid).
    knot_scores : ndarray (K, F)
        Normal score of each knot (the mean of tied quantile levels).
    n_knots : ndarray (F,) of int
    scale : ndarray (F,)
        Standard deviation of each feature over the reference (floor 1e-6): slope of the tails.
    mean : ndarray (F,)
        Mean normal score (PCA centre).
    components : ndarray (F, k)
    eigenvalues : ndarray (k,)
    residual_variance : float
        Mean variance per dimension of what the k components leave.
    threshold, quantile : float
    heldout_scores : ndarray (n_heldout,)
    n_reference : int
    feature_names : list of str
    info : dict
        How it was made (model digest, preset, bands, seeds, sizes, build time).
    """

    knots: np.ndarray
    knot_scores: np.ndarray
    n_knots: np.ndarray
    scale: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    eigenvalues: np.ndarray
    residual_variance: float
    threshold: float
    quantile: float
    heldout_scores: np.ndarray
    n_reference: int
    feature_names: list
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"OODReference({self.n_features} features, {self.n_reference} reference + {self.n_heldout} held-out "
                f"simulated clusters, {self.components.shape[1]} components, threshold {self.threshold:.4g} at "
                f"q={self.quantile})")

    @property
    def n_features(self) -> int:
        return int(self.scale.size)

    @property
    def n_heldout(self) -> int:
        return int(self.heldout_scores.size)

    # -- fitting -------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, reference, heldout, feature_names=None, quantile: float = OOD_QUANTILE,
            variance: float = OOD_VARIANCE, knots: int = OOD_KNOTS, max_components: int | None = None,
            info: dict | None = None) -> OODReference:
        """Fit the normal-score map and PCA on ``reference``; threshold from the scores of ``heldout``.

        Parameters
        ----------
        reference, heldout : array (n, F)
            Feature vectors of simulated clusters (disjoint sets); all finite.
        feature_names : list of str, optional
        quantile : float
            In (0, 1): the held-out quantile used as threshold (false-alarm rate 1 − quantile).
        variance : float
            In (0, 1]: fraction of the normal-score variance kept by the PCA.
        knots : int
            Quantile knots per feature (≥ 2; at most the number of reference rows).
        max_components : int, optional
            Most PCA components (default ``n_reference // 5``, at least 1).

        Raises
        ------
        ValueError
            Not 2-D, different feature counts, fewer than 10 reference or 10 held-out rows, non-finite
            values, or a setting out of range (the message names it).
        """
        R = _as_matrix(reference, "reference")
        H = _as_matrix(heldout, "heldout")
        if R.shape[1] != H.shape[1]:
            raise ValueError(f"reference has {R.shape[1]} features, heldout {H.shape[1]}")
        for name, A in (("reference", R), ("heldout", H)):
            if A.shape[0] < 10:
                raise ValueError(f"the OOD {name} set needs at least 10 simulated clusters, got {A.shape[0]}")
            if not np.all(np.isfinite(A)):
                bad = np.flatnonzero(~np.all(np.isfinite(A), axis=0))[:5]
                raise ValueError(f"the OOD {name} set has non-finite values in feature column(s) {bad.tolist()}")
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must lie in (0, 1), not {quantile!r}")
        if not 0 < variance <= 1:
            raise ValueError(f"variance must lie in (0, 1], not {variance!r}")
        if int(knots) < 2:
            raise ValueError(f"knots must be ≥ 2, not {knots!r}")
        n, F = R.shape
        names = list(feature_names) if feature_names is not None else [f"f{j}" for j in range(F)]
        if len(names) != F:
            raise ValueError(f"{len(names)} feature names for {F} features")
        from scipy.stats import norm

        K = int(min(knots, n))
        levels = (np.arange(K) + 0.5) / K
        q = np.quantile(R, levels, axis=0)
        z = norm.ppf(levels)
        knot_x = np.full((K, F), np.nan)
        knot_z = np.full((K, F), np.nan)
        n_knots = np.zeros(F, dtype=np.int64)
        for j in range(F):
            # tied knots (a point mass, e.g. an empty 2MASS CMD) get the mean normal score of their levels
            u, inv = np.unique(q[:, j], return_inverse=True)
            knot_x[:u.size, j] = u
            knot_z[:u.size, j] = np.bincount(inv, weights=z) / np.bincount(inv)
            n_knots[j] = u.size
        scale = np.maximum(R.std(axis=0), 1e-6)
        ref = cls(knot_x, knot_z, n_knots, scale, np.zeros(F), np.eye(F, 1), np.ones(1), 1.0, np.inf,
                  float(quantile), np.zeros(0), int(n), names, dict(info or {}))
        Z = ref.normal_scores(R)
        mean = Z.mean(axis=0)
        _, s, vt = np.linalg.svd(Z - mean, full_matrices=False)
        ev = s**2 / max(n - 1, 1)
        total = float(ev.sum())
        kmax = int(max_components) if max_components is not None else max(1, n // 5)
        k = int(np.searchsorted(np.cumsum(ev) / total, variance) + 1) if total > 0 else 1
        k = max(1, min(k, kmax, ev.size))
        rest = float(ev[k:].sum()) / max(F - k, 1)
        ref.mean, ref.components = mean, vt[:k].T.copy()
        ref.eigenvalues = np.maximum(ev[:k], 1e-12 * max(total, 1e-12))
        ref.residual_variance = max(rest, 1e-9 * max(total, 1e-12) / F)
        ref.heldout_scores = np.sort(ref.scores(H))
        ref.threshold = float(np.quantile(ref.heldout_scores, quantile))
        ref.info.update(n_heldout=int(H.shape[0]), n_components=k, variance=float(variance), knots=K)
        return ref

    # -- scoring -------------------------------------------------------------------------------------------
    def normal_scores(self, X) -> np.ndarray:
        """Per-feature normal scores (n, F) through the reference's empirical CDF (linear tails).

        Linear interpolation between the knots (as ``np.interp``, vectorised over all features); below the
        first / above the last knot the score continues with slope 1 / ``scale``.
        """
        X = self._check(X)
        out = np.empty_like(X)
        cols = np.arange(X.shape[1])
        last = self.n_knots - 1
        for a in range(0, X.shape[0], 256):  # chunks keep the (rows, knots, features) comparison small
            x = X[a:a + 256]
            # number of knots ≤ x per feature (NaN padding never counts)
            idx = np.sum(self.knots[None, :, :] <= x[:, None, :], axis=1)
            lo = np.clip(idx - 1, 0, last)
            hi = np.minimum(idx, last)
            x0, x1 = self.knots[lo, cols], self.knots[hi, cols]
            z0, z1 = self.knot_scores[lo, cols], self.knot_scores[hi, cols]
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.where(x1 > x0, z0 + (x - x0) * (z1 - z0) / (x1 - x0), z0)
            first_x, first_z = self.knots[0], self.knot_scores[0]
            last_x, last_z = self.knots[last, cols], self.knot_scores[last, cols]
            z = np.where(x < first_x, first_z + (x - first_x) / self.scale, z)
            out[a:a + 256] = np.where(x > last_x, last_z + (x - last_x) / self.scale, z)
        return out

    def scores(self, X) -> np.ndarray:
        """OOD score (n,) of feature rows: T² in the kept components + residual Q / residual variance.

        Rows with a non-finite feature score ``inf``.
        """
        X = self._check(X)
        finite = np.all(np.isfinite(X), axis=1)
        out = np.full(X.shape[0], np.inf)
        if finite.any():
            out[finite] = self._score_normal(self.normal_scores(X[finite]))
        return out

    def _score_normal(self, Z) -> np.ndarray:
        Z = Z - self.mean
        P = Z @ self.components
        r = Z - P @ self.components.T
        return np.sum(P * P / self.eigenvalues, axis=1) + np.sum(r * r, axis=1) / self.residual_variance

    def test(self, x) -> OODResult:
        """:class:`OODResult` of ONE feature vector (shape (F,) or (1, F))."""
        X = self._check(x)
        if X.shape[0] != 1:
            raise ValueError(f"test takes one feature vector, got {X.shape[0]} rows (use scores() for many)")
        finite = np.isfinite(X[0])
        if not finite.all():
            bad = [self.feature_names[j] for j in np.flatnonzero(~finite)[:4]]
            return OODResult(float("inf"), self.threshold, self.quantile, True, self.n_reference, 0.0,
                             self.n_heldout, [(b, float("nan")) for b in bad],
                             f"{int((~finite).sum())} input feature(s) not finite ({', '.join(bad)}): the network "
                             "never saw such an input")
        Z = self.normal_scores(X)
        s = float(self._score_normal(Z)[0])
        top = [(self.feature_names[j], float(c)) for j, c in self.contributions(Z[0])[:3]]
        n_ge = int(self.heldout_scores.size - np.searchsorted(self.heldout_scores, s, side="left"))
        p = (1 + n_ge) / (1 + self.n_heldout)
        is_ood = bool(s > self.threshold)
        reason = ""
        if is_ood:
            reason = (f"out of distribution: the QuadTree features are unlike the model's simulated clusters (score "
                      f"{s:.4g} > {self.threshold:.4g}, the {100 * self.quantile:g} % quantile of {self.n_heldout} "
                      f"held-out simulated clusters; p = {p:.2g}; most unusual: "
                      + ", ".join(f"{n} ({v:.0%} of the score)" for n, v in top) + ")")
        return OODResult(s, self.threshold, self.quantile, is_ood, self.n_reference, p, self.n_heldout, top, reason)

    def contributions(self, z) -> list[tuple[int, float]]:
        """Share of each feature in the score of one normal-scored row ``z``, largest first: (index, share).

        T² = zᵀ V Λ⁻¹ Vᵀ z splits exactly into z_j (V Λ⁻¹ Vᵀ z)_j, Q into r_j²; the shares sum to 1 (a T² share
        can be negative). An off-manifold table is named by the features that break the correlations, not
        by those that are merely large.
        """
        zc = np.asarray(z, dtype=float) - self.mean
        P = zc @ self.components
        r = zc - P @ self.components.T
        c = zc * ((P / self.eigenvalues) @ self.components.T) + r * r / self.residual_variance
        total = float(c.sum())
        share = c / total if total > 0 else c
        return [(int(j), float(share[j])) for j in np.argsort(-share)]

    def _check(self, X) -> np.ndarray:
        A = np.asarray(X, dtype=float)
        if A.ndim == 1:
            A = A[None, :]
        if A.ndim != 2 or A.shape[1] != self.n_features:
            raise ValueError(f"feature array of shape {np.shape(X)} does not match the OOD reference's "
                             f"{self.n_features} features (the model's QuadTreeFeatures: "
                             f"{'190 multi-band' if self.n_features == 190 else self.n_features})")
        return A

    # -- output --------------------------------------------------------------------------------------------
    @property
    def false_alarm_rate(self) -> float:
        """Fraction of the held-out simulated clusters above the threshold (≈ 1 − quantile)."""
        return float(np.mean(self.heldout_scores > self.threshold)) if self.n_heldout else float("nan")

    def to_frame(self) -> pd.DataFrame:
        """One row: sizes, components, threshold, quantile, false-alarm rate, model digest, build time [s]."""
        return pd.DataFrame([{
            "n_features": self.n_features, "n_reference": self.n_reference, "n_heldout": self.n_heldout,
            "n_components": int(self.components.shape[1]), "threshold": self.threshold, "quantile": self.quantile,
            "false_alarm_rate": self.false_alarm_rate, "model_digest": self.info.get("model_digest"),
            "build_s": self.info.get("build_s")}])

    def plot(self, results: dict | None = None, ax=None):
        """Held-out simulated scores (histogram, log x), the threshold and the scores of ``results``.

        ``results`` maps a label to an :class:`OODResult` (or a score); matplotlib axes returned.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.2))
        h = self.heldout_scores[np.isfinite(self.heldout_scores) & (self.heldout_scores > 0)]
        vals = [getattr(r, "score", r) for r in (results or {}).values()]
        finite = [v for v in vals if np.isfinite(v) and v > 0]
        lo = max(min([h.min(), *finite]) * 0.8, 1e-3)
        hi = max([h.max(), self.threshold, *finite]) * 1.25
        ax.hist(h, bins=np.geomspace(lo, hi, 50), color="0.6", label=f"{self.n_heldout} held-out SIMULATED clusters")
        ax.axvline(self.threshold, color="C3", lw=1.5, label=f"threshold ({100 * self.quantile:g} % quantile)")
        for i, (label, r) in enumerate((results or {}).items()):
            v = getattr(r, "score", r)
            ax.axvline(v if np.isfinite(v) else hi, color=f"C{i % 10}", ls="--", lw=1, label=str(label))
        ax.set(xscale="log", xlabel="OOD score T² + Q [dimensionless]", ylabel="clusters",
               title="Input features vs the simulated training distribution")
        ax.legend(fontsize=7)
        return ax

    # -- persistence ---------------------------------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        import io

        buf = io.BytesIO()
        np.savez(buf, knots=self.knots, knot_scores=self.knot_scores, n_knots=self.n_knots, scale=self.scale,
                 mean=self.mean, components=self.components, eigenvalues=self.eigenvalues,
                 heldout_scores=self.heldout_scores)
        doc = {"format": _FORMAT, "residual_variance": self.residual_variance, "threshold": self.threshold,
               "quantile": self.quantile, "n_reference": self.n_reference, "feature_names": self.feature_names,
               "info": self.info}
        return {"reference.npz": buf.getvalue(), "reference.json": json.dumps(doc, sort_keys=True).encode()}

    @classmethod
    def from_bundle(cls, bundle: store.Bundle) -> OODReference:
        doc = bundle.json("reference.json")
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise store.BundleError(f"OOD reference {bundle.folder}: format {got!r}, expected {_FORMAT!r}",
                                    bundle.folder, "outdated")
        a = bundle.arrays("reference.npz")
        try:
            return cls(a["knots"], a["knot_scores"], a["n_knots"], a["scale"], a["mean"], a["components"],
                       a["eigenvalues"], float(doc["residual_variance"]), float(doc["threshold"]),
                       float(doc["quantile"]), a["heldout_scores"], int(doc["n_reference"]),
                       list(doc["feature_names"]), dict(doc.get("info") or {}))
        except (KeyError, TypeError, ValueError) as err:
            raise store.BundleError(f"OOD reference {bundle.folder} is unusable ({err!r})", bundle.folder,
                                    "corrupt") from None


def _as_matrix(X, name: str) -> np.ndarray:
    A = np.asarray(X, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"the OOD {name} set must be a 2-D array (clusters × features), got shape {A.shape}")
    return A


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def model_digest(model) -> str:
    """SHA-256 identity of a trained model: preset, bands, QuadTree constants and training/calibration record.

    The record (``meta``: sizes, seed, fit time, feature ranges, coverage, calibration factors, μ_dist
    reference) follows from the training data and the weights, so two trainings never share it; the bulky
    copies of the test-set predictions are left out. The same saved model gives the same digest on every load.
    """
    meta = {k: v for k, v in (getattr(model, "meta", None) or {}).items() if k not in _DIGEST_SKIP}
    doc = {"preset": getattr(model, "preset", None), "bands": getattr(model, "bands", None),
           "features": model.features.to_dict(), "meta": meta}
    return sha256_bytes(json.dumps(doc, sort_keys=True, default=_json_default).encode())


def _reference_folder(digest: str) -> Path:
    # the cmd_ann model folder (ocnb.cmd_ann.ensemble.model_dir), spelled out to keep Keras out of this import
    return data_home() / "models" / "cmd_ann" / f"ood-{digest[:16]}"


def _build_reference(model, digest: str, sizes: tuple[int, int] | None = None, seed: int | None = None
                     ) -> OODReference:
    from .simulate import simulate_clusters

    t0 = time.perf_counter()
    preset = getattr(model, "preset", "laptop")
    n_ref, n_held = sizes if sizes is not None else OOD_SIZES.get(preset, OOD_SIZES["laptop"])
    if min(n_ref, n_held) < 10:
        raise ValueError(f"OOD reference sizes {(n_ref, n_held)} too small: at least 10 clusters each")
    seed = int((getattr(model, "meta", None) or {}).get("seed", 0)) + OOD_SEED_OFFSET if seed is None else int(seed)
    mf = getattr(model, "mass_function", "salpeter")
    # half clean (the training distribution), half imperfect; each half split into reference and held-out
    ref_c, held_c = n_ref // 2, n_held // 2
    ref_i, held_i = n_ref - ref_c, n_held - held_c
    clean = simulate_clusters(ref_c + held_c, seed=seed, progress=False, mass_function=mf)
    rough = simulate_clusters(ref_i + held_i, seed=seed + 1, progress=False, mass_function=mf, **OOD_IMPERFECT)
    Xc, Xi = model.features.transform(clean), model.features.transform(rough)
    R = np.vstack([Xc[:ref_c], Xi[:ref_i]])
    H = np.vstack([Xc[ref_c:], Xi[ref_i:]])
    info = {"model_digest": digest, "preset": preset, "bands": getattr(model, "bands", None), "seed": seed,
            "mass_function": str(mf), "imperfect": dict(OOD_IMPERFECT), "simulated_reference": True}
    ref = OODReference.fit(R, H, feature_names=model.features.feature_names, info=info)
    ref.info["build_s"] = time.perf_counter() - t0
    return ref


def ood_reference(model, refit: bool = False, sizes: tuple[int, int] | None = None) -> OODReference:
    """The model's OOD reference: from memory, from the data home, or simulated and cached (once per model).

    Parameters
    ----------
    model : CavalloModel
    refit : bool
        Rebuild even when cached.
    sizes : (int, int), optional
        (n_reference, n_heldout); default :data:`OOD_SIZES` of the model's preset. Other sizes are cached
        under their own name.

    Returns
    -------
    OODReference
        Cached as an :mod:`ocnb.store` bundle in ``data_home()/models/cmd_ann/ood-<digest>``; a partial or
        corrupted bundle is reported (``RuntimeWarning``) and rebuilt, never used.
    """
    digest = model_digest(model)
    key = digest if sizes is None else f"{digest}-{sizes[0]}x{sizes[1]}"
    if not refit and key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    folder = _reference_folder(digest)
    if sizes is not None:
        folder = folder.with_name(f"{folder.name}-{int(sizes[0])}x{int(sizes[1])}")

    def load(path: Path) -> OODReference:
        ref = OODReference.from_bundle(store.load_bundle(path, kind=STORE_KIND, kind_version=STORE_KIND_VERSION))
        if ref.info.get("model_digest") != digest or ref.n_features != model.features.n_features:
            raise store.BundleError(f"OOD reference {path} belongs to another model (digest "
                                    f"{str(ref.info.get('model_digest'))[:16]}, {ref.n_features} features)", path,
                                    "mixed")
        return ref

    def save(ref: OODReference, path: Path) -> None:
        store.save_bundle(path, ref.to_files(), kind=STORE_KIND, kind_version=STORE_KIND_VERSION,
                          meta={"model_digest": digest, "n_reference": ref.n_reference, "n_heldout": ref.n_heldout,
                                "threshold": ref.threshold})

    ref = store.load_or_build(folder, lambda: _build_reference(model, digest, sizes), load, save, refit=refit,
                              what="cached OOD reference")
    _MEMORY[key] = ref
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return ref


def ood_test(model, X) -> OODResult:
    """Out-of-distribution test of one feature vector ``X`` (the network's input, shape (F,) or (1, F))."""
    return ood_reference(model).test(X)


# ---------------------------------------------------------------------------------------------------------------
# Parallax
# ---------------------------------------------------------------------------------------------------------------
def _attr(obj, name: str):
    if not hasattr(obj, name):
        raise TypeError(f"cluster_parallax must look like ocnb.astrometry.ClusterParallax: it has no {name!r} "
                        f"(got {type(obj).__name__})")
    return getattr(obj, name)


def parallax_consistency(dist_mod_ann: float, sigma_ann: float, cluster_parallax, z_max: float = PARALLAX_Z_MAX,
                         z_tension: float = PARALLAX_Z_TENSION) -> dict:
    """z-score between the CMD's distance modulus (the network's) and the members' mean parallax.

    Parameters
    ----------
    dist_mod_ann : float
        Distance modulus of the CMD fit [mag] (the raw ensemble's p50, before any parallax likelihood).
    sigma_ann : float
        Its 1σ uncertainty [mag] (half-width of the calibrated 68 % interval), ≥ 0.
    cluster_parallax : ClusterParallax
        ``parallax`` and ``sigma`` [mas] (zero-point corrected, total error); ``dist_mod()`` and
        ``dist_mod_sigma()`` are reported when present.
    z_max, z_tension : float
        |z| beyond ``z_max``: inconsistent; beyond ``z_tension``: in tension.

    Returns
    -------
    dict
        ``z`` (parallax space, see the module docstring), ``z_dist_mod`` ((μ_ANN − μ_ϖ) / √(σ_ANN² + σ_μϖ²),
        NaN for ϖ ≤ 0), ``delta_dist_mod`` [mag], ``parallax``, ``parallax_sigma``, ``parallax_ann`` [mas],
        ``dist_mod_ann``, ``sigma_ann``, ``dist_mod_parallax``, ``dist_mod_parallax_sigma`` [mag],
        ``consistent`` (|z| ≤ z_max), ``tension`` (z_tension < |z| ≤ z_max), ``z_max``, ``z_tension``.

    Raises
    ------
    ValueError
        Non-finite ``dist_mod_ann``, negative or non-finite ``sigma_ann``, a non-finite parallax or a
        non-positive parallax error.
    TypeError
        ``cluster_parallax`` without ``parallax``/``sigma``.
    """
    mu, s_mu = float(dist_mod_ann), float(sigma_ann)
    if not np.isfinite(mu):
        raise ValueError(f"dist_mod_ann = {dist_mod_ann!r} [mag] must be finite")
    if not (np.isfinite(s_mu) and s_mu >= 0):
        raise ValueError(f"sigma_ann = {sigma_ann!r} [mag] must be finite and ≥ 0")
    plx, s_plx = float(_attr(cluster_parallax, "parallax")), float(_attr(cluster_parallax, "sigma"))
    if not np.isfinite(plx):
        raise ValueError(f"cluster parallax {plx!r} mas is not finite")
    if not (np.isfinite(s_plx) and s_plx > 0):
        raise ValueError(f"cluster parallax error {s_plx!r} mas must be finite and > 0")
    plx_ann = 10.0 ** (2.0 - mu / 5.0)
    sig_plx_ann = plx_ann * math.log(10.0) / 5.0 * s_mu
    z = (plx - plx_ann) / math.hypot(s_plx, sig_plx_ann)
    mu_p = float(cluster_parallax.dist_mod()) if hasattr(cluster_parallax, "dist_mod") else \
        (5.0 * math.log10(100.0 / plx) if plx > 0 else float("nan"))
    s_mu_p = float(cluster_parallax.dist_mod_sigma()) if hasattr(cluster_parallax, "dist_mod_sigma") else \
        (5.0 / math.log(10.0) * s_plx / plx if plx > 0 else float("nan"))
    z_mu = (mu - mu_p) / math.hypot(s_mu, s_mu_p) if np.isfinite(mu_p) and np.isfinite(s_mu_p) else float("nan")
    return {"z": float(z), "z_dist_mod": float(z_mu), "delta_dist_mod": float(mu - mu_p), "parallax": plx,
            "parallax_sigma": s_plx, "parallax_ann": float(plx_ann), "dist_mod_ann": mu, "sigma_ann": s_mu,
            "dist_mod_parallax": mu_p, "dist_mod_parallax_sigma": s_mu_p, "consistent": bool(abs(z) <= z_max),
            "tension": bool(z_tension < abs(z) <= z_max), "z_max": float(z_max), "z_tension": float(z_tension)}


def parallax_dispersion(cluster_parallax) -> dict:
    """Is the member list one cluster? From the parallax dispersion diagnostic of a ClusterParallax.

    Uses ``cluster_parallax.dispersion`` (``chi2_robust``, ``frac_rejected``, ``chi2_red``, ``depth_fit_pc``,
    ``excess_mas``) and ``n_used``, ``parallax``, ``sigma_stat``. Not one cluster when ``chi2_robust`` >
    :data:`DISPERSED_CHI2_ROBUST`, ``frac_rejected`` > :data:`DISPERSED_FRAC_REJECTED`, or the spread beyond
    the errors is significant (reduced χ² above 1 by 3 of its standard deviations, ϖ ≥ 3 σ_stat) and reads as
    a depth above :data:`DISPERSED_DEPTH_PC`.

    Returns
    -------
    dict
        ``is_cluster`` (True / False, None when there is no diagnostic), ``reasons`` (list of str) and the
        diagnostic's numbers.
    """
    disp = dict(getattr(cluster_parallax, "dispersion", None) or {})
    out = {k: disp.get(k) for k in ("chi2_robust", "chi2_red", "frac_rejected", "depth_fit_pc", "excess_mas")}
    if not disp:
        return {**out, "is_cluster": None, "significant": None,
                "reasons": ["no parallax dispersion diagnostic: 'is this one cluster?' not tested"]}

    def num(key):
        v = disp.get(key)
        return float(v) if v is not None and np.isfinite(float(v)) else float("nan")

    reasons = []
    chi2_rob, frac, depth, chi2_red = num("chi2_robust"), num("frac_rejected"), num("depth_fit_pc"), num("chi2_red")
    n_used = int(getattr(cluster_parallax, "n_used", 0) or 0)
    plx, s_stat = float(getattr(cluster_parallax, "parallax", np.nan)), float(getattr(cluster_parallax, "sigma_stat",
                                                                                       np.nan))
    significant = bool(chi2_red > 1 + 3 * math.sqrt(2 / max(n_used - 1, 1)) and plx >= 3 * s_stat)
    if chi2_rob > DISPERSED_CHI2_ROBUST:
        reasons.append(f"robust reduced χ² of the parallaxes {chi2_rob:.1f} > {DISPERSED_CHI2_ROBUST:g} (errors ⊕ "
                       "cluster depth explain a cluster's spread)")
    if frac > DISPERSED_FRAC_REJECTED:
        reasons.append(f"{frac:.0%} of the members are parallax outliers (> {DISPERSED_FRAC_REJECTED:.0%})")
    if significant and depth > DISPERSED_DEPTH_PC:
        reasons.append(f"the parallax spread beyond the errors is a line-of-sight depth of {depth:.0f} pc "
                       f"(> {DISPERSED_DEPTH_PC:g} pc)")
    return {**out, "significant": significant, "is_cluster": not reasons, "reasons": reasons}


# ---------------------------------------------------------------------------------------------------------------
# The class
# ---------------------------------------------------------------------------------------------------------------
_MU_CLASS_CACHE: dict[str, tuple[float, float]] = {}


def mu_dist_class(mu, reference) -> int:
    """μ_dist class 0..3 of the paper (Sect. 3.4), the same rule as :func:`ocnb.cmd_ann.quality_class`.

    Δ = (μ − mode)/σ over the reference (mode: peak of a Gaussian KDE, Scott bandwidth; σ its std); gold
    Δ ≤ 1, silver ≤ 2, bronze ≤ 3, wood beyond or NaN. Kept here so that ``inference`` can import this
    module without a cycle (tests check that both agree); the mode and σ of a reference are computed once.
    """
    ref = np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    if ref.size < 10:
        raise ValueError(f"the μ_dist class needs a reference of at least 10 finite μ_dist values, got {ref.size}")
    key = sha256_bytes(ref.tobytes())
    if key not in _MU_CLASS_CACHE:
        from scipy.stats import gaussian_kde

        grid = np.linspace(ref.min(), ref.max(), 2048)
        _MU_CLASS_CACHE[key] = (float(grid[np.argmax(gaussian_kde(ref)(grid))]), float(np.std(ref)))
    mode, sigma = _MU_CLASS_CACHE[key]
    delta = (float(mu) - mode) / sigma
    if not np.isfinite(delta):
        return 3
    return 0 if delta <= 1 else 1 if delta <= 2 else 2 if delta <= 3 else 3


def _ann_dist_mod(model, prediction) -> tuple[float, float]:
    """p50 and 1σ [mag] of the raw ensemble's distance modulus: half-width of the calibrated 68 % interval.

    The interval is that of :func:`ocnb.diagnostics.calibrated_interval` (p50 ∓ f·(p50 − p16, p84 − p50), f
    the model's calibration factor; raw p16–p84 when the model has none), computed here on one column.
    """
    labels = list(getattr(prediction, "labels", None) or ("log_age", "feh", "a_v", "dist_mod"))
    if "dist_mod" not in labels:
        raise ValueError(f"the prediction has no dist_mod label (labels {labels})")
    members = np.asarray(prediction.members, dtype=float)
    if members.ndim != 3 or members.shape[0] != 1:
        raise ValueError(f"assess takes the prediction of ONE cluster (members of shape (1, n_members, "
                         f"n_labels)), got shape {members.shape}")
    p16, p50, p84 = np.percentile(members[0, :, labels.index("dist_mod")], [16, 50, 84])
    factors = ((getattr(model, "meta", None) or {}).get("calibration") or {}).get("factors") or {}
    f = float(factors.get("dist_mod", 1.0))
    return float(p50), float(max((p84 - p50) * f + (p50 - p16) * f, 0.0) / 2.0)


def assess(model, table, X, prediction, point, mu, cluster_parallax=None, refine_info=None, *,
           mu_quality: int | None = None, ood: OODResult | None = None) -> dict:
    """Quality class of one estimate: the μ_dist class capped by the OOD, parallax and refinement checks.

    Parameters
    ----------
    model : CavalloModel
        Its ``meta["mu_reference"]`` gives the μ_dist class, its simulator the OOD reference.
    table : DataFrame
        The member table used (for the parallax when ``cluster_parallax`` is None).
    X : array (F,) or (1, F)
        The network's input features of ``table``.
    prediction : EnsemblePrediction
        The RAW ensemble output for ``X`` (the CMD's own distance, before any parallax likelihood).
    point : dict
        The final point estimate (``log_age, feh, a_v, dist_mod``), reported as ``point``.
    mu : float
        μ_dist of the final point estimate.
    cluster_parallax : ClusterParallax, optional
        Default :func:`ocnb.astrometry.cluster_parallax` of ``table`` (when it cannot be made: no parallax
        check, at best silver).
    refine_info : dict, optional
        ``estimate(..., refine=True)``'s ``flags["refine"]``: ``ok`` (bool), ``ppc_p`` (float), ``ess``, ``edge``.
    mu_quality : int, optional
        The μ_dist class if already computed (default :func:`mu_dist_class`).
    ood : OODResult, optional
        A precomputed OOD result (default :func:`ood_test`).

    Returns
    -------
    dict
        ``quality`` (0 gold … 3 wood), ``quality_name``, ``quality_mu_dist`` (the paper's class),
        ``low_quality`` (bool), ``reasons`` (list of str: each failed check), ``notes`` (list of str: tension
        and checks not made), ``ood`` (:meth:`OODResult.to_dict`), ``parallax`` (consistency, dispersion and
        the ClusterParallax as dicts; ``checked`` False when no parallax), ``refine`` (``checked``, ``ok``,
        ``ppc_p``), ``caps`` (check -> class cap), ``point``, ``time_s``.
    """
    t0 = time.perf_counter()
    if mu_quality is None:
        mu_quality = mu_dist_class(mu, model.meta["mu_reference"])
    base = int(mu_quality)
    if base not in (0, 1, 2, 3):
        raise ValueError(f"mu_quality must be 0..3, not {mu_quality!r}")
    reasons, notes, caps = [], [], {}
    low = False

    # 1. out of distribution
    res = ood if ood is not None else ood_test(model, X)
    if res.is_ood:
        caps["ood"], low = 3, True
        reasons.append(res.reason or "out of distribution")

    # 2. parallax: one cluster? distance consistent with the CMD's?
    par: dict[str, Any] = {"checked": False}
    cp = cluster_parallax
    if cp is None:
        try:
            from ..astrometry import cluster_parallax as _cluster_parallax

            cp = _cluster_parallax(table)
        except MemberTableError as err:
            notes.append(f"no parallax check: {err}")
    if cp is not None:
        disp = parallax_dispersion(cp)
        par = {"checked": True, "dispersion": disp,
               "cluster_parallax": cp.to_dict() if hasattr(cp, "to_dict") else None}
        if disp["is_cluster"] is False:
            caps["not_a_cluster"], low = 3, True
            reasons.append("not one cluster: " + "; ".join(disp["reasons"]))
        elif disp["is_cluster"] is None:
            notes.extend(disp["reasons"])
        mu_ann, sig_ann = _ann_dist_mod(model, prediction)  # a malformed prediction raises, never a note
        try:
            cons = parallax_consistency(mu_ann, sig_ann, cp)
        except ValueError as err:
            cons = None
            caps["parallax_unusable"] = 1
            notes.append(f"no parallax–CMD check: {err}")
        if cons is not None:
            par["consistency"] = cons
            what = (f"CMD distance modulus {cons['dist_mod_ann']:.2f} ± {cons['sigma_ann']:.2f} mag (ϖ "
                    f"{cons['parallax_ann']:.3f} mas) vs mean parallax {cons['parallax']:.3f} ± "
                    f"{cons['parallax_sigma']:.3f} mas: z = {cons['z']:+.1f}")
            if not cons["consistent"]:
                caps["parallax_inconsistent"], low = 2, True
                reasons.append(f"parallax and CMD disagree: {what} (|z| > {cons['z_max']:g})")
            elif cons["tension"]:
                caps["parallax_tension"] = 1
                notes.append(f"parallax and CMD in tension: {what}")
    else:
        caps["no_parallax"] = 1

    # 3. likelihood refinement
    ref_out: dict[str, Any] = {"checked": refine_info is not None}
    if refine_info is not None:
        ok = refine_info.get("ok", True)
        p = refine_info.get("ppc_p")
        p = float(p) if p is not None else float("nan")
        ref_out.update(ok=None if ok is None else bool(ok), ppc_p=p)
        if ok is False:
            caps["refine_failed"], low = 2, True
            detail = [f"ESS {refine_info['ess']:.0f}" if isinstance(refine_info.get("ess"), (int, float)) else "",
                      "at a prior edge: " + ", ".join(map(str, refine_info["edge"])) if refine_info.get("edge")
                      else ""]
            reasons.append("likelihood refinement not reliable" + (" (" + "; ".join(d for d in detail if d) + ")"
                                                                   if any(detail) else ""))
        if np.isfinite(p) and p < PPC_P_MIN:
            caps["ppc_rejected"], low = 2, True
            reasons.append(f"posterior predictive check rejects the fit (p = {p:.3g} < {PPC_P_MIN:g})")

    quality = max([base, *caps.values()])
    return {"quality": int(quality), "quality_name": QUALITY_NAMES[quality], "quality_mu_dist": base,
            "low_quality": bool(low), "reasons": reasons, "notes": notes, "caps": caps, "ood": res.to_dict(),
            "parallax": par, "refine": ref_out, "point": dict(point) if point is not None else None,
            "time_s": time.perf_counter() - t0}
