"""Cavallo et al. 2024 (AJ 167, 12): open-cluster parameters from QuadTree CMD features and an ANN ensemble.

Sub-modules, one concern each (names are re-exported here and imported on first use, so that
``ocnb.cmd_ann.fit_metallicity_gradient`` does not import Keras):

``simulate``   SIMULATED PARSEC clusters (Sect. 2.2, Table 1): :func:`simulate_clusters`
``features``   QuadTree features of three CMDs (Sect. 3.1): :class:`QuadTreeFeatures`
``ensemble``   the ANN ensemble as one batched Keras model (Sects. 3.2–3.4): :class:`ANNEnsemble`
``inference``  trained bundles and real clusters: :func:`train_default`, :func:`estimate` (fast mode:
               ANN + parallax likelihood; ``refine=True``: likelihood over every member),
               :func:`quality_class`, :func:`mu_dist`
``refine``     the synthetic-CMD likelihood refinement (binaries, field, each star's errors; importance
               sampling with ESS and flags): :func:`refine`, :class:`RefineSettings`
``refine_calibration``  systematic floors of the refined intervals: measured on mismatched SIMULATED clusters,
                        and the scatter between published catalogues' fits of real clusters
``trust``      quality classes beyond μ_dist: out-of-distribution test, parallax–CMD checks (:func:`assess`)
``peers``      reading the ASteCA benchmark's JSON (tables, verdicts, figures)
``gradient``   Table 2 data and fits (Sect. 5) with :mod:`ocnb.stats`: :func:`fit_metallicity_gradient`
``galactic``   Galactic positions and maps (Sect. 5.3)
``tsne``       openTSNE embedding of synthetic vs observed features (Sect. 2.3)
``panels``     the notebook's panels on :class:`ocnb.panels.Panel`: :class:`QuadTreeInspector`,
               :class:`EnsembleIsochronePanel`, :class:`TSNEExplorer`, :class:`GradientPanel`

Notebook: ``notebooks/01_cmd_quadtree_ann.ipynb``. Its first section, "Where the paper is silent",
lists the choices this implementation makes where the paper gives no detail, in short:

* inputs: members with G <= 18; 2MASS J/H used only with S/N > 7 and sigma <= 0.3 mag; the
  parallax input is the plain mean of the members' parallaxes;
* simulation: nearest node of a PARSEC lattice (steps <= 0.05 in log age and [M/H]) with the
  drawn value kept as label; DR3-like Gaia and empirical 2MASS errors; per-star, Teff-dependent
  extinction (dustapprox); a per-cluster mass function for the ``fast``/``laptop`` presets;
* features: one frozen standard deviation per colour/magnitude; stable-sort median splits; empty
  cells repeat their parent's cut; a CMD without stars gives 63 zeros;
* network: Adam 1e-3, batch 128, per-network early stopping, labels scaled to [0, 1] by the
  Table-1 bounds; p50 is the point estimate, intervals calibrated on held-out simulated clusters;
* gradient and maps: astropy Galactocentric frame with R0 = 8.122 kpc and z_sun = 20.8 pc, the
  Table-2 selection of :func:`~ocnb.cmd_ann.gradient.table2_selection`, and the age bins of
  :data:`~ocnb.cmd_ann.galactic.AGE_BINS_MYR`.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "simulate": ["LABELS", "TABLE1_PRIORS", "TABLE1_FEH_CLIP", "SyntheticClusters", "simulate_clusters",
                 "isochrone_lattice"],
    "features": ["QuadTreeFeatures", "quadtree_cuts", "quadtree_batch", "cmd_arrays", "CMD_AXES"],
    "ensemble": ["ANNEnsemble", "BatchedDense", "EnsemblePrediction", "PRESETS", "build_ensemble_model",
                 "build_single_model", "coverage", "coverage_curve", "plot_coverage", "residual_table", "tune"],
    "inference": ["CavalloModel", "ClusterEstimate", "QUALITY_NAMES", "train_default", "estimate",
                 "estimate_many", "mu_dist", "quality_class", "literature_comparison", "compare_models",
                  "real_cluster_check", "LITERATURE_TOLERANCE", "calibrate",
                  "calibrated_interval", "calibrated_coverage"],
    "gradient": ["TABLE2", "GradientFit", "gradient_model", "fit_metallicity_gradient",
                 "table2_selection", "spectroscopic_comparison", "fit_line"],
    "galactic": ["galactocentric", "rgc_with_errors", "galactic_sample", "plot_xy_age_bins", "plot_z_histograms",
                 "age_bin_counts"],
    "tsne": ["embed_features", "TSNEResult", "observed_features"],
    "panels": ["GradientPanel", "TSNEExplorer", "QuadTreeInspector", "EnsembleIsochronePanel", "plot_quadtree",
               "quadtree_segments"],
    "trust": ["assess", "OODResult", "OODReference", "ood_reference", "ood_test", "parallax_consistency",
              "parallax_dispersion", "model_digest", "mu_dist_class"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
