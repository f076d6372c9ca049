"""The real backend's own logic against the fake cluster: the permission check."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoir.core.incident import IncidentStore
from falcoir.core.policy import ActionOptions
from falcoir.core.respond.backend import Plan
from falcoir.core.respond.real import RealBackend
from falcoir.errors import ClusterUnreachable, Forbidden
from tests.fakes import FakeCluster

from .fake_backend import make_target


def plan(**kw: bool) -> Plan:
    base = {"quarantine": True, "collect": True, "delete": True, "dry_run": False}
    base.update(kw)
    return Plan(target=make_target(), incident="inc-20261128-000000-abcdef",
                options=ActionOptions(), **base)  # type: ignore[arg-type]  # fmt: skip


def test_every_permission_is_asked_and_each_missing_one_named(tmp_path: Path) -> None:
    fake = FakeCluster(denied={("create", "networkpolicies", None), ("delete", "pods", None)})
    backend = RealBackend(fake, IncidentStore(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(Forbidden) as info:
        backend.check(make_target(), plan())
    assert sorted(info.value.missing) == [
        "create networkpolicies.networking.k8s.io -n default",
        "delete pods -n default",
    ]
    assert "2 permission(s)" in info.value.message
    reviews = [c for c in fake.calls if c[0] == "access_review"]
    assert len(reviews) > 8  # more than one batch of eight, asked at once


def test_allowed_plan_is_cached_per_namespace_and_shape(tmp_path: Path) -> None:
    fake = FakeCluster()
    backend = RealBackend(fake, IncidentStore(tmp_path))  # type: ignore[arg-type]
    first = backend.check(make_target(), plan())
    n = len(fake.calls)
    second = backend.check(make_target(pod="other"), plan())
    assert len(fake.calls) == n and second.get("cached") is True
    assert first["permissions"] == second["permissions"]
    backend.check(make_target(ns="prod"), plan())
    assert len(fake.calls) > n


def test_an_unreachable_cluster_is_not_swallowed(tmp_path: Path) -> None:
    class Down(FakeCluster):
        def access_review(self, verb: str, resource: str, **kw: object) -> bool:
            if resource == "pods" and verb == "delete":
                raise ClusterUnreachable("connection refused")
            return True

    backend = RealBackend(Down(), IncidentStore(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(ClusterUnreachable):
        backend.check(make_target(), plan())
