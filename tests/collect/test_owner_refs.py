"""Owner references from locate are the pod author's text: only controllers are read
for them, never another pod, a node or an event (finding 16)."""

from __future__ import annotations

from falcoir.core.collect.owners import objects_for_refs, owner_objects
from falcoir.core.gateway import EVENTS, NETWORK_POLICIES, PODS
from falcoir.core.target import OwnerRef
from tests.collect.support import NS, add_workload
from tests.fakes import FakeCluster


def cluster() -> FakeCluster:
    c = FakeCluster()
    add_workload(c)
    c.add(
        PODS,
        {
            "metadata": {"name": "payments-0", "namespace": NS, "uid": "p-2"},
            "spec": {
                "containers": [{"name": "app", "env": [{"name": "DB_PASSWORD", "value": "s3cret"}]}]
            },
        },
    )
    return c


def test_a_forged_reference_to_another_pod_is_not_read() -> None:
    c = cluster()
    refs = (
        OwnerRef("Pod", "payments-0", None, "v1"),
        OwnerRef("Node", "lab-node", None, "v1"),
        OwnerRef("Event", "ev1", None, "v1"),
        OwnerRef("ReplicaSet", "cryptominer-demo-7d4b", "rs-1", "apps/v1"),
        OwnerRef("Deployment", "cryptominer-demo", None, "apps/v1"),
    )
    objects, problems = objects_for_refs(c, NS, refs)
    assert problems == []
    assert "s3cret" not in repr(objects)
    assert [o.get("falcoirNote", "read") for o in objects[:3]] == [
        "owner reference only: not a controller reference: not read"
    ] * 3
    assert [o["metadata"]["name"] for o in objects[3:]] == [
        "cryptominer-demo-7d4b",
        "cryptominer-demo",
    ]
    assert "falcoirNote" not in objects[3] and "falcoirNote" not in objects[4]
    gets = {c[1] for c in c.calls if c[0] == "get"}
    assert gets == {"replicasets", "deployments"}, gets
    assert EVENTS.plural not in gets


def test_a_controller_reference_with_another_uid_or_group_is_not_kept() -> None:
    refs = (
        OwnerRef("ReplicaSet", "cryptominer-demo-7d4b", "not-rs-1", "apps/v1"),
        OwnerRef("Deployment", "cryptominer-demo", None, "evil.example.com/v1"),
    )
    objects, _ = objects_for_refs(cluster(), NS, refs)
    assert all("falcoirNote" in o for o in objects), objects


def test_a_forged_non_controller_owner_is_not_saved_from_the_chain() -> None:
    c = cluster()
    c.add(NETWORK_POLICIES, {"metadata": {"name": "allow-db", "namespace": NS, "uid": "np-1"}})
    pod = {
        "metadata": {
            "name": "p",
            "namespace": NS,
            "ownerReferences": [
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "name": "allow-db",
                    "uid": "np-1",
                    "controller": True,
                }
            ],
        }
    }
    objects, problems = owner_objects(c, pod)
    assert problems == []
    assert objects == [
        {
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-db", "uid": "np-1"},
            "apiVersion": "networking.k8s.io/v1",
            "falcoirNote": "owner reference only: not a controller reference: not read",
        }
    ]
    assert not [x for x in c.calls if x[0] == "get"]
