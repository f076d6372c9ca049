"""Running the collectors: concurrently, bounded, each recorded whatever happens.

Every command is an argv list run through :meth:`ClusterGateway.exec` with its own
timeout and byte cap, streamed straight into the bundle; the only shell texts are the
constants of :mod:`falcoir.core.collect.scripts`, with data passed as arguments.
Collectors run in daemon threads (a hung call cannot keep falcoir alive) and the
number of calls in flight to the cluster is bounded by a semaphore.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar, cast

import yaml

from falcoir.core.alert import Alert
from falcoir.core.bundle import (
    Artifact,
    ArtifactMeta,
    ArtifactStatus,
    BundleWriter,
    safe_component,
)
from falcoir.core.collect import procfs, scripts
from falcoir.core.collect.model import (
    BinaryEvidence,
    CollectOptions,
    CollectorEvent,
    CollectorOutcome,
    CollectorStatus,
    CollectResult,
)
from falcoir.core.collect.owners import objects_for_refs, owner_objects, placeholder
from falcoir.core.gateway import EVENTS, JSON, NODES, PODS, ClusterGateway, ExecResult
from falcoir.core.incident import ActionLog, utc_now
from falcoir.core.locate.known import recall
from falcoir.core.owners import followable
from falcoir.core.target import LocateMethod, Target
from falcoir.errors import ApiError, FalcoirError

Progress = Callable[[CollectorEvent], None]
T = TypeVar("T")

VOLATILE = ("processes", "network")
EXEC_COLLECTORS = ("processes", "network", "files", "binary")
API_COLLECTORS = ("pod", "owners", "node", "events", "logs")

NO_TOOLS_NOTE = (
    "the image has no shell or tools (distroless?): processes, network and files could "
    "not be read from inside it"
)


# libyaml's emitter writes the same text as PyYAML's in a fifth of the time (the pod,
# owner, node and event YAML were most of collect's own CPU). Only an empty key or
# one of 125-128 characters comes out in another valid form (``? key``) of the same
# object; tests/collect/test_yaml_dump.py compares the two.
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _yaml(doc: Any) -> bytes:
    text = yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, allow_unicode=False, width=1 << 16)
    return str(text).encode()


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def exec_status(res: ExecResult, truncated: bool) -> ArtifactStatus:
    if res.timed_out or res.error_reason == "Timeout":
        return ArtifactStatus.TIMEOUT
    if res.exit_code is None:
        reason = (res.error_reason or "").lower()
        text = (res.error or "").lower()
        if reason == "notfound" or "executable file not found" in text or "no such file" in text:
            return ArtifactStatus.NOT_FOUND
        return ArtifactStatus.FAILED
    if res.exit_code != 0:
        return ArtifactStatus.FAILED
    if truncated:
        return ArtifactStatus.TRUNCATED
    return ArtifactStatus.OK


def _dropped(res: ExecResult | None) -> bool:
    if res is None or res.exit_code is not None:
        return False
    return res.error_reason == "StreamDropped" or "dropped" in (res.error or "").lower()


@dataclass
class _Attempt:
    artifact: Artifact
    result: ExecResult | None


@dataclass
class _Run:
    gateway: ClusterGateway
    target: Target
    writer: BundleWriter
    options: CollectOptions
    alert: Alert | None
    progress: Progress | None
    action_log: ActionLog | None = None
    container: str | None = None
    root: str = ""
    """Prefix of in-pod file paths (``/proc/1/root`` in an ephemeral debug container)."""
    label: str = ""
    """Artifact-name prefix for a second pass (``debug/``)."""
    slots: threading.BoundedSemaphore = field(init=False)
    marker: str = field(default_factory=scripts.new_marker)
    procs: list[procfs.ProcInfo] = field(default_factory=list)
    procs_ready: threading.Event = field(default_factory=threading.Event)
    sockets: list[procfs.Socket] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    pod: JSON | None = None
    pod_ready: threading.Event = field(default_factory=threading.Event)
    outcomes: dict[str, CollectorOutcome] = field(default_factory=dict)
    produced: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    binary: BinaryEvidence | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    deadline_at: float = 0.0
    located: threading.Event = field(default_factory=threading.Event)
    """Set once ``target`` is locate's final one (with the owner chain): collection may
    start from the target locate hands over before reading the owners."""

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(max(1, self.options.concurrency))
        if self.container is None:
            self.container = self.target.container

    # -- plumbing ------------------------------------------------------------------
    def emit(self, event: CollectorEvent) -> None:
        if self.progress is not None:
            # A display must never break collection.
            with contextlib.suppress(Exception):
                self.progress(event)

    def note(self, text: str) -> None:
        with self.lock:
            if text not in self.notes:
                self.notes.append(text)

    def keep(self, art: Artifact) -> Artifact:
        with self.lock:
            self.produced.append(art)
        return art

    def remaining(self) -> float:
        return max(1.0, self.deadline_at - time.monotonic())

    def final_target(self) -> Target:
        """The target with its owner chain, once locate has it (bounded wait)."""
        self.located.wait(self.remaining())
        return self.target

    def add(self, collector: str, name: str, data: bytes, meta: ArtifactMeta) -> Artifact:
        return self.keep(self.writer.add_bytes(self.label + name, data, meta))

    def exec(
        self,
        collector: str,
        name: str,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        max_bytes: int | None = None,
        stdin: bytes | None = None,
    ) -> _Attempt:
        """Run one command into one artifact; retried when the stream was dropped."""
        attempt = self._exec_once(collector, name, argv, timeout, max_bytes, stdin)
        for _ in range(self.options.retries):
            if not _dropped(attempt.result):
                break
            attempt = self._exec_once(collector, name, argv, timeout, max_bytes, stdin)
        return attempt

    def _exec_once(
        self,
        collector: str,
        name: str,
        argv: Sequence[str],
        timeout: float | None,
        max_bytes: int | None,
        stdin: bytes | None = None,
    ) -> _Attempt:
        t = min(timeout or self.options.timeout, self.remaining())
        cap = max_bytes or self.options.max_bytes
        self.emit(CollectorEvent(collector, "run", detail=" ".join(argv)[:200]))
        started = utc_now()
        with self.writer.open_stream(self.label + name, max_bytes=cap) as stream:
            stream.on_progress = lambda n: self.emit(CollectorEvent(collector, "bytes", bytes=n))
            try:
                with self.slots:
                    res = self.gateway.exec(
                        self.target.namespace,
                        self.target.pod,
                        self.container,
                        list(argv),
                        stdin=stdin,
                        timeout=t,
                        max_bytes=cap,
                        stdout_sink=cast(BinaryIO, stream),
                    )
            except FalcoirError as exc:
                art = stream.commit(
                    ArtifactMeta(
                        status=ArtifactStatus.FAILED,
                        collector=collector,
                        argv=tuple(argv),
                        container=self.container,
                        started=started,
                        ended=utc_now(),
                        error=exc.message,
                    )
                )
                return _Attempt(self.keep(art), None)
            if res.stdout:
                stream.write(res.stdout)
            truncated = res.stdout_truncated or res.stderr_truncated or stream.truncated
            art = stream.commit(
                ArtifactMeta(
                    status=exec_status(res, truncated),
                    collector=collector,
                    argv=tuple(argv),
                    container=self.container,
                    started=res.started,
                    ended=res.ended,
                    exit_code=res.exit_code,
                    stderr=res.stderr,
                    truncated=truncated,
                    error=res.error,
                    extra={
                        k: v
                        for k, v in {
                            "error_reason": res.error_reason,
                            "stdout_bytes_seen": res.stdout_bytes or None,
                            "timed_out": res.timed_out or None,
                        }.items()
                        if v is not None
                    },
                )
            )
        return _Attempt(self.keep(art), res)

    def first_ok(self, collector: str, name: str, argvs: Sequence[Sequence[str]]) -> list[_Attempt]:
        """Try each argv in turn until one works (a missing tool or a rejected option
        moves on to the next); every attempt is kept in the bundle."""
        attempts: list[_Attempt] = []
        for argv in argvs:
            a = self.exec(collector, name, argv)
            attempts.append(a)
            art = a.artifact
            if art.status in (ArtifactStatus.OK, ArtifactStatus.TRUNCATED):
                break
            if art.status is ArtifactStatus.FAILED and art.exit_code is not None and art.bytes:
                break  # it ran and said something: a real answer, not a missing option
            if art.status is ArtifactStatus.TIMEOUT:
                break
        return attempts

    def read_file(self, art: Artifact) -> bytes:
        path = self.writer.dir / art.path
        try:
            with path.open("rb") as fh:
                return fh.read(self.options.max_bytes)
        except OSError:
            return b""

    def finish(
        self,
        name: str,
        status: CollectorStatus,
        note: str | None,
        arts: Sequence[Artifact],
    ) -> CollectorOutcome:
        out = CollectorOutcome(
            name,
            status,
            note,
            tuple(a.name for a in arts),
            sum(a.bytes for a in arts),
        )
        with self.lock:
            self.outcomes.setdefault(name, out)
            return self.outcomes[name]

    def api_call(self, fn: Callable[[], Any]) -> Any:
        with self.slots:
            return fn()


def _best(attempts: Sequence[_Attempt]) -> ArtifactStatus:
    statuses = [a.artifact.status for a in attempts]
    for s in (ArtifactStatus.OK, ArtifactStatus.TRUNCATED):
        if s in statuses:
            return s
    return statuses[-1] if statuses else ArtifactStatus.SKIPPED


def _all_missing(attempts: Sequence[_Attempt]) -> bool:
    return bool(attempts) and all(a.artifact.status is ArtifactStatus.NOT_FOUND for a in attempts)


def _status_of(statuses: Sequence[ArtifactStatus]) -> CollectorStatus:
    if statuses and all(s is ArtifactStatus.OK for s in statuses):
        return CollectorStatus.OK
    if any(s in (ArtifactStatus.OK, ArtifactStatus.TRUNCATED) for s in statuses):
        return CollectorStatus.PARTIAL
    if statuses and all(s is ArtifactStatus.TIMEOUT for s in statuses):
        return CollectorStatus.TIMEOUT
    return CollectorStatus.FAILED


# -- collectors -----------------------------------------------------------------------


def _side(fn: Callable[[], T]) -> Callable[[float], T | None]:
    """Run ``fn`` in a daemon thread now; the returned function waits for its result
    (``None`` if it failed or did not finish in time)."""
    box: list[T] = []

    def body() -> None:
        with contextlib.suppress(Exception):
            box.append(fn())

    thread = threading.Thread(target=body, daemon=True, name="falcoir-side")
    thread.start()

    def join(timeout: float) -> T | None:
        thread.join(timeout)
        return box[0] if box else None

    return join


def collect_processes(run: _Run) -> CollectorOutcome:
    name = "processes"
    try:
        # ps and the /proc dump run side by side; the dump is what the binary and the
        # network collectors wait for, so it is released as soon as it is parsed.
        ps_side = _side(
            lambda: run.first_ok(name, "processes/ps.txt", (["ps", "auxww"], ["ps", "-ef"], ["ps"]))
        )
        # The marker goes on stdin: an argument would show in /proc/<sh>/cmdline, and a
        # process that knows it can end the dump early in its own cwd or exe link.
        dump = run.exec(
            name,
            "processes/proc.txt",
            ["sh", "-c", scripts.PROC_DUMP, "sh"],
            stdin=run.marker.encode() + b"\n",
        )
        procs_json: Artifact | None = None
        if dump.artifact.status in (ArtifactStatus.OK, ArtifactStatus.TRUNCATED):
            run.procs = procfs.parse_proc_dump(run.read_file(dump.artifact), run.marker)
            run.procs_ready.set()
            procs_json = run.add(
                name,
                "processes/processes.json",
                _json([p.to_dict() for p in run.procs]),
                ArtifactMeta(
                    source="falcoir",
                    collector=name,
                    note=f"parsed from {dump.artifact.name} (/proc/<pid>/stat, status, "
                    "cmdline, exe, cwd, fd)",
                ),
            )
        ps = ps_side(run.remaining()) or []
        arts = [a.artifact for a in ps] + [dump.artifact]
        if procs_json is not None:
            arts.append(procs_json)
        if _all_missing(ps) and dump.artifact.status is ArtifactStatus.NOT_FOUND:
            run.note(NO_TOOLS_NOTE)
            return run.finish(name, CollectorStatus.FAILED, "no ps and no shell in the image", arts)
        ps_best = _best(ps)
        dump_status = dump.artifact.status
        if ps_best is ArtifactStatus.OK or dump_status is ArtifactStatus.OK:
            worst_note = None
            if ps_best is not ArtifactStatus.OK:
                worst_note = "no usable ps: the process list was read from /proc"
            return run.finish(name, CollectorStatus.OK, worst_note, arts)
        return run.finish(name, _status_of([ps_best, dump_status]), "process list incomplete", arts)
    finally:
        run.procs_ready.set()


def collect_network(run: _Run) -> CollectorOutcome:
    name = "network"
    tools_side = _side(
        lambda: run.first_ok(
            name,
            "network/netstat.txt",
            # busybox's netstat may lack -p: /proc/<pid>/fd gives the owners anyway
            (["netstat", "-tunap"], ["ss", "-tunap"], ["netstat", "-tuna"]),
        )
    )
    dump = run.exec(
        name,
        "network/proc-net.txt",
        ["sh", "-c", scripts.NET_DUMP, "sh"],
        stdin=run.marker.encode() + b"\n",
    )
    tools = tools_side(run.remaining()) or []
    arts = [a.artifact for a in tools] + [dump.artifact]
    if dump.artifact.status in (ArtifactStatus.OK, ArtifactStatus.TRUNCATED):
        run.sockets = procfs.parse_net_dump(run.read_file(dump.artifact), run.marker)
        run.procs_ready.wait(run.remaining())
        mapped = procfs.map_sockets(run.sockets, run.procs)
        run.connections = [s.to_dict() for s in mapped]
        arts.append(
            run.add(
                name,
                "network/connections.json",
                _json(run.connections),
                ArtifactMeta(
                    source="falcoir",
                    collector=name,
                    note=f"decoded from {dump.artifact.name}; sockets mapped to processes "
                    "through /proc/<pid>/fd",
                ),
            )
        )
    best = _best(tools)
    if best is ArtifactStatus.OK or dump.artifact.status is ArtifactStatus.OK:
        note = None if best is ArtifactStatus.OK else "no netstat or ss: decoded /proc/net"
        return run.finish(name, CollectorStatus.OK, note, arts)
    if _all_missing(tools) and dump.artifact.status is ArtifactStatus.NOT_FOUND:
        return run.finish(
            name, CollectorStatus.FAILED, "no netstat, ss or shell in the image", arts
        )
    return run.finish(
        name, _status_of([best, dump.artifact.status]), "connections incomplete", arts
    )


def _clean_dir(path: str | None) -> str | None:
    if not path or not path.startswith("/") or "\x00" in path or len(path) > 4096:
        return None
    return posixpath.normpath(path)


# Never copied because an alert names them: credentials and kernel interfaces.
_NEVER_COPY = ("/var/run/secrets", "/run/secrets", "/proc", "/sys", "/dev")


def _never_copy(path: str) -> bool:
    p = "/" + path.lstrip("/")
    return any(p == d or p.startswith(d + "/") for d in _NEVER_COPY)


def _alert_paths(alert: Alert | None) -> tuple[str | None, str | None]:
    """(executable path, cwd) named by the alert, when absolute."""
    if alert is None:
        return None, None
    exe = alert.process.exepath
    if not exe and alert.process.cmdline:
        first = alert.process.cmdline.split()[0] if alert.process.cmdline.split() else ""
        exe = first if first.startswith("/") else None
    return _clean_dir(exe), _clean_dir(alert.process.cwd)


def collect_files(run: _Run) -> CollectorOutcome:
    name = "files"
    exe, cwd = _alert_paths(run.alert)
    dirs: list[str] = ["/tmp"]  # noqa: S108 - the pod's /tmp, read-only
    for d in (posixpath.dirname(exe) if exe else None, cwd, *run.options.extra_dirs):
        clean = _clean_dir(d)
        if clean and clean not in dirs:
            dirs.append(clean)
    arts: list[Artifact] = []
    statuses: list[ArtifactStatus] = []
    all_missing = True

    def listing(d: str) -> list[_Attempt]:
        path = run.root + d if run.root else d
        art_name = f"files/ls-{safe_component(d, fallback='root')}.txt"
        return run.first_ok(
            name,
            art_name,
            (
                ["ls", "-la", "--time-style=full-iso", path],
                ["ls", "-la", "--full-time", path],
                ["ls", "-la", path],
                ["sh", "-c", scripts.DIR_LIST, "sh", path],
            ),
        )

    # Every directory is listed at once (each listing is a round trip or more).
    others = [_side(lambda d=d: listing(d)) for d in dirs[1:]]  # type: ignore[misc]
    results = [listing(dirs[0])] + [join(run.remaining()) for join in others]
    for attempts in results:
        if attempts is None:
            statuses.append(ArtifactStatus.TIMEOUT)
            all_missing = False
            continue
        arts.extend(a.artifact for a in attempts)
        statuses.append(_best(attempts))
        all_missing = all_missing and _all_missing(attempts)
    if all_missing:
        return run.finish(name, CollectorStatus.FAILED, "no ls and no shell in the image", arts)
    status = _status_of(statuses)
    note = None if status is CollectorStatus.OK else "some directories could not be listed"
    return run.finish(name, status, note, arts)


def _resolve_vpid(run: _Run) -> tuple[int | None, str | None]:
    if run.options.vpid is not None:
        return run.options.vpid, "--pid"
    if run.target.vpid is not None:
        return run.target.vpid, "located"
    if run.alert is not None and run.alert.process.vpid is not None:
        return run.alert.process.vpid, "alert proc.vpid"
    if run.alert is None:
        return None, None
    run.procs_ready.wait(run.remaining())
    if not run.procs:
        return None, None
    exe, _ = _alert_paths(run.alert)
    found = procfs.find_process(
        run.procs,
        exepath=exe,
        cmdline=run.alert.process.cmdline,
        name=run.alert.process.name,
    )
    return (found.pid, "matched in the process list") if found else (None, None)


def _sha_from(text: bytes) -> str | None:
    token = text.split(b" ", 1)[0].strip().lower()
    if len(token) == 64 and all(c in b"0123456789abcdef" for c in token):
        return token.decode()
    return None


def collect_binary(run: _Run) -> CollectorOutcome:
    name = "binary"
    vpid, how = _resolve_vpid(run)
    alert_exe, _ = _alert_paths(run.alert)
    arts: list[Artifact] = []
    statuses: list[ArtifactStatus] = []
    in_pod = copied = path_sha = None
    size = 0
    copy_art: Artifact | None = None
    exe_link: str | None = None
    deleted = False
    # The in-pod hashes run beside the copy: each is one exec round trip.
    path_side = None
    if alert_exe is not None:
        argv = ["sha256sum", run.root + alert_exe]
        path_side = _side(lambda: run.exec(name, "binary/path.sha256sum.txt", argv))
    if vpid is not None:
        exe = f"/proc/{vpid}/exe"
        hash_side = _side(lambda: run.exec(name, "binary/exe.sha256sum.txt", ["sha256sum", exe]))
        c = run.exec(
            name,
            "binary/exe.bin",
            ["cat", exe],
            timeout=run.options.binary_timeout,
            max_bytes=run.options.max_binary_bytes,
        )
        h = hash_side(run.remaining())
        if h is not None:
            arts.append(h.artifact)
            if h.artifact.status is ArtifactStatus.OK:
                in_pod = _sha_from(run.read_file(h.artifact))
        copy_art = c.artifact
        arts.append(copy_art)
        statuses.append(copy_art.status)
        if copy_art.status is ArtifactStatus.OK:
            copied, size = copy_art.sha256, copy_art.bytes
    if path_side is not None:
        ph = path_side(run.remaining())
        if ph is not None:
            arts.append(ph.artifact)
            if ph.artifact.status is ArtifactStatus.OK:
                path_sha = _sha_from(run.read_file(ph.artifact))
    if vpid is not None:
        # What the process list says of that executable (deleted from disk?).
        run.procs_ready.wait(run.remaining())
        proc = next((p for p in run.procs if p.pid == vpid), None)
        if proc is not None:
            exe_link, deleted = proc.exe, proc.exe_deleted
    alert_named = refused = False
    if alert_exe is not None and copied is None:
        # The alert's text is the attacker's: its path is copied as is only when a
        # running process executes it; otherwise only an executable file outside
        # secrets and kernel paths ("alert-named file"), never e.g. a token.
        # (not waited for: a dump that hangs must not hold the copy up)
        running = run.procs_ready.is_set() and any(p.exe == alert_exe for p in run.procs)
        alert_named = not running
        refused = alert_named and _never_copy(alert_exe)
        argv = (
            ["cat", run.root + alert_exe]
            if running
            else ["sh", "-c", scripts.CAT_EXECUTABLE, "sh", run.root + alert_exe]
        )
        path_copy = (
            None
            if refused
            else run.exec(
                name,
                "binary/path.bin",
                argv,
                timeout=run.options.binary_timeout,
                max_bytes=run.options.max_binary_bytes,
            )
        )
        if path_copy is not None:
            c = path_copy
            arts.append(c.artifact)
            statuses.append(c.artifact.status)
            if c.artifact.status is ArtifactStatus.OK:
                copy_art, copied, size = c.artifact, c.artifact.sha256, c.artifact.bytes
                in_pod = in_pod or path_sha
    run.binary = BinaryEvidence(
        vpid=vpid,
        path=exe_link or alert_exe,
        deleted=deleted,
        sha256=copied,
        in_pod_sha256=in_pod,
        artifact=copy_art.name if copy_art else None,
        bytes=size,
        path_sha256=path_sha,
    )
    if vpid is None and alert_exe is None:
        note = (
            "no suspect process: give --pid VPID or an alert"
            if run.alert is None
            else ("the alert's process was not found in the container (it may have exited)")
        )
        status = CollectorStatus.SKIPPED if run.alert is None else CollectorStatus.FAILED
        return run.finish(name, status, note, arts)
    if refused and copied is None:
        note = "the alert names a secret or kernel path as its executable: not copied"
        return run.finish(name, CollectorStatus.FAILED, note, arts)
    if copied is None:
        return run.finish(name, _status_of(statuses), "the binary could not be copied", arts)
    notes = [f"pid {vpid} ({how})" if vpid is not None else "copied from the alert's path"]
    if alert_named:
        notes = ["alert-named file: no running process executes it; copied from the alert's path"]
    if deleted:
        notes.append("the executable was deleted from disk; copied through /proc/<pid>/exe")
    if in_pod and in_pod != copied:
        notes.append("hash in the pod differs from the copied bytes (changed while copying?)")
        return run.finish(name, CollectorStatus.PARTIAL, "; ".join(notes), arts)
    return run.finish(name, CollectorStatus.OK, "; ".join(notes), arts)


def _api_meta(collector: str, started: Any, error: str | None = None, **kw: Any) -> ArtifactMeta:
    kw.setdefault("status", ArtifactStatus.FAILED if error else ArtifactStatus.OK)
    return ArtifactMeta(
        collector=collector,
        source="api",
        started=started,
        ended=utc_now(),
        error=error,
        **kw,
    )


def _api_fail(run: _Run, collector: str, name: str, started: Any, exc: FalcoirError) -> Artifact:
    return run.add(collector, name, b"", _api_meta(collector, started, exc.message))


def collect_pod(run: _Run) -> CollectorOutcome:
    name = "pod"
    started = utc_now()
    try:
        try:
            pod = run.api_call(lambda: run.gateway.get(PODS, run.target.pod, run.target.namespace))
        except FalcoirError as exc:
            art = _api_fail(run, name, "api/pod.yaml", started, exc)
            return run.finish(name, CollectorStatus.FAILED, exc.message, [art])
        run.pod = pod
    finally:
        run.pod_ready.set()
    arts = [run.add(name, "api/pod.yaml", _yaml(pod), _api_meta(name, started))]
    images = []
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            images.append(
                {
                    "kind": key.replace("Statuses", ""),
                    "name": cs.get("name"),
                    "image": cs.get("image"),
                    "imageID": cs.get("imageID"),
                    "containerID": cs.get("containerID"),
                    "restartCount": cs.get("restartCount"),
                    "state": cs.get("state"),
                }
            )
    arts.append(run.add(name, "api/images.json", _json(images), _api_meta(name, started)))
    return run.finish(name, CollectorStatus.OK, None, arts)


def _located_owners(target: Target) -> tuple[list[JSON], str] | None:
    """The owner objects locate read for this very target moments ago (and how long
    ago), when it read every one of the chain that is ever read."""
    known = recall(target)
    if known is None or not target.owner:
        return None
    objects: list[JSON] = []
    for ref in target.owner:
        obj = known.owners.get((ref.kind, ref.name))
        if obj is None:
            if followable(ref) is not None:
                return None  # not read then (forbidden, gone): ask now
            objects.append(placeholder(ref, "a kind falcoir does not read"))
            continue
        objects.append(obj)
    return objects, f"read while locating the pod, {known.age:.1f}s before"


def collect_owners(run: _Run) -> CollectorOutcome:
    name = "owners"
    target = run.final_target()  # the owner chain is what locate read last
    started = utc_now()
    located = _located_owners(target)
    if located is not None:
        objects, when = located
        meta = _api_meta(name, started, note=when)
        arts = [run.add(name, "api/owners.yaml", _yaml(objects), meta)]
        note = " -> ".join(
            f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}" for o in objects
        )
        return run.finish(name, CollectorStatus.OK, f"{note} ({when})", arts)
    if target.owner and target.method is not LocateMethod.POD_FLAG:
        # locate already walked the chain (owner_chain): read its objects at once.
        objects, problems = objects_for_refs(
            run.gateway, target.namespace, target.owner, call=run.api_call
        )
    else:
        run.pod_ready.wait(run.remaining())
        if run.pod is None:
            return run.finish(name, CollectorStatus.FAILED, "the pod could not be read", [])
        objects, problems = owner_objects(run.gateway, run.pod, call=run.api_call)
    arts = [
        run.add(
            name,
            "api/owners.yaml",
            _yaml(objects),
            _api_meta(name, started, "; ".join(problems) or None),
        )
    ]
    if problems:
        return run.finish(name, CollectorStatus.PARTIAL, "; ".join(problems), arts)
    note = " -> ".join(f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}" for o in objects)
    return run.finish(name, CollectorStatus.OK, note or "no owner (standalone pod)", arts)


def collect_node(run: _Run) -> CollectorOutcome:
    name = "node"
    node = run.target.node  # a pod's node never changes: no need to wait for the pod
    if not node:
        run.pod_ready.wait(run.remaining())
        node = ((run.pod or {}).get("spec") or {}).get("nodeName")
    if not node:
        return run.finish(name, CollectorStatus.SKIPPED, "the pod is not scheduled", [])
    started = utc_now()
    try:
        obj = run.api_call(lambda: run.gateway.get(NODES, node))
    except FalcoirError as exc:
        art = _api_fail(run, name, "api/node.yaml", started, exc)
        return run.finish(name, CollectorStatus.FAILED, exc.message, [art])
    art = run.add(name, "api/node.yaml", _yaml(obj), _api_meta(name, started))
    return run.finish(name, CollectorStatus.OK, node, [art])


def collect_events(run: _Run) -> CollectorOutcome:
    name = "events"
    started = utc_now()
    try:
        items = run.api_call(
            lambda: run.gateway.list(
                EVENTS,
                run.target.namespace,
                field_selector=f"involvedObject.name={run.target.pod}",
            )
        )
    except FalcoirError as exc:
        art = _api_fail(run, name, "api/events.yaml", started, exc)
        return run.finish(name, CollectorStatus.FAILED, exc.message, [art])
    art = run.add(name, "api/events.yaml", _yaml(items), _api_meta(name, started))
    return run.finish(name, CollectorStatus.OK, f"{len(items)} events", [art])


def _log_plan(pod: JSON, container: str | None) -> list[tuple[str, bool]]:
    """``(container, previous)`` of every log worth reading: each container's, and the
    previous one's of a container that restarted."""
    spec = pod.get("spec") or {}
    restarts = {
        cs.get("name"): int(cs.get("restartCount") or 0)
        for key in ("initContainerStatuses", "containerStatuses")
        for cs in (pod.get("status") or {}).get(key) or []
    }
    names = [
        c.get("name") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    ]
    if not names and container:
        names = [container]
    return [
        (cname, previous)
        for cname in names
        if isinstance(cname, str)
        for previous in (False, True)
        if not previous or restarts.get(cname)
    ]


