"""What quarantine, release and delete share: progress steps, safe retries, owners."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from falcoir.core.gateway import JSON, ClusterGateway
from falcoir.core.owners import owner_chain
from falcoir.core.target import OwnerRef
from falcoir.errors import ApiError, ClusterUnreachable, FalcoirError

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_DELAYS = (0.3, 1.0)
"""On top of the gateway's own retries: a last chance for a flaky API server."""


@dataclass(frozen=True)
class Step:
    """One thing done (or checked), for progress display."""

    name: str
    """``policy``, ``label``, ``detach``, ``probe``, ``verify``, ``delete``, ``scale``..."""
    status: str
    """``ok``, ``unchanged``, ``dry-run``, ``differs``, ``warning``, ``failed``, ``skipped``."""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


StepCallback = Callable[[Step], None]


def retriable(exc: BaseException) -> bool:
    """429, 5xx and dropped connections are worth another try."""
    if isinstance(exc, ClusterUnreachable):
        return True
    return isinstance(exc, ApiError) and exc.status in RETRY_STATUSES


def with_retries(
    fn: Callable[[], T],
    *,
    delays: tuple[float, ...] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a retriable error try again after each delay. Only for calls
    that are safe to repeat (reads, merge patches, creates whose conflict is handled)."""
    for delay in RETRY_DELAYS if delays is None else delays:
        try:
            return fn()
        except FalcoirError as exc:
            if not retriable(exc):
                raise
            sleep(delay)
    return fn()


def actor(gateway: ClusterGateway) -> str:
    """Who is acting, for annotations and the action log (never fails)."""
    try:
        return gateway.whoami()
    except FalcoirError:
        return "unknown"


def controller_ref(obj: JSON) -> OwnerRef | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return OwnerRef(
                kind=str(ref.get("kind")),
                name=str(ref.get("name")),
                uid=ref.get("uid"),
                api_version=ref.get("apiVersion"),
            )
    return None


__all__ = ["Step", "StepCallback", "actor", "controller_ref", "owner_chain", "with_retries"]
