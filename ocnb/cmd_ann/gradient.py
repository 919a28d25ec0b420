"""Bayesian straight lines with errors on both axes (Cavallo et al. 2024, Sects. 5.1-5.2).

One model serves both validations of the ANN metallicities:

* the radial metallicity gradient (Sect. 5.2, Fig. 13, Table 2):
  [Fe/H] = alpha * R_GC + beta with intrinsic scatter eps, priors
  alpha ~ N(-0.068, 0.1) dex/kpc, beta ~ N(0.5, 1) dex, eps ~ HalfCauchy(1);
* ANN [Fe/H] against the spectroscopic [Fe/H] of Spina et al. (2022)
  (Sect. 5.1, Fig. 12): same model, alpha ~ N(1, 1), beta ~ N(0, 1) dex.

The model (Sects. 5.1-5.2)::

    x_true_i ~ Normal(x_i, sigma_x_i)
    y_i      ~ Normal(alpha * x_true_i + beta, sqrt(sigma_y_i**2 + eps**2))

is sampled by default in its exact marginal form, with x_true integrated out::

    y_i ~ Normal(alpha * x_i + beta, sqrt(sigma_y_i**2 + alpha**2 * sigma_x_i**2 + eps**2))

(same posterior for alpha, beta, eps; no latent variable per cluster, a little
faster). ``marginal=False`` keeps the latent x_true.

:func:`table2_selection` applies the selection that reproduces Table 2 from the
shipped catalogue (our reading of Sect. 5.2): median age > 500 Myr (logAge50 > 8.699), gold
(``Quality == 0``), 5 < ``Rgc`` < 12 kpc, Hunt & Reffert's ``CMDCl50`` > 0.5
matched by name; errors are half the 16-84 percentile widths on both axes.
Result: N = 839 and alpha = -0.048, beta = 0.43, eps = 0.314, as in Table 2.

The model, the sampler and the result object are the generic ones of :mod:`ocnb.stats`
(:func:`ocnb.stats.fit_line`); this module keeps Cavallo's data: Table 2, the priors, the
cuts, the spectroscopic comparison. PyMC is imported on the first fit, never on import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..stats import line as _line
from ..stats.line import FAST_BOUNDS, FAST_SAMPLER, FULL_BOUNDS, PARAMS, LineFit, configure_pytensor
from .galactic import (
    R0_KPC,
    Z_SUN_KPC,
    _find_col,
    _name_column,
    _need,
    catalog_key,
    hunt_cmd_class,
    rgc_with_errors,
)

__all__ = [
    "FAST_BOUNDS",
    "FAST_SAMPLER",
    "FULL_BOUNDS",
    "FULL_SAMPLER",
    "GRADIENT_PRIORS",
    "SPECTRO_PRIORS",
    "TABLE2",
    "TABLE2_CI68",
    "TABLE2_REFERENCE",
    "GradientFit",
    "SpectroscopicComparison",
    "apply_cuts",
    "configure_pytensor",
    "fit_line",
    "fit_metallicity_gradient",
    "gradient_model",
    "gradient_table",
    "spectroscopic_comparison",
    "spectroscopic_sample",
    "table2_selection",
]

#: Cavallo et al. (2024), Table 2: posterior mean and sigma of the radial [Fe/H] gradient fit.
TABLE2 = {"alpha": (-0.048, 0.009), "beta": (0.43, 0.08), "eps": (0.313, 0.009)}
#: Table 2's 68 % credible intervals.
TABLE2_CI68 = {"alpha": (-0.057, -0.039), "beta": (0.35, 0.51), "eps": (0.303, 0.322)}
TABLE2_REFERENCE = (
    "Cavallo et al. 2024, AJ 167, 12, Sect. 5.2, Table 2 (alpha in dex/kpc, beta and eps in dex)"
)
TABLE2_N = 839  # not in the paper: what table2_selection() selects from the shipped catalogue

#: Priors of the gradient fit (Sect. 5.2): (mu, sd) of alpha [dex/kpc] and beta [dex]; HalfCauchy scale of eps.
GRADIENT_PRIORS = {"alpha": (-0.068, 0.1), "beta": (0.5, 1.0), "eps_beta": 1.0}
#: Priors of the ANN-vs-spectroscopy fit (Sect. 5.1).
SPECTRO_PRIORS = {"alpha": (1.0, 1.0), "beta": (0.0, 1.0), "eps_beta": 1.0}
#: The paper's sampler: 10 000 NUTS samples per chain, half burn-in; 4 chains and target_accept 0.9 (our choice).
FULL_SAMPLER = {"draws": 5000, "tune": 5000, "chains": 4}
# FAST mode (OCNB_FAST=1) uses ocnb.stats.FAST_SAMPLER (2 chains x 1000 tune / 2000 draws) and judges convergence
# with ocnb.stats.FAST_BOUNDS (r_hat < 1.05, bulk ESS > 400); full runs keep r_hat < 1.01 (FULL_BOUNDS).


# ---------------------------------------------------------------------------
# data: R_GC and [Fe/H] with errors, and the paper's cuts
# ---------------------------------------------------------------------------
def _half_width(df: pd.DataFrame, what: str) -> np.ndarray:
    return (df[_need(df, what, 84)].to_numpy(float) - df[_need(df, what, 16)].to_numpy(float)) / 2.0


def gradient_table(
    catalog: pd.DataFrame | None = None,
    hunt: pd.DataFrame | None = None,
    name_match: str = "spec",
    r0: float = R0_KPC,
    z_sun: float = Z_SUN_KPC,
) -> pd.DataFrame:
    """Every cluster of ``catalog`` with the gradient-fit columns, before any cut.

    Parameters
    ----------
    catalog : DataFrame, optional
        Default: the published CAVALLO2024 catalogue. Our own estimates work
        too: ``name`` plus [Fe/H] and dMod 16/50/84 percentiles (spellings
        ``feh_50``/``FeH_50``/``[Fe/H]50``, ``dMod_50``/``dist_mod_50``...),
        log age (median) and quality where the cuts need them; RA/Dec are
        taken from HR23 by name when missing.
    hunt : DataFrame, optional
        HR23 table for ``CMDCl50`` (default ``load_catalog("HUNT2023")``).
    name_match : {"spec", "resolve"}
        How names are matched to HR23, see :func:`~ocnb.cmd_ann.galactic.catalog_key`.

    Returns
    -------
    DataFrame
        ``name, R, sigma_R, feh, sigma_feh`` (kpc, dex; sigma = half the
        16-84 width) followed by ``log_age, quality, cmd_class, R_GC_calc``.
        ``R`` is the catalogue's ``Rgc`` where the table has one (equal to
        ``R_GC_calc`` within 0.5 pc for CAVALLO2024), else ``R_GC_calc``.
    """
    if catalog is None:
        from ..datasets import load_catalog

        catalog = load_catalog("CAVALLO2024")
    rg = rgc_with_errors(catalog, r0=r0, z_sun=z_sun, hunt=hunt)
    rgc_col = _find_col(catalog, "rgc")
    R = catalog[rgc_col].to_numpy(float) if rgc_col else rg["R_GC"].to_numpy()
    age_col, q_col = _find_col(catalog, "log_age", 50), _find_col(catalog, "quality")
    out = pd.DataFrame(
        {
            "name": catalog["name"].to_numpy(),
            "R": R,
            "sigma_R": rg["sigma_R"].to_numpy(),
            "feh": catalog[_need(catalog, "feh", 50)].to_numpy(float),
            "sigma_feh": _half_width(catalog, "feh"),
            "log_age": catalog[age_col].to_numpy(float) if age_col else np.nan,
            "quality": catalog[q_col].to_numpy() if q_col else np.nan,
            "cmd_class": hunt_cmd_class(catalog, hunt, how=name_match).to_numpy(),
            "R_GC_calc": rg["R_GC"].to_numpy(),
        },
        index=catalog.index,
    )
    out.attrs.update(
        source=catalog.attrs.get("catalog", "user table"),
        name_match=name_match,
        r0_kpc=r0,
        z_sun_kpc=z_sun,
        has_age=age_col is not None,
        has_quality=q_col is not None,
    )
    return out


def apply_cuts(
    table: pd.DataFrame,
    min_log_age: float | None = 8.699,
    quality: Iterable[int] | None = (0,),
    r_range: tuple[float, float] | None = (5.0, 12.0),
    cmd_min: float | None = 0.5,
) -> pd.DataFrame:
    """The paper's cuts on a :func:`gradient_table` (all strict inequalities; None skips a cut).

    ``attrs["counts"]`` records the rows left after each cut, in order.
    """
    keep = np.isfinite(table["R"].to_numpy(float)) & np.isfinite(table["feh"].to_numpy(float))
    counts = {"catalogue": len(table)}
    if min_log_age is not None:
        keep &= table["log_age"].to_numpy(float) > min_log_age
        counts["age"] = int(keep.sum())
    if quality is not None:
        keep &= np.isin(table["quality"].to_numpy(), list(quality))
        counts["quality"] = int(keep.sum())
    if r_range is not None:
        R = table["R"].to_numpy(float)
        keep &= (r_range[0] < R) & (r_range[1] > R)
        counts["R_GC"] = int(keep.sum())
    if cmd_min is not None:
        keep &= table["cmd_class"].to_numpy(float) > cmd_min
        counts["cmd_class"] = int(keep.sum())
    out = table[keep].copy()
    out.attrs.update(table.attrs)
    out.attrs.update(
        counts=counts,
        cuts={
            "min_log_age": min_log_age,
            "quality": None if quality is None else tuple(sorted(quality)),
            "r_range": r_range,
            "cmd_min": cmd_min,
        },
    )
    return out


def table2_selection(
    catalog: pd.DataFrame | None = None,
    hunt: pd.DataFrame | None = None,
    min_log_age: float | None = 8.699,
    quality: Iterable[int] | None = (0,),
    r_range: tuple[float, float] | None = (5.0, 12.0),
    cmd_min: float | None = 0.5,
    name_match: str = "spec",
    r0: float = R0_KPC,
    z_sun: float = Z_SUN_KPC,
) -> pd.DataFrame:
    """The Table 2 sample: old, gold, 5 < R_GC < 12 kpc, HR23 CMD class > 0.5 (Sect. 5.2).

    From the shipped CAVALLO2024 catalogue: 6140 -> 1199 (logAge50 > 8.699)
    -> 1119 (gold) -> 1047 (5 < Rgc < 12) -> 839 (CMDCl50 > 0.5).
    See :func:`gradient_table` for the columns and for using our own estimates.
    """
    table = gradient_table(catalog, hunt, name_match=name_match, r0=r0, z_sun=z_sun)
    if quality is not None and not table.attrs["has_quality"]:
        raise KeyError("the table has no quality column: pass quality=None to skip the gold cut")
    if min_log_age is not None and not table.attrs["has_age"]:
        raise KeyError("the table has no log-age column: pass min_log_age=None to skip the age cut")
    return apply_cuts(table, min_log_age=min_log_age, quality=quality, r_range=r_range, cmd_min=cmd_min)


# ---------------------------------------------------------------------------
# model and fit (ocnb.stats.line with the paper's priors and sampler)
# ---------------------------------------------------------------------------
def _priors(priors: Mapping | None, default: Mapping) -> dict:
    p = {**default, **(priors or {})}
    unknown = set(p) - {"alpha", "beta", "eps_beta"}
    if unknown:
        raise _line.LineFitInputError(
            f"unknown prior(s) {sorted(unknown)}; use alpha=(mu, sd), beta=(mu, sd), eps_beta"
        )
    return p


def gradient_model(x, sigma_x, y, sigma_y, priors: Mapping | None = None, marginal: bool = True):
    """:func:`ocnb.stats.line_model` with the gradient priors of Sect. 5.2 by default.

    ``priors``: ``alpha=(mu, sd)``, ``beta=(mu, sd)``, ``eps_beta``; missing keys take
    :data:`GRADIENT_PRIORS` (alpha ~ N(-0.068, 0.1) dex/kpc, beta ~ N(0.5, 1) dex, eps ~ HalfCauchy(1)).
    """
    return _line.line_model(x, sigma_x, y, sigma_y, priors=_priors(priors, GRADIENT_PRIORS), marginal=marginal)


def _sampler_settings(draws, tune, chains):
    """(settings, fast): the FAST preset in FAST mode, else the paper's 4 x 5000/5000."""
    return _line.sampler_settings(draws, tune, chains, full=FULL_SAMPLER)