def collect_logs(run: _Run) -> CollectorOutcome:
    name = "logs"
    arts: list[Artifact] = []
    statuses: list[ArtifactStatus] = []
    done: set[tuple[str, bool]] = set()

    def read_one(cname: str, previous: bool) -> None:
        done.add((cname, previous))
        suffix = ".previous.log" if previous else ".log"
        art_name = f"logs/{safe_component(cname)}{suffix}"
        started = utc_now()

        def read() -> bytes:
            return run.gateway.read_log(
                run.target.namespace,
                run.target.pod,
                cname,
                previous=previous,
                limit_bytes=run.options.log_bytes,
                timestamps=True,
                timeout=run.options.timeout,
            )

        try:
            data = run.api_call(read)
        except FalcoirError as exc:
            arts.append(_api_fail(run, name, art_name, started, exc))
            statuses.append(ArtifactStatus.FAILED)
            return
        truncated = len(data) >= run.options.log_bytes
        status = ArtifactStatus.TRUNCATED if truncated else ArtifactStatus.OK
        arts.append(
            run.add(
                name,
                art_name,
                data,
                _api_meta(
                    name,
                    started,
                    container=cname,
                    truncated=truncated,
                    status=status,
                    note=f"limitBytes={run.options.log_bytes}",
                ),
            )
        )
        # Older logs beyond the limit are not evidence we lost to falcoir: the log
        # is bounded on purpose, so a full log counts as collected.
        statuses.append(ArtifactStatus.OK)

    if not run.located.is_set() and run.target.container:
        # Started before locate was done: the suspect container's log first, while
        # locate reads the owner chain (the other containers' are known after).
        read_one(run.target.container, False)
    known = recall(run.final_target())
    if known is not None:
        # The pod as locate read it names the containers: no need to wait for it.
        for cname, previous in _log_plan(known.pod, run.target.container):
            if (cname, previous) not in done:
                read_one(cname, previous)
    run.pod_ready.wait(run.remaining())
    for cname, previous in _log_plan(run.pod or {}, run.target.container):
        if (cname, previous) not in done:  # a container that restarted since
            read_one(cname, previous)
    if not arts:
        return run.finish(name, CollectorStatus.SKIPPED, "no containers", arts)
    return run.finish(name, _status_of(statuses), None, arts)


