"""van Groeningen et al. 2023 (A&A 675, A68): open-cluster membership with Deep Sets.

A network learns from many clusters what members look like relative to a small support set of known
members, then scores every candidate of a Gaia cone; a star's membership probability is the fraction of
draws from its astrometric/photometric errors that the network calls a member (mapped to a calibrated
probability by an isotonic map fitted on held-out clusters, an ocnb addition).

Sub-modules, one concern each (names are re-exported here and imported on first use, so that
``ocnb.membership.select_candidates`` does not import Keras):

``cones``        cone preprocessing (zero point, photometric errors) and cluster parameters (spec A2–A4)
``candidates``   the cluster isochrone and the candidate selection of Sect. 2.3 (eqs. 1–10)
``features``     source/cluster features, their normalisation and the training sets (Sect. 3.1–3.2)
``field``        SIMULATED Galactic fields along a cluster's line of sight, real members embedded in them
``model``        :class:`DeepSetsMembership`, the Keras 3 Deep Sets classifier (App. A), training (Sect. 3.3)
``pretrained``   the authors' DS10_v01/v02 weights, ported, and a NumPy reference of their forward pass
``probability``  membership probabilities from error draws (Sect. 3.4), the hand-off member table
``calibration``  an isotonic map of the vote fractions fitted on held-out clusters (an ocnb addition)
``evaluation``   precision/recall/F1, Brier, calibration, the miss breakdown of Sect. 4
``training``     the default trained model of the notebook (simulated fields of the shipped clusters)
``panels``       the notebook's linked views on :class:`ocnb.panels.Panel`

Spec: ``shared/specs/membership_and_binaries.md`` part A; notebook: ``notebooks/02_membership_deepsets``.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "cones": ["ClusterParams", "prepare_cone", "cluster_parameters", "catalogue_parameters", "cone_adql", "query_cone"],
    "candidates": ["CandidateSelection", "cluster_isochrone", "select_candidates"],
    "features": ["FeatureScaler", "PreparedCluster", "prepare_cluster", "source_features", "cluster_features",
                 "membership_features", "build_training_set"],
    "field": ["simulate_field", "embed_cluster", "compare_fields", "plot_field_comparison"],
    "model": ["DeepSetsMembership"],
    "probability": ["MembershipResult", "MembershipInputError", "membership_probability",
                    "members_from_probabilities"],
    "evaluation": ["MembershipEvaluation", "evaluate_members", "crossmatch_ids", "truth_mask", "miss_breakdown",
                   "faint_fraction"],
    "calibration": ["ProbabilityCalibration", "fit_calibration"],
    "training": ["training_clusters", "calibration_clusters", "default_model", "blanco1_test_cluster",
                 "TRAINING_PRESETS"],
    "panels": ["MembershipPanel", "membership_counts"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
