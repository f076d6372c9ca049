"""Keep-alive connections: concurrent requests reuse warm connections, and
``KubeGateway.prewarm`` opens them ahead of a burst. Counted on both ends: the fake
API server counts the connections it accepts (one TLS handshake each) and the client
ports it sees; the gateway counts the connections it opens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from falcoir.cluster import KubeGateway, connect
from falcoir.cluster.gateway import POOL_MAXSIZE
from falcoir.core.gateway import PODS
from tests.cluster.conftest import FAST_RETRY
from tests.cluster.fakeapi import Certs, FakeApi, write_kubeconfig

BURST = 12
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.fixture
def slow_tls_api(tls_api: FakeApi) -> FakeApi:
    tls_api.latency = 0.1  # every request of a burst is in flight at once
    tls_api.allowed.add(("create", "pods/exec", "prod"))
    return tls_api


@pytest.fixture
def tls_kubeconfig(slow_tls_api: FakeApi, certs: Certs, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", slow_tls_api.url, ca=certs.ca)


@pytest.fixture
def tls_gw(tls_kubeconfig: Path) -> Iterator[KubeGateway]:
    gateway = connect(str(tls_kubeconfig), request_timeout=5.0, retry=FAST_RETRY)
    yield gateway
    gateway.close()


def _burst(gw: KubeGateway, n: int = BURST) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        answers = list(
            pool.map(
                lambda _: gw.access_review("create", "pods", namespace="prod", subresource="exec"),
                range(n),
            )
        )
    assert answers == [True] * n
    return time.perf_counter() - t0


def _peers(api: FakeApi, first: int = 0) -> set[tuple[str, int] | None]:
    return {r.peer for r in api.requests_to("POST", SSAR)[first:]}


def test_a_second_burst_reuses_every_connection_of_the_first(
    slow_tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    _burst(tls_gw)
    first = _peers(slow_tls_api)
    assert len(first) == BURST  # all in flight at once: one connection each
    assert slow_tls_api.connections_accepted == BURST
    _burst(tls_gw)
    _burst(tls_gw)
    assert _peers(slow_tls_api, BURST) <= first  # no new client port...
    assert slow_tls_api.connections_accepted == BURST  # ...and no new TLS handshake
    assert tls_gw.stats.connections == BURST
    assert tls_gw.idle_connections == BURST


def test_prewarm_opens_the_connections_before_the_burst(
    slow_tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    warmed = tls_gw.prewarm(BURST)
    assert warmed.result(10) == BURST
    assert slow_tls_api.connections_accepted == BURST
    assert slow_tls_api.requests == []  # no request sent, nothing counted
    assert tls_gw.stats.requests == 0 and tls_gw.stats.connections == BURST
    elapsed = _burst(tls_gw)
    assert slow_tls_api.connections_accepted == BURST  # the burst opened none
    assert len(_peers(slow_tls_api)) == BURST
    assert tls_gw.stats.connections == BURST
    assert elapsed < 1.0  # all at once: one latency (0.1 s), not twelve
    # Topping up counts what is already idle: nothing more to open.
    assert tls_gw.prewarm(BURST).result(10) == BURST
    assert slow_tls_api.connections_accepted == BURST


def test_connect_can_prewarm(slow_tls_api: FakeApi, tls_kubeconfig: Path) -> None:
    gw = connect(str(tls_kubeconfig), prewarm=4)
    try:
        deadline = time.monotonic() + 10
        while gw.idle_connections < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gw.idle_connections == 4
        assert slow_tls_api.connections_accepted == 4
        _burst(gw, 4)
        assert slow_tls_api.connections_accepted == 4
    finally:
        gw.close()


def test_prewarm_is_capped_by_the_pool_size(tls_gw: KubeGateway) -> None:
    assert tls_gw.prewarm(POOL_MAXSIZE + 10).result(20) == POOL_MAXSIZE
    assert tls_gw.prewarm(0).result(1) == POOL_MAXSIZE


def test_a_burst_larger_than_the_pool_still_works_and_keeps_the_pool_full(
    slow_tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    _burst(tls_gw, POOL_MAXSIZE + 4)  # the pool never blocks a request
    assert tls_gw.idle_connections == POOL_MAXSIZE
    before = slow_tls_api.connections_accepted
    _burst(tls_gw, POOL_MAXSIZE)
    assert slow_tls_api.connections_accepted == before


def test_prewarm_of_an_unreachable_server_is_harmless(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    gw = connect(str(write_kubeconfig(tmp_path / "k", f"https://127.0.0.1:{port}")))
    try:
        assert gw.prewarm(3).result(20) == 0
        assert gw.stats.connections == 0
    finally:
        gw.close()


def test_plain_http_prewarm(api: FakeApi, gw: KubeGateway) -> None:
    assert gw.prewarm(2).result(10) == 2
    api.add_pod("prod", "web-1")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: gw.list(PODS, "prod"), range(2)))
    assert api.connections_accepted == 2


def test_the_official_clients_pool_keeps_as_many(
    slow_tls_api: FakeApi, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a cluster (the official client's configuration and pool), a burst of 12 is
    kept whole too (its default keeps 5 per core) and prewarm works the same."""
    from kubernetes.config import incluster_config

    token_file = tmp_path / "token"
    token_file.write_text(slow_tls_api.token)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(certs.ca))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(slow_tls_api.port))
    gw = connect(retry=FAST_RETRY)
    try:
        assert gw.context == "in-cluster"
        assert gw.prewarm(4).result(10) == 4
        _burst(gw)
        _burst(gw)
        assert slow_tls_api.connections_accepted == BURST
        assert gw.stats.connections == BURST and gw.idle_connections == BURST
    finally:
        gw.close()


def test_a_burst_beyond_the_pool_says_nothing_on_the_terminal(
    slow_tls_api: FakeApi, tls_gw: KubeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG, logger="urllib3")
    _burst(tls_gw, POOL_MAXSIZE + 4)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
