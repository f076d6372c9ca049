"""The pod's owner objects (ReplicaSet, Deployment...), for the bundle.

Uses ``falcoir.core.owners.owner_chain`` (the locate work) when it is there; until then
follows the controller ``ownerReferences`` itself, bounded in depth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcoir.core.gateway import JSON, RESOURCES_BY_KIND, ClusterGateway, Resource
from falcoir.errors import FalcoirError

MAX_DEPTH = 8


def _controller_ref(obj: JSON) -> JSON | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return dict(ref)
    return dict(refs[0]) if refs else None


def owner_objects(
    gateway: ClusterGateway,
    pod: JSON,
    *,
    call: Callable[[Callable[[], Any]], Any] = lambda f: f(),
) -> tuple[list[JSON], list[str]]:
    """``(objects, problems)``: each owner from the pod's controller up to the top."""
    namespace = (pod.get("metadata") or {}).get("namespace")
    objects: list[JSON] = []
    problems: list[str] = []
    current = pod
    for _ in range(MAX_DEPTH):
        ref = _controller_ref(current)
        if ref is None:
            break
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        resource = RESOURCES_BY_KIND.get(kind)
        if resource is None:
            problems.append(f"owner {kind}/{name} is a kind falcoir does not read")
            objects.append({"kind": kind, "metadata": {"name": name}, "ownerReference": ref})
            break

        def fetch(r: Resource = resource, n: str = name) -> JSON:
            return gateway.get(r, n, namespace if r.namespaced else None)

        try:
            obj = call(fetch)
        except FalcoirError as exc:
            problems.append(f"owner {kind}/{name}: {exc.message}")
            break
        objects.append(obj)
        current = obj
    return objects, problems
