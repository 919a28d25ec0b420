"""Cluster names: one canonical spelling for joins across catalogues.

Catalogues spell the same cluster differently: Hunt & Reffert (2023) and
Cavallo et al. (2024) write ``"NGC 2682"``, Cantat-Gaudin et al. (2020), Dias
et al. (2021) and Tarricq et al. (2022) ``"NGC_2682"``, the ISO multi-band
tables ``"NGC2682"`` or ``"NGC0188"``, and common names (M67, Pleiades,
Hyades, Praesepe, alpha Per, Coma Ber) appear only as aliases. The canonical
name is the Hunt & Reffert (2023) ``Name`` (so the Pleiades are
``"Melotte 22"``, the Hyades ``"Melotte 25"``, alpha Per ``"Melotte 20"``).
Clusters absent from HR23 keep the spelling of the first catalogue that lists
them, with underscores turned into spaces.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata

from ..errors import UnknownClusterError
from . import _registry

__all__ = ["resolve_cluster_name", "cluster_key", "normalize_name", "known_cluster_names", "COMMON_NAMES"]

# Common names -> HR23 canonical names. The Messier open clusters are listed by
# their NGC/IC numbers; HR23's own alias lists (AllNames) cover many more.
COMMON_NAMES: dict[str, str] = {
    "M67": "NGC 2682",
    "Messier 67": "NGC 2682",
    "King Cobra": "NGC 2682",
    "Pleiades": "Melotte 22",
    "M45": "Melotte 22",
    "Seven Sisters": "Melotte 22",
    "Hyades": "Melotte 25",
    "Praesepe": "NGC 2632",
    "M44": "NGC 2632",
    "Beehive": "NGC 2632",
    "Beehive Cluster": "NGC 2632",
    "alpha Per": "Melotte 20",
    "alphaPer": "Melotte 20",
    "alpha Persei": "Melotte 20",
    "alf Per": "Melotte 20",
    "α Per": "Melotte 20",
    "Alpha Persei Cluster": "Melotte 20",
    "Coma Ber": "Melotte 111",
    "Coma Berenices": "Melotte 111",
    "ComaBer": "Melotte 111",
    "h Per": "NGC 869",
    "chi Per": "NGC 884",
    "χ Per": "NGC 884",
    "Southern Pleiades": "IC 2602",
    "theta Car": "IC 2602",
    "M6": "NGC 6405",
    "M7": "NGC 6475",
    "M11": "NGC 6705",
    "M18": "NGC 6613",
    "M21": "NGC 6531",
    "M23": "NGC 6494",
    "M25": "IC 4725",
    "M26": "NGC 6694",
    "M29": "NGC 6913",
    "M34": "NGC 1039",
    "M35": "NGC 2168",
    "M36": "NGC 1960",
    "M37": "NGC 2099",
    "M38": "NGC 1912",
    "M39": "NGC 7092",
    "M41": "NGC 2287",
    "M46": "NGC 2437",
    "M47": "NGC 2422",
    "M48": "NGC 2548",
    "M50": "NGC 2323",
    "M52": "NGC 7654",
    "M93": "NGC 2447",
    "M103": "NGC 581",
}

# Abbreviated catalogue prefixes (e.g. the ISO tables' "Trump02").
_PREFIXES = {
    "trump": "trumpler",
    "tr": "trumpler",
    "mel": "melotte",
    "cr": "collinder",
    "col": "collinder",
    "coll": "collinder",
    "rup": "ruprecht",
    "be": "berkeley",
    "berk": "berkeley",
    "cz": "czernik",
    "messier": "m",
}

# Catalogue files whose names feed the resolver: (file, name column), in
# priority order for clusters missing from HR23.
NAME_SOURCES = {
    "HUNT2023": ("catalogs/hunt2023.parquet", "Name"),
    "HUNT2024": ("catalogs/hunt2024.parquet", "Name"),
    "CAVALLO2024": ("catalogs/cavallo2024.parquet", "Cluster"),
    "CANTAT2020": ("catalogs/cantat2020.parquet", "Cluster"),
    "CANTAT_ANDERS2020": ("catalogs/cantat_anders2020.parquet", "Cluster"),
    "DIAS2021": ("catalogs/dias2021.parquet", "Cluster"),
    "TARRICQ2022": ("catalogs/tarricq2022.parquet", "Cluster"),
    "SPINA2022": ("catalogs/spina2022.parquet", "Cluster"),
    "DONOR2020": ("catalogs/donor2020.parquet", "Name"),
    "MALHOTRA2026": ("catalogs/malhotra2026.parquet", "Name"),
    "OCCAM_DR16": ("apogee/occam_cluster_dr16.parquet", "NAME"),
    "OCCAM_DR17": ("apogee/occam_member_dr17.parquet", "CLUSTER"),
    "ALMEIDA2023_EDR3": ("members/almeida_edr3_20clusters.parquet", "cluster"),
    "ISO_NEARBY": ("members/iso_nearby_members.parquet", "Cluster"),
    "ISO_DISTANT_LAMOST": ("members/iso_distant_lamost.parquet", "Cluster"),
}

_GREEK = {"α": "alpha", "χ": "chi", "θ": "theta"}


def normalize_name(name) -> str:
    """Spelling-insensitive key of a name, without any catalogue look-up.

    Lower case; spaces and underscores removed; a catalogue prefix split from
    its number (``"ngc2682"``); leading zeros of numbers dropped
    (``"NGC0188"`` -> ``"ngc188"``); a few abbreviations expanded
    (``"Trump02"`` -> ``"trumpler2"``).
    """
    s = unicodedata.normalize("NFKC", str(name)).strip().lower()
    for g, latin in _GREEK.items():
        s = s.replace(g, latin + " ")
    s = re.sub(r"[\s_]+", " ", s)
    s = re.sub(r"(?<=[a-z])(?=\d)", " ", s)
    m = re.match(r"([a-z]+)(?= )", s)
    if m and m.group(1) in _PREFIXES:
        s = _PREFIXES[m.group(1)] + s[m.end() :]
    # Leading zeros of a number (not of decimals: "26.09" stays).
    s = re.sub(r"(?<![\d.])0+(?=\d)", "", s)
    return s.replace(" ", "")


def _display(name: str) -> str:
    """A catalogue spelling turned into HR23 style (underscores -> spaces)."""
    return re.sub(r"\s+", " ", str(name).split(",")[0].replace("_", " ")).strip()


class _Index:
    def __init__(self, root: str):
        self.key_to_name: dict[str, str] = {}
        self.primary: set[str] = set()  # keys of common names and HR23 primary names
        self.hr23_names: set[str] = set()
        self._build(root)

    def _add(self, key: str, canonical: str) -> None:
        if key and key not in self.key_to_name:
            self.key_to_name[key] = canonical

    def _lookup_parts(self, raw: str) -> str | None:
        # HR23 itself has comma names ("VDBH 110,BH 110"); the whole name, spaces ignored, comes first.
        whole = normalize_name(raw)
        if whole in self.primary:
            return self.key_to_name[whole]
        # "Teutsch 182, UBC 6": a part that is a primary name wins over one
        # that is only an alias of some other cluster.
        keys = [normalize_name(p) for p in str(raw).split(",")]
        for k in keys:
            if k in self.primary:
                return self.key_to_name[k]
        for k in keys:
            hit = self.key_to_name.get(k)
            if hit is not None:
                return hit
        return None

    def _build(self, root: str) -> None:
        read = lambda f: _registry.read_parquet(f, data_dir=root)  # noqa: E731
        hr = read(NAME_SOURCES["HUNT2023"][0])[["Name", "AllNames", "N"]]
        # 1. HR23 primary names.
        for n in hr["Name"]:
            self._add(normalize_name(n), n)
            self.primary.add(normalize_name(n))
            self.hr23_names.add(n)
        # 2. HR23 alias lists; an alias shared by several clusters goes to the richest one.
        for n, aliases, _ in sorted(
            zip(hr["Name"], hr["AllNames"].fillna(""), hr["N"], strict=True), key=lambda t: -t[2]
        ):
            for a in str(aliases).split(","):
                self._add(normalize_name(a), n)
        # 3. Common names override aliases (HR23 also lists "Hyades" for CWNU 1242); their targets are
        #    themselves resolved, e.g. M39 -> NGC 7092 -> Theia 517 (HR23 lists NGC_7092 as its alias).
        for alias, target in COMMON_NAMES.items():
            k = normalize_name(alias)
            self.key_to_name[k] = self.key_to_name.get(normalize_name(target), target)
            self.primary.add(k)
        # 4. HR24, then the other catalogues: names unknown so far become canonical in display form.
        hr24 = read(NAME_SOURCES["HUNT2024"][0])[["Name", "AllNames"]]
        for n, aliases in zip(hr24["Name"], hr24["AllNames"].fillna(""), strict=True):
            target = self._lookup_parts(n) or _display(n)
            self._add(normalize_name(n), target)
            for a in str(aliases).split(","):
                self._add(normalize_name(a), target)
        for ds, (file, col) in NAME_SOURCES.items():
            if ds in ("HUNT2023", "HUNT2024"):
                continue
            for n in read(file)[col].dropna().astype(str).unique():
                target = self._lookup_parts(n) or _display(n)
                for part in n.split(","):
                    self._add(normalize_name(part), target)


@functools.lru_cache(maxsize=4)
def _index(root: str) -> _Index:
    return _Index(root)


def _get_index(data_dir=None) -> _Index:
    return _index(str(_registry.package_data_dir(data_dir)))


def known_cluster_names(data_dir=None) -> list[str]:
    """Sorted canonical names of every cluster in the shipped catalogues."""
    return sorted(set(_get_index(data_dir).key_to_name.values()))


def resolve_cluster_name(name, data_dir=None) -> str:
    """Canonical (Hunt & Reffert 2023 style) name of a cluster.

    Parameters
    ----------
    name : str
        Any spelling: ``"NGC_2682"``, ``"ngc2682"``, ``"NGC0188"``, ``"M67"``,
        ``"Pleiades"``, ``"alphaPer"``, ``"Blanco1"``, ``"Trump02"``...

    Returns
    -------
    str
        E.g. ``"NGC 2682"``; ``"Melotte 22"`` for the Pleiades.

    Raises
    ------
    UnknownClusterError
        No shipped catalogue knows the name; the message lists close matches.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownClusterError(f"cluster name must be a non-empty string, got {name!r}")
    idx = _get_index(data_dir)
    hit = idx._lookup_parts(name)
    if hit is not None:
        return hit
    key = normalize_name(name)
    keys = difflib.get_close_matches(key, list(idx.key_to_name), n=12, cutoff=0.75)
    close: list[str] = []
    for k in keys:
        if idx.key_to_name[k] not in close:
            close.append(idx.key_to_name[k])
    hint = f"; close matches: {', '.join(close[:5])}" if close else ""
    raise UnknownClusterError(
        f"unknown cluster {name!r}: not in HUNT2023/HUNT2024/CAVALLO2024/CANTAT2020/DIAS2021/"
        f"... nor a known alias{hint}"
    )


def cluster_key(name, resolve: bool = True, data_dir=None) -> str:
    """Join key of a cluster name.

    With ``resolve=True`` (default) the name is first resolved to its
    canonical form, so ``"M67"``, ``"NGC_2682"`` and ``"ngc2682"`` all give
    ``"ngc2682"``; a name that cannot be resolved falls back to its plain
    normalised spelling (no error), so the function is safe in ``Series.map``.
    """
    if resolve:
        hit = _get_index(data_dir)._lookup_parts(name)
        if hit is not None:
            return normalize_name(hit)
    return normalize_name(name)


def canonical_names(raw_names, data_dir=None) -> list[str]:
    """Canonical names for a sequence of catalogue spellings (unknown ones in display form)."""
    idx = _get_index(data_dir)
    cache: dict[str, str] = {}
    out = []
    for n in raw_names:
        if n not in cache:
            cache[n] = (idx._lookup_parts(n) or _display(n)) if isinstance(n, str) else None
        out.append(cache[n])
    return out
