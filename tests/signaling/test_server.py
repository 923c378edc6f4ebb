"""Listener: the address is taken first, with a one-line reason when it cannot be."""

from __future__ import annotations

import socket

import pytest

from signaling.server import Listener, ListenError


def test_any_free_port_is_the_same_on_every_address() -> None:
    with Listener.bind("", 0) as listener:
        ports = {sock.getsockname()[1] for sock in listener.sockets}
        assert ports == {listener.port} and listener.port > 0
        assert {sock.family for sock in listener.sockets} >= {socket.AF_INET}
    listener.close()  # safe twice
    assert all(sock.fileno() == -1 for sock in listener.sockets)


def test_an_address_in_use_or_not_local_is_one_clear_line() -> None:
    with Listener.bind("127.0.0.1", 0) as taken:
        with pytest.raises(ListenError) as info:
            Listener.bind("127.0.0.1", taken.port)
        assert str(info.value) == f"cannot listen on 127.0.0.1:{taken.port}: address already in use"
        assert isinstance(info.value, OSError)
    with pytest.raises(ListenError, match=r"^cannot listen on 192\.0\.2\.1:8443: cannot assign requested address$"):
        Listener.bind("192.0.2.1", 8443)  # TEST-NET-1: not an address of this machine
