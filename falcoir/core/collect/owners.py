"""The pod's owner objects (ReplicaSet, Deployment...), for the bundle.

The chain itself comes from :func:`falcoir.core.owners.owner_chain` (the same one
``locate`` reports and ``delete`` reasons about); each owner is then read once more to
save its full object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from falcoir.core.gateway import JSON, RESOURCES_BY_KIND, ClusterGateway, Resource
from falcoir.core.owners import owner_chain
from falcoir.errors import FalcoirError


class _Keeping:
    """A gateway whose ``get`` keeps what it read: the owner chain reads each owner
    once, and the bundle saves those same objects (no second round trip)."""

    def __init__(self, gateway: ClusterGateway) -> None:
        self._gateway = gateway
        self.objects: dict[tuple[str, str], JSON] = {}

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        obj = self._gateway.get(resource, name, namespace)
        self.objects[(resource.kind, name)] = obj
        return obj

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._gateway, attr)


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
    keeping = _Keeping(gateway)
    try:
        chain = call(
            lambda: owner_chain(cast(ClusterGateway, keeping), pod, on_forbidden=problems.append)
        )
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

        kept = keeping.objects.get((ref.kind, ref.name))
        if kept is not None:
            objects.append(kept)
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
