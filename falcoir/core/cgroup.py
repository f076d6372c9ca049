"""Reading ``/proc/<pid>/cgroup``: which pod and container a host process belongs to.

The kubelet names a pod's cgroup after the pod UID and the container runtime names the
container's cgroup after the container ID, so the cgroup path of a host process says
which pod and container it runs in. The shapes differ by cgroup driver, runtime, QoS
class and cgroup version; all of these are recognised::

    cgroupfs   /kubepods/besteffort/pod<uid>/<64 hex>               (containerd, Docker)
               /kubepods/burstable/pod<uid>/crio-<64 hex>           (CRI-O)
               /kubepods/pod<uid>/<64 hex>                          (Guaranteed QoS)
    systemd    /kubepods.slice/kubepods-burstable.slice/
                   kubepods-burstable-pod<uid with _>.slice/cri-containerd-<64 hex>.scope
               .../crio-<64 hex>.scope, .../docker-<64 hex>.scope
    mixed      /system.slice/containerd.service/
                   kubepods-burstable-pod<uid with _>.slice:cri-containerd:<64 hex>
    nested     /kubelet.slice/kubelet-kubepods.slice/...  (kind and other nested nodes)

cgroup v1 lines are ``N:controllers:/path``, v2 lines ``0::/path``. Static pods'
cgroups carry the config hash (32 hex) instead of a dashed UID.

Everything here is pure parsing of hostile text: nothing is trusted, nothing executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32}"
_POD_SEGMENT = re.compile(rf"^(?:[a-z0-9_.-]*-)?pod(?P<uid>{_UID})(?:\.slice)?$")
_CONTAINER_SEGMENT = re.compile(
    r"^(?:(?P<prefix>cri-containerd|containerd|crio-conmon|crio|cri-o|docker|libpod)-)?"
    r"(?P<id>[0-9a-f]{64})(?:\.scope)?$"
)
_LINE = re.compile(r"^(?P<num>\d+):(?P<controllers>[^:]*):(?P<path>/.*)$")

_RUNTIME_BY_PREFIX = {
    "cri-containerd": "containerd",
    "containerd": "containerd",
    "crio": "cri-o",
    "cri-o": "cri-o",
    "crio-conmon": "cri-o",
    "docker": "docker",
    "libpod": "podman",
}


@dataclass(frozen=True)
class CgroupInfo:
    """What one cgroup path says about the process in it."""

    path: str
    pod_uid: str | None = None
    """The pod UID with dashes (or a static pod's 32-hex config hash), lower case."""
    container_id: str | None = None
    """64 hex, lower case, no scheme."""
    runtime: str | None = None
    """``containerd``, ``cri-o``, ``docker`` when the path names it (cgroupfs paths of
    containerd and Docker look alike and leave it ``None``)."""
    qos: str | None = None
    """``guaranteed``, ``burstable`` or ``besteffort`` for kubepods paths."""
    driver: str | None = None
    """``systemd`` or ``cgroupfs``."""
    conmon: bool = False
    """The path is CRI-O's ``conmon`` monitor for the container, not the container."""

    @property
    def in_pod(self) -> bool:
        return self.pod_uid is not None

    @property
    def is_container(self) -> bool:
        return self.container_id is not None and not self.conmon


@dataclass(frozen=True)
class ProcCgroup:
    """A parsed ``/proc/<pid>/cgroup`` file."""

    version: int
    """2 for a pure cgroup v2 host (only a ``0::`` line), else 1 (v1 or hybrid)."""
    paths: tuple[tuple[str, str], ...]
    """``(controllers, path)`` for each line, as read."""
    best: CgroupInfo | None
    """The most informative path (pod UID and container ID first)."""

    @property
    def pod_uid(self) -> str | None:
        return self.best.pod_uid if self.best else None

    @property
    def container_id(self) -> str | None:
        return self.best.container_id if self.best else None


def normalize_pod_uid(text: str) -> str:
    """A UID from a systemd slice (underscores) or a path, in the API's dashed form."""
    return text.strip().lower().replace("_", "-")


def parse_cgroup_path(path: str) -> CgroupInfo:
    """Pod UID, container ID, runtime, QoS class and driver named by one cgroup path."""
    segments = [s for s in path.strip().split("/") if s]
    pod_uid: str | None = None
    container_id: str | None = None
    runtime: str | None = None
    qos: str | None = None
    driver: str | None = None
    conmon = False
    kubepods = False
    for seg in segments:
        low = seg.lower()
        # containerd with the systemd driver under a cgroupfs-like parent:
        # "kubepods-burstable-pod<uid>.slice:cri-containerd:<id>"
        parts = low.split(":")
        if len(parts) == 3 and container_id is None:
            slice_part, prefix, cid = parts
            m_pod = _POD_SEGMENT.match(slice_part)
            if m_pod and re.fullmatch(r"[0-9a-f]{64}", cid):
                pod_uid = normalize_pod_uid(m_pod.group("uid"))
                container_id = cid
                runtime = _RUNTIME_BY_PREFIX.get(prefix)
                driver = "systemd"
                kubepods = kubepods or "kubepods" in slice_part
                qos = qos or _qos_of(slice_part)
                continue
        if kubepods and pod_uid is None and low in ("besteffort", "burstable"):
            qos = low  # cgroupfs: /kubepods/<qos>/pod<uid>/...
            continue
        if "kubepods" in low:
            kubepods = True
            if low.endswith(".slice"):
                driver = "systemd"
            qos = qos or _qos_of(low)
        m_pod = _POD_SEGMENT.match(low)
        if m_pod and pod_uid is None:
            pod_uid = normalize_pod_uid(m_pod.group("uid"))
            if low.endswith(".slice"):
                driver = "systemd"
            continue
        m_ctr = _CONTAINER_SEGMENT.match(low)
        if m_ctr and container_id is None:
            container_id = m_ctr.group("id")
            prefix = m_ctr.group("prefix")
            if prefix:
                runtime = _RUNTIME_BY_PREFIX.get(prefix)
                conmon = prefix == "crio-conmon"
            if low.endswith(".scope"):
                driver = "systemd"
    if kubepods and driver is None:
        driver = "cgroupfs"
    if pod_uid is not None and qos is None:
        qos = "guaranteed"
    if not kubepods and pod_uid is None:
        qos = None
    return CgroupInfo(
        path=path,
        pod_uid=pod_uid,
        container_id=container_id,
        runtime=runtime,
        qos=qos,
        driver=driver,
        conmon=conmon,
    )


def _qos_of(segment: str) -> str | None:
    if "besteffort" in segment:
        return "besteffort"
    if "burstable" in segment:
        return "burstable"
    return None


def _score(info: CgroupInfo) -> int:
    return (
        (4 if info.pod_uid else 0)
        + (2 if info.container_id else 0)
        + (1 if not info.conmon and info.container_id else 0)
    )


def parse_proc_cgroup(text: str) -> ProcCgroup:
    """Parse a ``/proc/<pid>/cgroup`` file (v1, v2 or hybrid).

    Lines that are not cgroup lines are ignored. The best path is the first one that
    names both a pod UID and a container ID, else the most informative one.
    """
    paths: list[tuple[str, str]] = []
    numbers: set[str] = set()
    best: CgroupInfo | None = None
    for raw in text.splitlines():
        m = _LINE.match(raw.strip())
        if not m:
            continue
        numbers.add(m.group("num"))
        paths.append((m.group("controllers"), m.group("path")))
        info = parse_cgroup_path(m.group("path"))
        if _score(info) and (best is None or _score(info) > _score(best)):
            best = info
    version = 2 if numbers == {"0"} and all(c == "" for c, _ in paths) else 1
    return ProcCgroup(version=version, paths=tuple(paths), best=best)


def is_cgroup_line(line: str) -> bool:
    """True for a ``N:controllers:/path`` line."""
    return bool(_LINE.match(line.strip()))
