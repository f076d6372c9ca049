"""A tiny client for a running lab (stdlib urllib + ssl; no ``kubernetes`` import).

Built from a state dir: reads ``DIR/kubeconfig``, trusts the lab's CA, sends the admin
token (or the restricted one). Speaks raw JSON; errors raise :class:`LabApiError`
carrying the Status JSON.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from falcoir.errors import LabError

JSON = dict[str, Any]

_CORE = {
    "pods",
    "namespaces",
    "nodes",
    "events",
    "services",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "replicationcontrollers",
}
_GROUPS = {
    "deployments": "apps/v1",
    "replicasets": "apps/v1",
    "daemonsets": "apps/v1",
    "statefulsets": "apps/v1",
    "jobs": "batch/v1",
    "cronjobs": "batch/v1",
    "networkpolicies": "networking.k8s.io/v1",
}
_CLUSTER_SCOPED = {"namespaces", "nodes"}
_PLURALS = {
    "Pod": "pods",
    "Namespace": "namespaces",
    "Node": "nodes",
    "Event": "events",
    "Service": "services",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "Deployment": "deployments",
    "ReplicaSet": "replicasets",
    "DaemonSet": "daemonsets",
    "StatefulSet": "statefulsets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "NetworkPolicy": "networkpolicies",
}


class LabApiError(LabError):
    """The lab answered with an error Status."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(str(body.get("message") or f"HTTP {status}"))
        self.status = status
        self.reason = str(body.get("reason", ""))
        self.body = body


def plural_for_kind(kind: str) -> str:
    return _PLURALS[kind]


def resource_path(
    resource: str, namespace: str | None = None, name: str | None = None, sub: str | None = None
) -> str:
    """``pods`` / ``deployments`` / ... -> the REST path (``group/version/plural`` too)."""
    if "/" in resource:
        gv, plural = resource.rsplit("/", 1)
    else:
        plural = resource
        gv = _GROUPS.get(plural, "v1")
    base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
    if namespace is not None and plural not in _CLUSTER_SCOPED:
        base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{urllib.parse.quote(name, safe='')}"
    if sub:
        base += f"/{sub}"
    return base


class LabClient:
    def __init__(self, server: str, ca_pem: bytes, token: str, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._ctx = ssl.create_default_context(cadata=ca_pem.decode())

    @classmethod
    def from_state_dir(
        cls, state_dir: Path, *, user: str = "falcoir-lab-admin", timeout: float = 30.0
    ) -> LabClient:
        path = Path(state_dir) / "kubeconfig"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LabError(
                f"cannot read the lab kubeconfig {path}: {exc}",
                hint="is the lab running? try `falcoir lab up --detach`",
            ) from exc
        cluster = doc["clusters"][0]["cluster"]
        users = {u["name"]: u["user"] for u in doc["users"]}
        if user not in users:
            raise LabError(f"no user {user!r} in {path}")
        ca = base64.b64decode(cluster["certificate-authority-data"])
        return cls(cluster["server"], ca, users[user]["token"], timeout=timeout)

    # plumbing ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}, doseq=True
            )
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https only
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=self.timeout) as resp:  # noqa: S310
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                doc = json.loads(text)
            except ValueError:
                doc = {"message": text.decode(errors="replace")}
            raise LabApiError(exc.code, doc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise LabError(f"cannot reach the lab at {self.server}: {exc}") from exc
        if raw:
            return payload
        return json.loads(payload) if payload else None

    # verbs ---------------------------------------------------------------------------
    def get(self, resource: str, name: str, namespace: str | None = None) -> JSON:
        out: JSON = self.request("GET", resource_path(resource, namespace, name))
        return out

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        out: list[JSON] = []
        cont = None
        while True:
            doc = self.request(
                "GET",
                resource_path(resource, namespace),
                query={
                    "labelSelector": label_selector,
                    "fieldSelector": field_selector,
                    "limit": 500,
                    "continue": cont,
                },
            )
            out.extend(doc.get("items") or [])
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                return out

    def create(
        self, resource: str, body: JSON, namespace: str | None = None, *, dry_run: bool = False
    ) -> JSON:
        out: JSON = self.request(
            "POST",
            resource_path(resource, namespace),
            body,
            query={"dryRun": "All" if dry_run else None},
        )
        return out

    def apply(self, body: JSON) -> JSON:
        """Create the object (kind/metadata from the body) or merge-patch it if it exists."""
        plural = plural_for_kind(str(body["kind"]))
        gv = str(body.get("apiVersion", "v1"))
        resource = f"{gv}/{plural}"
        ns = body.get("metadata", {}).get("namespace")
        if ns is None and plural not in _CLUSTER_SCOPED:
            ns = "default"
        try:
            return self.create(resource, body, ns)
        except LabApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
        return self.patch(resource, body["metadata"]["name"], body, ns, patch_type="merge")

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "strategic",
        sub: str | None = None,
        dry_run: bool = False,
    ) -> JSON:
        ctype = {
            "strategic": "application/strategic-merge-patch+json",
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
        }[patch_type]
        out: JSON = self.request(
            "PATCH",
            resource_path(resource, namespace, name, sub),
            patch,
            content_type=ctype,
            query={"dryRun": "All" if dry_run else None},
        )
        return out

    def delete(
        self,
        resource: str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period: int | None = None,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> JSON:
        out: JSON = self.request(
            "DELETE",
            resource_path(resource, namespace, name),
            query={
                "gracePeriodSeconds": grace_period,
                "propagationPolicy": propagation,
                "dryRun": "All" if dry_run else None,
            },
        )
        return out

    def logs(self, name: str, namespace: str, **params: Any) -> bytes:
        q = {k: ("true" if v is True else v) for k, v in params.items()}
        out: bytes = self.request(
            "GET", resource_path("pods", namespace, name, "log"), query=q, raw=True
        )
        return out

    def wait_for(
        self,
        resource: str,
        name: str,
        namespace: str | None,
        predicate: Callable[[JSON], bool],
        *,
        timeout: float = 20.0,
        interval: float = 0.05,
    ) -> JSON:
        """Poll until ``predicate(obj)`` holds; raise :class:`LabError` on timeout."""
        deadline = time.monotonic() + timeout
        last: JSON | None = None
        while time.monotonic() < deadline:
            try:
                last = self.get(resource, name, namespace)
                if predicate(last):
                    return last
            except LabApiError as exc:
                if exc.status != 404:
                    raise
            time.sleep(interval)
        raise LabError(f"timed out after {timeout:.0f} s waiting for {resource} {namespace}/{name}")

    def wait_until(self, predicate: Callable[[], Any], *, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise LabError(f"timed out after {timeout:.0f} s")

    def watch_events(
        self, resource: str, namespace: str | None = None, **query: Any
    ) -> Iterator[JSON]:
        """Yield watch events (``{"type", "object"}``) until the server ends the stream."""
        url = (
            self.server
            + resource_path(resource, namespace)
            + "?"
            + urllib.parse.urlencode(
                {"watch": "true", **{k: v for k, v in query.items() if v is not None}}
            )
        )
        req = urllib.request.Request(url, method="GET")  # noqa: S310 - https only
        req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, context=self._ctx, timeout=self.timeout) as resp:  # noqa: S310
            for line in resp:
                if line.strip():
                    yield json.loads(line)

    # lab admin -----------------------------------------------------------------------
    def set_faults(self, **values: float) -> JSON:
        out: JSON = self.request("PUT", "/falcoir-lab/v1/faults", values)
        return out

    def load_generated(self, **params: int) -> JSON:
        out: JSON = self.request("POST", "/falcoir-lab/v1/load", params)
        return out
