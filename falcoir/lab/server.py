"""The lab's Kubernetes API server (aiohttp, HTTPS, bearer tokens).

One :class:`LabServer` holds the object store, the controllers (Deployment ->
ReplicaSet -> Pod, DaemonSet, garbage collection), the pod runtimes (the lab node's and
the virtual one for extra nodes) and the HTTP handlers. Objects cross every boundary as
raw Kubernetes JSON.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import importlib
import ipaddress
import json
import logging
import random
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from falcoir.lab import pki, streams
from falcoir.lab.errors import (
    ApiStatus,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
    unauthorized,
)
from falcoir.lab.patch import PatchError, apply_patch
from falcoir.lab.runtime import PodRuntime
from falcoir.lab.selectors import (
    Requirement,
    SelectorError,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    validate_label_selector,
)
from falcoir.lab.store import (
    BY_KIND,
    BY_PATH,
    GROUP_VERSIONS,
    RESOURCES,
    ResourceType,
    Store,
    Watcher,
    WatchEvent,
    new_uid,
    now_iso,
)
from falcoir.lab.tables import to_table
from falcoir.lab.virtual import VirtualRuntime

JSON = dict[str, Any]
log = logging.getLogger("falcoir.lab")

LAB_NODE = "lab-node"
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
ADMIN_PATH = "/falcoir-lab/v1"
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PODS = BY_PATH[("v1", "pods")]
NODES = BY_PATH[("v1", "nodes")]
NAMESPACES = BY_PATH[("v1", "namespaces")]
EVENTS = BY_PATH[("v1", "events")]
DEPLOYMENTS = BY_PATH[("apps/v1", "deployments")]
REPLICASETS = BY_PATH[("apps/v1", "replicasets")]
DAEMONSETS = BY_PATH[("apps/v1", "daemonsets")]
NETPOLS = BY_PATH[("networking.k8s.io/v1", "networkpolicies")]
READ_VERBS = ("get", "list", "watch")
READ_SUBRESOURCES = ("", "log", "status", "scale")


def rand_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(n))


def truthy(value: str | None) -> bool:
    """Kubernetes query booleans: missing = false, 0/false (any case) = false, else true."""
    if value is None:
        return False
    return value.strip().lower() not in ("0", "false", "")


def template_hash(template: JSON) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SUFFIX_ALPHABET[b % len(SUFFIX_ALPHABET)] for b in digest[:10])


class Identity:
    def __init__(self, name: str, groups: list[str], admin: bool) -> None:
        self.name = name
        self.groups = groups
        self.admin = admin

    def allowed(self, verb: str, resource: str, subresource: str = "") -> bool:
        if self.admin:
            return True
        if resource in (
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
            "selfsubjectreviews",
        ):
            return verb == "create"
        if resource == "secrets":
            return False
        return verb in READ_VERBS and subresource in READ_SUBRESOURCES


class Faults:
    """Fault injection, read from ``DIR/faults.json`` whenever the file changes.

    ``rate_*`` apply to each API request (``rate_drop`` cuts plain responses and watches);
    ``exec_drop`` is the fraction of exec streams cut mid-way (after the first output,
    or before the exit status when there is none): no status, no close frame."""

    KEYS = ("latency_ms", "rate_429", "rate_500", "rate_503", "rate_drop", "exec_drop")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, float] = dict.fromkeys(self.KEYS, 0.0)
        self._mtime = -1.0
        self._rng = random.Random()  # noqa: S311 - fault injection, not crypto

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            if self._mtime != -1.0:
                self.values = dict.fromkeys(self.KEYS, 0.0)
                self._mtime = -1.0
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            doc = json.loads(self.path.read_text())
            self.values = {k: float(doc.get(k, 0) or 0) for k in self.KEYS}
        except (OSError, ValueError, TypeError, AttributeError):
            log.warning("ignoring unreadable %s", self.path)

    def pick(self) -> str | None:
        """One of ``429 500 503 drop`` or ``None``, drawn with the configured rates."""
        r = self._rng.random()
        acc = 0.0
        for key in ("rate_429", "rate_500", "rate_503", "rate_drop"):
            acc += self.values[key]
            if r < acc:
                return key[5:]
        return None

    def drop_exec(self) -> bool:
        """Whether to cut this exec stream (drawn with ``exec_drop``)."""
        self.refresh()
        rate = self.values["exec_drop"]
        return rate > 0 and self._rng.random() < rate


def write_faults(state_dir: Path, values: dict[str, float]) -> Path:
    """Set the running lab's fault injection (atomically replaces ``DIR/faults.json``)."""
    path = state_dir / "faults.json"
    tmp = path.with_name(f"faults.json.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps({k: v for k, v in values.items() if k in Faults.KEYS}))
    tmp.replace(path)
    return path


def make_runtime(
    state_dir: Path, node_name: str, *, enforce_network_policy: bool, spec: str = "auto"
) -> PodRuntime:
    """The lab node's runtime: ``auto`` = the Linux one if it exists, else virtual;
    ``virtual``; ``linux``; or ``module:callable`` (tests)."""
    if spec == "virtual":
        return VirtualRuntime(node_name)
    if spec in ("auto", "linux"):
        try:
            from falcoir.lab.linux import LinuxRuntime  # type: ignore[import-not-found,unused-ignore]
        except ModuleNotFoundError as exc:
            if spec == "linux" or exc.name not in ("falcoir.lab.linux",):
                raise
            return VirtualRuntime(node_name)
        rt: PodRuntime = LinuxRuntime(
            state_dir, node_name, enforce_network_policy=enforce_network_policy
        )
        return rt
    module, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module), attr or "make_runtime")
    made: PodRuntime = factory(state_dir, node_name, enforce_network_policy=enforce_network_policy)
    return made


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dump(doc), status=status, content_type="application/json")


def status_response(err: ApiStatus) -> web.Response:
    resp = json_response(err.to_json(), err.code)
    if err.code == 429:
        resp.headers["Retry-After"] = "1"
    return resp


