"""Malhotra et al. 2025 (A&A): stellar masses and unresolved-binary mass ratios by simulation-based inference.

Every cluster member gets a primary mass M_A and a mass ratio q from multi-band photometry and its
parallax by neural posterior estimation on SIMULATED stars and unresolved binaries, then the cluster's
age, distance and extinction are fitted iteratively (spec ``shared/specs/membership_and_binaries.md``
part B; notebook ``notebooks/03_sbi_masses_binaries``).

Sub-modules, one concern each (names are re-exported here and imported on first use, so that
``import ocnb.binaries`` does no work):

``simulate``   the SBI training simulator (Sect. 3.2, Table 1): :func:`make_prior`, :func:`simulate_stars`;
               test clusters (Sect. 4): :func:`simulate_cluster`
``noise``      σ(m) per band and σ_ϖ(G) measured on the shipped real member tables
``posterior``  per-star NPE posteriors (Sects. 3.1–3.2, BayesFlow): :func:`train_posterior`,
               :func:`sample_posteriors` (band-set fall-back, photometric outliers), presets
``cluster_prior`` cluster-prior weights, the q-prior, P_b, weighted modes (Sects. 3.3–3.4)
``cluster_fit``  the iterative cluster fit, two rounds (Sect. 3.5, App. B): :func:`fit_cluster`
``thresholds`` q thresholds from simulated look-alikes (ROC), binary fractions, false-binary rates
               (Sect. 4, App. D): :func:`q_threshold`, :func:`binary_fraction`
``panels``     :class:`StarPosteriorPanel`: click a member on the CMD, see its M_A–q posterior (Fig. 2);
               :class:`BinaryFractionPanel`: binary fraction against primary mass;
               :class:`ClusterFitPanel`: scrub through the iterations of the cluster fit (Fig. 3)
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "simulate": ["BAND_SETS", "FALLBACK_ORDER", "THETA_NAMES", "BinaryPrior", "SimulatedStars", "make_prior",
                 "simulate_stars", "simulate_cluster"],
    "noise": ["MeasuredNoise", "measured_noise"],
    "posterior": ["PRESETS", "BinaryPosterior", "StarPosteriors", "train_posterior", "sample_posteriors",
                  "observables"],
    "cluster_prior": ["cluster_prior_weights", "q_prior_factor", "binary_probability", "weighted_mode",
                      "star_estimates"],
    "cluster_fit": ["ClusterFit", "fit_cluster"],
    "thresholds": ["QThreshold", "q_threshold", "binary_fraction", "classification_rates"],
    "panels": ["StarPosteriorPanel", "BinaryFractionPanel", "ClusterFitPanel"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
