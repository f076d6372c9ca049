"""What quarantine, release and delete share: progress steps, safe retries, owners."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from falcoir.core.gateway import JSON, RESOURCES_BY_KIND, ClusterGateway
from falcoir.core.target import OwnerRef
from falcoir.errors import ApiError, ApiNotFound, ClusterUnreachable, FalcoirError

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


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


def owner_chain(gateway: ClusterGateway, pod: JSON, *, max_depth: int = 5) -> tuple[OwnerRef, ...]:
    """The pod's controller, its controller, ... up to the top (bounded). Stops at a
    kind falcoir does not know or an owner that is gone."""
    chain: list[OwnerRef] = []
    obj = pod
    namespace = (pod.get("metadata") or {}).get("namespace")
    for _ in range(max_depth):
        ref = controller_ref(obj)
        if ref is None:
            break
        chain.append(ref)
        resource = RESOURCES_BY_KIND.get(ref.kind)
        if resource is None:
            break
        try:
            obj = with_retries(partial(gateway.get, resource, ref.name, namespace))
        except ApiNotFound:
            break
    return tuple(chain)
