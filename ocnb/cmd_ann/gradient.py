"""Bayesian straight lines with errors on both axes (Cavallo et al. 2024, Sects. 5.1-5.2).

One model serves both validations of the ANN metallicities:

* the radial metallicity gradient (Sect. 5.2, Fig. 13, Table 2):
  [Fe/H] = alpha * R_GC + beta with intrinsic scatter eps, priors
  alpha ~ N(-0.068, 0.1) dex/kpc, beta ~ N(0.5, 1) dex, eps ~ HalfCauchy(1);
* ANN [Fe/H] against the spectroscopic [Fe/H] of Spina et al. (2022)
  (Sect. 5.1, Fig. 12): same model, alpha ~ N(1, 1), beta ~ N(0, 1) dex.

The model (spec §9)::

    x_true_i ~ Normal(x_i, sigma_x_i)
    y_i      ~ Normal(alpha * x_true_i + beta, sqrt(sigma_y_i**2 + eps**2))

is sampled by default in its exact marginal form, with x_true integrated out::

    y_i ~ Normal(alpha * x_i + beta, sqrt(sigma_y_i**2 + alpha**2 * sigma_x_i**2 + eps**2))

(same posterior for alpha, beta, eps; no latent variable per cluster, a little
faster). ``marginal=False`` keeps the latent x_true.

:func:`table2_selection` applies the selection that reproduces Table 2 from the
shipped catalogue (spec §9c): median age > 500 Myr (logAge50 > 8.699), gold
(``Quality == 0``), 5 < ``Rgc`` < 12 kpc, Hunt & Reffert's ``CMDCl50`` > 0.5
matched by name; errors are half the 16-84 percentile widths on both axes.
Result: N = 839 and alpha = -0.048, beta = 0.43, eps = 0.314, as in Table 2.

PyMC is imported on first use. Importing this module (before pymc) points
pytensor's compile directory at ``<data home>/pytensor`` unless
``PYTENSOR_FLAGS`` or a ``.pytensorrc`` already names one
(:func:`configure_pytensor`), so compiled C code stays with ocnb's other
caches and is reused between sessions.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from .. import config
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
    "FAST_SAMPLER",
    "FULL_SAMPLER",
    "GRADIENT_PRIORS",
    "SPECTRO_PRIORS",
    "TABLE2",
    "TABLE2_CI68",
    "TABLE2_REFERENCE",
    "GradientFit",
    "GradientPanel",
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
TABLE2_N = 839  # not in the paper: what the spec §9c recipe selects from the shipped catalogue

#: Priors of the gradient fit (Sect. 5.2): (mu, sd) of alpha [dex/kpc] and beta [dex]; HalfCauchy scale of eps.
GRADIENT_PRIORS = {"alpha": (-0.068, 0.1), "beta": (0.5, 1.0), "eps_beta": 1.0}
#: Priors of the ANN-vs-spectroscopy fit (Sect. 5.1).
SPECTRO_PRIORS = {"alpha": (1.0, 1.0), "beta": (0.0, 1.0), "eps_beta": 1.0}
#: The paper's sampler: 10 000 NUTS samples per chain, half burn-in; 4 chains and target_accept 0.9 (spec).
FULL_SAMPLER = {"draws": 5000, "tune": 5000, "chains": 4}
#: FAST mode (``OCNB_FAST=1``): enough for r_hat < 1.01 and ESS > 400 on the Table 2 sample.
FAST_SAMPLER = {"draws": 1000, "tune": 1000, "chains": 2}
PARAMS = ("alpha", "beta", "eps")


# ---------------------------------------------------------------------------
# PyMC import with a compile directory under the data home
# ---------------------------------------------------------------------------
def _rc_sets_compiledir() -> bool:
    paths = [p for p in os.environ.get("PYTENSORRC", "").split(os.pathsep) if p]
    paths.append(str(Path.home() / ".pytensorrc"))
    for p in paths:
        try:
            if "compiledir" in Path(p).expanduser().read_text():
                return True
        except OSError:
            continue
    return False


def configure_pytensor() -> str | None:
    """Point pytensor's ``base_compiledir`` at ``<data home>/pytensor`` unless the user chose one.

    Does nothing (returns None) when pytensor is already imported, when
    ``PYTENSOR_FLAGS`` mentions a compile directory, or when a ``.pytensorrc``
    does; other flags in ``PYTENSOR_FLAGS`` are kept. Returns the directory set.
    """
    if "pytensor" in sys.modules:
        return None
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "compiledir" in flags or _rc_sets_compiledir():
        return None
    path = config.data_home(create=False) / "pytensor"  # pytensor creates it when it first compiles
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags.strip(","), f"base_compiledir={path}") if f)
    return str(path)


# Set at import, so that a later ``import pymc`` anywhere in the session (a notebook cell, a test) uses it too.
configure_pytensor()


def _pymc():
    configure_pytensor()
    # These models have no matrix products: pytensor's "no BLAS" warning is noise here.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz announces its 1.0 refactor on import
        import arviz  # noqa: F401
        import pymc as pm
    return pm


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
        keep &= (R > r_range[0]) & (R < r_range[1])
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
    """The Table 2 sample (spec §9c): old, gold, 5 < R_GC < 12 kpc, HR23 CMD class > 0.5.

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
# model and fit
# ---------------------------------------------------------------------------
def _priors(priors: Mapping | None, default: Mapping) -> dict:
    p = {**default, **(priors or {})}
    unknown = set(p) - {"alpha", "beta", "eps_beta"}
    if unknown:
        raise ValueError(f"unknown prior(s) {sorted(unknown)}; use alpha=(mu, sd), beta=(mu, sd), eps_beta")
    return p


def _as_arrays(x, sigma_x, y, sigma_y):
    arrs = [np.asarray(a, dtype=float).ravel() for a in (x, sigma_x, y, sigma_y)]
    n = arrs[0].size
    if any(a.size != n for a in arrs):
        raise ValueError(f"x, sigma_x, y, sigma_y must have the same length, got {[a.size for a in arrs]}")
    if n < 3:
        raise ValueError(f"need at least 3 points for a line with intrinsic scatter, got {n}")
    if not all(np.isfinite(a).all() for a in arrs):
        raise ValueError("x, sigma_x, y, sigma_y must be finite (drop NaN rows first)")
    if (arrs[1] < 0).any() or (arrs[3] < 0).any():
        raise ValueError("uncertainties must be >= 0")
    return arrs


def gradient_model(x, sigma_x, y, sigma_y, priors: Mapping | None = None, marginal: bool = True):
    """PyMC model of y = alpha * x + beta with errors on both axes and intrinsic scatter eps.

    Parameters
    ----------
    x, sigma_x, y, sigma_y : array_like
        Measurements and their 1-sigma errors (e.g. R_GC [kpc] and [Fe/H] [dex]).
    priors : dict, optional
        ``alpha=(mu, sd)``, ``beta=(mu, sd)`` (normal priors) and ``eps_beta``
        (HalfCauchy scale); missing keys take :data:`GRADIENT_PRIORS`.
    marginal : bool
        True: x_true integrated out analytically (default). False: latent
        ``x_true ~ Normal(x, sigma_x)`` per point (zero errors are floored
        at 1e-6 so the latent normal stays proper).

    Returns
    -------
    pymc.Model
        Free variables ``alpha``, ``beta``, ``eps`` (+ ``x_true``); observed ``y_obs``.
    """
    pm = _pymc()
    x, sx, y, sy = _as_arrays(x, sigma_x, y, sigma_y)
    p = _priors(priors, GRADIENT_PRIORS)
    with pm.Model(coords={"point": np.arange(x.size)}) as model:
        alpha = pm.Normal("alpha", mu=p["alpha"][0], sigma=p["alpha"][1])
        beta = pm.Normal("beta", mu=p["beta"][0], sigma=p["beta"][1])
        eps = pm.HalfCauchy("eps", beta=p["eps_beta"])
        if marginal:
            sd = pm.math.sqrt(sy**2 + alpha**2 * sx**2 + eps**2)
            pm.Normal("y_obs", mu=alpha * x + beta, sigma=sd, observed=y, dims="point")
        else:
            x_true = pm.Normal("x_true", mu=x, sigma=np.maximum(sx, 1e-6), dims="point")
            pm.Normal(
                "y_obs",
                mu=alpha * x_true + beta,
                sigma=pm.math.sqrt(sy**2 + eps**2),
                observed=y,
                dims="point",
            )
    return model


