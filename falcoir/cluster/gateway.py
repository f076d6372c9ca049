"""``KubeGateway``: the ClusterGateway over the Kubernetes REST API, raw JSON both ways.

The official client is used for what it is good at (reading kubeconfig, TLS, token
refresh, its connection pool); requests go through its urllib3 pool directly with
``preload_content=False`` and are JSON-decoded here, never into the generated model
classes. One place sends requests (:meth:`KubeGateway._send`): it sets the timeout,
retries what is safe to retry, counts requests and bytes in :attr:`KubeGateway.stats`,
and maps every failure once (:mod:`falcoir.cluster.errors`).

Retries (at most ``RetryPolicy.attempts`` tries, exponential backoff, waits capped and
their total bounded by ``RetryPolicy.budget``):

- reads (GET, LIST, log, SelfSubjectAccessReview, SelfSubjectReview, exec setup): on
  429 (honouring ``Retry-After``), 500/502/503/504, connection failures, dropped
  connections and read timeouts;
- idempotent mutations (DELETE, JSON merge patch, strategic merge patch: applying them
  twice gives the result of applying them once; a repeated DELETE answers 404, which
  callers treat as "already gone"): the same as reads;
- other mutations (POST create, JSON patch): only when the server cannot have acted on
  it: 429 (rejected before it is processed) and failures to connect. A 5xx or a drop
  after the request was sent is reported, not repeated.

Timeouts: every request has one (``request_timeout``, default 15 s, for connecting and
for the whole body, however slowly it arrives); log reads and exec sessions have their
own overall deadline (``timeout``). TLS and certificate failures are never retried.

Connections: requests share one pool of keep-alive connections (``POOL_MAXSIZE``, more
than falcoir ever has in flight), so a burst of concurrent requests opens connections
once and the next burst reuses them all; :meth:`KubeGateway.prewarm` (or
``connect(prewarm=N)``) opens N of them in the background before the first burst.
Exec sessions are WebSockets, one connection each: an idle keep-alive connection taken
out of the pool for good when there is one (:meth:`KubeGateway.take_idle_socket`: no
TCP or TLS handshake), else a connection of their own.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import urllib3
from urllib3.util.wait import wait_for_read

from falcoir import __version__
from falcoir.cluster.config import ClusterConfig, SimpleConfiguration
from falcoir.cluster.errors import Endpoint, Op, from_status, unreachable
from falcoir.core.gateway import JSON, PODS, ExecResult, Resource
from falcoir.errors import ApiError, ApiNotFound, ClusterError, Forbidden, InputError

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_PAGE = 500
MAX_JSON_BYTES = 512 * 1024 * 1024
MAX_ERROR_BYTES = 1024 * 1024
DEFAULT_LOG_LIMIT = 16 * 1024 * 1024
USER_AGENT = f"falcoir/{__version__}"
POOL_MAXSIZE = 32
"""Keep-alive connections kept per API server. More than falcoir ever has in flight at
once (collect: 16 calls, respond's access reviews: 12), so that after a burst of
concurrent requests every connection goes back to the pool, warm for the next burst.
The pool does not block (``block=False``): a request that finds no idle connection opens
one at once; only beyond this size is a connection closed after use instead of kept."""
PREWARM_TIMEOUT = 10.0
TRACE_ENV = "FALCOIR_API_TRACE"
"""A file to append every request's span to (one JSON line each), for benchmarks."""


class Safety(Enum):
    """How freely a request may be repeated (see the module docstring)."""

    READ = "read"
    IDEMPOTENT = "idempotent"
    ONCE = "once"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    """Tries in all, the first included."""
    backoff: float = 0.25
    """First wait in seconds; doubled after each retry."""
    max_wait: float = 5.0
    """Cap of any one wait, ``Retry-After`` included."""
    budget: float = 12.0
    """Total seconds one request may spend waiting between tries."""


@dataclass(frozen=True)
class Span:
    """One request (or exec session) as seen by the client: from the moment it was
    sent to the moment its answer was read in full (``time.monotonic()`` seconds)."""

    verb: str
    what: str
    start: float
    end: float


def critical_path(spans: Sequence[Span]) -> int:
    """The round trips on the critical path: the longest chain of requests each sent
    only after the previous one had been answered (requests in flight together count
    once). With an API latency of L, the requests alone take at least this many L."""
    best: list[tuple[float, int]] = []  # (end, longest chain ending there)
    longest = 0
    for s in sorted(spans, key=lambda x: x.end):
        before = max((n for end, n in best if end <= s.start), default=0)
        best.append((s.end, before + 1))
        longest = max(longest, before + 1)
    return longest


@dataclass
class RequestStats:
    """Counts of what this gateway sent and received (thread-safe).

    ``requests`` counts every HTTP request and exec session attempt, retries included;
    ``bytes_received`` counts response bodies (and exec stream payloads). With
    :meth:`record` on, every request's :class:`Span` is kept too (and, with a path,
    appended to that file as one JSON line: ``FALCOIR_API_TRACE``), so that the
    round trips on the critical path can be counted (:func:`critical_path`). Each line
    also gives ``connections`` and ``exec_reused`` so far: the last line's are the run's."""

    requests: int = 0
    retries: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    """Connections opened (TCP and, over https, a TLS handshake each): the pool's
    keep-alive connections and the exec sessions' own ones. An exec session on an idle
    pooled connection opens none: it is counted in ``exec_reused`` instead."""
    exec_reused: int = 0
    """Exec sessions started on an idle keep-alive connection taken from the pool."""
    spans: list[Span] | None = None
    """The requests' spans, when recording (see :meth:`record`)."""
    _trace_path: str | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, on: bool = True, path: str | None = None) -> None:
        """Keep every request's span from now on (``on=False``: stop and forget)."""
        with self._lock:
            self.spans = [] if on else None
            self._trace_path = path if on else None

    def connected(self) -> None:
        """A connection was opened."""
        with self._lock:
            self.connections += 1

    def reused(self) -> None:
        """An exec session started on a pooled connection (it opened none)."""
        with self._lock:
            self.exec_reused += 1

    def count(self, verb: str, sent: int = 0) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_sent += sent
            self.by_verb[verb] = self.by_verb.get(verb, 0) + 1

    def span(self, verb: str, what: str, start: float) -> None:
        """One request sent at ``start`` is over now (kept only when recording)."""
        if self.spans is None:
            return
        s = Span(verb, what, start, time.monotonic())
        with self._lock:
            if self.spans is None:
                return
            self.spans.append(s)
            if self._trace_path:
                line = json.dumps(
                    {
                        "verb": verb,
                        "what": what,
                        "start": s.start,
                        "end": s.end,
                        "thread": threading.current_thread().name,
                        # So far, for the connections a run opened (the last line's).
                        "connections": self.connections,
                        "exec_reused": self.exec_reused,
                    }
                )
                with contextlib.suppress(OSError), open(self._trace_path, "a") as fh:
                    fh.write(line + "\n")

    def received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "bytes_received": self.bytes_received,
                "bytes_sent": self.bytes_sent,
                "by_verb": dict(self.by_verb),
                "connections": self.connections,
                "exec_reused": self.exec_reused,
                **({"critical_path": critical_path(self.spans)} if self.spans is not None else {}),
            }

    def reset(self) -> None:
        with self._lock:
            self.requests = self.retries = self.bytes_received = self.bytes_sent = 0
            self.connections = self.exec_reused = 0
            self.by_verb = {}
            if self.spans is not None:
                self.spans = []


