"""ocnb's cluster estimator against a classical peer (ASteCA) on the same real clusters.

The comparison itself is run by ``benchmarks/peers/asteca_vs_ocnb.py`` in a source checkout (ASteCA
lives in its own Python ≥ 3.12 environment, made by that script); it writes one small JSON file,
``benchmarks/peers/asteca_vs_ocnb.json``. This module reads such a file from a path you give (the
package does not know where a checkout is, and works installed without one):

* :func:`load_peer_results` — the results of one run (clear errors: missing, unreadable, not JSON,
  not a results file);
* :func:`peer_table` — one row per (cluster, parameter) with both methods' estimates, the
  literature mean and the absolute differences;
* :func:`timing_table` — wall times and speed ratios per cluster;
* :func:`summarize` — median |Δ| per parameter and method over the same clusters, how often each
  method's 16–84 interval contains the literature mean, speed ratios;
* :func:`plot_peer_comparison` — the notebook figure (matplotlib).

The ``benchmarks/RESULTS.md`` section is rendered by ``benchmarks/peers/report.py``, outside the
package. Nothing here imports Keras, ASteCA or anything from ``benchmarks/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "PARAMS",
    "ACCEPTANCE_PARAMS",
    "RUN_COMMAND",
    "load_peer_results",
    "outside_prior",
    "peer_table",
    "timing_table",
    "summarize",
    "plot_peer_comparison",
]

#: Parameters compared, ocnb names (ASteCA's met, loga, Av, dm are mapped onto them).
PARAMS = ("log_age", "feh", "a_v", "dist_mod")
#: Parameters on which the issue's accuracy criterion is judged.
ACCEPTANCE_PARAMS = ("log_age", "dist_mod", "a_v")
UNITS = {"log_age": "dex", "feh": "dex", "a_v": "mag", "dist_mod": "mag"}
LABELS_TEX = {"log_age": "log age", "feh": "[Fe/H] ([M/H] for ASteCA)", "a_v": "A_V", "dist_mod": "dMod"}
METHODS = ("ocnb", "asteca")
METHOD_NAMES = {"ocnb": "ocnb", "asteca": "ASteCA"}
#: Target speed-up of ocnb's fit over ASteCA's fit (issue 9).
SPEED_TARGET = 100.0
#: The command (from a source checkout's root) that writes a results file.
RUN_COMMAND = ".venv/bin/python benchmarks/peers/asteca_vs_ocnb.py"


def load_peer_results(path: str | os.PathLike) -> dict:
    """Results of one ``benchmarks/peers/asteca_vs_ocnb.py`` run, read from ``path``.

    Parameters
    ----------
    path : str or Path
        The JSON file, e.g. ``"../benchmarks/peers/asteca_vs_ocnb.json"`` from a notebook in
        ``notebooks/`` of a source checkout (the package does not guess it: installed, there is
        no ``benchmarks/`` folder).

    Returns
    -------
    dict
        The results, with ``"_path"`` set to the file read.

    Raises
    ------
    TypeError
        ``path`` is not a path (e.g. None).
    FileNotFoundError
        No file at ``path`` (or a folder); the message names the path and the command that writes it.
    ValueError
        The file is not valid JSON (line and column named), or not a results file of that script.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(
            f"load_peer_results needs the path of a results file, e.g. 'benchmarks/peers/asteca_vs_ocnb.json' "
            f"of a source checkout; got {path!r}"
        )
    p = Path(path).expanduser()
    if not p.is_file():
        what = "a folder, not a file" if p.is_dir() else "no such file"
        raise FileNotFoundError(
            f"no peer-benchmark results at {p} ({what}); create them with `{RUN_COMMAND}` from the root of a "
            "source checkout (about 30 min on 2 cores; see benchmarks/README.md)"
        )
    try:
        results = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{p} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); re-run `{RUN_COMMAND}` "
            "or restore the file"
        ) from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{p} is not a text (UTF-8) file: {err}") from None
    missing = [k for k in ("clusters", "settings") if not isinstance(results, dict) or k not in results]
    if missing:
        raise ValueError(f"{p} is not an asteca_vs_ocnb.py results file (no {missing} key)")
    if not isinstance(results["clusters"], list):
        kind = type(results["clusters"]).__name__
        raise ValueError(f"{p}: 'clusters' must be a list of per-cluster records, not {kind}")
    results.setdefault("_path", str(p))
    return results


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------
def _val(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return np.nan
        d = d[k]
    try:
        return float(d)
    except (TypeError, ValueError):
        return np.nan


def _ok(rec: dict, method: str) -> bool:
    return isinstance(rec.get(method), dict) and rec[method].get("status") == "ok"


_TABLE_COLUMNS = (
    ["cluster", "label", "parameter", "lit_mean", "lit_kind", "lit_values"]
    + [f"{m}_{c}" for m in METHODS for c in ("p16", "p50", "p84", "ok", "absdiff", "covers")]
    + ["asteca_seed_sd", "ocnb_low_quality", "lit_outside_prior", "cluster_in_prior"]
)
_TIMING_COLUMNS = [
    "cluster",
    "label",
    "n_stars",
    "ocnb_model",
    "ocnb_fit_s",
    "ocnb_process_s",
    "asteca_fit_s",
    "asteca_process_s",
    "asteca_n_seeds",
    "ratio_fit",
    "ratio_process",
]


#: ASteCA's prior names -> ocnb parameter names.
PRIOR_NAMES = {"loga": "log_age", "met": "feh", "Av": "a_v", "dm": "dist_mod"}


def outside_prior(results: dict, rec: dict) -> list[str]:
    """Parameters whose literature mean lies outside ASteCA's uniform prior for this cluster.

    There ASteCA cannot reach the literature value whatever the data say (e.g. the nearby clusters
    with dMod < 7 under the tutorial's dMod prior 7–14.5).
    """
    priors = (results.get("settings") or {}).get("priors") or {}
    out = []
    for name, (lo, hi) in priors.items():
        k = PRIOR_NAMES.get(name, name)
        v = _val((rec.get("literature") or {}).get(k) or {}, "mean")
        if np.isfinite(v) and not lo <= v <= hi:
            out.append(k)
    return out


def peer_table(results: dict) -> pd.DataFrame:
    """One row per (cluster, parameter).

    Columns: ``cluster, label, parameter, lit_mean, lit_kind, lit_values`` (dict catalogue -> value),
    and per method ``m`` in (``ocnb``, ``asteca``): ``m_p16, m_p50, m_p84, m_ok`` (the method gave an
    estimate), ``m_absdiff`` (|p50 − literature mean|), ``m_covers`` (16–84 contains the literature
    mean; None without a literature value); ``asteca_seed_sd`` (standard deviation of the per-seed
    medians); ``ocnb_low_quality``; ``lit_outside_prior`` (this parameter's literature mean is
    outside ASteCA's prior) and ``cluster_in_prior`` (no parameter of the cluster is).
    """
    rows = []
    for rec in results["clusters"]:
        outside = outside_prior(results, rec)
        for k in PARAMS:
            lit = (rec.get("literature") or {}).get(k) or {}
            row = {
                "cluster": rec["cluster"],
                "label": rec.get("label", rec["cluster"]),
                "parameter": k,
                "lit_mean": _val(lit, "mean"),
                "lit_kind": lit.get("kind", ""),
                "lit_values": dict(lit.get("catalogs") or {}),
            }
            for m in METHODS:
                ok = _ok(rec, m)
                res = rec.get(m) or {}
                p16, p50, p84 = (_val(res, q, k) if ok else np.nan for q in ("p16", "p50", "p84"))
                row.update({f"{m}_p16": p16, f"{m}_p50": p50, f"{m}_p84": p84, f"{m}_ok": ok})
                d = abs(p50 - row["lit_mean"])
                row[f"{m}_absdiff"] = d
                row[f"{m}_covers"] = (
                    bool(p16 <= row["lit_mean"] <= p84)
                    if np.isfinite(d) and np.isfinite(p16) and np.isfinite(p84)
                    else None
                )
            row["asteca_seed_sd"] = _val(rec.get("asteca") or {}, "seed_sd", k)
            row["ocnb_low_quality"] = bool((rec.get("ocnb") or {}).get("low_quality", False))
            row["lit_outside_prior"] = k in outside
            row["cluster_in_prior"] = not outside
            rows.append(row)
    tab = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    num = ["lit_mean", "asteca_seed_sd"] + [
        f"{m}_{c}" for m in METHODS for c in ("p16", "p50", "p84", "absdiff")
    ]
    tab[num] = tab[num].astype(float)
    for c in ("ocnb_ok", "asteca_ok", "ocnb_low_quality", "lit_outside_prior", "cluster_in_prior"):
        tab[c] = tab[c].astype(bool)
    return tab


def timing_table(results: dict) -> pd.DataFrame:
    """One row per cluster: star counts, fit-alone and whole-process wall times [s] and their ratios.

    ``ratio_fit`` = ASteCA fit time / ocnb fit time (median over ASteCA's seeds and over ocnb's
    repeats), ``ratio_process`` the same for whole processes; NaN where a side is missing.
    """
    rows = []
    for rec in results["clusters"]:
        o, a = rec.get("ocnb") or {}, rec.get("asteca") or {}
        row = {
            "cluster": rec["cluster"],
            "label": rec.get("label", rec["cluster"]),
            "n_stars": rec.get("n_stars_cmd"),
            "ocnb_model": rec.get("ocnb_bands"),
            "ocnb_fit_s": _val(o, "fit_s") if _ok(rec, "ocnb") else np.nan,
            "ocnb_process_s": _val(o, "process_s") if _ok(rec, "ocnb") else np.nan,
            "asteca_fit_s": _val(a, "fit_s") if _ok(rec, "asteca") else np.nan,
            "asteca_process_s": _val(a, "process_s") if _ok(rec, "asteca") else np.nan,
            "asteca_n_seeds": len([r for r in a.get("runs", []) if r.get("status") == "ok"]),
        }
        row["ratio_fit"] = row["asteca_fit_s"] / row["ocnb_fit_s"]
        row["ratio_process"] = row["asteca_process_s"] / row["ocnb_process_s"]
        rows.append(row)
    tim = pd.DataFrame(rows, columns=_TIMING_COLUMNS)
    num = [c for c in _TIMING_COLUMNS if c.endswith("_s") or c.startswith("ratio")]
    tim[num] = tim[num].astype(float)
    return tim


def summarize(results: dict, in_prior_only: bool = False) -> dict:
    """Headline numbers over the clusters where both methods and the literature give a value.

    Returns
    -------
    dict
        ``per_param``: {param: {n, median_absdiff_ocnb, median_absdiff_asteca, coverage_ocnb,
        coverage_asteca, ocnb_worse}}; ``speed``: {n, median_ratio_fit, min_ratio_fit,
        n_at_least_target, median_ratio_process, target}; ``accuracy_ok`` (ocnb no worse on
        :data:`ACCEPTANCE_PARAMS`), ``speed_ok`` (every compared cluster ≥ the target), and
        ``worse`` (the parameters on which ocnb's median |Δ| is larger); ``n_clusters``.
        With ``in_prior_only`` only the clusters whose literature values all lie inside ASteCA's
        priors are used (:func:`outside_prior`).
    """
    tab = peer_table(results)
    if in_prior_only:
        tab = tab[tab.cluster_in_prior]
    per = {}
    for k in PARAMS:
        t = tab[(tab.parameter == k) & tab.ocnb_ok & tab.asteca_ok & np.isfinite(tab.lit_mean)]
        entry = {"n": len(t)}
        for m in METHODS:
            entry[f"median_absdiff_{m}"] = float(np.median(t[f"{m}_absdiff"])) if len(t) else np.nan
            cov = [c for c in t[f"{m}_covers"] if c is not None]
            entry[f"coverage_{m}"] = float(np.mean(cov)) if cov else np.nan
            entry[f"n_covered_{m}"] = int(np.sum(cov)) if cov else 0
        entry["ocnb_worse"] = bool(len(t) and entry["median_absdiff_ocnb"] > entry["median_absdiff_asteca"])
        per[k] = entry
    tim = timing_table(results)
    if in_prior_only:
        tim = tim[tim.cluster.isin(set(tab.cluster))]
    both = tim[np.isfinite(tim.ratio_fit)]
    speed = {
        "n": len(both),
        "target": SPEED_TARGET,
        "median_ratio_fit": float(np.median(both.ratio_fit)) if len(both) else np.nan,
        "min_ratio_fit": float(np.min(both.ratio_fit)) if len(both) else np.nan,
        "n_at_least_target": int((both.ratio_fit >= SPEED_TARGET).sum()),
        "median_ratio_process": (
            float(np.median(both.ratio_process.dropna())) if both.ratio_process.notna().any() else np.nan
        ),
        "median_fit_s_ocnb": float(np.median(both.ocnb_fit_s)) if len(both) else np.nan,
        "median_fit_s_asteca": float(np.median(both.asteca_fit_s)) if len(both) else np.nan,
    }
    worse = [k for k in PARAMS if per[k]["ocnb_worse"]]
    return {
        "per_param": per,
        "speed": speed,
        "worse": worse,
        "accuracy_ok": bool(all(per[k]["n"] and not per[k]["ocnb_worse"] for k in ACCEPTANCE_PARAMS)),
        "speed_ok": bool(speed["n"] and speed["n_at_least_target"] == speed["n"]),
        "n_clusters": int(tab.cluster.nunique()),
    }


# ---------------------------------------------------------------------------
# formatting for the figure's titles
# ---------------------------------------------------------------------------
def _f(x, nd=2):
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _ratio(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"


# ---------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------
def plot_peer_comparison(results: dict, fig=None):
    """|Δ| from the literature mean, ocnb vs ASteCA per cluster (one panel per parameter), and wall times.

    Parameters
    ----------
    results : dict
        From :func:`load_peer_results`.
    fig : matplotlib.figure.Figure, optional
        Draw into this figure (default: a new one).

    Returns
    -------
    matplotlib.figure.Figure
        Panels 1–4: ASteCA's |Δ| (x) against ocnb's |Δ| (y) per cluster; points below the diagonal
        are clusters where ocnb is closer to the literature (grey crosses: a literature value of the
        cluster lies outside ASteCA's prior, see :func:`outside_prior`). Panel 5: fit wall time per cluster of both
        methods (log scale) with the median speed ratio.
    """
    import matplotlib.pyplot as plt

    if not isinstance(results, dict) or "clusters" not in results:
        raise TypeError("plot_peer_comparison needs the results dict from load_peer_results(path)")
    tab = peer_table(results)
    s = summarize(results)
    if fig is None:
        fig = plt.figure(figsize=(15, 6.2))
    gs = fig.add_gridspec(2, 4, height_ratios=[1.0, 0.8], hspace=0.45, wspace=0.32)
    for i, k in enumerate(PARAMS):
        ax = fig.add_subplot(gs[0, i])
        t = tab[(tab.parameter == k) & tab.ocnb_ok & tab.asteca_ok & np.isfinite(tab.lit_mean)]
        groups = [
            (t.cluster_in_prior & ~t.ocnb_low_quality, dict(color="C0", label="both estimated")),
            (
                t.cluster_in_prior & t.ocnb_low_quality,
                dict(facecolor="none", edgecolor="C0", label="ocnb flags low quality"),
            ),
            (~t.cluster_in_prior, dict(color="0.55", marker="x", label="literature outside ASteCA's prior")),
        ]
        for sel, style in groups:
            if sel.any():
                ax.scatter(t.asteca_absdiff[sel], t.ocnb_absdiff[sel], s=22, **style)
        top = float(np.nanmax(np.r_[t.asteca_absdiff, t.ocnb_absdiff, 0.05])) * 1.08 if len(t) else 1.0
        ax.plot([0, top], [0, top], color="0.5", lw=0.8, ls="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        e = s["per_param"][k]
        ax.set_title(
            f"{LABELS_TEX[k]}\nmedian |Δ|: ocnb {_f(e['median_absdiff_ocnb'], 2)}, "
            f"ASteCA {_f(e['median_absdiff_asteca'], 2)}",
            fontsize=9,
        )
        ax.set_xlabel(f"|ASteCA − literature| [{UNITS[k]}]", fontsize=8)
        ax.set_ylabel(f"|ocnb − literature| [{UNITS[k]}]", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    ax = fig.add_subplot(gs[1, :])
    tim = timing_table(results)
    x = np.arange(len(tim))
    ax.bar(x - 0.2, tim.asteca_fit_s, width=0.4, color="C1", label="ASteCA fit (median of seeds)")
    ax.bar(x + 0.2, tim.ocnb_fit_s, width=0.4, color="C0", label="ocnb fit (estimate())")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(tim.label, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("wall time per cluster [s]", fontsize=8)
    sp = s["speed"]
    ax.set_title(
        f"fit time per cluster, same run: median ratio {_ratio(sp['median_ratio_fit'])} "
        f"(min {_ratio(sp['min_ratio_fit'])}); whole process {_ratio(sp['median_ratio_process'])}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.suptitle(
        f"ocnb vs ASteCA on {len(tim)} real clusters ({results.get('created', '')[:10]}, "
        f"{results.get('machine', {}).get('cores', '?')} cores)",
        fontsize=10,
    )
    return fig
