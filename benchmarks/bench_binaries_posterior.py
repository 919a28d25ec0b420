"""Benchmark: posterior sampling for a whole cluster with ocnb's NPE (issue 16; Malhotra et al. 2025, Sect. 3.2).

Timed: :meth:`ocnb.ml.npe.BoundedNPE.sample` of 20,000 samples per star (the paper's number) for 1,000 stars —
one compiled pass over all (star, sample) pairs in fixed-size chunks — with the `laptop` preset's network
(``PRESETS['laptop']``'s depth and width, the All_Mags band set: 9 inputs, 6 parameters). The network is trained for one
epoch only: sampling time does not depend on how well it was trained.

Baseline, measured in the same run: BayesFlow's own ``ContinuousApproximator.sample`` (eager, per call) on the
same network and the same stars (a subset, scaled to 1,000 stars).
Target (issue 16): 1,000 stars × 20,000 samples in under one minute on 2 CPU cores (the paper: 2–3 s per star).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np


def run(fast: bool = False) -> list[dict]:
    from ocnb.binaries import make_prior, simulate_stars
    from ocnb.binaries.posterior import NPE_PARAMS, PRESETS, feature_names, features
    from ocnb.ml.npe import BoundedNPE

    n_stars, n_samples, n_base = (20, 2_000, 5) if fast else (1_000, 20_000, 20)
    prior = make_prior(log_age=(9.0, 10.0), feh=(-0.5, 0.3)) if fast else make_prior()
    sims = simulate_stars(3_000 if fast else 20_000, prior, seed=0, progress=False).to_frame()
    budget = PRESETS["laptop"]
    settings = dataclasses.replace(budget.npe_settings(0), epochs=1, precondition_epochs=1,
                                   **({"depth": 2, "width": 32} if fast else {}))
    box = prior.bounds
    bounds = {k: box["q" if k == "q_drawn" else k] for k in NPE_PARAMS}
    npe = BoundedNPE(NPE_PARAMS, bounds, feature_names("All_Mags"), settings)
    npe.fit(sims[list(NPE_PARAMS)].to_numpy(float), features(sims, "All_Mags"), progress=False)
    x = features(sims.iloc[:n_stars], "All_Mags")
    npe.sample(x, n_samples=n_samples, seed=1)  # the first call compiles
    t0 = time.perf_counter()
    s = npe.sample(x, n_samples=n_samples, seed=1)
    t_ocnb = time.perf_counter() - t0
    assert s.shape == (n_stars, n_samples, len(NPE_PARAMS)) and np.isfinite(s).all()

    # BayesFlow's own sampler on the same flow (standardised inputs as the flow sees them).
    import bayesflow as bf

    appr = bf.approximators.ContinuousApproximator(inference_network=npe.network_, standardize=None)
    xs = npe.standardise_x(x[:n_base]).astype("float32")
    appr.sample(num_samples=10, conditions={"inference_conditions": xs[:1]})  # warm-up
    t0 = time.perf_counter()
    appr.sample(num_samples=n_samples, conditions={"inference_conditions": xs})
    t_bf = (time.perf_counter() - t0) * n_stars / n_base

    return [{
        "name": f"BoundedNPE.sample: {n_stars:,} stars × {n_samples:,} samples (laptop network"
                f"{', fast: tiny' if fast else ''}; {1e3 * t_ocnb / n_stars:.1f} ms per star)",
        "value": t_ocnb, "unit": "s",
        "baseline_name": f"BayesFlow ContinuousApproximator.sample, same flow (measured on {n_base} stars, scaled)",
        "baseline_value": t_bf, "ratio": t_bf / t_ocnb,
        "target": "1,000 stars × 20,000 samples < 60 s on 2 cores" + ("" if not fast else " (fast: smoke only)"),
        "passed": bool(t_ocnb * 1_000 / n_stars * 20_000 / n_samples < 60.0),
    }]


if __name__ == "__main__":
    import sys

    for r in run(fast="--fast" in sys.argv):
        print(r)
