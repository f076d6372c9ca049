"""Test gateways for collection: FakeCluster subclasses that run or script exec.

- :class:`LocalExecCluster` runs each argv for real on this machine (no shell is added),
  with the timeout and byte cap honoured and stdout streamed to the sink, so the
  constant /proc scripts are tested against a real /proc and real processes.
- :class:`ScriptedCluster` answers exec from a model of a container (processes, files,
  sockets, which tools the image has) and can misbehave on purpose: hang, drop the
  stream, flood output.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from falcoir.core.collect import scripts
from falcoir.core.gateway import PODS, ExecResult
from tests.fakes import FakeCluster

NS = "prod"
POD = "miner-7d4b9"


def pod_json(
    name: str = POD,
    namespace: str = NS,
    containers: Sequence[str] = ("miner",),
    *,
    owner: str | None = "cryptominer-demo-7d4b",
    restarts: int = 0,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": "pod-uid-1"}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": "rs-1",
                "controller": True,
            }
        ]
    return {
        "metadata": meta,
        "spec": {
            "nodeName": "lab-node",
            "containers": [{"name": c, "image": f"{c}:latest"} for c in containers],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": c,
                    "image": f"{c}:latest",
                    "imageID": f"docker.io/library/{c}@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + "cd" * 32,
                    "restartCount": restarts,
                    "state": {"running": {}},
                }
                for c in containers
            ],
        },
    }


def add_workload(cluster: FakeCluster, pod: dict[str, Any] | None = None) -> None:
    from falcoir.core.gateway import DEPLOYMENTS, EVENTS, NODES, REPLICA_SETS

    cluster.add(PODS, pod or pod_json())
    cluster.add(
        REPLICA_SETS,
        {
            "metadata": {
                "name": "cryptominer-demo-7d4b",
                "namespace": NS,
                "uid": "rs-1",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "cryptominer-demo",
                        "controller": True,
                    }
                ],
            }
        },
    )
    cluster.add(DEPLOYMENTS, {"metadata": {"name": "cryptominer-demo", "namespace": NS}})
    cluster.add(NODES, {"metadata": {"name": "lab-node"}})
    cluster.add(
        EVENTS,
        {
            "metadata": {"name": "ev1", "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": POD, "namespace": NS},
            "reason": "Started",
        },
    )
    cluster.logs[(NS, POD, "miner", False)] = b"starting web server\n"


# -- running argv for real -----------------------------------------------------------


@dataclass
class LocalExecCluster(FakeCluster):
    """exec runs the argv here, as the lab runs it in a pod's namespaces."""

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        stdout_sink: BinaryIO | None = None,
    ) -> ExecResult:
        self.calls.append(("exec", namespace, pod, container or "", *argv))
        started = datetime.now(UTC)
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            )
        except FileNotFoundError:
            return ExecResult(
                tuple(argv),
                container,
                b"",
                b"",
                None,
                started,
                datetime.now(UTC),
                error="executable file not found in $PATH",
                error_reason="NotFound",
            )
        out = bytearray()
        err = bytearray()
        seen = [0]

        def pump_out() -> None:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(65536):
                seen[0] += len(chunk)
                room = max(0, max_bytes - len(out)) if stdout_sink is None else max_bytes
                keep = chunk[: max(0, max_bytes - (seen[0] - len(chunk)))]
                if stdout_sink is not None:
                    if keep:
                        stdout_sink.write(keep)
                elif room:
                    out.extend(chunk[:room])

        def pump_err() -> None:
            assert proc.stderr is not None
            while chunk := proc.stderr.read(65536):
                if len(err) < max_bytes:
                    err.extend(chunk[: max_bytes - len(err)])

        threads = [threading.Thread(target=pump_out), threading.Thread(target=pump_err)]
        for t in threads:
            t.start()
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin or b"")
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        timed_out = False
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code, timed_out = None, True
        for t in threads:
            t.join()
        return ExecResult(
            argv=tuple(argv),
            container=container,
            stdout=bytes(out),
            stderr=bytes(err),
            exit_code=code,
            started=started,
            ended=datetime.now(UTC),
            error="timeout" if timed_out else None,
            error_reason="Timeout" if timed_out else None,
            stdout_truncated=seen[0] > max_bytes,
            stdout_bytes=seen[0],
            timed_out=timed_out,
        )


# -- a scripted container -------------------------------------------------------------