class _Transient(Exception):
    """A failure worth another try: carries the final error if we give up."""

    def __init__(self, error: ClusterError, *, wait: float | None = None, sent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait
        self.sent = sent
        """Whether the server may have acted on the request."""


def _segment(value: str, what: str) -> str:
    if not value or value in (".", "..") or "\x00" in value:
        raise InputError(f"invalid {what}: {value!r}")
    return quote(value, safe="")


def _json_object(data: bytes) -> JSON | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _status_details(data: bytes) -> JSON:
    details = (_json_object(data) or {}).get("details")
    return details if isinstance(details, dict) else {}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class KubeGateway:
    """The real :class:`falcoir.core.gateway.ClusterGateway`. Thread-safe."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        request_timeout: float = 15.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._config = config
        self.configuration = config.configuration
        self.request_timeout = request_timeout
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        trace = os.environ.get(TRACE_ENV)
        if trace:
            self.stats.record(True, trace)
        self.endpoint = Endpoint(config.server, config.context)
        self._pool: urllib3.PoolManager = _pool_manager(self.configuration)
        self._base = str(self.configuration.host).rstrip("/")
        host_pool = self._host_pool()
        host_pool.ConnectionCls = _counting(host_pool.ConnectionCls, self.stats)
        self._whoami: str | None = None
        self._whoami_lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()
        self.user_agent = USER_AGENT
        self._exec_loaded = False

    # -- identity --------------------------------------------------------------------
    @property
    def context(self) -> str:
        return self._config.context

    @property
    def server(self) -> str:
        return self._config.server

    @property
    def kubeconfig_user(self) -> str:
        return self._config.user

    def close(self) -> None:
        self._pool.clear()

    # -- connections -----------------------------------------------------------------
    def _host_pool(self) -> urllib3.HTTPConnectionPool:
        return self._pool.connection_from_url(self._base)

    @property
    def idle_connections(self) -> int:
        """Connections now waiting, open, in the pool."""
        queue = getattr(self._host_pool().pool, "queue", ())
        return sum(1 for conn in list(queue) if conn is not None and conn.is_connected)

    def prewarm(self, connections: int = 8) -> Future[int]:
        """Open keep-alive connections in the background, so that the next burst of
        concurrent requests finds them ready instead of paying one TCP and TLS
        handshake each. Returns at once; the future gives how many connections are
        idle in the pool when done. Tops up to ``connections`` (at most
        ``POOL_MAXSIZE``): connections already idle count. Sends no request (nothing is
        counted in :attr:`stats`); a connection that cannot be opened is forgotten
        (requests then open their own, and report any error, as always)."""
        want = max(0, min(int(connections), POOL_MAXSIZE))
        done: Future[int] = Future()
        if want == 0:
            done.set_result(self.idle_connections)
            return done
        pool = self._host_pool()

        def warm(conn: Any) -> None:
            try:
                conn.timeout = PREWARM_TIMEOUT
                conn.connect()
                if not _settle(conn):
                    conn.close()
            except (urllib3.exceptions.HTTPError, OSError, ssl.SSLError):
                conn.close()
            finally:
                pool._put_conn(conn)

        def run() -> None:
            # Take them all out first (idle ones, then empty slots): a connection put
            # back while others are taken out would be taken again instead of a slot.
            taken = []
            try:
                for _ in range(want):
                    taken.append(pool._get_conn())
            except urllib3.exceptions.HTTPError:
                pass  # the pool was closed
            cold = [c for c in taken if not c.is_connected]
            for conn in taken:
                if conn.is_connected:
                    pool._put_conn(conn)
            workers = [
                threading.Thread(target=warm, args=(c,), daemon=True, name="falcoir-prewarm")
                for c in cold
            ]
            for t in workers:
                t.start()
            for t in workers:
                t.join(PREWARM_TIMEOUT + 5)
            done.set_result(self.idle_connections)

        threading.Thread(target=run, daemon=True, name="falcoir-prewarm").start()
        return done

    def take_idle_socket(self) -> socket.socket | None:
        """The socket of an idle keep-alive connection to the API server, taken out of
        the pool for good, for an exec WebSocket: HTTP/1.1 allows an Upgrade on a
        connection that already carried requests (the API server, Go's net/http, hijacks
        any request), and it spares a TCP and a TLS handshake. The pool keeps the slot:
        urllib3 opens a new connection there on its next use, and never sees this socket
        again. The caller owns the socket (and closes it).

        ``None`` when no idle connection will do: a proxy is configured; none is idle;
        the idle ones were closed by the server or hold unread bytes (readable while
        idle: urllib3's dropped-connection test; those are closed, as urllib3 would on
        their next use); or one was made with other TLS settings than an exec's own
        connection would use (client certificate, CA, server name, verification)."""
        if getattr(self.configuration, "proxy", None) or isinstance(
            self._pool, urllib3.ProxyManager
        ):
            return None
        pool = self._host_pool()
        idle = pool.pool
        if idle is None:
            return None  # closed
        held: list[Any] = []
        found: socket.socket | None = None
        try:
            # LIFO: the connections last used are on top, the slots never used (None)
            # at the bottom, so the scan stops at the first None.
            for _ in range(POOL_MAXSIZE):
                try:
                    conn = idle.get(block=False)
                except queue.Empty:
                    break
                held.append(conn)
                if conn is None:
                    break
                if conn.sock is not None and not _idle_and_open(conn.sock):
                    conn.close()  # dropped (or junk): as urllib3 does on its next use
                    continue
                if conn.sock is not None and _exec_can_use(conn, self.configuration):
                    found, conn.sock = conn.sock, None  # detached: close() leaves it alone
                    conn.close()  # reset the connection object; its slot stays
                    break
        finally:
            for conn in reversed(held):
                pool._put_conn(conn)
        return found

    def __enter__(self) -> KubeGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        """The Authorization header from the configuration (runs its token refresh hook:
        exec plugins, expiring in-cluster tokens)."""
        setting = self.configuration.auth_settings().get("BearerToken")
        value = setting.get("value") if isinstance(setting, dict) else None
        return {"Authorization": str(value)} if value else {}

    def ws_ssl_context(self) -> ssl.SSLContext:
        """The TLS context for exec WebSockets (built once; SSLContext is thread-safe)."""
        with self._ssl_lock:
            if self._ssl_context is None:
                from falcoir.cluster.exec import ssl_context

                try:
                    self._ssl_context = ssl_context(self.configuration)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    raise InputError(
                        f"cannot load the TLS files of context {self.context}: {exc}"
                    ) from exc
            return self._ssl_context

    def url(self, path: str, query: Iterable[tuple[str, str]] = ()) -> str:
        q = urlencode(list(query))
        return self._base + path + (f"?{q}" if q else "")

    def _send_once(
        self,
        method: str,
        url: str,
        op: Op,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
        max_bytes: int,
        want_json: bool = False,
    ) -> tuple[int, bytes, urllib3.BaseHTTPResponse, JSON | None]:
        """One try. Returns (status, body, response) for any HTTP answer that is not
        worth retrying; raises _Transient or a ClusterError otherwise."""
        self.stats.count(op.verb, len(body or b""))
        if not self._exec_loaded:
            # The exec machinery (websocket-client) loads while this request is on the
            # wire, instead of when the first exec is already waiting for it.
            self._exec_loaded = True
            threading.Thread(target=_load_exec, daemon=True, name="falcoir-load-exec").start()
        t0 = time.monotonic()
        try:
            resp = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                preload_content=False,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            )
        except urllib3.exceptions.SSLError as exc:
            self.stats.span(op.verb, op.describe(), t0)
            raise unreachable(self.endpoint, op, f"TLS failure: {exc}") from exc
        except urllib3.exceptions.NewConnectionError as exc:
            self.stats.span(op.verb, op.describe(), t0)
            raise _Transient(unreachable(self.endpoint, op, str(exc)), sent=False) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:
            self.stats.span(op.verb, op.describe(), t0)
            err = unreachable(self.endpoint, op, f"connection timed out: {exc}")
            raise _Transient(err, sent=False) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # Read timeout, connection reset or closed mid-request: it may have arrived.
            self.stats.span(op.verb, op.describe(), t0)
            raise _Transient(unreachable(self.endpoint, op, str(exc)), sent=True) from exc
        status = resp.status
        ok = 200 <= status < 300
        if ok and max_bytes == 0:
            return status, b"", resp, None  # the caller streams the body (and spans it)
        try:
            limit = max_bytes if ok else MAX_ERROR_BYTES
            data = self._read(resp, limit, strict=ok, timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            err = unreachable(self.endpoint, op, f"connection dropped while reading: {exc}")
            raise _Transient(err, sent=True) from exc
        finally:
            resp.release_conn()
            self.stats.span(op.verb, op.describe(), t0)
        if status in RETRYABLE_STATUS:
            mapped = from_status(self.endpoint, op, status, data)
            wait = _retry_after(resp.headers.get("Retry-After")) if status == 429 else None
            if status == 429 and wait is None:
                wait = _retry_after(str(_status_details(data).get("retryAfterSeconds") or ""))
            # 429: rejected before processing, so even a create may be sent again.
            raise _Transient(mapped, wait=wait, sent=status != 429)
        doc = _json_object(data) if ok and want_json else None
        if ok and want_json and doc is None:
            # A body cut short without the transport noticing (a proxy, a dropped chunk).
            bad = ApiError(f"the API server sent invalid JSON to {op.describe()}", status=status)
            raise _Transient(bad, sent=True)
        return status, data, resp, doc

    def _read(
        self, resp: urllib3.BaseHTTPResponse, max_bytes: int, *, strict: bool, timeout: float
    ) -> bytes:
        """The body, at most ``max_bytes`` (beyond: an error if ``strict``, else cut),
        within ``timeout`` seconds overall, however slowly the server sends it."""
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            if time.monotonic() > deadline:
                resp.close()
                raise TimeoutError(f"the response took longer than {timeout:g}s")
            chunk = resp.read1(min(1 << 20, max_bytes - total + 1))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            self.stats.received(len(chunk))
            chunks.append(chunk)
        resp.close()
        if strict:
            raise ApiError(f"response larger than {max_bytes} bytes", status=resp.status)
        return b"".join(chunks)[:max_bytes]

    def _send(
        self,
        method: str,
        path: str,
        op: Op,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        safety: Safety = Safety.READ,
        timeout: float | None = None,
        accept: str = "application/json",
        max_bytes: int = MAX_JSON_BYTES,
        want_json: bool = True,
    ) -> tuple[int, bytes, urllib3.BaseHTTPResponse, JSON | None]:
        """Send with retries; raise the mapped error for any non-2xx answer."""
        url = self.url(path, query)
        payload = None if body is None else json.dumps(body).encode()
        timeout = self.request_timeout if timeout is None else timeout
        policy = self.retry
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            headers = {"Accept": accept, "User-Agent": USER_AGENT, **self.auth_headers()}
            if payload is not None:
                headers["Content-Type"] = content_type
            try:
                status, data, resp, doc = self._send_once(
                    method, url, op, payload, headers, timeout, max_bytes, want_json
                )
            except _Transient as exc:
                repeatable = safety is not Safety.ONCE or not exc.sent
                if not repeatable or attempt >= policy.attempts:
                    raise exc.error from exc.__cause__
                wait = policy.backoff * (2 ** (attempt - 1)) if exc.wait is None else exc.wait
                wait = min(wait, policy.max_wait)
                if waited + wait > policy.budget:
                    raise exc.error from exc.__cause__
                waited += wait
                self.stats.retried()
                time.sleep(wait)
                continue
            if 200 <= status < 300:
                return status, data, resp, doc
            raise from_status(self.endpoint, op, status, data)

    def _send_json(self, method: str, path: str, op: Op, **kwargs: Any) -> JSON:
        """:meth:`_send` for a JSON object answer (decoded once, retried if cut short)."""
        _, _, _, doc = self._send(method, path, op, **kwargs)
        assert doc is not None
        return doc

    # -- paths -----------------------------------------------------------------------
    def _path(
        self,
        resource: Resource,
        namespace: str | None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        ns = _segment(namespace, "namespace") if namespace is not None else None
        path = resource.path(ns, _segment(name, f"{resource.kind} name") if name else None)
        if subresource:
            path += "/" + _segment(subresource, "subresource")
        return path

    @staticmethod
    def _res(resource: Resource, subresource: str | None = None) -> str:
        return resource.plural + (f"/{subresource}" if subresource else "")

    # -- ClusterGateway: objects -----------------------------------------------------
    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        ns = namespace if resource.namespaced else None
        op = Op("get", resource.plural, ns, name)
        return self._send_json("GET", self._path(resource, ns, name), op)

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[JSON]:
        """All items, page by page (``limit`` is the page size, default 500); each item
        gets the ``apiVersion`` and ``kind`` the API server leaves out of list items."""
        ns = namespace if resource.namespaced else None
        op = Op("list", resource.plural, ns)
        path = self._path(resource, ns)
        items: list[JSON] = []
        cont = ""
        pages = 0
        restarted = False
        while True:
            query: list[tuple[str, str]] = [("limit", str(limit or DEFAULT_PAGE))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if cont:
                query.append(("continue", cont))
            try:
                doc = self._send_json("GET", path, op, query=query)
            except ApiError as exc:
                if exc.status != 410 or not cont or restarted:
                    raise
                # The continue token expired (410 Gone): start over, once.
                restarted, items, cont, pages = True, [], "", 0
                continue
            for item in doc.get("items") or []:
                if isinstance(item, dict):
                    item.setdefault("apiVersion", resource.api_version)
                    item.setdefault("kind", resource.kind)
                    items.append(item)
            meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            cont = str((meta or {}).get("continue") or "")
            pages += 1
            if not cont:
                return items
            if pages > 100_000:
                raise ApiError(f"the API server kept paging to {op.describe()}")

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        ns = (meta or {}).get("namespace") if resource.namespaced else None
        if resource.namespaced and not ns:
            raise InputError(f"{resource.kind} to create has no metadata.namespace")
        op = Op("create", resource.plural, ns, (meta or {}).get("name"))
        query = [("fieldManager", "falcoir")] + ([("dryRun", "All")] if dry_run else [])
        full = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        return self._send_json(
            "POST", self._path(resource, ns), op, query=query, body=full, safety=Safety.ONCE
        )

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JSON | builtins.list[JSON],
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JSON:
        content_type = PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise InputError(f"unknown patch type {patch_type!r} (merge, strategic, json)")
        if (patch_type == "json") != isinstance(patch, list):
            raise InputError("a json patch is a list of operations; merge patches are objects")
        ns = namespace if resource.namespaced else None
        op = Op("patch", self._res(resource, subresource), ns, name)
        query = [("fieldManager", "falcoir")] + ([("dryRun", "All")] if dry_run else [])
        return self._send_json(
            "PATCH",
            self._path(resource, ns, name, subresource),
            op,
            query=query,
            body=patch,
            content_type=content_type,
            safety=Safety.ONCE if patch_type == "json" else Safety.IDEMPOTENT,
        )

    def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        dry_run: bool = False,
        uid: str | None = None,
    ) -> JSON:
        ns = namespace if resource.namespaced else None
        op = Op("delete", resource.plural, ns, name)
        query: list[tuple[str, str]] = []
        if grace_period_seconds is not None:
            query.append(("gracePeriodSeconds", str(int(grace_period_seconds))))
        if propagation_policy:
            query.append(("propagationPolicy", propagation_policy))
        if dry_run:
            query.append(("dryRun", "All"))
        # A uid precondition (DeleteOptions in the body, as client-go sends it): the
        # server deletes only that very object, and answers 409 when the name now
        # belongs to another (a StatefulSet's replacement) -- no read-then-delete race.
        body = (
            {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
            if uid
            else None
        )
        return self._send_json(
            "DELETE",
            self._path(resource, ns, name),
            op,
            query=query,
            body=body,
            safety=Safety.IDEMPOTENT,
        )

    # -- ClusterGateway: logs, reviews, identity -------------------------------------
    def read_log(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
        timestamps: bool = False,
        timeout: float = 30.0,
    ) -> bytes:
        """At most ``limit_bytes`` (default 16 MiB) of the log, within ``timeout``."""
        cap = limit_bytes if limit_bytes and limit_bytes > 0 else DEFAULT_LOG_LIMIT
        query: list[tuple[str, str]] = [("limitBytes", str(cap))]
        if container:
            query.append(("container", container))
        if previous:
            query.append(("previous", "true"))
        if tail_lines is not None:
            query.append(("tailLines", str(int(tail_lines))))
        if timestamps:
            query.append(("timestamps", "true"))
        op = Op("get", "pods/log", namespace, pod)
        path = self._path(PODS, namespace, pod, "log")
        deadline = sent_at = time.monotonic()
        deadline += timeout
        _, _, resp, _ = self._send(
            "GET",
            path,
            op,
            query=query,
            timeout=timeout,
            accept="*/*",
            max_bytes=0,
            want_json=False,
        )
        out = bytearray()
        try:
            while len(out) < cap and time.monotonic() < deadline:
                chunk = resp.read1(min(1 << 16, cap - len(out)))
                if not chunk:
                    break
                self.stats.received(len(chunk))
                out += chunk
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(self.endpoint, op, f"log stream dropped: {exc}") from exc
        finally:
            resp.close()  # also when cut short: never leave a half-read body in the pool
            resp.release_conn()
            self.stats.span(op.verb, op.describe(), sent_at)
        return bytes(out)

    def access_review(
        self,
        verb: str,
        resource: str,
        *,
        namespace: str | None = None,
        group: str = "",
        subresource: str = "",
        name: str = "",
    ) -> bool:
        attrs: dict[str, str] = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        if name:
            attrs["name"] = name
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        op = Op("create", "selfsubjectaccessreviews")
        doc = self._send_json(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            op,
            body=body,
            safety=Safety.READ,  # a question, not a change
        )
        status = doc.get("status")
        return bool(isinstance(status, dict) and status.get("allowed") is True)

    def whoami(self) -> str:
        """The username from a SelfSubjectReview (cached); when the API has none (404)
        or forbids it, the kubeconfig user name."""
        with self._whoami_lock:
            if self._whoami is not None:
                return self._whoami
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        op = Op("create", "selfsubjectreviews")
        name = ""
        try:
            doc = self._send_json(
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                op,
                body=body,
                safety=Safety.READ,
            )
            status = doc.get("status") or {}
            user = status.get("userInfo") if isinstance(status, dict) else None
            name = str((user or {}).get("username") or "") if isinstance(user, dict) else ""
        except (ApiNotFound, Forbidden):
            name = ""
        except ApiError as exc:
            if exc.status not in (405, 501):
                raise
        name = name or self.kubeconfig_user or "unknown"
        with self._whoami_lock:
            self._whoami = name
        return name

    def version(self) -> JSON:
        """``GET /version`` (handy for a reachability check)."""
        op = Op("get", "version")
        return self._send_json("GET", "/version", op)

    # -- ClusterGateway: exec --------------------------------------------------------
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
        from falcoir.cluster.exec import run_exec

        return run_exec(
            self,
            namespace,
            pod,
            container,
            argv,
            stdin=stdin,
            timeout=timeout,
            max_bytes=max_bytes,
            stdout_sink=stdout_sink,
        )


class _QuietPoolFull(logging.Filter):
    """urllib3 warns each time a connection beyond ``POOL_MAXSIZE`` is closed after
    use instead of kept: expected here (the pool does not block), and not worth a line
    on the user's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Connection pool is full")


logging.getLogger("urllib3.connectionpool").addFilter(_QuietPoolFull())


def _load_exec() -> None:
    import falcoir.cluster.exec  # noqa: F401


TICKET_WAIT = 0.25
"""Seconds a pre-warmed TLS 1.3 connection waits for the server's session tickets."""


def _settle(conn: Any) -> bool:
    """Read what a TLS 1.3 server sends right after the handshake (session tickets) on
    a connection that has carried no request yet: left unread, they make the socket
    readable, and urllib3 takes a readable idle connection for a dropped one (it would
    close it and open another). False when the server sent data or closed instead."""
    sock = getattr(conn, "sock", None)
    if not isinstance(sock, ssl.SSLSocket) or sock.version() != "TLSv1.3":
        return True
    saved = sock.gettimeout()
    deadline = time.monotonic() + TICKET_WAIT
    wait = TICKET_WAIT
    try:
        while wait > 0 and wait_for_read(sock, timeout=wait):
            sock.setblocking(False)
            try:
                sock.recv(1)
                return False  # closed, or data: an idle connection has nothing to say
            except ssl.SSLWantReadError:
                pass  # a ticket, taken in; more may follow at once
            finally:
                sock.settimeout(saved)
            wait = min(0.02, deadline - time.monotonic())
        return True
    except (OSError, ssl.SSLError):
        return False


def _idle_and_open(sock: Any) -> bool:
    """An idle connection's socket has nothing to read: if it has, the server closed it
    (or sent something no request asked for) and it cannot carry a request."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        return not wait_for_read(sock, timeout=0.0)
    except (OSError, ValueError):
        return False


def _exec_can_use(conn: Any, configuration: Any) -> bool:
    """Whether an exec may use ``conn``: made as the exec's own connection would be
    (:func:`falcoir.cluster.exec.ssl_context`: the same client certificate, CA and
    server name, verified when verification is on), and not through a proxy. The pool
    is built from the same configuration (:func:`_pool_manager`), so this holds unless
    the configuration changed since."""
    if getattr(conn, "proxy", None) is not None or getattr(conn, "_tunnel_host", None):
        return False
    sock = conn.sock
    if str(getattr(configuration, "host", "")).startswith("http://"):
        return isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)
    if not isinstance(sock, ssl.SSLSocket):
        return False
    if sock.selected_alpn_protocol() not in (None, "http/1.1"):
        return False  # an HTTP/2 connection has no Upgrade

    def same(attr: str, setting: str) -> bool:
        have = getattr(conn, attr, None) or None
        want = getattr(configuration, setting, None) or None
        if attr == "ca_certs" and isinstance(want, str):
            want = os.path.expanduser(want)  # as urllib3 stores it
        return bool(have == want)

    if not (
        same("cert_file", "cert_file")
        and same("key_file", "key_file")
        and same("ca_certs", "ssl_ca_cert")
        and same("ca_cert_data", "ca_cert_data")
        and same("server_hostname", "tls_server_name")
    ):
        return False
    return bool(conn.is_verified) or not configuration.verify_ssl


def _counting(cls: type[Any], stats: RequestStats) -> type[Any]:
    """``cls`` (a urllib3 connection class) counting each connection it opens."""

    class Counting(cls):  # type: ignore[misc]
        def connect(self) -> None:
            super().connect()
            stats.connected()

    Counting.__name__ = Counting.__qualname__ = f"Counting{cls.__name__}"
    return Counting


def _pool_manager(configuration: Any) -> urllib3.PoolManager:
    """The connection pool: the official client's (its TLS, proxy and pool settings),
    or, for a :class:`SimpleConfiguration`, the same settings made here without
    importing the official client."""
    if not isinstance(configuration, SimpleConfiguration):
        from kubernetes.client import ApiClient

        if (configuration.connection_pool_maxsize or 0) < POOL_MAXSIZE:
            configuration.connection_pool_maxsize = POOL_MAXSIZE
        pool: urllib3.PoolManager = ApiClient(configuration).rest_client.pool_manager
        return pool
    kwargs: dict[str, Any] = {
        "num_pools": 4,
        "maxsize": POOL_MAXSIZE,
        "cert_reqs": "CERT_REQUIRED" if configuration.verify_ssl else "CERT_NONE",
        "ca_certs": configuration.ssl_ca_cert,
        "ca_cert_data": configuration.ca_cert_data,
        "cert_file": configuration.cert_file,
        "key_file": configuration.key_file,
    }
    if configuration.tls_server_name:
        kwargs["server_hostname"] = configuration.tls_server_name
    return urllib3.PoolManager(**kwargs)


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    request_timeout: float = 15.0,
    retry: RetryPolicy | None = None,
    prewarm: int = 0,
) -> KubeGateway:
    """A gateway for ``kubeconfig``/``context`` (see :func:`falcoir.cluster.config.load`).
    Nothing is sent to the server until the first call; with ``prewarm=N``, N
    keep-alive connections start opening in the background right away
    (:meth:`KubeGateway.prewarm`)."""
    from falcoir.cluster.config import load

    gateway = KubeGateway(load(kubeconfig, context), request_timeout=request_timeout, retry=retry)
    if prewarm > 0:
        gateway.prewarm(prewarm)
    return gateway
