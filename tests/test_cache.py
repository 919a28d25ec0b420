import os

import numpy as np
import pandas as pd
import pytest

from ocnb.cache import Cache, CorruptCacheError


def test_roundtrip_and_checksum(tmp_path):
    cache = Cache("t", root=tmp_path)
    df = pd.DataFrame({"source_id": [1, 2], "parallax": [1.1, 1.2]})
    calls = []
    out = cache.fetch_frame("m67.parquet", lambda: calls.append(1) or df)
    pd.testing.assert_frame_equal(out, df)
    out2 = cache.fetch_frame("m67.parquet", lambda: calls.append(1) or df)
    pd.testing.assert_frame_equal(out2, df)
    assert calls == [1]  # second call served from the cache
    assert (tmp_path / "t" / "m67.parquet.sha256").exists()
    assert not list((tmp_path / "t").glob("*.part"))  # atomic writes leave no temp files


def test_corrupted_file_is_never_used(tmp_path):
    cache = Cache("t", root=tmp_path)
    cache.fetch_arrays("a.npz", lambda: {"x": np.arange(5)})
    path = cache.path("a.npz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptCacheError, match=r"a\.npz is corrupted"):
        cache.load_bytes("a.npz")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        out = cache.fetch_arrays("a.npz", lambda: {"x": np.arange(5) * 2})
    np.testing.assert_array_equal(out["x"], np.arange(5) * 2)


def test_missing_checksum_record_is_rejected(tmp_path):
    cache = Cache("t", root=tmp_path)
    cache.save_bytes("b.bin", b"abc")
    cache.path("b.bin").with_name("b.bin.sha256").unlink()
    with pytest.raises(CorruptCacheError, match="no checksum record"):
        cache.load_bytes("b.bin")


def test_bad_key(tmp_path):
    with pytest.raises(ValueError, match="cache key"):
        Cache("t", root=tmp_path).path("../etc/passwd")


# ---------------------------------------------------------------------------
# Bad-input table: each row is a fault -> a clear error (type + message) or a healed entry.
# ---------------------------------------------------------------------------
def _store_with_checksum(cache, key, data: bytes):
    """Write ``data`` *and a matching checksum*: what a crash of an older writer could leave."""
    from ocnb.cache import sha256_bytes

    path = cache.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.with_name(path.name + ".sha256").write_text(sha256_bytes(data) + "\n")


def _valid_npz() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.arange(1000))
    return buf.getvalue()


def _valid_parquet() -> bytes:
    import io

    buf = io.BytesIO()
    pd.DataFrame({"a": np.arange(100)}).to_parquet(buf)
    return buf.getvalue()


def _garbage_sidecar(text: bytes):
    def setup(cache, key):
        cache.save_bytes(key, _valid_npz())
        cache.path(key).with_name(key + ".sha256").write_bytes(text)

    return setup


# (id, key, setup(cache, key), expected error of load_bytes/load_frame or None, regex)
HEALING = [
    ("empty npz with matching checksum", "a.npz",
     lambda c, k: _store_with_checksum(c, k, b""), None, r"a\.npz \(0 bytes\) cannot be read as NumPy arrays"),
    ("truncated npz with matching checksum", "a.npz",
     lambda c, k: _store_with_checksum(c, k, _valid_npz()[:200]), None, r"cannot be read as NumPy arrays"),
    ("npz checksum record is text garbage", "a.npz", _garbage_sidecar(b"not a checksum\n"),
     CorruptCacheError, r"a\.npz\.sha256 is not a SHA-256 hex digest"),
    ("npz checksum record is binary garbage", "a.npz", _garbage_sidecar(bytes(range(200, 256))),
     CorruptCacheError, r"is not a SHA-256 hex digest"),
    ("npz checksum record is empty", "a.npz", _garbage_sidecar(b""),
     CorruptCacheError, r"is not a SHA-256 hex digest"),
    ("cache entry is a folder", "a.npz", lambda c, k: c.path(k).mkdir(parents=True),
     CorruptCacheError, r"a\.npz is a folder"),
]


