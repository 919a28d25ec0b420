"""sbi side of benchmarks/peers/binaries_vs_sbi.py — runs inside the peer's own venv (sbi + CPU torch).

Reads the training and test arrays written by the driver (the same SIMULATED stars ocnb trains on), trains
sbi's default single-round NPE (a masked autoregressive flow, z-scored inputs, Adam 5e-4, 10 % validation,
stop after 20 epochs without improvement: sbi's defaults, as Malhotra et al. 2025 used them), then draws
``n_samples`` posterior samples for each test star one star at a time (the way sbi is used per star, with
its leakage rejection against a box prior), timing each. Writes one npz with the samples and the timings
and prints a JSON line ``SBI_RESULT {...}``.

Usage: python _sbi_worker.py IN.npz OUT.npz
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(inp: str, out: str) -> int:
    import sbi
    import torch
    from sbi.inference import NPE
    from sbi.utils import BoxUniform

    d = np.load(inp)
    seed = int(d["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (sbi draws from the global NumPy and torch generators)
    torch.set_num_threads(int(d["threads"]))
    lo, hi = d["box_low"], d["box_high"]
    prior = BoxUniform(low=torch.tensor(lo, dtype=torch.float32), high=torch.tensor(hi, dtype=torch.float32))
    theta = torch.tensor(d["theta_train"], dtype=torch.float32)
    x = torch.tensor(d["x_train"], dtype=torch.float32)
    t0 = time.perf_counter()
    inference = NPE(prior=prior, density_estimator="maf", show_progress_bars=False)
    inference.append_simulations(theta, x).train(training_batch_size=int(d["batch_size"]), show_train_summary=False)
    posterior = inference.build_posterior()
    train_s = time.perf_counter() - t0
    x_test = d["x_test"]
    n_samples = int(d["n_samples"])
    samples = np.empty((len(x_test), n_samples, theta.shape[1]), dtype=np.float32)
    per_star = np.empty(len(x_test))
    for i, xi in enumerate(x_test):
        t = time.perf_counter()
        s = posterior.sample((n_samples,), x=torch.tensor(xi, dtype=torch.float32), show_progress_bars=False)
        per_star[i] = time.perf_counter() - t
        samples[i] = s.numpy()
    np.savez(out, samples=samples, per_star_s=per_star)
    # sbi ends its training summary without a newline: start the result on a line of its own
    print("\nSBI_RESULT " + json.dumps({"train_s": train_s, "sbi": sbi.__version__, "torch": torch.__version__,
                                      "epochs": int(inference.epoch) if hasattr(inference, "epoch") else None,
                                      "median_per_star_s": float(np.median(per_star))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
