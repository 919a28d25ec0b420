"""Run per-cluster work in parallel with dask.distributed, with progress bars.

:func:`get_client`
    A ``distributed.Client``: the scheduler at ``$OCNB_DASK_SCHEDULER`` (a
    real cluster) if set, the running default client if there is one, else a
    ``LocalCluster`` sized to this machine that listens on 127.0.0.1 only.
:func:`map_clusters`
    Map a function over clusters (names or DataFrames), in input order, with
    a progress bar that advances as results arrive; serial when dask is not
    wanted (``client=False``).
:func:`progress`
    The tqdm progress bar used by ocnb's long loops (a widget in Jupyter,
    text elsewhere); ``OCNB_PROGRESS=0`` silences all of them.

dask is imported inside the functions, so ``import ocnb.parallel`` is cheap.

A scheduler address is probed before dask connects: a TCP connect with a
timeout, then the dask handshake the scheduler sends first. A closed port, a
host that does not answer, or a server that is not a dask scheduler (an HTTP
server such as the dashboard port, which made ``distributed`` hang or fail with
``MemoryError: Unable to allocate 3.07 EiB`` reading "HTTP/1.1" as a frame
length) raise :class:`~ocnb.errors.SchedulerConnectionError` naming the address,
within the connect timeout; nothing waits forever.
"""

from __future__ import annotations

import functools
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import OcnbError, SchedulerConnectionError

__all__ = ["SCHEDULER_ENV", "ItemError", "SchedulerConnectionError", "check_scheduler", "get_client", "map_clusters",
           "progress", "progress_enabled"]

#: Environment variable holding the address of an existing dask scheduler.
SCHEDULER_ENV = "OCNB_DASK_SCHEDULER"
_PROGRESS_ENV = "OCNB_PROGRESS"
_FALSE = {"0", "false", "no", "off"}


class ItemError(OcnbError):
    """One item of :func:`map_clusters` failed (returned in place with ``errors="collect"``).

    Attributes
    ----------
    index : int
        Position of the item in the input.
    label : str
        Readable name of the item (cluster name, or a short description).
    exception : BaseException
        The original exception (also ``__cause__``).
    """

    def __init__(self, index: int, label: str, exception: BaseException):
        self.index, self.label, self.exception = index, label, exception
        super().__init__(f"item {index} ({label}) failed: {type(exception).__name__}: {exception}")
        self.__cause__ = exception