class LabServer:
    """The API server, its store, its controllers and its runtimes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        nodes: int = 0,
        enforce_network_policy: bool = True,
        runtime: str = "auto",
        latency_ms: float = 0.0,
    ) -> None:
        self.state_dir = state_dir
        self.store = Store()
        self.tokens = pki.ensure_tokens(state_dir)
        self.identities = {
            self.tokens.admin: Identity(
                pki.ADMIN_USER, ["system:masters", "system:authenticated"], True
            ),
            self.tokens.restricted: Identity(
                pki.RESTRICTED_USER, ["falcoir-lab:read-only", "system:authenticated"], False
            ),
        }
        self.runtime: PodRuntime = make_runtime(
            state_dir, LAB_NODE, enforce_network_policy=enforce_network_policy, spec=runtime
        )
        self.virtual_runtimes: dict[str, VirtualRuntime] = {}
        self.faults = Faults(state_dir / "faults.json")
        if latency_ms and not self.faults.path.exists():
            write_faults(state_dir, {"latency_ms": latency_ms})
        self.extra_nodes = nodes
        self._dirty = asyncio.Event()
        self._np_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._bg: set[asyncio.Task[Any]] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.started = time.monotonic()
        self.stopping = False
        self._hashes: dict[tuple[str, Any], str] = {}

    # ----------------------------------------------------------------------------------
    # lifecycle
    # ----------------------------------------------------------------------------------
    def spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def bootstrap(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._create_namespace(ns)
        self._add_node(LAB_NODE, 0, control_plane=True)
        for i in range(1, self.extra_nodes + 1):
            self.add_virtual_node(f"lab-vnode-{i:03d}", i)

    def _create_namespace(self, name: str) -> JSON:
        existing = self.store.get(NAMESPACES, "", name)
        if existing:
            return existing
        obj = {
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self._fill_metadata(NAMESPACES, obj, "")
        return self.store.put(NAMESPACES, obj, created=True)

    def _add_node(self, name: str, index: int, *, control_plane: bool = False) -> JSON:
        now = now_iso()
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if control_plane:
            labels["node-role.kubernetes.io/control-plane"] = ""
        else:
            labels["falcoir.dev/virtual"] = "true"
        ip = "127.0.0.1" if index == 0 else f"172.30.{index // 256}.{index % 256}"

        def cond(t: str, status: str, reason: str, msg: str) -> JSON:
            return {
                "type": t,
                "status": status,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": msg,
            }

        obj: JSON = {
            "metadata": {"name": name, "labels": labels, "annotations": {}},
            "spec": {
                "podCIDR": f"10.244.{index % 256}.0/24",
                "podCIDRs": [f"10.244.{index % 256}.0/24"],
            },
            "status": {
                "capacity": {
                    "cpu": "2",
                    "memory": "8Gi",
                    "pods": "110",
                    "ephemeral-storage": "50Gi",
                },
                "allocatable": {
                    "cpu": "2",
                    "memory": "8Gi",
                    "pods": "110",
                    "ephemeral-storage": "50Gi",
                },
                "conditions": [
                    cond(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    cond(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                    ),
                    cond(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                    ),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": hashlib.md5(name.encode(), usedforsecurity=False).hexdigest(),
                    "systemUUID": new_uid(),
                    "bootID": new_uid(),
                    "kernelVersion": _kernel(),
                    "osImage": "falcoir lab",
                    "containerRuntimeVersion": "containerd://1.7.24"
                    if index == 0
                    else "containerd://virtual",
                    "kubeletVersion": VERSION["gitVersion"],
                    "kubeProxyVersion": VERSION["gitVersion"],
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }
        self._fill_metadata(NODES, obj, "")
        return self.store.put(NODES, obj, created=True)

    def add_virtual_node(self, name: str, index: int) -> JSON:
        existing = self.store.get(NODES, "", name)
        if existing:
            return existing
        ip = f"172.30.{index // 256}.{index % 256}"
        rt = VirtualRuntime(name, node_index=index, host_ip=ip)
        self.virtual_runtimes[name] = rt
        self.spawn(rt.start(self))
        node = self._add_node(name, index)
        self.mark_dirty()
        return node

    def runtime_for(self, node: str) -> PodRuntime | VirtualRuntime | None:
        if node == LAB_NODE:
            return self.runtime
        return self.virtual_runtimes.get(node)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        # The runtime's set-up and the certificates (made in a thread) overlap: lab up
        # answers after the slower of the two, not after both.
        runtime_started = asyncio.ensure_future(self.runtime.start(self))
        try:
            _ca, crt, key = await asyncio.to_thread(pki.ensure_certificates, self.state_dir)
        finally:
            await runtime_started
        self.bootstrap()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        ctx.set_alpn_protocols(["http/1.1"])
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ctx, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        self._tasks.append(asyncio.ensure_future(self._controller_loop()))
        self._tasks.append(asyncio.ensure_future(self._netpol_loop()))
        self.mark_dirty()
        return self.port

    async def stop(self) -> None:
        self.stopping = True  # first: no pod is started from now on (see _start_pod)
        for t in self._tasks:
            t.cancel()
        for t in list(self._bg):
            t.cancel()
        for w in self.store.watchers:
            w.queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
        for t in list(self._bg):  # spawned while the last requests were answered
            t.cancel()
        # The runtime kills every pod, also those whose start was just cancelled.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.runtime.shutdown(), 30)

    # ----------------------------------------------------------------------------------
    # RuntimeEvents
    # ----------------------------------------------------------------------------------
    def pod_status(self, namespace: str, name: str, uid: str, status: JSON) -> None:
        pod = self.store.get(PODS, namespace, name)
        if pod is None or pod["metadata"].get("uid") != uid:
            return
        new = copy.deepcopy(pod)
        old_status = new.get("status", {})
        merged = dict(status)
        merged.setdefault("qosClass", old_status.get("qosClass", "BestEffort"))
        new["status"] = merged
        was_ready = _pod_ready(pod)
        self.store.put(PODS, new, created=False)
        if _pod_ready(new) != was_ready or old_status.get("podIP") != merged.get("podIP"):
            self.mark_dirty()
            self._np_dirty.set()

    def pod_event(
        self, namespace: str, name: str, uid: str, reason: str, message: str, type_: str
    ) -> None:
        pod = self.store.get(PODS, namespace, name)
        node = pod.get("spec", {}).get("nodeName", LAB_NODE) if pod else LAB_NODE
        self.record_event(
            {"kind": "Pod", "namespace": namespace, "name": name, "uid": uid, "apiVersion": "v1"},
            reason,
            message,
            type_,
            component="kubelet",
            host=node,
        )

    def record_event(
        self,
        involved: JSON,
        reason: str,
        message: str,
        type_: str = "Normal",
        *,
        component: str,
        host: str = "",
    ) -> None:
        ns = involved.get("namespace") or "default"
        if self.store.get(NAMESPACES, "", ns) is None:
            return
        now = now_iso()
        obj: JSON = {
            "metadata": {"name": f"{involved.get('name')}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        self._fill_metadata(EVENTS, obj, ns)
        self.store.put(EVENTS, obj, created=True)

    # ----------------------------------------------------------------------------------
    # HTTP plumbing
    # ----------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        api = path.startswith(("/api", "/apis"))
        fault = None
        if api:
            self.faults.refresh()
            latency = self.faults.values["latency_ms"]
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            fault = self.faults.pick()
            if fault == "drop":
                request["falcoir_drop"] = True  # streams (watch) cut after one event
            if fault in ("429", "500", "503"):
                code = int(fault)
                reason, msg = {
                    429: (
                        "TooManyRequests",
                        "the server has received too many requests and has asked us to try again later",  # noqa: E501
                    ),
                    500: ("InternalError", "Internal error occurred: injected by the falcoir lab"),
                    503: (
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                    ),
                }[code]
                details = {"retryAfterSeconds": 1} if code == 429 else None
                return status_response(ApiStatus(code, reason, msg, details))
        try:
            resp = await handler(request)
        except ApiStatus as err:
            resp = status_response(err)
        if fault == "drop" and isinstance(resp, web.Response) and resp.body is not None:
            body = bytes(resp.body)  # type: ignore[arg-type]
            stream = web.StreamResponse(status=resp.status)
            stream.content_type = resp.content_type
            stream.content_length = len(body) + 16
            await stream.prepare(request)
            await stream.write(body[: max(1, len(body) // 2)])
            if request.transport is not None:
                request.transport.abort()
            return stream
        return resp

    def _authenticate(self, request: web.Request) -> Identity | None:
        auth = request.headers.get("Authorization", "")
        if not auth:
            return None
        # As the real API server: the scheme is case-insensitive (the Python client's
        # in-cluster loader sends "bearer"), the token is what follows one space.
        parts = auth.split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1].strip():
            raise unauthorized()
        ident = self.identities.get(parts[1].strip())
        if ident is None:
            raise unauthorized()
        return ident

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        try:
            ident = self._authenticate(request)
        except ApiStatus as err:
            return status_response(err)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return json_response(VERSION)
        if ident is None:
            return status_response(unauthorized())
        try:
            return await self._route(request, path, ident)
        except ApiStatus as err:
            return status_response(err)

    async def _route(self, request: web.Request, path: str, ident: Identity) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if path == "/api":
            return json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                    ],
                }
            )
        if path == "/apis":
            return json_response(self._group_list())
        if path == "/openapi/v3":
            return json_response(
                {
                    "paths": {
                        ("api/v1" if gv == "v1" else f"apis/{gv}"): {
                            "serverRelativeURL": f"/openapi/v3/{'api/v1' if gv == 'v1' else 'apis/' + gv}?hash={VERSION['gitCommit'][:16]}"  # noqa: E501
                        }
                        for gv in ("v1", *GROUP_VERSIONS)
                    }
                }
            )
        if path.startswith("/openapi/v3/"):
            return json_response(self._openapi_v3(path[len("/openapi/v3/") :]))
        if path.startswith(ADMIN_PATH):
            if not ident.admin:
                raise forbidden(
                    f'User "{ident.name}" cannot use the lab admin endpoint', "", "", ""
                )
            return await self._admin(request, path[len(ADMIN_PATH) :])
        if parts[0] == "api" and len(parts) >= 2:
            gv, rest = parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        if gv not in ("v1", *GROUP_VERSIONS):
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        if not rest:
            return json_response(self._resource_list(gv))
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        rtype = BY_PATH.get((gv, rest[0]))
        if rtype is None or len(rest) > 3:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        if ns is not None and not rtype.namespaced:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rtype.subresources:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        return await self._handle(request, ident, rtype, ns, name, sub)

    def _group_list(self) -> JSON:
        groups = []
        for gv in GROUP_VERSIONS:
            g, v = gv.split("/")
            entry = {"groupVersion": gv, "version": v}
            groups.append({"name": g, "versions": [entry], "preferredVersion": entry})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _openapi_v3(self, rel: str) -> JSON:
        """A minimal OpenAPI v3 document for one group/version: enough for kubectl to see
        that the server validates fields itself (``fieldValidation``), so ``kubectl
        apply``/``create`` send ``fieldValidation=Strict`` instead of validating
        client-side against a full schema."""
        gv = "v1" if rel == "api/v1" else rel.removeprefix("apis/")
        if gv not in ("v1", *GROUP_VERSIONS):
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        paths: JSON = {}
        for r in RESOURCES:
            if r.api_version != gv or "patch" not in r.verbs:
                continue
            base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            item = (
                f"{base}/namespaces/{{namespace}}/{r.plural}/{{name}}"
                if r.namespaced
                else f"{base}/{r.plural}/{{name}}"
            )
            gvk = {"group": r.group, "version": r.version, "kind": r.kind}
            params = [
                {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                for n in ("dryRun", "fieldManager", "fieldValidation", "force")
            ]
            paths[item] = {
                "patch": {
                    "operationId": f"patch{r.kind}",
                    "parameters": params,
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                },
                "put": {
                    "operationId": f"replace{r.kind}",
                    "parameters": params[:3],
                    "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk,
                },
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths,
            "components": {"schemas": {}},
        }

    def _resource_list(self, gv: str) -> JSON:
        resources: list[JSON] = []
        for r in RESOURCES:
            if r.api_version != gv:
                continue
            entry: JSON = {
                "name": r.plural,
                "singularName": r.singular or r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            resources.append(entry)
            for sub in r.subresources:
                kind, verbs = r.kind, ["get", "patch", "update"]
                if sub == "scale":
                    kind = "Scale"
                elif sub in ("exec", "attach", "portforward"):
                    kind, verbs = "PodExecOptions", ["create", "get"]
                elif sub == "log":
                    verbs = ["get"]
                elif sub in ("eviction",):
                    kind, verbs = "Eviction", ["create"]
                elif sub == "binding":
                    kind, verbs = "Binding", ["create"]
                elif sub == "finalize":
                    verbs = ["update"]
                resources.append(
                    {
                        "name": f"{r.plural}/{sub}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": kind,
                        "verbs": verbs,
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }

    # ----------------------------------------------------------------------------------
    # authorisation
    # ----------------------------------------------------------------------------------
    def authorize(
        self, ident: Identity, verb: str, rtype: ResourceType, sub: str, ns: str | None, name: str
    ) -> None:
        if ident.allowed(verb, rtype.plural, sub):
            return
        res = f"{rtype.plural}/{sub}" if sub else rtype.plural
        who = f'User "{ident.name}" cannot {verb} resource "{res}" in API group "{rtype.group}"'
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        prefix = f"{rtype.plural}{'.' + rtype.group if rtype.group else ''}"
        subject = f'{prefix} "{name}"' if name else prefix
        raise forbidden(f"{subject} is forbidden: {who}{where}", rtype.group, rtype.plural, name)

    # ----------------------------------------------------------------------------------
    # request bodies
    # ----------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return None
        ctype = request.headers.get("Content-Type", "application/json")
        if "protobuf" in ctype:
            from falcoir.lab import protobuf

            try:
                _, kind, inner = protobuf.decode_envelope(raw)
                if kind == "SelfSubjectAccessReview":
                    return protobuf.decode_ssar(inner)
                if kind in ("SelfSubjectReview", "SelfSubjectRulesReview"):
                    return {}
                if kind == "Namespace":
                    return protobuf.decode_namespace(inner)
            except protobuf.ProtobufError as exc:
                raise bad_request(f"cannot decode protobuf body: {exc}") from exc
            raise ApiStatus(
                415,
                "UnsupportedMediaType",
                f"the falcoir lab reads protobuf bodies only for access reviews and namespaces, "
                f"not {kind}: send JSON (kubectl apply -f does)",
                {},
            )
        try:
            if "yaml" in ctype:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request was in an unknown format: {exc}") from exc

    # ----------------------------------------------------------------------------------
    # the resource handler
    # ----------------------------------------------------------------------------------
    async def _handle(
        self,
        request: web.Request,
        ident: Identity,
        rtype: ResourceType,
        ns: str | None,
        name: str,
        sub: str,
    ) -> web.StreamResponse:
        method = request.method
        q = request.query
        dry = q.get("dryRun") == "All"
        # Subresources with their own handlers.
        if rtype is PODS and sub in ("exec", "attach", "portforward"):
            self.authorize(ident, "create" if method == "POST" else "get", rtype, sub, ns, name)
            pod = self._must_get(rtype, ns or "", name)
            if sub != "exec":
                raise bad_request(f"the falcoir lab does not support pods/{sub}")
            return await streams.handle_exec(self, request, pod)
        if rtype is PODS and sub == "log":
            self.authorize(ident, "get", rtype, sub, ns, name)
            pod = self._must_get(rtype, ns or "", name)
            return await streams.handle_log(self, request, pod)
        if rtype.plural in (
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
            "selfsubjectreviews",
        ):
            if method != "POST":
                raise method_not_allowed()
            body = await self._body(request) or {}
            return json_response(self._review(ident, rtype, body), 201)

        if not name:
            if method == "GET":
                watch = truthy(q.get("watch"))
                self.authorize(ident, "watch" if watch else "list", rtype, "", ns, "")
                if watch:
                    return await self._watch(request, rtype, ns)
                return self._list(request, rtype, ns)
            if method == "POST":
                self.authorize(ident, "create", rtype, "", ns, "")
                body = await self._body(request)
                obj = self.create(rtype, ns, body, dry_run=dry)
                return json_response(obj, 201)
            if method == "DELETE":
                self.authorize(ident, "deletecollection", rtype, "", ns, "")
                return await self._delete_collection(request, rtype, ns, dry)
            raise method_not_allowed()

        if sub == "eviction":
            self.authorize(ident, "create", rtype, sub, ns, name)
            pod = self._must_get(rtype, ns or "", name)
            body = await self._body(request) or {}
            opts = body.get("deleteOptions") or {}
            self.delete(
                rtype,
                pod,
                grace=opts.get("gracePeriodSeconds"),
                dry_run=dry,
                propagation=opts.get("propagationPolicy"),
            )
            return json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "code": 201,
                },
                201,
            )
        verb: str | None = {
            "GET": "get",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(method)
        if verb is None or (sub and verb == "delete"):
            raise method_not_allowed()
        self.authorize(ident, verb, rtype, sub, ns, name)
        if verb == "get":
            obj = self._must_get(rtype, ns or "", name)
            if sub == "scale":
                return json_response(self._scale(rtype, obj))
            return self._object_response(request, rtype, obj)
        if verb == "delete":
            obj = self._must_get(rtype, ns or "", name)
            body = await self._body(request) or {}
            grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
            propagation = q.get("propagationPolicy", body.get("propagationPolicy"))
            if body.get("orphanDependents") is True:
                propagation = "Orphan"
            pre = body.get("preconditions") or {}
            md = obj["metadata"]
            if pre.get("uid") and pre["uid"] != md.get("uid"):
                raise conflict(
                    rtype.group,
                    rtype.plural,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {md.get('uid')}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
                raise conflict(
                    rtype.group,
                    rtype.plural,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{md.get('resourceVersion')}",
                )
            result = self.delete(
                rtype,
                obj,
                grace=None if grace is None else int(grace),
                dry_run=dry,
                propagation=propagation,
            )
            return json_response(result)
        body = await self._body(request)
        if body is None:
            raise bad_request("the body of the request was empty")
        ctype_raw = request.headers.get("Content-Type", "")
        if (
            verb == "patch"
            and not sub
            and ctype_raw.startswith("application/apply-patch")
            and self.store.get(rtype, ns or "", name) is None
        ):
            # Server-side apply of an object that does not exist yet creates it.
            if not isinstance(body, dict):
                raise bad_request("an apply patch must be an object")
            body.setdefault("metadata", {})["name"] = name
            return json_response(self.create(rtype, ns, body, dry_run=dry), 201)
        obj = self._must_get(rtype, ns or "", name)
        if verb == "patch":
            ctype = request.headers.get("Content-Type", "application/strategic-merge-patch+json")
            known = (
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            )
            if ctype.split(";")[0].strip() not in known:
                raise ApiStatus(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(known)}",
                    {},
                )
            base = self._scale(rtype, obj) if sub == "scale" else obj
            base = {
                "kind": rtype.kind if sub != "scale" else "Scale",
                "apiVersion": rtype.api_version if sub != "scale" else "autoscaling/v1",
                **base,
            }
            try:
                new = apply_patch(base, body, ctype)
            except PatchError as exc:
                raise ApiStatus(
                    422 if "test" in str(exc) else 400,
                    "BadRequest" if "test" not in str(exc) else "Invalid",
                    str(exc),
                    {},
                ) from exc
            if not isinstance(new, dict):
                raise bad_request("the patch did not produce an object")
            rv = (
                (body.get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict)
                else None
            )
            if rv and rv != obj["metadata"].get("resourceVersion"):
                raise conflict(rtype.group, rtype.plural, name)
            new.setdefault("metadata", {})["resourceVersion"] = obj["metadata"]["resourceVersion"]
        else:
            if not isinstance(body, dict):
                raise bad_request("the body of the request must be an object")
            new = body
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != obj["metadata"].get("resourceVersion"):
                raise conflict(rtype.group, rtype.plural, name)
        if sub == "scale":
            replicas = (new.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    [
                        (
                            "spec.replicas",
                            "FieldValueInvalid",
                            f"Invalid value: {replicas}: must be greater than or equal to 0",
                        )
                    ],
                )
            updated = copy.deepcopy(obj)
            updated["spec"]["replicas"] = replicas
            stored = self.update(rtype, obj, updated, dry_run=dry, status_only=False)
            return json_response(self._scale(rtype, stored))
        if sub == "ephemeralcontainers":
            stored = await self._update_ephemeral(obj, new, dry)
            return json_response(self._with_kind(rtype, stored))
        stored = self.update(rtype, obj, new, dry_run=dry, status_only=(sub == "status"))
        return json_response(self._with_kind(rtype, stored))

    def _must_get(self, rtype: ResourceType, ns: str, name: str) -> JSON:
        obj = self.store.get(rtype, ns, name)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        return obj

    @staticmethod
    def _with_kind(rtype: ResourceType, obj: JSON) -> JSON:
        return {"kind": rtype.kind, "apiVersion": rtype.api_version, **obj}

    def _wants_table(self, request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _object_response(
        self, request: web.Request, rtype: ResourceType, obj: JSON
    ) -> web.Response:
        if self._wants_table(request):
            return json_response(
                to_table(
                    rtype,
                    [obj],
                    include_object=request.query.get("includeObject", "Metadata"),
                    list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                )
            )
        return json_response(self._with_kind(rtype, obj))

    def _scale(self, rtype: ResourceType, obj: JSON) -> JSON:
        md = obj["metadata"]
        sel = (obj.get("spec") or {}).get("selector") or {}
        sel_text = ",".join(f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items())
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: md[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in md
            },
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": sel_text},
        }

    # ----------------------------------------------------------------------------------
    # list and watch
    # ----------------------------------------------------------------------------------
    def _filters(
        self, request: web.Request, rtype: ResourceType
    ) -> tuple[list[Requirement], Callable[[JSON], bool] | None]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(request.query.get("fieldSelector"), rtype.plural)
        except SelectorError as exc:
            raise bad_request(str(exc)) from exc
        return labels, fields

    def select(
        self,
        rtype: ResourceType,
        ns: str | None,
        labels: list[Requirement],
        fields: Callable[[JSON], bool] | None,
    ) -> list[JSON]:
        out = []
        for obj in self.store.items(rtype, ns):
            if labels and not labels_match(labels, obj["metadata"].get("labels")):
                continue
            if fields is not None and not fields(obj):
                continue
            out.append(obj)
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out

    def _list(self, request: web.Request, rtype: ResourceType, ns: str | None) -> web.Response:
        labels, fields = self._filters(request, rtype)
        items = self.select(rtype, ns, labels, fields)
        rv = str(self.store.rv)
        meta: JSON = {"resourceVersion": rv}
        cont = request.query.get("continue")
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start = (str(token["ns"]), str(token["name"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(f"continue key is not valid: {exc}") from exc
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        limit_raw = request.query.get("limit")
        if limit_raw:
            try:
                limit = int(limit_raw)
            except ValueError as exc:
                raise bad_request(f"invalid limit {limit_raw!r}") from exc
            if 0 < limit < len(items):
                last = items[limit - 1]["metadata"]
                token = {"ns": last.get("namespace", ""), "name": last["name"], "rv": rv}
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        if self._wants_table(request):
            return json_response(
                to_table(
                    rtype,
                    items,
                    include_object=request.query.get("includeObject", "Metadata"),
                    list_meta=meta,
                )
            )
        return json_response(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": meta,
                "items": items,
            }
        )

    async def _watch(
        self, request: web.Request, rtype: ResourceType, ns: str | None
    ) -> web.StreamResponse:
        labels, fields = self._filters(request, rtype)
        table = self._wants_table(request)
        include = request.query.get("includeObject", "Metadata")
        try:
            timeout = float(request.query.get("timeoutSeconds", "0") or 0)
        except ValueError:
            timeout = 0
        if timeout <= 0:
            timeout = 1800 + random.random() * 1800  # noqa: S311 - like the apiserver's jitter
        watcher = Watcher(rtype, ns)
        self.store.watchers.append(watcher)

        def matches(obj: JSON) -> bool:
            if labels and not labels_match(labels, obj["metadata"].get("labels")):
                return False
            return fields is None or fields(obj)

        rv_param = request.query.get("resourceVersion", "")
        initial: list[WatchEvent] = []
        seen: set[tuple[str, str]] = set()
        if rv_param in ("", "0"):
            for obj in self.select(rtype, ns, labels, fields):
                initial.append(WatchEvent(self.store.rv, "ADDED", rtype, obj))
        else:
            try:
                rv_int = int(rv_param)
            except ValueError as exc:
                self.store.watchers.remove(watcher)
                raise bad_request(f"invalid resourceVersion {rv_param!r}") from exc
            past = self.store.events_since(rtype, rv_int)
            for obj in self.select(rtype, ns, labels, fields):
                seen.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
            if past is None:
                self.store.watchers.remove(watcher)
                resp = web.StreamResponse(headers={"Content-Type": "application/json"})
                await resp.prepare(request)
                gone = ApiStatus(
                    410, "Expired", f"too old resource version: {rv_int} ({self.store.rv})"
                )
                await resp.write(_dump({"type": "ERROR", "object": gone.to_json()}) + b"\n")
                return resp
            for ev in past:
                if ns is not None and ev.obj["metadata"].get("namespace") != ns:
                    continue
                initial.append(ev)
            for ev in past:
                key = (ev.obj["metadata"].get("namespace", ""), ev.obj["metadata"]["name"])
                if ev.type == "ADDED":
                    seen.discard(key)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        first = True

        async def send(kind: str, obj: JSON) -> None:
            nonlocal first
            if table:
                doc = to_table(
                    rtype,
                    [obj],
                    include_object=include,
                    with_columns=first,
                    list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                )
                first = False
            else:
                doc = self._with_kind(rtype, obj)
            await resp.write(_dump({"type": kind, "object": doc}) + b"\n")
            if request.get("falcoir_drop") and request.transport is not None:
                request.transport.abort()  # injected fault: the stream dies mid-way
                raise ConnectionResetError("fault injection: stream dropped")

        async def deliver(ev: WatchEvent) -> None:
            key = (ev.obj["metadata"].get("namespace", ""), ev.obj["metadata"]["name"])
            ok = matches(ev.obj)
            if ev.type == "DELETED":
                if key in seen or ok:
                    seen.discard(key)
                    await send("DELETED", ev.obj)
                return
            if ok:
                await send("MODIFIED" if key in seen and ev.type != "ADDED" else "ADDED", ev.obj)
                seen.add(key)
            elif key in seen:
                seen.discard(key)
                await send("DELETED", ev.obj)

        try:
            for ev in initial:
                await deliver(ev)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    ev2 = await asyncio.wait_for(watcher.queue.get(), min(left, 30))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if ev2 is None:
                    break
                await deliver(ev2)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self.store.watchers.remove(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp

    # ----------------------------------------------------------------------------------
    # create / update / delete
    # ----------------------------------------------------------------------------------
    def _fill_metadata(self, rtype: ResourceType, obj: JSON, ns: str) -> None:
        md = obj.setdefault("metadata", {})
        md["uid"] = new_uid()
        md["creationTimestamp"] = now_iso()
        if rtype.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if rtype.plural not in ("pods", "events", "namespaces", "nodes"):
            md["generation"] = 1
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)

    def create(
        self, rtype: ResourceType, ns: str | None, body: Any, *, dry_run: bool = False
    ) -> JSON:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        if "create" not in rtype.verbs:
            raise method_not_allowed()
        kind = body.get("kind")
        if kind and kind != rtype.kind:
            raise bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the "
                f"expected API version ({rtype.api_version})"
                if body.get("apiVersion") != rtype.api_version
                else f"kind {kind} does not match {rtype.kind}"
            )
        obj = copy.deepcopy(body)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        body_ns = md.get("namespace")
        if rtype.namespaced:
            if ns is None:
                raise ApiStatus(
                    404, "NotFound", "the server could not find the requested resource", {}
                )
            if body_ns and body_ns != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            namespace = self.store.get(NAMESPACES, "", ns)
            if namespace is None:
                raise not_found("", "namespaces", ns)
            if namespace.get("status", {}).get("phase") == "Terminating":
                raise forbidden(
                    f'{rtype.plural} "{md.get("name") or md.get("generateName", "")}" is '
                    f"forbidden: unable to create new content in namespace {ns} because it is "
                    "being terminated",
                    rtype.group,
                    rtype.plural,
                    str(md.get("name", "")),
                )
        if not md.get("name") and md.get("generateName"):
            md["name"] = f"{md['generateName']}{rand_suffix()}"
        name = md.get("name")
        if not name:
            raise invalid(
                rtype.group,
                rtype.kind,
                "",
                [
                    (
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        self._fill_metadata(rtype, obj, ns or "")
        self._validate(rtype, obj)
        if self.store.get(rtype, ns or "", name) is not None:
            raise already_exists(rtype.group, rtype.plural, name)
        self._defaults(rtype, obj)
        if dry_run:
            return self._with_kind(rtype, obj)
        if rtype is PODS:
            self._schedule(obj)
        self.store.put(rtype, obj, created=True)
        self._after_write(rtype, None, obj)
        return self._with_kind(rtype, obj)

    def update(
        self, rtype: ResourceType, old: JSON, new: JSON, *, dry_run: bool, status_only: bool
    ) -> JSON:
        obj = copy.deepcopy(new)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        md = obj.setdefault("metadata", {})
        omd = old["metadata"]
        if md.get("name", omd["name"]) != omd["name"]:
            raise bad_request("the name of the object does not match the name on the URL")
        for k in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        if status_only:
            merged = copy.deepcopy(old)
            merged["status"] = obj.get("status", {})
            obj = merged
        else:
            obj["status"] = (
                copy.deepcopy(old.get("status", {})) if "status" in old else obj.get("status", {})
            )
            if not obj["status"]:
                obj.pop("status", None)
            self._validate(rtype, obj, old)
            self._defaults(rtype, obj)
            if "generation" in omd and obj.get("spec") != old.get("spec"):
                md["generation"] = int(omd["generation"]) + 1
        if dry_run:
            obj["metadata"]["resourceVersion"] = omd.get("resourceVersion")
            return obj
        if obj == old:
            return old
        if md.get("deletionTimestamp") and not md.get("finalizers") and rtype is not PODS:
            self.store.put(rtype, obj, created=False)
            self.store.remove(rtype, obj)
            self._after_delete(rtype, obj, "Background")
            return obj
        self.store.put(rtype, obj, created=False)
        self._after_write(rtype, old, obj)
        return obj

    def delete(
        self,
        rtype: ResourceType,
        obj: JSON,
        *,
        grace: int | None,
        dry_run: bool,
        propagation: str | None = None,
    ) -> JSON:
        md = obj["metadata"]
        if rtype is NAMESPACES:
            if md["name"] in ("default", "kube-system", "kube-public", "kube-node-lease"):
                raise forbidden(
                    f'namespaces "{md["name"]}" is forbidden: this namespace may not be deleted',
                    "",
                    "namespaces",
                    md["name"],
                )
            if dry_run:
                return self._with_kind(rtype, obj)
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["status"] = {"phase": "Terminating"}
            self.store.put(rtype, new, created=False)
            self.spawn(self._finish_namespace(md["name"]))
            return self._with_kind(rtype, new)
        if rtype is PODS:
            spec_grace = int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))
            g = spec_grace if grace is None else max(0, int(grace))
            if md.get("deletionTimestamp") and grace is None:
                return self._with_kind(rtype, obj)
            new = copy.deepcopy(obj)
            when = datetime.now(UTC) + timedelta(seconds=g)
            new["metadata"]["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            new["metadata"]["deletionGracePeriodSeconds"] = g
            if dry_run:
                return self._with_kind(rtype, new)
            self.store.put(rtype, new, created=False)
            self.mark_dirty()
            self._np_dirty.set()
            self.spawn(self._kill_and_remove(new, g))
            return self._with_kind(rtype, new)
        if dry_run:
            return self._with_kind(rtype, obj)
        if md.get("finalizers"):
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            self.store.put(rtype, new, created=False)
            return self._with_kind(rtype, new)
        gone = self.store.remove(rtype, obj)
        self._after_delete(rtype, obj, propagation or "Background")
        return self._with_kind(rtype, gone or obj)

    async def _kill_and_remove(self, pod: JSON, grace: int) -> None:
        node = pod.get("spec", {}).get("nodeName", "")
        rt = self.runtime_for(node)
        if rt is not None:
            # Always: the runtime releases what the pod held even when it already exited.
            self.pod_event(
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                pod["metadata"]["uid"],
                "Killing",
                f"Stopping container {','.join(c['name'] for c in pod['spec'].get('containers', []))}",  # noqa: E501
                "Normal",
            )
            try:
                await asyncio.wait_for(rt.kill_pod(pod, grace), grace + 30)
            except Exception:
                log.exception("killing pod %s failed", pod["metadata"]["name"])
        current = self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is not None and current["metadata"].get("uid") == pod["metadata"]["uid"]:
            self.store.remove(PODS, current)
            self._after_delete(PODS, current, "Background")

    async def _finish_namespace(self, name: str) -> None:
        for rtype in RESOURCES:
            if not rtype.namespaced or not rtype.stored:
                continue
            for obj in list(self.store.items(rtype, name)):
                if rtype is PODS:
                    grace = min(
                        int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)), 2
                    )
                    self.delete(rtype, obj, grace=grace, dry_run=False)
                else:
                    self.store.remove(rtype, obj)
        for _ in range(600):
            if not any(True for _ in self.store.items(PODS, name)):
                break
            await asyncio.sleep(0.05)
        ns = self.store.get(NAMESPACES, "", name)
        if ns is not None:
            self.store.remove(NAMESPACES, ns)

    async def _delete_collection(
        self, request: web.Request, rtype: ResourceType, ns: str | None, dry: bool
    ) -> web.Response:
        labels, fields = self._filters(request, rtype)
        items = self.select(rtype, ns, labels, fields)
        grace = request.query.get("gracePeriodSeconds")
        out = [
            self.delete(
                rtype,
                o,
                grace=None if grace is None else int(grace),
                dry_run=dry,
                propagation=request.query.get("propagationPolicy"),
            )
            for o in items
        ]
        return json_response(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": out,
            }
        )

    def _after_write(self, rtype: ResourceType, old: JSON | None, new: JSON) -> None:
        if rtype in (DEPLOYMENTS, REPLICASETS, DAEMONSETS, PODS, NODES):
            self.mark_dirty()
        if rtype is NETPOLS:
            self._np_dirty.set()
        if rtype is NAMESPACES and (
            old is None or old["metadata"].get("labels") != new["metadata"].get("labels")
        ):
            # namespaceSelector peers match namespace labels: re-resolve them.
            self._np_dirty.set()
        if rtype is PODS:
            if old is None:
                self._start_pod(new)
            elif old["metadata"].get("labels") != new["metadata"].get("labels"):
                self._np_dirty.set()

    def _after_delete(self, rtype: ResourceType, obj: JSON, propagation: str) -> None:
        uid = obj["metadata"].get("uid")
        if rtype is NETPOLS:
            self._np_dirty.set()
        if rtype in (DEPLOYMENTS, REPLICASETS, DAEMONSETS, PODS, NODES):
            self.mark_dirty()
        if rtype is PODS or not uid:
            return
        ns = obj["metadata"].get("namespace")
        for dep_type in (REPLICASETS, PODS):
            for dep in list(self.store.items(dep_type, ns)):
                refs = dep["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if propagation == "Orphan":
                    new = copy.deepcopy(dep)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    self.store.put(dep_type, new, created=False)
                else:
                    self.delete(dep_type, dep, grace=None, dry_run=False, propagation=propagation)

    # ----------------------------------------------------------------------------------
    # validation and defaults
    # ----------------------------------------------------------------------------------
    def _validate(self, rtype: ResourceType, obj: JSON, old: JSON | None = None) -> None:
        md = obj["metadata"]
        name = str(md.get("name", ""))
        errs: list[tuple[str, str, str]] = []
        if rtype.plural in ("namespaces",) or rtype.plural in (
            "pods",
            "deployments",
            "replicasets",
            "daemonsets",
            "statefulsets",
            "jobs",
            "networkpolicies",
            "services",
        ):
            pattern = LABEL_NAME_RE if rtype.plural in ("namespaces", "services") else NAME_RE
            if len(name) > (63 if pattern is LABEL_NAME_RE else 253) or not pattern.match(name):
                errs.append(
                    (
                        "metadata.name",
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": a lowercase RFC 1123 '
                        f"{'label' if pattern is LABEL_NAME_RE else 'subdomain'} must consist of lower case alphanumeric "  # noqa: E501
                        "characters, '-' or '.', and must start and end with an alphanumeric character",  # noqa: E501
                    )
                )
        for key, value in (md.get("labels") or {}).items():
            if not isinstance(value, str):
                raise bad_request(f"metadata.labels[{key}] must be a string")
            errs.extend(
                ("metadata.labels", "FieldValueInvalid", m)
                for _, _, m in validate_label_selector(
                    {"matchLabels": {key: value}}, "metadata.labels"
                )
            )
        spec = obj.get("spec")
        if rtype is PODS:
            errs.extend(_validate_pod_spec(spec, "spec"))
            if old is not None:
                errs.extend(_pod_update_rules(old, obj))
        elif rtype in (DEPLOYMENTS, REPLICASETS, DAEMONSETS) or rtype.plural == "statefulsets":
            errs.extend(_validate_workload(rtype, spec))
        elif rtype is NETPOLS:
            errs.extend(_validate_netpol(spec))
        if errs:
            raise invalid(rtype.group, rtype.kind, name, errs)

    def _defaults(self, rtype: ResourceType, obj: JSON) -> None:
        if rtype is PODS:
            _default_pod(obj)
            st = obj.setdefault("status", {})
            st.setdefault("phase", "Pending")
            st.setdefault("qosClass", _qos(obj["spec"]))
        elif rtype in (DEPLOYMENTS, REPLICASETS, DAEMONSETS) or rtype.plural == "statefulsets":
            spec = obj.setdefault("spec", {})
            if rtype is not DAEMONSETS:
                spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            if rtype is DEPLOYMENTS:
                spec.setdefault("progressDeadlineSeconds", 600)
                spec.setdefault(
                    "strategy",
                    {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    },
                )
            if rtype is DAEMONSETS:
                spec.setdefault(
                    "updateStrategy",
                    {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                    },
                )
            tmpl = spec.setdefault("template", {})
            _default_pod(tmpl)
            obj.setdefault("status", {})
        elif rtype is NETPOLS:
            spec = obj.setdefault("spec", {})
            spec.setdefault("podSelector", {})
            if not spec.get("policyTypes"):
                types = ["Ingress"]
                if spec.get("egress"):
                    types.append("Egress")
                spec["policyTypes"] = types
            for direction in ("ingress", "egress"):
                for rule in spec.get(direction) or []:
                    for port in rule.get("ports") or []:
                        port.setdefault("protocol", "TCP")
        elif rtype is NAMESPACES:
            obj.setdefault("status", {"phase": "Active"})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ]["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})

    # ----------------------------------------------------------------------------------
    # pods: scheduling and the runtime
    # ----------------------------------------------------------------------------------
    def _schedule(self, pod: JSON) -> None:
        spec = pod["spec"]
        if not spec.get("nodeName"):
            sel = spec.get("nodeSelector") or {}
            chosen = None
            for node in sorted(
                self.store.items(NODES), key=lambda n: n["metadata"]["name"] != LAB_NODE
            ):
                labels = node["metadata"].get("labels") or {}
                if all(labels.get(k) == v for k, v in sel.items()):
                    chosen = node["metadata"]["name"]
                    break
            if chosen is None:
                return
            spec["nodeName"] = chosen
        node_obj = self.store.get(NODES, "", spec["nodeName"])
        now = now_iso()
        st = pod.setdefault("status", {})
        st["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
        ]
        if node_obj is not None:
            addresses = node_obj["status"]["addresses"]
            ip = next((a["address"] for a in addresses if a["type"] == "InternalIP"), "")
            st["hostIP"] = ip
            st["hostIPs"] = [{"ip": ip}]
        st["startTime"] = now
        st["containerStatuses"] = [
            {
                "name": c["name"],
                "ready": False,
                "started": False,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            }
            for c in spec.get("containers") or []
        ]

    def _start_pod(self, pod: JSON) -> None:
        node = pod.get("spec", {}).get("nodeName")
        md = pod["metadata"]
        if not node:
            return
        self.record_event(
            {
                "kind": "Pod",
                "namespace": md["namespace"],
                "name": md["name"],
                "uid": md["uid"],
                "apiVersion": "v1",
            },
            "Scheduled",
            f"Successfully assigned {md['namespace']}/{md['name']} to {node}",
            component="default-scheduler",
        )
        rt = self.runtime_for(node)
        if rt is None or self.stopping:
            return
        self.spawn(self._run_pod(rt, pod))

    async def _run_pod(self, rt: PodRuntime | VirtualRuntime, pod: JSON) -> None:
        try:
            await rt.run_pod(pod)
        except Exception as exc:
            log.exception("starting pod %s failed", pod["metadata"]["name"])
            md = pod["metadata"]
            self.pod_event(
                md["namespace"], md["name"], md["uid"], "Failed", f"Error: {exc}", "Warning"
            )

    async def _update_ephemeral(self, old: JSON, new: JSON, dry: bool) -> JSON:
        name = old["metadata"]["name"]
        before = {c["name"]: c for c in old.get("spec", {}).get("ephemeralContainers") or []}
        after_list = (new.get("spec") or {}).get("ephemeralContainers") or []
        after = {c.get("name"): c for c in after_list if isinstance(c, dict)}
        errs: list[tuple[str, str, str]] = []
        taken = {
            c["name"]
            for c in old["spec"].get("containers", []) + old["spec"].get("initContainers", [])
        }
        for cname, c in before.items():
            if cname not in after:
                errs.append(
                    (
                        "spec.ephemeralContainers",
                        "FieldValueForbidden",
                        f'Forbidden: existing ephemeral containers "{cname}" may not be removed',
                    )
                )
            elif after[cname] != c and {
                k: v
                for k, v in after[cname].items()
                if k
                not in ("terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy")
            } != {
                k: v
                for k, v in c.items()
                if k
                not in ("terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy")
            }:
                errs.append(
                    (
                        "spec.ephemeralContainers",
                        "FieldValueForbidden",
                        f'Forbidden: existing ephemeral containers "{cname}" may not be changed',
                    )
                )
        added = [c for n, c in after.items() if n not in before]
        for i, c in enumerate(added):
            p = f"spec.ephemeralContainers[{len(before) + i}]"
            if not c.get("name"):
                errs.append((f"{p}.name", "FieldValueRequired", "Required value"))
            elif c["name"] in taken:
                errs.append((f"{p}.name", "FieldValueDuplicate", f'Duplicate value: "{c["name"]}"'))
            if not c.get("image"):
                errs.append((f"{p}.image", "FieldValueRequired", "Required value"))
            for forbidden_field in (
                "ports",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "lifecycle",
                "resources",
            ):
                if c.get(forbidden_field):
                    errs.append(
                        (
                            f"{p}.{forbidden_field}",
                            "FieldValueForbidden",
                            "Forbidden: cannot be set for an Ephemeral Container",
                        )
                    )
            target = c.get("targetContainerName")
            if target and target not in {x["name"] for x in old["spec"].get("containers", [])}:
                errs.append(
                    (f"{p}.targetContainerName", "FieldValueNotFound", f'Not found: "{target}"')
                )
        if errs:
            raise invalid("", "Pod", name, errs)
        stored = copy.deepcopy(old)
        merged = []
        for c in after_list:
            c = copy.deepcopy(c)
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("imagePullPolicy", _pull_policy(c.get("image", "")))
            merged.append(c)
        stored["spec"]["ephemeralContainers"] = merged
        if dry or not added:
            return stored
        self.store.put(PODS, stored, created=False)
        node = stored["spec"].get("nodeName", "")
        rt = self.runtime_for(node)
        if rt is not None:
            for c in added:
                full = next(x for x in merged if x["name"] == c["name"])
                try:
                    await rt.add_ephemeral_container(stored, full)
                except Exception as exc:
                    md = stored["metadata"]
                    self.pod_event(
                        md["namespace"],
                        md["name"],
                        md["uid"],
                        "Failed",
                        f"Error: ephemeral container {c['name']}: {exc}",
                        "Warning",
                    )
        return self.store.get(PODS, stored["metadata"]["namespace"], name) or stored

    # ----------------------------------------------------------------------------------
    # access reviews
    # ----------------------------------------------------------------------------------
    def _review(self, ident: Identity, rtype: ResourceType, body: JSON) -> JSON:
        out: JSON = {
            "kind": rtype.kind,
            "apiVersion": rtype.api_version,
            "metadata": {"creationTimestamp": None},
        }
        if rtype.plural == "selfsubjectreviews":
            out["status"] = {"userInfo": {"username": ident.name, "groups": ident.groups}}
            return out
        spec = body.get("spec") or {}
        out["spec"] = spec
        if rtype.plural == "selfsubjectrulesreviews":
            if ident.admin:
                rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
            else:
                rules = [
                    {
                        "verbs": ["create"],
                        "apiGroups": ["authorization.k8s.io"],
                        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    },
                    {
                        "verbs": ["create"],
                        "apiGroups": ["authentication.k8s.io"],
                        "resources": ["selfsubjectreviews"],
                    },
                    {
                        "verbs": list(READ_VERBS),
                        "apiGroups": ["", "apps", "batch", "networking.k8s.io"],
                        "resources": [
                            r.plural for r in RESOURCES if r.stored and r.plural != "secrets"
                        ]
                        + ["pods/log", "pods/status", "deployments/scale", "replicasets/scale"],
                    },
                ]
            out["status"] = {
                "resourceRules": rules,
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
            return out
        attrs = spec.get("resourceAttributes")
        if attrs:
            verb = str(attrs.get("verb", ""))
            resource = str(attrs.get("resource", ""))
            sub = str(attrs.get("subresource", ""))
            allowed = ident.allowed(verb, resource, sub)
        else:
            non = spec.get("nonResourceAttributes") or {}
            allowed = ident.admin or non.get("verb") == "get"
        status: JSON = {"allowed": bool(allowed)}
        if allowed and ident.admin:
            status["reason"] = (
                'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters"'  # noqa: E501
            )
        elif allowed:
            status["reason"] = (
                'RBAC: allowed by ClusterRoleBinding "falcoir-lab-view" of ClusterRole "view" to User "restricted"'  # noqa: E501
            )
        out["status"] = status
        return out

    # ----------------------------------------------------------------------------------
    # admin endpoint (admin identity only)
    # ----------------------------------------------------------------------------------
    async def _admin(self, request: web.Request, sub: str) -> web.Response:
        if sub == "/faults":
            if request.method == "GET":
                self.faults.refresh()
                return json_response(self.faults.values)
            body = await self._body(request) or {}
            write_faults(self.state_dir, {k: float(v) for k, v in body.items() if k in Faults.KEYS})
            self.faults.refresh()
            return json_response(self.faults.values)
        if sub == "/load" and request.method == "POST":
            from falcoir.lab.generate import generate_cluster

            body = await self._body(request) or {}
            t0 = time.monotonic()
            keys = ("nodes", "namespaces", "deployments", "pods", "seed")
            params = {k: int(v) for k, v in body.items() if k in keys}
            counts: dict[str, Any] = dict(self.load(generate_cluster(**params)))
            counts["seconds"] = round(time.monotonic() - t0, 3)
            return json_response(counts)
        if sub == "/nodes" and request.method == "POST":
            body = await self._body(request) or {}
            count = int(body.get("count", 1))
            existing = sum(
                1 for n in self.store.items(NODES) if n["metadata"]["name"].startswith("lab-vnode-")
            )
            names = []
            for i in range(existing + 1, existing + count + 1):
                names.append(self.add_virtual_node(f"lab-vnode-{i:03d}", i)["metadata"]["name"])
            return json_response({"nodes": names})
        raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})

    def load(self, objects: list[JSON]) -> dict[str, int]:
        """Insert many objects at once (a generated cluster): nodes become virtual nodes,
        pods on virtual nodes become Running at once; no events are recorded."""
        counts: dict[str, int] = {}
        for obj in objects:
            rtype = BY_KIND.get(str(obj.get("kind")))
            if rtype is None:
                continue
            if rtype is NODES:
                name = obj["metadata"]["name"]
                idx = int(re.sub(r"\D", "", name) or 0) or len(self.virtual_runtimes) + 1
                self.add_virtual_node(name, idx)
                counts["nodes"] = counts.get("nodes", 0) + 1
                continue
            if rtype is NAMESPACES:
                self._create_namespace(obj["metadata"]["name"])
                counts["namespaces"] = counts.get("namespaces", 0) + 1
                continue
            o = copy.deepcopy(obj)
            ns = o["metadata"].get("namespace", "default")
            self._create_namespace(ns)
            if self.store.get(rtype, ns, o["metadata"]["name"]) is not None:
                continue
            uid = o["metadata"].get("uid")
            self._fill_metadata(rtype, o, ns)
            if uid:
                o["metadata"]["uid"] = uid
            self._defaults(rtype, o)
            if rtype is PODS:
                node = o["spec"].get("nodeName", "")
                vrt = self.virtual_runtimes.get(node)
                if vrt is None:
                    self._schedule(o)
                    self.store.put(rtype, o, created=True)
                    self._start_pod(o)
                else:
                    o["status"] = vrt.status_for(o)
                    self.store.put(rtype, o, created=True)
            else:
                self.store.put(rtype, o, created=True)
            counts[rtype.plural] = counts.get(rtype.plural, 0) + 1
        self.mark_dirty()
        return counts

    # ----------------------------------------------------------------------------------
    # controllers
    # ----------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty.set()

    async def _controller_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # batch bursts of changes into one pass
            self._dirty.clear()
            try:
                self.reconcile()
            except Exception:
                log.exception("controller failed")

    async def _netpol_loop(self) -> None:
        while True:
            await self._np_dirty.wait()
            await asyncio.sleep(0.02)
            self._np_dirty.clear()
            pods = [
                p
                for p in self.store.items(PODS)
                if p.get("spec", {}).get("nodeName") == LAB_NODE
                and not p["metadata"].get("deletionTimestamp")
            ]
            policies = list(self.store.items(NETPOLS))
            namespaces = {
                ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {})
                for ns in self.store.items(NAMESPACES)
            }
            try:
                await self.runtime.apply_network_policies(pods, policies, namespaces)
            except Exception:
                log.exception("applying network policies failed")

    def reconcile(self) -> None:
        pods_by_owner: dict[str, list[JSON]] = {}
        orphans: dict[str, list[JSON]] = {}
        for pod in self.store.items(PODS):
            ctrl = _controller_ref(pod)
            if ctrl is None:
                orphans.setdefault(pod["metadata"]["namespace"], []).append(pod)
            else:
                pods_by_owner.setdefault(ctrl["uid"], []).append(pod)
        rs_by_owner: dict[str, list[JSON]] = {}
        for rs in self.store.items(REPLICASETS):
            ctrl = _controller_ref(rs)
            if ctrl is not None:
                rs_by_owner.setdefault(ctrl["uid"], []).append(rs)
        for dep in list(self.store.items(DEPLOYMENTS)):
            self._reconcile_deployment(dep, rs_by_owner.get(dep["metadata"]["uid"], []))
        for rs in list(self.store.items(REPLICASETS)):
            self._reconcile_replicaset(
                rs,
                pods_by_owner.get(rs["metadata"]["uid"], []),
                orphans.get(rs["metadata"]["namespace"], []),
            )
        for ds in list(self.store.items(DAEMONSETS)):
            self._reconcile_daemonset(ds, pods_by_owner.get(ds["metadata"]["uid"], []))
        # Deployment status after the ReplicaSets moved.
        rs_by_owner = {}
        for rs in self.store.items(REPLICASETS):
            ctrl = _controller_ref(rs)
            if ctrl is not None:
                rs_by_owner.setdefault(ctrl["uid"], []).append(rs)
        for dep in list(self.store.items(DEPLOYMENTS)):
            self._deployment_status(dep, rs_by_owner.get(dep["metadata"]["uid"], []))
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        live: set[str] = set()
        for rtype in RESOURCES:
            if rtype.stored and rtype not in (PODS, EVENTS):
                live.update(o["metadata"]["uid"] for o in self.store.items(rtype))
        for rtype in (REPLICASETS, PODS):
            for obj in list(self.store.items(rtype)):
                refs = obj["metadata"].get("ownerReferences") or []
                if (
                    refs
                    and obj["metadata"].get("deletionTimestamp") is None
                    and all(r.get("uid") not in live for r in refs)
                ):
                    self.delete(rtype, obj, grace=None, dry_run=False)

    def _owner_ref(self, rtype: ResourceType, owner: JSON) -> JSON:
        return {
            "apiVersion": rtype.api_version,
            "kind": rtype.kind,
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _reconcile_deployment(self, dep: JSON, owned: list[JSON]) -> None:
        spec = dep["spec"]
        if spec.get("paused"):
            return
        tmpl = copy.deepcopy(spec.get("template", {}))
        h = self._template_hash(dep)
        rs_name = f"{dep['metadata']['name']}-{h}"
        current = next((r for r in owned if r["metadata"]["name"] == rs_name), None)
        replicas = int(spec.get("replicas", 1))
        revision = 1 + max(
            (
                int(
                    (r["metadata"].get("annotations") or {}).get(
                        "deployment.kubernetes.io/revision", "0"
                    )
                )
                for r in owned
            ),
            default=0,
        )
        if current is None:
            ns = dep["metadata"]["namespace"]
            if self.store.get(REPLICASETS, ns, rs_name) is not None:
                return
            labels = {**(tmpl.get("metadata", {}).get("labels") or {}), "pod-template-hash": h}
            tmpl.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            rs: JSON = {
                "metadata": {
                    "name": rs_name,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(
                            replicas + max(1, replicas // 4)
                        ),
                        "deployment.kubernetes.io/revision": str(revision),
                    },
                    "ownerReferences": [self._owner_ref(DEPLOYMENTS, dep)],
                },
                "spec": {
                    "replicas": replicas,
                    "selector": selector,
                    "template": tmpl,
                    "minReadySeconds": spec.get("minReadySeconds", 0),
                },
            }
            self._fill_metadata(REPLICASETS, rs, ns)
            self._defaults(REPLICASETS, rs)
            self.store.put(REPLICASETS, rs, created=True)
            self.record_event(
                {
                    "kind": "Deployment",
                    "namespace": ns,
                    "name": dep["metadata"]["name"],
                    "uid": dep["metadata"]["uid"],
                    "apiVersion": "apps/v1",
                },
                "ScalingReplicaSet",
                f"Scaled up replica set {rs_name} from 0 to {replicas}",
                component="deployment-controller",
            )
        elif current["spec"].get("replicas") != replicas:
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
            new["metadata"]["generation"] = int(new["metadata"].get("generation", 1)) + 1
            self.store.put(REPLICASETS, new, created=False)
        for old in owned:
            if old["metadata"]["name"] != rs_name and old["spec"].get("replicas", 0) != 0:
                new = copy.deepcopy(old)
                new["spec"]["replicas"] = 0
                new["metadata"]["generation"] = int(new["metadata"].get("generation", 1)) + 1
                self.store.put(REPLICASETS, new, created=False)

    def _template_hash(self, dep: JSON) -> str:
        key = (dep["metadata"]["uid"], dep["metadata"].get("generation", 1))
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) > 100_000:
                self._hashes.clear()
            h = self._hashes[key] = template_hash(dep["spec"].get("template", {}))
        return h

    def _deployment_status(self, dep: JSON, owned: list[JSON]) -> None:
        h = self._template_hash(dep)
        rs_name = f"{dep['metadata']['name']}-{h}"
        total = sum(int(r.get("status", {}).get("replicas", 0)) for r in owned)
        ready = sum(int(r.get("status", {}).get("readyReplicas", 0)) for r in owned)
        updated = sum(
            int(r.get("status", {}).get("replicas", 0))
            for r in owned
            if r["metadata"]["name"] == rs_name
        )
        want = int(dep["spec"].get("replicas", 1))
        old_status = dep.get("status") or {}
        now = now_iso()
        available = "True" if ready >= want else "False"

        def cond(t: str, s: str, reason: str, msg: str) -> JSON:
            prev = next((c for c in old_status.get("conditions") or [] if c.get("type") == t), None)
            same = prev is not None and prev.get("status") == s and prev.get("reason") == reason
            return {
                "type": t,
                "status": s,
                "lastUpdateTime": prev["lastUpdateTime"] if same and prev else now,
                "lastTransitionTime": prev["lastTransitionTime"] if same and prev else now,
                "reason": reason,
                "message": msg,
            }

        status: JSON = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                cond(
                    "Available",
                    available,
                    "MinimumReplicasAvailable"
                    if available == "True"
                    else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available == "True"
                    else "Deployment does not have minimum availability.",
                ),
                cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable"
                    if updated >= want and ready >= want
                    else "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if ready >= want
                    else f'ReplicaSet "{rs_name}" is progressing.',
                ),
            ],
        }
        if total - ready > 0:
            status["unavailableReplicas"] = total - ready
        if status != old_status:
            new = copy.deepcopy(dep)
            new["status"] = status
            self.store.put(DEPLOYMENTS, new, created=False)

    def _new_pod_from(self, owner_type: ResourceType, owner: JSON, name: str) -> JSON:
        tmpl = copy.deepcopy(owner["spec"].get("template", {}))
        md = tmpl.get("metadata") or {}
        pod: JSON = {
            "metadata": {
                "name": name,
                "generateName": f"{owner['metadata']['name']}-",
                "labels": md.get("labels") or {},
                "annotations": md.get("annotations") or {},
                "ownerReferences": [self._owner_ref(owner_type, owner)],
            },
            "spec": tmpl.get("spec") or {},
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        return pod

    def _create_owned_pod(
        self, owner_type: ResourceType, owner: JSON, node: str | None = None
    ) -> int:
        ns = owner["metadata"]["namespace"]
        for _ in range(10):
            name = f"{owner['metadata']['name']}-{rand_suffix()}"
            if self.store.get(PODS, ns, name) is None:
                break
        pod = self._new_pod_from(owner_type, owner, name)
        if node:
            pod["spec"]["nodeName"] = node
        try:
            self.create(PODS, ns, pod)
        except ApiStatus as err:
            self.record_event(
                {
                    "kind": owner_type.kind,
                    "namespace": ns,
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "apiVersion": owner_type.api_version,
                },
                "FailedCreate",
                f"Error creating: {err.message}",
                "Warning",
                component=f"{owner_type.plural[:-1]}-controller",
            )
            return 0
        self.record_event(
            {
                "kind": owner_type.kind,
                "namespace": ns,
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "apiVersion": owner_type.api_version,
            },
            "SuccessfulCreate",
            f"Created pod: {name}",
            component=f"{owner_type.plural[:-1]}-controller",
        )
        return 1

    def _reconcile_replicaset(self, rs: JSON, owned: list[JSON], orphans: list[JSON]) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            return
        reqs = selector_from_label_selector(rs["spec"].get("selector")) or []
        active: list[JSON] = []
        for pod in owned:
            if not labels_match(reqs, pod["metadata"].get("labels")):
                # Released: drop our ownerReference; the pod keeps running.
                new = copy.deepcopy(pod)
                new["metadata"]["ownerReferences"] = [
                    r
                    for r in new["metadata"].get("ownerReferences", [])
                    if r.get("uid") != rs["metadata"]["uid"]
                ]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self.store.put(PODS, new, created=False)
                continue
            if not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get(
                "phase"
            ) not in ("Succeeded", "Failed"):
                active.append(pod)
        if reqs:
            for pod in orphans:
                if (
                    pod["metadata"].get("deletionTimestamp")
                    or _controller_ref(pod) is not None
                    or not labels_match(reqs, pod["metadata"].get("labels"))
                ):
                    continue
                current = self.store.get(
                    PODS, pod["metadata"]["namespace"], pod["metadata"]["name"]
                )
                if current is None or _controller_ref(current) is not None:
                    continue
                new = copy.deepcopy(current)
                new["metadata"].setdefault("ownerReferences", []).append(
                    self._owner_ref(REPLICASETS, rs)
                )
                self.store.put(PODS, new, created=False)
                active.append(new)
        want = int(rs["spec"].get("replicas", 1))
        created = 0
        if len(active) < want:
            for _ in range(want - len(active)):
                created += self._create_owned_pod(REPLICASETS, rs)
        elif len(active) > want:
            victims = sorted(
                active, key=lambda p: (_pod_ready(p), p["metadata"]["creationTimestamp"])
            )[: len(active) - want]
            for pod in victims:
                self.delete(PODS, pod, grace=None, dry_run=False)
            gone = {id(p) for p in victims}
            active = [p for p in active if id(p) not in gone]
        # New pods are not ready yet; the status catches up on the next pass.
        current_pods = active + [{}] * created
        ready = sum(1 for p in current_pods if _pod_ready(p))
        status: JSON = {
            "replicas": len(current_pods),
            "fullyLabeledReplicas": len(current_pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if status != rs.get("status"):
            new = copy.deepcopy(
                self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
                or rs
            )
            new["status"] = status
            self.store.put(REPLICASETS, new, created=False)

    def _reconcile_daemonset(self, ds: JSON, owned: list[JSON]) -> None:
        if ds["metadata"].get("deletionTimestamp"):
            return
        node_sel = ds["spec"].get("template", {}).get("spec", {}).get("nodeSelector") or {}
        nodes = [
            n["metadata"]["name"]
            for n in self.store.items(NODES)
            if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in node_sel.items())
        ]
        by_node: dict[str, list[JSON]] = {}
        for pod in owned:
            if not pod["metadata"].get("deletionTimestamp"):
                by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
        for node in nodes:
            if not by_node.get(node):
                self._create_owned_pod(DAEMONSETS, ds, node)
        for node, pods in by_node.items():
            if node not in nodes:
                for pod in pods:
                    self.delete(PODS, pod, grace=None, dry_run=False)
        current = [
            p
            for p in self.store.items(PODS, ds["metadata"]["namespace"])
            if (_controller_ref(p) or {}).get("uid") == ds["metadata"]["uid"]
            and not p["metadata"].get("deletionTimestamp")
        ]
        ready = sum(1 for p in current if _pod_ready(p))
        status: JSON = {
            "currentNumberScheduled": len(current),
            "desiredNumberScheduled": len(nodes),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": len(current),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        if len(nodes) - ready > 0:
            status["numberUnavailable"] = len(nodes) - ready
        if status != ds.get("status"):
            new = copy.deepcopy(
                self.store.get(DAEMONSETS, ds["metadata"]["namespace"], ds["metadata"]["name"])
                or ds
            )
            new["status"] = status
            self.store.put(DAEMONSETS, new, created=False)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _kernel() -> str:
    import platform

    return platform.release()


def _controller_ref(obj: JSON) -> JSON | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _pod_ready(pod: JSON) -> bool:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    if ":" not in tail or tail.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(c: JSON) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("imagePullPolicy", _pull_policy(str(c.get("image", ""))))
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")


def _default_pod(obj: JSON) -> None:
    spec = obj.setdefault("spec", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if "metadata" in obj and "namespace" in obj.get("metadata", {}):
        spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        )


def _qos(spec: JSON) -> str:
    any_res = False
    guaranteed = True
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        if res.get("requests") or res.get("limits"):
            any_res = True
        lim = res.get("limits") or {}
        if not (lim.get("cpu") and lim.get("memory")):
            guaranteed = False
    if not any_res:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _validate_containers(cs: Any, path: str, required: bool) -> list[tuple[str, str, str]]:
    errs: list[tuple[str, str, str]] = []
    if not cs:
        if required:
            errs.append((path, "FieldValueRequired", "Required value"))
        return errs
    if not isinstance(cs, list):
        return [(path, "FieldValueTypeInvalid", "must be a list")]
    seen: set[str] = set()
    for i, c in enumerate(cs):
        p = f"{path}[{i}]"
        if not isinstance(c, dict):
            errs.append((p, "FieldValueTypeInvalid", "must be an object"))
            continue
        name = c.get("name")
        if not name:
            errs.append((f"{p}.name", "FieldValueRequired", "Required value"))
        elif not LABEL_NAME_RE.match(str(name)):
            errs.append(
                (
                    f"{p}.name",
                    "FieldValueInvalid",
                    f"Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",  # noqa: E501
                )
            )
        elif name in seen:
            errs.append((f"{p}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"'))
        seen.add(str(name))
        if not c.get("image"):
            errs.append((f"{p}.image", "FieldValueRequired", "Required value"))
        for key in ("command", "args"):
            if key in c and (
                not isinstance(c[key], list) or not all(isinstance(x, str) for x in c[key])
            ):
                errs.append((f"{p}.{key}", "FieldValueTypeInvalid", "must be a list of strings"))
    return errs


def _validate_pod_spec(spec: Any, path: str) -> list[tuple[str, str, str]]:
    if not isinstance(spec, dict):
        return [(path, "FieldValueRequired", "Required value")]
    errs = _validate_containers(spec.get("containers"), f"{path}.containers", True)
    errs += _validate_containers(spec.get("initContainers"), f"{path}.initContainers", False)
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in ("Always", "OnFailure", "Never"):
        errs.append(
            (
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{rp}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    return errs


def _pod_update_rules(old: JSON, new: JSON) -> list[tuple[str, str, str]]:
    o, n = copy.deepcopy(old.get("spec", {})), copy.deepcopy(new.get("spec", {}))
    for s in (o, n):
        for c in s.get("containers") or []:
            c.pop("image", None)
        s.pop("activeDeadlineSeconds", None)
        s.pop("tolerations", None)
        s.pop("ephemeralContainers", None)
        s.pop("terminationGracePeriodSeconds", None)
    _default_pod({"spec": n, "metadata": {"namespace": "x"}})
    _default_pod({"spec": o, "metadata": {"namespace": "x"}})
    if o != n:
        return [
            (
                "spec",
                "FieldValueForbidden",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"  # noqa: E501
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
            )
        ]
    return []


def _validate_workload(rtype: ResourceType, spec: Any) -> list[tuple[str, str, str]]:
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    errs: list[tuple[str, str, str]] = []
    sel = spec.get("selector")
    if not sel or not ((sel.get("matchLabels")) or sel.get("matchExpressions")):
        errs.append(("spec.selector", "FieldValueRequired", "Required value"))
    else:
        errs += validate_label_selector(sel, "spec.selector")
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        errs.append(
            (
                "spec.replicas",
                "FieldValueInvalid",
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        )
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    reqs = selector_from_label_selector(sel) if isinstance(sel, dict) else None
    if reqs and not errs and not labels_match(reqs, labels):
        errs.append(
            (
                "spec.template.metadata.labels",
                "FieldValueInvalid",
                f"Invalid value: {json.dumps(labels, separators=(',', ':'))}: `selector` does not match template `labels`",  # noqa: E501
            )
        )
    errs += _validate_pod_spec(tmpl.get("spec"), "spec.template.spec")
    rp = (tmpl.get("spec") or {}).get("restartPolicy")
    if rp not in (None, "Always") and rtype.plural != "jobs":
        errs.append(
            (
                "spec.template.spec.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: "{rp}": supported values: "Always"',
            )
        )
    return errs


def _validate_peer_list(peers: Any, path: str) -> list[tuple[str, str, str]]:
    errs: list[tuple[str, str, str]] = []
    for i, peer in enumerate(peers or []):
        p = f"{path}[{i}]"
        if not isinstance(peer, dict):
            errs.append((p, "FieldValueTypeInvalid", "must be an object"))
            continue
        kinds = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if k in peer]
        if not kinds:
            errs.append((p, "FieldValueRequired", "Required value: must specify a peer"))
        if "ipBlock" in peer and len(kinds) > 1:
            errs.append(
                (
                    p,
                    "FieldValueForbidden",
                    "Forbidden: may not specify both ipBlock and another peer",
                )
            )
        for k in ("podSelector", "namespaceSelector"):
            if k in peer:
                errs += validate_label_selector(peer[k], f"{p}.{k}")
        block = peer.get("ipBlock")
        if block is not None:
            cidr = block.get("cidr") if isinstance(block, dict) else None
            try:
                net = ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                errs.append(
                    (
                        f"{p}.ipBlock.cidr",
                        "FieldValueInvalid",
                        f'Invalid value: "{cidr}": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',  # noqa: E501
                    )
                )
                continue
            for j, exc in enumerate(block.get("except") or []):
                try:
                    sub = ipaddress.ip_network(str(exc), strict=False)
                except ValueError:
                    errs.append(
                        (
                            f"{p}.ipBlock.except[{j}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{exc}": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',  # noqa: E501
                        )
                    )
                    continue
                if sub.version != net.version or not sub.subnet_of(net) or sub == net:  # type: ignore[arg-type]
                    errs.append(
                        (
                            f"{p}.ipBlock.except[{j}]",
                            "FieldValueInvalid",
                            f'Invalid value: "{exc}": must be a strict subset of `cidr`',
                        )
                    )
    return errs


def _validate_ports(ports: Any, path: str) -> list[tuple[str, str, str]]:
    errs: list[tuple[str, str, str]] = []
    for i, port in enumerate(ports or []):
        p = f"{path}[{i}]"
        proto = port.get("protocol", "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            errs.append(
                (
                    f"{p}.protocol",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{proto}": supported values: "SCTP", "TCP", "UDP"',
                )
            )
        value = port.get("port")
        if isinstance(value, int):
            if not 1 <= value <= 65535:
                errs.append(
                    (
                        f"{p}.port",
                        "FieldValueInvalid",
                        f"Invalid value: {value}: must be between 1 and 65535, inclusive",
                    )
                )
        elif isinstance(value, str) and (
            not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", value) or len(value) > 15
        ):
            errs.append(
                (
                    f"{p}.port",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": must be a valid port name',
                )
            )
        end = port.get("endPort")
        if end is not None:
            if not isinstance(value, int):
                errs.append(
                    (
                        f"{p}.endPort",
                        "FieldValueInvalid",
                        "Invalid value: may not be specified when `port` is non-numeric",
                    )
                )
            elif not isinstance(end, int) or end < value or end > 65535:
                errs.append(
                    (
                        f"{p}.endPort",
                        "FieldValueInvalid",
                        f"Invalid value: {end}: must be greater than or equal to `port`",
                    )
                )
    return errs


def _validate_netpol(spec: Any) -> list[tuple[str, str, str]]:
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    errs = validate_label_selector(spec.get("podSelector", {}), "spec.podSelector")
    types = spec.get("policyTypes")
    if types is not None:
        if not isinstance(types, list) or len(types) > 2:
            errs.append(
                (
                    "spec.policyTypes",
                    "FieldValueInvalid",
                    "Invalid value: may not have more than 2 policyTypes",
                )
            )
        else:
            for i, t in enumerate(types):
                if t not in ("Ingress", "Egress"):
                    errs.append(
                        (
                            f"spec.policyTypes[{i}]",
                            "FieldValueNotSupported",
                            f'Unsupported value: "{t}": supported values: "Egress", "Ingress"',
                        )
                    )
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(direction)
        if rules is None:
            continue
        if not isinstance(rules, list):
            errs.append((f"spec.{direction}", "FieldValueTypeInvalid", "must be a list"))
            continue
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict):
                errs.append(
                    (f"spec.{direction}[{i}]", "FieldValueTypeInvalid", "must be an object")
                )
                continue
            errs += _validate_ports(rule.get("ports"), f"spec.{direction}[{i}].ports")
            errs += _validate_peer_list(rule.get(peers), f"spec.{direction}[{i}].{peers}")
    return errs
