"""Exec over the WebSocket channel protocol, bytes in, bytes out, bounded.

We do not use ``kubernetes.stream.stream``: it swaps a method on a shared ApiClient
(unsafe with threads), merges stdout and stderr into text, and can block forever. Each
call here has its own WebSocket (``websocket-client``, the library the official client
uses) with the gateway's TLS settings and token, so any number of threads may exec at
once. The WebSocket goes over an idle keep-alive connection taken out of the gateway's
pool when there is one (:meth:`KubeGateway.take_idle_socket`: no TCP or TLS handshake),
else over a connection of its own. The session:

1. handshake ``GET .../pods/{pod}/exec?command=..`` offering ``v5.channel.k8s.io`` then
   ``v4.channel.k8s.io``; 429/5xx and connection failures are retried (nothing ran yet);
   a pooled connection the server had closed (it fails before any byte of the answer)
   is replaced at once by a new one, once, without counting as a try;
   401 -> ClusterUnreachable, 403 -> Forbidden, 404 -> ApiNotFound; any other refusal
   (400 container not found, 500 after retries...) is returned as an ExecResult error;
2. stdin, if any, in chunks on channel 0 (reading output between chunks), then the v5
   close signal ``FF 00`` (a v4 server, before Kubernetes 1.30, has no such signal: a
   command that reads stdin to its end then runs until the timeout);
3. frames read until the server closes: channel 1 stdout, 2 stderr (kept up to
   ``max_bytes``, stderr also to ``MAX_STDERR_BYTES``; the rest counted and dropped), 3
   the status JSON, parsed here:
   ``Success`` -> 0, ``NonZeroExitCode`` -> the ``ExitCode`` cause, anything else -> not
   run (a missing binary is ``error_reason="NotFound"``);
4. an overall deadline; on expiry ``timed_out`` with what arrived so far;
5. the socket is always closed.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

import websocket

from falcoir.cluster.errors import Op, from_status, truncate, unreachable
from falcoir.core.gateway import PODS, ExecResult
from falcoir.errors import ApiError, ApiNotFound, ClusterUnreachable, Forbidden, InputError

if TYPE_CHECKING:
    from falcoir.cluster.gateway import KubeGateway

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3
CLOSE_SIGNAL = 255
STDIN_CHUNK = 32 * 1024
MAX_STATUS_BYTES = 64 * 1024
MAX_STDERR_BYTES = 1024 * 1024
"""stderr is held in memory: a pod's command must not make it as big as stdout's cap."""
AFTER_STATUS_GRACE = 2.0
"""Seconds to wait for the server's close frame once the status has arrived."""
_MISSING_BINARY = (
    "executable file not found",
    "no such file or directory",
    "not found in $path",
)


class _SinkError(Exception):
    """Writing stdout to the caller's sink failed (disk full...)."""


@dataclass
class _Capture:
    """One output stream: keep up to ``cap`` bytes (in memory or in a sink)."""

    cap: int
    sink: BinaryIO | None = None
    kept: int = 0
    total: int = 0
    truncated: bool = False
    buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - self.kept
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if not data:
            return
        if self.sink is not None:
            try:
                self.sink.write(data)
            except (OSError, ValueError) as exc:
                raise _SinkError(str(exc) or type(exc).__name__) from exc
        else:
            self.buf += data
        self.kept += len(data)


def parse_status(raw: bytes) -> tuple[int | None, str | None, str | None]:
    """(exit code, error, error reason) from the channel-3 Status JSON."""
    try:
        doc = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = truncate(raw.decode("utf-8", errors="replace")) or "empty status"
        return None, f"unreadable exec status: {text}", "InternalError"
    if doc.get("status") == "Success":
        return 0, None, None
    reason = str(doc.get("reason") or "")
    details = doc.get("details") if isinstance(doc.get("details"), dict) else {}
    causes = (details or {}).get("causes") or []
    if reason == "NonZeroExitCode":
        for cause in causes if isinstance(causes, list) else []:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    return int(str(cause.get("message")).strip()), None, None
                except ValueError:
                    break
    message = truncate(str(doc.get("message") or "")) or f"exec failed ({reason or 'Failure'})"
    # The kubelet reports a binary missing from the image only in the message text.
    if any(p in message.lower() for p in _MISSING_BINARY):
        return None, message, "NotFound"
    return None, message, reason or "InternalError"


def ssl_context(configuration: Any) -> ssl.SSLContext:
    """The TLS settings the client Configuration holds, as one SSLContext."""
    cadata = getattr(configuration, "ca_cert_data", None)
    ctx = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert or None, cadata=cadata or None
    )
    if not configuration.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        ctx.check_hostname = False
    if configuration.cert_file:
        ctx.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return ctx


