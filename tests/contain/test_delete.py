from __future__ import annotations

from pathlib import Path

import pytest

from falcoir.core.bundle import ArtifactMeta, BundleWriter
from falcoir.core.contain import DeleteOptions, delete, plan_delete
from falcoir.core.contain.removal import check_evidence
from falcoir.core.gateway import DAEMON_SETS, DEPLOYMENTS, PODS
from falcoir.core.incident import IncidentStore, read_actions
from falcoir.core.target import LocateMethod, Target
from falcoir.errors import Forbidden, InputError, TargetNotFound
from tests.contain.cluster import DEPLOY, NS, POD, RS, make_cluster, pod_json, target


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "home")


def sealed_bundle(store: IncidentStore, tmp_path: Path, uid: str | None, *, complete: bool):  # type: ignore[no-untyped-def]
    """A real bundle for the pod's incident, sealed complete or not."""
    inc = store.open(NS, POD, uid)
    writer = BundleWriter.create(
        tmp_path / "evidence",
        inc,
        alert_raw=None,
        target=Target(NS, POD, "miner", LocateMethod.POD_FLAG),
        context="fake",
        operator="t",
    )
    writer.add_bytes("processes/ps.txt", b"42 /tmp/xmrig\n", ArtifactMeta())
    sealed = writer.finalize(complete)
    return store.add_bundle(inc, sealed.dir), sealed


def with_bundle(store: IncidentStore, tmp_path: Path, uid: str | None):  # type: ignore[no-untyped-def]
    inc, _ = sealed_bundle(store, tmp_path, uid, complete=True)
    return inc


def test_plan_says_the_replicaset_recreates_it(store: IncidentStore) -> None:
    cluster = make_cluster()
    plan = plan_delete(cluster, target(cluster), store=store)
    assert [(o.kind, o.name) for o in plan.owners] == [("ReplicaSet", RS), ("Deployment", DEPLOY)]
    assert plan.recreates is True
    assert "will recreate it" in plan.consequence and "backdoored" in plan.consequence
    assert "--scale-owner" in plan.consequence
    assert plan.top_replicas == 2
    assert plan.has_evidence is False


def test_refuses_without_evidence_unless_forced(store: IncidentStore) -> None:
    cluster = make_cluster()
    t = target(cluster)
    plan = plan_delete(cluster, t, store=store)
    inc = store.open(NS, POD, t.pod_uid)
    with pytest.raises(InputError, match="no evidence bundle"):
        delete(cluster, t, plan=plan, options=DeleteOptions(), incident=inc, log=inc.action_log())
    assert ("pods", NS, POD) in cluster.objects
    result = delete(
        cluster, t, plan=plan, options=DeleteOptions(force=True), incident=inc, log=inc.action_log()
    )
    assert result.deleted is True
    assert ("pods", NS, POD) not in cluster.objects
    rec = list(read_actions(inc.actions_path))
    assert [(r.action, r.kind, r.outcome) for r in rec] == [("delete", "Pod", "ok")]
    assert rec[0].data["forced_without_evidence"] is True


def test_delete_with_bundle_and_scale_owner(store: IncidentStore, tmp_path: Path) -> None:
    cluster = make_cluster()
    t = target(cluster)
    inc = with_bundle(store, tmp_path, t.pod_uid)
    plan = plan_delete(cluster, t, store=store)
    assert plan.has_evidence and plan.incident == inc.id
    result = delete(
        cluster,
        t,
        plan=plan,
        options=DeleteOptions(scale_owner=True, grace_period=0),
        incident=inc,
        log=inc.action_log(),
    )
    assert cluster.get(DEPLOYMENTS, DEPLOY, NS)["spec"]["replicas"] == 0
    assert result.scaled == {
        "kind": "Deployment",
        "name": DEPLOY,
        "from": 2,
        "to": 0,
        "change": "replicas 2 -> 0",
    }
    assert ("patch", "deployments/scale", NS, DEPLOY) in cluster.calls
    rec = [(r.action, r.kind, r.outcome) for r in read_actions(inc.actions_path)]
    # the fake's controller removed the pods when scaled down: the delete finds it gone
    assert rec[0] == ("scale", "Deployment", "ok")
    assert result.status in ("deleted", "gone")


