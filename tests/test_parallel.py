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


# ---------------------------------------------------------------------------
# Bad scheduler addresses: a clear error naming the address, never a hang
# ---------------------------------------------------------------------------
import socket  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402


def _bounded(call, seconds: float = 30.0):
    """Run ``call()`` in a thread; fail the test (instead of hanging the suite) if it is not done in time."""
    box = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as err:
            box["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"call still running after {seconds} s: it hangs")
    if "error" in box:
        raise box["error"]
    return box.get("value")


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"dashboard")
        except OSError:  # the probe hangs up after the status line
            pass

    def log_message(self, *args):  # keep the test output clean
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a probe that hangs up early is expected
        pass


@pytest.fixture
def http_server():
    """A throwaway HTTP server on 127.0.0.1 (a stand-in for the dask dashboard), stopped after the test
    and in any case after 60 s."""
    server = _QuietServer(("127.0.0.1", 0), _Quiet)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopper = threading.Timer(60.0, server.shutdown)
    stopper.daemon = True
    stopper.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def raw_server():
    """A TCP server on 127.0.0.1 that answers every connection with fixed bytes (or nothing) and
    closes it after 5 s; it stops by itself after 60 s."""
    servers = []

    def start(reply: bytes):
        sock = socket.create_server(("127.0.0.1", 0))
        sock.settimeout(0.1)
        stop = threading.Event()
        deadline = time.monotonic() + 60.0

        def serve():
            held = []
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                if reply:
                    conn.sendall(reply)
                held.append((conn, time.monotonic() + 5.0))
                for c, t in list(held):
                    if time.monotonic() > t:
                        c.close()
                        held.remove((c, t))
            for c, _ in held:
                c.close()
            sock.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        servers.append((stop, thread))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for stop, thread in servers:
        stop.set()
        thread.join(5)


def _closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"  # nothing listens once the socket is closed


# (id, make the address (fixtures passed in), regex, maximum seconds)
BAD_SCHEDULERS = [
    ("HTTP server (dashboard port)", lambda http, raw: http,
     r"'tcp://127\.0\.0\.1:\d+' \(from \$OCNB_DASK_SCHEDULER\) is not a dask scheduler: it accepted the connection "
     r"but sent no dask handshake within 1 s; it looks like an HTTP server \(a dask dashboard\?", 10),
    ("server that greets with HTTP (the 3.07 EiB MemoryError)",
     lambda http, raw: raw(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
     r"is not a dask scheduler: its first bytes are not a dask message; it looks like an HTTP server", 10),
    ("silent server", lambda http, raw: raw(b""),
     r"sent no dask handshake within 1 s; it looks like a server that sends nothing", 10),
    ("binary garbage", lambda http, raw: raw(b"\xff" * 16), r"some other server \(it sent b'\\xff", 10),
    ("closed port", lambda http, raw: _closed_port(),
     r"could not connect to the dask scheduler at 'tcp://127\.0\.0\.1:\d+' \(from \$OCNB_DASK_SCHEDULER\): "
     r"Connection refused", 10),
    ("no port", lambda http, raw: "tcp://127.0.0.1",
     r"'tcp://127\.0\.0\.1' \(from \$OCNB_DASK_SCHEDULER\) is not a dask scheduler address", 10),
]


@pytest.mark.parametrize("name,make,pattern,limit", BAD_SCHEDULERS, ids=[r[0] for r in BAD_SCHEDULERS])
def test_bad_scheduler_address(monkeypatch, http_server, raw_server, name, make, pattern, limit):
    from ocnb.errors import SchedulerConnectionError

    address = make(http_server, raw_server)
    monkeypatch.setenv(parallel.SCHEDULER_ENV, address)
    t0 = time.monotonic()
    with pytest.raises(SchedulerConnectionError, match=pattern) as info:
        _bounded(lambda: get_client(timeout="1s"), seconds=limit + 20)
    assert time.monotonic() - t0 < limit
    assert isinstance(info.value, ConnectionError)


def test_map_clusters_with_a_closed_scheduler_port(monkeypatch):
    """map_clusters' implicit client (client=None, address from the environment) goes through the same check."""
    from ocnb.errors import SchedulerConnectionError

    monkeypatch.setenv(parallel.SCHEDULER_ENV, _closed_port())
    with pytest.raises(SchedulerConnectionError, match="Connection refused"):
        _bounded(lambda: map_clusters(slow_len, NAMES[:1]), seconds=60)


def test_explicit_address_is_named_too(http_server):
    from ocnb.errors import SchedulerConnectionError

    with pytest.raises(SchedulerConnectionError, match=r"\(the address given\) is not a dask scheduler"):
        _bounded(lambda: get_client(http_server, timeout=1), seconds=30)


def test_real_dashboard_port_is_refused_clearly(monkeypatch):
    """The QA case: OCNB_DASK_SCHEDULER pointing at a running dask dashboard (HTTP) instead of the scheduler."""
    pytest.importorskip("bokeh")
    from ocnb.errors import SchedulerConnectionError

    c = get_client(n_workers=1, dashboard=True)
    try:
        port = c.scheduler_info()["services"]["dashboard"]
        monkeypatch.setenv(parallel.SCHEDULER_ENV, f"tcp://127.0.0.1:{port}")
        pattern = rf"'tcp://127\.0\.0\.1:{port}' .* looks like an HTTP server"
        with pytest.raises(SchedulerConnectionError, match=pattern):
            _bounded(lambda: get_client(timeout="1s"), seconds=30)
        # the real scheduler address of the same cluster still works through the probe
        monkeypatch.setenv(parallel.SCHEDULER_ENV, c.scheduler.address)
        assert get_client() is c
    finally:
        c.shutdown()
        c.close()
