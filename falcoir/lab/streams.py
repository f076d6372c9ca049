"""Exec over WebSocket (the channel.k8s.io protocols) and pod logs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from falcoir.lab.errors import ApiStatus, bad_request
from falcoir.lab.runtime import ContainerNotRunning, ExecNotFound, ExecProcess
from falcoir.lab.store import BY_PATH

if TYPE_CHECKING:
    from falcoir.lab.server import LabServer

JSON = dict[str, Any]
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
CHUNK = 32 * 1024
LOG_CAP = 64 * 1024 * 1024
PODS = BY_PATH[("v1", "pods")]


def _flag(query: Any, key: str) -> bool:
    value = query.get(key)
    if value is None:
        return False
    return str(value).strip().lower() not in ("0", "false")


def _container_names(pod: JSON) -> list[str]:
    spec = pod.get("spec", {})
    return [
        c["name"]
        for key in ("containers", "initContainers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def _default_container(pod: JSON) -> str:
    ann = pod["metadata"].get("annotations") or {}
    default = ann.get("kubectl.kubernetes.io/default-container")
    if default:
        return str(default)
    return str(pod["spec"]["containers"][0]["name"])


def exit_status(code: int) -> JSON:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: command terminated with exit code {code}",  # noqa: E501
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error(message: str) -> JSON:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


async def handle_exec(server: LabServer, request: web.Request, pod: JSON) -> web.StreamResponse:
    q = request.query
    argv = q.getall("command", [])
    name = pod["metadata"]["name"]
    if not argv:
        raise bad_request("you must specify at least one command for the container")
    stdin, stdout, stderr, tty = (_flag(q, k) for k in ("stdin", "stdout", "stderr", "tty"))
    if not (stdin or stdout or stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    container = q.get("container") or _default_container(pod)
    if container not in _container_names(pod):
        raise bad_request(f"container {container} is not valid for pod {name}")
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise bad_request(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    node = pod.get("spec", {}).get("nodeName", "")
    runtime = server.runtime_for(node)
    if runtime is None or (node != "lab-node" and node in server.virtual_runtimes):
        raise bad_request(
            f"pod {name} runs on {node or 'no node'}, a virtual node of the falcoir lab: "
            "it is an object only and has no processes to exec into"
        )
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade != "websocket":
        raise bad_request(
            "Upgrade request required: the falcoir lab serves exec over WebSocket "
            "(v5.channel.k8s.io) only; SPDY is not supported"
        )
    ws = web.WebSocketResponse(
        protocols=PROTOCOLS, compress=False, autoping=True, max_msg_size=0, decode_text=False
    )
    await ws.prepare(request)
    proto = ws.ws_protocol or "channel.k8s.io"
    b64 = proto == "base64.channel.k8s.io"
    json_status = proto in ("v4.channel.k8s.io", "v5.channel.k8s.io")

    # Fault injection: cut the stream mid-way, as a dropped connection would (no status
    # on channel 3, no close frame).
    drop = server.faults.drop_exec()

    def cut() -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise ConnectionResetError("exec stream dropped by the lab's exec_drop fault")

    async def send(channel: int, data: bytes) -> None:
        if ws.closed:
            return
        if drop and data and channel in (STDOUT, STDERR):
            await ws.send_bytes(bytes([channel]) + data[: max(1, len(data) // 2)])
            await asyncio.sleep(0.05)  # let the half frame leave before the cut
            cut()
        if b64:
            await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await ws.send_bytes(bytes([channel]) + data)

    async def finish(status: JSON) -> None:
        if drop:
            with contextlib.suppress(ConnectionResetError):
                cut()
            return
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            if json_status:
                await send(ERROR, json.dumps(status).encode())
            elif status.get("status") != "Success":
                await send(ERROR, str(status.get("message", "")).encode())
            await ws.close(code=1000)

    # An empty frame on the lowest writable channel tells the client we are up.
    first = STDOUT if stdout else STDERR if stderr else ERROR
    await send(first, b"")
    early: list[Any] = []
    if tty:
        # kubectl sends the terminal size right after the upgrade: wait a moment for it so
        # that the command starts with the right size (as it would on a real node).
        with contextlib.suppress(TimeoutError):
            while True:
                msg = await asyncio.wait_for(ws.receive(), 0.25)
                early.append(msg)
                data = msg.data if isinstance(msg.data, bytes) else b""
                if msg.type is not WSMsgType.BINARY or data[:1] in (bytes([RESIZE]), b"4"):
                    break
    try:
        proc: ExecProcess = await runtime.exec(pod, container, list(argv), stdin=stdin, tty=tty)
    except ExecNotFound as exc:
        await finish(internal_error(f"error executing command in container: {exc}"))
        return ws
    except ContainerNotRunning as exc:
        await finish(internal_error(f"error executing command in container: {exc}"))
        return ws
    except Exception as exc:
        await finish(internal_error(f"error executing command in container: {exc}"))
        return ws

    async def pump(reader: asyncio.StreamReader | None, channel: int, wanted: bool) -> None:
        if reader is None:
            return
        while True:
            data = await reader.read(CHUNK)
            if not data:
                return
            if wanted:
                await send(channel, data)

    async def handle(msg: Any) -> bool:
        """Act on one client message; False when the client is gone."""
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return False
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            return True
        data = msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
        if b64 and data:
            try:
                data = bytes([data[0] - ord("0")]) + base64.b64decode(data[1:])
            except ValueError:
                return True
        if not data:
            return True
        channel, payload = data[0], data[1:]
        if channel == STDIN and stdin:
            if payload:
                await proc.write_stdin(payload)
        elif channel == CLOSE_SIGNAL and payload[:1] == bytes([STDIN]):
            await proc.close_stdin()
        elif channel == RESIZE:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                size = json.loads(payload)
                width, height = int(size["Width"]), int(size["Height"])
                # As the kubelet (HandleResizing): a size with a zero side is ignored.
                # kubectl sends {"Width":0,"Height":0} when its own terminal has no size
                # (under `script` with no terminal), which would squash the command's.
                if width >= 1 and height >= 1:
                    proc.resize(width, height)
        return True

    async def read_client() -> None:
        for msg in early:
            if not await handle(msg):
                return
        async for msg in ws:
            if not await handle(msg):
                return

    client = asyncio.ensure_future(read_client())
    pumps: asyncio.Future[Any] = asyncio.gather(
        pump(proc.stdout, STDOUT, stdout), pump(proc.stderr, STDERR, stderr)
    )
    try:
        done, _ = await asyncio.wait({client, pumps}, return_when=asyncio.FIRST_COMPLETED)
        if pumps in done and pumps.exception() is not None:
            proc.kill()  # the stream is gone (cut by a fault, or the client vanished)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
            return ws
        if client in done and pumps not in done:
            # The client went away (or only closed its side): wait briefly for output.
            if ws.closed:
                proc.kill()
            await pumps
        code = await proc.wait()
        await finish(exit_status(code))
    except (ConnectionResetError, asyncio.CancelledError):
        proc.kill()
        raise
    finally:
        client.cancel()
        with contextlib.suppress(Exception):
            await client
    return ws


# --------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------

CRI_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) ?(.*)$"
)


class LogEntry:
    """One line (or the unterminated end of one) as ``kubectl logs`` shows it."""

    __slots__ = ("continued", "text", "ts")

    def __init__(self, ts: str, text: bytes, continued: bool = False) -> None:
        self.ts = ts
        self.text = text
        self.continued = continued
        """The rest of a line already partly sent (no timestamp prefix in front of it)."""


class LogParser:
    """Turns a container log into entries: the CRI format the runtime writes
    (``<RFC3339Nano> stdout|stderr F|P <text>``: ``P`` records join the next one, an
    ``F`` ends the line), or raw bytes (stamped with the read time) from runtimes that
    write those. Stateful, so ``kubectl logs -f`` can feed it chunk by chunk."""

    def __init__(self) -> None:
        self.partial_ts: str | None = None
        """Timestamp of a line whose start was already emitted (its ``P`` records)."""

    def feed(self, raw: bytes, fallback_ts: str, *, final: bool) -> list[LogEntry]:
        out: list[LogEntry] = []
        pending = b""
        pending_ts: str | None = None
        lines = raw.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" when raw ends with one
        for line in lines:
            m = CRI_LINE.match(line)
            if m is None:
                out.append(LogEntry(fallback_ts, line + b"\n"))
                continue
            ts, tag, text = m.group(1).decode(), m.group(3), m.group(4)
            if pending_ts is None:
                pending_ts = ts
            if tag == b"P":
                pending += text
                continue
            continued = self.partial_ts is not None
            out.append(LogEntry(self.partial_ts or pending_ts, pending + text + b"\n", continued))
            pending, pending_ts, self.partial_ts = b"", None, None
        if pending and pending_ts is not None:
            # The start of a line whose end has not been written (yet).
            continued = self.partial_ts is not None
            out.append(LogEntry(self.partial_ts or pending_ts, pending, continued))
            self.partial_ts = self.partial_ts or pending_ts
        if tail and final:
            out.append(LogEntry(fallback_ts, tail))  # raw bytes without a final newline
        return out


def rfc3339nano(ts: str) -> str:
    """The kubelet's ``--timestamps`` form: RFC3339 with trailing fraction zeros cut."""
    head, dot, rest = ts.partition(".")
    if not dot:
        return ts
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits) :]
    digits = digits.rstrip("0")
    return f"{head}.{digits}{zone}" if digits else f"{head}{zone}"


