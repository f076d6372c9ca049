"""A fake cluster behind an API latency, keeping every call's span, so that tests can
count the round trips on the critical path (:func:`falcoir.cluster.gateway.critical_path`:
the longest chain of calls each sent after the previous one was answered)."""

from __future__ import annotations

import threading
import time
from typing import Any

from falcoir.cluster.gateway import Span, critical_path
from falcoir.core.gateway import JSON

LATENCY = 0.08


class Slow:
    def __init__(self, inner: Any, latency: float = LATENCY) -> None:
        self.inner = inner
        self.latency = latency
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def _timed(self, verb: str, fn: Any, *a: Any, **kw: Any) -> Any:
        start = time.monotonic()
        time.sleep(self.latency)
        try:
            return fn(*a, **kw)
        finally:
            with self._lock:
                self.spans.append(Span(verb, verb, start, time.monotonic()))

    def get(self, *a: Any, **kw: Any) -> JSON:
        return self._timed("get", self.inner.get, *a, **kw)  # type: ignore[no-any-return]

    def list(self, *a: Any, **kw: Any) -> list[JSON]:
        return self._timed("list", self.inner.list, *a, **kw)  # type: ignore[no-any-return]

    def exec(self, *a: Any, **kw: Any) -> Any:
        return self._timed("exec", self.inner.exec, *a, **kw)

    def read_log(self, *a: Any, **kw: Any) -> bytes:
        return self._timed("log", self.inner.read_log, *a, **kw)  # type: ignore[no-any-return]

    def whoami(self) -> str:
        return self._timed("whoami", self.inner.whoami)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def reset(self) -> None:
        with self._lock:
            self.spans = []

    @property
    def round_trips(self) -> int:
        with self._lock:
            return critical_path(self.spans)

    def verbs(self) -> list[str]:
        with self._lock:
            return sorted(s.verb for s in self.spans)
