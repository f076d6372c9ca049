"""A generated cluster for scale tests and benchmarks: virtual nodes, namespaces,
Deployments with their ReplicaSets and pods (pods spread over the virtual nodes)."""

from __future__ import annotations

import random
import uuid
from typing import Any

JSON = dict[str, Any]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_APPS = ("web", "api", "worker", "cache", "queue", "auth", "billing", "search", "cron", "proxy")
_IMAGES = ("nginx:1.27", "redis:7.4", "python:3.12-slim", "node:22-alpine", "busybox:1.36")


def generate_cluster(
    *, nodes: int = 10, namespaces: int = 10, deployments: int = 0, pods: int = 1000, seed: int = 0
) -> list[JSON]:
    """Objects for :meth:`LabServer.load`: ``nodes`` virtual nodes (``lab-vnode-NNN``),
    ``pods`` pods owned by ReplicaSets owned by Deployments (``deployments`` of them,
    default one per 5 pods), round-robin over the virtual nodes."""
    rng = random.Random(seed)  # noqa: S311 - test data
    nodes = max(1, nodes)
    deployments = deployments or max(1, pods // 5)
    out: list[JSON] = [
        {"kind": "Node", "apiVersion": "v1", "metadata": {"name": f"lab-vnode-{i:03d}"}}
        for i in range(1, nodes + 1)
    ]
    ns_names = [f"gen-{i:03d}" for i in range(max(1, namespaces))]
    out += [{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": n}} for n in ns_names]

    def suffix(n: int) -> str:
        return "".join(rng.choice(_ALPHABET) for _ in range(n))

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    per = [pods // deployments + (1 if i < pods % deployments else 0) for i in range(deployments)]
    k = 0
    for d in range(deployments):
        ns = ns_names[d % len(ns_names)]
        app = f"{_APPS[d % len(_APPS)]}-{d:04d}"
        image = _IMAGES[d % len(_IMAGES)]
        labels = {"app": app, "tier": _APPS[d % len(_APPS)]}
        h = suffix(10)
        tmpl: JSON = {
            "metadata": {"labels": {**labels, "pod-template-hash": h}},
            "spec": {"containers": [{"name": "main", "image": image}]},
        }
        dep_uid, rs_uid = uid(), uid()
        out.append(
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": app, "namespace": ns, "labels": labels, "uid": dep_uid},
                "spec": {
                    "replicas": per[d],
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": tmpl["spec"]},
                    "paused": True,
                },
            }
        )
        rs_name = f"{app}-{h}"
        out.append(
            {
                "kind": "ReplicaSet",
                "apiVersion": "apps/v1",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": tmpl["metadata"]["labels"],
                    "uid": rs_uid,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": app,
                            "uid": dep_uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": per[d],
                    "selector": {"matchLabels": tmpl["metadata"]["labels"]},
                    "template": tmpl,
                },
            }
        )
        for _ in range(per[d]):
            k += 1
            out.append(
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": f"{rs_name}-{suffix(5)}",
                        "namespace": ns,
                        "labels": tmpl["metadata"]["labels"],
                        "uid": uid(),
                        "ownerReferences": [
                            {
                                "apiVersion": "apps/v1",
                                "kind": "ReplicaSet",
                                "name": rs_name,
                                "uid": rs_uid,
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": {**tmpl["spec"], "nodeName": f"lab-vnode-{(k % nodes) + 1:03d}"},
                }
            )
    return out