@pytest.mark.parametrize("name,key,setup,load_error,pattern", HEALING, ids=[r[0] for r in HEALING])
def test_bad_entries_are_reported_deleted_and_recomputed(tmp_path, name, key, setup, load_error, pattern):
    cache = Cache("t", root=tmp_path)
    setup(cache, key)
    if load_error is not None:
        with pytest.raises(load_error, match=pattern):
            cache.load_bytes(key)
    with pytest.warns(RuntimeWarning, match=pattern):
        out = cache.fetch_arrays(key, lambda: {"x": np.arange(7)})
    np.testing.assert_array_equal(out["x"], np.arange(7))
    # healed: the next run reads the new entry without a warning and without recomputing
    again = cache.fetch_arrays(key, lambda: pytest.fail("recomputed a healed entry"))
    np.testing.assert_array_equal(again["x"], np.arange(7))


@pytest.mark.parametrize("data", [b"", _valid_parquet()[:50]], ids=["empty", "truncated"])
def test_unreadable_parquet_with_matching_checksum(tmp_path, data):
    cache = Cache("t", root=tmp_path)
    _store_with_checksum(cache, "m.parquet", data)
    with pytest.raises(CorruptCacheError, match=r"m\.parquet .* is not a readable Parquet table"):
        cache.load_frame("m.parquet")
    df = pd.DataFrame({"a": [1, 2]})
    with pytest.warns(RuntimeWarning, match="cannot be read as a Parquet table"):
        pd.testing.assert_frame_equal(cache.fetch_frame("m.parquet", lambda: df), df)
    pd.testing.assert_frame_equal(cache.load_frame("m.parquet"), df)


def test_undecodable_fresh_result_is_not_stored(tmp_path):
    cache = Cache("t", root=tmp_path)
    with pytest.raises(ValueError, match=r"pickled \(object\) data"):  # np.load refuses the junk bytes
        cache._fetch("x.npz", lambda: b"junk", Cache._decode_arrays, "NumPy arrays")
    assert not cache.exists("x.npz")


BAD_KEYS = [
    ("../etc/passwd", "cache key"), ("a/b", "cache key"), ("..", "cache key"), (".hidden", "cache key"),
    ("", "cache key"), ("x.npz.sha256", r"not ending in '\.sha256'"), ("x y", "cache key"),
    (None, "cache key None"), (5, "cache key 5"),
]


@pytest.mark.parametrize("key,pattern", BAD_KEYS, ids=[repr(k) for k, _ in BAD_KEYS])
def test_bad_keys(tmp_path, key, pattern):
    from ocnb.errors import CacheKeyError

    with pytest.raises(CacheKeyError, match=pattern):
        Cache("t", root=tmp_path).path(key)


@pytest.mark.parametrize("name", ["../escape", "a/b", ".", ""])
def test_bad_cache_names(tmp_path, name):
    from ocnb.errors import CacheKeyError

    with pytest.raises(CacheKeyError, match="cache name"):
        Cache(name, root=tmp_path)


def test_cache_folder_that_is_a_file(tmp_path):
    from ocnb.errors import DataHomeError

    (tmp_path / "t").write_text("x")
    with pytest.raises(DataHomeError, match=r"cache folder 't' .*t is a regular file"):
        Cache("t", root=tmp_path).save_bytes("a.bin", b"1")


def test_unwritable_cache_folder(tmp_path, monkeypatch):
    """A folder the process may not write to (simulated: root may write anywhere) gives a clear error."""
    import tempfile

    from ocnb.errors import DataHomeError

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DataHomeError, match=r"cannot write the cache file .*a\.bin: Permission denied .*data home"):
        Cache("t", root=tmp_path).save_bytes("a.bin", b"1")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_cache_folder(tmp_path):
    from ocnb.errors import DataHomeError

    folder = tmp_path / "t"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DataHomeError, match="cannot write the cache file"):
            Cache("t", root=tmp_path).save_bytes("a.bin", b"1")
    finally:
        folder.chmod(0o700)
