"""Exec over WebSocket (the channel.k8s.io protocols) and pod logs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from datetime import UTC, datetime
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
                proc.resize(int(size["Width"]), int(size["Height"]))
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


def _parse_log(raw: bytes, fallback_ts: str) -> list[tuple[str, bytes]]:
    """``(timestamp, line with newline)``: CRI log format when the runtime wrote it,
    raw bytes otherwise."""
    out: list[tuple[str, bytes]] = []
    pending = b""
    for line in raw.splitlines(keepends=False):
        m = CRI_LINE.match(line)
        if m is None:
            out.append((fallback_ts, line + b"\n"))
            continue
        ts, tag, text = m.group(1).decode(), m.group(3), m.group(4)
        if tag == b"P":
            pending += text
            continue
        out.append((ts, pending + text + b"\n"))
        pending = b""
    if pending:
        out.append((fallback_ts, pending))
    if raw and not raw.endswith(b"\n") and out and CRI_LINE.match(raw.splitlines()[-1]) is None:
        ts, text = out[-1]
        out[-1] = (ts, text[:-1])
    return out


def _ts_to_datetime(ts: str) -> datetime | None:
    try:
        head = ts[:19]
        return datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


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
    now_ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raw = _read_capped(path)
    lines = _parse_log(raw, now_ts)
    if since is not None:
        cutoff = datetime.now(UTC).timestamp() - since
        kept = []
        for ts, text in lines:
            when = _ts_to_datetime(ts)
            if when is None or when.timestamp() >= cutoff:
                kept.append((ts, text))
        lines = kept
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []

    def render(entries: list[tuple[str, bytes]]) -> bytes:
        if timestamps:
            return b"".join(f"{ts} ".encode() + text for ts, text in entries)
        return b"".join(text for _, text in entries)

    body = render(lines)
    if limit is not None:
        body = body[:limit]
    if not follow:
        return web.Response(body=body, content_type="text/plain")

    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    sent = len(body)
    await resp.write(body)
    offset = len(raw) if len(raw) < LOG_CAP else path.stat().st_size
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
                # Only whole lines (CRI) are parsed; keep a partial tail for later.
                cut = chunk.rfind(b"\n") + 1 if b"\n" in chunk else 0
                if cut == 0 and CRI_LINE.match(chunk) is not None:
                    continue
                if cut == 0:
                    cut = len(chunk)
                offset += cut
                out = render(
                    _parse_log(chunk[:cut], datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
                )
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
