"""A straight line with errors on both axes and intrinsic scatter, sampled with PyMC (NUTS).

The model (Cavallo et al. 2024, Sects. 5.1-5.2 use it twice; nothing here is specific to them)::

    x_true_i ~ Normal(x_i, sigma_x_i)
    y_i      ~ Normal(alpha * x_true_i + beta, sqrt(sigma_y_i**2 + eps**2))

    alpha ~ Normal(mu_a, sd_a),  beta ~ Normal(mu_b, sd_b),  eps ~ HalfCauchy(eps_beta)

is sampled by default in its exact marginal form, with ``x_true`` integrated out::

    y_i ~ Normal(alpha * x_i + beta, sqrt(sigma_y_i**2 + alpha**2 * sigma_x_i**2 + eps**2))

(same posterior for alpha, beta, eps; no latent variable per point). ``marginal=False``
keeps the latent ``x_true``. Units are those of the data: alpha in [y]/[x], beta, eps
and sigma_y in [y], sigma_x in [x].

PyMC and PyTensor are imported on the first fit, never when this module is imported.
The fit calls :func:`configure_pytensor` first, which points PyTensor's compile
directory at ``<data home>/pytensor`` unless the user chose one; importing ocnb
changes no environment variable and installs no warning filter.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..errors import OcnbError

__all__ = [
    "FAST_BOUNDS",
    "FAST_SAMPLER",
    "FULL_BOUNDS",
    "FULL_SAMPLER",
    "PARAMS",
    "LineFit",
    "LineFitInputError",
    "configure_pytensor",
    "fit_line",
    "line_model",
    "sampler_settings",
]

PARAMS = ("alpha", "beta", "eps")

#: Default full sampler: 4 chains x 2000 tune / 2000 draws (papers may pass their own, e.g. Cavallo's 4 x 5000).
FULL_SAMPLER = {"draws": 2000, "tune": 2000, "chains": 4}
#: FAST mode (``OCNB_FAST=1``): 2 chains x 1000 tune / 2000 draws. Measured on the 839-cluster Table 2 sample
#: (Cavallo+2024), seeds 0-5: max r_hat 1.0003-1.0050, min bulk ESS 1029-1620 (2 x 1000/1000: r_hat up to 1.0072
#: here and 1.0115 on another CPU, ESS 537-780), for about 20 % more CPU time (18.5 s vs 15 s on a loaded 2-core box).
FAST_SAMPLER = {"draws": 2000, "tune": 1000, "chains": 2}
#: Convergence bounds of a full-size run (Vehtari et al. 2021): rank-normalised split r_hat < 1.01, bulk ESS > 400.
FULL_BOUNDS = {"r_hat": 1.01, "ess_bulk": 400.0}
#: Documented bounds of a FAST run. Two short chains give an r_hat whose own noise is ~0.005, so a limit at 1.01
#: passes on one CPU and fails on another with the same seed (issue 13: 1.0115). 1.05 (Gelman et al. 2013) still
#: flags a stuck or poorly mixing chain; the ESS floor keeps the posterior means and sds usable.
FAST_BOUNDS = {"r_hat": 1.05, "ess_bulk": 400.0}


class LineFitInputError(OcnbError, ValueError):
    """Unusable input to :func:`fit_line` / :func:`line_model` (the message names the array, rows or key)."""


# ---------------------------------------------------------------------------
# PyTensor / PyMC, configured when a fit asks for them
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
    """Point PyTensor's ``base_compiledir`` at ``<data home>/pytensor`` unless the user chose one.

    Called by :func:`line_model` / :func:`fit_line` before PyMC is imported (never at import
    time), so compiled C code stays with ocnb's other caches and is reused between sessions.
    Does nothing (returns None) when PyTensor is already imported (its configuration is then
    fixed), when ``PYTENSOR_FLAGS`` names a compile directory, or when a ``.pytensorrc`` does;
    other flags in ``PYTENSOR_FLAGS`` are kept. Returns the directory set.
    """
    if "pytensor" in sys.modules:
        return None
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "compiledir" in flags or _rc_sets_compiledir():
        return None
    path = config.data_home(create=False) / "pytensor"  # pytensor creates it when it first compiles
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags.strip(","), f"base_compiledir={path}") if f)
    return str(path)


@contextmanager
def _quiet():
    """Silence the known, harmless noise of importing, compiling and sampling with PyMC, for this block only.

    * "PyTensor could not link to a BLAS": these models have no matrix products;
    * arviz's FutureWarning announcing its 1.0 refactor on import;
    * PyMC's INFO log lines on stderr ("Initializing NUTS ...", "Sampling 2 chains ... took 5 seconds"):
      :meth:`LineFit.text` and the notes say the same. PyMC's warnings (level WARNING and up) still show.
    """
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not link to a BLAS", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"arviz(\.|$)")
        warnings.filterwarnings("ignore", message=r".*arviz.*1\.0", category=FutureWarning)
        if pymc_log.getEffectiveLevel() < logging.WARNING:
            pymc_log.setLevel(logging.WARNING)
        try:
            yield
        finally:
            pymc_log.setLevel(level)


def _pymc():
    configure_pytensor()
    with _quiet():
        import arviz  # noqa: F401
        import pymc as pm
    return pm


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    more = f" (+{idx.size - 10} more)" if idx.size > 10 else ""
    return f"{idx[:10].tolist()}{more}"


def _as_arrays(x, sigma_x, y, sigma_y) -> list[np.ndarray]:
    names = ("x", "sigma_x", "y", "sigma_y")
    arrs = []
    for name, a in zip(names, (x, sigma_x, y, sigma_y), strict=True):
        try:
            arrs.append(np.asarray(a, dtype=float).ravel())
        except (TypeError, ValueError) as exc:
            raise LineFitInputError(f"{name} must be numeric: {exc}") from exc
    sizes = {n: a.size for n, a in zip(names, arrs, strict=True)}
    if len(set(sizes.values())) != 1:
        raise LineFitInputError(f"x, sigma_x, y, sigma_y must have the same length, got {sizes}")
    n = arrs[0].size
    if n < 3:
        raise LineFitInputError(
            f"need at least 3 points for a line with intrinsic scatter, got {n} (empty selection?)"
        )
    for name, a in zip(names, arrs, strict=True):
        bad = ~np.isfinite(a)
        if bad.any():
            raise LineFitInputError(f"{name} must be finite: NaN/inf at rows {_rows(bad)} (drop those rows first)")
    for name, a in (("sigma_x", arrs[1]), ("sigma_y", arrs[3])):
        bad = a < 0
        if bad.any():
            raise LineFitInputError(f"uncertainties must be >= 0: {name} < 0 at rows {_rows(bad)}")
    return arrs


def _check_priors(priors: Mapping) -> dict:
    if priors is None or not isinstance(priors, Mapping):
        raise LineFitInputError(
            f"priors must be a dict alpha=(mu, sd), beta=(mu, sd), eps_beta=scale, got {priors!r}"
        )
    p = dict(priors)
    unknown = set(p) - {"alpha", "beta", "eps_beta"}
    if unknown:
        raise LineFitInputError(
            f"unknown prior(s) {sorted(unknown)}; use alpha=(mu, sd), beta=(mu, sd), eps_beta"
        )
    missing = {"alpha", "beta", "eps_beta"} - set(p)
    if missing:
        raise LineFitInputError(f"missing prior(s) {sorted(missing)}: give alpha=(mu, sd), beta=(mu, sd), eps_beta")
    for k in ("alpha", "beta"):
        try:
            mu, sd = (float(v) for v in p[k])
        except (TypeError, ValueError) as exc:
            raise LineFitInputError(f"prior {k} must be (mu, sd), got {p[k]!r}") from exc
        if not (math.isfinite(mu) and math.isfinite(sd) and sd > 0):
            raise LineFitInputError(f"prior {k} = ({mu}, {sd}): mu must be finite and sd > 0")
        p[k] = (mu, sd)
    try:
        scale = float(p["eps_beta"])
    except (TypeError, ValueError) as exc:
        raise LineFitInputError(f"prior eps_beta must be a number, got {p['eps_beta']!r}") from exc
    if not (math.isfinite(scale) and scale > 0):
        raise LineFitInputError(f"prior eps_beta (HalfCauchy scale of eps) must be > 0, got {scale}")
    p["eps_beta"] = p["eps_beta"] if isinstance(p["eps_beta"], (int, float)) else scale
    return p


# ---------------------------------------------------------------------------
# model and fit
# ---------------------------------------------------------------------------
def line_model(x, sigma_x, y, sigma_y, *, priors: Mapping, marginal: bool = True):
    """PyMC model of y = alpha * x + beta with errors on both axes and intrinsic scatter eps.

    Parameters
    ----------
    x, sigma_x, y, sigma_y : array_like
        Measurements and their 1-sigma errors (same length, finite, errors >= 0).
    priors : dict
        ``alpha=(mu, sd)``, ``beta=(mu, sd)`` (normal priors, units of alpha and beta) and
        ``eps_beta`` (HalfCauchy scale of eps, units of y). All three are required: a default
        would carry some paper's units.
    marginal : bool
        True: x_true integrated out analytically (default). False: latent
        ``x_true ~ Normal(x, sigma_x)`` per point (zero errors are floored at 1e-6 so the
        latent normal stays proper).

    Returns
    -------
    pymc.Model
        Free variables ``alpha``, ``beta``, ``eps`` (+ ``x_true``); observed ``y_obs``.

    Raises
    ------
    LineFitInputError
        Lengths differ, fewer than 3 points, NaN/inf values, negative errors, bad priors.
    """
    x, sx, y, sy = _as_arrays(x, sigma_x, y, sigma_y)
    p = _check_priors(priors)
    pm = _pymc()
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


def sampler_settings(draws=None, tune=None, chains=None, full: Mapping = FULL_SAMPLER) -> tuple[dict, bool]:
    """Resolve the sampler size: ``(settings, fast)``.

    Missing values come from :data:`FAST_SAMPLER` in FAST mode (``OCNB_FAST=1``), else from
    ``full``. ``fast`` is True only when all three came from the FAST preset; it selects
    :data:`FAST_BOUNDS` for :attr:`LineFit.converged`.
    """
    fast_mode = config.fast_mode()
    preset = FAST_SAMPLER if fast_mode else full
    s = {"draws": draws, "tune": tune, "chains": chains}
    out = {}
    for k, v in s.items():
        v = preset[k] if v is None else v
        if isinstance(v, bool) or not float(v).is_integer() or int(v) < (0 if k == "tune" else 1):
            raise LineFitInputError(f"{k} must be a whole number >= {0 if k == 'tune' else 1}, got {v!r}")
        out[k] = int(v)
    return out, fast_mode and all(v is None for v in s.values())


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
    *,
    priors: Mapping,
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
    labels: Sequence[str] = ("x", "y"),
    full_sampler: Mapping = FULL_SAMPLER,
    bounds: Mapping | None = None,
) -> LineFit:
    """Sample :func:`line_model` with NUTS and summarise alpha, beta and eps.

    Parameters
    ----------
    x, sigma_x, y, sigma_y : array_like
        The points and their 1-sigma errors.
    priors : dict
        See :func:`line_model` (required).
    draws, tune, chains : int, optional
        Sampler size; missing values from :data:`FAST_SAMPLER` in FAST mode, else from
        ``full_sampler`` (see :func:`sampler_settings`).
    target_accept, seed : NUTS settings (``seed`` fixes the draws on one machine).
    progressbar : bool, optional
        Default: on, except in FAST mode.
    marginal : bool
        Marginal (default) or latent-x form of the model.
    cores : int, optional
        Parallel chains (default min(chains, CPUs)).
    data : DataFrame, optional
        Table kept with the result (default: the four arrays).
    kind, labels : str, (str, str)
        Name of the fit and axis labels with units, for text and plots.
    full_sampler : dict
        Sampler size outside FAST mode (default :data:`FULL_SAMPLER`).
    bounds : dict, optional
        ``r_hat`` and ``ess_bulk`` limits of :attr:`LineFit.converged`; default
        :data:`FAST_BOUNDS` when the FAST preset was used, else :data:`FULL_BOUNDS`.

    Returns
    -------
    LineFit
    """
    x, sx, y, sy = _as_arrays(x, sigma_x, y, sigma_y)
    p = _check_priors(priors)
    settings, fast = sampler_settings(draws, tune, chains, full=full_sampler)
    if not 0 < float(target_accept) < 1:
        raise LineFitInputError(f"target_accept must be in (0, 1), got {target_accept!r}")
    bounds = dict(FAST_BOUNDS if fast else FULL_BOUNDS) if bounds is None else dict(bounds)
    if set(bounds) != {"r_hat", "ess_bulk"}:
        raise LineFitInputError(f"bounds must give r_hat and ess_bulk, got {sorted(bounds)}")
    if progressbar is None:
        progressbar = not config.fast_mode()
    if cores is None:
        cores = max(1, min(settings["chains"], os.cpu_count() or 1))
    pm = _pymc()
    model = line_model(x, sx, y, sy, priors=p, marginal=marginal)
    t0 = time.perf_counter()
    with model, _quiet():
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
            f"FAST mode: {settings['chains']} chains x {settings['tune']} tune / {settings['draws']} draws, "
            f"converged means r_hat < {bounds['r_hat']} and bulk ESS > {bounds['ess_bulk']:.0f} "
            f"(full run: {full_sampler['chains']} x {full_sampler['tune']}/{full_sampler['draws']}, "
            f"r_hat < {FULL_BOUNDS['r_hat']}; run with OCNB_FAST=0)"
        )
    div = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
    with _quiet():
        summary = _summarise(idata)
    return LineFit(
        summary=summary,
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
        bounds=bounds,
        _xy=(x, sx, y, sy),
    )


@dataclass
class LineFit:
    """Posterior of a straight-line fit with errors on both axes (:func:`fit_line`).

    Attributes
    ----------
    summary : DataFrame
        Rows ``alpha, beta, eps``; columns ``mean, sd, p16, p84`` (68 % interval),
        ``r_hat, ess_bulk, ess_tail``.
    idata : arviz.InferenceData
    n : int
        Number of points fitted.
    data : DataFrame
        The points.
    priors, settings : dict
        Priors used; draws, tune, chains, target_accept, seed, marginal, cores.
    fast : bool
        True when the FAST-mode sampler preset was used (see ``notes``).
    wall_time_s : float
        Sampling time including compilation [s].
    divergences : int
    kind, labels : str, (str, str)
    notes : list of str
    bounds : dict
        ``r_hat`` and ``ess_bulk`` limits used by :attr:`converged`.
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
    bounds: dict = field(default_factory=lambda: dict(FULL_BOUNDS))
    _xy: tuple = field(default=(), repr=False)

    @classmethod
    def from_fit(cls, fit: LineFit) -> LineFit:
        """The same fit as an instance of ``cls`` (a subclass adding paper-specific methods)."""
        return cls(**{f.name: getattr(fit, f.name) for f in fields(LineFit)})

    def convergence(self) -> pd.DataFrame:
        """Per parameter: ``r_hat, ess_bulk``, the bounds and whether each is met."""
        s = self.summary
        out = pd.DataFrame(
            {
                "r_hat": s["r_hat"],
                "r_hat_max": self.bounds["r_hat"],
                "ess_bulk": s["ess_bulk"],
                "ess_bulk_min": self.bounds["ess_bulk"],
            }
        )
        out["ok"] = (out["r_hat"] < out["r_hat_max"]) & (out["ess_bulk"] > out["ess_bulk_min"])
        return out

    @property
    def converged(self) -> bool:
        """r_hat < ``bounds["r_hat"]`` and bulk ESS > ``bounds["ess_bulk"]`` for alpha, beta and eps.

        Full runs: r_hat < 1.01, ESS > 400 (:data:`FULL_BOUNDS`); FAST preset: r_hat < 1.05,
        ESS > 400 (:data:`FAST_BOUNDS`).
        """
        return bool(self.convergence()["ok"].all())

    def posterior(self, name: str) -> np.ndarray:
        """Flattened posterior draws of ``alpha``, ``beta`` or ``eps``."""
        if name not in PARAMS:
            raise KeyError(f"no parameter {name!r}; use one of {PARAMS}")
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

    def to_frame(self) -> pd.DataFrame:
        """The summary table with the fit's size, sampler and bounds in ``attrs``."""
        out = self.summary.copy()
        out.attrs.update(
            kind=self.kind,
            n=self.n,
            labels=self.labels,
            settings=dict(self.settings),
            priors=dict(self.priors),
            bounds=dict(self.bounds),
            converged=self.converged,
            divergences=self.divergences,
            fast=self.fast,
        )
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

        ``reference`` (a dict with ``alpha`` and ``beta`` as (mean, sd)) adds a dashed line
        alpha * x + beta from those means. Returns the matplotlib Axes.
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