COLLECTORS: dict[str, Callable[[_Run], CollectorOutcome]] = {
    "processes": collect_processes,
    "network": collect_network,
    "files": collect_files,
    "binary": collect_binary,
    "pod": collect_pod,
    "owners": collect_owners,
    "node": collect_node,
    "events": collect_events,
    "logs": collect_logs,
}


def _launch(run: _Run, names: Sequence[str], done: dict[str, threading.Event]) -> None:
    """Start ``names``, each in its own daemon thread that sets its ``done`` event."""
    # A collector waits only on what another one in *this* run will produce: an event
    # whose producer is not running is set now (never wait on what nobody will set).
    if "processes" not in names:
        run.procs_ready.set()
    if "pod" not in names:
        run.pod_ready.set()

    def body(cname: str) -> None:
        run.emit(CollectorEvent(cname, "start"))
        try:
            out = COLLECTORS[cname](run)
        except BaseException as exc:  # recorded, never lost
            msg = exc.message if isinstance(exc, FalcoirError) else f"{type(exc).__name__}: {exc}"
            out = run.finish(cname, CollectorStatus.FAILED, f"collector error: {msg}", [])
        finally:
            done[cname].set()
        run.emit(CollectorEvent(cname, "done", status=out.status, bytes=out.bytes, detail=out.note))

    for cname in names:
        threading.Thread(target=body, args=(cname,), name=f"falcoir-{cname}", daemon=True).start()


