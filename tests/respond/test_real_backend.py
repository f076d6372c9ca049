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


def _reviews(fake: FakeCluster, namespace: str) -> list[tuple[str, ...]]:
    return [c for c in fake.calls if c[0] == "access_review" and c[3] == namespace]


def test_what_is_granted_cluster_wide_is_not_asked_again_in_the_namespace(
    tmp_path: Path,
) -> None:
    fake = FakeCluster()
    backend = RealBackend(fake, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm()
    backend.warm()  # once, however often it is called
    info = backend.check(make_target(), plan())
    assert _reviews(fake, "default") == []
    wide = _reviews(fake, "")
    assert len(wide) == len({c[1:3] for c in wide})  # each asked once
    assert info["granted_cluster_wide"] == len(info["permissions"])
    # The permissions the plan needs are still all named, as before.
    assert "create networkpolicies.networking.k8s.io -n default" in info["permissions"]


def test_a_namespace_bound_identity_is_still_checked_in_the_namespace(tmp_path: Path) -> None:
    # Denied in "default" only (a RoleBinding elsewhere): not granted cluster-wide, so the
    # check asks in the namespace and names what is missing there.
    fake = FakeCluster(denied={("delete", "pods", "default")})
    backend = RealBackend(fake, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm()
    with pytest.raises(Forbidden) as info:
        backend.check(make_target(), plan())
    assert list(info.value.missing) == ["delete pods -n default"]
    assert [c[1:3] for c in _reviews(fake, "default")] == [("delete", "pods")]
    ok = backend.check(make_target(ns="prod"), plan())
    assert ok["granted_cluster_wide"] == len(ok["permissions"]) - 1


def test_a_failed_early_question_falls_back_to_asking_in_the_namespace(tmp_path: Path) -> None:
    class WideDown(FakeCluster):
        def access_review(self, verb: str, resource: str, **kw: object) -> bool:
            if kw.get("namespace") is None:
                raise ClusterUnreachable("connection refused")
            return super().access_review(verb, resource, **kw)  # type: ignore[arg-type]

    fake = WideDown(denied={("create", "networkpolicies", None)})
    backend = RealBackend(fake, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm()
    with pytest.raises(Forbidden) as info:
        backend.check(make_target(), plan())
    assert list(info.value.missing) == ["create networkpolicies.networking.k8s.io -n default"]
    assert len(_reviews(fake, "default")) > 8


def test_reads_ahead_start_when_locate_finds_the_pod_and_are_not_repeated(
    tmp_path: Path,
) -> None:
    from falcoir.core.incident import IncidentStore as Store
    from tests.locate.world import json_alert, scenario

    pod_name = "cryptominer-demo-7d9f8b6c5-abc12"
    w, pod = scenario()
    store = Store(tmp_path)
    backend = RealBackend(w, store)  # type: ignore[arg-type]
    alert = json_alert(ns="default", pod=pod_name, pid=None, vpid=7)
    target = backend.locate(alert, lambda _t: None, ActionOptions())
    # The incident is open and the reads are under way (or done) for it already.
    inc = store.for_pod("default", pod_name, pod["metadata"]["uid"])
    assert inc is not None
    ahead = backend._prepared_reads[("default", pod_name)]
    prepared = ahead.result(timeout=10)
    assert prepared.incident == inc.id
    policy_reads = [c for c in w.calls if c[0] == "get" and c[1] == "networkpolicies"]
    assert len(policy_reads) == 1
    # The check step finds them fresh and does not read again.
    p = Plan(target=target, incident=inc.id, quarantine=True, collect=True, delete=True,
             dry_run=False, options=ActionOptions())  # fmt: skip
    backend.check(target, p)
    assert backend._prepared_reads[("default", pod_name)] is ahead
    # Without ``ahead`` (a dry run, or a question first) nothing is read ahead.
    other = RealBackend(w, Store(tmp_path / "other"))  # type: ignore[arg-type]
    other.locate(alert, lambda _t: None)
    assert other._prepared_reads == {}


def test_warm_imports_the_bundle_library_in_the_background(tmp_path: Path) -> None:
    # Opening the bundle (right after locate, before the snapshot containment waits for)
    # must not pay for importing bagit then.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from falcoir.core.incident import IncidentStore\n"
        "from falcoir.core.respond.real import RealBackend\n"
        "from tests.fakes import FakeCluster\n"
        "assert 'bagit' not in sys.modules\n"
        f"RealBackend(FakeCluster(), IncidentStore(Path({str(tmp_path)!r}))).warm()\n"
        "deadline = time.monotonic() + 20\n"
        "while 'bagit' not in sys.modules and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('bagit' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_warm_waits_for_the_first_answer_before_asking_and_importing(tmp_path: Path) -> None:
    # Imports and a burst of questions are CPU work: sent before locate's first request
    # has gone out, they delayed it. They start once the API server has answered.
    import time

    class Stats:
        bytes_received = 0

    class Quiet(FakeCluster):
        stats = Stats()

    fake = Quiet()
    backend = RealBackend(fake, IncidentStore(tmp_path))  # type: ignore[arg-type]
    backend.warm()
    time.sleep(0.2)
    assert not [c for c in fake.calls if c[0] == "access_review"]
    fake.stats.bytes_received = 512  # locate's first answer
    deadline = time.monotonic() + 10
    while not [c for c in fake.calls if c[0] == "access_review"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [c for c in fake.calls if c[0] == "access_review"]
    backend._later.wait()
    info = backend.check(make_target(), plan())
    assert info["granted_cluster_wide"] == len(info["permissions"])
