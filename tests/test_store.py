"""ocnb.store: versioned, checksummed, crash-safe model bundles.

The kill test runs the save in a subprocess that SIGKILLs itself after write step k, for every
k, while overwriting a good bundle; whatever is left must load as the complete old bundle, the
complete new one, or (first save) as "missing" -- never as a mix or a partial bundle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from ocnb.cache import CorruptCacheError
from ocnb.store import Bundle, BundleError, BundleNotFoundError, ModelStore, load_bundle, load_or_build, save_bundle

ROOT = Path(__file__).resolve().parents[1]
KIND = "tests.Toy"

OLD = {"config.json": b'{"a": 1}', "weights/w.bin": bytes(range(256)) * 4, "history.json": b"[1, 2, 3]"}
NEW = {"config.json": b'{"a": 2}', "weights/w.bin": bytes(reversed(range(256))) * 4, "history.json": b"[4]",
       "extra.txt": b"new file"}


def _files(bundle: Bundle) -> dict:
    return dict(bundle.files)


def _current_version_dir(folder: Path) -> Path:
    return folder / json.loads((folder / "CURRENT").read_text())["version"]


# -- round trip ----------------------------------------------------------------------------------------------
def test_round_trip_and_layout(tmp_path):
    folder = tmp_path / "m"
    vdir = save_bundle(folder, OLD, kind=KIND, kind_version=3, meta={"seed": 1})
    assert vdir.parent == folder and vdir.name.startswith("v0001-")
    b = load_bundle(folder, kind=KIND, kind_version=3)
    assert _files(b) == OLD and not b.legacy
    assert b.kind == KIND and b.kind_version == 3 and b.meta == {"seed": 1} and b.version == vdir.name
    man = json.loads((vdir / "manifest.json").read_text())
    assert set(man["files"]) == set(OLD)
    assert man["files"]["history.json"]["size"] == len(OLD["history.json"])
    # overwriting gives the next version and removes the old one
    v2 = save_bundle(folder, NEW, kind=KIND)
    assert v2.name.startswith("v0002-")
    assert sorted(p.name for p in folder.iterdir()) == ["CURRENT", v2.name]
    assert _files(load_bundle(folder)) == NEW
    # a version folder can be loaded directly, and sub-bundles see their prefix
    assert _files(load_bundle(v2)) == NEW
    assert _files(load_bundle(folder).sub("weights")) == {"w.bin": NEW["weights/w.bin"]}
    assert load_bundle(folder).json("config.json") == {"a": 2}


def test_arrays_round_trip(tmp_path):
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.arange(5.0))
    save_bundle(tmp_path / "a", {"arr.npz": buf.getvalue()}, kind=KIND)
    np.testing.assert_array_equal(load_bundle(tmp_path / "a").arrays("arr.npz")["x"], np.arange(5.0))


def test_model_store_names_and_listing(tmp_data_home):
    ms = ModelStore("unit")
    ms.save("alpha", OLD, kind=KIND)
    (ms.folder / "broken").mkdir()
    (ms.folder / "broken" / "junk.bin").write_bytes(b"x")
    assert ms.path("alpha") == tmp_data_home / "models" / "unit" / "alpha"
    listing = ms.list().set_index("name")
    assert listing.loc["alpha", "state"] == "ok" and listing.loc["alpha", "kind"] == KIND
    assert listing.loc["broken", "state"] == "partial"
    ms.delete("alpha")
    assert ms.names() == ["broken"]


# -- load_or_build -----------------------------------------------------------------------------------------------
def _load(path):
    return _files(load_bundle(path, kind=KIND))


def _save(files, path):
    save_bundle(path, files, kind=KIND)


def test_load_or_build_builds_once_then_loads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return OLD

    folder = tmp_path / "m"
    assert load_or_build(folder, build, _load, _save) == OLD
    assert load_or_build(folder, build, _load, _save) == OLD
    assert len(calls) == 1
    assert load_or_build(folder, lambda: NEW, _load, _save, refit=True) == NEW


def test_load_or_build_reports_and_rebuilds_a_partial_bundle(tmp_path):
    folder = tmp_path / "m"
    save_bundle(folder, OLD, kind=KIND)
    (_current_version_dir(folder) / "history.json").unlink()
    with pytest.warns(RuntimeWarning, match=r"unusable \(partial\).*history\.json is missing.*rebuilding"):
        got = load_or_build(folder, lambda: NEW, _load, _save)
    assert got == NEW and _load(folder) == NEW


# -- bad input / damaged bundles (table) ----------------------------------------------------------------------
def _damage(folder: Path, how: str, other: Path) -> None:
    vdir = _current_version_dir(folder)
    if how == "truncated file":
        p = vdir / "weights" / "w.bin"
        p.write_bytes(p.read_bytes()[:-7])
    elif how == "empty file":
        (vdir / "history.json").write_bytes(b"")
    elif how == "flipped byte":
        p = vdir / "weights" / "w.bin"
        data = bytearray(p.read_bytes())
        data[10] ^= 0xFF
        p.write_bytes(bytes(data))
    elif how == "missing file":
        (vdir / "config.json").unlink()
    elif how == "missing manifest":
        (vdir / "manifest.json").unlink()
    elif how == "empty manifest":
        (vdir / "manifest.json").write_bytes(b"")
    elif how == "manifest from another bundle":
        (vdir / "manifest.json").write_bytes((_current_version_dir(other) / "manifest.json").read_bytes())
    elif how == "file from another bundle":
        (vdir / "config.json").write_bytes(b'{"a": 9}')
    elif how == "missing version folder":
        import shutil

        shutil.rmtree(vdir)
    elif how == "empty CURRENT":
        (folder / "CURRENT").write_bytes(b"")
    elif how == "missing CURRENT":
        (folder / "CURRENT").unlink()
    else:  # pragma: no cover
        raise AssertionError(how)


DAMAGE = [
    ("truncated file", BundleError, r"partial: v0001-\w+/weights/w\.bin is truncated", "partial"),
    ("empty file", BundleError, r"partial: v0001-\w+/history\.json is truncated \(empty\)", "partial"),
    ("flipped byte", BundleError, r"w\.bin does not match the sha256", "mixed"),
    ("missing file", BundleError, r"partial: v0001-\w+/config\.json is missing", "partial"),
    ("missing manifest", BundleError, r"partial: v0001-\w+/manifest\.json is missing", "partial"),
    ("empty manifest", BundleError, r"manifest\.json is empty", "partial"),
    ("manifest from another bundle", BundleError, r"mixed: .*manifest\.json is not the manifest CURRENT recorded",
     "mixed"),
    ("file from another bundle", BundleError, r"config\.json does not match the sha256", "mixed"),
    ("missing version folder", BundleError, r"partial: CURRENT names version v0001-\w+, which is missing", "partial"),
    ("empty CURRENT", BundleError, r"CURRENT is empty or unreadable", "corrupt"),
    ("missing CURRENT", BundleNotFoundError, r"no complete model bundle", None),
]


@pytest.mark.parametrize("how, error, match, state", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_bundle_is_never_used(tmp_path, how, error, match, state):
    folder, other = tmp_path / "m", tmp_path / "other"
    save_bundle(folder, OLD, kind=KIND)
    save_bundle(other, NEW, kind=KIND)
    _damage(folder, how, other)
    with pytest.raises(error, match=match) as info:
        load_bundle(folder)
    assert str(folder) in str(info.value)  # the message names the bundle
    if state is not None:
        assert info.value.state == state
        assert isinstance(info.value, CorruptCacheError)  # old `except CorruptCacheError` still catch it


BAD_CALLS = [
    ("unknown kind", lambda p: load_bundle(p, kind="tests.Other"), BundleError, r"holds 'tests\.Toy', not"),
    ("other layout version", lambda p: load_bundle(p, kind_version=9), BundleError,
     r"layout version 1.*reads version 9"),
    ("nothing saved", lambda p: load_bundle(p.parent / "nothing"), BundleNotFoundError, r"no model bundle at"),
    ("path is a file", lambda p: load_bundle(p / "CURRENT"), BundleError, r"is a file, not a folder"),
    ("file name with ..", lambda p: save_bundle(p, {"../x": b"1"}, kind=KIND), ValueError, r"relative path"),
    ("absolute file name", lambda p: save_bundle(p, {"/etc/x": b"1"}, kind=KIND), ValueError, r"relative path"),
    ("reserved file name", lambda p: save_bundle(p, {"manifest.json": b"1"}, kind=KIND), ValueError, r"reserved"),
    ("content not bytes", lambda p: save_bundle(p, {"a.txt": "text"}, kind=KIND), ValueError, r"must be bytes"),
    ("no files", lambda p: save_bundle(p, {}, kind=KIND), ValueError, r"at least one file"),
    ("save onto a file", lambda p: save_bundle(p / "CURRENT", OLD, kind=KIND), NotADirectoryError, r"not a folder"),
    ("bad model name", lambda p: ModelStore("unit").path("../x"), ValueError, r"model name"),
    ("missing file in bundle", lambda p: load_bundle(p).read("nope.bin"), BundleError, r"has no file 'nope\.bin'"),
    ("json of a binary file", lambda p: load_bundle(p).json("weights/w.bin"), BundleError, r"not valid JSON"),
    ("npz of a json file", lambda p: load_bundle(p).arrays("config.json"), BundleError, r"not a readable \.npz"),
]


@pytest.mark.parametrize("name, call, error, match", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_table(tmp_path, name, call, error, match):
    folder = tmp_path / "m"
    save_bundle(folder, OLD, kind=KIND)
    with pytest.raises(error, match=match):
        call(folder)


# -- legacy (pre-store) layouts -------------------------------------------------------------------------------
def _write_legacy(folder: Path) -> None:
    """The layout ocnb wrote before the store: bundle.json + sidecar, ensemble/ with its own manifest."""
    from ocnb.cache import sha256_bytes

    (folder / "ensemble").mkdir(parents=True)
    doc = b'{"format": "x"}'
    (folder / "bundle.json").write_bytes(doc)
    (folder / "bundle.json.sha256").write_text(sha256_bytes(doc) + "\n")
    files = {"weights.npz": b"W" * 50, "config.json": b"{}"}
    for k, v in files.items():
        (folder / "ensemble" / k).write_bytes(v)
    man = json.dumps({"format": "old", "files": {k: sha256_bytes(v) for k, v in files.items()}}).encode()
    (folder / "ensemble" / "manifest.json").write_bytes(man)
    (folder / "ensemble" / "manifest.json.sha256").write_text(sha256_bytes(man) + "\n")


def test_legacy_layout_loads_verified(tmp_path):
    folder = tmp_path / "old"
    _write_legacy(folder)
    b = load_bundle(folder)
    assert b.legacy and set(b.files) == {"bundle.json", "ensemble/weights.npz", "ensemble/config.json",
                                         "ensemble/manifest.json"}
    assert b.sub("ensemble").read("weights.npz") == b"W" * 50
    # a new save replaces the old layout entirely
    save_bundle(folder, NEW, kind=KIND)
    assert sorted(p.name for p in folder.iterdir())[0] == "CURRENT" and not (folder / "bundle.json").exists()


@pytest.mark.parametrize("how, match", [
    ("weights", r"ensemble/weights\.npz does not match"),
    ("bundle", r"bundle\.json does not match its checksum record"),
    ("sidecar", r"bundle\.json has no checksum record"),
    ("empty", r"ensemble/weights\.npz empty"),
])
def test_damaged_legacy_bundle_is_never_used(tmp_path, how, match):
    folder = tmp_path / "old"
    _write_legacy(folder)
    if how == "weights":
        (folder / "ensemble" / "weights.npz").write_bytes(b"V" * 50)
    elif how == "bundle":
        (folder / "bundle.json").write_bytes(b'{"format": "y"}')
    elif how == "sidecar":
        (folder / "bundle.json.sha256").unlink()
    else:
        (folder / "ensemble" / "weights.npz").write_bytes(b"")
    with pytest.raises(BundleError, match=match):
        load_bundle(folder)


# -- the kill test ---------------------------------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from ocnb import store
    folder, files_dir, k = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    files = {p.relative_to(files_dir).as_posix(): p.read_bytes()
             for p in sorted(files_dir.rglob("*")) if p.is_file()}
    steps = []
    def hook(label):
        steps.append(label)
        if len(steps) == k:
            os.kill(os.getpid(), signal.SIGKILL)
    store._after_step = hook
    store.save_bundle(folder, files, kind=sys.argv[4])
    print(json.dumps(steps))
""")


