"""Comm messages that reach the kernel before their comm_open are delivered, not dropped (ocnb.panels._comms)."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from ocnb.panels import _comms


class FakeManager:
    def __init__(self):
        self.comms, self.delivered, self.lookups = {}, [], []

    def get_comm(self, comm_id):
        self.lookups.append(comm_id)
        if comm_id not in self.comms:
            logging.getLogger("Comm").warning("No such comm: %s", comm_id)
        return self.comms.get(comm_id)

    def comm_open(self, stream, idents, msg):
        self.comms[msg["content"]["comm_id"]] = object()

    def comm_msg(self, stream, idents, msg):
        comm_id = msg["content"]["comm_id"]
        if self.get_comm(comm_id) is not None:
            self.delivered.append((comm_id, msg["content"]["data"]))


def _kernel():
    m = FakeManager()
    return SimpleNamespace(comm_manager=m, shell_handlers={"comm_open": m.comm_open, "comm_msg": m.comm_msg}), m


def _msg(comm_id, data=None):
    return {"content": {"comm_id": comm_id, "data": data or {}}}


def test_early_messages_are_delivered_after_open_in_order(caplog):
    kernel, m = _kernel()
    assert _comms.hold_early_comm_messages(kernel)
    assert _comms.hold_early_comm_messages(kernel)  # idempotent: installed once
    h = kernel.shell_handlers
    with caplog.at_level(logging.WARNING, logger="Comm"):
        h["comm_msg"](None, [], _msg("c1", {"n": 1}))
        h["comm_msg"](None, [], _msg("c1", {"n": 2}))
        assert m.delivered == []
        h["comm_open"](None, [], _msg("c1"))
        h["comm_msg"](None, [], _msg("c1", {"n": 3}))
    assert m.delivered == [("c1", {"n": 1}), ("c1", {"n": 2}), ("c1", {"n": 3})]
    assert "No such comm" not in caplog.text


def test_routing_lookup_in_the_shell_channel_thread_is_quiet(caplog):
    kernel, m = _kernel()
    _comms.hold_early_comm_messages(kernel)
    found = []
    t = threading.Thread(target=lambda: found.append(m.get_comm("c9")), name=_comms._SHELL_CHANNEL_THREAD)
    with caplog.at_level(logging.WARNING, logger="Comm"):
        t.start()
        t.join()
    assert found == [None] and "No such comm" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="Comm"):
        assert m.get_comm("c9") is None  # any other thread: ipykernel's own warning
    assert "No such comm: c9" in caplog.text


def test_a_comm_that_never_opens_is_still_reported(caplog, monkeypatch):
    kernel, m = _kernel()
    _comms.hold_early_comm_messages(kernel)
    now = [1000.0]
    monkeypatch.setattr(_comms.time, "monotonic", lambda: now[0])
    h = kernel.shell_handlers
    with caplog.at_level(logging.WARNING, logger="Comm"):
        h["comm_msg"](None, [], _msg("lost"))
        now[0] += _comms.WAIT_S + 1
        h["comm_msg"](None, [], _msg("other"))
    assert "No such comm: lost" in caplog.text
    assert m.delivered == []


@pytest.mark.parametrize("kernel", [None, SimpleNamespace(), SimpleNamespace(comm_manager=None, shell_handlers={})])
def test_outside_a_kernel_nothing_is_installed(kernel):
    assert _comms.hold_early_comm_messages(kernel) is False
