"""``respond --follow``: the Falco pods, remembered between alerts.

Locating an alert by host pid starts by listing the Falco DaemonSet's pods (whose host
``/proc`` is read). In a stream of alerts that list is the same from one alert to the
next: :class:`FalcoPodsCache` keeps it for a short while, so a followed alert goes
straight to the exec in the node's Falco pod, one API round trip sooner. Nothing else is
cached: the workload pods, the policies, the pod itself are read fresh for every alert.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from falcoir.core.gateway import JSON, PODS, ClusterGateway, Resource
from falcoir.core.locate.options import DEFAULT_FALCO_SELECTORS

DEFAULT_TTL_S = 30.0
"""How long a list of Falco pods is used again (a DaemonSet's pods rarely change; a
failed locate drops the list at once anyway)."""


class FalcoPodsCache:
    """A :class:`ClusterGateway` that remembers lists of the Falco pods (by the Falco
    selectors only) for ``ttl`` seconds; every other call goes to ``gateway``."""

    def __init__(
        self,
        gateway: ClusterGateway,
        *,
        selectors: tuple[str, ...] = DEFAULT_FALCO_SELECTORS,
        ttl: float = DEFAULT_TTL_S,
    ) -> None:
        self._gateway = gateway
        self._selectors = frozenset(selectors)
        self._ttl = ttl
        self._lists: dict[tuple[Any, ...], tuple[float, list[JSON]]] = {}
        self._lock = threading.Lock()
        self.hits = 0

    @property
    def gateway(self) -> ClusterGateway:
        """This, as the domain's gateway type (every method is the wrapped one's)."""
        return cast(ClusterGateway, self)

    def forget(self) -> None:
        """Drop every remembered list (a locate failed: the Falco pods may have moved)."""
        with self._lock:
            self._lists.clear()

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> list[JSON]:
        if resource is not PODS or label_selector not in self._selectors or limit is not None:
            return self._gateway.list(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
            )
        key = (namespace, label_selector, field_selector)
        now = time.monotonic()
        with self._lock:
            hit = self._lists.get(key)
            if hit is not None and now - hit[0] <= self._ttl:
                self.hits += 1
                return list(hit[1])
        items = self._gateway.list(
            resource, namespace, label_selector=label_selector, field_selector=field_selector
        )
        with self._lock:
            self._lists[key] = (now, list(items))
        return items

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)
