"""Probe: does the training mass function change the real-cluster accuracy of the Cavallo estimator?

Trains a small probe ensemble (4 members of the laptop network, 20,000 SIMULATED clusters, 20
epochs) on Salpeter, "varied" and "varied" + 30 % binaries training sets and runs
``real_cluster_check`` on every shipped real cluster. About 4 min per variant on 2 cores; models go
to a throw-away data home. The numbers are recorded in
``ocnb.cmd_ann.ensemble.MASS_FUNCTION_MEASUREMENT``.

    .venv/bin/python tools/probe_mass_function.py [salpeter varied varied+binaries]
"""

import os
import sys
import tempfile

VARIANTS = {"salpeter": ("salpeter", False), "varied": ("varied", False), "varied+binaries": ("varied", True)}


def main(names):
    os.environ.setdefault("OCNB_DATA_DIR", tempfile.mkdtemp(prefix="ocnb-probe-"))
    from ocnb.cmd_ann import LABELS, real_cluster_check, simulate_clusters, train_default
    from ocnb.cmd_ann.ensemble import PRESETS

    for name in names:
        mf, binaries = VARIANTS[name]
        PRESETS["probe"] = dict(PRESETS["laptop"], n_members=4, n_test=300, subset_size=8000, epochs=20,
                                patience=5, mass_function=mf)
        train = simulate_clusters(20_000, seed=0, mass_function=mf, binaries=binaries, progress=False)
        multi, gaia = (train_default("probe", b, train_set=train) for b in ("multi", "gaia"))
        check = real_cluster_check(multi, gaia).dropna(subset=["log_age"])
        medians = "  ".join(f"{k} {check[f'd_{k}'].abs().median():.2f}" for k in LABELS)
        print(f"{name}: median |Δ| over {len(check)} real clusters: {medians}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(VARIANTS))
