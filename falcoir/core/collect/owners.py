"""The pod's owner objects (ReplicaSet, Deployment...), for the bundle.

The chain itself comes from :func:`falcoir.core.owners.owner_chain` (the same one
``locate`` reports and ``delete`` reasons about); each owner is then read once more to
save its full object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcoir.core.gateway import JSON, RESOURCES_BY_KIND, ClusterGateway, Resource
from falcoir.core.owners import owner_chain
from falcoir.errors import FalcoirError


def owner_objects(
    gateway: ClusterGateway,
    pod: JSON,
    *,
    call: Callable[[Callable[[], Any]], Any] = lambda f: f(),
) -> tuple[list[JSON], list[str]]:
    """``(objects, problems)``: each owner from the pod's controller up to the top.
    An owner that cannot be read is kept as its reference, and said in ``problems``."""
    namespace = (pod.get("metadata") or {}).get("namespace")
    problems: list[str] = []
    try:
        chain = call(lambda: owner_chain(gateway, pod, on_forbidden=problems.append))
    except FalcoirError as exc:
        return [], [exc.message]
    problems = [f"forbidden: {p}" for p in problems]
    objects: list[JSON] = []
    for ref in chain:
        resource = RESOURCES_BY_KIND.get(ref.kind)
        reference = {
            "kind": ref.kind,
            "name": ref.name,
            "uid": ref.uid,
            "apiVersion": ref.api_version,
        }
        if resource is None:
            problems.append(f"owner {ref.kind}/{ref.name} is a kind falcoir does not read")
            objects.append(
                {"kind": ref.kind, "metadata": {"name": ref.name}, "ownerReference": reference}
            )
            continue

        def fetch(r: Resource = resource, n: str = ref.name) -> JSON:
            return gateway.get(r, n, namespace if r.namespaced else None)

        try:
            objects.append(call(fetch))
        except FalcoirError as exc:
            problems.append(f"owner {ref.kind}/{ref.name}: {exc.message}")
            objects.append(
                {"kind": ref.kind, "metadata": {"name": ref.name}, "ownerReference": reference}
            )
    return objects, problems
