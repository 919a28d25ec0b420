"""Shared machine-learning layer: batched ANN ensembles in Keras (any backend).

Sub-modules (names are re-exported here and imported on first use, so ``import ocnb.ml``
does not import Keras and configures nothing):

``layers``     :class:`BatchedDense`, :func:`build_ensemble_model`, :func:`build_single_model`,
               :func:`extract_member`, :func:`member_sum_mse`
``training``   :class:`PerMemberEarlyStopping`, the training progress bar :class:`TrainingProgress`
               (epochs, loss, val-loss, ETA; ``OCNB_PROGRESS=0`` silences it) and
               :func:`deterministic` (same seed -> same model)
``estimator``  the generic :class:`ANNEnsemble` (labels and their bounds are arguments) and
               :class:`EnsemblePrediction`
``tuning``     keras-tuner glue: :func:`tune`
``npe``        amortised neural posterior estimation on a parameter box with BayesFlow 2:
               :class:`BoundedNPE` (compiled batched sampling, store round trip on any backend)

Coverage, calibration and SBC diagnostics of the predictions are in :mod:`ocnb.diagnostics`;
models are saved through :mod:`ocnb.store`. A paper module adds its own labels, bounds and
presets (e.g. :mod:`ocnb.cmd_ann.ensemble`).
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "layers": ["BatchedDense", "build_ensemble_model", "build_single_model", "extract_member", "member_sum_mse",
               "member_param_count"],
    "training": ["PerMemberEarlyStopping", "TrainingProgress", "MemberBatches", "deterministic",
                 "DETERMINISM_NOTE"],
    "estimator": ["ANNEnsemble", "EnsemblePrediction", "check_label_bounds"],
    "tuning": ["tune", "TuneResult"],
    "npe": ["BoundedNPE", "NPESettings"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