def _ts_to_epoch(ts: str) -> float | None:
    """Seconds since the epoch of an RFC3339 timestamp (any fraction length)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", ts)
    if m is None:
        return None
    try:
        base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    zone = m.group(3)
    if zone == "Z":
        aware = base.replace(tzinfo=UTC)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
        aware = base.replace(tzinfo=timezone(offset))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return aware.timestamp() + frac


def _read_capped(path: Path) -> bytes:
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - LOG_CAP))
        return fh.read(LOG_CAP)


async def handle_log(server: LabServer, request: web.Request, pod: JSON) -> web.StreamResponse:
    q = request.query
    name = pod["metadata"]["name"]
    container = q.get("container")
    names = _container_names(pod)
    if not container:
        if len(
            pod["spec"].get("containers", [])
        ) > 1 and "kubectl.kubernetes.io/default-container" not in (
            pod["metadata"].get("annotations") or {}
        ):
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(c['name'] for c in pod['spec']['containers'])}]"
            )
        container = _default_container(pod)
    if container not in names:
        raise bad_request(f"container {container} is not valid for pod {name}")
    previous = _flag(q, "previous")
    follow = _flag(q, "follow") and not previous
    timestamps = _flag(q, "timestamps")
    try:
        tail = int(q["tailLines"]) if "tailLines" in q else None
        limit = int(q["limitBytes"]) if "limitBytes" in q else None
        since = int(q["sinceSeconds"]) if "sinceSeconds" in q else None
        since_time = q.get("sinceTime")
    except ValueError as exc:
        raise bad_request(f"invalid log option: {exc}") from exc
    if limit is not None and limit < 1:
        raise ApiStatus(422, "Invalid", "limitBytes: Invalid value: must be greater than 0", {})
    node = pod.get("spec", {}).get("nodeName", "")
    runtime = server.runtime_for(node)
    path = runtime.log_path(pod, container, previous=previous) if runtime is not None else None
    if path is None or not path.exists():
        if previous:
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        statuses = {
            c.get("name"): c
            for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
            for c in pod.get("status", {}).get(key) or []
        }
        state = (statuses.get(container) or {}).get("state") or {}
        if "waiting" in state or container not in statuses:
            reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        return web.Response(body=b"", content_type="text/plain")

    def now_ts() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    raw = _read_capped(path)
    parser = LogParser()
    lines = parser.feed(raw, now_ts(), final=not follow)
    # Where following goes on: the end of the file, less an unterminated last record
    # (read again once it is whole).
    offset = path.stat().st_size if len(raw) >= LOG_CAP else len(raw)
    if follow and raw and not raw.endswith(b"\n"):
        offset -= len(raw) - (raw.rfind(b"\n") + 1)
    cutoff: float | None = None
    if since is not None:
        cutoff = datetime.now(UTC).timestamp() - since
    elif since_time is not None:
        cutoff = _ts_to_epoch(since_time)
        if cutoff is None:
            raise bad_request(f"invalid sinceTime: {since_time}")
    if cutoff is not None:
        lines = [e for e in lines if (_ts_to_epoch(e.ts) or cutoff) >= cutoff]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []

    def render(entries: list[LogEntry]) -> bytes:
        if timestamps:
            return b"".join(
                (b"" if e.continued else f"{rfc3339nano(e.ts)} ".encode()) + e.text for e in entries
            )
        return b"".join(e.text for e in entries)

    body = render(lines)
    if limit is not None:
        body = body[:limit]
    if not follow:
        return web.Response(body=body, content_type="text/plain")

    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    sent = len(body)
    await resp.write(body)
    uid = pod["metadata"]["uid"]
    ns = pod["metadata"]["namespace"]
    idle_after_gone = 0
    try:
        while limit is None or sent < limit:
            await asyncio.sleep(0.2)
            if server.stopping or request.transport is None or request.transport.is_closing():
                break
            try:
                size = path.stat().st_size
            except OSError:
                break
            if size > offset:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(min(size - offset, 1024 * 1024))
                # Only whole records are parsed; a partial tail is read again later
                # (the runtime writes whole CRI records; raw output is sent as it comes).
                cut = chunk.rfind(b"\n") + 1
                raw_tail = cut == 0 and CRI_LINE.match(chunk) is None
                if cut == 0 and not raw_tail:
                    continue
                if raw_tail:
                    cut = len(chunk)
                offset += cut
                out = render(parser.feed(chunk[:cut], now_ts(), final=raw_tail))
                if limit is not None:
                    out = out[: limit - sent]
                sent += len(out)
                await resp.write(out)
                continue
            current = server.store.get(PODS, ns, pod["metadata"]["name"])
            gone = current is None or current["metadata"].get("uid") != uid
            if not gone and current is not None:
                for c in current.get("status", {}).get("containerStatuses") or []:
                    if c.get("name") == container and "terminated" in (c.get("state") or {}):
                        gone = True
            if gone:
                idle_after_gone += 1
                if idle_after_gone > 2:
                    break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp
