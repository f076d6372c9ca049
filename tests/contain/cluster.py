"""A FakeCluster that behaves like a cluster for containment: NetworkPolicy
enforcement (on or off), a ReplicaSet controller that releases a pod whose labels no
longer match, and a miner pod whose probe tools really reflect what the policies say."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from falcoir.core.contain.policy import pod_labels, selector_matches
from falcoir.core.gateway import (
    DEPLOYMENTS,
    JSON,
    NETWORK_POLICIES,
    PODS,
    REPLICA_SETS,
    Resource,
)
from falcoir.core.target import LocateMethod, OwnerRef, Target
from tests.fakes import FakeCluster

NS = "shop"
DEPLOY = "cryptominer-demo"
RS = "cryptominer-demo-7d9f8c6b5"
POD = "cryptominer-demo-7d9f8c6b5-x2k4p"
OTHER = "cryptominer-demo-7d9f8c6b5-q8w3z"
POOL = ("10.96.0.50", 3333)


@dataclass
class ContainCluster(FakeCluster):
    enforce: bool = True
    tools: tuple[str, ...] = ("timeout", "bash")
    """Binaries the miner image has."""
    connect_log: list[tuple[str, str, int]] = field(default_factory=list)
    """(pod, host, port) of every probe that reached its endpoint."""
    reachable: set[tuple[str, int]] = field(default_factory=lambda: {POOL})
    replacements: int = 0

    def egress_denied(self, namespace: str, pod: str) -> bool:
        if not self.enforce:
            return False
        obj = self.objects.get(("pods", namespace, pod))
        if obj is None:
            return False
        labels = pod_labels(obj)
        for (plural, ns, _), pol in self.objects.items():
            if plural != "networkpolicies" or ns != namespace:
                continue
            spec = pol.get("spec") or {}
            if "Egress" in (spec.get("policyTypes") or []) and selector_matches(
                spec.get("podSelector"), labels
            ):
                return True
        return False

    def install_miner(self, namespace: str, pod: str) -> None:
        def handler(argv: Sequence[str], stdin: bytes | None) -> tuple[bytes, bytes, int | None]:
            tool = argv[0]
            if tool not in self.tools:
                return b"", b"", None
            if tool == "timeout":
                if argv[2] not in self.tools:
                    return b"", b"timeout: failed to run command: No such file\n", 127
                host, port = argv[-2], int(argv[-1])
            elif tool == "python3":
                host, port = argv[-3], int(argv[-2])
            elif (tool == "nc" and "-e" in argv) or tool == "busybox":
                host, port = argv[-4], int(argv[-3])
            else:
                host, port = argv[-2], int(argv[-1])
            if self.egress_denied(namespace, pod) or (host, port) not in self.reachable:
                return b"", f"{host}: connect: Connection timed out\n".encode(), 1
            self.connect_log.append((pod, host, port))
            return b"", b"", 0

        self.on_exec(namespace, pod, None, handler)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JSON | list[JSON],
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JSON:
        out = super().patch(
            resource,
            name,
            patch,
            namespace,
            patch_type=patch_type,
            dry_run=dry_run,
            subresource=subresource,
        )
        if resource is PODS and not dry_run:
            self._replicaset_controller(namespace or "default", name)
        if subresource == "scale" and not dry_run and resource is DEPLOYMENTS:
            self._scale_down(namespace or "default", name)
        return out

    def _replicaset_controller(self, namespace: str, name: str) -> None:
        key = ("pods", namespace, name)
        pod = self.objects[key]
        refs = pod["metadata"].get("ownerReferences") or []
        for ref in refs:
            if ref.get("kind") != "ReplicaSet":
                continue
            rs = self.objects.get(("replicasets", namespace, ref["name"]))
            if rs is None or selector_matches(rs["spec"]["selector"], pod_labels(pod)):
                continue
            pod["metadata"]["ownerReferences"] = [r for r in refs if r is not ref]
            self.replacements += 1
            replacement = copy.deepcopy(rs["spec"]["template"])
            replacement["metadata"]["name"] = f"{ref['name']}-new{self.replacements}"
            replacement["metadata"]["namespace"] = namespace
            replacement["metadata"]["ownerReferences"] = [ref]
            replacement["metadata"].pop("uid", None)
            self.add(PODS, replacement)

    def _scale_down(self, namespace: str, deployment: str) -> None:
        for plural, ns, pname in list(self.objects):
            if plural == "pods" and ns == namespace and pname.startswith(deployment):
                del self.objects[(plural, ns, pname)]


def pod_json(name: str, *, labels: dict[str, str] | None = None, owner: bool = True) -> JSON:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "labels": dict(labels or {"app": DEPLOY, "pod-template-hash": "7d9f8c6b5"}),
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": RS,
                "uid": "rs-uid",
                "controller": True,
            }
        ]
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "miner", "image": "busybox"}], "nodeName": "lab-node"},
        "status": {"phase": "Running", "podIP": "10.244.0.7"},
    }


def make_cluster(**kwargs: Any) -> ContainCluster:
    c = ContainCluster(**kwargs)
    selector = {"matchLabels": {"app": DEPLOY, "pod-template-hash": "7d9f8c6b5"}}
    c.add(
        DEPLOYMENTS,
        {
            "metadata": {"name": DEPLOY, "namespace": NS, "uid": "deploy-uid"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": DEPLOY}}},
        },
    )
    c.add(
        REPLICA_SETS,
        {
            "metadata": {
                "name": RS,
                "namespace": NS,
                "uid": "rs-uid",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": DEPLOY,
                        "uid": "deploy-uid",
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": 2,
                "selector": selector,
                "template": {"metadata": {"labels": dict(selector["matchLabels"])}, "spec": {}},
            },
        },
    )
    c.add(PODS, pod_json(POD))
    c.add(PODS, pod_json(OTHER))
    c.install_miner(NS, POD)
    return c


def target(cluster: FakeCluster, name: str = POD, *, container: str | None = "miner") -> Target:
    pod = cluster.get(PODS, name, NS)
    cluster.calls.clear()
    return Target(
        namespace=NS,
        pod=name,
        container=container,
        method=LocateMethod.POD_FLAG,
        pod_uid=pod["metadata"]["uid"],
        owner=(OwnerRef("ReplicaSet", RS, "rs-uid"), OwnerRef("Deployment", DEPLOY, "deploy-uid")),
    )


def policies(cluster: FakeCluster) -> list[JSON]:
    return [o for (p, _, _), o in cluster.objects.items() if p == NETWORK_POLICIES.plural]