def fit_line(
    x,
    sigma_x,
    y,
    sigma_y,
    priors: Mapping | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    target_accept: float = 0.9,
    seed: int = 0,
    progressbar: bool | None = None,
    marginal: bool = True,
    cores: int | None = None,
    data: pd.DataFrame | None = None,
    kind: str = "line",
    labels=("x", "y"),
    default_priors: Mapping = GRADIENT_PRIORS,
    bounds: Mapping | None = None,
) -> GradientFit:
    """:func:`ocnb.stats.fit_line` with the paper's defaults (priors, 4 x 5000/5000 sampler); a :class:`GradientFit`.

    ``priors`` override ``default_priors`` key by key; see :func:`fit_metallicity_gradient`.
    """
    fit = _line.fit_line(
        x,
        sigma_x,
        y,
        sigma_y,
        priors=_priors(priors, default_priors),
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
        seed=seed,
        progressbar=progressbar,
        marginal=marginal,
        cores=cores,
        data=data,
        kind=kind,
        labels=labels,
        full_sampler=FULL_SAMPLER,
        bounds=bounds,
    )
    return GradientFit.from_fit(fit)


def fit_metallicity_gradient(
    data: pd.DataFrame | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    target_accept: float = 0.9,
    seed: int = 0,
    priors: Mapping | None = None,
    progressbar: bool | None = None,
    marginal: bool = True,
    cores: int | None = None,
    bounds: Mapping | None = None,
) -> GradientFit:
    """Fit the radial [Fe/H] gradient (Sect. 5.2, Table 2).

    Parameters
    ----------
    data : DataFrame, optional
        Columns ``R, sigma_R`` [kpc] and ``feh, sigma_feh`` [dex]; default
        :func:`table2_selection` (the shipped catalogue, N = 839).
    draws, tune, chains : int, optional
        Default: the paper's 4 chains x 5000 tune / 5000 draws, or
        :data:`ocnb.stats.FAST_SAMPLER` (2 x 1000 tune / 2000 draws) in FAST mode
        (``OCNB_FAST=1``), which the result's ``notes`` then state.
    target_accept, seed : NUTS settings.
    priors : dict, optional
        Override :data:`GRADIENT_PRIORS`.
    progressbar : bool, optional
        Default: on, except in FAST mode.
    marginal : bool
        Sample the marginal (default) or the latent-x form of the model.
    cores : int, optional
        Parallel chains (default min(chains, CPUs)).
    bounds : dict, optional
        Limits of ``converged``: default :data:`ocnb.stats.FAST_BOUNDS` (r_hat < 1.05, ESS > 400)
        with the FAST preset, else :data:`ocnb.stats.FULL_BOUNDS` (r_hat < 1.01, ESS > 400).

    Returns
    -------
    GradientFit
    """
    if data is None:
        data = table2_selection()
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a DataFrame with R, sigma_R, feh, sigma_feh, got {type(data).__name__}")
    missing = {"R", "sigma_R", "feh", "sigma_feh"} - set(data.columns)
    if missing:
        raise KeyError(f"data lacks column(s) {sorted(missing)}; use table2_selection() or gradient_table()")
    return fit_line(
        data["R"],
        data["sigma_R"],
        data["feh"],
        data["sigma_feh"],
        priors=priors,
        draws=draws,
        tune=tune,
        chains=chains,
        target_accept=target_accept,
        seed=seed,
        progressbar=progressbar,
        marginal=marginal,
        cores=cores,
        data=data,
        kind="gradient",
        labels=("R_GC [kpc]", "[Fe/H] [dex]"),
        default_priors=GRADIENT_PRIORS,
        bounds=bounds,
    )


