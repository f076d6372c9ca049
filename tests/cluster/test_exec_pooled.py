"""Exec WebSockets over the gateway's idle keep-alive connections.

An exec takes an idle pooled connection (no TCP or TLS handshake) when there is one, and
its socket never goes back to the pool. Counted on the server's side: the fake API
server (aiohttp, as the lab) counts the TCP connections it accepts and the client port of
every request; a raw TLS server of this module plays the failures a pooled connection
can meet (closed while idle, dropped before or after the answer began).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falcoir.cluster import KubeGateway, RetryPolicy, connect
from falcoir.core.gateway import PODS
from falcoir.errors import ClusterUnreachable
from tests.cluster.conftest import FAST_RETRY
from tests.cluster.fakeapi import Certs, FakeApi, server_ssl_context, write_kubeconfig

EXEC = "/api/v1/namespaces/prod/pods/web-1/exec"
SLOW_RETRY = RetryPolicy(attempts=3, backoff=5.0, max_wait=5.0, budget=20.0)
"""A try of the session's would wait 5 s: what a test that must not wait runs with."""
ONE_TRY = RetryPolicy(attempts=1)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- against the fake API server (aiohttp, as the lab) ----------------------------------
@pytest.fixture
def tls_gw(tls_api: FakeApi, certs: Certs, tmp_path: Path) -> Iterator[KubeGateway]:
    tls_api.add_pod("prod", "web-1")
    path = write_kubeconfig(tmp_path / "kubeconfig", tls_api.url, ca=certs.ca)
    gateway = connect(str(path), request_timeout=5.0, retry=FAST_RETRY)
    yield gateway
    gateway.close()


def peers(api: FakeApi, method: str, path: str) -> list[tuple[str, int] | None]:
    return [r.peer for r in api.requests_to(method, path)]


def test_an_exec_takes_an_idle_pooled_connection(tls_api: FakeApi, tls_gw: KubeGateway) -> None:
    tls_gw.get(PODS, "web-1", "prod")
    assert tls_api.connections_accepted == 1 and tls_gw.idle_connections == 1
    r = tls_gw.exec("prod", "web-1", None, ["echo", "warm"])
    assert r.ok and r.stdout == b"warm\n"
    assert tls_api.connections_accepted == 1  # no TCP, no TLS handshake
    get_peer = peers(tls_api, "GET", "/api/v1/namespaces/prod/pods/web-1")[0]
    assert peers(tls_api, "GET", EXEC) == [get_peer]
    snap = tls_gw.stats.snapshot()
    assert snap["connections"] == 1 and snap["exec_reused"] == 1 and snap["retries"] == 0
    # The socket left the pool for good; the pool opens another for the next request.
    assert tls_gw.idle_connections == 0
    tls_gw.get(PODS, "web-1", "prod")
    assert tls_api.connections_accepted == 2 and tls_gw.stats.connections == 2
    assert peers(tls_api, "GET", "/api/v1/namespaces/prod/pods/web-1")[1] != get_peer