def _sampler_settings(draws, tune, chains):
    preset = FAST_SAMPLER if config.fast_mode() else FULL_SAMPLER
    s = {"draws": draws, "tune": tune, "chains": chains}
    s = {k: int(preset[k] if v is None else v) for k, v in s.items()}
    fast = config.fast_mode() and all(v is None for v in (draws, tune, chains))
    return s, fast


def _summarise(idata) -> pd.DataFrame:
    import arviz as az

    post = idata.posterior
    rhat, ess_b, ess_t = az.rhat(post), az.ess(post, method="bulk"), az.ess(post, method="tail")
    rows = {}
    for p in PARAMS:
        v = post[p].values.ravel()
        rows[p] = {
            "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)),
            "p16": float(np.percentile(v, 16)),
            "p84": float(np.percentile(v, 84)),
            "r_hat": float(rhat[p]),
            "ess_bulk": float(ess_b[p]),
            "ess_tail": float(ess_t[p]),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


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
) -> GradientFit:
    """Sample :func:`gradient_model` with NUTS and summarise it (see :func:`fit_metallicity_gradient`)."""
    pm = _pymc()
    x, sx, y, sy = _as_arrays(x, sigma_x, y, sigma_y)
    p = _priors(priors, default_priors)
    settings, fast = _sampler_settings(draws, tune, chains)
    if progressbar is None:
        progressbar = not config.fast_mode()
    if cores is None:
        cores = max(1, min(settings["chains"], os.cpu_count() or 1))
    model = gradient_model(x, sx, y, sy, priors=p, marginal=marginal)
    t0 = time.perf_counter()
    with model:
        idata = pm.sample(
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=cores,
            target_accept=target_accept,
            random_seed=seed,
            progressbar=progressbar,
            compute_convergence_checks=False,
            return_inferencedata=True,
        )
    wall = time.perf_counter() - t0
    if data is None:
        data = pd.DataFrame({"x": x, "sigma_x": sx, "y": y, "sigma_y": sy})
    settings.update(target_accept=target_accept, seed=seed, marginal=marginal, cores=cores)
    notes = []
    if fast:
        notes.append(
            f"FAST mode: {settings['chains']} chains x {settings['tune']} tune / {settings['draws']} "
            f"draws (the paper: 4 x 5000/5000, run with OCNB_FAST=0)"
        )
    div = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
    return GradientFit(
        summary=_summarise(idata),
        idata=idata,
        n=int(x.size),
        data=data,
        priors=p,
        settings=settings,
        fast=fast,
        wall_time_s=wall,
        divergences=div,
        kind=kind,
        labels=tuple(labels),
        notes=notes,
        _xy=(x, sx, y, sy),
    )


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
) -> GradientFit:
    """Fit the radial [Fe/H] gradient (Sect. 5.2, Table 2).

    Parameters
    ----------
    data : DataFrame, optional
        Columns ``R, sigma_R`` [kpc] and ``feh, sigma_feh`` [dex]; default
        :func:`table2_selection` (the shipped catalogue, N = 839).
    draws, tune, chains : int, optional
        Default: the paper's 4 chains x 5000 tune / 5000 draws, or
        :data:`FAST_SAMPLER` (2 x 1000/1000) in FAST mode (``OCNB_FAST=1``),
        which the result's ``notes`` then state.
    target_accept, seed : NUTS settings.
    priors : dict, optional
        Override :data:`GRADIENT_PRIORS`.
    progressbar : bool, optional
        Default: on, except in FAST mode.
    marginal : bool
        Sample the marginal (default) or the latent-x form of the model.
    cores : int, optional
        Parallel chains (default min(chains, CPUs)).

    Returns
    -------
    GradientFit
    """
    if data is None:
        data = table2_selection()
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
    )


