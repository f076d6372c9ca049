"""Import what a command needs after locate while locate waits for the API server.

``collect``, ``quarantine`` and ``delete`` (falcoir.cli) use it for the bundle, the
collectors and containment; ``respond``'s backend (falcoir.core.respond.real) for its
later steps, with a ``first`` call (its cluster-wide permission questions) sent as soon
as the first answer is in.

Imports are CPU work and Python runs one thread at a time, so importing in a thread
only helps while the main thread is blocked on the network. :class:`Prefetch` waits
until the gateway has received its first answer (``KubeGateway.stats.bytes_received``;
at once for a gateway without stats, and after :data:`START_WAIT_S` at the latest):
by then the first requests are out, and the rest of locate is mostly waiting. Starting
at the first request instead delayed that request by 20-40 ms on the benchmark (the
thread took the interpreter while the request was being sent). While it imports, the
interpreter switches threads every :data:`SWITCH_S` instead of every 5 ms, so the
main thread gets the interpreter back soon after each answer arrives.

Whoever needs the modules calls :meth:`Prefetch.wait` before importing them, so no
module is imported by two threads at once (a package whose submodules import from it, as
``falcoir.core.contain`` does, could otherwise be seen half-initialised). An import
that fails here is skipped: the caller imports the module again and gets the error.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

WAIT_S = 30.0
"""The longest :meth:`Prefetch.wait` waits (the caller then imports, and reports)."""
START_WAIT_S = 1.0
"""Longest wait for the first answer before importing anyway."""
POLL_S = 0.001
SWITCH_S = 0.0005
"""The interpreter's thread switch interval while the prefetch imports."""


class Prefetch:
    def __init__(
        self,
        modules: Sequence[str],
        gateway: Any = None,
        *,
        first: Callable[[], None] | None = None,
    ) -> None:
        self.modules = tuple(modules)
        self._first = first
        self._stats = getattr(gateway, "stats", None)
        self._thread = threading.Thread(target=self._run, name="falcoir-prefetch", daemon=True)
        self._started = False
        self.imported: list[str] = []

    def _answer_received(self) -> bool:
        if self._stats is None:
            return True
        return int(getattr(self._stats, "bytes_received", 1) or 0) > 0

    def _run(self) -> None:
        deadline = time.monotonic() + START_WAIT_S
        while not self._answer_received() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if self._first is not None:
            with contextlib.suppress(Exception):  # whoever needs it asks again
                self._first()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, SWITCH_S))
        try:
            for name in self.modules:
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: S112 - the caller imports it again and reports it
                    continue
                self.imported.append(name)
        finally:
            sys.setswitchinterval(interval)

    def start(self) -> Prefetch:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def wait(self) -> None:
        """Block until every module is imported (at once if never started)."""
        if self._started:
            self._thread.join(WAIT_S)