@dataclass
class Proc:
    pid: int
    comm: bytes
    cmdline: Sequence[bytes]
    exe: bytes
    ppid: int = 0
    cwd: bytes = b"/"
    sockets: Sequence[int] = ()
    deleted: bool = False


class Hang:
    """A command that never ends (until the gateway's timeout)."""


@dataclass
class Flood:
    """``size`` bytes of output, produced in chunks."""

    size: int
    chunk: bytes = b"A" * 65536


@dataclass
class Drop:
    """The exec stream is dropped (the lab's fault injection)."""


Reply = tuple[bytes, bytes, int | None] | Hang | Flood | Drop


@dataclass
class Container:
    """What a container holds and which tools its image has."""

    procs: list[Proc] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    """Path -> content; listing /tmp shows the ones under /tmp."""
    tcp: bytes = b""
    tools: set[str] = field(
        default_factory=lambda: {"ps", "netstat", "ss", "ls", "sh", "cat", "readlink", "sha256sum"}
    )
    busybox: bool = False
    root: str = ""
    """Path prefix under which this container sees the suspect's files (debug)."""
    overrides: dict[tuple[str, ...], Callable[[], Reply]] = field(default_factory=dict)

    def reply(self, argv: Sequence[str], stdin: bytes | None = None) -> Reply:
        for k, fn in self.overrides.items():
            if tuple(argv[: len(k)]) == k:
                return fn()
        tool = argv[0]
        if tool not in self.tools:
            return (b"", b"", None)
        if tool == "ps":
            if self.busybox and argv[1:] and argv[1] not in ("-ef",):
                return (b"", b"ps: invalid option -- 'a'\n", 1)
            lines = [b"USER PID COMMAND"] + [
                b"root %d %s" % (p.pid, b" ".join(p.cmdline)) for p in self.procs
            ]
            return (b"\n".join(lines) + b"\n", b"", 0)
        if tool in ("netstat", "ss"):
            rows = [b"Proto Local Foreign State PID/Program"]
            return (b"\n".join(rows) + b"\n" + self.tcp, b"", 0)
        if tool == "ls":
            if self.busybox and any(a.startswith("--time-style") for a in argv):
                return (b"", b"ls: unrecognized option '--time-style=full-iso'\n", 1)
            d = argv[-1]
            prefix = d.rstrip("/") + "/"
            names = sorted(p[len(prefix) :] for p in self.files if p.startswith(prefix))
            if not names and d.removeprefix(self.root) not in ("/tmp", "/"):
                return (b"", b"ls: cannot access: No such file or directory\n", 2)
            body = b"".join(
                b"-rwxr-xr-x 1 root root %d 2026-11-28 08:29:59.000 %s\n"
                % (len(self.files[prefix + n]), n.encode("utf-8", "surrogateescape"))
                for n in names
            )
            return (b"total 1\n" + body, b"", 0)
        if tool == "sha256sum":
            data = self._read(argv[1])
            if data is None:
                return (b"", b"sha256sum: no such file\n", 1)
            return (
                hashlib.sha256(data).hexdigest().encode() + b"  " + argv[1].encode() + b"\n",
                b"",
                0,
            )
        if tool == "cat":
            data = self._read(argv[1])
            if data is None:
                return (b"", b"cat: no such file\n", 1)
            return (data, b"", 0)
        if tool == "sh":
            if len(argv) > 4 and argv[2] == scripts.CAT_EXECUTABLE:
                data = self._read(argv[4])
                if data is None or not data.startswith((b"\x7fELF", b"#!")):
                    return (b"", b"not an executable file\n", 3)
                return (data, b"", 0)
            # the dumps read their marker from stdin, as the scripts do
            marker = (stdin or b"").decode().partition("\n")[0]
            if len(argv) < 4 or not marker:
                return (b"", b"", 2)
            script = argv[2]
            if script == scripts.PROC_DUMP:
                return (self._proc_dump(marker), b"", 0)
            if script == scripts.NET_DUMP:
                m = marker.encode()
                return (b"\n" + m + b" tcp\n" + self.tcp + b"\n" + m + b" end\n", b"", 0)
            return (b"", b"unexpected script", 2)
        return (b"", b"", None)

    def _read(self, path: str) -> bytes | None:
        if path.startswith("/proc/") and path.endswith("/exe"):
            pid = int(path.split("/")[2])
            for p in self.procs:
                if p.pid == pid:
                    return self.files.get(p.exe.decode(), b"\x7fELF-deleted-" + p.exe)
            return None
        return self.files.get(path.removeprefix(self.root))

    def _proc_dump(self, marker: str) -> bytes:
        m = marker.encode()
        out = b""
        for p in self.procs:
            stat = b"%d (%s) S %d 1 1 0" % (p.pid, p.comm, p.ppid)
            status = b"Name:\t%s\nPPid:\t%d\nUid:\t0\t0\t0\t0\nNSpid:\t%d\n" % (
                p.comm,
                p.ppid,
                p.pid,
            )
            exe = p.exe + (b" (deleted)" if p.deleted else b"")
            fds = b"".join(b"socket:[%d]\n" % i for i in p.sockets) + b"/dev/null\n"
            out += (
                b"\n%s pid %d\n" % (m, p.pid)
                + b"\n%s stat\n" % m
                + stat
                + b"\n"
                + b"\n%s status\n" % m
                + status
                + b"\n%s cmdline\n" % m
                + b"\x00".join(p.cmdline)
                + b"\x00"
                + b"\n%s exe\n" % m
                + exe
                + b"\n"
                + b"\n%s cwd\n" % m
                + p.cwd
                + b"\n"
                + b"\n%s fd\n" % m
                + fds
            )
        return out + b"\n%s end\n" % m


