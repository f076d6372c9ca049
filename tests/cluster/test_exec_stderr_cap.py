"""Security: a command's stderr is held in memory, so it has its own small cap (1 MiB)
whatever stdout's cap is (``cat /proc/<pid>/exe`` runs with 512 MiB)."""

from __future__ import annotations

import pytest

from falcoir.cluster import KubeGateway
from falcoir.cluster.exec import MAX_STDERR_BYTES
from tests.cluster.fakeapi import FakeApi
from tests.cluster.test_exec import pattern


@pytest.fixture(autouse=True)
def _pod(api: FakeApi) -> None:
    api.add_pod("prod", "web-1")


def test_stderr_is_capped_below_a_large_stdout_cap(gw: KubeGateway) -> None:
    assert MAX_STDERR_BYTES == 1024 * 1024
    n = MAX_STDERR_BYTES + 300_000
    r = gw.exec("prod", "web-1", None, ["bigerr", str(n)], timeout=60, max_bytes=8 * 1024 * 1024)
    assert r.ok
    assert len(r.stderr) == MAX_STDERR_BYTES and r.stderr_truncated
    assert r.stderr == pattern(n)[:MAX_STDERR_BYTES]
    # stdout keeps its own, larger cap
    r = gw.exec("prod", "web-1", None, ["big", str(n)], timeout=60, max_bytes=8 * 1024 * 1024)
    assert len(r.stdout) == n and not r.stdout_truncated
