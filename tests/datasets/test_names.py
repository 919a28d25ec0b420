"""Cluster-name resolution across catalogue spellings and common names."""

from __future__ import annotations

import pytest

import ocnb.datasets as ds
from ocnb.datasets.names import COMMON_NAMES, _get_index
from ocnb.errors import UnknownClusterError


@pytest.mark.parametrize(
    "raw, canonical",
    [
        ("NGC_2682", "NGC 2682"),
        ("NGC 2682", "NGC 2682"),
        ("ngc2682", "NGC 2682"),
        ("  NGC   2682 ", "NGC 2682"),
        ("M67", "NGC 2682"),
        ("M 67", "NGC 2682"),
        ("Messier 67", "NGC 2682"),
        ("NGC2682", "NGC 2682"),
        ("NGC0188", "NGC 188"),
        ("NGC_188", "NGC 188"),
        ("Pleiades", "Melotte 22"),
        ("M45", "Melotte 22"),
        ("Melotte_22", "Melotte 22"),
        ("Mel 22", "Melotte 22"),
        ("Hyades", "Melotte 25"),
        ("Melotte 25", "Melotte 25"),
        ("Praesepe", "NGC 2632"),
        ("M44", "NGC 2632"),
        ("NGC_2632", "NGC 2632"),
        ("alpha Per", "Melotte 20"),
        ("alphaPer", "Melotte 20"),
        ("α Per", "Melotte 20"),
        ("Melotte 20", "Melotte 20"),
        ("Blanco1", "Blanco 1"),
        ("Blanco_1", "Blanco 1"),
        ("Coma Ber", "Melotte 111"),
        ("Melotte_111", "Melotte 111"),
        ("Trump02", "Trumpler 2"),
        ("Stock2", "Stock 2"),
        ("IC4665", "IC 4665"),
        ("NGC0752", "NGC 752"),
        ("NGC_2451A", "NGC 2451A"),
        ("h Per", "NGC 869"),
        # a Cavallo+2024 row naming two clusters: the part that is an HR23 name wins over an alias
        ("Teutsch 182, UBC 6", "UBC 6"),
    ],
)
def test_resolve_cluster_name(raw, canonical):
    assert ds.resolve_cluster_name(raw) == canonical


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownClusterError, match="close matches: NGC 2682"):
        ds.resolve_cluster_name("NGC 26822")
    with pytest.raises(UnknownClusterError, match="Melotte 22"):
        ds.resolve_cluster_name("Pleiadez")
    with pytest.raises(UnknownClusterError):
        ds.resolve_cluster_name("")
    # UnknownClusterError is a KeyError whose message reads cleanly.
    with pytest.raises(KeyError) as err:
        ds.resolve_cluster_name("Nonexistent Cluster 99999")
    assert str(err.value).startswith("unknown cluster 'Nonexistent Cluster 99999'")


def test_cluster_key_joins_spellings():
    keys = {ds.cluster_key(n) for n in ("M67", "NGC_2682", "ngc2682", "NGC 2682", "NGC2682")}
    assert keys == {"ngc2682"}
    assert ds.cluster_key("Pleiades") == ds.cluster_key("Melotte_22") == "melotte22"
    # Unknown names do not raise: they fall back to the normalised spelling.
    assert ds.cluster_key("Foo_Bar 007") == "foobar7"
    assert ds.cluster_key("Pleiades", resolve=False) == "pleiades"


def test_normalize_name():
    assert ds.normalize_name("NGC0188") == "ngc188"
    assert ds.normalize_name("Trump02") == "trumpler2"
    # decimals keep their zeros
    assert ds.normalize_name("AH03 J0748-26.09") != ds.normalize_name("AH03 J0748-26.9")


def test_common_name_targets_are_catalogue_clusters():
    idx = _get_index()
    for alias in COMMON_NAMES:
        assert ds.resolve_cluster_name(alias) in idx.hr23_names, alias
    # HR23 lists NGC_7092 (M39) as an alias of Theia 517: both spellings agree.
    assert ds.resolve_cluster_name("M39") == ds.resolve_cluster_name("NGC 7092") == "Theia 517"


@pytest.mark.parametrize(
    "catalog, raw",
    [
        ("HUNT2023", "NGC 2682"),
        ("HUNT2024", "NGC_2682"),
        ("CAVALLO2024", "NGC 2682"),
        ("CANTAT2020", "NGC_2682"),
        ("CANTAT_ANDERS2020", "NGC_2682"),
        ("DIAS2021", "NGC_2682"),
        ("SPINA2022", "NGC_2682"),
        ("DONOR2020", "NGC 2682"),
        ("MALHOTRA2026", "NGC_2682"),
        ("TARRICQ2022", "NGC_2682"),
    ],
)
def test_m67_found_in_every_catalogue(catalog, raw):
    df = ds.load_catalog(catalog)
    rows = df[df["name"] == "NGC 2682"]
    assert len(rows) == 1
    assert rows[df.attrs["name_column"]].iloc[0] == raw


def test_nearby_clusters_named_consistently():
    hr = ds.load_catalog("HUNT2023")
    # HR23 calls the Hyades, Pleiades and alpha Per by their Melotte numbers.
    for common, hr_name in [
        ("Hyades", "Melotte 25"),
        ("Pleiades", "Melotte 22"),
        ("alpha Per", "Melotte 20"),
        ("Praesepe", "NGC 2632"),
        ("Coma Ber", "Melotte 111"),
        ("Blanco 1", "Blanco 1"),
    ]:
        assert (hr["Name"] == hr_name).sum() == 1
        for cat in ("CANTAT2020", "DIAS2021", "CAVALLO2024"):
            assert (ds.load_catalog(cat)["name"] == ds.resolve_cluster_name(common)).sum() == 1, (cat, common)
    assert len(ds.known_cluster_names()) > 7000


def test_hr23_comma_names_resolve_to_themselves():
    # Cavallo writes "VDBH 110, BH 110" where HR23 has "VDBH 110,BH 110": one cluster.
    assert ds.resolve_cluster_name("VDBH 110, BH 110") == "VDBH 110,BH 110"
    cav = ds.load_catalog("CAVALLO2024")
    hr = set(ds.load_catalog("HUNT2023")["name"])
    assert cav["name"].isin(hr).sum() >= 6130  # 6139 of 6140 match by the spec's recipe
