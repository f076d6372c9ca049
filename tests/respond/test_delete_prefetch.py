"""The delete plan is read while containment is verified, and used only when fresh
and for the same pod."""

from __future__ import annotations

from pathlib import Path

from falcoir.core.incident import IncidentStore
from falcoir.core.policy import ActionOptions
from falcoir.core.respond.backend import Plan
from falcoir.core.respond.real import RealBackend
from tests.contain.cluster import NS, POD, ContainCluster, make_cluster, target
from tests.contain.test_delete import sealed_bundle
from tests.contain.test_quarantine import miner_alert


def _plan(t: object, delete: bool = True) -> Plan:
    return Plan(
        target=t,  # type: ignore[arg-type]
        incident="inc-20261128-000000-abcdef",
        quarantine=True,
        collect=True,
        delete=delete,
        options=ActionOptions(),
        dry_run=False,
    )


def _contain(cluster: ContainCluster, store: IncidentStore, delete: bool = True):  # type: ignore[no-untyped-def]
    backend = RealBackend(cluster, store, verify_seconds=0.5)  # type: ignore[arg-type]
    t = target(cluster)
    # delete counts only a sealed, complete bundle that verifies as evidence
    inc, _ = sealed_bundle(store, store.home, t.pod_uid, complete=True)
    backend.check(t, _plan(t, delete))
    log = inc.action_log("tester")
    result = backend.quarantine(t, miner_alert(), inc, log, ActionOptions(), False, lambda _: None)
    assert result["verified"]["egress_blocked"] is True
    return backend, t, inc, log


def test_delete_uses_the_plan_read_during_verification(tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    backend, t, inc, log = _contain(cluster, store)
    cluster.calls.clear()
    doc = backend.delete(t, inc, log, ActionOptions(), False, lambda _: None)
    # the owners and the replica count were read ahead; the delete carries the pod's
    # uid as a precondition instead of reading the pod again first
    assert [c[0] for c in cluster.calls] == ["delete"]
    assert doc["owner_effect"] and "Deployment" in doc["owner_effect"]
    assert (NS, POD) not in {(ns, n) for (p, ns, n) in cluster.objects if p == "pods"}


def test_a_replaced_pod_is_not_deleted_on_a_stale_plan(tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    backend, t, inc, log = _contain(cluster, store)
    # the pod is replaced under the same name (a StatefulSet would do that)
    cluster.objects[("pods", NS, POD)]["metadata"]["uid"] = "a-new-uid"
    cluster.calls.clear()
    doc = backend.delete(t, inc, log, ActionOptions(), False, lambda _: None)
    # the server refused the delete (uid precondition): the replacement lives on
    assert doc["deleted"] is False and doc["status"] == "gone"
    assert cluster.objects[("pods", NS, POD)]["metadata"]["uid"] == "a-new-uid"


def test_no_plan_is_read_ahead_without_a_delete(tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    backend, *_ = _contain(cluster, store, delete=False)
    assert backend._delete_plans == {}


def test_a_bundle_sealed_after_the_read_ahead_counts_as_evidence(tmp_path: Path) -> None:
    """respond reads the delete plan while containment is verified, before the full
    collection seals the bundle: the evidence is judged when deleting, not then."""
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    backend = RealBackend(cluster, store, verify_seconds=0.5)  # type: ignore[arg-type]
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    backend.check(t, _plan(t))
    log = inc.action_log("tester")
    result = backend.quarantine(t, miner_alert(), inc, log, ActionOptions(), False, lambda _: None)
    assert result["verified"]["egress_blocked"] is True
    # the plan read ahead saw no bundle; now collection seals one for the incident
    sealed_bundle(store, tmp_path, t.pod_uid, complete=True)
    doc = backend.delete(t, inc, log, ActionOptions(), False, lambda _: None)
    assert doc["deleted"] is True
    assert (NS, POD) not in {(ns, n) for (p, ns, n) in cluster.objects if p == "pods"}
