"""Deletion is bound to the pod's uid: a pod that took the suspect's name since (a
StatefulSet's replacement) is never deleted, and no read comes before the delete."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from falcoir.core.contain import DeleteOptions, delete, plan_delete
from falcoir.core.gateway import PODS
from falcoir.core.incident import IncidentStore, read_actions
from falcoir.errors import ApiConflict
from tests.contain.cluster import NS, POD, make_cluster, target
from tests.contain.test_delete import with_bundle
from tests.plugins.lab import Lab


def test_a_pod_replaced_after_the_plan_is_left_alone(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "home")
    cluster = make_cluster()
    t = target(cluster)
    inc = with_bundle(store, tmp_path, t.pod_uid)
    plan = plan_delete(cluster, t, store=store)
    # between the plan and the delete, the name passes to a new pod
    cluster.objects[("pods", NS, POD)]["metadata"]["uid"] = "the-replacement"
    cluster.calls.clear()
    result = delete(
        cluster, t, plan=plan, options=DeleteOptions(), incident=inc, log=inc.action_log()
    )
    assert result.deleted is False and result.status == "gone"
    assert cluster.objects[("pods", NS, POD)]["metadata"]["uid"] == "the-replacement"
    # refused by the server, not read first (the permission checks aside)
    assert [c[0] for c in cluster.calls if c[0] != "access_review"] == ["delete"]
    assert "another pod" in result.steps[-1].detail and plan.pod_uid in result.steps[-1].detail
    rec = list(read_actions(inc.actions_path))
    assert [(r.action, r.outcome) for r in rec] == [("delete", "unchanged")]
    assert "left alone" in rec[0].detail


def test_the_same_pod_is_deleted(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "home")
    cluster = make_cluster()
    t = target(cluster)
    inc = with_bundle(store, tmp_path, t.pod_uid)
    plan = plan_delete(cluster, t, store=store)
    assert plan.pod_uid
    result = delete(
        cluster, t, plan=plan, options=DeleteOptions(), incident=inc, log=inc.action_log()
    )
    assert result.deleted is True and ("pods", NS, POD) not in cluster.objects


def test_another_conflict_is_not_taken_for_a_replacement(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "home")
    cluster = make_cluster()
    t = target(cluster)
    inc = with_bundle(store, tmp_path, t.pod_uid)
    plan = plan_delete(cluster, t, store=store)

    def refuse(*args: object, **kwargs: object) -> object:
        raise ApiConflict("Operation cannot be fulfilled: being modified", status=409)

    cluster.delete = refuse  # type: ignore[method-assign]
    with pytest.raises(ApiConflict):
        delete(cluster, t, plan=plan, options=DeleteOptions(), incident=inc, log=inc.action_log())
    assert [r.outcome for r in read_actions(inc.actions_path)] == ["failed"]


# -- on the lab, with kubectl as a second client -----------------------------------------


def _bare_pod(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"app": "uid-test"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }


def _wait_gone(lab: Lab, ns: str, name: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if lab.kubectl("get", "pod", name, "-n", ns).returncode != 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"pod {ns}/{name} still there")


@pytest.mark.lab
@pytest.mark.root
def test_lab_refuses_a_stale_uid_like_the_api_server(lab: Lab, fresh_namespace: str) -> None:
    from falcoir.cluster import connect

    ns = fresh_namespace
    old = lab.client.create("pods", _bare_pod("web-0"), namespace=ns)
    assert lab.kubectl("delete", "pod", "web-0", "-n", ns, "--grace-period=0").returncode == 0
    _wait_gone(lab, ns, "web-0")
    new = lab.client.create("pods", _bare_pod("web-0"), namespace=ns)
    old_uid, new_uid = old["metadata"]["uid"], new["metadata"]["uid"]
    assert old_uid != new_uid

    gw = connect(str(lab.kubeconfig))
    with pytest.raises(ApiConflict) as caught:
        gw.delete(PODS, "web-0", ns, uid=old_uid, grace_period_seconds=0)
    assert f"UID in precondition: {old_uid}, UID in object meta: {new_uid}" in str(caught.value)
    # kubectl sends the same DeleteOptions and gets the same answer
    body = tmp = Path(lab.state_dir) / f"delete-{ns}.json"
    body.write_text(json.dumps({"kind": "DeleteOptions", "apiVersion": "v1",
                                "preconditions": {"uid": old_uid}}))  # fmt: skip
    res = lab.kubectl("delete", "--raw", f"/api/v1/namespaces/{ns}/pods/web-0", "-f", str(tmp))
    assert res.returncode != 0 and "Precondition failed: UID in precondition" in res.stderr
    assert lab.kubectl("get", "pod", "web-0", "-n", ns).returncode == 0  # still there

    gw.delete(PODS, "web-0", ns, uid=new_uid, grace_period_seconds=0)
    _wait_gone(lab, ns, "web-0")


def test_the_api_servers_precondition_refusal_is_its_own_error() -> None:
    import json as _json

    from falcoir.cluster.errors import Endpoint, Op, from_status
    from falcoir.errors import ApiConflict as Conflict
    from falcoir.errors import PreconditionFailed

    def status(message: str) -> bytes:
        doc = {"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409}
        return _json.dumps({**doc, "message": message}).encode()

    op = Op("delete", "pods", "prod", "web-0")
    where = Endpoint("https://127.0.0.1:6443", "lab")
    refused = from_status(
        where,
        op,
        409,
        status(
            'Operation cannot be fulfilled on pods "web-0": Precondition failed: '
            "UID in precondition: a, UID in object meta: b"
        ),
    )
    assert isinstance(refused, PreconditionFailed)
    other = from_status(where, op, 409, status('Operation cannot be fulfilled: "modified"'))
    assert isinstance(other, Conflict) and not isinstance(other, PreconditionFailed)
