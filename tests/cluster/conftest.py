"""Fixtures for the gateway tests: a fake API server per test and a gateway to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoir.cluster import KubeGateway, RetryPolicy, connect
from tests.cluster.fakeapi import Certs, FakeApi, make_certs, server_ssl_context, write_kubeconfig

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_wait=0.5, budget=2.0)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi().start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(api: FakeApi, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", api.url)


@pytest.fixture
def gw(kubeconfig: Path) -> Iterator[KubeGateway]:
    gateway = connect(str(kubeconfig), request_timeout=5.0, retry=FAST_RETRY)
    yield gateway
    gateway.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_api(certs: Certs) -> Iterator[FakeApi]:
    server = FakeApi(ssl_context=server_ssl_context(certs)).start()
    yield server
    server.stop()