def test_dry_run_deletes_nothing(store: IncidentStore, tmp_path: Path) -> None:
    cluster = make_cluster()
    t = target(cluster)
    inc = with_bundle(store, tmp_path, t.pod_uid)
    plan = plan_delete(cluster, t, store=store)
    result = delete(
        cluster,
        t,
        plan=plan,
        options=DeleteOptions(dry_run=True, scale_owner=True),
        incident=inc,
        log=inc.action_log(),
    )
    assert result.status == "dry-run" and result.deleted is False
    assert ("pods", NS, POD) in cluster.objects
    assert cluster.get(DEPLOYMENTS, DEPLOY, NS)["spec"]["replicas"] == 2
    assert {r.outcome for r in read_actions(inc.actions_path)} == {"dry-run"}


def test_bare_pod_and_daemonset(store: IncidentStore) -> None:
    cluster = make_cluster()
    cluster.add(PODS, pod_json("lonely", owner=False))
    t = Target(namespace=NS, pod="lonely", container=None, method=LocateMethod.POD_FLAG)
    plan = plan_delete(cluster, t, store=store)
    assert plan.recreates is False and "gone for good" in plan.consequence
    inc = store.open(NS, "lonely", None)
    with pytest.raises(InputError, match="no controller"):
        delete(
            cluster,
            t,
            plan=plan,
            options=DeleteOptions(force=True, scale_owner=True),
            incident=inc,
            log=inc.action_log(),
        )

    cluster.add(DAEMON_SETS, {"metadata": {"name": "agent", "namespace": NS, "uid": "ds"}})
    ds_pod = pod_json("agent-x1", owner=False)
    ds_pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": "agent",
            "uid": "ds",
            "controller": True,
        }
    ]
    cluster.add(PODS, ds_pod)
    t = Target(namespace=NS, pod="agent-x1", container=None, method=LocateMethod.POD_FLAG)
    plan = plan_delete(cluster, t, store=store)
    assert "every node" in plan.consequence
    with pytest.raises(InputError, match="cannot be scaled"):
        delete(
            cluster,
            t,
            plan=plan,
            options=DeleteOptions(force=True, scale_owner=True),
            incident=inc,
            log=inc.action_log(),
        )
    assert ("pods", NS, "agent-x1") in cluster.objects


def test_forbidden_delete_names_everything(store: IncidentStore) -> None:
    cluster = make_cluster()
    cluster.denied |= {("delete", "pods", NS), ("patch", "deployments/scale", NS)}
    t = target(cluster)
    plan = plan_delete(cluster, t, store=store)
    inc = store.open(NS, POD, t.pod_uid)
    with pytest.raises(Forbidden) as err:
        delete(
            cluster,
            t,
            plan=plan,
            options=DeleteOptions(force=True, scale_owner=True),
            incident=inc,
            log=inc.action_log(),
        )
    assert set(err.value.missing) == {
        "delete pods -n shop",
        "patch deployments.apps/scale -n shop",
    }
    assert ("pods", NS, POD) in cluster.objects


def test_replaced_pod_is_not_deleted(store: IncidentStore) -> None:
    cluster = make_cluster()
    t = target(cluster)
    cluster.objects[("pods", NS, POD)]["metadata"]["uid"] = "someone-else"
    with pytest.raises(TargetNotFound, match="replaced"):
        plan_delete(cluster, t, store=store)