def _await(run: _Run, done: dict[str, threading.Event], *, interrupted: bool = False) -> bool:
    """Wait for launched collectors until done or the deadline (not at all when
    already ``interrupted``); returns False when interrupted (Ctrl-C). Collectors
    still running are recorded as timed out (or interrupted) and left behind: their
    threads are daemons, and the sealed bundle refuses their late writes."""
    try:
        # Event.wait, not Thread.join: an interrupted join can leave is_alive() wrong.
        for ev in done.values():
            if interrupted:
                break
            ev.wait(max(0.0, run.deadline_at - time.monotonic()))
    except KeyboardInterrupt:
        interrupted = True
    for cname, ev in done.items():
        if not ev.is_set():
            status = CollectorStatus.INTERRUPTED if interrupted else CollectorStatus.TIMEOUT
            why = "interrupted" if interrupted else "did not finish before the deadline"
            with run.lock:
                run.outcomes[cname] = CollectorOutcome(cname, status, why)
            run.emit(CollectorEvent(cname, "done", status=status, detail=why))
    # Unblock anything still waiting on the others.
    run.procs_ready.set()
    run.pod_ready.set()
    run.located.set()
    return not interrupted


def _run_collectors(run: _Run, names: Sequence[str]) -> bool:
    """Run ``names`` concurrently until done or the deadline (see :func:`_await`)."""
    done = {n: threading.Event() for n in names}
    try:
        _launch(run, names, done)
    except KeyboardInterrupt:
        return _await(run, done, interrupted=True)
    return _await(run, done)


