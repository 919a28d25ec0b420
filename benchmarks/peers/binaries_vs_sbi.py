"""Peer benchmark (issue 16): ocnb's BayesFlow NPE vs ``sbi``'s NPE for stellar masses and binary mass ratios.

One command, from the repository root in the project venv::

    .venv/bin/python benchmarks/peers/binaries_vs_sbi.py

Both estimators get the **same** SIMULATED stars from :func:`ocnb.binaries.simulate_stars` — an M67-like
cluster (log age 9.55, [Fe/H] 0.02, μ 9.683, A_V 0.113, as Malhotra et al. 2025 find it) with the primary
mass M_A (Table 1 prior) and the mass ratio free, Gaia G, BP, RP + 2MASS J, H, Ks + parallax — the same
training set (``--n-train``, default 100,000), the same parameters (M_A and q as drawn, in the Table 1 box)
and the same 1,000 test stars. ocnb: :class:`ocnb.ml.npe.BoundedNPE` (coupling flow on the logit of the
box, conditional standardisation, batched compiled sampling). sbi: its default single-round NPE (MAF),
installed in its own venv by this script (CPU torch; a clear SKIPPED message when it cannot be installed),
run by ``_sbi_worker.py``. Measured: training time, per-star sampling time for ``--n-samples`` samples
(sbi one star at a time, as it is used per star, and batched where its version has ``sample_batched``),
68/95 % coverage, SBC (KS p per parameter, rank-C2ST) and median |ΔM_A|, |Δq| of the posterior medians.
Writes ``benchmarks/peers/binaries_vs_sbi.json`` and the section of ``benchmarks/RESULTS.md`` between
``<!-- peers:binaries-vs-sbi:start … -->`` and ``<!-- peers:binaries-vs-sbi:end -->``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.peers.asteca_vs_ocnb import (  # noqa: E402  (repository root put on sys.path above)
    PeerUnavailable,
    _atomic_write,
    _clean_env,
    _result_line,
    _tail,
    ensure_peer_env,
    log,
    machine,
    ocnb_versions,
)
from benchmarks.peers.report import update_results_md  # noqa: E402

WORKER = HERE / "_sbi_worker.py"
DEFAULT_OUT = HERE / "binaries_vs_sbi.json"
DEFAULT_RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
SBI_REQUIREMENTS = ("torch==2.13.0", "sbi==0.27.0")
SBI_PROBE = ("import json, sys, sbi, torch; print(json.dumps({'sbi': sbi.__version__, 'torch': torch.__version__, "
             "'python': '.'.join(map(str, sys.version_info[:3]))}))")
MD_START = "<!-- peers:binaries-vs-sbi:start (rendered from benchmarks/peers/binaries_vs_sbi.json) -->"
MD_END = "<!-- peers:binaries-vs-sbi:end -->"
M67 = {"log_age": 9.55, "feh": 0.02, "dist_mod": 9.683, "a_v": 0.113}
PARAMS = ("mass_a", "q_drawn")
BANDS = "Gaia_TMASS"
SPEED_TARGET = 10.0
#: ocnb's flow for this two-parameter problem: coupling layers and hidden width (sampling time ∝ width²·depth)
DEPTH, WIDTH = 4, 32


def peer_venv_dir() -> Path:
    from ocnb.config import data_home

    return data_home() / "peers" / "sbi-venv"


def simulate(n_train: int, n_test: int, seed: int):
    """Training and test stars of the M67-like simulator: (theta, x) arrays and the test frame."""
    import numpy as np

    from ocnb.binaries import make_prior, simulate_stars
    from ocnb.binaries.posterior import features

    prior = make_prior(**M67)
    train = simulate_stars(n_train, prior, bands=BANDS, seed=seed, progress=False).to_frame()
    test = simulate_stars(n_test, prior, bands=BANDS, seed=seed + 1000, progress=False).to_frame()
    box = prior.bounds
    bounds = {"mass_a": box["mass_a"], "q_drawn": box["q"]}
    th_tr = train[list(PARAMS)].to_numpy(float)
    x_tr, x_te = features(train, BANDS), features(test, BANDS)
    ok_tr = np.all(np.isfinite(x_tr), axis=1)
    ok_te = np.all(np.isfinite(x_te), axis=1)
    return th_tr[ok_tr], x_tr[ok_tr], test[ok_te].reset_index(drop=True), x_te[ok_te], bounds


def metrics(samples, test, seconds_per_star: float, train_s: float) -> dict:
    """Coverage, SBC and accuracy of (n_test, n_samples, 2) samples of (M_A, q as drawn) against the truth."""
    import numpy as np

    from ocnb import diagnostics as dg
    from ocnb.binaries.posterior import censor_q

    truth = test[list(PARAMS)].to_numpy(float)
    ok = np.all(np.isfinite(samples.reshape(len(samples), -1)), axis=1)
    s, t = samples[ok], truth[ok]
    cov = {f"{c}": dg.coverage(s, t, 50 - c / 2, 50 + c / 2, labels=list(PARAMS))["coverage"].to_dict()
           for c in (68, 95)}
    ranks = dg.sbc_ranks(s, t, labels=list(PARAMS))
    sbc = dg.sbc_uniformity(ranks)
    q = censor_q(s[..., 1], s[..., 0])
    med = np.median(s, axis=1)
    return {"n_test": int(ok.sum()), "n_failed": int((~ok).sum()), "train_s": train_s,
            "per_star_s": seconds_per_star, "coverage": cov,
            "ks_p": sbc["ks_p_value"].to_dict(), "chi2_p": sbc["p_value"].to_dict(),
            "rank_c2st": dg.sbc_rank_c2st(ranks),
            "median_abs_mass_a": float(np.median(np.abs(med[:, 0] - t[:, 0]))),
            "median_abs_q": float(np.median(np.abs(np.median(q, axis=1) - test["q"].to_numpy(float)[ok])))}


def run_ocnb(th, x, test, x_test, bounds, n_samples: int, seed: int, epochs: int, depth: int = DEPTH,
             width: int = WIDTH) -> dict:
    from ocnb.ml.npe import BoundedNPE, NPESettings

    npe = BoundedNPE(PARAMS, bounds, [f"x{i}" for i in range(x.shape[1])],
                     NPESettings(depth=depth, width=width, epochs=epochs, patience=20, seed=seed))
    t0 = time.perf_counter()
    npe.fit(th, x, progress=False)
    train_s = time.perf_counter() - t0
    npe.sample(x_test, n_samples=n_samples, seed=seed)  # the first call compiles; later calls of that shape do not
    t0 = time.perf_counter()
    samples = npe.sample(x_test, n_samples=n_samples, seed=seed)
    per_star = (time.perf_counter() - t0) / len(x_test)
    rec = metrics(samples, test, per_star, train_s)
    rec.update(status="ok", epochs=npe.history_["epochs_run"], best_epoch=npe.history_["best_epoch"],
               network={"depth": depth, "width": width, "n_hidden": npe.settings.n_hidden})
    return rec


def run_sbi(th, x, test, x_test, bounds, n_samples: int, seed: int, venv: Path, threads: int,
            batch_size: int) -> dict:
    import numpy as np

    base = getattr(sys, "_base_executable", sys.executable)
    try:
        vpy, versions = ensure_peer_env(base, venv, SBI_REQUIREMENTS, probe=SBI_PROBE, name="sbi")
    except PeerUnavailable as err:
        return {"status": "skipped", "message": str(err)}
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        lo = np.array([bounds[k][0] for k in PARAMS])
        hi = np.array([bounds[k][1] for k in PARAMS])
        np.savez(inp, theta_train=th, x_train=x, x_test=x_test, box_low=lo, box_high=hi, n_samples=n_samples,
                 seed=seed, threads=threads, batch_size=batch_size)
        # cwd: sbi writes tensorboard logs (sbi-logs/) into the working directory
        r = subprocess.run([str(vpy), str(WORKER), str(inp), str(out)], capture_output=True, text=True,
                           env=_clean_env(), timeout=6 * 3600, cwd=tmp)
        line = _result_line(r.stdout, "SBI_RESULT")
        if r.returncode != 0 or line is None:
            return {"status": "failed", "message": f"sbi worker failed: {_tail(r.stderr or r.stdout)}"}
        d = np.load(out)
        samples, per_star = d["samples"].astype(float), d["per_star_s"]
    rec = metrics(samples, test, float(np.median(per_star)), float(line["train_s"]))
    rec.update(status="ok", versions=versions, epochs=line.get("epochs"))
    return rec


def render(res: dict) -> str:
    o, s = res["ocnb"], res["sbi"]
    st = res["settings"]
    lines = [MD_START, "", "## Peer comparison: stellar masses and binary mass ratios, ocnb NPE vs sbi (issue 16)", "",
             f"Run {res['date']} on {res['machine'].get('cpu', '?')} ({res['machine'].get('cores', '?')} cores): "
             f"`{res['command']}` (Keras backend {res['versions'].get('keras_backend')}, bayesflow "
             f"{res['versions'].get('bayesflow')}; sbi {s.get('versions', {}).get('sbi', '-')}). "
             f"SIMULATED M67-like stars (log age {M67['log_age']}, [Fe/H] {M67['feh']}, "
             f"μ {M67['dist_mod']}, A_V {M67['a_v']}), M_A and q free, bands {BANDS} + parallax; "
             f"{st['n_train']:,} training simulations shared, {st['n_test']} test stars, {st['n_samples']} "
             "posterior samples per star.", ""]
    if s.get("status") != "ok":
        lines += [f"sbi: {s.get('message', s.get('status'))}", ""]

    def row(name, r):
        if r.get("status") != "ok":
            return f"| {name} | {r.get('status')} | | | | | | | | |"
        c68, c95, ks = r["coverage"]["68"], r["coverage"]["95"], r["ks_p"]
        return (f"| {name} | {r['train_s']:.0f} s | {1e3 * r['per_star_s']:.2f} ms | "
                f"{c68['mass_a']:.3f} / {c95['mass_a']:.3f} | {c68['q_drawn']:.3f} / {c95['q_drawn']:.3f} | "
                f"{ks['mass_a']:.3g} | {ks['q_drawn']:.3g} | {r['rank_c2st']:.3f} | {r['median_abs_mass_a']:.4f} M☉ | "
                f"{r['median_abs_q']:.3f} |")

    lines += ["| method | training | sampling per star | coverage M_A 68/95 | coverage q 68/95 | SBC KS p M_A | "
              "SBC KS p q | rank-C2ST | median abs. ΔM_A | median abs. Δq |",
              "|---|---|---|---|---|---|---|---|---|---|", row("ocnb (BayesFlow NPE)", o), row("sbi (NPE, MAF)", s), ""]
    v = res.get("verdicts", {})
    if v:
        lines.append("Acceptance (issue 16):")
        lines += [f"- {k}: {'**met**' if ok else '**not met**'} ({why})" for k, (ok, why) in v.items()]
        lines.append("")
    lines.append("SBC and coverage of q use q as drawn (continuous); the reported q is censored to 0 where "
                 "q·M_A < 0.1 M☉ for both. Coverage is of central intervals.")
    lines += ["", MD_END]
    return "\n".join(lines)


def verdicts(o: dict, s: dict) -> dict:
    out = {}
    if o.get("status") != "ok":
        return out
    cov_ok = all(abs(o["coverage"][c][p] - nom) <= 0.03 for c, nom in (("68", 0.683), ("95", 0.954))
                 for p in PARAMS)
    out["ocnb coverage within ±3 points of 68/95 % for M_A and q"] = (
        cov_ok, ", ".join(f"{p} {o['coverage']['68'][p]:.3f}/{o['coverage']['95'][p]:.3f}" for p in PARAMS))
    out["ocnb SBC KS p > 0.01 for M_A and q"] = (
        all(o["ks_p"][p] > 0.01 for p in PARAMS), ", ".join(f"{p} {o['ks_p'][p]:.3g}" for p in PARAMS))
    if s.get("status") == "ok":
        ratio = s["per_star_s"] / o["per_star_s"]
        out[f"sampling ≥ {SPEED_TARGET:g}× faster than sbi"] = (ratio >= SPEED_TARGET, f"{ratio:.0f}×")
        out["median |Δq| no worse than sbi's"] = (o["median_abs_q"] <= s["median_abs_q"],
                                                  f"{o['median_abs_q']:.3f} vs {s['median_abs_q']:.3f}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=100_000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=200, help="ocnb's epoch cap (early stopping, patience 20)")
    ap.add_argument("--depth", type=int, default=DEPTH, help="ocnb flow: coupling layers")
    ap.add_argument("--width", type=int, default=WIDTH, help="ocnb flow: hidden units of each coupling MLP")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the sbi worker")
    ap.add_argument("--sbi-batch-size", type=int, default=200, help="sbi's training batch (its default 200)")
    ap.add_argument("--venv", help="peer venv folder (default <data home>/peers/sbi-venv)")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--results-md", default=str(DEFAULT_RESULTS_MD), help="'' to leave RESULTS.md alone")
    args = ap.parse_args(argv)
    log(f"simulating {args.n_train:,} training and {args.n_test} test stars (M67-like, {BANDS}) ...")
    th, x, test, x_test, bounds = simulate(args.n_train, args.n_test, args.seed)
    log("ocnb: training and sampling ...")
    o = run_ocnb(th, x, test, x_test, bounds, args.n_samples, args.seed, args.epochs, args.depth, args.width)
    log(f"ocnb: {o['train_s']:.0f} s training, {1e3 * o['per_star_s']:.2f} ms per star")
    if args.skip_peer:
        s = {"status": "skipped", "message": "SKIPPED: --skip-peer"}
    else:
        log("sbi: preparing its environment, training and sampling (one star at a time) ...")
        s = run_sbi(th, x, test, x_test, bounds, args.n_samples, args.seed,
                    Path(args.venv) if args.venv else peer_venv_dir(), args.threads, args.sbi_batch_size)
        log(s.get("message") or f"sbi: {s['train_s']:.0f} s training, {1e3 * s['per_star_s']:.2f} ms per star")
    import keras

    from ocnb.ml.npe import _bayesflow

    versions = {**ocnb_versions(), "keras_backend": keras.backend.backend(), "bayesflow": _bayesflow().__version__}
    res = {"date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
           "versions": versions, "command": " ".join(["benchmarks/peers/binaries_vs_sbi.py", *(argv or
                                                                                                  sys.argv[1:])]),
           "settings": {"n_train": len(th), "n_test": len(test), "n_samples": args.n_samples, "seed": args.seed,
                        "cluster": M67, "bands": BANDS, "params": PARAMS},
           "ocnb": o, "sbi": s}
    res["verdicts"] = verdicts(o, s)
    _atomic_write(Path(args.out), json.dumps(res, indent=1, default=float))
    if args.results_md:
        update_results_md(args.results_md, render(res), MD_START, MD_END)
    for k, (ok, why) in res["verdicts"].items():
        log(f"{'MET' if ok else 'NOT MET'}: {k} ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
