"""Status JSON errors, with the reasons and codes the real API server uses."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class ApiStatus(Exception):
    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_json(self) -> JSON:
        doc: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            doc["details"] = self.details
        return doc


def _res(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiStatus:
    return ApiStatus(
        404,
        "NotFound",
        f'{_res(group, plural)} "{name}" not found',
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def already_exists(group: str, plural: str, name: str) -> ApiStatus:
    details: JSON = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return ApiStatus(
        409, "AlreadyExists", f'{_res(group, plural)} "{name}" already exists', details
    )


def conflict(group: str, plural: str, name: str, why: str | None = None) -> ApiStatus:
    """409 Conflict as the API server words it; ``why`` replaces the "modified" text
    (a failed delete precondition)."""
    details: JSON = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    reason = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiStatus(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_res(group, plural)} "{name}": {reason}',
        details,
    )


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiStatus:
    """``causes`` are ``(field, reason, message)``; the message mirrors the real one."""
    text = "; ".join(f"{f}: {m}" for f, _, m in causes)
    if len(causes) > 1:
        text = "[" + ", ".join(f"{f}: {m}" for f, _, m in causes) + "]"
    details: JSON = {
        "name": name,
        "kind": kind,
        "causes": [{"reason": r, "message": m, "field": f} for f, r, m in causes],
    }
    if group:
        details["group"] = group
    qualified = f"{kind}.{group}" if group else kind
    return ApiStatus(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiStatus:
    return ApiStatus(400, "BadRequest", message)


def forbidden(message: str, group: str, plural: str, name: str) -> ApiStatus:
    details: JSON = {"kind": plural}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return ApiStatus(403, "Forbidden", message, details)


def unauthorized() -> ApiStatus:
    return ApiStatus(401, "Unauthorized", "Unauthorized")


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiStatus:
    return ApiStatus(405, "MethodNotAllowed", message, {})
