"""Render the membership peer benchmark (``membership_vs_peers.py``) as the marked section of ``benchmarks/RESULTS.md``.

* :func:`default_results_path` — ``benchmarks/peers/membership_vs_peers.json`` next to this file;
* :func:`load_results` — one results file (clear errors when missing or not a results file);
* :func:`results_markdown` — the section between :data:`MD_START` and :data:`MD_END`;
* :func:`update_results_md` / :func:`existing_section` — replace / read that section of ``RESULTS.md``.

Used by ``benchmarks/run.py`` (re-renders the section from the committed results, or keeps the old one)
and by ``benchmarks/peers/membership_vs_peers.py`` (after a run). NumPy-free on purpose: ``run.py`` imports
it on every run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = [
    "DEFAULT_RESULTS",
    "MD_END",
    "MD_START",
    "NOTES",
    "default_results_path",
    "existing_section",
    "load_default_results",
    "load_results",
    "results_markdown",
    "update_results_md",
]

DEFAULT_RESULTS = Path(__file__).resolve().parent / "membership_vs_peers.json"
MD_START = "<!-- peers:membership-vs-peers:start (rendered from benchmarks/peers/membership_vs_peers.json) -->"
MD_END = "<!-- peers:membership-vs-peers:end -->"
RUN_COMMAND = ".venv/bin/python benchmarks/peers/membership_vs_peers.py"
PEERS = ("hdbscan-leaf", "hdbscan-eom", "fastmp")

#: Facts about the set-up (not about one run's numbers); they travel with the table.
NOTES = [
    "Truth: the published members of Almeida et al. 2023 (Gaia EDR3, Pmemb ≥ 0.51) with G < 18, cross-matched "
    "into the DR2 cone by source_id, then by position (EDR3 positions moved back to the DR2 epoch with their "
    "proper motions; limits above) — the notebook's `blanco1_members_truth`. Scores are over the cone stars "
    "with G < 18 (all of this cone). Published members outside the cone cannot be found by any method and are "
    "not counted.",
    "Precision, recall, F1: members = p ≥ 0.5 (the issue's threshold), except HDBSCAN, whose members are its "
    "labels (the cluster it assigns); the p ≥ 0.5 reading of HDBSCAN's `probabilities_` is in the notes. "
    "Brier score and expected calibration error (10 equal-width bins) over **all** cone stars, so confident "
    "field stars count against a method as well as missed members.",
    "HDBSCAN as Hunt & Reffert run it: (x, y) gnomonic about the cone centre, pmra, pmdec, parallax, "
    "RobustScaler, min_cluster_size 20, min_samples 10; the cluster nearest to HUNT2023's astrometry of "
    "Blanco 1 (proper motion, parallax and position, each in units of the catalogue's dispersion / r50) is "
    "taken, never one chosen with the member list. Its `probabilities_` measure how deep a star sits in the "
    "cluster's density, not a probability of membership.",
    "fastMP (ASteCA 0.7, `Membership.fastmp`, default 1000 resamples) runs in ASteCA's own venv (Python ≥ 3.12), "
    "one fresh worker process per seed; centre (position, proper motion, parallax) from HUNT2023 held fixed, "
    "N_cluster from ASteCA's own `get_nmembers` (Ripley K). It uses astrometry only, no photometry. Its time is "
    "`get_nmembers` + `fastmp` (the `fastmp` call alone is listed too).",
    "ocnb: `prepare_cluster` + `membership_probability` (100 draws of each star's astrometric and photometric "
    "errors; the DR2 cone has no correlation columns, so the covariance is diagonal and flagged). The trained "
    "models' probability is the vote fraction mapped through the isotonic calibration fitted on held-out "
    "simulated clusters (`ocnb.membership.calibration`, fresh fields of the validation clusters; never Blanco 1); "
    "the uncalibrated vote fractions of the same runs (vG23's probability) are the row below it. Three model "
    "seeds (fields, weights and calibration all seeded) are scored like fastMP's three seeds. Its seed "
    "member list — support sets, cluster parameters and candidate boundaries — is the cone's `ocelot_label == 0` "
    "stars: the 262-star clustering result shipped with the cone (ocelot's test fixture), in the role the "
    "CG2020 members play in the paper. Blanco 1 is never in the training or validation data of the model trained "
    "here; the authors' DS10_v02 *did* train on it (one of its 605 training clusters), so that row is not a "
    "held-out score. The time is "
    "the scoring of the whole cone with the model loaded; the model load is listed separately.",
    "Timings come from one run on the machine named above; the methods are timed the same way each time "
    "(median of repeats), but they do different work: HDBSCAN clusters the whole cone blind, fastMP starts from "
    "a catalogue centre, ocnb scores candidates with 100 error draws each.",
]


def default_results_path() -> Path:
    """``benchmarks/peers/membership_vs_peers.json`` of this checkout."""
    return DEFAULT_RESULTS


def load_results(path) -> dict:
    """The results of one run (FileNotFoundError / ValueError with the path and the command that makes them)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no membership peer results at {p}; create them with `{RUN_COMMAND}`")
    try:
        res = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{p} is not a JSON results file ({err}); re-run `{RUN_COMMAND}`") from None
    if not isinstance(res, dict) or not isinstance(res.get("methods"), list) or "settings" not in res:
        raise ValueError(f"{p} is not a membership_vs_peers.py results file (no 'methods' list / 'settings')")
    return res


