"""Issue-16 checks of the `laptop` All_Mags model: calibration, a SIMULATED 500-member cluster, and M67.

Run from the repository root: ``.venv/bin/python benchmarks/binaries_laptop_checks.py [out.json]``.
Trains (or loads from the data home) ``train_posterior("laptop", bands="All_Mags")`` — about 26 min on 2
cores the first time — then: coverage and SBC on 1000 fresh simulations (1000 samples each) and on 400
simulated stars past the main sequence; the iterative
fit of a 500-member M67-like simulated cluster (20,000 samples per star), its σ_M, σ_q and q threshold;
the fit of the real M67 members that have all All_Mags bands, with their binary fraction. Prints each block
as JSON and writes them all to ``out.json`` (default ``binaries_laptop_checks.json`` in the data home).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ocnb import binaries as bn
from ocnb import datasets
from ocnb import diagnostics as dg

out = {}
t0 = time.perf_counter()
m = bn.train_posterior("laptop", bands="All_Mags", seed=0)
out["train_s"] = time.perf_counter() - t0
out["history"] = {k: m.meta["history"][k] for k in ("epochs_run", "best_epoch")}
print("trained", out, flush=True)
prior = bn.make_prior()
test = bn.simulate_stars(1000, prior, bands="All_Mags", seed=99, progress=False).to_frame()
post = bn.sample_posteriors(test, {"All_Mags": m}, n_samples=1000, seed=1, train_missing=False)
ok = post.ok
labels = [*bn.THETA_NAMES, "q_drawn"]
truth = test[labels].to_numpy()[ok]
s = np.concatenate([post.samples, post.q_drawn[..., None]], axis=-1)[ok]
fin = np.isfinite(s).all(axis=(1, 2)) & np.isfinite(truth).all(axis=1)
out["n_nonfinite"] = int((~fin).sum())
s, truth = s[fin], truth[fin]
cov = {c: dg.coverage(s, truth, 50 - c / 2, 50 + c / 2, labels=labels)["coverage"].round(3).to_dict() for c in (68, 95)}
ks = dg.sbc_uniformity(dg.sbc_ranks(s, truth, labels=labels))["ks_p_value"].to_dict()
out["calibration"] = {"n": int(ok.sum()), "coverage": cov, "ks_p": ks}
print(json.dumps(out["calibration"]), flush=True)
# The same on stars past the main sequence only (PARSEC label ≥ 2; ~2 % of Table 1 draws, the stars that
# set a cluster's age): coverage, SBC and the median offset of the posterior median from the truth.
pool = bn.simulate_stars(200_000, prior, bands="All_Mags", seed=77, progress=False).to_frame()
evo = pool[pool["label_a"] >= 2].head(400).reset_index(drop=True)
ep = bn.sample_posteriors(evo, {"All_Mags": m}, n_samples=1000, seed=1, train_missing=False)
eok = ep.ok & np.isfinite(ep.samples).all(axis=(1, 2))
es, et = ep.samples[eok], evo[list(bn.THETA_NAMES)].to_numpy()[eok]
out["evolved"] = {
    "n": int(eok.sum()),
    "coverage68": dg.coverage(es, et, 16, 84, labels=list(bn.THETA_NAMES))["coverage"].round(3).to_dict(),
    "ks_p": dg.sbc_uniformity(dg.sbc_ranks(es, et, labels=list(bn.THETA_NAMES)))["ks_p_value"].to_dict(),
    "median_offset": {k: float(np.median(np.median(es[..., i], axis=1) - et[:, i]))
                      for i, k in enumerate(bn.THETA_NAMES)},
}
print(json.dumps(out["evolved"], default=float), flush=True)
TRUE = {"log_age": 9.55, "feh": 0.02, "dist_mod": 5 * np.log10(864.2) - 5, "a_v": 0.113}
cl = bn.simulate_cluster(500, **TRUE, seed=3).to_frame()
t0 = time.perf_counter()
cp = bn.sample_posteriors(cl, {"All_Mags": m}, n_samples=20_000, seed=2, train_missing=False)
fit = bn.fit_cluster(cl, TRUE["feh"], posteriors=cp)
st = fit.to_frame()
good = ~st["outlier"]
out["sim_cluster"] = {
    "seconds": time.perf_counter() - t0,
    "params": fit.params,
    "converged": fit.converged,
    "flags": fit.flags,
    "n_good": int(good.sum()),
    "median_sigma_M": float(st.loc[good, "mass_a_sigma"].median()),
    "median_sigma_q": float(st.loc[good, "q_sigma"].median()),
    "median_abs_dM": float((st.loc[good, "mass_a_mode"] - cl.loc[good, "mass_a"]).abs().median()),
    "median_abs_dq": float((st.loc[good, "q_mode"] - cl.loc[good, "q"]).abs().median()),
}
thr = bn.q_threshold(st["q_mode"], cl["q"].to_numpy(), g=st["G"], label=st["label"])
out["sim_cluster"]["q_thresh_ir"] = thr.threshold
print(json.dumps(out["sim_cluster"], default=float), flush=True)
m67 = datasets.load_members("M67", source="iso")
mp = bn.sample_posteriors(m67, {"All_Mags": m}, n_samples=20_000, seed=4, train_missing=False)
mfit = bn.fit_cluster(m67, 0.02, posteriors=mp)
ms = mfit.to_frame()
bf = bn.binary_fraction(ms, thr.threshold).iloc[0].to_dict()
out["m67"] = {
    "n_members": len(m67),
    "statuses": pd.Series(mp.status).value_counts().to_dict(),
    "params": mfit.params,
    "converged": mfit.converged,
    "flags": mfit.flags,
    "binary_fraction": bf,
    "reference": {"log_age": 9.55, "distance": 864.246, "a_v": 0.113, "q_gaia_plus": 0.254, "n_bin": 510, "n_ms": 1238},
}
print(json.dumps(out["m67"], default=float), flush=True)
from ocnb.config import data_home  # noqa: E402

target = Path(sys.argv[1]) if len(sys.argv) > 1 else data_home() / "binaries_laptop_checks.json"
target.write_text(json.dumps(out, default=float, indent=1))
print("wrote", target)
