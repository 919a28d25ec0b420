"""The notebook's trained Deep Sets model: real members in SIMULATED fields, and the real Blanco 1 test.

vG23 train on Gaia cones around hundreds of Cantat-Gaudin+2020 clusters, downloaded from the archive. Offline,
ocnb trains on the **real published members** of the shipped clusters (Almeida et al. 2023, EDR3, with errors
and correlations) embedded in **simulated** Galactic fields along their lines of sight
(:func:`ocnb.membership.embed_cluster`), so that every star's true label is known. Two choices differ from
the paper and are presets' settings, said so:

* ``negatives="field"``: the negatives are all true non-members, including the field stars that pass the
  candidate selection (only a simulated field can label those). The paper's negatives are the stars that
  fail the selection (``negatives="non_members"``); with them the network never sees a hard field star and
  calls most candidates members (vG23 Sect. 4: twice as many members as Tarricq+2022).
* the cone radius is capped at ``max_radius_deg`` (spec A2's 50 pc would give the Hyades a 60° cone).

The training cones can be simulated at the release of the cone to be scored (``release=``), on the idea that the
network never sees errors as inputs and learns the members' spread from its training cones, so a model trained on
EDR3-precision cones could miss faint DR2 members, whose errors are ~2× larger. ``release="DR2"`` degrades the
real members to DR2 precision (SIMULATED noise, :func:`ocnb.membership.field.degrade_members`) in a DR2 field
without correlation columns; the model's store name carries the release (``vg23-deepsets-fast-dr2-s0``).
Measured (FAST preset, seeds 0/1/2, real Blanco 1 DR2 cone, p ≥ 0.5): DR3-trained F1 0.962/0.945/0.952
(recall 0.952/0.921/0.938), DR2-trained F1 0.899/0.952/0.905 (recall 0.829/0.938/0.843); the DR2 validation
cones are harder (10σ cuts around noisier members hold 1.2–5.4× more field stars; NGC 2423 F1 0.91–0.95 against
0.96–0.98). DR2-matching does **not** help Blanco 1: its missed members are not typical DR2 noise but DR2
outliers (their DR2 − EDR3 proper-motion differences have median |z| 2.0 and 35 % beyond 3σ of the combined
errors, against 0.5 and 0 % for the faint members found), which Gaussian degradation cannot teach. So the
default stays ``release="DR3"``; ``"DR2"`` is there to measure it.

Blanco 1 never enters training or validation: its real DR2 cone (``load_field("blanco1")``) and its
published Almeida members are the truth of the real test (:func:`blanco1_test_cluster`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import config
from ..datasets import list_member_clusters, load_field, load_members
from ..datasets.names import cluster_key

TEST_CLUSTER = "Blanco 1"

#: Clusters of the FAST preset: varied distance, age and Galactic latitude, small enough cones to be quick.
_FAST_CLUSTERS = ("NGC 2360", "NGC 2423", "NGC 6811", "NGC 2287", "NGC 752", "NGC 6633", "NGC 2547", "IC 4665")

#: Training presets. ``epochs``/``learning_rate``/``batch_size``/``patience`` go to
#: :class:`~ocnb.membership.DeepSetsMembership`; ``paper`` keeps vG23's optimiser settings (lr 1e-6, 200 epochs,
#: batch 32, patience 20 on validation F1) and negatives.
TRAINING_PRESETS: dict[str, dict] = {
    "fast": dict(clusters=_FAST_CLUSTERS, epochs=12, learning_rate=1e-3, batch_size=128, patience=4,
                 negatives="field", max_radius_deg=2.5, max_members=300, g_max=18.0),
    "laptop": dict(clusters=None, epochs=60, learning_rate=2e-4, batch_size=64, patience=10,
                   negatives="field", max_radius_deg=4.0, max_members=None, g_max=18.0, min_dist_pc=250.0),
    "paper": dict(clusters=None, epochs=200, learning_rate=1e-6, batch_size=32, patience=20,
                  negatives="non_members", max_radius_deg=4.0, max_members=None, g_max=18.0, min_dist_pc=250.0),
}


def _preset(preset: str) -> dict:
    if preset not in TRAINING_PRESETS:
        raise ValueError(f"unknown training preset {preset!r}; choose one of {sorted(TRAINING_PRESETS)}")
    return dict(TRAINING_PRESETS[preset])


def training_cluster_names(preset: str = "laptop") -> list[str]:
    """The clusters whose real members are embedded in simulated fields (never Blanco 1).

    ``fast`` uses eight; the others every cluster with an Almeida et al. member list except Blanco 1, farther
    than ``min_dist_pc`` (vG23's training pool has ϖ < 4 mas: a nearby cluster's 10σ parallax window reaches the
    whole background — the Hyades' cone would hold 600,000 field stars — and its cone spans tens of degrees).
    """
    from .cones import catalogue_parameters

    p = _preset(preset)
    if p["clusters"] is not None:
        names = list(p["clusters"])
    else:
        table = list_member_clusters()
        names = sorted(table.loc[table["source"] == "almeida", "cluster"].unique())
        names = [n for n in names if catalogue_parameters(n)["dist_pc"] >= p["min_dist_pc"]]
    test = cluster_key(TEST_CLUSTER)
    return [n for n in names if cluster_key(n) != test]


def split_clusters(names: Sequence[str], seed: int = 42) -> tuple[list[str], list[str]]:
    """Training / validation split by cluster (spec A8: ``random.seed(42)``, 30 % validation, at least one each)."""
    names = list(names)
    if len(names) < 2:
        raise ValueError(f"need at least two clusters to split into training and validation, got {names}")
    n_val = min(max(int(0.3 * len(names)), 1), len(names) - 1)
    rng = random.Random(seed)
    val = rng.sample(names, n_val)
    return [n for n in names if n not in val], val


def _subsample_members(members: pd.DataFrame, n_max: int | None, seed: int) -> pd.DataFrame:
    if n_max is None or len(members) <= n_max:
        return members
    keep = np.sort(np.random.default_rng(seed).choice(len(members), n_max, replace=False))
    out = members.iloc[keep].reset_index(drop=True)
    out.attrs.update(members.attrs)
    return out


def release_of(cone) -> str:
    """The Gaia release of a cone (``attrs["release"]``), normalised: "DR2" or "DR3" (EDR3 = DR3 astrometry).

    ``cone`` is a cone DataFrame or a :class:`~ocnb.membership.PreparedCluster` (its prepared cone), so the
    notebook can ask for the matching model: ``default_model(PRESET, release=release_of(blanco))``.

    Raises
    ------
    ValueError
        No ``attrs["release"]`` or an unknown release.
    """
    df = getattr(cone, "cone", cone)
    attrs = getattr(df, "attrs", None)
    if not isinstance(attrs, dict) or attrs.get("release") is None:
        raise ValueError(f"release_of: the cone has no attrs['release'] (expected 'DR2', 'EDR3' or 'DR3'); got a "
                         f"{type(cone).__name__}")
    return _release(attrs["release"])


def _release(release) -> str:
    rel = str(release).upper()
    rel = "DR3" if rel == "EDR3" else rel
    if rel not in ("DR2", "DR3"):
        raise ValueError(f"release = {release!r}: training cones are simulated for 'DR3' (= 'EDR3') or 'DR2'")
    return rel


def simulated_cluster(name: str, preset: str = "laptop", seed: int = 0, release: str = "DR3",
                      subsample: bool = True):
    """One training/validation cluster: its real members in a SIMULATED field, prepared for the model.

    ``release="DR2"``: DR2 field errors, members degraded to DR2 precision, no correlation columns
    (:func:`ocnb.membership.embed_cluster`). ``subsample=False`` keeps every member even where the preset caps
    them (``max_members``), so that the share of members among the candidates is the cluster's own.

    Returns a :class:`~ocnb.membership.PreparedCluster` whose ``truth`` marks the real (published) members;
    the support/seed members are the same published members (vG23's training members).
    """
    from .features import prepare_cluster
    from .field import embed_cluster

    p = _preset(preset)
    rel = _release(release)
    members = load_members(name, source="almeida")
    if subsample:
        members = _subsample_members(members, p["max_members"], seed)
    # spec A2's radius is 50 pc at the cluster; cap it in degrees (see the module docstring)
    from .cones import catalogue_parameters

    dist = catalogue_parameters(name)["dist_pc"]
    radius_pc = min(50.0, float(dist) * np.radians(p["max_radius_deg"]))
    cone, truth = embed_cluster(members, cluster_name=name, seed=seed, g_max=p["g_max"], radius_pc=radius_pc,
                                release=rel)
    return prepare_cluster(cone, truth, name=name, truth=truth)


def training_clusters(preset: str = "laptop", seed: int = 0, progress: bool | None = None, release: str = "DR3"):
    """Prepared training and validation clusters of a preset (SIMULATED fields, real members), at ``release``.

    Returns
    -------
    (list, list)
        Training and validation :class:`~ocnb.membership.PreparedCluster` lists, split by cluster
        (:func:`split_clusters`).
    """
    rel = _release(release)
    names = training_cluster_names(preset)
    train_names, val_names = split_clusters(names)
    from ..ml.training import _progress_enabled

    show = _progress_enabled() if progress is None else bool(progress)
    it = names
    if show:
        from tqdm.auto import tqdm

        it = tqdm(names, desc=f"simulated {rel} fields", unit="cluster")
    prepared = {}
    for i, name in enumerate(it):
        prepared[name] = simulated_cluster(name, preset, seed=seed + i, release=rel)
    return [prepared[n] for n in train_names], [prepared[n] for n in val_names]


#: Offset of the field seeds of the calibration cones: fresh realisations of the validation clusters' fields.
CALIBRATION_SEED_OFFSET = 10_000


def calibration_clusters(preset: str = "laptop", seed: int = 0, progress: bool | None = None,
                         release: str = "DR3") -> list:
    """The held-out clusters the probabilities are calibrated on: the validation clusters of
    :func:`training_clusters` in fresh SIMULATED fields (field seeds offset by 10,000, so not the cones that
    drove early stopping), with **all** their members: the calibration map depends on the share of members
    among the candidates, which the FAST preset's 300-member cap would lower (48 % instead of 65–71 %). The
    network never trains on these clusters' members."""
    rel = _release(release)
    _, val_names = split_clusters(training_cluster_names(preset))
    from ..ml.training import _progress_enabled

    show = _progress_enabled() if progress is None else bool(progress)
    it = val_names
    if show:
        from tqdm.auto import tqdm

        it = tqdm(val_names, desc=f"calibration {rel} fields", unit="cluster")
    return [simulated_cluster(name, preset, seed=CALIBRATION_SEED_OFFSET + seed + i, release=rel, subsample=False)
            for i, name in enumerate(it)]


def model_name(preset: str, seed: int = 0, release: str = "DR3") -> str:
    """Model-store name of a preset's trained model: ``vg23-deepsets-fast-s0`` (DR3), ``vg23-deepsets-fast-dr2-s0``."""
    _preset(preset)
    rel = _release(release)
    tag = "" if rel == "DR3" else f"-{rel.lower()}"
    return f"vg23-deepsets-{preset}{tag}-s{seed}"


def default_model(preset: str | None = None, seed: int = 0, release: str = "DR3", retrain: bool = False,
                  progress: bool | None = None):
    """The trained Deep Sets model of a preset: loaded from the model store, trained and saved when absent.

    Parameters
    ----------
    preset : {"fast", "laptop", "paper"}, optional
        Default ``"fast"`` in FAST mode, else ``"laptop"``.
    seed : int
        Seed of the simulated fields and of the network.
    release : {"DR3", "EDR3", "DR2"}
        Release of the cones the model will score (:func:`release_of`): the training cones are simulated at it.
    retrain : bool
        Train even when a saved model exists (the new one replaces it, atomically).

    The model comes calibrated (:meth:`DeepSetsMembership.calibrate` on :func:`calibration_clusters`); a saved
    model from before calibration existed is calibrated once and saved again as a new version.
    """
    from .. import store
    from .model import DeepSetsMembership

    preset = preset or ("fast" if config.fast_mode() else "laptop")
    name = model_name(preset, seed, release)
    est = None
    if not retrain:
        try:
            est = DeepSetsMembership.load(name)
        except store.BundleNotFoundError:
            pass
        else:
            if est.calibration_ is not None:
                return est
    if est is None:
        p = _preset(preset)
        train, val = training_clusters(preset, seed=seed, progress=progress, release=release)
        est = DeepSetsMembership(epochs=p["epochs"], learning_rate=p["learning_rate"], batch_size=p["batch_size"],
                                 patience=p["patience"], negatives=p["negatives"], seed=42 + seed)
        est.fit(train, val, progress=progress)
    est.calibrate(calibration_clusters(preset, seed=seed, progress=progress, release=release), progress=progress)
    est.save(name)
    return est


def blanco1_members_truth(cone: pd.DataFrame | None = None, g_max: float = 18.0) -> np.ndarray:
    """The truth of the real test: Almeida et al. (2023) Blanco 1 members (G < ``g_max``) matched into the DR2 cone.

    Matched by :func:`ocnb.membership.crossmatch_ids` (DR2 = EDR3 source_id, then position); returns a boolean
    mask over the cone rows.
    """
    from .evaluation import crossmatch_ids

    cone = load_field("blanco1") if cone is None else cone
    members = load_members(TEST_CLUSTER, source="almeida")
    members = members[members["phot_g_mean_mag"] < g_max]
    match = crossmatch_ids(cone, members)
    return _as_mask(match, cone)


def _as_mask(match, cone: pd.DataFrame) -> np.ndarray:
    """A boolean mask over the cone rows from :func:`~ocnb.membership.crossmatch_ids`' table."""
    rows = match["cone_row"].to_numpy()
    mask = np.zeros(len(cone), bool)
    mask[rows[rows >= 0]] = True
    return mask


def blanco1_test_cluster(seed_members: str = "ocelot"):
    """The real test: the Blanco 1 DR2 cone (14,785 stars, G < 18), prepared with a seed member list.

    The seed plays CG2020's role in vG23 (the catalogue list the method extends and whose stars form the support
    sets): ``"ocelot"`` = the 262 stars of the clustering result shipped with the cone (``ocelot_label == 0``;
    Hunt & Reffert-style HDBSCAN), independent of the Almeida et al. list that is the truth.
    ``truth`` = the Almeida members with G < 18 matched into the cone.
    """
    from .features import prepare_cluster

    if seed_members != "ocelot":
        raise ValueError(f"seed_members must be 'ocelot' (the clustering result shipped with the cone), "
                         f"got {seed_members!r}")
    cone = load_field("blanco1")
    seed = (cone["ocelot_label"] == 0).to_numpy()
    truth = blanco1_members_truth(cone)
    return prepare_cluster(cone, seed, name=TEST_CLUSTER, truth=truth)
