"""Deliver comm messages that reach the kernel before their ``comm_open`` (JupyterLab 4.4+ with ipykernel 7).

Why this exists
---------------
HoloViews/Panel plots talk back to the kernel through a *client* comm: the page opens it
(``comm_open``, target = the plot's id) and at once sends a ``PATCH-DOC`` (ranges and sizes
computed by BokehJS). With a kernel that supports subshells (ipykernel 7), JupyterLab's
``CommHandler`` sends each comm's messages to a per-target subshell, but it sends ``comm_open``
*before* that subshell exists, i.e. to the main shell. While the main shell is busy (Run All:
later cells are still executing), the ``comm_msg`` reaches the idle subshell first, the comm is
not registered yet, ipykernel logs ``No such comm: <id>`` on stderr and **drops the message**
(the plot's first update from the page is lost). The shell-channel thread also looks the comm up
to route the message, and logs the same line a second time.

:func:`hold_early_comm_messages` (called by :func:`ocnb.panels.init_notebook`) makes the
kernel keep a ``comm_msg`` for a comm that is not open yet, and hand it to the comm as soon as
its ``comm_open`` has been processed. A message whose comm never opens is reported with
ipykernel's own ``No such comm`` warning once :data:`WAIT_S` has passed, so a real error still
shows. Outside an ipykernel kernel (plain Python, tests) it does nothing.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["WAIT_S", "hold_early_comm_messages"]

#: seconds a message for a comm not yet open is kept before it is reported as ``No such comm``
#: (the main shell may be busy with a long cell of a Run All meanwhile)
WAIT_S = 900.0
_MAX_HELD = 2000
_SHELL_CHANNEL_THREAD = "Shell channel"  # ipykernel 7's thread that routes shell messages
_logger = logging.getLogger("Comm")  # the logger of comm.base_comm ("No such comm: ...")


def hold_early_comm_messages(kernel=None) -> bool:
    """Install the hold on the running kernel (idempotent). Returns True when it is active."""
    if kernel is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        ip = get_ipython()
        kernel = getattr(ip, "kernel", None)
    manager = getattr(kernel, "comm_manager", None)
    handlers = getattr(kernel, "shell_handlers", None)
    if manager is None or handlers is None or "comm_msg" not in handlers or "comm_open" not in handlers:
        return False
    if getattr(manager, "_ocnb_held", None) is not None:
        return True

    lock = threading.Lock()
    held: dict[str, list] = {}  # comm id -> [(time received, stream, idents, msg), ...]
    manager._ocnb_held = held
    comm_msg, comm_open, get_comm = handlers["comm_msg"], handlers["comm_open"], manager.get_comm

    def report_expired(now: float) -> None:
        for comm_id in [c for c, items in held.items() if now - items[0][0] > WAIT_S]:
            del held[comm_id]
            _logger.warning("No such comm: %s", comm_id)

    def quiet_get_comm(comm_id):
        # The shell-channel thread only looks the comm up to pick a subshell for the message; an
        # unknown comm is routed as addressed and handled (held or reported) where it is dispatched.
        if threading.current_thread().name == _SHELL_CHANNEL_THREAD:
            return manager.comms.get(comm_id)
        return get_comm(comm_id)

    def held_comm_msg(stream, idents, msg):
        comm_id = msg.get("content", {}).get("comm_id")
        with lock:
            now = time.monotonic()
            report_expired(now)
            if comm_id is not None and comm_id not in manager.comms and sum(map(len, held.values())) < _MAX_HELD:
                held.setdefault(comm_id, []).append((now, stream, idents, msg))
                return None
        return comm_msg(stream, idents, msg)

    def open_then_deliver(stream, idents, msg):
        result = comm_open(stream, idents, msg)
        comm_id = msg.get("content", {}).get("comm_id")
        with lock:
            early = held.pop(comm_id, [])
        for _, s, i, m in early:  # in the order they arrived
            comm_msg(s, i, m)
        return result

    manager.get_comm = quiet_get_comm
    handlers["comm_msg"] = held_comm_msg
    handlers["comm_open"] = open_then_deliver
    return True