@dataclass
class ScriptedCluster(FakeCluster):
    containers: dict[str | None, Container] = field(default_factory=dict)
    dropped_once: set[tuple[str, ...]] = field(default_factory=set)
    debug_container: Container | None = None

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        stdout_sink: BinaryIO | None = None,
    ) -> ExecResult:
        self.calls.append(("exec", namespace, pod, container or "", *argv))
        self._check("create", "pods/exec", namespace)
        self.get(PODS, pod, namespace)
        self.calls.pop()
        started = datetime.now(UTC)
        box = self.containers.get(container) or self.containers.get(None)
        reply: Reply = (b"", b"", None) if box is None else box.reply(argv, stdin)

        def result(**kw: Any) -> ExecResult:
            base: dict[str, Any] = dict(
                argv=tuple(argv),
                container=container,
                stdout=b"",
                stderr=b"",
                exit_code=None,
                started=started,
                ended=datetime.now(UTC),
            )
            base.update(kw)
            return ExecResult(**base)

        if isinstance(reply, Hang):
            time.sleep(timeout)
            return result(error="timeout", error_reason="Timeout", timed_out=True)
        if isinstance(reply, Drop):
            key = tuple(argv)
            if key not in self.dropped_once:
                self.dropped_once.add(key)
                return result(error="stream dropped", error_reason="StreamDropped")
            reply = (b"recovered after a dropped stream\n", b"", 0)
        if isinstance(reply, Flood):
            sent = 0
            kept = bytearray()
            while sent < reply.size:
                chunk = reply.chunk[: reply.size - sent]
                room = max(0, max_bytes - sent)
                if room:
                    if stdout_sink is not None:
                        stdout_sink.write(chunk[:room])
                    else:
                        kept.extend(chunk[:room])
                sent += len(chunk)
            return result(
                stdout=bytes(kept),
                exit_code=0,
                stdout_truncated=sent > max_bytes,
                stdout_bytes=sent,
            )
        out, err, code = reply
        if code is None:
            return result(
                error=f'exec: "{argv[0]}": executable file not found in $PATH',
                error_reason="NotFound",
            )
        kept_out = out[:max_bytes]
        if stdout_sink is not None:
            stdout_sink.write(kept_out)
            kept_out = b""
        return result(
            stdout=kept_out,
            stderr=err[:max_bytes],
            exit_code=code,
            stdout_truncated=len(out) > max_bytes,
            stdout_bytes=len(out),
        )

    def patch(
        self, resource: Any, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        obj = super().patch(resource, name, patch, namespace, **kw)
        if kw.get("subresource") == "ephemeralcontainers" and self.debug_container is not None:
            eph = patch["spec"]["ephemeralContainers"]
            key = (resource.plural, namespace, name)
            stored = self.objects[key]
            stored.setdefault("status", {})["ephemeralContainerStatuses"] = [
                {"name": c["name"], "state": {"running": {}}} for c in eph
            ]
            for c in eph:
                self.containers[c["name"]] = self.debug_container
        return obj


def tmp_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iter_calls(cluster: FakeCluster, kind: str) -> Iterator[tuple[str, ...]]:
    return (c for c in cluster.calls if c[0] == kind)
