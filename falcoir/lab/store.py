"""The lab's object store: resource types, objects, resourceVersions and watch events."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def stored(self) -> bool:
        return "list" in self.verbs


_CRUD = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status", "finalize"),
    ),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), _CRUD, ("status",)),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        _CRUD,
        (
            "status",
            "log",
            "exec",
            "attach",
            "portforward",
            "ephemeralcontainers",
            "eviction",
            "binding",
        ),
        ("all",),
    ),
    ResourceType("", "v1", "events", "Event", True, ("ev",), _CRUD),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), _CRUD),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",), _CRUD),
    ResourceType("", "v1", "secrets", "Secret", True, (), _CRUD),
    ResourceType("", "v1", "services", "Service", True, ("svc",), _CRUD, ("status",), ("all",)),
    ResourceType(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        True,
        ("rc",),
        _CRUD,
        ("status", "scale"),
        ("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        _CRUD,
        ("status", "scale"),
        ("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        _CRUD,
        ("status", "scale"),
        ("all",),
    ),
    ResourceType(
        "apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _CRUD, ("status",), ("all",)
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        ("sts",),
        _CRUD,
        ("status", "scale"),
        ("all",),
    ),
    ResourceType("batch", "v1", "jobs", "Job", True, (), _CRUD, ("status",), ("all",)),
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _CRUD, ("status",), ("all",)),
    ResourceType(
        "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",), _CRUD
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        (),
        ("create",),
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        (),
        ("create",),
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        False,
        (),
        ("create",),
    ),
)

GROUP_VERSIONS: tuple[str, ...] = (
    "apps/v1",
    "batch/v1",
    "networking.k8s.io/v1",
    "authorization.k8s.io/v1",
    "authentication.k8s.io/v1",
)

BY_PATH: dict[tuple[str, str], ResourceType] = {(r.api_version, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, ResourceType] = {r.kind: r for r in RESOURCES}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WatchEvent:
    rv: int
    type: str
    rtype: ResourceType
    obj: JSON


@dataclass
class Watcher:
    rtype: ResourceType
    namespace: str | None
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


class Store:
    """Objects keyed by resource type and (namespace, name); every write bumps the
    cluster-wide resourceVersion and is offered to watchers."""

    HISTORY = 20000

    def __init__(self) -> None:
        self._objects: dict[ResourceType, dict[tuple[str, str], JSON]] = {
            r: {} for r in RESOURCES if r.stored
        }
        self.rv = 1000
        self.history: deque[WatchEvent] = deque(maxlen=self.HISTORY)
        self.watchers: list[Watcher] = []

    # reads -------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str, name: str) -> JSON | None:
        return self._objects[rtype].get((namespace if rtype.namespaced else "", name))

    def items(self, rtype: ResourceType, namespace: str | None = None) -> Iterator[JSON]:
        table = self._objects[rtype]
        if namespace is None or not rtype.namespaced:
            yield from table.values()
        else:
            for (ns, _), obj in table.items():
                if ns == namespace:
                    yield obj

    def count(self, rtype: ResourceType) -> int:
        return len(self._objects[rtype])

    # writes ------------------------------------------------------------------------
    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _key(self, rtype: ResourceType, obj: JSON) -> tuple[str, str]:
        md = obj["metadata"]
        return (md.get("namespace", "") if rtype.namespaced else "", md["name"])

    def put(self, rtype: ResourceType, obj: JSON, *, created: bool) -> JSON:
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._objects[rtype][self._key(rtype, obj)] = obj
        self._emit(WatchEvent(rv, "ADDED" if created else "MODIFIED", rtype, obj))
        return obj

    def remove(self, rtype: ResourceType, obj: JSON) -> JSON | None:
        gone = self._objects[rtype].pop(self._key(rtype, obj), None)
        if gone is None:
            return None
        gone = copy.deepcopy(gone)
        rv = self.next_rv()
        gone["metadata"]["resourceVersion"] = str(rv)
        self._emit(WatchEvent(rv, "DELETED", rtype, gone))
        return gone

    def _emit(self, ev: WatchEvent) -> None:
        self.history.append(ev)
        for w in self.watchers:
            if w.rtype is ev.rtype and (
                w.namespace is None or ev.obj["metadata"].get("namespace") == w.namespace
            ):
                w.queue.put_nowait(ev)

    def events_since(self, rtype: ResourceType, rv: int) -> list[WatchEvent] | None:
        """Events after ``rv`` (``None`` when ``rv`` is older than the history kept)."""
        if self.history and rv < self.history[0].rv - 1 and rv < self.rv:
            return None
        return [e for e in self.history if e.rv > rv and e.rtype is rtype]


def new_uid() -> str:
    return str(uuid.uuid4())
