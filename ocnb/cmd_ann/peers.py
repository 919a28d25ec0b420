"""ocnb's cluster estimator against a classical peer (ASteCA) on the same real clusters.

The comparison itself is run by ``benchmarks/peers/asteca_vs_ocnb.py`` in a source checkout (ASteCA
lives in its own Python ≥ 3.12 environment, made by that script); it writes one small JSON file,
``benchmarks/peers/asteca_vs_ocnb.json``. This module reads such a file from a path you give (the
package does not know where a checkout is, and works installed without one):

* :func:`load_peer_results` — the results of one run (clear errors: missing, unreadable, not JSON,
  not a results file, unknown schema);
* :func:`methods` — the estimates a file holds: issue 14's schema-2 files ocnb's fast and refined
  mode and ASteCA with issue 9's and with wide priors (``ocnb_fast, ocnb_refined, asteca_issue9,
  asteca_wide``), issue 9's schema-1 files ``ocnb, asteca``;
* :func:`peer_table` — one row per (cluster, parameter) with every method's estimate, the
  literature mean and the absolute differences;
* :func:`timing_table` — wall times and speed ratios per cluster;
* :func:`summarize` — median |Δ| per parameter and method over the same clusters, how often each
  method's 16–84 interval contains the literature mean, speed ratios and (schema 2) issue 14's
  verdicts "ocnb refined no worse than the better ASteCA setting";
* :func:`mode_table` — that summary as one small table for the notebook;
* :func:`with_current_floors` — a run's refined intervals rebuilt with the systematic floors ocnb ships now
  (the fits, medians and posterior widths are the run's; only the floor added in quadrature changes);
* :func:`plot_peer_comparison` — the notebook figure (matplotlib).

Schema-1 files give exactly the tables and keys of issue 9 (``ocnb_*`` / ``asteca_*`` columns).
Schema-2 files also carry those two as aliases (``ocnb`` = refined, or fast where refinement failed;
``asteca`` = issue-9 priors); ``methods=("ocnb", "asteca")`` gives that old view of a new file.

The ``benchmarks/RESULTS.md`` section is rendered by ``benchmarks/peers/report.py``, outside the
package. Nothing here imports Keras, ASteCA or anything from ``benchmarks/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "PARAMS",
    "ACCEPTANCE_PARAMS",
    "RUN_COMMAND",
    "METHODS_V2",
    "SPEED_TARGETS",
    "load_peer_results",
    "method_label",
    "methods",
    "mode_table",
    "outside_prior",
    "peer_table",
    "timing_table",
    "summarize",
    "plot_peer_comparison",
    "with_current_floors",
]

#: Parameters compared, ocnb names (ASteCA's met, loga, Av, dm are mapped onto them).
PARAMS = ("log_age", "feh", "a_v", "dist_mod")
#: Parameters on which the issue's accuracy criterion is judged.
ACCEPTANCE_PARAMS = ("log_age", "dist_mod", "a_v")
UNITS = {"log_age": "dex", "feh": "dex", "a_v": "mag", "dist_mod": "mag"}
LABELS_TEX = {"log_age": "log age", "feh": "[Fe/H] ([M/H] for ASteCA)", "a_v": "A_V", "dist_mod": "dMod"}
LABELS_SHORT = {"log_age": "log age", "feh": "[Fe/H]", "a_v": "A_V", "dist_mod": "dMod"}
#: The two estimates of a schema-1 file (issue 9); aliases in a schema-2 file.
METHODS = ("ocnb", "asteca")
#: The four estimates of a schema-2 file (issue 14), in table order.
METHODS_V2 = ("ocnb_fast", "ocnb_refined", "asteca_issue9", "asteca_wide")
METHOD_NAMES = {
    "ocnb": "ocnb",
    "asteca": "ASteCA",
    "ocnb_fast": "ocnb fast",
    "ocnb_refined": "ocnb refined",
    "asteca_issue9": "ASteCA, issue-9 priors",
    "asteca_wide": "ASteCA, wide priors",
}
#: Target speed-up of ocnb's fit over ASteCA's fit (issue 9).
SPEED_TARGET = 100.0
#: Issue 14's targets per ocnb mode (median over clusters of ASteCA fit / ocnb fit): the refined fit
#: ≥ 10×, the fast mode stays ≥ 100×; the schema-1 alias keeps issue 9's target.
SPEED_TARGETS = {"ocnb_fast": 100.0, "ocnb_refined": 10.0, "ocnb": SPEED_TARGET}
#: Schemas of the results files this module reads.
SCHEMAS = (1, 2)
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
        The file is not valid JSON (line and column named), not a results file of that script, or
        of a schema this version does not read (:data:`SCHEMAS`).
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
    schema = results.get("schema", 1)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema not in SCHEMAS:
        raise ValueError(
            f"{p}: results schema {schema!r} is not one this ocnb reads {SCHEMAS}; update ocnb or re-run "
            f"`{RUN_COMMAND}`"
        )
    results.setdefault("_path", str(p))
    return results


def _schema(results: dict) -> int:
    s = results.get("schema", 1)
    return s if isinstance(s, int) and not isinstance(s, bool) else 1


def _check_results(results, fn: str) -> None:
    """A clear error for something that is not a results dict (the functions below take the dict)."""
    if not isinstance(results, dict):
        raise TypeError(f"{fn} needs the results dict from load_peer_results(path), not {type(results).__name__}")
    if not isinstance(results.get("clusters"), list):
        raise ValueError(
            f"{fn}: the results dict has no 'clusters' list of per-cluster records (keys: {sorted(results)}); "
            "read the file with load_peer_results(path)"
        )


def _family(m: str) -> str:
    """'ocnb' or 'asteca': which estimator a method key belongs to."""
    return "ocnb" if m.startswith("ocnb") else "asteca"


def methods(results: dict) -> list[str]:
    """The methods a results file compares, in table order.

    Schema 2: those of :data:`METHODS_V2` with an estimate (status ``ok``) for at least one cluster
    (a method that was not run, or failed everywhere, is left out rather than emptying every
    comparison); schema 1: ``["ocnb", "asteca"]``.
    """
    _check_results(results, "methods")
    if _schema(results) >= 2:
        return [m for m in METHODS_V2 if any(_ok(rec, m) for rec in results["clusters"])]
    return list(METHODS)


def method_label(results: dict, m: str) -> str:
    """Display name of method ``m`` ("ocnb refined", "ASteCA, wide priors (dMod 2–14.5)", ...)."""
    label = (((results.get("settings") or {}).get("asteca_settings") or {}).get(m) or {}).get("label")
    return f"ASteCA, {label}" if label else METHOD_NAMES.get(m, m)


def _resolve_methods(results: dict, chosen, fn: str) -> list[str]:
    """``chosen`` (None: :func:`methods`; a key; or keys) checked against the file."""
    _check_results(results, fn)
    if chosen is None:
        return methods(results)
    chosen = [chosen] if isinstance(chosen, str) else list(chosen)
    known = METHODS_V2 + METHODS
    present = {k for rec in results["clusters"] for k in rec if k in known and isinstance(rec[k], dict)}
    for m in chosen:
        if m not in known:
            raise ValueError(f"{fn}: unknown method {m!r}; methods are {list(known)} (this file: {methods(results)})")
        if m not in present:
            raise ValueError(
                f"{fn}: method {m!r} is not in this results file (schema {_schema(results)}; its methods: "
                f"{methods(results)})"
            )
    if not chosen:
        raise ValueError(f"{fn}: methods is empty; give None (all) or some of {methods(results)}")
    return list(dict.fromkeys(chosen))


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


def _param_rows(results: dict, ms: list[str] | tuple[str, ...]) -> Iterator[tuple[dict, str, dict]]:
    """The cells every (cluster, parameter) table shares, one row dict per cluster and parameter.

    Yields ``(rec, k, row)``: the cluster's record, the parameter and its row with ``cluster, label,
    parameter, lit_mean, lit_kind, lit_values, lit_outside_prior, cluster_in_prior`` and, per method
    ``m`` of ``ms``, ``m_p16, m_p50, m_p84, m_ok, m_absdiff, m_covers``; the callers add their own
    columns (and keep only theirs, through the DataFrame's ``columns``).
    """
    for rec in results.get("clusters", []):
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
                "lit_outside_prior": k in outside,
                "cluster_in_prior": not outside,
            }
            for m in ms:
                row.update(_estimate_cells(rec, m, k, row["lit_mean"]))
            yield rec, k, row


def _estimate_cells(rec: dict, m: str, k: str, lit_mean: float) -> dict:
    """Method ``m``'s cells of parameter ``k`` in a cluster's row: ``m_p16, m_p50, m_p84, m_ok, m_absdiff,
    m_covers`` (|p50 − literature mean|; 16–84 contains the literature mean, None without a value)."""
    # a method whose status is not "ok" (failed, skipped, not run) gives no numbers for this cluster,
    # whatever numbers its record may hold
    ok = _ok(rec, m)
    p16, p50, p84 = (_val(rec[m], q, k) if ok else np.nan for q in ("p16", "p50", "p84"))
    d = abs(p50 - lit_mean)
    covers = bool(p16 <= lit_mean <= p84) if np.isfinite(d) and np.isfinite(p16) and np.isfinite(p84) else None
    return {f"{m}_p16": p16, f"{m}_p50": p50, f"{m}_p84": p84, f"{m}_ok": ok, f"{m}_absdiff": d, f"{m}_covers": covers}


def _peer_table_v1(results: dict) -> pd.DataFrame:
    """One row per (cluster, parameter).

    Columns: ``cluster, label, parameter, lit_mean, lit_kind, lit_values`` (dict catalogue -> value),
    and per method ``m`` in (``ocnb``, ``asteca``): ``m_p16, m_p50, m_p84, m_ok`` (the method gave an
    estimate), ``m_absdiff`` (|p50 − literature mean|), ``m_covers`` (16–84 contains the literature
    mean; None without a literature value); ``asteca_seed_sd`` (standard deviation of the per-seed
    medians); ``ocnb_low_quality``; ``lit_outside_prior`` (this parameter's literature mean is
    outside ASteCA's prior) and ``cluster_in_prior`` (no parameter of the cluster is).
    """
    rows = []
    for rec, k, row in _param_rows(results, METHODS):
        row["asteca_seed_sd"] = _val(rec.get("asteca") or {}, "seed_sd", k)
        row["ocnb_low_quality"] = bool((rec.get("ocnb") or {}).get("low_quality", False))
        rows.append(row)
    tab = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    num = ["lit_mean", "asteca_seed_sd"] + [
        f"{m}_{c}" for m in METHODS for c in ("p16", "p50", "p84", "absdiff")
    ]
    tab[num] = tab[num].astype(float)
    for c in ("ocnb_ok", "asteca_ok", "ocnb_low_quality", "lit_outside_prior", "cluster_in_prior"):
        tab[c] = tab[c].astype(bool)
    return tab


def _timing_table_v1(results: dict) -> pd.DataFrame:
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


def _summarize_v1(results: dict, in_prior_only: bool = False) -> dict:
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
    tab = _peer_table_v1(results)
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
    tim = _timing_table_v1(results)
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
# formatting for the figure's titles (the markdown report of a source checkout imports these too)
# ---------------------------------------------------------------------------
def _f(x, nd=2):
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _n_clusters(n: int) -> str:
    return f"{n} cluster" + ("" if n == 1 else "s")


def _ratio(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"


# ---------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------
def _plot_v1(results: dict, fig=None):
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
    tab = _peer_table_v1(results)
    s = _summarize_v1(results)
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
    tim = _timing_table_v1(results)
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


# ---------------------------------------------------------------------------
# every method of a file (schema 2: ocnb fast / refined, ASteCA issue-9 / wide priors)
# ---------------------------------------------------------------------------
def _peer_table_methods(results: dict, ms: list[str]) -> pd.DataFrame:
    """:func:`peer_table` for the methods ``ms`` (any schema)."""
    per_method = ("p16", "p50", "p84", "ok", "absdiff", "covers")
    cols = ["cluster", "label", "parameter", "lit_mean", "lit_kind", "lit_values"]
    for m in ms:
        cols += [f"{m}_{c}" for c in per_method]
        cols += [f"{m}_low_quality", f"{m}_quality"] if _family(m) == "ocnb" else [f"{m}_seed_sd"]
    cols += ["lit_outside_prior", "cluster_in_prior"]
    rows = []
    for rec, k, row in _param_rows(results, ms):
        for m in ms:
            res = rec[m] if row[f"{m}_ok"] else {}  # as its estimate: no flags from a method that is not "ok"
            if _family(m) == "ocnb":
                row[f"{m}_low_quality"] = bool(res.get("low_quality", False))
                row[f"{m}_quality"] = str(res.get("quality", ""))
            else:
                row[f"{m}_seed_sd"] = _val(res, "seed_sd", k)
        rows.append(row)
    tab = pd.DataFrame(rows, columns=cols)
    num = ["lit_mean"] + [f"{m}_{c}" for m in ms for c in ("p16", "p50", "p84", "absdiff")]
    num += [f"{m}_seed_sd" for m in ms if _family(m) == "asteca"]
    tab[num] = tab[num].astype(float)
    flags = [f"{m}_ok" for m in ms] + [f"{m}_low_quality" for m in ms if _family(m) == "ocnb"]
    for c in flags + ["lit_outside_prior", "cluster_in_prior"]:
        tab[c] = tab[c].astype(bool)
    return tab


def _timing_table_methods(results: dict, ms: list[str]) -> pd.DataFrame:
    """:func:`timing_table` for the methods ``ms`` (any schema)."""
    ocnbs = [m for m in ms if _family(m) == "ocnb"]
    astecas = [m for m in ms if _family(m) == "asteca"]
    cols = ["cluster", "label", "n_stars", "ocnb_model"]
    for m in ms:
        cols += [f"{m}_fit_s", f"{m}_process_s"] + ([f"{m}_n_seeds"] if m in astecas else [])
    cols += ["asteca_ref", "asteca_ref_fit_s", "asteca_ref_process_s"]
    cols += [f"ratio_{r}_{o}" for o in ocnbs for r in ("fit", "process")]
    rows = []
    for rec in results["clusters"]:
        row = {
            "cluster": rec["cluster"],
            "label": rec.get("label", rec["cluster"]),
            "n_stars": rec.get("n_stars_cmd"),
            "ocnb_model": rec.get("ocnb_bands"),
        }
        for m in ms:
            ok = _ok(rec, m)
            res = rec.get(m) if isinstance(rec.get(m), dict) else {}
            row[f"{m}_fit_s"] = _val(res, "fit_s") if ok else np.nan
            row[f"{m}_process_s"] = _val(res, "process_s") if ok else np.nan
            if m in astecas:
                row[f"{m}_n_seeds"] = len([r for r in res.get("runs", []) if r.get("status") == "ok"]) if ok else 0
        # the speed-up is taken against the FASTER ASteCA setting of the cluster: the smaller,
        # conservative ratio (as benchmarks/peers/report.py does for RESULTS.md)
        fits = {a: row[f"{a}_fit_s"] for a in astecas if np.isfinite(row[f"{a}_fit_s"])}
        ref = min(fits, key=fits.get) if fits else None
        row["asteca_ref"] = ref
        row["asteca_ref_fit_s"] = fits[ref] if ref else np.nan
        row["asteca_ref_process_s"] = row[f"{ref}_process_s"] if ref else np.nan
        for o in ocnbs:
            row[f"ratio_fit_{o}"] = row["asteca_ref_fit_s"] / row[f"{o}_fit_s"]
            row[f"ratio_process_{o}"] = row["asteca_ref_process_s"] / row[f"{o}_process_s"]
        rows.append(row)
    tim = pd.DataFrame(rows, columns=cols)
    num = [c for c in cols if c.endswith("_s") or c.startswith("ratio")]
    tim[num] = tim[num].astype(float)
    return tim


def _median(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.median(x)) if len(x) else np.nan


def _all_or_none(flags) -> bool | None:
    """True/False over verdicts; None when any of them cannot be judged (or there are none)."""
    flags = list(flags)
    return None if not flags or any(f is None for f in flags) else bool(all(flags))


def _summarize_methods(results: dict, ms: list[str], in_prior_only: bool) -> dict:
    """:func:`summarize` for the methods ``ms`` (any schema): issue 14's numbers and verdicts."""
    ocnbs = [m for m in ms if _family(m) == "ocnb"]
    astecas = [m for m in ms if _family(m) == "asteca"]
    main = "ocnb_refined" if "ocnb_refined" in ocnbs else (ocnbs[0] if ocnbs else None)
    tab = _peer_table_methods(results, ms)
    if in_prior_only:
        tab = tab[tab.cluster_in_prior]
    per = {}
    for k in PARAMS:
        # the SAME clusters for every method: a literature value and an estimate of each method
        sel = (tab.parameter == k) & np.isfinite(tab.lit_mean)
        for m in ms:
            sel &= tab[f"{m}_ok"]
        t = tab[sel]
        e = {"n": len(t)}
        for m in ms:
            e[f"median_absdiff_{m}"] = _median(t[f"{m}_absdiff"])
            cov = [bool(c) for c in t[f"{m}_covers"] if c is not None]
            e[f"coverage_{m}"] = float(np.mean(cov)) if cov else np.nan
            e[f"n_covered_{m}"] = int(np.sum(cov)) if cov else 0
        meds = {a: e[f"median_absdiff_{a}"] for a in astecas if np.isfinite(e[f"median_absdiff_{a}"])}
        best = min(meds, key=meds.get) if meds else None
        e["best_asteca"] = best
        e["median_absdiff_best_asteca"] = meds[best] if best else np.nan
        for o in ocnbs:
            ours = e[f"median_absdiff_{o}"]
            e[f"{o}_no_worse"] = bool(ours <= meds[best]) if best and np.isfinite(ours) else None
            # issue 14: the interval contains the literature mean at least as often as ASteCA's does,
            # under either prior setting
            e[f"{o}_covers_no_less"] = (
                bool(all(e[f"n_covered_{o}"] >= e[f"n_covered_{a}"] for a in astecas)) if e["n"] and astecas else None
            )
        per[k] = e
    tim = _timing_table_methods(results, ms)
    if in_prior_only:
        tim = tim[tim.cluster.isin(set(tab.cluster))]
    speed = {}
    for o in ocnbs:
        r = tim[f"ratio_fit_{o}"]
        ok = np.isfinite(r)
        rp = tim.loc[ok, f"ratio_process_{o}"]
        rp = rp[np.isfinite(rp)]
        target = SPEED_TARGETS.get(o, SPEED_TARGET)
        speed[o] = {
            "n": int(ok.sum()),
            "target": target,
            "median_ratio_fit": _median(r[ok]),
            "min_ratio_fit": float(np.min(r[ok])) if ok.any() else np.nan,
            "n_at_least_target": int((r[ok] >= target).sum()),
            "median_ratio_process": _median(rp),
            "median_fit_s": _median(tim.loc[ok, f"{o}_fit_s"]),
        }
    for a in astecas:
        f = tim[f"{a}_fit_s"]
        speed[a] = {"n": int(np.isfinite(f).sum()), "median_fit_s": _median(f[np.isfinite(f)])}
    verdicts = {
        "accuracy": {o: _all_or_none(per[k][f"{o}_no_worse"] for k in PARAMS) for o in ocnbs},
        "coverage": {o: _all_or_none(per[k][f"{o}_covers_no_less"] for k in PARAMS) for o in ocnbs},
        "speed": {
            o: None if not speed[o]["n"] else bool(speed[o]["median_ratio_fit"] >= speed[o]["target"])
            for o in ocnbs
        },
    }
    return {
        "schema": _schema(results),
        "methods": list(ms),
        "main": main,
        "per_param": per,
        "speed": speed,
        "verdicts": verdicts,
        "worse": [k for k in PARAMS if main and per[k][f"{main}_no_worse"] is False],
        "accuracy_ok": verdicts["accuracy"].get(main),
        "coverage_ok": verdicts["coverage"].get(main),
        "speed_ok": _all_or_none(verdicts["speed"].values()),
        "n_clusters": int(tab.cluster.nunique()),
    }


# ---------------------------------------------------------------------------
# public tables
# ---------------------------------------------------------------------------
def peer_table(results: dict, methods=None) -> pd.DataFrame:
    """One row per (cluster, parameter).

    Parameters
    ----------
    results : dict
        From :func:`load_peer_results`.
    methods : str or sequence of str, optional
        Method keys (:func:`methods`); default all the file holds.

    Returns
    -------
    pandas.DataFrame
        ``cluster, label, parameter, lit_mean, lit_kind, lit_values`` (dict catalogue -> value), and
        per method ``m``: ``m_p16, m_p50, m_p84`` [dex or mag], ``m_ok`` (the method gave an estimate
        for this cluster: status ``ok``; otherwise its numbers are NaN), ``m_absdiff`` (|p50 −
        literature mean|), ``m_covers`` (16–84 contains the literature mean; None without a value);
        for ocnb methods ``m_low_quality``, ``m_quality``; for ASteCA settings ``m_seed_sd`` (standard
        deviation of the per-seed medians); ``lit_outside_prior`` (this parameter's literature mean is
        outside ASteCA's issue-9 prior) and ``cluster_in_prior`` (no parameter of the cluster is).
        A schema-1 file with ``methods=None`` gives issue 9's columns exactly (``ocnb_*``, ``asteca_*``,
        ``asteca_seed_sd``, ``ocnb_low_quality``).
    """
    if methods is None and isinstance(results, dict) and _schema(results) < 2:
        _check_results(results, "peer_table")
        return _peer_table_v1(results)
    return _peer_table_methods(results, _resolve_methods(results, methods, "peer_table"))


def timing_table(results: dict, methods=None) -> pd.DataFrame:
    """One row per cluster: star counts, fit-alone and whole-process wall times [s] and their ratios.

    Per method ``m``: ``m_fit_s`` (ocnb: median of its repeats; ASteCA: median over seeds) and
    ``m_process_s``; per ASteCA setting ``m_n_seeds``; ``asteca_ref`` — the faster ASteCA setting of
    the cluster, and ``ratio_fit_<ocnb mode>`` = its fit time / that mode's fit time (the smaller,
    conservative ratio), ``ratio_process_<ocnb mode>`` the same for whole processes; NaN where a side
    is missing. A schema-1 file with ``methods=None`` gives issue 9's columns exactly (``ocnb_fit_s``,
    ``asteca_fit_s``, ``ratio_fit``, ``ratio_process``, ...).
    """
    if methods is None and isinstance(results, dict) and _schema(results) < 2:
        _check_results(results, "timing_table")
        return _timing_table_v1(results)
    return _timing_table_methods(results, _resolve_methods(results, methods, "timing_table"))


def summarize(results: dict, in_prior_only: bool = False, methods=None) -> dict:
    """Headline numbers over the clusters where every method compared and the literature give a value.

    Parameters
    ----------
    results : dict
        From :func:`load_peer_results`.
    in_prior_only : bool
        Only the clusters whose literature values all lie inside ASteCA's issue-9 priors
        (:func:`outside_prior`).
    methods : str or sequence of str, optional
        Method keys (:func:`methods`); default all the file holds.

    Returns
    -------
    dict
        **Schema 1, methods=None** (issue 9, unchanged): ``per_param``: {param: {n,
        median_absdiff_ocnb, median_absdiff_asteca, coverage_ocnb, coverage_asteca, n_covered_ocnb,
        n_covered_asteca, ocnb_worse}}; ``speed``: {n, median_ratio_fit, min_ratio_fit,
        n_at_least_target, median_ratio_process, target, median_fit_s_ocnb, median_fit_s_asteca};
        ``accuracy_ok`` (ocnb no worse on :data:`ACCEPTANCE_PARAMS`), ``speed_ok`` (every compared
        cluster ≥ the target), ``worse``, ``n_clusters``.

        **Otherwise** (issue 14): ``methods``; ``main`` (the ocnb method the verdicts are about:
        ``ocnb_refined`` when compared); ``per_param``: {param: {n, and per method m
        median_absdiff_m [dex or mag], coverage_m (fraction), n_covered_m; best_asteca (the ASteCA
        setting with the lower median |Δ|) and median_absdiff_best_asteca; per ocnb method o
        o_no_worse (o's median |Δ| ≤ the better ASteCA setting's) and o_covers_no_less (o's 16–84
        interval contains the literature mean at least as often as every ASteCA setting's)}} — flat,
        so ``pd.DataFrame(s["per_param"]).T`` is a table; ``speed``: per ocnb method {n, target
        (:data:`SPEED_TARGETS`), median_ratio_fit, min_ratio_fit, n_at_least_target,
        median_ratio_process, median_fit_s} against the faster ASteCA setting per cluster, per ASteCA
        setting {n, median_fit_s}; ``verdicts``: {accuracy, coverage, speed: {ocnb method: bool or
        None}} over all four parameters (None: cannot be judged, e.g. no ASteCA estimate);
        ``accuracy_ok``, ``coverage_ok`` (of ``main``), ``speed_ok`` (every ocnb mode at its median
        target), ``worse`` (parameters where ``main`` is worse), ``n_clusters``.
    """
    if methods is None and isinstance(results, dict) and _schema(results) < 2:
        _check_results(results, "summarize")
        return _summarize_v1(results, in_prior_only=in_prior_only)
    return _summarize_methods(results, _resolve_methods(results, methods, "summarize"), in_prior_only)


def mode_table(results: dict, in_prior_only: bool = False, methods=None) -> pd.DataFrame:
    """Median |Δ| from the literature mean per parameter and method, with the coverage count.

    Parameters
    ----------
    results : dict
        From :func:`load_peer_results`.
    in_prior_only : bool
        Only the clusters whose literature values all lie inside ASteCA's issue-9 priors.
    methods : str or sequence of str, optional
        Method keys (:func:`methods`); default all the file holds.

    Returns
    -------
    pandas.DataFrame
        Rows: the parameters (with units); columns: ``clusters`` (how many clusters every method
        estimated), one per method, cell ``"0.123 (14/20)"`` = median |Δ| (14 of 20 16–84 intervals
        contain the literature mean), ``better ASteCA`` (the setting with the lower median |Δ|) and
        ``<main> no worse?`` ("yes"/"no"/"—": the issue-14 verdict). The numbers are those of
        :func:`summarize` with the same arguments.
    """
    ms = _resolve_methods(results, methods, "mode_table")
    s = _summarize_methods(results, ms, in_prior_only)
    main = s["main"]
    verdict_col = f"{METHOD_NAMES.get(main, main)} no worse?" if main else None
    rows = {}
    for k in PARAMS:
        e = s["per_param"][k]
        row = {"clusters": e["n"]}
        for m in ms:
            med = e[f"median_absdiff_{m}"]
            row[METHOD_NAMES[m]] = f"{med:.3f} ({e[f'n_covered_{m}']}/{e['n']})" if np.isfinite(med) else "—"
        if any(_family(m) == "asteca" for m in ms):
            best = e["best_asteca"]
            row["better ASteCA"] = METHOD_NAMES[best].replace("ASteCA, ", "") if best else "—"
        if verdict_col:
            v = e[f"{main}_no_worse"]
            row[verdict_col] = "—" if v is None else ("yes" if v else "no")
        rows[f"{LABELS_SHORT[k]} [{UNITS[k]}]"] = row
    tab = pd.DataFrame.from_dict(rows, orient="index")
    tab.index.name = "parameter"
    tab.columns.name = "median |Δ| (n covered / n)" + (" — clusters inside ASteCA's priors" if in_prior_only else "")
    return tab


# ---------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------
#: Marker styles of the ocnb methods in the figure.
_STYLE = {
    "ocnb_fast": dict(facecolors="none", edgecolors="C0", linewidths=1.0, s=26),
    "ocnb_refined": dict(color="C3", s=16),
    "ocnb": dict(color="C0", s=20),
}
_BAR_COLORS = {"ocnb_fast": "C0", "ocnb_refined": "C3", "ocnb": "C0", "asteca_issue9": "C1", "asteca_wide": "C2",
               "asteca": "C1"}


def plot_peer_comparison(results: dict, fig=None, methods=None):
    """|Δ| from the literature mean, ocnb against ASteCA per cluster (one panel per parameter), and wall times.

    Parameters
    ----------
    results : dict
        From :func:`load_peer_results`.
    fig : matplotlib.figure.Figure, optional
        Draw into this figure (default: a new one).
    methods : str or sequence of str, optional
        Method keys (:func:`methods`); default all the file holds.

    Returns
    -------
    matplotlib.figure.Figure
        Panels 1–4, one per parameter: |Δ| of the better ASteCA setting for that parameter (lower
        median |Δ|, named on the x axis) against |Δ| of each ocnb mode per cluster (fast: open
        circles, refined: dots, joined by a line per cluster); points below the diagonal are clusters
        where ocnb is closer to the literature; triangles: a literature value of the cluster lies
        outside ASteCA's issue-9 prior. Panel 5: fit wall time per cluster of every method (log
        scale) with the median speed ratios. A schema-1 file with ``methods=None`` gives issue 9's
        figure (ocnb vs ASteCA).

    Raises
    ------
    TypeError
        ``results`` is not a results dict.
    ValueError
        The methods compared hold no ocnb or no ASteCA estimate (nothing to put on an axis).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not isinstance(results, dict) or "clusters" not in results:
        raise TypeError("plot_peer_comparison needs the results dict from load_peer_results(path)")
    if methods is None and _schema(results) < 2:
        return _plot_v1(results, fig=fig)
    ms = _resolve_methods(results, methods, "plot_peer_comparison")
    ocnbs = [m for m in ms if _family(m) == "ocnb"]
    astecas = [m for m in ms if _family(m) == "asteca"]
    if not ocnbs or not astecas:
        side = "ocnb" if not ocnbs else "ASteCA"
        raise ValueError(
            f"plot_peer_comparison: no {side} method with an estimate among {ms} in this file "
            f"(peer: {(results.get('peer') or {}).get('message') or (results.get('peer') or {}).get('status', '?')})"
        )
    tab = _peer_table_methods(results, ms)
    s = _summarize_methods(results, ms, in_prior_only=False)
    if fig is None:
        fig = plt.figure(figsize=(15, 8.0))
    # room above the panels for the legend, between the rows for the rotated cluster names' neighbours
    gs = fig.add_gridspec(2, 4, height_ratios=[1.25, 0.8], hspace=0.5, wspace=0.38, top=0.85, bottom=0.12,
                          left=0.05, right=0.98)
    for i, k in enumerate(PARAMS):
        ax = fig.add_subplot(gs[0, i])
        sel = (tab.parameter == k) & np.isfinite(tab.lit_mean)
        for m in ms:
            sel &= tab[f"{m}_ok"]
        t = tab[sel]
        e = s["per_param"][k]
        best = e["best_asteca"] or astecas[0]
        x = t[f"{best}_absdiff"].to_numpy()
        ys = {o: t[f"{o}_absdiff"].to_numpy() for o in ocnbs}
        inside = t.cluster_in_prior.to_numpy()
        if len(ocnbs) > 1 and len(t):  # one cluster's modes share x: a vertical line joins them
            ax.vlines(x, np.min(list(ys.values()), axis=0), np.max(list(ys.values()), axis=0),
                      color="0.75", lw=0.7, zorder=1)
        for o in ocnbs:
            for where, marker in ((inside, "o"), (~inside, "^")):
                if where.any():
                    ax.scatter(x[where], ys[o][where], marker=marker, zorder=2, **_STYLE.get(o, _STYLE["ocnb"]))
        vals = np.r_[x, *ys.values(), 0.05]
        top = float(np.nanmax(vals)) * 1.08 if len(t) else 1.0
        ax.plot([0, top], [0, top], color="0.5", lw=0.8, ls="--", zorder=0)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        # few ticks: these panels are small and the labels must not run into each other
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        meds = " · ".join(
            f"{METHOD_NAMES.get(m, m).replace('ocnb ', '')} {_f(e[f'median_absdiff_{m}'], 2)}" for m in ocnbs
        )
        verdict = e.get(f"{s['main']}_no_worse")
        mark = "" if verdict is None else (" ✓" if verdict else " ✗")
        ax.set_title(
            f"{LABELS_SHORT[k]} ({_n_clusters(e['n'])}) — median |Δ|\nocnb {meds} · ASteCA "
            f"{_f(e['median_absdiff_best_asteca'], 2)}{mark}",
            fontsize=8.5,
        )
        short = method_label(results, best).replace("ASteCA, ", "").split(" (")[0]
        ax.set_xlabel(f"|ASteCA ({short}) − lit.| [{UNITS[k]}]", fontsize=8)
        ax.set_ylabel(f"|ocnb − lit.| [{UNITS[k]}]", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = []
    for o in ocnbs:
        face = dict(markerfacecolor="none", markeredgecolor="C0") if o == "ocnb_fast" else dict(color=_BAR_COLORS[o])
        handles.append(Line2D([], [], ls="", marker="o", markersize=5.5, label=METHOD_NAMES.get(o, o), **face))
    handles.append(Line2D([], [], ls="", marker="^", color="0.4", markerfacecolor="none",
                          label="literature outside ASteCA's issue-9 prior"))
    handles.append(Line2D([], [], ls="--", color="0.5", lw=0.8, label="equal |Δ| (below: ocnb closer)"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.935), ncol=len(handles), fontsize=8,
               frameon=False)
    ax = fig.add_subplot(gs[1, :])
    tim = _timing_table_methods(results, ms)
    xs = np.arange(len(tim))
    w = 0.8 / len(ms)
    for j, m in enumerate(ms):
        ax.bar(xs - 0.4 + w * (j + 0.5), tim[f"{m}_fit_s"], width=w, color=_BAR_COLORS.get(m, f"C{j}"),
               label=method_label(results, m) + (" (median of seeds)" if m in astecas else ""))
    ax.set_yscale("log")
    fits = tim[[f"{m}_fit_s" for m in ms]].to_numpy(dtype=float)
    if np.isfinite(fits).any() and (fits[np.isfinite(fits)] > 0).any():
        pos = fits[np.isfinite(fits) & (fits > 0)]
        ax.set_ylim(pos.min() / 2, pos.max() * 40)  # headroom: the legend sits above the bars, not on them
    ax.set_xticks(xs)
    ax.set_xticklabels(tim.label, rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.6, len(tim) - 0.4)
    ax.set_ylabel("fit wall time per cluster [s]", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    parts = [
        f"{METHOD_NAMES.get(o, o)} {_ratio(s['speed'][o]['median_ratio_fit'])} (target "
        f"{_ratio(s['speed'][o]['target'])})"
        for o in ocnbs
    ]
    ax.set_title("fit time per cluster, same run — median speed-up over the faster ASteCA setting: " + "; ".join(parts),
                 fontsize=9)
    ax.legend(fontsize=7, ncol=len(ms), loc="upper left")
    main = METHOD_NAMES.get(s["main"], s["main"])
    fig.suptitle(
        f"ocnb vs ASteCA on {_n_clusters(len(tim))} ({str(results.get('created', ''))[:10]}, "
        f"{(results.get('machine') or {}).get('cores', '?')} cores)\n"
        f"✓ / ✗: {main}'s median |Δ| is / is not ≤ that of the better ASteCA setting (same clusters)",
        fontsize=10,
    )
    return fig


def with_current_floors(results: dict) -> dict:
    """The run's results with each refined interval rebuilt with the floors ocnb ships now.

    A refined interval is p50 ∓ √((p50 − p16_posterior)² + floor²) (:func:`ocnb.cmd_ann.estimate`); the run
    recorded p50 and the posterior's own percentiles (``raw_p16``, ``raw_p84``) and the simulated-mismatch floor
    it used, so the interval with today's floors — that floor plus the literature floor of
    :func:`ocnb.cmd_ann.refine_calibration.literature_floors`, in quadrature — follows exactly, without refitting.
    Nothing else changes (estimates, times, ASteCA). The copy says so in ``results["derived"]``; a schema-1 file or
    a refined record without ``raw_p16``/``raw_p84`` is returned unchanged (with a note in ``derived``).

    Returns
    -------
    dict
        A deep copy of ``results``.
    """
    import copy

    from .refine_calibration import literature_floors

    _check_results(results, "with_current_floors")
    out = copy.deepcopy(results)
    lit, note = literature_floors()
    n = 0
    for rec in out.get("clusters", []):
        for m in ("ocnb_refined", "ocnb"):
            r = rec.get(m)
            if not isinstance(r, dict) or r.get("mode") != "refined" or not _ok(rec, m):
                continue
            raw16, raw84, p50 = r.get("raw_p16"), r.get("raw_p84"), r.get("p50")
            sim = ((r.get("refine") or {}).get("systematic_floor")) or {}
            if not (isinstance(raw16, dict) and isinstance(raw84, dict) and isinstance(p50, dict)):
                continue
            for k in PARAMS:
                if k not in p50 or k not in raw16 or k not in raw84:
                    continue
                floor = float(np.hypot(float(sim.get(k, 0.0)), lit.get(k, 0.0)))
                r["p16"][k] = p50[k] - float(np.hypot(p50[k] - raw16[k], floor))
                r["p84"][k] = p50[k] + float(np.hypot(raw84[k] - p50[k], floor))
            if m == "ocnb_refined":
                n += 1
    out["derived"] = (f"refined intervals of {n} clusters rebuilt with the current floors ({note}); the fits are "
                      f"those of the run of {results.get('created', '?')}, not rerun")
    return out
