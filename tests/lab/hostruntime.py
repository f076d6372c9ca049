"""A test PodRuntime that runs containers and exec as plain host subprocesses.

Lets the API server's exec, logs and ephemeral containers be tested end to end before
(and independently of) the Linux runtime. Loaded by the lab server with
``--runtime tests.lab.hostruntime:make_runtime``. Never used in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import shutil
import struct
import termios
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from falcoir.lab.runtime import ContainerNotRunning, ExecNotFound, RuntimeEvents
from falcoir.lab.virtual import running_status

JSON = dict[str, Any]


def _cri_ts() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


class HostExec:
    """An exec'd host process (with a pty when ``tty``)."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.proc = proc
        self.master = master
        self.stderr: asyncio.StreamReader | None
        if master is None:
            assert proc.stdout is not None
            self.stdout = proc.stdout
            self.stderr = proc.stderr
        else:
            self.stdout = asyncio.StreamReader()
            self.stderr = None
            loop = asyncio.get_running_loop()

            def readable() -> None:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if data:
                    self.stdout.feed_data(data)
                else:
                    loop.remove_reader(master)
                    self.stdout.feed_eof()

            loop.add_reader(master, readable)

    async def write_stdin(self, data: bytes) -> None:
        if self.master is not None:
            os.write(self.master, data)
        elif self.proc.stdin is not None:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self.master is not None:
            os.write(self.master, b"\x04")
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self.master is not None:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            self.last_size = (width, height)

    async def wait(self) -> int:
        code = await self.proc.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class HostRuntime:
    isolated = False

    def __init__(self, state_dir: Path, node_name: str, *, enforce_network_policy: bool = True):
        self.state_dir = state_dir
        self.node_name = node_name
        self.enforce_network_policy = enforce_network_policy
        self._events: RuntimeEvents | None = None
        self._procs: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.policy_calls: list[tuple[int, int]] = []

    def _log(self, pod: JSON, container: str) -> Path:
        md = pod["metadata"]
        d = self.state_dir / "host-pods" / f"{md['namespace']}_{md['name']}_{md['uid']}"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{container}.log"

    async def start(self, events: RuntimeEvents) -> None:
        self._events = events
        (self.state_dir / "host-runtime.json").write_text(
            f'{{"node": "{self.node_name}", "enforce": {str(self.enforce_network_policy).lower()}}}'
        )

    async def _capture(self, proc: asyncio.subprocess.Process, path: Path) -> None:
        async def one(reader: asyncio.StreamReader | None, stream: str) -> None:
            if reader is None:
                return
            while True:
                line = await reader.readline()
                if not line:
                    return
                full = line.endswith(b"\n")
                text = line.rstrip(b"\n")
                with path.open("ab") as fh:
                    fh.write(
                        f"{_cri_ts()} {stream} {'F' if full else 'P'} ".encode() + text + b"\n"
                    )

        await asyncio.gather(one(proc.stdout, "stdout"), one(proc.stderr, "stderr"))

    async def _start_container(self, pod: JSON, c: JSON) -> None:
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        if not argv:
            argv = ["sleep", "3600"]
        path = self._log(pod, c["name"])
        path.touch()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._procs[(pod["metadata"]["uid"], c["name"])] = proc
        task = asyncio.ensure_future(self._capture(proc, path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_pod(self, pod: JSON) -> None:
        for c in pod["spec"].get("containers") or []:
            await self._start_container(pod, c)
        if self._events is not None:
            md = pod["metadata"]
            self._events.pod_status(
                md["namespace"],
                md["name"],
                md["uid"],
                running_status(pod, "10.88.0.2", "127.0.0.1"),
            )
            self._events.pod_event(
                md["namespace"],
                md["name"],
                md["uid"],
                "Started",
                "Started host processes",
                "Normal",
            )

    async def kill_pod(self, pod: JSON, grace_seconds: int) -> None:
        uid = pod["metadata"]["uid"]
        for (puid, name), proc in list(self._procs.items()):
            if puid != uid:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace_seconds)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            del self._procs[(puid, name)]

    async def exec(
        self, pod: JSON, container: str, argv: list[str], *, stdin: bool, tty: bool
    ) -> HostExec:
        proc_key = (pod["metadata"]["uid"], container)
        if proc_key not in self._procs:
            raise ContainerNotRunning(f"container {container} is not running")
        if shutil.which(argv[0]) is None:
            raise ExecNotFound(
                f"failed to exec in container: failed to start exec: OCI runtime exec failed: "
                f'exec failed: unable to start container process: exec: "{argv[0]}": '
                "executable file not found in $PATH: unknown"
            )
        if tty:
            master, slave = pty.openpty()
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
            )
            os.close(slave)
            return HostExec(proc, master)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return HostExec(proc, None)

    def log_path(self, pod: JSON, container: str, *, previous: bool) -> Path | None:
        if previous:
            return None
        path = self._log(pod, container)
        return path if path.exists() else None

    async def add_ephemeral_container(self, pod: JSON, container: JSON) -> None:
        await self._start_container(pod, container)
        if self._events is not None:
            md = pod["metadata"]
            self._events.pod_status(
                md["namespace"],
                md["name"],
                md["uid"],
                running_status(pod, "10.88.0.2", "127.0.0.1"),
            )

    async def apply_network_policies(
        self,
        pods: list[JSON],
        policies: list[JSON],
        namespaces: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.policy_calls.append((len(pods), len(policies)))
        (self.state_dir / "policy-calls.txt").write_text(
            "\n".join(f"{p} {q}" for p, q in self.policy_calls)
        )
        # What the runtime was told about namespaces, for tests of namespaceSelector.
        (self.state_dir / "policy-namespaces.json").write_text(json.dumps(namespaces))

    async def shutdown(self) -> None:
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        self._procs.clear()


def make_runtime(
    state_dir: Path, node_name: str, *, enforce_network_policy: bool = True
) -> HostRuntime:
    return HostRuntime(state_dir, node_name, enforce_network_policy=enforce_network_policy)
