"""SIMULATED open clusters for training the CMD ANN (Cavallo et al. 2024, Sect. 2.2, Table 1).

Everything this module returns is **simulated data**: synthetic simple
stellar populations drawn from PARSEC isochrones, not observations.

Recipe (spec ``cmd_quadtree_ann.md`` §2, with ocnb's own building blocks)
-------------------------------------------------------------------------
1. **Parameters** (Table 1, independent uniform draws): log age U(6.7, 10.1),
   [Fe/H] U(−0.8, 0.6), A_V U(0, 5) mag, dMod U(0, 15) mag and
   log10 N_stars U(1, 3.5), N_stars = round(10^u) (10 … 3162).
2. **Isochrone**: the PARSEC v1.2S grid of :mod:`ocnb.isochrones`
   (:class:`~ocnb.isochrones.IsochroneGrid`, phases up to the early AGB,
   PARSEC label ≤ 7). To serve 50,000 clusters quickly the interpolated
   isochrones are precomputed once on a lattice of spacing ≤ 0.05 in log age
   and [M/H] (:func:`isochrone_lattice`, cached in the data home) and each
   cluster uses the **nearest lattice node**; the labels keep the drawn
   continuous values (label noise ≤ 0.025 dex, rms ≈ 0.014 dex).
   [Fe/H] is treated as PARSEC's scaled-solar [M/H].
   **The grid stops at [M/H] = +0.30**: clusters drawn with [Fe/H] in
   (+0.30, +0.60] — about 21 % of the Table-1 prior — are simulated with the
   +0.30 isochrone while their label keeps the drawn value. A network cannot
   tell these metallicities apart; each such cluster is flagged in
   ``labels["feh_clipped"]`` and ``meta["feh_clipped_fraction"]`` records how
   many were affected. This clip is allowed up to :data:`TABLE1_FEH_CLIP`
   (0.30 dex above the grid, none below it); a prior or ``params`` value
   beyond it, and any log age outside the grid (6.0–10.2), raises
   :class:`~ocnb.errors.IsochroneRangeError` instead of labelling clusters
   with values their isochrone does not have. Pass
   ``priors={..., "feh": (-0.8, 0.3)}`` to avoid the clip.
3. **Masses**: Salpeter IMF, dN/dm ∝ m^−2.35, between the isochrone's
   smallest and largest initial mass (the paper; ``mass_function="salpeter"``);
   every quantity is interpolated linearly in initial mass between isochrone
   points. ``mass_function="kroupa"`` bends the slope to 1.3 below 0.5 M☉, and
   ``"varied"`` draws a present-day mass function per cluster: slope α_low ~
   U(−0.5, 2.35) below a break mass m_b ~ U(0.3, 1.0) M☉, Salpeter above
   (labels ``mf_alpha_low``, ``mf_m_break``). Why: real member lists hold far
   fewer faint stars than Salpeter predicts (IMF turnover, evaporation of
   low-mass stars, faint-end incompleteness): the median G of the Pleiades
   members is 15.8, a Salpeter Pleiades gives 16.8, a Kroupa one 16.0. A
   network trained on Salpeter clusters reads that deficit as age and
   metallicity (a Salpeter-trained ensemble puts a Kroupa Pleiades 0.45 dex
   too old); training on ``"varied"`` clusters takes the luminosity function
   away as an age clue. For speed the IMF is sampled
   only on the isochrone segments that can reach the magnitude cut (noiseless
   G ≤ 18 + margin, the margin covering noise, binaries, differential
   extinction and field-star distances); masses outside cannot pass the cut,
   so the surviving stars are an unbiased sample of the full IMF.
4. **Photometry**: m = M + dMod + A_V · k_band(Teff, A_V) for G, BP, RP, J, H
   with k_band from :func:`ocnb.photometry.extinction_ratio` evaluated **per
   star** at its own Teff (dustapprox, Gordon+2023 law, R_V = 3.1; the paper
   used a Cardelli+89 law through pysvo).
5. **Errors** (:class:`ocnb.photometry.PhotometricErrorModel`): Gaussian noise
   σ(band, m_true) in every band (Gaia: DPAC spline; 2MASS: empirical fit to
   real members). Reported errors are σ at the *observed* magnitude, as in the
   catalogues. 2MASS S/N = 1.0857/σ; a 2MASS band is *usable* when S/N > 7
   (quality letter A or B) and σ ≤ 0.3 mag — the paper's cuts; the letters
   are reproduced in :meth:`SyntheticClusters.cluster` (``ph_qual``), and on
   real M67 members the letters A/B coincide with σ < 1.0857/7.
6. **Cut and N_stars**: stars are kept if observed G ≤ 18; N_stars counts
   **survivors** (it mimics an observed member count). Stars are drawn in
   batches until N_stars survive. A parameter vector whose isochrone cannot
   (practically) reach G ≤ 18 — no point with noiseless G ≤ 18, or less than
   a 10⁻³ chance for a sampled star to pass — is **redrawn**; the rejection
   rate is recorded in ``meta`` (it slightly reshapes the effective prior,
   removing faint = old, distant, extinguished corners).
7. **Parallax**: per star ϖ_true = 1000/d [mas] = 10^(2 − dMod/5) plus
   Gaussian noise of the typical Gaia DR3 σ_ϖ at the star's observed G
   (:func:`ocnb.photometry.parallax_error`). The cluster's ``parallax`` is the
   unweighted **mean of its stars' parallaxes** (what is done with real
   members, spec §1) and ``parallax_error`` = sqrt(Σσ_i²)/N its uncertainty;
   ``parallax_true`` keeps 1000/d. ``parallax_noise=False`` gives the paper's
   noiseless parallax.

Options the paper lists as future work (off by default; for robustness studies)
-------------------------------------------------------------------------------
``binaries``: a fraction ``binary_fraction`` of the stars are unresolved
binaries with a flat mass ratio q ~ U(0, 1); the companion's fluxes (from the
same isochrone, extinguished at its own Teff) are added in every band; a
companion below the isochrone's lowest mass adds no light.
``differential_extinction`` (mag): each star's A_V is A_V + U(−δ, +δ),
clipped at 0.
``field_fraction``: that fraction of each cluster's N_stars are field
contaminants (flag ``is_field``): stars of one older field population per
cluster (log age U(8, 10), [M/H] U(−0.6, 0.2)) along the same line of sight,
each at its own distance modulus dMod + U(−1, +1) with extinction scaled as
A_V · 10^(ΔdMod/5) (dust ∝ distance). They also enter the cluster's mean
parallax, as contaminants do in real member lists. A deliberately simple model.

The engine is the shared, generic :mod:`ocnb.sim` (:func:`ocnb.sim.simulate_populations`);
this module supplies the paper's priors, labels and defaults. Every name it
exported before the move is re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..sim import (
    FIELD_DMOD_SPREAD,
    FIELD_LOG_AGE,
    FIELD_MH,
    G_MAX,
    MASS_FUNCTIONS,
    MIN_SURVIVAL,
    SALPETER_ALPHA,
    SIGMA_A,
    SIGMA_B,
    SIGMA_C,
    SIM_BANDS,
    TWOMASS_MAX_SIGMA,
    TWOMASS_MIN_SNR,
    IsochroneLattice,
    SyntheticClusters,
    isochrone_lattice,
    simulate_populations,
    twomass_quality_letter,
    twomass_snr,
    twomass_usable,
)
from ..sim.mass_function import broken_power_law_integral as _mass_function_integral  # noqa: F401
from ..sim.mass_function import broken_power_law_inverse as _mass_function_inverse  # noqa: F401
from ..sim.mass_function import salpeter_integral as _salpeter_integral  # noqa: F401
from ..sim.mass_function import salpeter_inverse as _salpeter_inverse  # noqa: F401

__all__ = [
    "LABELS",
    "MASS_FUNCTIONS",
    "TABLE1_PRIORS",
    "TABLE1_FEH_CLIP",
    "IsochroneLattice",
    "SyntheticClusters",
    "isochrone_lattice",
    "simulate_clusters",
    "twomass_snr",
    "twomass_usable",
    "twomass_quality_letter",
    # constants of the engine (ocnb.sim), importable from here as before the move
    "FIELD_DMOD_SPREAD", "FIELD_LOG_AGE", "FIELD_MH", "G_MAX", "MIN_SURVIVAL", "SALPETER_ALPHA",
    "SIGMA_A", "SIGMA_B", "SIGMA_C", "SIM_BANDS", "TWOMASS_MAX_SIGMA", "TWOMASS_MIN_SNR",
]

#: Table 1 of Cavallo et al. (2024): uniform priors (low, high) of the synthetic clusters.
TABLE1_PRIORS = {
    "log_age": (6.7, 10.1),
    "feh": (-0.8, 0.6),
    "a_v": (0.0, 5.0),
    "dist_mod": (0.0, 15.0),
    "log_n": (1.0, 3.5),
}
#: Network targets, in output order.
LABELS = ("log_age", "feh", "a_v", "dist_mod")
#: How far (dex) [Fe/H] may lie below / above the PARSEC grid's [M/H] range (−2.19…+0.30) and be
#: simulated with the edge isochrone (flagged ``feh_clipped``): Table 1 reaches +0.60, 0.30 dex above it.
TABLE1_FEH_CLIP = (0.0, 0.30)
_GENERATOR = "ocnb.cmd_ann.simulate.simulate_clusters (Cavallo et al. 2024, Sect. 2.2)"


def simulate_clusters(n: int, seed: int = 0, priors: Mapping[str, tuple] = TABLE1_PRIORS, grid=None,
                      binaries: bool = False, binary_fraction: float = 0.3,
                      differential_extinction: float = 0.0, field_fraction: float = 0.0,
                      progress: bool = True, *, params=None, lattice_step: float = 0.05,
                      error_model=None, parallax_noise: bool = True, g_max: float = G_MAX,
                      law: str = "G23", mass_function="salpeter",
                      feh_clip=TABLE1_FEH_CLIP) -> SyntheticClusters:
    """Simulate ``n`` SIMULATED open clusters (Cavallo+2024 Sect. 2.2); see the module docstring.

    A thin layer over :func:`ocnb.sim.simulate_populations` with the paper's
    Table-1 priors and [Fe/H] clip; same seed and arguments → the same clusters
    as before the engine moved to :mod:`ocnb.sim`, bit for bit.

    Parameters
    ----------
    n : int
        Number of clusters (the paper: 50,000). Ignored when ``params`` is given.
    seed : int
        Seed of all random draws (same seed and arguments → same clusters).
    priors : dict
        Uniform priors (low, high) for ``log_age, feh, a_v, dist_mod, log_n``
        (:data:`TABLE1_PRIORS`); low == high fixes a parameter. log_age must lie
        in the PARSEC grid (6.0–10.2), feh in −2.19…+0.30 widened by ``feh_clip``,
        a_v and dist_mod ≥ 0 mag, log_n ≥ 0.
    grid : IsochroneGrid, optional
        PARSEC grid (default :func:`ocnb.isochrones.default_grid`).
    binaries, binary_fraction : bool, float
        Unresolved binaries with flat mass ratio (future work in the paper; off); fraction in [0, 1].
    differential_extinction : float
        Half-width δ ≥ 0 (mag) of a uniform per-star A_V spread (off: 0).
    field_fraction : float
        Fraction in [0, 1) of each cluster's N_stars that are field contaminants (off: 0).
    progress : bool
        Show a progress bar (:func:`ocnb.parallel.progress`).
    params : DataFrame or dict, optional
        Explicit per-cluster ``log_age, feh, a_v, dist_mod, n_stars`` instead of
        prior draws (e.g. an M67-like cluster), optionally ``mf_m_break,
        mf_alpha_low``; other columns, NaN/inf, A_V < 0, dMod < 0, n_stars not a
        whole number ≥ 1 and out-of-grid ages/metallicities raise. Non-viable
        rows raise ValueError.
    lattice_step : float
        Isochrone lattice spacing in log age and [M/H] (≤ 0.05 recommended).
    error_model : PhotometricErrorModel, optional
        Default ``PhotometricErrorModel()`` (DPAC spline + empirical 2MASS).
    parallax_noise : bool
        Per-star Gaia parallax noise (default True; False = the paper's exact 1000/d).
    g_max : float
        Magnitude cut on observed G (18).
    law : {"G23", "F99"}
        dustapprox extinction law.
    mass_function : {"salpeter", "kroupa", "varied"} or dict
        Stellar mass function (module docstring, step 3): the paper's Salpeter slope, a
        Kroupa-like break at 0.5 M☉, or a per-cluster break mass and low-mass slope drawn from
        ``MASS_FUNCTIONS["varied"]``; a dict ``{"m_break": (lo, hi), "alpha_low": (lo, hi)}``
        sets other ranges. ``params`` may carry ``mf_m_break``/``mf_alpha_low`` columns.
    feh_clip : float or (float, float)
        How far (dex) [Fe/H] may lie below / above the grid and be simulated with the edge
        isochrone, flagged in ``labels["feh_clipped"]`` (default :data:`TABLE1_FEH_CLIP`).

    Returns
    -------
    SyntheticClusters

    Raises
    ------
    IsochroneRangeError
        A log_age or [Fe/H] prior or ``params`` value outside the grid (beyond ``feh_clip``);
        the message names the prior or rows, the value and the allowed range.
    ValueError
        Any other bad argument, named with its value and allowed range.
    """
    sc = simulate_populations(
        n, seed, priors=priors, grid=grid, binaries=binaries, binary_fraction=binary_fraction,
        differential_extinction=differential_extinction, field_fraction=field_fraction, progress=progress,
        params=params, lattice_step=lattice_step, error_model=error_model, parallax_noise=parallax_noise,
        g_max=g_max, law=law, mass_function=mass_function, feh_clip=feh_clip)
    sc.meta["generator"] = _GENERATOR
    return sc