@pytest.mark.parametrize("damage", ["incomplete", "tampered", "unsealed", "not-a-bundle"])
def test_a_bundle_that_is_incomplete_or_fails_verification_is_not_evidence(
    store: IncidentStore, tmp_path: Path, damage: str
) -> None:
    cluster = make_cluster()
    t = target(cluster)
    if damage == "not-a-bundle":
        # an empty directory recorded as the pod's bundle (what was accepted before)
        empty = tmp_path / "empty"
        empty.mkdir()
        inc = store.add_bundle(store.open(NS, POD, t.pod_uid), empty)
    else:
        inc, sealed = sealed_bundle(store, tmp_path, t.pod_uid, complete=damage != "incomplete")
    if damage == "tampered":
        art = sealed.dir / "data" / "processes" / "ps.txt"
        art.chmod(0o644)
        art.write_bytes(b"42 /usr/bin/innocent\n")
    elif damage == "unsealed":
        # killed before sealing: an artifact the manifests do not list
        (sealed.dir / "data" / "late.txt").write_bytes(b"written after the seal")
    plan = plan_delete(cluster, t, store=store)
    assert plan.bundles and not plan.has_evidence
    assert plan.to_dict()["has_evidence"] is False
    why = {
        "incomplete": "marked incomplete",
        "tampered": "fails verification",
        "unsealed": "fails verification",
        "not-a-bundle": "fails verification",
    }[damage]
    assert any(why in p for p in plan.evidence_problems), plan.evidence_problems
    with pytest.raises(InputError, match="no complete, verified evidence bundle") as err:
        delete(cluster, t, plan=plan, options=DeleteOptions(), incident=inc, log=inc.action_log())
    assert why in err.value.message and "--force" in (err.value.hint or "")
    assert ("pods", NS, POD) in cluster.objects
    steps: list[object] = []
    result = delete(
        cluster,
        t,
        plan=plan,
        options=DeleteOptions(force=True),
        incident=inc,
        log=inc.action_log(),
        on_step=steps.append,
    )
    assert result.deleted and ("pods", NS, POD) not in cluster.objects
    assert any(s.name == "evidence" and s.status == "warning" for s in result.steps)
    rec = [r for r in read_actions(inc.actions_path) if r.action == "delete"]
    assert rec[-1].data["forced_without_evidence"] is True
    assert any(why in p for p in rec[-1].data["evidence_problems"])


def test_a_complete_verified_bundle_is_evidence_even_after_older_bad_ones(
    store: IncidentStore, tmp_path: Path
) -> None:
    cluster = make_cluster()
    t = target(cluster)
    sealed_bundle(store, tmp_path, t.pod_uid, complete=False)
    _, good = sealed_bundle(store, tmp_path, t.pod_uid, complete=True)
    plan = plan_delete(cluster, t, store=store)
    assert plan.has_evidence and plan.evidence_problems == ()
    assert [e.path for e in plan.evidence] == [str(good.dir)]
    assert check_evidence(good.archive).held
    assert check_evidence(tmp_path / "nowhere").problem is not None


def test_a_forged_owner_of_another_api_group_is_never_scaled(
    store: IncidentStore, tmp_path: Path
) -> None:
    # The pod's author writes its ownerReferences: one claiming a controller "Deployment"
    # of a made-up API group, named like a real Deployment, must not get that real
    # Deployment read or scaled to zero by --scale-owner.
    cluster = make_cluster()
    forged = pod_json("forged-pod", owner=False)
    forged["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "evil.example.com/v1",
            "kind": "Deployment",
            "name": DEPLOY,
            "uid": "x",
            "controller": True,
        }
    ]
    cluster.add(PODS, forged)
    t = target(cluster, "forged-pod")
    t = Target(t.namespace, t.pod, t.container, t.method, pod_uid=t.pod_uid)
    inc = store.open(NS, "forged-pod", t.pod_uid)
    plan = plan_delete(cluster, t, store=store)
    assert [(o.kind, o.api_version) for o in plan.owners] == [("Deployment", "evil.example.com/v1")]
    assert plan.top_replicas is None
    assert not [c for c in cluster.calls if c[0] == "get" and c[1] == "deployments"]
    with pytest.raises(InputError, match="not one falcoir reads or scales"):
        delete(
            cluster,
            t,
            plan=plan,
            options=DeleteOptions(scale_owner=True, force=True),
            incident=inc,
            log=inc.action_log(),
        )
    assert cluster.get(DEPLOYMENTS, DEPLOY, NS)["spec"]["replicas"] == 2
    assert ("pods", NS, "forged-pod") in cluster.objects