# ---------------------------------------------------------------------------
# progress bars
# ---------------------------------------------------------------------------
def progress_enabled() -> bool:
    """False when ``$OCNB_PROGRESS`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(_PROGRESS_ENV, "1").strip().lower() not in _FALSE


def progress(iterable: Iterable | None = None, desc: str | None = None, total: int | None = None, **kw):
    """A ``tqdm.auto`` progress bar over ``iterable``.

    Renders as a widget in Jupyter and as text in a terminal; disabled when
    ``OCNB_PROGRESS=0``. Extra keywords go to ``tqdm`` (``disable=True`` also
    silences it).

    Parameters
    ----------
    iterable : iterable, optional
        What to loop over; ``None`` for a bar advanced by hand (``.update``).
    desc : str, optional
        Label in front of the bar.
    total : int, optional
        Number of steps when ``len(iterable)`` is not available.
    """
    from tqdm.auto import tqdm

    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    disable = kw.pop("disable", False) or not progress_enabled()
    return tqdm(iterable, desc=desc, total=total, disable=disable, **kw)


# ---------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------
def _n_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # honours CPU pinning in containers
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _running(client) -> bool:
    return client is not None and getattr(client, "status", None) == "running"


def get_client(
    address: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = False,
    dashboard: bool = False,
    **kw,
):
    """A ``distributed.Client`` for ocnb's parallel loops.

    In order of preference: the scheduler at ``address`` (or
    ``$OCNB_DASK_SCHEDULER``, e.g. ``tcp://10.0.0.5:8786``); the running
    default client, reused; a new ``LocalCluster`` on this machine.

    Parameters
    ----------
    address : str, optional
        Scheduler address of an existing cluster.
    n_workers : int, optional
        Workers of a new local cluster; default: one per CPU core available
        to this process (divided by ``threads_per_worker``).
    threads_per_worker : int
        Threads of each local worker.
    processes : bool
        Local workers as separate processes (True; needed for GIL-bound
        pure-Python work) or threads in this process (False, default: fast
        start, no pickling of the data).
    dashboard : bool
        Serve the diagnostics dashboard (on a free port of 127.0.0.1; see
        ``client.dashboard_link``). Off by default.
    **kw
        Passed to ``LocalCluster`` (new local cluster) or ``Client`` (address).
        With an address, ``timeout`` (seconds or a dask string such as
        ``"5s"``; default dask's ``distributed.comm.timeouts.connect``, 30 s)
        bounds the connect and the handshake.

    Returns
    -------
    distributed.Client
        Call ``client.close()`` to disconnect from a shared scheduler, or
        ``client.shutdown()`` to stop a local cluster made here.

    Raises
    ------
    SchedulerConnectionError
        (a ``ConnectionError``) The address is malformed, nothing listens
        there, it does not answer within the timeout, or it is not a dask
        scheduler (e.g. the dashboard's HTTP port); the message names the
        address and where it came from.
    """
    from distributed import Client, LocalCluster

    from_env = not address
    address = address or os.environ.get(SCHEDULER_ENV) or None
    current = _default_client()
    if address:
        if _running(current) and current.scheduler is not None and current.scheduler.address == address:
            return current
        where = f"from ${SCHEDULER_ENV}" if from_env else "the address given"
        timeout = _timeout_seconds(kw.get("timeout"))
        check_scheduler(address, timeout=timeout, where=where)
        kw.setdefault("timeout", timeout)
        try:
            return Client(address, **kw)
        except (OSError, MemoryError) as err:  # down since the probe, or a peer the probe did not recognise
            raise SchedulerConnectionError(
                f"could not connect to the dask scheduler at {address!r} ({where}): {type(err).__name__}: {err}. "
                f"Start it, fix the address, or unset {SCHEDULER_ENV} to use a local cluster"
            ) from err
    if _running(current):
        return current

    if threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be >= 1, got {threads_per_worker}")
    if n_workers is None:
        n_workers = max(1, _n_cores() // threads_per_worker)
    elif n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    options = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "processes": processes,
        # Port 0 = a free port. Even with the dashboard off the scheduler runs
        # a small HTTP server (health checks): keep it local and off 8787.
        "dashboard_address": "127.0.0.1:0",
        "scheduler_kwargs": {"dashboard": bool(dashboard)},
    }
    if processes or dashboard:
        # Worker processes talk over TCP: listen on loopback only. Threaded
        # workers use the in-process transport and open no port, except with
        # the dashboard: its link is built from the scheduler's host, so the
        # scheduler then listens on 127.0.0.1 too (the link would otherwise
        # name an interface the dashboard does not listen on).
        options["host"] = "127.0.0.1"
        options["protocol"] = "tcp://"
    options.update(kw)
    cluster = LocalCluster(**options)
    return Client(cluster, set_as_default=True)


def _timeout_seconds(value) -> float:
    """A timeout in seconds from a number, a dask duration string ("5s") or None (dask's connect timeout)."""
    import dask
    from dask.utils import parse_timedelta

    if value is None or value == "__no_default__":
        value = dask.config.get("distributed.comm.timeouts.connect")
    return float(parse_timedelta(value, default="seconds"))


#: Largest plausible first dask message (the handshake is ~100 bytes to a few kB).
_MAX_HANDSHAKE = 64 << 20


def check_scheduler(address: str, timeout: float = 10.0, where: str = "the address given") -> None:
    """Raise :class:`SchedulerConnectionError` unless a dask scheduler answers at ``address``.

    For ``tcp://`` addresses (the default scheme): connect with ``timeout``
    seconds, then wait at most ``timeout`` seconds for the first bytes of the
    handshake a dask scheduler sends on every new connection, and check that
    they are a dask frame header (a plausible message length), not text such
    as ``HTTP/1.1``. The probe connection is closed without a word (the
    scheduler logs it at INFO level). Other schemes (``tls://``, ``inproc://``,
    ``ucx://``) are left to dask, with its own timeout.

    Parameters
    ----------
    address : str
        ``tcp://host:port``, ``host:port`` or another dask address.
    timeout : float
        Seconds for the connect and for the handshake each.
    where : str
        Where the address came from, for the message.
    """
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    advice = f"Start the scheduler, fix the address, or unset {SCHEDULER_ENV} to use a local cluster"
    try:
        scheme, loc = parse_address(address)
        if scheme != "tcp":
            return
        host, port = parse_host_port(loc)
    except (ValueError, TypeError) as err:
        raise SchedulerConnectionError(
            f"{address!r} ({where}) is not a dask scheduler address such as 'tcp://10.0.0.5:8786': {err}"
        ) from None
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise SchedulerConnectionError(
            f"no answer from the dask scheduler at {address!r} ({where}) within {timeout:g} s "
            f"(host down or a firewall dropping packets?). {advice}") from None
    except OSError as err:
        raise SchedulerConnectionError(
            f"could not connect to the dask scheduler at {address!r} ({where}): {err.strerror or err}. "
            f"{advice}") from None
    with sock:
        head = _recv_at_most(sock, 8, timeout)
        if len(head) == 8:
            (nbytes,) = struct.unpack("<Q", head)
            if 0 < nbytes <= _MAX_HANDSHAKE:
                return
        if not head:
            # An HTTP server waits for a request: ask it, to say what it is.
            reply = b""
            try:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: ocnb-probe\r\n\r\n")
                reply = _recv_at_most(sock, 5, min(timeout, 2.0))
            except OSError:
                pass
            what = ("an HTTP server (a dask dashboard? its default port is 8787, the scheduler's 8786)"
                    if reply.startswith(b"HTTP") else "a server that sends nothing")
            raise SchedulerConnectionError(
                f"{address!r} ({where}) is not a dask scheduler: it accepted the connection but sent no dask "
                f"handshake within {timeout:g} s; it looks like {what}. {advice}")
        what = ("an HTTP server (a dask dashboard? its default port is 8787, the scheduler's 8786)"
                if head.startswith(b"HTTP") else f"some other server (it sent {head!r})")
        raise SchedulerConnectionError(
            f"{address!r} ({where}) is not a dask scheduler: its first bytes are not a dask message; it looks like "
            f"{what}. {advice}")


def _recv_at_most(sock: socket.socket, n: int, timeout: float) -> bytes:
    """Up to ``n`` bytes, waiting at most ``timeout`` seconds in total (fewer if the peer closes or stalls)."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(data))
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _default_client():
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):  # no dask, or no client running
        return None


# ---------------------------------------------------------------------------
# map over clusters
# ---------------------------------------------------------------------------
def _label(item: Any, limit: int = 60) -> str:
    """A short readable name for an item: the cluster it is about if known."""
    if isinstance(item, str):
        return repr(item)
    name = None
    attrs = getattr(item, "attrs", None)
    if isinstance(attrs, dict):
        name = attrs.get("cluster") or attrs.get("name")
    columns = getattr(item, "columns", None)
    if name is None and columns is not None and "cluster" in columns:
        values = item["cluster"].dropna().unique()
        if len(values) == 1:
            name = values[0]
        elif len(values) > 1:
            name = f"{values[0]}, ... ({len(values)} clusters)"
    if name is None and isinstance(getattr(item, "name", None), str):
        name = item.name
    if name is not None:
        kind = type(item).__name__
        size = f", {len(item)} rows" if hasattr(item, "__len__") and columns is not None else ""
        return f"{kind} of {name!r}{size}"
    text = repr(item).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pick_client(client):
    if client is False:
        return None
    if client is None:
        # Implicit use: an already running client or a configured scheduler,
        # never a freshly started local cluster (too slow for small maps).
        current = _default_client()
        if _running(current):
            return current
        if os.environ.get(SCHEDULER_ENV):
            return get_client()
        return None
    if client is True:
        return get_client()
    return client


def map_clusters(
    func: Callable[..., Any],
    items: Iterable[Any],
    client=None,
    desc: str = "clusters",
    progress: bool = True,
    errors: str = "raise",
    **kwargs,
) -> list:
    """Apply ``func`` to each cluster, in parallel where a dask client is available.

    Parameters
    ----------
    func : callable
        ``func(item, **kwargs)``; with a process-based or remote cluster it
        must be picklable (a module-level function, not a lambda defined in a
        notebook cell that closes over large data).
    items : iterable
        Cluster names, member DataFrames, or any other objects.
    client : distributed.Client, bool or None
        ``False``: a plain serial loop in this process (no dask).
        ``None`` (default): the running default client, or the scheduler at
        ``$OCNB_DASK_SCHEDULER``; a plain serial loop if neither exists.
        ``True``: :func:`get_client` (starts a local cluster if needed).
        A ``Client``: use it.
    desc : str
        Label of the progress bar.
    progress : bool
        Show a progress bar (also off with ``OCNB_PROGRESS=0``); with dask it
        advances as results arrive, in whatever order they finish.
    errors : {"raise", "collect"}
        ``"raise"``: the first failure is raised (remaining tasks cancelled),
        with a note naming the failing item. ``"collect"``: every item runs;
        a failing item's slot holds an :class:`ItemError` naming it (original
        exception in ``.exception``).
    **kwargs
        Passed to ``func``.

    Returns
    -------
    list
        ``func(item)`` for each item, in the order of ``items``.
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")
    items = list(items)
    call = functools.partial(func, **kwargs) if kwargs else func
    dask_client = _pick_client(client)
    show = progress  # the argument shadows the module-level helper below
    if dask_client is None:
        return _map_serial(call, items, desc, show, errors)
    return _map_dask(dask_client, call, items, desc, show, errors)


def _fail(index: int, item: Any, err: BaseException, errors: str):
    label = _label(item)
    if errors == "collect":
        return ItemError(index, label, err)
    # Keep the original type (callers may catch ValueError, KeyError...).
    err.add_note(f"map_clusters: raised by item {index} ({label})")
    raise err


def _map_serial(call, items: Sequence, desc: str, show: bool, errors: str) -> list:
    out = []
    for i, item in enumerate(progress(items, desc=desc, disable=not show)):
        try:
            out.append(call(item))
        except Exception as err:
            out.append(_fail(i, item, err, errors))
    return out


def _map_dask(client, call, items: Sequence, desc: str, show: bool, errors: str) -> list:
    from distributed import as_completed

    if not items:
        return []
    # Ship tables to the workers once, up front, instead of embedding them in
    # the task graph (which dask warns about for large objects).
    data = list(items)
    big = [i for i, x in enumerate(items) if not isinstance(x, (str, bytes, int, float))]
    if big:
        for i, fut in zip(big, client.scatter([items[i] for i in big]), strict=True):
            data[i] = fut
    # pure=False: run every item even if two are equal (func may be random or
    # have side effects such as writing files).
    futures = client.map(call, data, pure=False)
    position = {fut.key: i for i, fut in enumerate(futures)}
    results: list = [None] * len(items)
    bar = progress(total=len(items), desc=desc, disable=not show)
    try:
        for fut in as_completed(futures):
            i = position[fut.key]
            try:
                results[i] = fut.result()
            except Exception as err:
                results[i] = _fail(i, items[i], err, errors)
            bar.update(1)
    except BaseException:
        # First failure with errors="raise", or an interrupt (Ctrl-C, kernel
        # interrupt): do not leave the rest of the work running.
        client.cancel(futures)
        raise
    finally:
        bar.close()
    return results