# -- ephemeral debug container ---------------------------------------------------------


def add_debug_container(run: _Run) -> str | None:
    """Add an ephemeral container sharing the suspect container's pid namespace and
    wait for it to run. Records the change in the action log and the bundle."""
    target = run.target
    cname = f"falcoir-debug-{secrets.token_hex(3)}"
    spec = {
        "name": cname,
        "image": run.options.debug_image,
        "command": ["sleep", str(int(run.options.total_deadline) + 300)],
        "stdin": False,
        "tty": False,
        "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}},
    }
    if target.container:
        spec["targetContainerName"] = target.container
    patch = {"spec": {"ephemeralContainers": [spec]}}
    started = utc_now()
    error: str | None = None
    try:
        run.api_call(
            lambda: run.gateway.patch(
                PODS,
                target.pod,
                patch,
                target.namespace,
                patch_type="strategic",
                subresource="ephemeralcontainers",
            )
        )
    except FalcoirError as exc:
        error = exc.message
    if run.action_log is not None:
        run.action_log.append(
            "ephemeral-container",
            "Pod",
            target.namespace,
            target.pod,
            "failed" if error else "ok",
            f"added ephemeral debug container {cname} ({run.options.debug_image}) targeting "
            f"{target.container}: the pod spec now carries it for good"
            + (f"; error: {error}" if error else ""),
            data={"container": cname, "image": run.options.debug_image, "patch": patch},
        )
    run.add(
        "debug",
        "debug/ephemeral-container.json",
        _json({"patch": patch, "error": error}),
        ArtifactMeta(
            status=ArtifactStatus.FAILED if error else ArtifactStatus.OK,
            collector="debug",
            source="api",
            started=started,
            ended=utc_now(),
            error=error,
            note="the pod spec was changed: an ephemeral container cannot be removed",
        ),
    )
    if error:
        run.note(f"could not add an ephemeral debug container: {error}")
        return None
    run.note(
        f"added ephemeral debug container {cname} ({run.options.debug_image}); "
        "the pod spec was changed (recorded in the action log)"
    )
    wait_until = time.monotonic() + min(run.options.debug_wait, run.remaining())
    while time.monotonic() < wait_until:
        try:
            pod = run.api_call(lambda: run.gateway.get(PODS, target.pod, target.namespace))
        except ApiError:
            pod = {}
        for cs in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
            if cs.get("name") == cname:
                state = cs.get("state") or {}
                if "running" in state:
                    return cname
                if "terminated" in state:
                    run.note(f"the debug container {cname} stopped: {state['terminated']}")
                    return None
        time.sleep(0.25)
    run.note(f"the debug container {cname} did not start in time")
    return None


