"""Start, stop and inspect a lab from its state dir (no aiohttp imported here)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from falcoir.errors import LabError


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "falcoir" / "lab"


@dataclass(frozen=True)
class LabStatus:
    state_dir: Path
    running: bool
    pid: int | None
    server: str | None
    port: int | None
    kubeconfig: Path | None
    runtime: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "state_dir": str(self.state_dir),
            "running": self.running,
            "pid": self.pid,
            "server": self.server,
            "port": self.port,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "runtime": self.runtime,
        }


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "lab.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int, state_dir: Path) -> bool:
    """True if ``pid`` is a lab server process for this state dir (guards against a
    recycled pid: we never signal a process we did not start)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in cmdline]
    if "falcoir.lab.serve" not in args and not any(
        a.endswith("falcoir/lab/serve.py") for a in args
    ):
        return False
    try:
        idx = args.index("--state-dir")
        return Path(args[idx + 1]).resolve() == state_dir.resolve()
    except (ValueError, IndexError):
        return False


def status(state_dir: Path) -> LabStatus:
    pid = _read_pid(state_dir)
    running = pid is not None and _is_our_server(pid, state_dir)
    info: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((state_dir / "server.json").read_text())
    kube = state_dir / "kubeconfig"
    port = info.get("port")
    return LabStatus(
        state_dir=state_dir,
        running=running,
        pid=pid if running else None,
        server=str(info["server"]) if running and info.get("server") else None,
        port=int(port) if running and isinstance(port, int) else None,
        kubeconfig=kube if running and kube.exists() else None,
        runtime=str(info["runtime"]) if running and info.get("runtime") else None,
    )


def _server_argv(
    state_dir: Path,
    *,
    port: int,
    nodes: int,
    latency_ms: float,
    enforce_network_policy: bool,
    runtime: str | None,
) -> list[str]:
    argv = [sys.executable, "-m", "falcoir.lab.serve", "--state-dir", str(state_dir)]
    argv += ["--port", str(port), "--nodes", str(nodes), "--latency-ms", str(latency_ms)]
    if not enforce_network_policy:
        argv.append("--no-enforce-network-policy")
    if runtime:
        argv += ["--runtime", runtime]
    return argv


def up(
    state_dir: Path,
    *,
    port: int = 0,
    nodes: int = 0,
    latency_ms: float = 0.0,
    enforce_network_policy: bool = True,
    runtime: str | None = None,
    detach: bool = True,
    timeout: float = 20.0,
) -> LabStatus:
    """Start a lab; with ``detach`` return once it answers, else run in the foreground."""
    import importlib.util

    missing = [m for m in ("aiohttp", "cryptography") if importlib.util.find_spec(m) is None]
    if missing:
        raise LabError(
            f"the lab needs {' and '.join(missing)}, which is not installed",
            hint="pip install 'falcoir[lab]'",
        )
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = status(state_dir)
    if current.running:
        return current
    for stale in ("server.json", "lab.pid"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / stale).unlink()
    argv = _server_argv(
        state_dir,
        port=port,
        nodes=nodes,
        latency_ms=latency_ms,
        enforce_network_policy=enforce_network_policy,
        runtime=runtime,
    )
    if not detach:
        # The same server process, in the foreground: its log goes to our stderr and
        # Ctrl-C (or SIGTERM to us) stops it cleanly.
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        try:
            child.wait()
        except KeyboardInterrupt:
            child.terminate()
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()  # never leave a server running behind a Ctrl-C
                child.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
        return status(state_dir)
    log = (state_dir / "lab.log").open("ab")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / "server.json").exists():
            return status(state_dir)
        if proc.poll() is not None:
            tail = _log_tail(state_dir)
            raise LabError(
                f"the lab server exited with status {proc.returncode} before it answered",
                hint=f"see {state_dir / 'lab.log'}" + (f": {tail}" if tail else ""),
            )
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise LabError(
        f"the lab server did not answer within {timeout:.0f} s", hint=f"see {state_dir / 'lab.log'}"
    )


def _log_tail(state_dir: Path) -> str:
    try:
        lines = (state_dir / "lab.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def down(state_dir: Path, *, timeout: float = 40.0) -> list[str]:
    """Stop the lab (SIGTERM, then SIGKILL) and remove what its runtime left behind.
    Returns what was done, one line each."""
    done: list[str] = []
    pid = _read_pid(state_dir)
    if pid is not None and _is_our_server(pid, state_dir):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_our_server(pid, state_dir):
            time.sleep(0.05)
        if _is_our_server(pid, state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            done.append(f"killed lab server pid {pid} (did not stop within {timeout:.0f} s)")
        else:
            done.append(f"stopped lab server pid {pid}")
    for stale in ("server.json", "lab.pid"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / stale).unlink()
    try:
        from falcoir.lab.linux import cleanup  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "falcoir.lab.linux":
            raise
    else:
        done.extend(cleanup(state_dir))
    return done
