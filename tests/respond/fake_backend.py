"""A fake respond backend: records the order of calls, fails or stalls on demand."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from falcoir.core.alert import Alert, Process
from falcoir.core.incident import ActionLog, Incident
from falcoir.core.policy import ActionOptions
from falcoir.core.respond.backend import Plan, Progress
from falcoir.core.target import LocateMethod, OwnerRef, Target

PS = (
    b"  PID  PPID USER     COMMAND\n"
    b"    1     0 root     /bin/sh -c sleep 1 && /tmp/xmrig -o pool.example.com:3333\n"
    b"    7     1 root     /tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x\n"
    b"    9     1 root     sleep 3600\n"
)
NETSTAT = (
    b"Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n"
    b"tcp 0 0 10.42.0.7:40112 10.42.0.1:3333 ESTABLISHED 7/xmrig\n"
)
LS_TMP = (
    b"total 8\n"
    b"drwxrwxrwt 2 root root 4096 2026-11-28 14:00:00.000000000 +0000 .\n"
    b"-rwxr-xr-x 1 root root 1234 2026-11-28 14:00:01.000000000 +0000 xmrig\n"
)


def make_alert(**kw: Any) -> Alert:
    base: dict[str, Any] = {
        "raw": "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
        "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)",
        "source_format": "text",
        "time": "08:30:00.123",
        "priority": "Critical",
        "rule": "Suspicious crypto miner process",
        "message": "Suspicious crypto miner process",
        "process": Process(
            name="xmrig",
            cmdline="/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x",
            pid=12345,
        ),
    }
    base.update(kw)
    return Alert(**base)


def make_target(pod: str = "cryptominer-demo-7d9c-abcde", ns: str = "default") -> Target:
    return Target(
        namespace=ns,
        pod=pod,
        container="miner",
        method=LocateMethod.HOST_PID,
        node="lab-node",
        pod_uid=f"uid-{pod}",
        container_id="ab" * 32,
        vpid=7,
        host_pid=12345,
        owner=(
            OwnerRef("ReplicaSet", "cryptominer-demo-7d9c"),
            OwnerRef("Deployment", "cryptominer-demo"),
        ),
        image="ubuntu:latest",
    )


@dataclass
class FakeBundle:
    dir: Path
    files: dict[str, bytes] = field(default_factory=dict)
    sealed: list[bool] = field(default_factory=list)


@dataclass
class FakeBackend:
    """``fail``: step name -> exception; ``delay``: step name -> seconds;
    ``incomplete``: steps whose result says complete=False."""

    fail: dict[str, BaseException] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    incomplete: set[str] = field(default_factory=set)
    target: Target | None = None
    targets: Mapping[str, Target] = field(default_factory=dict)
    calls: list[tuple[str, float, float]] = field(default_factory=list)
    dry_runs: dict[str, bool] = field(default_factory=dict)
    bundles: list[FakeBundle] = field(default_factory=list)
    egress_blocked: bool = True
    owners_delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _enter(self, name: str) -> float:
        start = time.monotonic()
        if name in self.delay:
            time.sleep(self.delay[name])
        if name in self.fail:
            with self.lock:
                self.calls.append((name, start, time.monotonic()))
            raise self.fail[name]
        return start

    def _leave(self, name: str, start: float) -> None:
        with self.lock:
            self.calls.append((name, start, time.monotonic()))

    def order(self) -> list[str]:
        return [c[0] for c in sorted(self.calls, key=lambda c: c[1])]

    def span(self, name: str) -> tuple[float, float]:
        for c in self.calls:
            if c[0] == name:
                return c[1], c[2]
        raise KeyError(name)

    warmed: int = 0

    def warm(self, *, stream: bool = False) -> None:
        with self.lock:
            self.warmed += 1

    def operator(self) -> str:
        return "tester"

    def context(self) -> str:
        return "fake"

    def locate(
        self, alert: Alert, progress: Progress, ahead: object = None, on_found: Any = None
    ) -> Target:
        s = self._enter("locate")
        progress("via the Falco pod's /proc")
        key = alert.k8s.pod or f"pid:{alert.process.pid}"
        target = self.targets.get(key) or self.target or make_target()
        if on_found is not None:
            on_found(replace(target, owner=()))
        time.sleep(self.owners_delay)  # the owner chain, read after the pod is known
        self._leave("locate", s)
        return target

    def check(self, target: Target, plan: Plan) -> dict[str, Any]:
        s = self._enter("check")
        self._leave("check", s)
        return {"owner_effect": "ReplicaSet cryptominer-demo-7d9c will recreate it"}

    def open_bundle(
        self, out_dir: Path, incident: Incident, alert: Alert, target: Target
    ) -> FakeBundle:
        s = self._enter("bundle")
        d = out_dir / f"falcoir-{incident.id}"
        (d / "data").mkdir(parents=True, exist_ok=True)
        b = FakeBundle(d)
        self.bundles.append(b)
        self._leave("bundle", s)
        return b

    def _artifact(self, bundle: FakeBundle, name: str, data: bytes) -> dict[str, Any]:
        path = f"data/{name}"
        (bundle.dir / path).parent.mkdir(parents=True, exist_ok=True)
        (bundle.dir / path).write_bytes(data)
        bundle.files[path] = data
        return {
            "name": name,
            "path": path,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "exit_code": 0,
            "status": "ok",
        }

    def snapshot(  # type: ignore[override]
        self,
        target: Target,
        bundle: FakeBundle,
        progress: Progress,
        started: Any = None,
    ) -> dict[str, Any]:
        self.snapshot_started_at = time.monotonic()
        if started is not None:
            started()  # the commands are on their way; their output takes ``delay``
        s = self._enter("snapshot")
        arts = [
            self._artifact(bundle, "snapshot/processes.txt", PS),
            self._artifact(bundle, "snapshot/network.txt", NETSTAT),
        ]
        self._leave("snapshot", s)
        return {"artifacts": arts, "complete": "snapshot" not in self.incomplete}

    def quarantine(
        self,
        target: Target,
        alert: Alert,
        incident: Incident,
        log: ActionLog,
        options: ActionOptions,
        dry_run: bool,
        progress: Progress,
    ) -> dict[str, Any]:
        s = self._enter("quarantine")
        self.dry_runs["quarantine"] = dry_run
        name = f"falcoir-quarantine-{incident.id}"
        log.append(
            "create",
            "NetworkPolicy",
            target.namespace,
            name,
            "dry-run" if dry_run else "ok",
            dry_run=dry_run,
        )
        self._leave("quarantine", s)
        return {
            "incident": incident.id,
            "policy": {"namespace": target.namespace, "name": name},
            "label": {"key": "falcoir.io/quarantine", "value": incident.id},
            "verified": {"egress_blocked": None if dry_run else self.egress_blocked},
            "dry_run": dry_run,
        }

    def collect(
        self,
        target: Target,
        bundle: FakeBundle,
        options: ActionOptions,
        progress: Progress,  # type: ignore[override]
    ) -> dict[str, Any]:
        s = self._enter("collect")
        arts = [
            self._artifact(bundle, "exec/ls-tmp.txt", LS_TMP),
            self._artifact(bundle, "binary/xmrig.sha256", b"e3b0" * 16 + b"  /tmp/xmrig\n"),
        ]
        if "collect" in self.incomplete:
            arts[-1]["status"] = "timeout"
        self._leave("collect", s)
        return {"artifacts": arts, "complete": "collect" not in self.incomplete}

    def seal(  # type: ignore[override]
        self,
        bundle: FakeBundle,
        complete: bool,
        note: str | None,
        target: Any = None,
        partial: str | None = None,
    ) -> dict[str, Any]:
        s = self._enter("seal")
        if target is not None:
            doc = target.to_dict()
            if partial is not None:
                doc.update(partial=True, partial_reason=partial)
            bundle.files["target.json"] = json.dumps(doc).encode()
        bundle.sealed.append(complete)
        self._leave("seal", s)
        return self._sealed(bundle, complete)

    def _sealed(self, bundle: FakeBundle, complete: bool) -> dict[str, Any]:
        digest = hashlib.sha256(json.dumps(sorted(bundle.files)).encode()).hexdigest()
        return {
            "dir": str(bundle.dir),
            "archive": str(bundle.dir) + ".tar.gz",
            "archive_sha256": digest,
            "complete": complete,
        }

    def delete(
        self,
        target: Target,
        incident: Incident,
        log: ActionLog,
        options: ActionOptions,
        dry_run: bool,
        progress: Progress,
    ) -> dict[str, Any]:
        s = self._enter("delete")
        self.dry_runs["delete"] = dry_run
        log.append(
            "delete",
            "Pod",
            target.namespace,
            target.pod,
            "dry-run" if dry_run else "ok",
            dry_run=dry_run,
        )
        self._leave("delete", s)
        return {"pod": target.pod, "deleted": not dry_run, "owner_effect": "recreated"}

    def add_to_bundle(
        self,
        bundle_dir: Path,
        files: Mapping[str, bytes],
        complete: bool,
        incident: Incident | None,
    ) -> dict[str, Any]:
        s = self._enter("report")
        bundle = next(b for b in self.bundles if b.dir == bundle_dir)
        if incident is not None and incident.actions_path.exists():
            files = {**files, "actions.jsonl": incident.actions_path.read_bytes()}
        for name, data in files.items():
            (bundle_dir / "data" / name).write_bytes(data)
            bundle.files["data/" + name] = data
        bundle.sealed.append(complete)
        self._leave("report", s)
        return self._sealed(bundle, complete)