@dataclass
class GradientFit:
    """Posterior of a straight-line fit with errors on both axes.

    Attributes
    ----------
    summary : DataFrame
        Rows ``alpha, beta, eps``; columns ``mean, sd, p16, p84`` (68 %
        interval), ``r_hat, ess_bulk, ess_tail``.
    idata : arviz.InferenceData
    n : int
        Number of points fitted.
    data : DataFrame
        The points (for the gradient: ``name, R, sigma_R, feh, sigma_feh`` ...).
    settings : dict
        draws, tune, chains, target_accept, seed, marginal, cores.
    fast : bool
        True when FAST-mode sampler presets were used (see ``notes``).
    wall_time_s : float
        Sampling time including compilation.
    divergences : int
    """

    summary: pd.DataFrame
    idata: object
    n: int
    data: pd.DataFrame
    priors: dict
    settings: dict
    fast: bool = False
    wall_time_s: float = float("nan")
    divergences: int = 0
    kind: str = "line"
    labels: tuple = ("x", "y")
    notes: list = field(default_factory=list)
    _xy: tuple = field(default=(), repr=False)

    @property
    def converged(self) -> bool:
        """r_hat < 1.01 and bulk ESS > 400 for alpha, beta and eps."""
        s = self.summary
        return bool((s["r_hat"] < 1.01).all() and (s["ess_bulk"] > 400).all())

    def posterior(self, name: str) -> np.ndarray:
        """Flattened posterior draws of ``alpha``, ``beta`` or ``eps``."""
        return self.idata.posterior[name].values.ravel()

    def line_band(self, x=None, q=(16.0, 84.0), n: int = 100) -> pd.DataFrame:
        """Posterior of alpha * x + beta on a grid: ``x, mean, lo, hi`` (percentiles ``q``)."""
        if x is None:
            xs = self._xy[0] if self._xy else np.array([0.0, 1.0])
            x = np.linspace(np.min(xs), np.max(xs), n)
        x = np.asarray(x, float)
        a, b = self.posterior("alpha"), self.posterior("beta")
        step = max(1, a.size // 4000)  # 4000 draws are plenty for percentiles
        lines = a[::step, None] * x[None, :] + b[::step, None]
        lo, hi = np.percentile(lines, q, axis=0)
        return pd.DataFrame({"x": x, "mean": lines.mean(axis=0), "lo": lo, "hi": hi})

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

    def text(self) -> str:
        s = self.summary
        parts = [f"{p} = {s.loc[p, 'mean']:+.4f} ± {s.loc[p, 'sd']:.4f}" for p in PARAMS]
        conv = f"r̂ ≤ {s['r_hat'].max():.4f}, ESS ≥ {s['ess_bulk'].min():.0f}, {self.divergences} divergences"
        st = self.settings
        return (
            f"N = {self.n}: " + ", ".join(parts) + f" ({conv}; {st['chains']} chains x "
            f"{st['tune']}/{st['draws']}, {self.wall_time_s:.1f} s)"
        )

    def __str__(self) -> str:
        return self.text() + ("" if not self.notes else "\n" + "\n".join(self.notes))

    def plot(
        self,
        ax=None,
        band: bool = True,
        errorbars: bool = True,
        color: str = "C3",
        title: str | None = None,
        reference: Mapping | None = None,
    ):
        """Static plot: points with error bars, posterior-mean line and its 68 % band.

        ``reference`` (e.g. :data:`TABLE2`) adds a dashed line alpha * x + beta
        from those means. Returns the matplotlib Axes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.6))
        x, sx, y, sy = self._xy
        if errorbars:
            ax.errorbar(
                x,
                y,
                xerr=sx,
                yerr=sy,
                fmt="o",
                ms=2.5,
                color="k",
                ecolor="0.65",
                elinewidth=0.6,
                alpha=0.7,
                zorder=1,
                label=f"data (N = {self.n})",
            )
        else:
            ax.plot(x, y, "o", ms=2.5, color="k", alpha=0.7, label=f"data (N = {self.n})")
        lb = self.line_band()
        s = self.summary
        ax.plot(
            lb["x"],
            lb["mean"],
            color=color,
            lw=2,
            zorder=3,
            label=f"α = {s.loc['alpha', 'mean']:+.3f} ± {s.loc['alpha', 'sd']:.3f}, "
            f"β = {s.loc['beta', 'mean']:.2f} ± {s.loc['beta', 'sd']:.2f}, "
            f"ε = {s.loc['eps', 'mean']:.3f}",
        )
        if band:
            ax.fill_between(
                lb["x"], lb["lo"], lb["hi"], color=color, alpha=0.3, lw=0, zorder=2, label="68 % interval"
            )
        if reference is not None:
            ax.plot(
                lb["x"],
                reference["alpha"][0] * lb["x"] + reference["beta"][0],
                "--",
                color="C0",
                lw=1.5,
                zorder=3,
                label="reference",
            )
        ax.set_xlabel(self.labels[0])
        ax.set_ylabel(self.labels[1])
        ax.legend(fontsize=8, loc="best")
        if title:
            ax.set_title(title)
        return ax

    def _repr_html_(self) -> str:
        notes = "".join(f"<br><i>{n}</i>" for n in self.notes)
        return f"<b>{self.kind} fit</b>, {self.text()}{notes}" + self.summary.to_html(float_format="%.4f")


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
            plt.colorbar(sc, ax=ax, label="log age (ANN)")
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
    """ANN [Fe/H] against Spina et al. (2022) with the errors-in-both-variables line (spec §9a).

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


# ---------------------------------------------------------------------------
# interactive panel
# ---------------------------------------------------------------------------
class GradientPanel:
    """Widgets for the Table 2 cuts and a live gradient fit (holoviews/bokeh + ipywidgets).

    Cuts: minimum log age, quality classes (checkboxes), R_GC range, minimum
    HR23 CMD class. Changing a cut updates the selection and the scatter at
    once; the "Fit" button (or every change, with "refit on change" ticked)
    refits with a quick sampler setting. The posterior-mean line and its 68 %
    band are drawn over [Fe/H] vs R_GC.

    Parameters
    ----------
    catalog, hunt : DataFrame, optional
        As :func:`gradient_table` (default: the published catalogue; our
        estimates work too).
    draws, tune, chains : int
        Quick sampler used by the panel (default 2 x 500/500).
    auto : bool
        Refit on every change of a cut.
    fit_now : bool
        Fit once at start-up.
    """

    QUALITY_LABELS: ClassVar[dict[int, str]] = {0: "gold", 1: "silver", 2: "bronze", 3: "wood"}

    def __init__(
        self,
        catalog: pd.DataFrame | None = None,
        hunt: pd.DataFrame | None = None,
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
        seed: int = 0,
        auto: bool = False,
        fit_now: bool = False,
        name_match: str = "spec",
    ):
        import ipywidgets as w

        from ..panels import _hv

        self.table = gradient_table(catalog, hunt, name_match=name_match)
        self.sampler = {"draws": int(draws), "tune": int(tune), "chains": int(chains), "seed": int(seed)}
        self.result: GradientFit | None = None
        self.result_state: dict | None = None
        self.history: list[dict] = []
        # Shared by the three sliders: label width, slider width, fit only on release.
        common = dict(style={"description_width": "110px"}, layout=w.Layout(width="380px"), continuous_update=False)
        self.min_age = w.FloatSlider(
            value=8.699,
            min=6.5,
            max=10.2,
            step=0.01,
            description="min log age",
            **common,
            readout_format=".3f",
        )
        self.quality = {
            q: w.Checkbox(value=(q == 0), description=lab, indent=False, layout=w.Layout(width="80px"))
            for q, lab in self.QUALITY_LABELS.items()
        }
        r_hi = float(np.ceil(np.nanmax(self.table["R"]))) if len(self.table) else 20.0
        self.r_range = w.FloatRangeSlider(
            value=(5.0, 12.0),
            min=0.0,
            max=max(r_hi, 12.0),
            step=0.1,
            description="R_GC [kpc]",
            **common,
            readout_format=".1f",
        )
        self.cmd_min = w.FloatSlider(
            value=0.5,
            min=0.0,
            max=1.0,
            step=0.01,
            description="min CMD class",
            **common,
            readout_format=".2f",
        )
        self.fit_button = w.Button(description="Fit", button_style="primary", tooltip="sample the posterior")
        self.auto = w.Checkbox(value=bool(auto), description="refit on change", indent=False)
        self.info = w.HTML()
        self.fit_info = w.HTML()
        hv = _hv()
        self._stream = hv.streams.Stream.define("GradientVersion", version=0)()
        for wid in (self.min_age, self.r_range, self.cmd_min, *self.quality.values()):
            wid.observe(self._on_change, names="value")
        self.fit_button.on_click(lambda _b: self.fit())
        self.min_age.disabled = not self.table.attrs.get("has_age", True)
        for cb in self.quality.values():
            cb.disabled = not self.table.attrs.get("has_quality", True)
        self._selection = None
        self._update_info()
        if fit_now:
            self.fit()

    # -- state ----------------------------------------------------------------
    def state(self) -> dict:
        """Current cuts and selection size: ``min_log_age, quality, r_min, r_max, cmd_min, n, fitted``.

        ``min_log_age`` / ``quality`` are None when the table has no ages / quality classes.
        """
        cuts = self._cuts()
        return {
            "min_log_age": cuts["min_log_age"],
            "quality": cuts["quality"],
            "r_min": cuts["r_range"][0],
            "r_max": cuts["r_range"][1],
            "cmd_min": cuts["cmd_min"],
            "n": len(self.selection()),
            "fitted": self.result is not None and self.result_state == cuts,
        }

    def _cuts(self) -> dict:
        # a table without ages or quality classes (e.g. our own estimates) skips those cuts
        r_min, r_max = self.r_range.value
        has_age, has_q = self.table.attrs.get("has_age", True), self.table.attrs.get("has_quality", True)
        return {
            "min_log_age": float(self.min_age.value) if has_age else None,
            "quality": tuple(q for q, cb in self.quality.items() if cb.value) if has_q else None,
            "r_range": (float(r_min), float(r_max)),
            "cmd_min": float(self.cmd_min.value),
        }

    def set(self, min_log_age=None, quality=None, r_range=None, cmd_min=None) -> None:
        """Set cuts programmatically (as a user would with the widgets)."""
        if min_log_age is not None:
            self.min_age.value = float(min_log_age)
        if quality is not None:
            for q, cb in self.quality.items():
                cb.value = q in set(quality)
        if r_range is not None:
            self.r_range.value = tuple(float(v) for v in r_range)
        if cmd_min is not None:
            self.cmd_min.value = float(cmd_min)

    def selection(self) -> pd.DataFrame:
        """The clusters passing the current cuts (cached until a cut changes)."""
        if self._selection is None:
            self._selection = apply_cuts(self.table, **self._cuts())
        return self._selection

    # -- actions ----------------------------------------------------------------
    def _on_change(self, _change=None) -> None:
        self._selection = None
        self._update_info()
        self._stream.event(version=self._stream.version + 1)
        if self.auto.value:
            self.fit()

    def fit(self) -> GradientFit | None:
        """Fit the current selection with the panel's quick sampler; updates ``result`` and the plot."""
        sel = self.selection()
        cuts = self._cuts()
        if len(sel) < 3:
            self.fit_info.value = f"<i>only {len(sel)} clusters selected: nothing to fit</i>"
            return None
        self.fit_info.value = f"<i>fitting {len(sel)} clusters ...</i>"
        self.fit_button.disabled = True
        try:
            res = fit_metallicity_gradient(sel, progressbar=False, cores=1, **self.sampler)
        finally:
            self.fit_button.disabled = False
        self.result, self.result_state = res, cuts
        s = res.summary
        self.history.append(
            {
                **cuts,
                "n": res.n,
                **{p: float(s.loc[p, "mean"]) for p in PARAMS},
                "r_hat_max": float(s["r_hat"].max()),
            }
        )
        conv = "converged" if res.converged else "<b>not converged</b> (more draws needed)"
        self.fit_info.value = (
            f"α = {s.loc['alpha', 'mean']:+.4f} ± {s.loc['alpha', 'sd']:.4f} dex/kpc, "
            f"β = {s.loc['beta', 'mean']:.3f} ± {s.loc['beta', 'sd']:.3f} dex, "
            f"ε = {s.loc['eps', 'mean']:.3f} ± {s.loc['eps', 'sd']:.3f} dex "
            f"(N = {res.n}; r̂ ≤ {s['r_hat'].max():.3f}, {conv}; {res.wall_time_s:.1f} s)"
        )
        self._stream.event(version=self._stream.version + 1)
        return res

    def _update_info(self) -> None:
        sel = self.selection()
        c = sel.attrs.get("counts", {})
        steps = " → ".join(f"{v}" for v in c.values())
        age = f"age > {10 ** (self.min_age.value - 6):,.0f} Myr; " if not self.min_age.disabled else ""
        self.info.value = f"<b>N = {len(sel)}</b> clusters selected ({age}{steps})"

    # -- views ----------------------------------------------------------------
    def band_frame(self) -> pd.DataFrame:
        """Posterior line and 68 % band of the last fit on the current R_GC range (empty without a fit)."""
        if self.result is None:
            return pd.DataFrame({"x": [], "mean": [], "lo": [], "hi": []})
        r_min, r_max = self.r_range.value
        return self.result.line_band(np.linspace(r_min, r_max, 60))

    def _plot(self, version=0):
        from ..panels import _hv

        hv = _hv()
        sel = self.selection()
        # Labels stay fixed so that the DynamicMap updates the same glyphs; N and staleness go in the title.
        pts = hv.Scatter(sel, "R", ["feh", "sigma_feh", "sigma_R", "name", "log_age"], label="clusters").opts(
            color="black", size=3, alpha=0.6, tools=["hover"]
        )
        err = hv.ErrorBars(sel, "R", ["feh", "sigma_feh"]).opts(color="gray", alpha=0.3, line_width=0.5)
        band = self.band_frame()
        stale = self.result is not None and self.result_state != self._cuts()
        col = "gray" if stale else "#d62728"
        area = hv.Area(band, "x", ["lo", "hi"], label="posterior mean and 68 % band").opts(
            color=col, alpha=0.3, line_alpha=0
        )
        line = hv.Curve(band, "x", "mean", label="posterior mean and 68 % band").opts(color=col, line_width=2)
        title = f"N = {len(sel)} clusters"
        if self.result is not None:
            a = self.result.summary.loc["alpha"]
            title += f"; fit: α = {a['mean']:+.4f} ± {a['sd']:.4f} dex/kpc" + (
                " (previous cuts)" if stale else ""
            )
        return (err * pts * area * line).opts(
            xlabel="R_GC [kpc]",
            ylabel="[Fe/H] [dex]",
            width=560,
            height=400,
            show_grid=True,
            legend_position="top_right",
            framewise=True,
            title=title,
        )

    def plot(self):
        """holoviews DynamicMap of [Fe/H] vs R_GC with the posterior band; follows the widgets."""
        from ..panels import _hv

        hv = _hv()
        if not hasattr(self, "_dmap"):
            self._dmap = hv.DynamicMap(self._plot, streams=[self._stream])
        return self._dmap

    def controls(self):
        import ipywidgets as w

        return w.VBox(
            [
                self.min_age,
                w.HBox([w.Label("quality", layout=w.Layout(width="110px")), *self.quality.values()]),
                self.r_range,
                self.cmd_min,
                w.HBox([self.fit_button, self.auto]),
                self.info,
                self.fit_info,
            ]
        )

    def _ipython_display_(self):
        from IPython.display import display

        display(self.controls())
        display(self.plot())
