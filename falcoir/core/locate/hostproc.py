"""Reading a host process's ``/proc`` entries on a node, through a pod that sees the
host's ``/proc``: a Falco DaemonSet pod (no new privileged pod needed), or, only when
the user allows it, a short-lived node debug pod.

Commands are argv lists with the pid validated as a positive int first; nothing from
an alert ever reaches a shell.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from falcoir.core.gateway import JSON, PODS, ClusterGateway, ExecResult
from falcoir.core.locate.options import DEFAULT_FALCO_SELECTORS, LocateOptions
from falcoir.core.locate.pods import iter_containers, pod_node, pod_phase
from falcoir.core.locate.procfs import ProcStatus, parse_cmdline, parse_status
from falcoir.errors import ApiNotFound, FalcoirError, Forbidden, InputError

if TYPE_CHECKING:
    # imported where /proc is read (after locate's first answer)
    from falcoir.core.cgroup import ProcCgroup

READ_TIMEOUT = 15.0
READ_MAX_BYTES = 256 * 1024
DEBUG_POD_NAMESPACE = "default"
DEBUG_POD_LABEL = "falcoir.io/node-debug"
DEBUG_POD_WAIT_SECONDS = 60.0
DEBUG_POD_LIFETIME_SECONDS = 300


@dataclass(frozen=True)
class ProcReader:
    """A pod that can read the node's host ``/proc``."""

    namespace: str
    pod: str
    container: str | None
    node: str
    host_proc: str

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass(frozen=True)
class ProcRead:
    """What ``/proc/<pid>`` on a node said (or why it could not be read)."""

    reader: ProcReader
    pid: int
    status: ProcStatus | None = None
    cgroup: ProcCgroup | None = None
    argv: tuple[str, ...] = ()
    problem: str | None = None
    """Why nothing could be read (``None`` when ``status`` is set)."""
    absent: bool = False
    """The reader works but there is no such pid on the node."""

    @property
    def ok(self) -> bool:
        return self.status is not None


def validate_host_proc(path: str) -> str:
    """The host /proc mount path: absolute, plain characters, no ``..``."""
    p = path.rstrip("/") or "/"
    if (
        not p.startswith("/")
        or ".." in p.split("/")
        or any(not (ch.isalnum() or ch in "/._-") for ch in p)
    ):
        raise InputError(f"--host-proc must be a plain absolute path, got {path!r}")
    return p


def falco_container(pod: JSON) -> str | None:
    """The Falco container in a Falco pod: ``falco`` if present, else the first."""
    regular = [c for c in iter_containers(pod) if c.kind == "regular"]
    for c in regular:
        if c.name == "falco":
            return c.name
    return regular[0].name if regular else None


def _falco_running(pod: JSON) -> bool:
    """Phase Running and its Falco container running (not crash-looping)."""
    if pod_phase(pod) != "Running" or not pod_node(pod):
        return False
    name = falco_container(pod)
    return any(c.name == name and c.running for c in iter_containers(pod))


def find_falco_pods(
    gateway: ClusterGateway, options: LocateOptions, node: str | None
) -> tuple[list[JSON], str]:
    """Running Falco pods (on ``node`` when given) and the selector that found them."""
    selectors = (options.falco_selector,) if options.falco_selector else DEFAULT_FALCO_SELECTORS
    field_selector = f"spec.nodeName={node}" if node else None
    last = selectors[-1]
    for sel in selectors:
        try:
            pods = gateway.list(
                PODS, options.falco_namespace, label_selector=sel, field_selector=field_selector
            )
        except Forbidden as exc:
            if options.falco_namespace:
                raise
            raise Forbidden(
                exc.message,
                missing=exc.missing,
                status=exc.status,
                reason=exc.reason,
                hint="allow listing pods in all namespaces, or give --falco-namespace NS "
                "(where the Falco pods run) to look only there",
            ) from exc
        if pods:
            return [p for p in pods if _falco_running(p)], sel
        last = sel
    return [], last


def reader_for(pod: JSON, host_proc: str) -> ProcReader:
    meta = pod.get("metadata") or {}
    return ProcReader(
        namespace=str(meta.get("namespace")),
        pod=str(meta.get("name")),
        container=falco_container(pod),
        node=pod_node(pod) or "?",
        host_proc=host_proc,
    )


def _split_probe_status_cgroup(text: str) -> tuple[str, str, str]:
    """Split ``cat 1/cgroup PID/status PID/cgroup`` output into its three files.

    All three are kernel-made: cgroup lines are ``N:ctrls:/path``, status lines
    ``Key:<TAB>value`` (never starting with a digit), so the borders are unambiguous.
    """
    from falcoir.core.cgroup import is_cgroup_line

    probe: list[str] = []
    status: list[str] = []
    cgroup: list[str] = []
    for line in text.splitlines():
        if not status and is_cgroup_line(line):
            probe.append(line)
        elif not cgroup and not is_cgroup_line(line):
            status.append(line)
        else:
            cgroup.append(line)
    return "\n".join(probe), "\n".join(status), "\n".join(cgroup)


