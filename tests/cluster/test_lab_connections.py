"""Keep-alive connections against the falcoir lab, counted by the kernel: the TCP
sockets this process holds to the lab's API port (each a TLS handshake)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from falcoir.cluster import KubeGateway, connect

pytestmark = pytest.mark.lab

ESTABLISHED = "01"


def our_sockets_to(port: int) -> set[int]:
    """Inodes of this process's established TCP connections to ``port``."""
    ours: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            ours.add(int(link[8:-1]))
    found: set[int] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            cols = line.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            inode = int(cols[9])
            if remote_port == port and cols[3] == ESTABLISHED and inode in ours:
                found.add(inode)
    return found


@pytest.fixture
def gw(lab: Any) -> Iterator[KubeGateway]:
    gateway = connect(str(lab.kubeconfig))
    yield gateway
    gateway.close()


def test_prewarmed_connections_carry_the_next_burst(lab: Any, gw: KubeGateway) -> None:
    port = int(urlparse(gw.server).port or 443)
    before = our_sockets_to(port)  # other tests' gateways to the session lab
    assert gw.prewarm(12).result(20) == 12
    warm = our_sockets_to(port) - before
    assert len(warm) == 12 and gw.stats.requests == 0
    for _ in range(3):
        with ThreadPoolExecutor(12) as pool:
            allowed = list(
                pool.map(lambda _: gw.access_review("get", "pods", namespace="default"), range(12))
            )
        assert allowed == [True] * 12
        time.sleep(0.05)
        # The same sockets: not one new TCP connection or TLS handshake.
        assert our_sockets_to(port) - before == warm
    assert gw.stats.connections == 12 and gw.stats.requests == 36