class GradientFit(LineFit):
    """A :class:`ocnb.stats.LineFit` (summary, converged, line_band, plot, to_frame ...) plus
    :meth:`compare_table2`, the comparison with Cavallo et al. (2024), Table 2.
    """

    def compare_table2(self, reference: Mapping = TABLE2) -> pd.DataFrame:
        """Ours against the paper's Table 2.

        Columns ``ours, ours_sd, paper, paper_sd, delta, n_sigma, within_1sigma``,
        with ``n_sigma`` = |ours - paper| / paper_sd.
        """
        rows = {}
        for p in PARAMS:
            mu, sd = reference[p]
            ours = float(self.summary.loc[p, "mean"])
            rows[p] = {
                "ours": ours,
                "ours_sd": float(self.summary.loc[p, "sd"]),
                "paper": mu,
                "paper_sd": sd,
                "delta": ours - mu,
                "n_sigma": abs(ours - mu) / sd,
                "within_1sigma": abs(ours - mu) <= sd,
            }
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.attrs["reference"] = TABLE2_REFERENCE
        return out


# ---------------------------------------------------------------------------
# ANN [Fe/H] against Spina et al. (2022)
# ---------------------------------------------------------------------------
@dataclass
class SpectroscopicComparison:
    """ANN [Fe/H] against Spina+22 spectroscopy (Sect. 5.1, Fig. 12).

    ``data``: ``name, feh_s22, sigma_s22, feh_ann, sigma_ann, log_age, quality, cmd_class``;
    ``counts``: rows left after each step (paper: 251 -> 197 -> 89);
    ``fit``: :class:`GradientFit` with x = Spina [Fe/H], y = ANN [Fe/H] (None if not fitted).
    """

    data: pd.DataFrame
    counts: dict
    fit: GradientFit | None = None
    notes: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.data)

    def plot(self, ax=None, color_by_age: bool = True):
        """Fig. 12: ANN vs Spina [Fe/H] with error bars, the fitted line and 68/90 % bands."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.0, 5.2))
        d = self.data
        ax.errorbar(
            d["feh_s22"],
            d["feh_ann"],
            xerr=d["sigma_s22"],
            yerr=d["sigma_ann"],
            fmt="none",
            ecolor="0.7",
            elinewidth=0.7,
            zorder=1,
        )
        if color_by_age and d["log_age"].notna().any():
            sc = ax.scatter(d["feh_s22"], d["feh_ann"], c=d["log_age"], s=16, cmap="viridis", zorder=2)
            plt.colorbar(sc, ax=ax, label="log age (ANN) [dex]")
        else:
            ax.plot(d["feh_s22"], d["feh_ann"], "o", ms=4, color="k", zorder=2)
        lo = float(np.nanmin(np.r_[d["feh_s22"], d["feh_ann"]])) - 0.1
        hi = float(np.nanmax(np.r_[d["feh_s22"], d["feh_ann"]])) + 0.1
        grid = np.linspace(lo, hi, 100)
        if self.fit is not None:
            s = self.fit.summary
            for q, a in (((5, 95), 0.15), ((16, 84), 0.3)):
                band = self.fit.line_band(grid, q=q)
                ax.fill_between(grid, band["lo"], band["hi"], color="C3", alpha=a, lw=0)
            ax.plot(
                grid,
                band["mean"],
                "--",
                color="C3",
                lw=2,
                label=f"α = {s.loc['alpha', 'mean']:.2f} ± {s.loc['alpha', 'sd']:.2f}, "
                f"β = {s.loc['beta', 'mean']:+.2f} ± {s.loc['beta', 'sd']:.2f}, "
                f"ε = {s.loc['eps', 'mean']:.2f} ± {s.loc['eps', 'sd']:.2f}",
            )
        ax.plot(grid, grid + 0.08, ":", color="k", lw=1.2, label="α = 1, β = 0.08 (paper's reference)")
        ax.set_xlabel("[Fe/H] Spina et al. 2022 [dex]")
        ax.set_ylabel("[Fe/H] ANN [dex]")
        ax.set_title(f"N = {self.n}")
        ax.legend(fontsize=8, loc="upper left")
        return ax


def _estimate_frame(estimates: pd.DataFrame) -> tuple[pd.DataFrame, bool, bool]:
    """Standard columns of an ANN estimate table (catalogue or ours), and whether it has age / quality."""
    if "name" not in estimates:
        raise KeyError("estimates need a 'name' column")
    age_col, q_col = _find_col(estimates, "log_age", 50), _find_col(estimates, "quality")
    est = pd.DataFrame(
        {
            "name": estimates["name"].to_numpy(),
            "feh_ann": estimates[_need(estimates, "feh", 50)].to_numpy(float),
            "sigma_ann": _half_width(estimates, "feh"),
            "log_age": estimates[age_col].to_numpy(float) if age_col else np.nan,
            "quality": estimates[q_col].to_numpy() if q_col else np.nan,
        },
        index=estimates.index,
    )
    return est, age_col is not None, q_col is not None


def spectroscopic_sample(
    estimates: pd.DataFrame | None = None,
    spina: pd.DataFrame | None = None,
    hunt: pd.DataFrame | None = None,
    max_err: float = 0.1,
    min_log_age: float | None = 8.699,
    quality: Iterable[int] | None = (0,),
    cmd_min: float | None = 0.5,
    name_match: str = "spec",
):
    """Clusters with ANN and Spina+22 [Fe/H] after the Sect. 5.1 cuts; returns ``(data, counts, notes)``.

    ``estimates`` default: the published CAVALLO2024 catalogue. A table of our
    own estimates needs ``name`` and [Fe/H] 16/50/84 (``feh_16, feh_50,
    feh_84``); the age and gold cuts are skipped (and noted) when it has no
    log-age or quality column. Names are matched with
    :func:`~ocnb.cmd_ann.galactic.catalog_key` (``name_match="spec"``: the
    catalogues' own spellings, as the paper evidently did; ``"resolve"``
    also follows aliases and finds more clusters).
    """
    from ..datasets import load_catalog

    notes = []
    if estimates is None:
        estimates = load_catalog("CAVALLO2024")
    if spina is None:
        spina = load_catalog("SPINA2022")
    est, has_age, has_q = _estimate_frame(estimates)
    est["cmd_class"] = hunt_cmd_class(estimates, hunt, how=name_match).to_numpy()
    est["_key"] = catalog_key(_name_column(estimates, name_match), name_match).to_numpy()
    counts = {"spina": len(spina)}
    sp = spina[spina["Fe_err"] < max_err]
    counts[f"Fe_err < {max_err}"] = len(sp)
    sp = pd.DataFrame(
        {
            "_key": catalog_key(_name_column(sp, name_match), name_match).to_numpy(),
            "feh_s22": sp["Fe"].to_numpy(float),
            "sigma_s22": sp["Fe_err"].to_numpy(float),
            "spina_name": sp["name"].to_numpy(),
        }
    )
    m = sp.merge(est.drop_duplicates("_key"), on="_key", how="inner")
    counts["matched"] = len(m)
    keep = np.isfinite(m["feh_ann"].to_numpy(float))
    if min_log_age is not None:
        if has_age:
            keep &= m["log_age"].to_numpy(float) > min_log_age
            counts["age"] = int(keep.sum())
        else:
            notes.append("age cut skipped: the estimates have no log-age column")
    if quality is not None:
        if has_q:
            keep &= np.isin(m["quality"].to_numpy(), list(quality))
            counts["quality"] = int(keep.sum())
        else:
            notes.append("quality cut skipped: the estimates have no quality column")
    if cmd_min is not None:
        keep &= m["cmd_class"].to_numpy(float) > cmd_min
        counts["cmd_class"] = int(keep.sum())
    cols = [
        "name",
        "feh_s22",
        "sigma_s22",
        "feh_ann",
        "sigma_ann",
        "log_age",
        "quality",
        "cmd_class",
        "spina_name",
    ]
    data = m.loc[keep, cols].reset_index(drop=True)
    return data, counts, notes


def spectroscopic_comparison(
    estimates: pd.DataFrame | None = None,
    spina: pd.DataFrame | None = None,
    hunt: pd.DataFrame | None = None,
    max_err: float = 0.1,
    min_log_age: float | None = 8.699,
    quality: Iterable[int] | None = (0,),
    cmd_min: float | None = 0.5,
    name_match: str = "spec",
    fit: bool = True,
    priors: Mapping | None = None,
    **fit_kwargs,
) -> SpectroscopicComparison:
    """ANN [Fe/H] against Spina et al. (2022) with the errors-in-both-variables line (Sect. 5.1, Fig. 12).

    Selection as in Sect. 5.1 (see :func:`spectroscopic_sample`): Spina error
    < 0.1 dex, in the ANN sample, median age > 500 Myr, gold, HR23 CMD class
    > 0.5 (the paper: 251 -> 197 -> 89; the shipped tables give 250 -> 237 ->
    198 -> 90). Then y = ANN [Fe/H] is fitted against x = Spina [Fe/H] with
    priors alpha ~ N(1, 1), beta ~ N(0, 1) dex, eps ~ HalfCauchy(1).
    ``fit_kwargs`` go to :func:`fit_line` (draws, tune, chains, seed, ...).
    """
    data, counts, notes = spectroscopic_sample(
        estimates,
        spina,
        hunt,
        max_err=max_err,
        min_log_age=min_log_age,
        quality=quality,
        cmd_min=cmd_min,
        name_match=name_match,
    )
    result = None
    if fit and len(data) >= 3:
        result = fit_line(
            data["feh_s22"],
            data["sigma_s22"],
            data["feh_ann"],
            data["sigma_ann"],
            priors=priors,
            data=data,
            kind="spectroscopic",
            labels=("[Fe/H] Spina+22 [dex]", "[Fe/H] ANN [dex]"),
            default_priors=SPECTRO_PRIORS,
            **fit_kwargs,
        )
    elif fit:
        notes.append(f"not fitted: {len(data)} cluster(s) left, need >= 3")
    return SpectroscopicComparison(data=data, counts=counts, fit=result, notes=notes)
