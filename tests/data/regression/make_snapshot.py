"""Record the behaviour of notebook 01's engines before the base refactor (issue 13).

Run once, on commit e24519a (before ``ocnb.sim``, ``ocnb.ml``, ``ocnb.store`` existed), with the
package of that commit first on ``sys.path``::

    git worktree add /tmp/pristine e24519a
    OCNB_DATA_DIR=/tmp/snap-home PYTHONPATH=/tmp/pristine \
        .venv/bin/python tests/data/regression/make_snapshot.py

It writes, next to this file:

``sim_features.npz``
    ``simulate_clusters(40, seed=123, mass_function="varied")`` (SIMULATED clusters): labels, offsets and
    every star column; plus the multi-band and Gaia-only QuadTree features of those clusters.
``model-pre-store/``
    A small Cavallo model (QuadTree constants + a 2-member 16x2 ANN ensemble trained on the same
    simulated clusters) saved with the *old* save code, and ``predictions.npz`` with its predictions.
``table2.json``
    ``fit_metallicity_gradient`` on the shipped Table-2 selection with an explicit sampler
    (2 chains x 300 tune / 300 draws, seed 0): the posterior summary.

``tests/test_regression.py`` checks that the refactored package reproduces all three.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    import ocnb
    from ocnb.cmd_ann import ANNEnsemble, QuadTreeFeatures, simulate_clusters
    from ocnb.cmd_ann.gradient import fit_metallicity_gradient
    from ocnb.cmd_ann.inference import CavalloModel

    print("ocnb from", ocnb.__file__, file=sys.stderr)
    sim = simulate_clusters(40, seed=123, mass_function="varied", progress=False)
    arrays = {"labels_" + c: sim.labels[c].to_numpy() for c in sim.labels.columns
              if np.issubdtype(sim.labels[c].dtype, np.number)}
    arrays["offsets"] = np.asarray(sim.offsets)
    for k, v in sim.stars.items():
        arrays["stars_" + k] = np.asarray(v)
    multi = QuadTreeFeatures(bands="multi", parallax="log10").fit(sim)
    gaia = QuadTreeFeatures(bands="gaia").fit(sim)
    arrays["X_multi"] = multi.transform(sim)
    arrays["X_gaia"] = gaia.transform(sim)
    np.savez_compressed(HERE / "sim_features.npz", **arrays)

    ens = ANNEnsemble(n_members=2, hidden=(16, 16), subset_size=30, epochs=3, patience=3, batch_size=16,
                      input_scaling="standard", seed=7)
    ens.fit(arrays["X_multi"], sim.labels[["log_age", "feh", "a_v", "dist_mod"]])
    model = CavalloModel(multi, ens, "fast", "multi", {"n_train": len(sim), "snapshot": "pre-store"})
    folder = HERE / "model-pre-store"
    model.save(folder)
    pred = ens.predict(arrays["X_multi"])
    np.savez_compressed(folder.parent / "model_predictions.npz", members=pred.members,
                        X=arrays["X_multi"])

    fit = fit_metallicity_gradient(draws=300, tune=300, chains=2, seed=0, progressbar=False, cores=1)
    (HERE / "table2.json").write_text(json.dumps(fit.summary.to_dict(orient="index"), indent=1))
    print(fit.summary)


if __name__ == "__main__":
    main()
