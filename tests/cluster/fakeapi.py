"""A small fake Kubernetes API server (aiohttp, HTTP or HTTPS) for the gateway's tests.

It answers the way the real API server does for what the gateway uses: objects under
``/api/v1`` and ``/apis/G/V`` (get, list with ``limit``/``continue``, create, patch with
the content type recorded, delete), Status JSON errors, SelfSubjectReview,
SelfSubjectAccessReview, pod logs, and exec over a WebSocket with the
``v5.channel.k8s.io`` framing. Tests script failures with :meth:`FakeApi.script`
(status codes, Retry-After, dropped connections) and read back every request in
:attr:`FakeApi.requests`.

Exec "programs" (argv[0]) are simulated in-process: ``echo``, ``fail N``,
``sleep S``, ``big N [CHUNK]``, ``bigerr N``, ``cat`` (stdin to stdout), ``binary``, ``zeros N``,
``drop`` (output then the connection is cut without a status), ``chatty`` (output
forever); anything else answers as a missing binary does.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

PATH_RE = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        doc["details"] = details
    return doc


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    """The path as sent, still percent-encoded."""
    peer: tuple[str, int] | None = None
    """The client's address and port: one per connection."""

    def q(self, key: str) -> list[str]:
        return [v for k, v in self.query if k == key]


