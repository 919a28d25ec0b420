"""The shipped data registry: checksums, provenance, corruption is caught, curation is reproducible."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ocnb.datasets as ds
from ocnb.datasets import _registry
from ocnb.errors import DataIntegrityError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "ocnb" / "data"
SHARED = REPO.parent / "shared" / "data"


def test_registry_lists_every_shipped_file_with_matching_checksum():
    reg = json.loads((DATA / "registry.json").read_text())
    files = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()}
    listed = {r["file"] for r in reg["files"]}
    assert len(listed) == 55  # 53 data files + the two vG23 networks (models/)
    # Nothing unregistered ships except the registry and the provenance itself.
    assert files - listed == {"registry.json", "PROVENANCE.md"}
    for rec in reg["files"]:
        data = (DATA / rec["file"]).read_bytes()
        assert len(data) == rec["bytes"], rec["file"]
        assert hashlib.sha256(data).hexdigest() == rec["sha256"], rec["file"]
    assert sum(r["bytes"] for r in reg["files"]) < 16e6  # "well under 20 MB"


def test_list_datasets_columns_and_known_rows():
    df = ds.list_datasets()
    for col in ("name", "kind", "file", "rows", "bytes", "sha256", "citation"):
        assert col in df.columns
    assert len(df) == 55
    assert set(df["kind"]) == {"catalog", "members", "field", "spectra", "grid", "table", "linelist", "model"}
    rows = df.set_index("file")["rows"]
    assert rows["catalogs/hunt2023.parquet"] == 6806
    assert rows["catalogs/cavallo2024.parquet"] == 6140
    assert rows["members/almeida_edr3_20clusters.parquet"] == 9866  # 9873 minus 7 exact duplicates
    assert rows["members/iso_nearby_members.parquet"] == 4485
    assert rows["fields/blanco1_dr2_cone_g18.parquet"] == 14785
    assert rows["apogee/occam_member_dr17.parquet"] == 26699
    assert df.loc[df["name"] == "HUNT2023", "citation"].iloc[0].startswith("Hunt & Reffert 2023")


def test_verify_passes_on_shipped_data():
    assert ds.verify() is None


def test_provenance_sections():
    text = ds.provenance("hunt2023")
    assert text.startswith("## HUNT2023")
    assert "ucc23/updt_UCC@0eb0d9e" in text and "A&A 673, A114" in text
    assert "**Dropped / changed:**" in text and "**Units:**" in text
    # A file name finds its dataset; each dataset section stops before the next one.
    iso = ds.provenance("iso_nearby_members.parquet")
    assert iso.startswith("## ISO_NEARBY") and "## ISO_DISTANT_LAMOST" not in iso
    with pytest.raises(KeyError, match="HUNT2023"):
        ds.provenance("HUNT2032")


@pytest.fixture
def data_copy(tmp_path):
    dest = tmp_path / "data"
    shutil.copytree(DATA, dest)
    return dest


def _flip_byte(path: Path, offset: int = 1000) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_corrupted_catalog_is_refused(data_copy):
    _flip_byte(data_copy / "catalogs" / "hunt2023.parquet")
    with pytest.raises(DataIntegrityError, match=r"catalogs/hunt2023\.parquet"):
        ds.load_catalog("HUNT2023", data_dir=data_copy)
    with pytest.raises(DataIntegrityError, match=r"catalogs/hunt2023\.parquet"):
        ds.verify(data_copy)
    # An untouched file of the same copy still reads; the name resolver, which needs HR23, refuses too.
    assert len(_registry.read_parquet("catalogs/dias2021.parquet", data_dir=data_copy)) == 1741
    with pytest.raises(DataIntegrityError, match=r"catalogs/hunt2023\.parquet"):
        ds.resolve_cluster_name("M67", data_dir=data_copy)


def test_corrupted_members_refused_via_environment(data_copy, monkeypatch):
    _flip_byte(data_copy / "members" / "iso_nearby_members.parquet", offset=5000)
    monkeypatch.setenv(_registry.ENV_VAR, str(data_copy))
    assert ds.package_data_dir() == data_copy.resolve()
    with pytest.raises(DataIntegrityError, match=r"members/iso_nearby_members\.parquet"):
        ds.load_members("M67", source="iso")
    monkeypatch.delenv(_registry.ENV_VAR)
    assert len(ds.load_members("M67", source="iso")) == 1518  # the shipped copy is fine


def test_corrupted_array_and_missing_file(data_copy):
    _flip_byte(data_copy / "spectra" / "gaia_rvs" / "gaia_dr3_rvs_examples.npz", offset=2000)
    with pytest.raises(DataIntegrityError, match=r"gaia_dr3_rvs_examples\.npz"):
        ds.load_rvs_spectra(data_dir=data_copy)
    (data_copy / "linelists" / "vald_8460_8700_lines.csv.gz").unlink()
    with pytest.raises(DataIntegrityError, match="missing"):
        ds.load_linelist(data_dir=data_copy)


def test_importing_datasets_does_not_import_astroquery():
    code = "import sys, ocnb.datasets; assert 'astroquery' not in sys.modules; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert "gaia_cone_search" in dir(ds) and "hunt2023_members" in ds.__all__


@pytest.mark.skipif(not (SHARED / "catalogs").is_dir(), reason="../shared/data not available")
def test_curation_is_reproducible(tmp_path):
    reg = json.loads((DATA / "registry.json").read_text())
    import numpy
    import pyarrow

    if reg["versions"] != {
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
    }:
        pytest.skip("different pandas/pyarrow/numpy versions than the ones that wrote the data")
    out = tmp_path / "data"
    res = subprocess.run(
        [sys.executable, str(REPO / "tools" / "curate_data.py"), "--source", str(SHARED), "--dest", str(out)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    new = json.loads((out / "registry.json").read_text())
    assert [(r["file"], r["sha256"]) for r in new["files"]] == [
        (r["file"], r["sha256"]) for r in reg["files"]
    ]
    assert (out / "PROVENANCE.md").read_bytes() == (DATA / "PROVENANCE.md").read_bytes()
