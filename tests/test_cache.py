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
    with pytest.raises(CorruptCacheError, match="a.npz is corrupted"):
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