# -- entry points ---------------------------------------------------------------------


def _result(run: _Run, names: Sequence[str], started: float, ok: bool) -> CollectResult:
    outcomes = tuple(run.outcomes[n] for n in COLLECTORS if n in run.outcomes and n in names)
    complete = ok and all(o.status.good for o in outcomes)
    if not ok:
        run.note("interrupted: the bundle holds what was captured until then")
    return CollectResult(
        target=run.target,
        artifacts=tuple(run.produced),
        collectors=outcomes,
        complete=complete,
        notes=tuple(run.notes),
        binary=run.binary,
        debug_container=run.container if run.container != run.target.container else None,
        interrupted=not ok,
        connections=tuple(run.connections),
        elapsed_s=time.monotonic() - started,
    )


def _start(
    gateway: ClusterGateway,
    target: Target,
    alert: Alert | None,
    writer: BundleWriter,
    options: CollectOptions,
    progress: Progress | None,
    action_log: ActionLog | None,
) -> _Run:
    run = _Run(gateway, target, writer, options, alert, progress, action_log)
    run.deadline_at = time.monotonic() + options.total_deadline
    return run


def snapshot(
    gateway: ClusterGateway,
    target: Target,
    *,
    writer: BundleWriter,
    options: CollectOptions | None = None,
    progress: Progress | None = None,
    alert: Alert | None = None,
) -> CollectResult:
    """The quick volatile part (processes and network) into ``writer``; for ``respond``
    before containment. Does not seal the bundle."""
    opts = options or CollectOptions()
    started = time.monotonic()
    run = _start(gateway, target, alert, writer, opts, progress, None)
    run.located.set()
    ok = _run_collectors(run, VOLATILE)
    return _result(run, VOLATILE, started, ok)


