"""The one mapping from what the API server (or the network) said to falcoir.errors.

By HTTP status first, the Status ``reason`` as a tie-breaker and for the message:
401 and transport failures -> ClusterUnreachable; 403 -> Forbidden (with the missing
permission named); 404 -> ApiNotFound; 409 -> ApiConflict; 400/422 -> ApiInvalid;
anything else -> ApiError. Server messages are data: kept, truncated, never parsed
for decisions (the terminal layer neutralises them before display).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from falcoir.errors import (
    ApiConflict,
    ApiError,
    ApiInvalid,
    ApiNotFound,
    ClusterError,
    ClusterUnreachable,
    Forbidden,
    PreconditionFailed,
)

MAX_MESSAGE = 500
"""Server messages are truncated to this many characters."""


def truncate(text: str, limit: int = MAX_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more)"


@dataclass(frozen=True)
class Op:
    """What a request was trying to do, for messages and ``Forbidden.missing``."""

    verb: str
    """Kubernetes verb: get, list, create, patch, delete."""
    resource: str
    """Plural, with ``/subresource`` when there is one (``pods/exec``)."""
    namespace: str | None = None
    name: str | None = None

    def permission(self) -> str:
        return f"{self.verb} {self.resource}" + (f" -n {self.namespace}" if self.namespace else "")

    def describe(self) -> str:
        what = self.resource + (f" {self.name}" if self.name else "")
        return f"{self.verb} {what}" + (f" in namespace {self.namespace}" if self.namespace else "")


def parse_status(body: bytes) -> dict[str, Any]:
    """The body as a Status dict when it is one, else ``{}``."""
    try:
        doc = json.loads(body.decode("utf-8", errors="replace")) if body else None
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


@dataclass(frozen=True)
class Endpoint:
    """Which cluster we were talking to, for hints."""

    server: str
    context: str

    def kubectl(self) -> str:
        return "kubectl" if self.context == "in-cluster" else f"kubectl --context {self.context}"

    def hint(self) -> str:
        return (
            f"check that the API server {self.server} (context {self.context}) is up and "
            f"reachable, and that your credentials are valid: {self.kubectl()} get --raw /version"
        )


_CONN_PREFIX = re.compile(r"^HTTPS?Connection\([^)]*\):\s*")


def unreachable(endpoint: Endpoint, op: Op, detail: str) -> ClusterUnreachable:
    detail = _CONN_PREFIX.sub("", detail)
    return ClusterUnreachable(
        f"cannot reach the API server {endpoint.server} (context {endpoint.context}) "
        f"to {op.describe()}: {truncate(detail, 300)}",
        hint=endpoint.hint(),
    )


def from_status(endpoint: Endpoint, op: Op, status: int, body: bytes) -> ClusterError:
    """The falcoir error for an HTTP error response to ``op``."""
    doc = parse_status(body)
    reason = str(doc.get("reason") or "")
    server_msg = doc.get("message")
    if not isinstance(server_msg, str) or not server_msg:
        server_msg = body.decode("utf-8", errors="replace") if body else ""
    message = truncate(server_msg) or f"HTTP {status}"
    if status == 401:
        return ClusterUnreachable(
            f"not authenticated to the API server {endpoint.server} "
            f"(context {endpoint.context}): {message}",
            hint=f"your credentials for context {endpoint.context} were refused; "
            f"renew them and check with: {endpoint.kubectl()} auth whoami",
        )
    if status == 403:
        # The request itself names the permission exactly (verb, resource/subresource,
        # namespace); the Status details only carry the resource without subresource.
        missing = op.permission()
        return Forbidden(
            f"forbidden to {op.describe()}: {message}",
            missing=[missing],
            reason=reason or "Forbidden",
            hint="ask for the missing permission (see examples/rbac.yaml), "
            f"or check with: kubectl auth can-i {missing}",
        )
    if status == 404:
        return ApiNotFound(message, status=404, reason=reason or "NotFound")
    if status == 409:
        # The API server's words for a failed delete/update precondition (storage's
        # "Precondition failed: UID in precondition: ..., UID in object meta: ...").
        if "precondition failed" in message.lower():
            return PreconditionFailed(message, status=409, reason=reason or "Conflict")
        return ApiConflict(message, status=409, reason=reason or "Conflict")
    if status in (400, 422):
        return ApiInvalid(
            f"the API server rejected the request to {op.describe()}: {message}",
            status=status,
            reason=reason or ("Invalid" if status == 422 else "BadRequest"),
        )
    return ApiError(
        f"the API server failed to {op.describe()} (HTTP {status}"
        + (f" {reason}" if reason else "")
        + f"): {message}",
        status=status,
        reason=reason,
    )