@dataclass
class Scripted:
    method: str
    path: str
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    times: int = 1
    dribble: bool = False
    """Send the body one byte every 50 ms, for ever."""


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeApi:
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, token: str = "t0k3n") -> None:
        self.ssl_context = ssl_context
        self.token = token
        self.objects: dict[tuple[str, str, str | None, str], dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.scripted: list[Scripted] = []
        self.logs: dict[tuple[str, str], bytes] = {}
        self.selfsubjectreview = True
        self.username = "jane@example.com"
        self.allowed: set[tuple[str, str, str]] = set()
        self.exec_sessions = 0
        self.cert_users: list[str] = []
        self.ws_protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io")
        self.exec_active = 0
        self.exec_max_active = 0
        self.connections_accepted = 0
        self.latency = 0.0
        """Seconds every request waits before its answer (a remote API server)."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- test helpers ----------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def add(self, prefix: str, plural: str, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        self.objects[(prefix, plural, meta.get("namespace"), meta["name"])] = obj

    def add_pod(self, namespace: str, name: str, **labels: str) -> dict[str, Any]:
        pod = {
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "uid": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Running"},
        }
        self.add("/api/v1", "pods", pod)
        return pod

    def script(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        drop: bool = False,
        times: int = 1,
        dribble: bool = False,
    ) -> None:
        """The next ``times`` requests ``method path`` get this answer (or a cut)."""
        with self._lock:
            self.scripted.append(
                Scripted(method, path, status, body, headers or {}, drop, times, dribble)
            )

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeApi:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            loop.run_until_complete(self._runner.setup())
            handler = self._runner.server
            assert handler is not None

            def accepted() -> Any:
                # One per TCP connection (and TLS handshake, over https).
                with self._lock:
                    self.connections_accepted += 1
                return handler()

            server = loop.run_until_complete(
                loop.create_server(accepted, "127.0.0.1", 0, ssl=self.ssl_context)
            )
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="fakeapi")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake API server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- dispatch --------------------------------------------------------------------
    def _take_script(self, method: str, path: str) -> Scripted | None:
        with self._lock:
            for s in self.scripted:
                if s.method == method and s.path == path and s.times > 0:
                    s.times -= 1
                    return s
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = Recorded(
            request.method,
            request.path,
            list(request.query.items()),
            dict(request.headers),
            body,
            request.raw_path.split("?", 1)[0],
            _peer(request),
        )
        with self._lock:
            self.requests.append(rec)
        if self.latency:
            await asyncio.sleep(self.latency)
        scripted = self._take_script(request.method, request.path)
        if scripted is not None:
            if scripted.drop:
                assert request.transport is not None
                request.transport.abort()
                await asyncio.sleep(0.05)
                raise ConnectionResetError("dropped by the test")
            if scripted.dribble:
                resp = web.StreamResponse(status=scripted.status)
                await resp.prepare(request)
                while True:
                    await resp.write(b" ")
                    await asyncio.sleep(0.05)
            payload = scripted.body
            text = payload if isinstance(payload, str | bytes) else json.dumps(payload or {})
            return web.Response(
                status=scripted.status,
                body=text.encode() if isinstance(text, str) else text,
                headers={"Content-Type": "application/json", **scripted.headers},
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            with self._lock:
                self.cert_users.append(str(peer.get("subject")))
        elif scheme.lower() != "bearer" or token != self.token:
            return self._status(401, "Unauthorized", "Unauthorized")
        if request.path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if request.path == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
            if not self.selfsubjectreview:
                return self._status(404, "NotFound", "the server could not find the resource")
            return web.json_response(
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "SelfSubjectReview",
                    "status": {"userInfo": {"username": self.username, "groups": []}},
                },
                status=201,
            )
        if request.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            spec = json.loads(body)["spec"]["resourceAttributes"]
            res = spec["resource"] + ("/" + spec["subresource"] if spec.get("subresource") else "")
            allowed = (spec["verb"], res, spec.get("namespace", "")) in self.allowed
            doc = json.loads(body)
            doc["status"] = {"allowed": allowed}
            return web.json_response(doc, status=201)
        m = PATH_RE.match(request.path)
        if request.path.startswith("/api/v1/namespaces/") and request.path.count("/") == 4:
            m = None  # GET /api/v1/namespaces/NAME: not used by these tests
        if m is None:
            return self._status(404, "NotFound", "the server could not find the requested resource")
        prefix, ns, plural, name, sub = m.group("prefix", "ns", "plural", "name", "sub")
        if sub == "exec" and plural == "pods":
            return await self._exec(request, prefix, ns, name)
        if sub == "log" and plural == "pods":
            return await self._log(request, ns, name)
        return self._crud(request, rec, prefix, ns, plural, name, sub)

    def _status(self, code: int, reason: str, message: str, **details: Any) -> web.Response:
        return web.json_response(status_body(code, reason, message, **details), status=code)

    def _crud(
        self,
        request: web.Request,
        rec: Recorded,
        prefix: str,
        ns: str | None,
        plural: str,
        name: str | None,
        sub: str | None,
    ) -> web.Response:
        method = request.method
        key = (prefix, plural, ns, name or "")
        dry = rec.q("dryRun") == ["All"]
        if method == "GET" and name is None:
            return self._list(rec, prefix, ns, plural)
        if method == "GET":
            if key not in self.objects:
                return self._status(
                    404, "NotFound", f'{plural} "{name}" not found', name=name, kind=plural
                )
            return web.json_response(self.objects[key])
        if method == "POST" and name is None:
            obj = json.loads(rec.body)
            meta = obj.get("metadata", {})
            key = (prefix, plural, ns, meta.get("name", ""))
            if key in self.objects:
                return self._status(
                    409,
                    "AlreadyExists",
                    f'{plural} "{meta.get("name")}" already exists',
                    name=meta.get("name"),
                    kind=plural,
                )
            if not meta.get("name"):
                return self._status(422, "Invalid", f"{plural} is invalid: metadata.name: Required")
            if not dry:
                self.objects[key] = obj
            return web.json_response(obj, status=201)
        if method == "PATCH":
            if key not in self.objects:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            ctype = request.headers.get("Content-Type", "")
            patch = json.loads(rec.body)
            obj = copy.deepcopy(self.objects[key])
            if ctype == "application/json-patch+json":
                for op in patch:
                    if op["op"] not in ("add", "replace"):
                        return self._status(422, "Invalid", f"unsupported op {op['op']}")
                    cur = obj
                    parts = [
                        p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
                    ]
                    for p in parts[:-1]:
                        cur = cur.setdefault(p, {})
                    cur[parts[-1]] = op["value"]
            elif ctype in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                obj = _merge(obj, patch)
            else:
                return self._status(415, "UnsupportedMediaType", f"unsupported {ctype}")
            if not dry:
                self.objects[key] = obj
            return web.json_response(obj)
        if method == "DELETE":
            if key not in self.objects:
                return self._status(404, "NotFound", f'{plural} "{name}" not found')
            obj = self.objects[key] if dry else self.objects.pop(key)
            return web.json_response(obj)
        return self._status(405, "MethodNotAllowed", "method not allowed")

    def _list(self, rec: Recorded, prefix: str, ns: str | None, plural: str) -> web.Response:
        items = [
            o
            for (p, pl, n, _), o in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
            if p == prefix and pl == plural and (ns is None or n == ns)
        ]
        for sel in rec.q("labelSelector"):
            for term in sel.split(","):
                k, v = term.split("=", 1)
                items = [o for o in items if o["metadata"].get("labels", {}).get(k) == v]
        for sel in rec.q("fieldSelector"):
            k, v = sel.split("=", 1)
            if k != "metadata.name":
                return self._status(400, "BadRequest", f"field label not supported: {k}")
            items = [o for o in items if o["metadata"]["name"] == v]
        start = int(rec.q("continue")[0]) if rec.q("continue") else 0
        limit = int(rec.q("limit")[0]) if rec.q("limit") else len(items) or 1
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": "1"}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return web.json_response(
            {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page}
        )

    async def _log(
        self, request: web.Request, ns: str | None, name: str | None
    ) -> web.StreamResponse:
        data = self.logs.get((ns or "", name or ""))
        if data is None:
            return self._status(404, "NotFound", f'pods "{name}" not found')
        limit = request.query.get("limitBytes")
        if limit:
            data = data[: int(limit)]
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        for i in range(0, len(data), 65536):
            await resp.write(data[i : i + 65536])
        await resp.write_eof()
        return resp

    # -- exec ------------------------------------------------------------------------
    async def _exec(
        self, request: web.Request, prefix: str, ns: str | None, name: str | None
    ) -> web.StreamResponse:
        if (prefix, "pods", ns, name or "") not in self.objects:
            return self._status(404, "NotFound", f'pods "{name}" not found')
        argv = request.query.getall("command", [])
        ws = web.WebSocketResponse(protocols=self.ws_protocols, compress=False, max_msg_size=0)
        await ws.prepare(request)
        with self._lock:
            self.exec_sessions += 1
            self.exec_active += 1
            self.exec_max_active = max(self.exec_max_active, self.exec_active)
        stdin = bytearray()
        stdin_closed = asyncio.Event()
        client_gone = asyncio.Event()

        async def reader() -> None:
            async for msg in ws:
                if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                    if data[:1] == b"\x00":
                        stdin.extend(data[1:])
                    elif data == b"\xff\x00":
                        stdin_closed.set()
            stdin_closed.set()
            client_gone.set()

        read_task = asyncio.create_task(reader())
        try:
            await ws.send_bytes(b"\x01")
            status = await self._program(ws, argv, stdin, stdin_closed, client_gone)
            if status is not None:
                await ws.send_bytes(b"\x03" + json.dumps(status).encode())
                await ws.close(code=1000)
        finally:
            read_task.cancel()
            with self._lock:
                self.exec_active -= 1
        return ws

    async def _program(
        self,
        ws: web.WebSocketResponse,
        argv: list[str],
        stdin: bytearray,
        stdin_closed: asyncio.Event,
        client_gone: asyncio.Event,
    ) -> dict[str, Any] | None:
        prog = argv[0] if argv else ""
        ok: dict[str, Any] = {"metadata": {}, "status": "Success"}
        if prog == "echo":
            await ws.send_bytes(b"\x01" + (" ".join(argv[1:]) + "\n").encode())
            return ok
        if prog == "fail":
            await ws.send_bytes(b"\x02failing\n")
            code = argv[1]
            return {
                "metadata": {},
                "status": "Failure",
                "message": "command terminated with non-zero exit code: command terminated "
                f"with exit code {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code}]},
            }
        if prog == "sleep":
            try:
                await asyncio.wait_for(client_gone.wait(), float(argv[1]))
            except TimeoutError:
                return ok
            return None
        if prog in ("big", "bigerr"):
            total = int(argv[1])
            chunk = int(argv[2]) if len(argv) > 2 else 65536
            channel = b"\x01" if prog == "big" else b"\x02"
            sent = 0
            while sent < total:
                n = min(chunk, total - sent)
                await ws.send_bytes(channel + bytes((sent + i) % 251 for i in range(n)))
                sent += n
            return ok
        if prog == "zeros":  # fast bulk output: N bytes of zeros in 256 KiB messages
            left = int(argv[1])
            block = b"\x01" + bytes(262144)
            while left > 0:
                n = min(262144, left)
                await ws.send_bytes(block if n == 262144 else block[: n + 1])
                left -= n
            return ok
        if prog == "cat":
            await asyncio.wait_for(stdin_closed.wait(), 20)
            data = bytes(stdin)
            for i in range(0, len(data), 65536):
                await ws.send_bytes(b"\x01" + data[i : i + 65536])
            return ok
        if prog == "binary":
            await ws.send_bytes(b"\x01\xff\xfe\x00out")
            await ws.send_bytes(b"\x02\xc3(err")
            return ok
        if prog == "drop":
            await ws.send_bytes(b"\x01partial")
            await asyncio.sleep(0.05)
            transport = ws._req.transport if ws._req is not None else None  # type: ignore[attr-defined]
            if transport is not None:
                transport.abort()
            return None
        if prog == "chatty":
            while not ws.closed and not client_gone.is_set():
                await ws.send_bytes(b"\x01" + b"y\n" * 512)
                await asyncio.sleep(0.01)
            return None
        return {
            "metadata": {},
            "status": "Failure",
            "message": "Internal error occurred: error executing command in container: failed "
            f'to exec in container: OCI runtime exec failed: exec failed: exec: "{prog}": '
            "executable file not found in $PATH: unknown",
            "reason": "InternalError",
            "details": {"causes": [{"message": "error executing command in container"}]},
            "code": 500,
        }


def _peer(request: web.Request) -> tuple[str, int] | None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(base.get(k), v)
    return out


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    """A CA that did not sign the server's certificate."""
    client_cert: Path
    client_key: Path
    """A client certificate (CN ``cert-user``) signed by ``ca``."""


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and a stranger CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    now = datetime.datetime.now(datetime.UTC)

    def ca_cert(k: ec.EllipticCurvePrivateKey, cn: str) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(k, hashes.SHA256())
        )

    ca_key, other_key, srv_key = key(), key(), key()
    ca = ca_cert(ca_key, "fake-ca")
    other = ca_cert(other_key, "stranger-ca")
    srv = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-apiserver")]))
        .issuer_name(ca.subject)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cli_key = key()
    cli = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cert-user")]))
        .issuer_name(ca.subject)
        .public_key(cli_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out = Certs(
        directory / "ca.crt",
        directory / "srv.crt",
        directory / "srv.key",
        directory / "other.crt",
        directory / "client.crt",
        directory / "client.key",
    )
    out.ca.write_bytes(ca.public_bytes(pem))
    out.other_ca.write_bytes(other.public_bytes(pem))
    out.cert.write_bytes(srv.public_bytes(pem))
    out.client_cert.write_bytes(cli.public_bytes(pem))
    for k, path in ((srv_key, out.key), (cli_key, out.client_key)):
        path.write_bytes(
            k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return out


def server_ssl_context(certs: Certs, *, client_certs: bool = False) -> ssl.SSLContext:
    """The server's TLS; with ``client_certs``, client certificates signed by the CA are
    asked for (and, when presented, authenticate the request in place of a token)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    if client_certs:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(certs.ca)
    return ctx


def write_kubeconfig(
    path: Path,
    server: str,
    *,
    token: str = "t0k3n",
    ca: Path | None = None,
    context: str = "fake",
    user: str = "tester",
    extra_contexts: tuple[str, ...] = (),
    user_entry: dict[str, Any] | None = None,
) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    contexts = [{"name": context, "context": {"cluster": "c", "user": user}}]
    contexts += [{"name": n, "context": {"cluster": "c", "user": user}} for n in extra_contexts]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": user, "user": user_entry or {"token": token}}],
        "contexts": contexts,
        "current-context": context,
    }
    path.write_text(json.dumps(doc))
    return path
