"""The suite runs without the network: nothing a test does may reach another machine."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketConnectBlockedError

from digitnet.datasets import get_spec, sources

# pytest-socket warns as it refuses; here the refusal is the point
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")


def test_a_connection_off_this_machine_is_refused():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never a real host


def test_loopback_stays_open():
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=5):
        pass


def test_a_download_from_a_mirror_is_refused(tmp_path):
    with pytest.raises(SocketConnectBlockedError):
        sources.fetch(get_spec("mnist"), tmp_path, mirrors=("http://192.0.2.1/",))
