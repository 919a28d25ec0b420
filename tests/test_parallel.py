"""Tests of ocnb.parallel: small in-process dask clusters (threads, 1-2 workers)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from ocnb import parallel
from ocnb.parallel import ItemError, get_client, map_clusters

distributed = pytest.importorskip("distributed")

NAMES = ["NGC_2682", "Melotte_22", "Blanco_1", "IC_2602", "NGC_752", "Ruprecht_147"]


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("OCNB_PROGRESS", "0")
    monkeypatch.delenv(parallel.SCHEDULER_ENV, raising=False)


def _members(name: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"cluster": name, "parallax": rng.normal(1.0 + seed, 0.1, n)})


def median_parallax(frame: pd.DataFrame) -> float:
    return float(np.median(frame["parallax"]))


def slow_len(name: str, delay: float = 0.0) -> int:
    time.sleep(delay)
    return len(name)


def picky(name: str) -> int:
    if name.startswith("IC"):
        raise ValueError(f"no isochrone for {name}")
    return len(name)


@pytest.fixture
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    ) as cluster, distributed.Client(cluster) as c:
        yield c


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------
def test_progress_helper(monkeypatch):
    monkeypatch.setenv("OCNB_PROGRESS", "1")
    bar = parallel.progress(range(5), desc="stars")
    assert not bar.disable and bar.total == 5 and bar.desc.startswith("stars")
    assert list(bar) == list(range(5))
    assert parallel.progress((x for x in "ab"), desc="gen").total is None  # no len() needed
    monkeypatch.setenv("OCNB_PROGRESS", "0")
    assert parallel.progress(range(3), desc="off").disable
    assert not parallel.progress_enabled()


# ---------------------------------------------------------------------------
# serial fallback
# ---------------------------------------------------------------------------
def test_serial_map_keeps_order_and_passes_kwargs():
    assert map_clusters(slow_len, NAMES, client=False) == [len(n) for n in NAMES]
    assert map_clusters(slow_len, iter(NAMES), client=False, delay=0.0) == [len(n) for n in NAMES]
    assert map_clusters(slow_len, [], client=False) == []
    # client=None without a running client or scheduler address: serial too
    assert map_clusters(slow_len, NAMES[:2]) == [8, 10]


def test_serial_errors_collect_and_raise():
    out = map_clusters(picky, NAMES, client=False, errors="collect")
    assert out[0] == 8 and out[4] == 7
    err = out[3]
    assert isinstance(err, ItemError) and err.index == 3 and "'IC_2602'" in str(err)
    assert isinstance(err.exception, ValueError) and err.__cause__ is err.exception
    with pytest.raises(ValueError, match="no isochrone for IC_2602") as info:
        map_clusters(picky, NAMES, client=False)
    assert any("item 3 ('IC_2602')" in note for note in info.value.__notes__)
    with pytest.raises(ValueError, match="errors must be"):
        map_clusters(picky, NAMES, client=False, errors="ignore")


# ---------------------------------------------------------------------------
# dask
# ---------------------------------------------------------------------------
def test_dask_map_preserves_input_order(client):
    # Later items finish first, so completion order is the reverse of input order.
    delays = dict(zip(NAMES, np.linspace(0.3, 0.0, len(NAMES)), strict=True))

    def func(name):
        return slow_len(name, delays[name])

    assert map_clusters(func, NAMES, client=client) == [len(n) for n in NAMES]


def test_dask_map_dataframes_matches_serial(client):
    frames = [_members(name, 200, seed) for seed, name in enumerate(NAMES)]
    parallel_result = map_clusters(median_parallax, frames, client=client, desc="median parallax")
    assert parallel_result == map_clusters(median_parallax, frames, client=False)
    np.testing.assert_allclose(parallel_result, np.arange(len(NAMES)) + 1.0, atol=0.05)


def test_dask_errors_name_the_item(client):
    frames = [_members(name, 50, seed) for seed, name in enumerate(NAMES)]
    frames[2] = frames[2].drop(columns="parallax")  # Blanco_1 lost its parallaxes
    out = map_clusters(median_parallax, frames, client=client, errors="collect")
    assert [isinstance(x, ItemError) for x in out] == [False, False, True, False, False, False]
    assert "'Blanco_1'" in str(out[2]) and "KeyError" in str(out[2])
    with pytest.raises(KeyError) as info:
        map_clusters(median_parallax, frames, client=client)
    assert any("DataFrame of 'Blanco_1', 50 rows" in note for note in info.value.__notes__)


def test_client_none_uses_running_default_client(client):
    # get_worker() fails outside a dask worker: this ran on the cluster.
    workers = map_clusters(lambda name: distributed.get_worker().name, NAMES)
    names = {info["name"] for info in client.scheduler_info()["workers"].values()}
    assert set(workers) <= names


# ---------------------------------------------------------------------------
# get_client
# ---------------------------------------------------------------------------
def test_get_client_local_cluster_and_reuse():
    c = get_client()
    try:
        assert c.status == "running"
        cluster = c.cluster
        assert len(cluster.workers) == parallel._n_cores()  # sized to the machine
        assert _status_page(c) == 404  # dashboard off by default
        assert get_client() is c  # the running default client is reused
        assert map_clusters(slow_len, NAMES, client=True) == [len(n) for n in NAMES]
    finally:
        c.shutdown()
        c.close()


def _status_page(client) -> int:
    """HTTP status of the dashboard page; asserts the server listens on 127.0.0.1 only."""
    port = client.scheduler_info()["services"]["dashboard"]
    hosts = {sock.getsockname()[0] for sock in client.cluster.scheduler.http_server._sockets.values()}
    assert hosts == {"127.0.0.1"}
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code


def test_get_client_dashboard_on_loopback():
    pytest.importorskip("bokeh")
    c = get_client(n_workers=1, dashboard=True)
    try:
        assert _status_page(c) == 200
        assert c.dashboard_link.startswith("http://127.0.0.1:")
        assert c.scheduler.address.startswith("tcp://127.0.0.1:")
    finally:
        c.shutdown()
        c.close()


def test_get_client_honours_scheduler_env(monkeypatch):
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
        host="127.0.0.1", dashboard_address="127.0.0.1:0",
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        monkeypatch.setenv(parallel.SCHEDULER_ENV, address)
        with get_client() as c:
            assert c.scheduler.address == address
            assert c.cluster is None  # connected to an existing scheduler, none started
            # client=None picks the configured scheduler too
            assert map_clusters(slow_len, NAMES[:3]) == [8, 10, 8]
            assert len(c.scheduler_info()["workers"]) == 1


def test_get_client_bad_scheduler_env(monkeypatch):
    monkeypatch.setenv(parallel.SCHEDULER_ENV, "tcp://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ConnectionError, match="OCNB_DASK_SCHEDULER"):
        get_client(timeout="1s")
