"""What quarantine, release and delete share: progress steps, retries, owners."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from falcoir.core.gateway import ClusterGateway
from falcoir.core.owners import owner_chain
from falcoir.errors import ApiConflict, FalcoirError

T = TypeVar("T")

CONFLICT_DELAYS = (0.2, 0.5)
"""Waits before calling again after a 409 Conflict (``with_retries(conflicts=True)``)."""


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


def with_retries(
    fn: Callable[[], T],
    *,
    conflicts: bool = False,
    delays: tuple[float, ...] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` (one call to the cluster gateway), retrying only what the gateway
    cannot retry itself.

    The gateway (``falcoir.cluster``) already retries 429, 5xx, dropped connections
    and timeouts, with backoff, wherever repeating is safe, and never retries 401 or TLS
    failures: whatever error comes out of it is final, and retrying it here would only
    multiply the tries (an unreachable cluster took up to 15 before exit 3). What it
    cannot do is re-read and try again after a 409 Conflict: with ``conflicts=True``
    (``fn`` must re-read what it changes) a Conflict is retried after each delay.
    Everything else is raised at once."""
    if not conflicts:
        return fn()
    for delay in CONFLICT_DELAYS if delays is None else delays:
        try:
            return fn()
        except ApiConflict:
            sleep(delay)
    return fn()


def actor(gateway: ClusterGateway) -> str:
    """Who is acting, for annotations and the action log (never fails)."""
    try:
        return gateway.whoami()
    except FalcoirError:
        return "unknown"


__all__ = ["Step", "StepCallback", "actor", "owner_chain", "with_retries"]
