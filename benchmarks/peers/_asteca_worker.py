"""One ASteCA fit of one cluster; run by ``asteca_vs_ocnb.py`` with the peer interpreter (Python ≥ 3.12).

This file must import nothing from ocnb: it runs in ASteCA's own virtual environment.
It follows ASteCA's pyABC tutorial: an ``Isochrones`` object (PARSEC files), a ``Synthetic``
object, ``calibrate`` with the observed ``Cluster``, the Poisson likelihood ratio as the ABC
distance, uniform priors, ``ABCSMC(population_size=...)`` and ``run(minimum_epsilon,
max_nr_populations)``; the estimate is the weighted last generation.

Output: one line ``ASTECA_RESULT {json}`` on stdout with the per-parameter 16/50/84 weighted
percentiles, the last generation's particles and weights (for pooling seeds), the timings
(``fit_s``: Cluster → posterior, the fit alone; ``load_s``: isochrone files; ``import_s``),
the final ε, the effective sample size and the number of generations.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import asteca  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyabc  # noqa: E402

T_IMPORT = time.perf_counter()
#: ASteCA / pyABC parameter names -> ocnb names.
NAMES = {"loga": "log_age", "met": "feh", "Av": "a_v", "dm": "dist_mod"}


from _weighted import weighted_percentiles  # noqa: E402  (this folder is sys.path[0] when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", required=True, help="folder of PARSEC CMD-format isochrone files")
    ap.add_argument("--members", required=True, help="CSV with columns G, e_G, BP_RP, e_BP_RP")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--min-epsilon", type=float, default=0.01)
    ap.add_argument(
        "--priors", required=True, help='JSON {"loga": [lo, hi], "met": ..., "Av": ..., "dm": ...}'
    )
    ap.add_argument("--fixed", default='{"alpha": 0.09, "beta": 0.94, "Rv": 3.1, "DR": 0.0}')
    ap.add_argument("--ext-law", default="GAIADR3")
    ap.add_argument("--max-mass", type=int, default=10_000)
    ap.add_argument("--n-points", type=int, default=2000)
    args = ap.parse_args(argv)
    priors_rng = json.loads(args.priors)
    fixed = json.loads(args.fixed)

    # Isochrones: the project's PARSEC grid exported as CMD-format files; [M/H] is read from the
    # files' MH column so that 'met' is [M/H] directly (no Z -> [Fe/H] conversion).
    isochs = asteca.Isochrones(
        model="parsec",
        isochs_path=args.grid,
        mag="Gmag",
        color=("G_BPmag", "G_RPmag"),
        column_names={"eep_col": None, "mass_col": "Mini", "met_col": "MH", "age_col": "logAge"},
        N_points=args.n_points,
        verbose=0,
    )
    t_load = time.perf_counter()
    obs = pd.read_csv(args.members)

    np.random.seed(args.seed)  # noqa: NPY002 - pyABC draws from numpy's global generator
    tf0 = time.perf_counter()
    cluster = asteca.Cluster(
        mag=obs["G"].to_numpy(float),
        e_mag=obs["e_G"].to_numpy(float),
        color=obs["BP_RP"].to_numpy(float),
        e_color=obs["e_BP_RP"].to_numpy(float),
        verbose=0,
    )
    defaults = {
        "met": 0.0,
        "loga": 9.0,
        "alpha": 0.09,
        "beta": 0.94,
        "Rv": 3.1,
        "DR": 0.0,
        "Av": 0.2,
        "dm": 9.0,
    }
    defaults.update(fixed)
    synth = asteca.Synthetic(
        isochs, def_params=defaults, ext_law=args.ext_law, max_mass=args.max_mass, seed=args.seed, verbose=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth.calibrate(cluster)
    lkl = asteca.Likelihood(cluster)

    def model(params):
        return {"data": synth.generate(params)}

    def distance(synth_dict, _):
        return lkl.get(synth_dict["data"])

    prior = pyabc.Distribution(**{k: pyabc.RV("uniform", lo, hi - lo) for k, (lo, hi) in priors_rng.items()})
    abc = pyabc.ABCSMC(model, prior, distance, population_size=args.population)
    with tempfile.TemporaryDirectory() as tmp:
        abc.new("sqlite:///" + os.path.join(tmp, "pyabc.db"))
        history = abc.run(minimum_epsilon=args.min_epsilon, max_nr_populations=args.generations)
        df, w = history.get_distribution()
        eps = float(pyabc.inference_util.eps_from_hist(history))
        n_gen = int(history.max_t) + 1
    tf1 = time.perf_counter()

    out = {
        "status": "ok",
        "seed": args.seed,
        "n_stars": len(obs),
        "max_mass": args.max_mass,
        # the priors this fit ran with (the benchmark runs ASteCA under two settings)
        "priors": {k: list(v) for k, v in priors_rng.items()},
        "p16": {},
        "p50": {},
        "p84": {},
        "particles": {},
        "weights": [float(v) for v in np.asarray(w)],
    }
    for k, name in NAMES.items():
        if k not in df:
            continue
        p16, p50, p84 = weighted_percentiles(df[k].to_numpy(float), w)
        out["p16"][name], out["p50"][name], out["p84"][name] = p16, p50, p84
        out["particles"][name] = [float(v) for v in df[k].to_numpy(float)]
    out.update(
        {
            "fit_s": tf1 - tf0,
            "load_s": t_load - T_IMPORT,
            "import_s": T_IMPORT - T0,
            "epsilon": eps,
            "ess": float(pyabc.weighted_statistics.effective_sample_size(w)),
            "n_generations": n_gen,
            "versions": {
                "asteca": getattr(asteca, "__version__", "?"),
                "pyabc": pyabc.__version__,
                "numpy": np.__version__,
                "pandas": pd.__version__,
                "python": ".".join(map(str, sys.version_info[:3])),
            },
        }
    )
    sys.stdout.write("ASTECA_RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
