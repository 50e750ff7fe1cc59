"""The test session is offline for real: the hub clients were imported with their offline switches on
(tests/conftest.py sets them at import), and a model missing from disk fails at once, without one
attempt to reach the network.

Set after `huggingface_hub` is imported, `HF_HUB_OFFLINE` changes nothing: the missing-weights test
then spent ~23 s on connection attempts, and on a networked machine would really have reached the Hub.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from contextlib import contextmanager

import pytest

from milr.mug.janus import JanusMUG, ModelWeightsNotFoundError
from tests.conftest import OFFLINE

_recording: list[list[tuple]] | None = None  # the open recorders (see `network_attempts`)


def _audit(event: str, args: tuple) -> None:
    if _recording and event in ("socket.getaddrinfo", "socket.connect", "socket.sendto"):
        for record in _recording:
            record.append((event, args))


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one records only inside `network_attempts`


def _leaves_the_machine(event: str, args: tuple) -> bool:
    """Whether a socket event names a host other than loopback (a Unix socket never leaves)."""
    if event == "socket.getaddrinfo":
        host = args[0]
    else:
        address = args[1]
        if not isinstance(address, tuple):
            return False  # AF_UNIX path
        host = address[0]
    if host is None or host in ("localhost", b"localhost"):
        return False
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name that is not localhost: resolving it is already a network call


@contextmanager
def network_attempts():
    """Every socket event (resolve, connect, send) that names a host beyond loopback, while open."""
    global _recording
    record: list[tuple] = []
    _recording = [*(_recording or []), record]
    events: list[tuple] = []
    try:
        yield events
    finally:
        _recording = [r for r in _recording if r is not record]
        events.extend(e for e in record if _leaves_the_machine(*e))


def test_the_recorder_sees_an_attempt_to_leave_the_machine():
    # The control: without it, an empty list below could mean the recorder is blind.
    with network_attempts() as attempts:
        with pytest.raises(OSError):
            socket.create_connection(("192.0.2.1", 9), timeout=0.01)  # TEST-NET-1: never routed
    assert ("socket.connect", ("192.0.2.1", 9)) in [(event, args[-1]) for event, args in attempts]
    with network_attempts() as loopback:
        server = socket.create_server(("127.0.0.1", 0))
        socket.create_connection(server.getsockname(), timeout=1).close()
        server.close()
    assert loopback == []


def test_the_hub_clients_were_imported_offline():
    import huggingface_hub
    import transformers.utils.hub

    for name, value in OFFLINE.items():
        assert value == "1" and os.environ[name] == "1", name
    # the libraries' own switches, read once at their import: True only if the conftest came first
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert huggingface_hub.is_offline_mode() and transformers.utils.hub.is_offline_mode()


def test_a_missing_hub_model_fails_at_once_without_touching_the_network():
    with network_attempts() as attempts:
        with pytest.raises(ModelWeightsNotFoundError, match="hf download deepseek-community/Janus-Pro-7B"):
            JanusMUG.from_pretrained("deepseek-community/Janus-Pro-7B")
    assert attempts == []