def _dump(files: dict, where: Path) -> Path:
    for k, v in files.items():
        (where / k).parent.mkdir(parents=True, exist_ok=True)
        (where / k).write_bytes(v)
    return where


def _run_save(script: Path, folder: Path, files_dir: Path, k: int):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script), str(folder), str(files_dir), str(k), KIND],
                          capture_output=True, text=True, env=env, timeout=120)


def test_sigkill_at_every_write_step_never_leaves_a_usable_partial_or_mixed_bundle(tmp_path):
    script = tmp_path / "save.py"
    script.write_text(KILL_SCRIPT)
    new_dir = _dump(NEW, tmp_path / "new_files")
    # Dry run (k = 0: never kill) to learn the steps.
    dry = _run_save(script, tmp_path / "dry", new_dir, 0)
    assert dry.returncode == 0, dry.stderr
    steps = json.loads(dry.stdout)
    assert steps[0] == "tmp" and steps[-1] == "prune" and "current" in steps
    assert sum(s.startswith("file:") for s in steps) == len(NEW)
    outcomes = {}
    for first_save in (False, True):
        for k in range(1, len(steps) + 1):
            folder = tmp_path / f"m-{int(first_save)}-{k}"
            if not first_save:
                save_bundle(folder, OLD, kind=KIND)
            out = _run_save(script, folder, new_dir, k)
            assert out.returncode == -signal.SIGKILL, (k, out.returncode, out.stderr)
            try:
                got = _files(load_bundle(folder, kind=KIND))
            except BundleNotFoundError:
                got = "missing"
            # never a partial or mixed bundle (BundleError would propagate and fail the test)
            if got == "missing":
                assert first_save, f"killed after {steps[k - 1]!r}: the old bundle was lost"
                outcome = "missing"
            elif got == OLD:
                assert not first_save
                outcome = "old"
            else:
                assert got == NEW, f"killed after {steps[k - 1]!r}: loaded a bundle that is neither old nor new"
                outcome = "new"
            # the new version becomes visible exactly when CURRENT is switched
            assert (outcome == "new") == (k >= steps.index("current") + 1), (steps[k - 1], outcome)
            outcomes[(first_save, steps[k - 1])] = outcome
            # and a later save always heals the folder, leaving one clean version
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                save_bundle(folder, OLD, kind=KIND)
            assert _files(load_bundle(folder)) == OLD
            left = sorted(p.name for p in folder.iterdir())
            assert len(left) == 2 and left[0] == "CURRENT", left
    assert set(outcomes.values()) == {"missing", "old", "new"}