def test_with_no_idle_connection_an_exec_opens_its_own(
    tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    r = tls_gw.exec("prod", "web-1", None, ["echo", "cold"])
    assert r.ok and r.stdout == b"cold\n"
    assert tls_api.connections_accepted == 1
    snap = tls_gw.stats.snapshot()
    assert snap["connections"] == 1 and snap["exec_reused"] == 0
    assert tls_gw.idle_connections == 0  # the WebSocket's connection was never pooled


def test_a_socket_that_carried_a_websocket_is_never_used_again(
    tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    for i in range(4):
        tls_gw.get(PODS, "web-1", "prod")
        for j in range(2):  # the second finds the pool empty: its own connection
            r = tls_gw.exec("prod", "web-1", None, ["echo", f"{i}.{j}"])
            assert r.stdout == f"{i}.{j}\n".encode()
    tls_gw.list(PODS, "prod")
    tls_gw.prewarm(4).result(10)
    tls_gw.list(PODS, "prod")
    order = [(r.path, r.peer) for r in tls_api.requests]
    ws_peers = [peer for path, peer in order if path == EXEC]
    assert len(ws_peers) == 8 and len(set(ws_peers)) == 8
    for k, (path, peer) in enumerate(order):
        if path == EXEC:
            assert all(later != peer for _, later in order[k + 1 :]), f"{peer} reused"
    snap = tls_gw.stats.snapshot()
    assert snap["exec_reused"] == 4 and snap["retries"] == 0
    # Every GET after the first found its connection taken by the previous exec.
    assert snap["connections"] == tls_api.connections_accepted == 4 + 4 + 4


def test_concurrent_execs_share_out_the_idle_connections(
    tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    assert tls_gw.prewarm(6).result(10) == 6
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(lambda i: tls_gw.exec("prod", "web-1", None, ["echo", str(i)]), range(6))
        )
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(6)]
    assert tls_api.connections_accepted == 6  # the six warm ones, no more
    assert len(set(peers(tls_api, "GET", EXEC))) == 6
    assert tls_gw.stats.exec_reused == 6 and tls_gw.idle_connections == 0


def test_the_client_certificate_identity_carries_over(certs: Certs, tmp_path: Path) -> None:
    api = FakeApi(ssl_context=server_ssl_context(certs, client_certs=True)).start()
    try:
        api.add_pod("prod", "web-1")
        user = {"client-certificate": str(certs.client_cert), "client-key": str(certs.client_key)}
        path = write_kubeconfig(tmp_path / "kc", api.url, ca=certs.ca, user_entry=user)
        gw = connect(str(path), retry=FAST_RETRY)
        gw.get(PODS, "web-1", "prod")
        assert gw.exec("prod", "web-1", None, ["echo", "mtls"]).stdout == b"mtls\n"
        assert api.connections_accepted == 1 and gw.stats.exec_reused == 1
        assert len(api.cert_users) == 2 and all("cert-user" in u for u in api.cert_users)
        gw.close()
    finally:
        api.stop()


def test_no_idle_connection_is_taken_through_a_proxy_or_with_other_tls_settings(
    tls_api: FakeApi, tls_gw: KubeGateway
) -> None:
    tls_gw.get(PODS, "web-1", "prod")
    idle = tls_gw._host_pool().pool
    assert idle is not None
    conn = idle.queue[-1]  # type: ignore[attr-defined]
    conn.server_hostname = "someone-else.example"  # made for another TLS server name
    assert tls_gw.take_idle_socket() is None
    assert tls_gw.idle_connections == 1  # left in the pool, as it was
    conn.server_hostname = None
    conn.sock.selected_alpn_protocol = lambda: "h2"  # HTTP/2 has no Upgrade
    assert tls_gw.take_idle_socket() is None
    del conn.sock.selected_alpn_protocol
    tls_gw.configuration.proxy = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    try:
        assert tls_gw.take_idle_socket() is None
    finally:
        tls_gw.configuration.proxy = None  # type: ignore[attr-defined]
    assert tls_gw.idle_connections == 1
    sock = tls_gw.take_idle_socket()
    assert isinstance(sock, ssl.SSLSocket)
    sock.close()
    assert tls_gw.idle_connections == 0 and tls_gw.take_idle_socket() is None
    assert tls_gw.version()["minor"] == "32"  # the slot still works


# -- a raw TLS server: failures on a pooled connection ----------------------------------
class RawApi:
    """HTTP/1.1 over TLS, one thread per connection: ``GET /version`` (keep-alive) and
    the exec upgrade, which does what :attr:`plan` says next: ``ok`` (101, ``hi`` on
    stdout, Success), ``reset`` (the request read, then a TCP reset with no answer: a
    connection the server had closed looks the same), ``partial`` (half a status line,
    then a reset). With ``close_idle`` the server closes each connection right after
    answering /version (an idle timeout); with ``reset_idle`` set, it resets those
    waiting for a request."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self.ctx = ssl_context
        self.plan: list[str] = []
        self.close_idle = False
        self.reset_idle = threading.Event()
        """Set: every connection waiting for a request is reset (within 20 ms)."""
        self.accepted = 0
        self.requests: list[tuple[str, tuple[str, int]]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def exec_requests(self) -> list[tuple[str, int]]:
        with self._lock:
            return [peer for path, peer in self.requests if path.startswith(EXEC)]

    def stop(self) -> None:
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        while True:
            try:
                raw, peer = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            self._conns.append(raw)
            threading.Thread(target=self._serve, args=(raw, peer), daemon=True).start()

    def _serve(self, raw: socket.socket, peer: tuple[str, int]) -> None:
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
            conn.settimeout(10)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    conn.settimeout(0.02)
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        if self.reset_idle.is_set() and not buf:
                            _reset(conn)  # idle, between requests
                            return
                        continue
                    finally:
                        conn.settimeout(10)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                target = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (h.partition(":") for h in lines[1:])
                }
                with self._lock:
                    self.requests.append((target, peer))
                if target.startswith(EXEC):
                    self._exec(conn, headers)
                    return
                body = json.dumps({"major": "1", "minor": "32"}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                if self.close_idle:
                    time.sleep(0.05)
                    conn.close()
                    return
        except (OSError, ssl.SSLError):
            return

    def _exec(self, conn: ssl.SSLSocket, headers: dict[str, str]) -> None:
        with self._lock:
            what = self.plan.pop(0) if self.plan else "ok"
        if what == "reset":
            _reset(conn)
            return
        if what == "partial":
            conn.sendall(b"HTTP/1.1 101 Swi")
            time.sleep(0.05)
            _reset(conn)
            return
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()
        ).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
            ).encode()
        )
        status = b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode()
        for payload in (b"\x01hi\n", status):
            conn.sendall(bytes([0x82, len(payload)]) + payload)
        conn.sendall(bytes([0x88, 2]) + (1000).to_bytes(2, "big"))
        with contextlib.suppress(OSError, ssl.SSLError):
            conn.recv(64)  # the client's close frame
        conn.close()


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a server that drops a connection."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@pytest.fixture
def raw_api(certs: Certs) -> Iterator[RawApi]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    server = RawApi(ctx)
    yield server
    server.stop()


def raw_gw(raw_api: RawApi, certs: Certs, tmp_path: Path, retry: RetryPolicy) -> KubeGateway:
    path = write_kubeconfig(tmp_path / "kubeconfig", raw_api.url, ca=certs.ca)
    return connect(str(path), request_timeout=5.0, retry=retry)


def test_an_idle_connection_the_server_closed_is_not_taken(
    raw_api: RawApi, certs: Certs, tmp_path: Path
) -> None:
    raw_api.close_idle = True
    gw = raw_gw(raw_api, certs, tmp_path, SLOW_RETRY)
    try:
        gw.version()
        time.sleep(0.3)  # the server has closed it by now: the socket is readable
        t0 = time.monotonic()
        r = gw.exec("prod", "web-1", None, ["echo"])
        assert r.ok and r.stdout == b"hi\n" and time.monotonic() - t0 < 2
        assert raw_api.accepted == 2 and len(raw_api.exec_requests()) == 1
        snap = gw.stats.snapshot()
        assert snap["exec_reused"] == 0 and snap["retries"] == 0 and snap["connections"] == 2
        assert gw.idle_connections == 0  # the dead one was closed, not kept
    finally:
        gw.close()


def test_a_pooled_connection_dropped_before_the_answer_is_replaced_at_once(
    raw_api: RawApi, certs: Certs, tmp_path: Path
) -> None:
    raw_api.plan = ["reset"]
    gw = raw_gw(raw_api, certs, tmp_path, SLOW_RETRY)
    try:
        gw.version()
        t0 = time.monotonic()
        r = gw.exec("prod", "web-1", None, ["echo"])
        assert r.ok and r.stdout == b"hi\n"
        assert time.monotonic() - t0 < 2  # not a try of the session's (it waits 5 s)
        first, second = raw_api.exec_requests()
        assert first == raw_api.requests[0][1] and second != first  # pooled, then new
        assert raw_api.accepted == 2
        snap = gw.stats.snapshot()
        assert snap["by_verb"]["exec"] == 2 and snap["retries"] == 1
        assert snap["exec_reused"] == 1 and snap["connections"] == 2
    finally:
        gw.close()


def test_the_replacement_happens_once_and_uses_no_other_pooled_connection(
    raw_api: RawApi, certs: Certs, tmp_path: Path
) -> None:
    raw_api.plan = ["reset", "reset"]
    gw = raw_gw(raw_api, certs, tmp_path, ONE_TRY)
    try:
        assert gw.prewarm(2).result(10) == 2
        with pytest.raises(ClusterUnreachable):
            gw.exec("prod", "web-1", None, ["echo"])
        assert len(raw_api.exec_requests()) == 2  # the pooled one, then one new: no third
        assert raw_api.accepted == 3 and gw.idle_connections == 1  # the other warm one
    finally:
        gw.close()


def test_a_pooled_connection_reset_after_it_was_taken_fails_the_write_and_is_replaced(
    raw_api: RawApi, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race itself: the connection was idle and open when taken, and the server
    resets it before the upgrade request is written (the write fails: EPIPE or
    ECONNRESET). The server never read the request: it goes again on a new connection."""
    gw = raw_gw(raw_api, certs, tmp_path, SLOW_RETRY)
    take = gw.take_idle_socket

    def take_then_reset() -> Any:
        sock = take()
        if sock is not None:
            raw_api.reset_idle.set()
            deadline = time.monotonic() + 5
            while not select_readable(sock) and time.monotonic() < deadline:
                time.sleep(0.01)  # until the reset has arrived
            raw_api.reset_idle.clear()
        return sock

    monkeypatch.setattr(gw, "take_idle_socket", take_then_reset)
    try:
        gw.version()
        t0 = time.monotonic()
        r = gw.exec("prod", "web-1", None, ["echo"])
        assert r.ok and r.stdout == b"hi\n" and time.monotonic() - t0 < 2
        assert len(raw_api.exec_requests()) == 1  # the reset one never had the request
        assert raw_api.accepted == 2
        snap = gw.stats.snapshot()
        assert snap["by_verb"]["exec"] == 2 and snap["retries"] == 1
    finally:
        gw.close()


def select_readable(sock: socket.socket) -> bool:
    import select

    return bool(select.select([sock], [], [], 0)[0])


def test_a_drop_after_the_answer_began_is_a_try_of_the_session(
    raw_api: RawApi, certs: Certs, tmp_path: Path
) -> None:
    raw_api.plan = ["partial"]
    gw = raw_gw(raw_api, certs, tmp_path, ONE_TRY)
    try:
        gw.version()
        with pytest.raises(ClusterUnreachable):
            gw.exec("prod", "web-1", None, ["echo"])
        assert len(raw_api.exec_requests()) == 1  # the server had it: not sent again
        assert gw.stats.retries == 0
    finally:
        gw.close()
    raw_api.plan = ["partial"]
    gw = raw_gw(raw_api, certs, tmp_path, FAST_RETRY)
    try:
        gw.version()
        r = gw.exec("prod", "web-1", None, ["echo"])  # the session's own retry, as ever
        assert r.ok and r.stdout == b"hi\n"
        assert len(raw_api.exec_requests()) == 3 and gw.stats.retries == 1
        assert gw.version()["minor"] == "32"  # and the pool still serves requests
    finally:
        gw.close()


def test_the_pooled_socket_is_closed_with_the_websocket(
    raw_api: RawApi, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = raw_gw(raw_api, certs, tmp_path, FAST_RETRY)
    taken: list[Any] = []
    take = gw.take_idle_socket

    def spy() -> Any:
        sock = take()
        taken.append(sock)
        return sock

    monkeypatch.setattr(gw, "take_idle_socket", spy)
    try:
        gw.version()
        assert gw.exec("prod", "web-1", None, ["echo"]).ok
        raw_api.plan = ["partial"]
        gw.version()
        gw.exec("prod", "web-1", None, ["echo"])
        socks = [s for s in taken if s is not None]
        assert len(socks) == 2 and all(s.fileno() == -1 for s in socks)  # closed
    finally:
        gw.close()


# -- plain http, and the lab -------------------------------------------------------------
def test_over_plain_http_too(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    gw.get(PODS, "web-1", "prod")
    assert gw.exec("prod", "web-1", None, ["echo", "ws"]).stdout == b"ws\n"
    assert api.connections_accepted == 1 and gw.stats.exec_reused == 1


@pytest.mark.lab
def test_the_lab_takes_an_upgrade_on_a_connection_that_carried_requests(
    lab: Any, fresh_namespace: str
) -> None:
    from tests.cluster.test_lab import pod_body, running
    from tests.cluster.test_lab_connections import our_sockets_to

    gw = connect(str(lab.kubeconfig), retry=FAST_RETRY)
    try:
        gw.create(PODS, pod_body(fresh_namespace, "target"))
        running(gw, fresh_namespace, "target")
        port = int(gw.server.rsplit(":", 1)[1])
        before = our_sockets_to(port)
        opened = gw.stats.connections
        for i in range(3):
            gw.get(PODS, "target", fresh_namespace)  # leaves its connection idle
            r = gw.exec(fresh_namespace, "target", "app", ["echo", f"pooled {i}"])
            assert r.ok and r.stdout == f"pooled {i}\n".encode(), r
        # Each exec took the idle connection and closed it with the WebSocket; each GET
        # opened the next one (after the first, which found one idle).
        assert gw.stats.exec_reused == 3 and gw.stats.retries == 0
        assert gw.stats.connections == opened + 2
        assert gw.idle_connections == 0 and not (our_sockets_to(port) - before)
    finally:
        gw.close()


def test_after_a_failed_try_on_a_pooled_connection_the_next_opens_its_own(
    raw_api: RawApi, certs: Certs, tmp_path: Path
) -> None:
    # An idle connection may be dead without a word (a NAT or load balancer dropped it):
    # once a try on one failed, the retries do not take other idle ones.
    raw_api.plan = ["partial"]
    gw = raw_gw(raw_api, certs, tmp_path, FAST_RETRY)
    taken: list[bool] = []
    real = gw.take_idle_socket

    def counting() -> Any:
        sock = real()
        taken.append(sock is not None)
        return sock

    gw.take_idle_socket = counting  # type: ignore[method-assign]
    try:
        gw.version()  # one idle connection in the pool
        r = gw.exec("prod", "web-1", None, ["echo"])
        assert r.ok and r.stdout == b"hi\n"
        assert taken == [True]  # the retry did not ask the pool again
        assert len(raw_api.exec_requests()) == 2
    finally:
        gw.close()
