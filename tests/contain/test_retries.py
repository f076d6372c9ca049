"""Containment does not stack retries on the gateway's: what the real gateway gives up
on (after its own retries, or at once for 401 and TLS failures) is final."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoir.cluster import RetryPolicy, connect
from falcoir.core.contain import plan_delete
from falcoir.core.contain.common import with_retries
from falcoir.core.target import LocateMethod, Target
from falcoir.errors import ApiConflict, ApiError, ApiNotFound, ClusterUnreachable
from tests.cluster.fakeapi import (
    Certs,
    FakeApi,
    make_certs,
    server_ssl_context,
    status_body,
    write_kubeconfig,
)

FAST = RetryPolicy(attempts=3, backoff=0.01, max_wait=0.2, budget=2.0)
POD_PATH = "/api/v1/namespaces/prod/pods/web-1"
TARGET = Target("prod", "web-1", "app", LocateMethod.POD_FLAG)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi().start()
    server.add_pod("prod", "web-1")
    yield server
    server.stop()


def test_401_is_final_at_once(api: FakeApi, tmp_path: Path) -> None:
    gw = connect(str(write_kubeconfig(tmp_path / "k", api.url, token="wrong")), retry=FAST)
    t0 = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="not authenticated"):
        plan_delete(gw, TARGET)
    assert len(api.requests_to("GET", POD_PATH)) == 1
    assert time.monotonic() - t0 < 1.0


def test_tls_failure_is_final_at_once(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs: Certs = make_certs(tmp_path / "certs")
    api = FakeApi(ssl_context=server_ssl_context(certs)).start()
    try:
        api.add_pod("prod", "web-1")
        gw = connect(str(write_kubeconfig(tmp_path / "k", api.url, ca=certs.other_ca)), retry=FAST)
        t0 = time.monotonic()
        with pytest.raises(ClusterUnreachable, match=r"TLS|SSL|certificate"):
            plan_delete(gw, TARGET)
        assert gw.stats.requests == 1
        assert time.monotonic() - t0 < 1.0
    finally:
        api.stop()


def test_a_failing_server_gets_only_the_gateways_retries(api: FakeApi, tmp_path: Path) -> None:
    gw = connect(str(write_kubeconfig(tmp_path / "k", api.url)), retry=FAST)
    api.script("GET", POD_PATH, 503, status_body(503, "ServiceUnavailable", "down"), times=100)
    with pytest.raises(ApiError) as err:
        plan_delete(gw, TARGET)
    assert err.value.status == 503
    assert len(api.requests_to("GET", POD_PATH)) == FAST.attempts  # 3, not 3 x 3


def test_a_dropped_read_gets_only_the_gateways_retries(api: FakeApi, tmp_path: Path) -> None:
    gw = connect(str(write_kubeconfig(tmp_path / "k", api.url)), retry=FAST)
    api.script("GET", POD_PATH, drop=True, times=100)
    with pytest.raises(ClusterUnreachable):
        plan_delete(gw, TARGET)
    assert len(api.requests_to("GET", POD_PATH)) == FAST.attempts


def test_a_transient_fault_the_gateway_absorbs_still_works(api: FakeApi, tmp_path: Path) -> None:
    gw = connect(str(write_kubeconfig(tmp_path / "k", api.url)), retry=FAST)
    api.script("GET", POD_PATH, 500, status_body(500, "InternalError", "oops"), times=2)
    plan = plan_delete(gw, TARGET)
    assert plan.pod == "web-1" and plan.owners == ()


def test_with_retries_retries_only_conflicts_and_only_when_asked() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def failing(exc: Exception, times: int) -> object:
        def fn() -> str:
            calls.append(1)
            if len(calls) <= times:
                raise exc
            return "ok"

        return fn

    for exc in (
        ClusterUnreachable("not authenticated"),
        ApiError("busy", status=429),
        ApiError("oops", status=500),
        ApiNotFound("gone", status=404),
        ApiConflict("modified", status=409),
    ):
        calls.clear()
        with pytest.raises(type(exc)):
            with_retries(failing(exc, 1), sleep=slept.append)  # type: ignore[arg-type]
        assert len(calls) == 1, exc
    assert slept == []
    calls.clear()
    got = with_retries(
        failing(ApiConflict("modified", status=409), 2),  # type: ignore[arg-type]
        conflicts=True,
        sleep=slept.append,
    )
    assert got == "ok" and len(calls) == 3 and len(slept) == 2
    calls.clear()
    with pytest.raises(ApiConflict):
        with_retries(
            failing(ApiConflict("modified", status=409), 99),  # type: ignore[arg-type]
            conflicts=True,
            delays=(0.0,),
            sleep=slept.append,
        )
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(ApiError):
        with_retries(failing(ApiError("oops", status=500), 1), conflicts=True)  # type: ignore[arg-type]
    assert len(calls) == 1