def collect(
    gateway: ClusterGateway,
    target: Target,
    *,
    alert: Alert | None,
    writer: BundleWriter,
    options: CollectOptions | None = None,
    progress: Progress | None = None,
    action_log: ActionLog | None = None,
) -> CollectResult:
    """Every collector into ``writer`` (which is not sealed here: see ``run_collect``).

    With ``options.ephemeral_debug``, when the image has no tools, an ephemeral debug
    container is added (``action_log``, by default the incident's, records it) and the
    in-pod collectors run again there, reading the suspect container through
    ``/proc/1/root``.
    """
    pending = begin(
        gateway,
        target,
        alert=alert,
        writer=writer,
        options=options,
        progress=progress,
        action_log=action_log,
    )
    return pending.wait(target)


@dataclass
class Pending:
    """Collectors started by :func:`begin`; :meth:`wait` collects their result."""

    run: _Run
    names: list[str]
    done: dict[str, threading.Event]
    started: float
    launched: bool = True

    def wait(self, target: Target | None = None, *, interrupted: bool = False) -> CollectResult:
        """``target``: locate's final target (same pod and container, with the owner
        chain), when collection began from the one it handed over before. Waits for
        every collector (Ctrl-C, or ``interrupted``: the bundle keeps what was
        captured), then runs the ephemeral debug pass if asked and needed."""
        run, names, opts = self.run, self.names, self.run.options
        if target is not None:
            run.target = target
        run.located.set()
        ok = _await(run, self.done, interrupted=interrupted or not self.launched)
        no_tools = NO_TOOLS_NOTE in run.notes
        if ok and no_tools and not opts.ephemeral_debug:
            run.note("re-run with --ephemeral-debug to collect through a debug container")
        if ok and no_tools and opts.ephemeral_debug:
            ok = _debug_pass(run, names)
        return _result(run, names, self.started, ok)


