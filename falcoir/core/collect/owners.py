"""The pod's owner objects (ReplicaSet, Deployment...), for the bundle.

The chain itself comes from :func:`falcoir.core.owners.owner_chain` (the same one
``locate`` reports and ``delete`` reasons about); each owner is then read once more to
save its full object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from falcoir.core.gateway import JSON, RESOURCES_BY_KIND, ClusterGateway, Resource
from falcoir.core.owners import followable, owner_chain
from falcoir.core.target import OwnerRef
from falcoir.errors import ApiNotFound, FalcoirError


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


def placeholder(ref: OwnerRef, why: str) -> JSON:
    return {
        "kind": ref.kind,
        "metadata": {"name": ref.name, "uid": ref.uid},
        "apiVersion": ref.api_version,
        "falcoirNote": f"owner reference only: {why}",
    }


def owner_objects(
    gateway: ClusterGateway,
    pod: JSON,
    *,
    call: Callable[[Callable[[], Any]], Any] = lambda f: f(),
) -> tuple[list[JSON], list[str]]:
    """``(objects, problems)``: each owner from the pod's controller up to the top.
    An owner that cannot be read is kept as its reference (forbidden ones are said in
    ``problems``)."""
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
        kept = keeping.objects.get((ref.kind, ref.name))
        if kept is not None:
            objects.append(kept)
        elif ref.kind not in RESOURCES_BY_KIND:
            # A custom controller (Argo Rollout...): its reference is what we can keep.
            objects.append(placeholder(ref, "a kind falcoir does not read"))
        elif followable(ref) is None:
            objects.append(placeholder(ref, "not a controller reference: not read"))
        else:
            # The chain stopped here: forbidden (in ``problems``), gone, or recreated.
            objects.append(placeholder(ref, "not readable (forbidden, gone or recreated)"))
    return objects, problems


def objects_for_refs(
    gateway: ClusterGateway,
    namespace: str,
    refs: Sequence[OwnerRef],
    *,
    call: Callable[[Callable[[], Any]], Any] = lambda f: f(),
) -> tuple[list[JSON], list[str]]:
    """The objects of an owner chain already known (``Target.owner``, from locate),
    read side by side: one round trip instead of one per level."""
    results: list[JSON | str | None] = [None] * len(refs)

    def read(i: int, ref: OwnerRef) -> None:
        resource = followable(ref)
        if resource is None:
            why = "a kind falcoir does not read" if ref.kind not in RESOURCES_BY_KIND else ""
            results[i] = placeholder(ref, why or "not a controller reference: not read")
            return
        try:
            got = call(lambda: gateway.get(resource, ref.name, namespace))
            uid = (got.get("metadata") or {}).get("uid") if isinstance(got, dict) else None
            if ref.uid and uid and uid != ref.uid:
                got = placeholder(ref, "recreated since (another uid): not read")
            results[i] = got
        except ApiNotFound:
            results[i] = placeholder(ref, "not found: deleted since")
        except FalcoirError as exc:
            results[i] = f"owner {ref.kind}/{ref.name}: {exc.message}"

    threads = [threading.Thread(target=read, args=(i, r), daemon=True) for i, r in enumerate(refs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    objects: list[JSON] = []
    problems: list[str] = []
    for ref, got in zip(refs, results, strict=True):
        if isinstance(got, dict):
            objects.append(got)
        else:
            problems.append(got or f"owner {ref.kind}/{ref.name}: no answer")
            objects.append(placeholder(ref, "could not be read"))
    return objects, problems
