"""Pod JSON helpers: container statuses, container IDs, picking a container."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from falcoir.core.gateway import JSON

_HEX_ID = re.compile(r"^[0-9a-f]{12,64}$")
SCHEMES = ("containerd", "cri-o", "docker")


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    kind: str
    """``init``, ``regular`` or ``ephemeral``."""
    image: str | None
    container_id: str | None
    """Without the scheme, lower case."""
    runtime: str | None
    running: bool


def split_container_id(value: str | None) -> tuple[str | None, str | None]:
    """``containerd://abc...`` -> (``abc...``, ``containerd``)."""
    if not value:
        return None, None
    scheme, sep, rest = value.partition("://")
    if sep:
        return rest.strip().lower() or None, scheme.strip().lower() or None
    return value.strip().lower() or None, None


def normalize_container_id(value: str | None) -> str | None:
    """A Falco ``container.id`` (12 hex), ``container.full_id`` (64 hex), or a
    ``scheme://id`` as a lower-case hex ID; ``None`` for ``host`` or anything else."""
    cid, _ = split_container_id(value)
    if cid is None or not _HEX_ID.fullmatch(cid):
        return None
    return cid


def iter_containers(pod: JSON) -> Iterator[ContainerInfo]:
    """Every container of the pod (init, regular, ephemeral) with its status."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    groups = (
        ("init", "initContainers", "initContainerStatuses"),
        ("regular", "containers", "containerStatuses"),
        ("ephemeral", "ephemeralContainers", "ephemeralContainerStatuses"),
    )
    for kind, spec_key, status_key in groups:
        statuses = {s.get("name"): s for s in (status.get(status_key) or []) if isinstance(s, dict)}
        names_seen = set()
        for c in spec.get(spec_key) or []:
            if not isinstance(c, dict) or not c.get("name"):
                continue
            names_seen.add(c["name"])
            yield _info(kind, c["name"], c.get("image"), statuses.get(c["name"]))
        for name, s in statuses.items():
            if name and name not in names_seen:
                yield _info(kind, str(name), s.get("image"), s)


def _info(kind: str, name: str, image: Any, st: JSON | None) -> ContainerInfo:
    cid, runtime = split_container_id((st or {}).get("containerID"))
    running = bool(((st or {}).get("state") or {}).get("running") is not None) if st else False
    return ContainerInfo(
        name=name,
        kind=kind,
        image=str(image) if image else None,
        container_id=cid,
        runtime=runtime,
        running=running,
    )


def find_container_by_id(pod: JSON, cid: str) -> ContainerInfo | None:
    """The container whose runtime ID starts with ``cid`` (12 hex prefix or full)."""
    for c in iter_containers(pod):
        if c.container_id and c.container_id.startswith(cid):
            return c
    return None


def find_container_by_name(pod: JSON, name: str) -> ContainerInfo | None:
    for c in iter_containers(pod):
        if c.name == name:
            return c
    return None


def default_container(pod: JSON) -> tuple[ContainerInfo | None, str | None]:
    """The container to use when none is named, and a note when that was a guess:
    the only regular container; else the ``kubectl.kubernetes.io/default-container``
    annotation; else the first regular container."""
    regular = [c for c in iter_containers(pod) if c.kind == "regular"]
    if not regular:
        return None, None
    if len(regular) == 1:
        return regular[0], None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    wanted = annotations.get("kubectl.kubernetes.io/default-container")
    for c in regular:
        if c.name == wanted:
            return c, f"container {c.name} chosen by the default-container annotation"
    names = ", ".join(c.name for c in regular)
    return regular[0], f"pod has containers {names}; chose the first, {regular[0].name}"


def pod_key(pod: JSON) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def pod_uid(pod: JSON) -> str | None:
    uid = (pod.get("metadata") or {}).get("uid")
    return str(uid) if uid else None


def pod_node(pod: JSON) -> str | None:
    node = (pod.get("spec") or {}).get("nodeName")
    return str(node) if node else None


def pod_phase(pod: JSON) -> str | None:
    phase = (pod.get("status") or {}).get("phase")
    return str(phase) if phase else None


def matches_uid(pod: JSON, uid: str) -> bool:
    """The pod's UID is ``uid``, or (static pods) its config hash is."""
    meta = pod.get("metadata") or {}
    if str(meta.get("uid") or "").lower() == uid:
        return True
    annotations = meta.get("annotations") or {}
    return str(annotations.get("kubernetes.io/config.hash") or "").lower() == uid.replace("-", "")