def read_proc(
    gateway: ClusterGateway,
    reader: ProcReader,
    pid: int,
    *,
    want_cmdline: Callable[[ProcStatus], bool] | None = None,
    together: bool = False,
) -> ProcRead:
    """``status``, ``cgroup`` and ``cmdline`` of host ``pid`` through ``reader``.

    One exec reads ``1/cgroup`` (proves the host /proc is there), ``PID/status`` and
    ``PID/cgroup``: kernel-made text, safe to split. A second reads ``PID/cmdline``
    (process-made bytes, read on its own), skipped when ``want_cmdline`` says the
    status already rules the process out; with ``together`` the two run at once (one
    round trip instead of two, when there is only one node to ask anyway).
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise InputError(f"not a valid pid: {pid!r}")
    base = f"{reader.host_proc}/{pid}"
    early: Future[ExecResult] | None = None
    pool: ThreadPoolExecutor | None = None
    if together:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="falcoir-cmdline")
        early = pool.submit(_read_cmdline, gateway, reader, base)
    try:
        return _read_proc(gateway, reader, pid, base, want_cmdline, early)
    finally:
        if pool is not None:
            pool.shutdown(wait=False)


def _read_cmdline(gateway: ClusterGateway, reader: ProcReader, base: str) -> ExecResult:
    return gateway.exec(
        reader.namespace,
        reader.pod,
        reader.container,
        ["cat", f"{base}/cmdline"],
        timeout=READ_TIMEOUT,
        max_bytes=READ_MAX_BYTES,
    )


def _read_proc(
    gateway: ClusterGateway,
    reader: ProcReader,
    pid: int,
    base: str,
    want_cmdline: Callable[[ProcStatus], bool] | None,
    early: Future[ExecResult] | None,
) -> ProcRead:
    try:
        res = gateway.exec(
            reader.namespace,
            reader.pod,
            reader.container,
            ["cat", f"{reader.host_proc}/1/cgroup", f"{base}/status", f"{base}/cgroup"],
            timeout=READ_TIMEOUT,
            max_bytes=READ_MAX_BYTES,
        )
    except ApiNotFound:
        return ProcRead(reader, pid, problem=f"pod {reader.where} is gone")
    if not res.ran:
        return ProcRead(reader, pid, problem=f"cannot run cat in {reader.where}: {res.error}")
    text = res.stdout.decode("utf-8", errors="backslashreplace")
    probe_text, status_text, cgroup_text = _split_probe_status_cgroup(text)
    if not probe_text:
        return ProcRead(
            reader, pid, problem=f"{reader.host_proc} is not readable in {reader.where}"
        )
    status = parse_status(status_text)
    if status.pid is None:
        return ProcRead(reader, pid, problem=f"no pid {pid} on node {reader.node}", absent=True)
    if status.pid != pid:
        return ProcRead(reader, pid, problem=f"{base}/status names pid {status.pid}")
    from falcoir.core.cgroup import parse_proc_cgroup

    cgroup = parse_proc_cgroup(cgroup_text)
    if want_cmdline is not None and not want_cmdline(status):
        return ProcRead(reader, pid, status=status, cgroup=cgroup)
    cmd = early.result() if early is not None else _read_cmdline(gateway, reader, base)
    argv = parse_cmdline(cmd.stdout) if cmd.ok else ()
    return ProcRead(reader, pid, status=status, cgroup=cgroup, argv=argv)


@dataclass
class DebugPod:
    """A short-lived node debug pod: created, used, deleted, recorded."""

    gateway: ClusterGateway
    node: str
    image: str
    step: Callable[[str], None]
    # os.urandom(4).hex() is secrets.token_hex(4), without importing secrets (hmac,
    # hashlib, random) on the way to locate's first request.
    name: str = field(default_factory=lambda: f"falcoir-node-debug-{os.urandom(4).hex()}")
    namespace: str = DEBUG_POD_NAMESPACE
    record: list[str] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep

    def body(self) -> JSON:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "falcoir",
                    DEBUG_POD_LABEL: "true",
                },
            },
            "spec": {
                "nodeName": self.node,
                "hostPID": True,
                "restartPolicy": "Never",
                "activeDeadlineSeconds": DEBUG_POD_LIFETIME_SECONDS,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 0,
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {
                        "name": "debug",
                        "image": self.image,
                        "command": ["sleep", str(DEBUG_POD_LIFETIME_SECONDS)],
                        "volumeMounts": [
                            {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True}
                        ],
                        "securityContext": {
                            "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                        },
                    }
                ],
                "volumes": [{"name": "host-proc", "hostPath": {"path": "/proc"}}],
            },
        }

    def start(self) -> ProcReader:
        self.gateway.create(PODS, self.body())
        self.record.append(
            f"created node debug pod {self.namespace}/{self.name} on node {self.node} "
            f"(image {self.image}, hostPID, read-only host /proc)"
        )
        self.step(f"node debug: created {self.namespace}/{self.name} on {self.node}")
        deadline = time.monotonic() + DEBUG_POD_WAIT_SECONDS
        while True:
            pod = self.gateway.get(PODS, self.name, self.namespace)
            phase = pod_phase(pod)
            if phase == "Running":
                return ProcReader(self.namespace, self.name, "debug", self.node, "/host/proc")
            if phase in ("Failed", "Succeeded") or time.monotonic() >= deadline:
                raise FalcoirError(
                    f"node debug pod {self.namespace}/{self.name} did not start "
                    f"(phase {phase or 'unknown'})"
                )
            self.sleep(1.0)

    def stop(self) -> None:
        with contextlib.suppress(ApiNotFound):
            self.gateway.delete(PODS, self.name, self.namespace, grace_period_seconds=0)
        self.record.append(f"deleted node debug pod {self.namespace}/{self.name}")
        self.step(f"node debug: deleted {self.namespace}/{self.name}")