def load_default_results() -> dict:
    return load_results(default_results_path())


def _ok(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _f(x, nd=3) -> str:
    return f"{x:.{nd}f}" if _ok(x) else "—"


def _secs(x) -> str:
    if not _ok(x):
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def _range(r: dict, key: str, nd=3) -> str:
    rng = r.get(f"{key}_range")
    cell = _f(r.get(key), nd)
    if rng and len(rng) == 2 and _ok(rng[0]) and _ok(rng[1]) and rng[0] != rng[1]:
        cell += f" ({_f(rng[0], nd)}–{_f(rng[1], nd)})"
    return cell


def _best_peer(methods: list[dict], key: str, lower_is_better: bool = False):
    vals = [m for m in methods if m.get("method") in PEERS and m.get("status") == "ok" and _ok(m.get(key))]
    if not vals:
        return None
    return (min if lower_is_better else max)(vals, key=lambda m: m[key])


def acceptance_lines(results: dict) -> list[str]:
    """Issue 15's criterion: ocnb's trained model's F1 above every peer's and its Brier score below."""
    methods = results.get("methods", [])
    ours = next((m for m in methods if m.get("method") == "ocnb-trained"), None)
    f1_peer = _best_peer(methods, "f1")
    brier_peer = _best_peer(methods, "brier", lower_is_better=True)
    if ours is None or ours.get("status") != "ok":
        why = "not run" if ours is None else ours.get("message") or ours.get("status")
        return [f"Issue-15 criterion (trained model: F1 above both peers', Brier below): **not judged** — ocnb's "
                f"trained model {why}."]
    if f1_peer is None or brier_peer is None:
        return ["Issue-15 criterion: **not judged** — no peer result in this run."]
    f1_ok = ours["f1"] > f1_peer["f1"]
    br_ok = ours["brier"] < brier_peer["brier"]
    what = "trained model" if not ours.get("per_seed") else f"trained models (mean of seeds {ours.get('seeds')})"
    lines = [
        f"Issue-15 criterion: {what} F1 {_f(ours['f1'], 4)} vs best peer {_f(f1_peer['f1'], 4)} "
        f"({f1_peer['name']}) — {'**met**' if f1_ok else '**not met**'}; Brier {_f(ours['brier'], 5)} vs best "
        f"peer {_f(brier_peer['brier'], 5)} ({brier_peer['name']}) — {'**met**' if br_ok else '**not met**'}."
    ]
    per = ours.get("per_seed") or []
    if len(per) > 1:
        n_f1 = sum(1 for s in per if _ok(s.get("f1")) and s["f1"] > f1_peer["f1"])
        n_br = sum(1 for s in per if _ok(s.get("brier")) and s["brier"] < brier_peer["brier"])
        lines.append("")
        lines.append(f"Seed by seed: F1 above the best peer's for {n_f1} of {len(per)} model seeds "
                     f"({', '.join(_f(s.get('f1'), 4) for s in per)}); Brier below for {n_br} of {len(per)} "
                     f"({', '.join(_f(s.get('brier'), 5) for s in per)}).")
    return lines


def results_markdown(results: dict) -> str:
    """The RESULTS.md section for one run, between :data:`MD_START` and :data:`MD_END`."""
    st, ver, mach = results.get("settings", {}), results.get("versions", {}), results.get("machine", {})
    tr, peer = results.get("truth", {}), results.get("peer", {})
    lines = [MD_START, "", "## Peer comparison: cluster membership on the real Blanco 1 cone (issue 15)", ""]
    lines.append(
        f"Produced by `{results.get('command', RUN_COMMAND)}` in one run on {results.get('created', '?')} — "
        f"{mach.get('description', '?')}. Versions: ocnb {ver.get('ocnb', '?')} (Python {ver.get('python', '?')}, "
        f"Keras {ver.get('keras', '—')}), scikit-learn {ver.get('scikit-learn', '—')}, ASteCA "
        f"{ver.get('asteca') or '—'} (Python {ver.get('peer_python') or '—'}). Raw numbers: "
        "`benchmarks/peers/membership_vs_peers.json`."
    )
    lines.append("")
    lines.append(
        f"Cone: `{st.get('field', '?')}` ({st.get('n_stars', '?')} stars, Gaia {st.get('release', '?')}, G < 18). "
        f"Truth: {tr.get('n_in_cone', '?')} of the {tr.get('n_published_g_lt_max', '?')} published members with "
        f"G < {st.get('g_max', 18):g} ({tr.get('n_published', '?')} in the list) lie in the cone: "
        f"{tr.get('matched_by_id', '?')} matched by source_id, {tr.get('matched_by_position', '?')} by position "
        f"(≤ {tr.get('max_sep_arcsec', '?')}″, |ΔG| < {tr.get('max_delta_g', '?')} mag); "
        f"{tr.get('n_outside_cone', '?')} lie outside it. Cross-match: `{tr.get('crossmatch', '?')}`."
    )
    lines.append("")
    if peer.get("status") != "ok" and "fastmp" in st.get("methods", ["fastmp"]):
        lines += [f"**fastMP was not run:** {peer.get('message') or 'no reason recorded'}", ""]
    if st.get("official") is False:
        why = ", ".join(st.get("partial_reasons") or []) or "a subset of the methods or non-default settings"
        lines += [f"**Partial run** ({why}): not the committed comparison.", ""]
    lines += [
        "| method | members | selected | precision | recall | F1 | Brier | ECE | Spearman vs published p | "
        "time per cone | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in results.get("methods", []):
        if m.get("status") != "ok":
            lines.append(f"| {m.get('name', m.get('method'))} | — | — | — | — | — | — | — | — | — | "
                         f"{m.get('status')}: {m.get('message', '')} |")
            continue
        note = []
        if m.get("method", "").startswith("hdbscan"):
            note.append(f"{m.get('n_clusters_found', '?')} clusters found; picked label {m.get('picked_label')}")
            ap = m.get("at_p_min") or {}
            if ap:
                note.append(f"p ≥ 0.5: P {_f(ap.get('precision'))}, R {_f(ap.get('recall'))}, F1 {_f(ap.get('f1'))}")
        if m.get("method") == "fastmp":
            note.append(f"seeds {m.get('seeds')}, mean (min–max); N_cluster {m.get('n_cluster_asteca')}; "
                        f"fastmp alone {_secs(m.get('fastmp_s'))}, process {_secs(m.get('process_s'))}")
        if m.get("method", "").startswith("ocnb"):
            tc = m.get("n_truth_candidates")
            seeds = m.get("per_seed") or []
            if seeds:
                note.append(f"model seeds {m.get('seeds')}, mean (min–max); F1 per seed "
                            + "/".join(_f(s.get("f1")) for s in seeds))
                if m.get("method") == "ocnb-trained":
                    note.append("calibrated (isotonic map fitted on held-out simulated clusters)"
                                if m.get("calibrated") else "NOT calibrated")
            note.append(f"{m.get('model', '')}; load {_secs(m.get('load_s'))}; {m.get('n_candidates', '?')} candidates"
                        + (f" ({tc} of the truth among them)" if tc is not None else ""))
        lines.append(
            f"| {m['name']} | {m.get('members_by', '')} | {m.get('n_selected', '—')} | {_range(m, 'precision')} | "
            f"{_range(m, 'recall')} | {_range(m, 'f1')} | {_range(m, 'brier', 5)} | {_range(m, 'ece', 4)} | "
            f"{_f(m.get('spearman_published'), 2)} | {_secs(m.get('time_s'))} | {'; '.join(note)} |"
        )
    q = results.get("quoted_in_issue") or {}
    if q:
        lines += [
            "",
            "Issue 15 quoted for the peers on this cone: "
            + "; ".join(
                f"{k} P {_f(v.get('precision'))}, R {_f(v.get('recall'))}, F1 {_f(v.get('f1'))}, "
                f"{_secs(v.get('time_s'))}"
                for k, v in q.items()
            )
            + ".",
        ]
    lines += [""] + acceptance_lines(results)
    lines += ["", "Notes:", ""] + [f"- {n}" for n in NOTES + list(results.get("notes", []))]
    lines += ["", MD_END]
    return "\n".join(lines)


def update_results_md(path, section: str) -> Path:
    """Replace this comparison's marked section of ``path`` by ``section`` (see ``report.update_results_md``)."""
    from benchmarks.peers import report

    return report.update_results_md(path, section, MD_START, MD_END)


def existing_section(path) -> str | None:
    """This comparison's marked section of an existing RESULTS.md, or None."""
    from benchmarks.peers import report

    return report.existing_section(path, MD_START, MD_END)
