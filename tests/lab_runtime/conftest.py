"""A LinuxRuntime driven directly (no API server), on an event loop in a thread."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from falcoir.lab.linux import LinuxRuntime, can_isolate

ISOLATED, WHY_NOT = can_isolate()
needs_isolation = pytest.mark.skipif(
    not ISOLATED, reason=f"needs root on Linux for namespaces and cgroups ({WHY_NOT})"
)
needs_nft = pytest.mark.skipif(
    shutil.which("nft") is None, reason="NetworkPolicy enforcement needs nft (apt nftables)"
)


class Recorder:
    """RuntimeEvents that keeps every status and event."""

    def __init__(self) -> None:
        self.statuses: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[str, dict[str, Any]]] = []
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def pod_status(self, namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        with self.lock:
            self.statuses[uid] = status
            self.history.append((uid, status))

    def pod_event(
        self, namespace: str, name: str, uid: str, reason: str, message: str, type_: str
    ) -> None:
        with self.lock:
            self.events.append((uid, reason, message))


class Harness:
    def __init__(self, state_dir: Path, *, enforce: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.state_dir = state_dir
        self.events = Recorder()
        self.rt = LinuxRuntime(state_dir, "lab-node", enforce_network_policy=enforce)
        self.run(self.rt.start(self.events))

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def exec(
        self,
        pod: dict[str, Any],
        container: str,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        tty: bool = False,
        timeout: float = 30,
    ) -> tuple[int, bytes, bytes]:
        async def go() -> tuple[int, bytes, bytes]:
            proc = await self.rt.exec(pod, container, argv, stdin=stdin is not None, tty=tty)
            if stdin is not None:
                await proc.write_stdin(stdin)
                await proc.close_stdin()
            out_task = asyncio.ensure_future(proc.stdout.read())
            err = await proc.stderr.read() if proc.stderr is not None else b""
            out = await out_task
            rc = await proc.wait()
            close = getattr(proc, "close", None)
            if close is not None:
                close()
            return rc, out, err

        return self.run(asyncio.wait_for(go(), timeout), timeout + 5)

    def pod(self, name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": spec.pop("namespace", "default"),
                "uid": str(uuid.uuid4()),
                "labels": spec.pop("labels", {}),
            },
            "spec": {"containers": containers, "nodeName": "lab-node", **spec},
        }
        self.run(self.rt.run_pod(pod))
        return pod

    def status(self, pod: dict[str, Any]) -> dict[str, Any]:
        with self.events.lock:
            return self.events.statuses[pod["metadata"]["uid"]]

    def wait_for(self, pred: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = pred()
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or pred}")

    def close(self) -> None:
        try:
            self.run(self.rt.shutdown(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("lab-runtime"))
    try:
        yield h
    finally:
        h.close()


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(repo_root())}


PY = sys.executable


CRI_RECORD = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)$", re.DOTALL
)


def log_text(path: Path | None) -> str:
    """What ``kubectl logs`` shows of a runtime log file (which is in the CRI format:
    every record is checked to be one)."""
    if path is None or not path.exists():
        return ""
    out = []
    for record in path.read_text().split("\n")[:-1]:
        m = CRI_RECORD.match(record)
        assert m is not None, f"not a CRI log record: {record!r}"
        out.append(m.group(3) + ("\n" if m.group(2) == "F" else ""))
    return "".join(out)
