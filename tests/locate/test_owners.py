"""owner_chain: from the pod's direct owner to the top controller."""

from __future__ import annotations

import pytest

from falcoir.core.gateway import (
    CRON_JOBS,
    DAEMON_SETS,
    EVENTS,
    JOBS,
    NETWORK_POLICIES,
    PODS,
    STATEFUL_SETS,
)
from falcoir.core.owners import controller_ref, owner_chain
from falcoir.errors import Forbidden
from tests.fakes import FakeCluster


def _ref(kind: str, name: str, uid: str, api: str = "apps/v1", controller: bool = True) -> dict:
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": controller}


def _pod(owner: dict | None) -> dict:
    meta: dict = {"name": "p", "namespace": "ns"}
    if owner:
        meta["ownerReferences"] = [owner]
    return {"metadata": meta}


def test_job_to_cronjob() -> None:
    fc = FakeCluster()
    cj = fc.add(CRON_JOBS, {"metadata": {"name": "nightly", "namespace": "ns"}})
    job = fc.add(
        JOBS,
        {
            "metadata": {
                "name": "nightly-2900",
                "namespace": "ns",
                "ownerReferences": [_ref("CronJob", "nightly", cj["metadata"]["uid"], "batch/v1")],
            }
        },
    )
    chain = owner_chain(fc, _pod(_ref("Job", "nightly-2900", job["metadata"]["uid"], "batch/v1")))
    assert [(o.kind, o.name) for o in chain] == [("Job", "nightly-2900"), ("CronJob", "nightly")]
    assert chain[1].uid == cj["metadata"]["uid"]


@pytest.mark.parametrize(
    ("res", "kind"), [(STATEFUL_SETS, "StatefulSet"), (DAEMON_SETS, "DaemonSet")]
)
def test_single_level_controllers(res, kind) -> None:  # type: ignore[no-untyped-def]
    fc = FakeCluster()
    obj = fc.add(res, {"metadata": {"name": "x", "namespace": "ns"}})
    chain = owner_chain(fc, _pod(_ref(kind, "x", obj["metadata"]["uid"])))
    assert [(o.kind, o.name) for o in chain] == [(kind, "x")]
    assert [c[0] for c in fc.calls] == ["get"]


def test_bare_pod_has_no_owner_and_costs_nothing() -> None:
    fc = FakeCluster()
    assert owner_chain(fc, _pod(None)) == ()
    assert fc.calls == []


def test_deleted_owner_ends_the_chain() -> None:
    fc = FakeCluster()
    chain = owner_chain(fc, _pod(_ref("ReplicaSet", "gone-1", "u1")))
    assert [(o.kind, o.name) for o in chain] == [("ReplicaSet", "gone-1")]


def test_custom_resource_owner_is_reported_not_fetched() -> None:
    fc = FakeCluster()
    chain = owner_chain(fc, _pod(_ref("Rollout", "r", "u1", "argoproj.io/v1alpha1")))
    assert [(o.kind, o.name) for o in chain] == [("Rollout", "r")]
    assert fc.calls == []


def test_kind_with_foreign_group_is_not_fetched() -> None:
    fc = FakeCluster()
    chain = owner_chain(fc, _pod(_ref("Deployment", "d", "u1", "example.com/v1")))
    assert len(chain) == 1 and fc.calls == []


def test_controller_ref_prefers_the_controller() -> None:
    obj = {
        "metadata": {
            "ownerReferences": [
                _ref("ConfigMap", "cm", "u0", "v1", controller=False),
                _ref("ReplicaSet", "rs", "u1"),
            ]
        }
    }
    ref = controller_ref(obj)
    assert ref is not None and ref.kind == "ReplicaSet"


def test_recreated_owner_with_other_uid_stops() -> None:
    fc = FakeCluster()
    fc.add(
        JOBS,
        {
            "metadata": {
                "name": "j",
                "namespace": "ns",
                "uid": "new",
                "ownerReferences": [_ref("CronJob", "c", "cu", "batch/v1")],
            }
        },
    )
    chain = owner_chain(fc, _pod(_ref("Job", "j", "old", "batch/v1")))
    assert [(o.kind, o.name) for o in chain] == [("Job", "j")]


def test_cycle_is_cut() -> None:
    fc = FakeCluster()
    fc.add(
        JOBS,
        {
            "metadata": {
                "name": "a",
                "namespace": "ns",
                "uid": "ua",
                "ownerReferences": [_ref("Job", "a", "ua", "batch/v1")],
            }
        },
    )
    chain = owner_chain(fc, _pod(_ref("Job", "a", "ua", "batch/v1")))
    assert len(chain) == 1


def test_hostile_owner_name_is_not_fetched() -> None:
    fc = FakeCluster()
    chain = owner_chain(fc, _pod(_ref("ReplicaSet", "../../secrets/x", "u")))
    assert chain[0].name == "../../secrets/x" and fc.calls == []


def test_forbidden_raises_by_default_or_is_reported() -> None:
    fc = FakeCluster()
    fc.add(JOBS, {"metadata": {"name": "j", "namespace": "ns", "uid": "u"}})
    fc.denied.add(("get", "jobs", "ns"))
    pod = _pod(_ref("Job", "j", "u", "batch/v1"))
    with pytest.raises(Forbidden):
        owner_chain(fc, pod)
    seen: list[str] = []
    chain = owner_chain(fc, pod, on_forbidden=seen.append)
    assert len(chain) == 1 and seen == ["get jobs -n ns"]


def test_pods_resource_constant_unused_guard() -> None:
    # a Pod owning a pod (mirror/static pods name a Node; odd owners) is not walked
    fc = FakeCluster()
    chain = owner_chain(fc, _pod(_ref("Node", "n1", "u", "v1")))
    assert [(o.kind, o.name) for o in chain] == [("Node", "n1")]
    assert PODS.kind == "Pod"


def test_a_forged_reference_to_a_non_controller_is_reported_not_read() -> None:
    # ownerReferences are the pod author's text: a NetworkPolicy or an Event named as
    # the owner must not be read (and so not land in the bundle as an "owner").
    fc = FakeCluster()
    fc.add(NETWORK_POLICIES, {"metadata": {"name": "deny-all", "namespace": "ns", "uid": "np"}})
    fc.add(EVENTS, {"metadata": {"name": "ev1", "namespace": "ns", "uid": "ev"}})
    for ref in (
        _ref("NetworkPolicy", "deny-all", "np", "networking.k8s.io/v1"),
        _ref("Event", "ev1", "ev", "v1"),
        _ref("ReplicationController", "rc", "u", "apps/v1"),
    ):
        chain = owner_chain(fc, _pod(ref))
        assert [(o.kind, o.name) for o in chain] == [(ref["kind"], ref["name"])]
    assert fc.calls == []


def test_controller_ref_strict_wants_the_controlling_owner_only() -> None:
    # detaching a pod from its owner concerns the controller that would replace it,
    # never a mere (non-controller) owner
    plain = {"metadata": {"ownerReferences": [_ref("ConfigMap", "cm", "u0", "v1", False)]}}
    assert controller_ref(plain) is not None
    assert controller_ref(plain, strict=True) is None
    both = {"metadata": {"ownerReferences": [*plain["metadata"]["ownerReferences"]]}}
    both["metadata"]["ownerReferences"].append(_ref("ReplicaSet", "rs", "u1"))
    ref = controller_ref(both, strict=True)
    assert ref is not None and (ref.kind, ref.name, ref.uid) == ("ReplicaSet", "rs", "u1")
