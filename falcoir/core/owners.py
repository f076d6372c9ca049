"""The owner chain of a pod: its direct owner up to the top controller.

``ReplicaSet -> Deployment``, ``Job -> CronJob``, ``StatefulSet``, ``DaemonSet``... Each
level is read from the API (one ``get`` per level) because only the owner object knows
its own owner. Used by locate (to report it), collect (to save the owners' YAML) and
delete (to know what would bring the pod back).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from falcoir.core.gateway import JSON, RESOURCES_BY_KIND, ClusterGateway, Resource
from falcoir.core.target import OwnerRef
from falcoir.errors import ApiNotFound, Forbidden

MAX_DEPTH = 8
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
CONTROLLER_KINDS = frozenset(
    {"ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "ReplicationController", "Job"}
    | {"CronJob"}
)
"""Kinds that control pods: the only owners whose objects are ever read."""


def followable(ref: OwnerRef) -> Resource | None:
    """The resource to read for this owner reference, or None when it must not be read.

    The pod's author writes its ``ownerReferences``: a forged one must not pull another
    object (a NetworkPolicy, an Event, a node, another pod) into the chain or the bundle.
    Only namespaced controller kinds of their own API group, with a valid name, are read.
    """
    resource = RESOURCES_BY_KIND.get(ref.kind)
    if resource is None or ref.kind not in CONTROLLER_KINDS or not resource.namespaced:
        return None
    if not _NAME_RE.fullmatch(ref.name):
        return None
    group = (ref.api_version or "").split("/")[0] if "/" in (ref.api_version or "") else ""
    expected = resource.group_version.split("/")[0] if "/" in resource.group_version else ""
    if ref.api_version and group != expected:
        return None
    return resource


def controller_ref(obj: Mapping[str, Any], *, strict: bool = False) -> OwnerRef | None:
    """The object's controlling owner (``controller: true``), else its first owner;
    with ``strict``, only the controlling owner (the one that adopts and replaces it)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    refs = [r for r in refs if isinstance(r, dict) and r.get("kind") and r.get("name")]
    if strict:
        refs = [r for r in refs if r.get("controller") is True]
    if not refs:
        return None
    chosen = next((r for r in refs if r.get("controller") is True), refs[0])
    return OwnerRef(
        kind=str(chosen["kind"]),
        name=str(chosen["name"]),
        uid=str(chosen["uid"]) if chosen.get("uid") else None,
        api_version=str(chosen["apiVersion"]) if chosen.get("apiVersion") else None,
    )


def owner_chain(
    gateway: ClusterGateway,
    pod_json: JSON,
    *,
    on_forbidden: Callable[[str], None] | None = None,
) -> tuple[OwnerRef, ...]:
    """The pod's direct owner up to the top controller (empty for a bare pod).

    An owner that is gone (404) or of a kind falcoir does not read (a custom resource)
    ends the chain at that reference. A ``Forbidden`` read raises, unless
    ``on_forbidden`` is given: then the chain stops there and ``on_forbidden`` receives
    the missing permission (``get replicasets -n prod``).
    """
    namespace = (pod_json.get("metadata") or {}).get("namespace")
    chain: list[OwnerRef] = []
    seen: set[tuple[str, str]] = set()
    current: Mapping[str, Any] = pod_json
    while len(chain) < MAX_DEPTH:
        ref = controller_ref(current)
        if ref is None or (ref.kind, ref.name) in seen:
            break
        seen.add((ref.kind, ref.name))
        chain.append(ref)
        resource = followable(ref)
        if resource is None:
            break
        try:
            owner = gateway.get(resource, ref.name, namespace)
        except ApiNotFound:
            break
        except Forbidden as exc:
            if on_forbidden is None:
                raise
            missing = exc.missing[0] if exc.missing else f"get {resource.plural} -n {namespace}"
            on_forbidden(missing)
            break
        uid = (owner.get("metadata") or {}).get("uid")
        if ref.uid and uid and uid != ref.uid:
            # Same name, different object: the owner was recreated; stop here.
            break
        current = owner
    return tuple(chain)