def test_concurrent_saves_leave_a_loadable_bundle(tmp_path):
    """Two processes saving the same model at once: each assembles its own version, the last one to
    switch CURRENT wins, and neither prunes the other's fresh version from under it."""
    folder = tmp_path / "m"
    save_bundle(folder, OLD, kind=KIND)
    script = tmp_path / "save.py"
    script.write_text(textwrap.dedent("""
        import sys
        from pathlib import Path
        from ocnb import store
        for i in range(15):
            store.save_bundle(Path(sys.argv[1]), {"x.txt": (sys.argv[2] * 1000).encode()}, kind="tests.Toy")
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), str(folder), tag], env=env) for tag in "ab"]
    for i in range(40):  # read while they write: always a complete bundle
        got = _files(load_bundle(folder, kind=KIND))
        assert got == OLD or got["x.txt"] in (b"a" * 1000, b"b" * 1000), i
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert _files(load_bundle(folder))["x.txt"] in (b"a" * 1000, b"b" * 1000)


def test_empty_file_with_a_matching_checksum_heals(tmp_path):
    """An empty file recorded with its own (matching) checksum is reported as corrupt and rebuilt, every time
    it is found -- not an EOFError on every run."""
    import io

    folder = tmp_path / "m"
    save_bundle(folder, {"arr.npz": b""}, kind=KIND)  # e.g. written by a buggy writer: checksum matches
    with pytest.raises(BundleError, match=r"arr\.npz is not a readable \.npz") as info:
        load_bundle(folder).arrays("arr.npz")
    assert info.value.state == "corrupt"
    buf = io.BytesIO()
    np.savez(buf, x=np.ones(3))

    def load(path):
        return load_bundle(path, kind=KIND).arrays("arr.npz")

    def save(arrays, path):
        out = io.BytesIO()
        np.savez(out, **arrays)
        save_bundle(path, {"arr.npz": out.getvalue()}, kind=KIND)

    with pytest.warns(RuntimeWarning, match=r"unusable \(corrupt\)"):
        got = load_or_build(folder, lambda: {"x": np.ones(3)}, load, save)
    np.testing.assert_array_equal(got["x"], np.ones(3))
    np.testing.assert_array_equal(load(folder)["x"], np.ones(3))  # healed