class _StaleSocket(Exception):
    """A pooled connection failed before the first byte of the answer: the server had
    closed it (see :meth:`_Session._open`)."""


_CLOSED = (
    ConnectionError,  # EPIPE, ECONNRESET, ECONNABORTED
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    websocket.WebSocketConnectionClosedException,  # EOF, or a write after the peer's close
)
"""How a connection the server has closed fails (a timeout is not one: a slow server
may be at work on the request)."""


class _Watched:
    """A pooled socket during the upgrade handshake, counting the bytes it receives, so
    that a failure before the answer began can be told from one after."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0

    def recv(self, bufsize: int) -> bytes:
        data = self.sock.recv(bufsize)
        self.received += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _readable(ws: websocket.WebSocket) -> bool:
    sock = ws.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    poller = select.poll()  # not select(): descriptors above 1024 are common in busy runs
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Session:
    def __init__(
        self,
        gw: KubeGateway,
        namespace: str,
        pod: str,
        container: str | None,
        argv: tuple[str, ...],
        stdin: bytes | None,
        timeout: float,
        max_bytes: int,
        sink: BinaryIO | None,
    ) -> None:
        self.gw = gw
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.argv = argv
        self.stdin = stdin
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.out = _Capture(max_bytes, sink)
        self.err = _Capture(min(max_bytes, MAX_STDERR_BYTES))
        self.status = bytearray()
        self.got_status = False
        self.closed_by_server = False
        self.stale_pool = False
        """A pooled connection was found closed: take no more from the pool."""
        self.started = datetime.now(UTC)
        self.op = Op("create", "pods/exec", namespace, pod)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def result(
        self,
        exit_code: int | None,
        error: str | None = None,
        reason: str | None = None,
        *,
        timed_out: bool = False,
    ) -> ExecResult:
        return ExecResult(
            argv=self.argv,
            container=self.container,
            stdout=b"" if self.out.sink is not None else bytes(self.out.buf),
            stderr=bytes(self.err.buf),
            exit_code=exit_code,
            started=self.started,
            ended=datetime.now(UTC),
            error=error,
            error_reason=reason,
            stdout_truncated=self.out.truncated,
            stderr_truncated=self.err.truncated,
            stdout_bytes=self.out.total,
            timed_out=timed_out,
        )

    # -- handshake -------------------------------------------------------------------
    def url(self) -> str:
        query: list[tuple[str, str]] = [("command", a) for a in self.argv]
        if self.container:
            query.append(("container", self.container))
        query += [
            ("stdin", "true" if self.stdin is not None else "false"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "false"),
        ]
        path = self.gw._path(PODS, self.namespace, self.pod, "exec")
        url = self.gw.url(path, query)
        if url.startswith("https://"):
            return "wss://" + url[len("https://") :]
        if url.startswith("http://"):
            return "ws://" + url[len("http://") :]
        return url

    def connect(self) -> websocket.WebSocket | ExecResult:
        """An open WebSocket, or the result to return when the server refused to start
        the command. Raises the gateway's errors for auth, RBAC and a missing pod."""
        policy = self.gw.retry
        url = self.url()
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            retry_error: Exception
            self.gw.stats.count("exec")
            handshake_timeout = max(0.1, min(self.gw.request_timeout, self.remaining()))
            try:
                return self._open(url, handshake_timeout)
            except websocket.WebSocketBadStatusException as exc:
                status = int(exc.status_code or 0)
                body = exc.resp_body if isinstance(exc.resp_body, bytes) else b""
                if isinstance(exc.resp_body, str):
                    body = exc.resp_body.encode()
                self.gw.stats.received(len(body))
                error = from_status(self.gw.endpoint, self.op, status, body)
                if isinstance(error, Forbidden):
                    raise Forbidden(
                        error.message,
                        missing=[
                            f"create pods/exec -n {self.namespace}",
                            f"get pods/exec -n {self.namespace}",
                        ],
                        hint="a WebSocket exec is authorised as get pods/exec (create "
                        "pods/exec from Kubernetes 1.35): grant both",
                    ) from None
                if isinstance(error, ClusterUnreachable | ApiNotFound):
                    raise error from None
                if status not in (429, 500, 502, 503, 504):
                    reason = getattr(error, "reason", "") or f"HTTP{status}"
                    return self.result(None, error.message, reason)
                if status == 429:
                    headers = exc.resp_headers or {}
                    after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
                    with contextlib.suppress(TypeError, ValueError):
                        wait = max(0.0, float(str(after)))
                retry_error = error
            except ssl.SSLError as exc:
                raise unreachable(self.gw.endpoint, self.op, f"TLS failure: {exc}") from exc
            except (OSError, websocket.WebSocketException) as exc:
                # Refused, reset, timed out, closed during the handshake: nothing ran.
                retry_error = unreachable(self.gw.endpoint, self.op, str(exc) or repr(exc))
            if attempt >= policy.attempts or self.remaining() <= 0:
                return self._give_up(retry_error)
            delay = policy.backoff * (2 ** (attempt - 1)) if wait is None else wait
            delay = min(delay, policy.max_wait, max(self.remaining(), 0.0))
            if waited + delay > policy.budget:
                return self._give_up(retry_error)
            waited += delay
            self.gw.stats.retried()
            time.sleep(delay)

    def _give_up(self, error: Exception) -> ExecResult:
        """After the last try: no connection is ClusterUnreachable; a server that kept
        refusing (5xx, 429) is recorded in the result, like any refusal to run."""
        if isinstance(error, ClusterUnreachable) or not isinstance(error, ApiError):
            raise error
        return self.result(None, error.message, error.reason or f"HTTP{error.status}")

    def _open(self, url: str, timeout: float) -> websocket.WebSocket:
        """The WebSocket, over an idle pooled connection if there is one, else over a
        connection of its own."""
        sock = None if self.stale_pool else self.gw.take_idle_socket()
        if sock is not None:
            self.gw.stats.reused()
            try:
                return self._handshake(url, timeout, sock)
            except _StaleSocket:
                # The pooled connection failed before the first byte of the answer:
                # writing the upgrade request failed (EPIPE, ECONNRESET), or the
                # connection ended or was reset with nothing read. It was idle and had
                # nothing to read when taken, so the server closed it (its idle timeout,
                # a restart, a load balancer) while our request was on its way: a server
                # closes a keep-alive connection only between requests, so it closed
                # this one before reading ours, and nothing ran. (A server that read the
                # request and died before answering looks the same; connect() already
                # retries that on any connection, as the command starts only once the
                # upgrade is answered.) So the request goes again at once on a new
                # connection, without using up one of the session's tries (stats count
                # it as a request and a retry), and once: no more pooled connections
                # are taken (the other idle ones are likely closed too). Once a byte of
                # the answer has arrived the server had the request: a failure after
                # that is the try's, handled by connect() as on any connection.
                self.stale_pool = True
                self.gw.stats.retried()
                self.gw.stats.count("exec")
            except BaseException:
                # Any other failure on a pooled connection (a timeout: a load balancer
                # or NAT may drop idle connections without a word) is the try's, as on
                # any connection; the next tries open their own instead of taking more
                # idle ones that may be as dead.
                self.stale_pool = True
                raise
        try:
            ws = self._handshake(url, timeout, None)
        except websocket.WebSocketBadStatusException:
            self.gw.stats.connected()  # opened, and answered
            raise
        self.gw.stats.connected()
        return ws

    def _handshake(
        self, url: str, timeout: float, sock: socket.socket | None
    ) -> websocket.WebSocket:
        """The upgrade handshake on ``sock`` (a pooled connection's, closed on failure;
        raises _StaleSocket when it fails before the answer began), or on a new
        connection."""
        sslopt: dict[str, Any] = {}
        if url.startswith("wss://"):
            sslopt["context"] = self.gw.ws_ssl_context()
            server_name = getattr(self.gw.configuration, "tls_server_name", None)
            if server_name:
                sslopt["server_hostname"] = server_name
        ws = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True)
        options: dict[str, Any] = {
            "header": [f"{k}: {v}" for k, v in self.gw.auth_headers().items()]
            + [f"User-Agent: {self.gw.user_agent}"],
            "subprotocols": [V5, V4],
            "timeout": timeout,
            "suppress_origin": True,
        }
        proxy = getattr(self.gw.configuration, "proxy", None)
        watched = _Watched(sock) if sock is not None else None
        if watched is not None:
            options["socket"] = watched  # websocket-client then skips TCP and TLS
        elif proxy:
            parsed = urlparse(proxy)
            options.update(
                http_proxy_host=parsed.hostname,
                http_proxy_port=parsed.port,
                proxy_type="http",
            )
            no_proxy = getattr(self.gw.configuration, "no_proxy", None)
            if no_proxy:
                options["http_no_proxy"] = [h.strip() for h in no_proxy.split(",") if h]
        try:
            if sock is not None:
                sock.settimeout(timeout)  # websocket-client sets it on its own sockets only
            ws.connect(url, **options)  # type: ignore[no-untyped-call]
        except BaseException as exc:
            ws.shutdown()  # type: ignore[no-untyped-call]
            if sock is not None:
                sock.close()  # never back to the pool, never leaked
                if watched is not None and not watched.received and isinstance(exc, _CLOSED):
                    raise _StaleSocket(str(exc)) from exc
            raise
        if sock is not None:
            ws.sock = sock  # the watch was for the handshake only
        return ws

    # -- streaming -------------------------------------------------------------------
    def handle(self, opcode: int, data: bytes) -> None:
        if opcode not in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT) or not data:
            return
        self.gw.stats.received(len(data))
        channel, payload = data[0], data[1:]
        if channel == STDOUT:
            self.out.feed(payload)
        elif channel == STDERR:
            self.err.feed(payload)
        elif channel == STATUS:
            if len(self.status) < MAX_STATUS_BYTES:
                self.status += payload[: MAX_STATUS_BYTES - len(self.status)]
            self.got_status = True

    def recv(self, ws: websocket.WebSocket, timeout: float) -> bool:
        """Read one frame; False when the stream is over (closed by the server)."""
        ws.settimeout(max(timeout, 0.001))
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.closed_by_server = True
            return False
        self.handle(opcode, frame.data if frame is not None else b"")
        return True

    def send_stdin(self, ws: websocket.WebSocket, v5: bool) -> None:
        data = self.stdin or b""
        for i in range(0, len(data), STDIN_CHUNK):
            while _readable(ws) and self.remaining() > 0:  # never let output pile up
                if not self.recv(ws, self.remaining()):
                    return
            ws.settimeout(max(self.remaining(), 0.001))
            ws.send(bytes([STDIN]) + data[i : i + STDIN_CHUNK], websocket.ABNF.OPCODE_BINARY)
        if v5:
            ws.send(bytes([CLOSE_SIGNAL, STDIN]), websocket.ABNF.OPCODE_BINARY)

    def run(self) -> ExecResult:
        t0 = time.monotonic()
        try:
            return self._run()
        finally:
            self.gw.stats.span("exec", self.op.describe(), t0)

    def _run(self) -> ExecResult:
        opened = self.connect()
        if isinstance(opened, ExecResult):
            return opened
        ws = opened
        timed_out = False
        dropped: str | None = None
        try:
            if self.stdin is not None:
                # The command may end without reading its stdin: what it printed and
                # its status can still be waiting to be read, so a failed send is not fatal.
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    self.send_stdin(ws, ws.subprotocol == V5)
            while not self.closed_by_server:
                left = self.remaining()
                if self.got_status:
                    left = min(left, AFTER_STATUS_GRACE)
                if left <= 0:
                    timed_out = not self.got_status
                    break
                if not self.recv(ws, left):
                    break
        except _SinkError as exc:
            return self.result(None, f"could not write stdout to its sink: {exc}", "SinkError")
        except (websocket.WebSocketTimeoutException, TimeoutError):
            timed_out = not self.got_status
        except (OSError, websocket.WebSocketException) as exc:
            if not self.got_status:
                dropped = truncate(str(exc) or type(exc).__name__, 200)
        finally:
            self._close(ws)
        if timed_out:
            return self.result(
                None, f"timed out after {self.timeout:g}s", "Timeout", timed_out=True
            )
        if not self.got_status:
            why = f" ({dropped})" if dropped else ""
            return self.result(
                None,
                "the exec stream ended before the command's exit status arrived" + why,
                "StreamDropped",
            )
        code, error, reason = parse_status(bytes(self.status))
        return self.result(code, error, reason)

    def _close(self, ws: websocket.WebSocket) -> None:
        try:
            if not self.closed_by_server and ws.connected:
                ws.close(status=websocket.STATUS_NORMAL, timeout=0.5)
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            ws.shutdown()  # type: ignore[no-untyped-call]


def run_exec(
    gw: KubeGateway,
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
    """See :meth:`falcoir.core.gateway.ClusterGateway.exec`."""
    args = tuple(argv)
    if not args or any(not isinstance(a, str) for a in args):
        raise InputError(f"exec needs a non-empty list of strings, got {args!r}")
    if timeout <= 0 or max_bytes < 0:
        raise InputError("exec needs a positive timeout and a non-negative byte limit")
    session = _Session(gw, namespace, pod, container, args, stdin, timeout, max_bytes, stdout_sink)
    return session.run()
