"""The located target: which pod, container and process an alert is about."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class LocateMethod(StrEnum):
    """How the target was found (stable JSON values)."""

    K8S_FIELDS = "k8s-fields"
    CONTAINER_ID = "container-id"
    HOST_PID = "host-pid"
    SCAN = "scan"
    POD_FLAG = "pod-flag"


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    name: str
    uid: str | None = None
    api_version: str | None = None


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> PodRef:
        """``NS/NAME`` (or ``NAME``, in namespace ``default``). Raises ``ValueError``."""
        ns, sep, name = text.partition("/")
        if not sep:
            ns, name = "default", text
        if not ns or not name or "/" in name:
            raise ValueError(f"expected NAMESPACE/POD, got {text!r}")
        return cls(ns, name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Target:
    """A pod and container, and the process in it when known.

    JSON keys (``to_dict``) are a stable contract: add freely, never rename.
    """

    namespace: str
    pod: str
    container: str | None
    method: LocateMethod
    node: str | None = None
    pod_uid: str | None = None
    container_id: str | None = None
    """Full runtime ID without the scheme (64 hex for containerd), when known."""
    container_runtime: str | None = None
    """``containerd``, ``cri-o`` or ``docker``."""
    vpid: int | None = None
    """The suspect process's pid inside the container."""
    host_pid: int | None = None
    owner: tuple[OwnerRef, ...] = ()
    """Owner chain from the pod's direct owner up to the top controller."""
    image: str | None = None
    notes: tuple[str, ...] = field(default=())
    """Plain-language notes on how the target was found, and caveats."""
    replaced_by: str | None = None
    """When the alert's pod is gone and its owner made a replacement: its name."""

    @property
    def ref(self) -> PodRef:
        return PodRef(self.namespace, self.pod)

    @property
    def top_owner(self) -> OwnerRef | None:
        return self.owner[-1] if self.owner else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "pod": self.pod,
            "container": self.container,
            "node": self.node,
            "pod_uid": self.pod_uid,
            "container_id": self.container_id,
            "container_runtime": self.container_runtime,
            "vpid": self.vpid,
            "host_pid": self.host_pid,
            "method": self.method.value,
            "owner": [
                {"kind": o.kind, "name": o.name, "uid": o.uid, "api_version": o.api_version}
                for o in self.owner
            ],
            "image": self.image,
            "notes": list(self.notes),
            "replaced_by": self.replaced_by,
        }
