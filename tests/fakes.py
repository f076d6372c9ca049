"""A hand-written in-memory fake of ``ClusterGateway`` for domain tests.

Holds raw Kubernetes JSON, answers list/get/create/patch/delete like the API server
would for the parts falcoir uses, runs exec through per-container handlers, and records
every call in ``calls`` so tests can assert on what was (not) done.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from falcoir.core.gateway import JSON, PODS, ExecResult, Resource
from falcoir.errors import ApiConflict, ApiNotFound, Forbidden, PreconditionFailed

ExecHandler = Callable[[Sequence[str], bytes | None], tuple[bytes, bytes, int | None]]
"""(argv, stdin) -> (stdout, stderr, exit code or None for 'executable not found')."""


def _match_labels(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "==" in term or "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif " in " in term:
            k, vals = term.split(" in ", 1)
            options = {x.strip() for x in vals.strip(" ()").split(",")}
            if labels.get(k.strip()) not in options:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: JSON, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _match_fields(obj: JSON, selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if str(_field(obj, k) or "") == v:
                return False
        else:
            k, v = term.replace("==", "=").split("=", 1)
            if str(_field(obj, k) or "") != v:
                return False
    return True


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


@dataclass
class FakeCluster:
    """In-memory cluster. ``denied`` holds ``(verb, resource[/sub], namespace)`` triples
    the fake's RBAC refuses (namespace ``None`` = everywhere)."""

    context: str = "fake"
    server: str = "https://fake.invalid"
    user: str = "tester"
    objects: dict[tuple[str, str | None, str], JSON] = field(default_factory=dict)
    exec_handlers: dict[tuple[str, str, str | None], ExecHandler] = field(default_factory=dict)
    denied: set[tuple[str, str, str | None]] = field(default_factory=set)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    logs: dict[tuple[str, str, str | None, bool], bytes] = field(default_factory=dict)
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    # -- helpers for tests -------------------------------------------------------
    def add(self, resource: Resource, obj: JSON) -> JSON:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", str(next(self._rv)))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        ns = meta.get("namespace") if resource.namespaced else None
        if resource.namespaced and ns is None:
            ns = meta["namespace"] = "default"
        self.objects[(resource.plural, ns, meta["name"])] = obj
        return obj

    def on_exec(
        self, namespace: str, pod: str, container: str | None, handler: ExecHandler
    ) -> None:
        self.exec_handlers[(namespace, pod, container)] = handler

    def _allowed(self, verb: str, res: str, namespace: str | None) -> bool:
        # A question about every namespace (``namespace`` None) is denied by any denial.
        return not any(
            v == verb and r == res and (n is None or namespace is None or n == namespace)
            for v, r, n in self.denied
        )

    def _check(self, verb: str, res: str, namespace: str | None) -> None:
        if not self._allowed(verb, res, namespace):
            raise Forbidden(
                f'{res} is forbidden: User "{self.user}" cannot {verb} resource "{res}"',
                missing=[f"{verb} {res}" + (f" -n {namespace}" if namespace else "")],
            )

    # -- ClusterGateway ----------------------------------------------------------
    def whoami(self) -> str:
        self.calls.append(("whoami",))
        return self.user

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        self.calls.append(("get", resource.plural, namespace or "", name))
        self._check("get", resource.plural, namespace)
        key = (resource.plural, namespace if resource.namespaced else None, name)
        if key not in self.objects:
            raise ApiNotFound(
                f'{resource.plural} "{name}" not found', status=404, reason="NotFound"
            )
        return copy.deepcopy(self.objects[key])

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[JSON]:
        self.calls.append(
            ("list", resource.plural, namespace or "", label_selector or "", field_selector or "")
        )
        self._check("list", resource.plural, namespace)
        out = []
        for (plural, ns, _), obj in self.objects.items():
            if plural != resource.plural:
                continue
            if namespace is not None and resource.namespaced and ns != namespace:
                continue
            if not _match_labels(obj["metadata"].get("labels") or {}, label_selector):
                continue
            if not _match_fields(obj, field_selector):
                continue
            out.append(copy.deepcopy(obj))
        return out

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        ns = body.get("metadata", {}).get("namespace")
        self.calls.append(("create", resource.plural, ns or "", body["metadata"]["name"]))
        self._check("create", resource.plural, ns)
        key = (resource.plural, ns if resource.namespaced else None, body["metadata"]["name"])
        if key in self.objects:
            raise ApiConflict(
                f'{resource.plural} "{key[2]}" already exists', status=409, reason="AlreadyExists"
            )
        if dry_run:
            return copy.deepcopy(body)
        return copy.deepcopy(self.add(resource, body))

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: JSON | list[JSON],
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> JSON:
        res = resource.plural + (f"/{subresource}" if subresource else "")
        self.calls.append(("patch", res, namespace or "", name))
        self._check("patch", res, namespace)
        current = self.get(resource, name, namespace)
        self.calls.pop()
        if isinstance(patch, list):
            raise NotImplementedError("the fake does not do JSON patch")
        updated = _merge(current, patch)
        updated["metadata"]["resourceVersion"] = str(next(self._rv))
        if not dry_run:
            self.objects[(resource.plural, namespace if resource.namespaced else None, name)] = (
                updated
            )
        return copy.deepcopy(updated)

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
        self.calls.append(("delete", resource.plural, namespace or "", name))
        self._check("delete", resource.plural, namespace)
        key = (resource.plural, namespace if resource.namespaced else None, name)
        if key not in self.objects:
            raise ApiNotFound(
                f'{resource.plural} "{name}" not found', status=404, reason="NotFound"
            )
        have = (self.objects[key].get("metadata") or {}).get("uid")
        if uid and uid != have:
            raise PreconditionFailed(
                f'Operation cannot be fulfilled on {resource.plural} "{name}": Precondition '
                f"failed: UID in precondition: {uid}, UID in object meta: {have}",
                status=409,
                reason="Conflict",
            )
        obj = self.objects[key] if dry_run else self.objects.pop(key)
        return copy.deepcopy(obj)

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
        self.calls.append(("exec", namespace, pod, container or "", *argv))
        self._check("create", "pods/exec", namespace)
        self.get(PODS, pod, namespace)
        self.calls.pop()
        started = datetime.now(UTC)
        handler = self.exec_handlers.get((namespace, pod, container)) or self.exec_handlers.get(
            (namespace, pod, None)
        )
        if handler is None:
            out, err, code = b"", b"", None
        else:
            out, err, code = handler(argv, stdin)
        if code is None:
            return ExecResult(
                argv=tuple(argv),
                container=container,
                stdout=b"",
                stderr=b"",
                exit_code=None,
                started=started,
                ended=datetime.now(UTC),
                error=f'exec: "{argv[0]}": executable file not found in $PATH',
                error_reason="NotFound",
            )
        total = len(out)
        truncated = total > max_bytes
        kept = out[:max_bytes]
        if stdout_sink is not None:
            stdout_sink.write(kept)
            kept = b""
        return ExecResult(
            argv=tuple(argv),
            container=container,
            stdout=kept,
            stderr=err[:max_bytes],
            exit_code=code,
            started=started,
            ended=datetime.now(UTC),
            stdout_truncated=truncated,
            stderr_truncated=len(err) > max_bytes,
            stdout_bytes=total,
        )

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
        self.calls.append(("log", namespace, pod, container or "", str(previous)))
        self._check("get", "pods/log", namespace)
        data = self.logs.get((namespace, pod, container, previous), b"")
        if tail_lines is not None:
            data = b"".join(data.splitlines(keepends=True)[-tail_lines:]) if tail_lines else b""
        if limit_bytes is not None:
            data = data[:limit_bytes]
        return data

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
        res = resource + (f"/{subresource}" if subresource else "")
        self.calls.append(("access_review", verb, res, namespace or ""))
        return self._allowed(verb, res, namespace)