def begin(
    gateway: ClusterGateway,
    target: Target,
    *,
    alert: Alert | None,
    writer: BundleWriter,
    options: CollectOptions | None = None,
    progress: Progress | None = None,
    action_log: ActionLog | None = None,
    located: bool = True,
) -> Pending:
    """Start every collector into ``writer`` and return at once.

    ``located=False``: ``target`` is the one locate hands over before it has read the
    owner chain (``on_found``); the collectors that need the chain (owners, the other
    containers' logs) wait for :meth:`Pending.wait` to give the final one."""
    opts = options or CollectOptions()
    started = time.monotonic()
    if action_log is None and writer.actions_path is not None:
        # The incident's own log (the writer was created for it).
        operator = writer.info.get("Falcoir-Operator") or None
        action_log = ActionLog(writer.actions_path, writer.incident_id, operator)
    run = _start(gateway, target, alert, writer, opts, progress, action_log)
    if located:
        run.located.set()
    names = [n for n in COLLECTORS if opts.volatile or n not in VOLATILE]
    done = {n: threading.Event() for n in names}
    try:
        _launch(run, names, done)
    except KeyboardInterrupt:
        return Pending(run, names, done, started, launched=False)
    return Pending(run, names, done, started)


def _debug_pass(run: _Run, names: Sequence[str]) -> bool:
    """The in-pod collectors again, in an ephemeral debug container."""
    debug = add_debug_container(run)
    if debug is None:
        return True
    first = dict(run.outcomes)
    run.container = debug
    run.root = "/proc/1/root"
    run.label = "debug/"
    run.procs_ready = threading.Event()
    run.marker = scripts.new_marker()
    again = [n for n in EXEC_COLLECTORS if n in names]
    for n in again:
        run.outcomes.pop(n, None)
    ok = _run_collectors(run, again)
    for n in again:
        prev = first.get(n)
        cur = run.outcomes.get(n)
        if cur is not None:
            extra = f"ran in ephemeral container {debug}"
            run.outcomes[n] = CollectorOutcome(
                cur.name,
                cur.status,
                f"{cur.note}; {extra}" if cur.note else extra,
                (prev.artifacts if prev else ()) + cur.artifacts,
                cur.bytes + (prev.bytes if prev else 0),
            )
    return ok
