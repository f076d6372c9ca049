"""Import what a command needs after locate while locate waits for the API server.

``collect``, ``quarantine`` and ``delete`` (falcoir.cli) use it for the bundle, the
collectors and containment; ``respond``'s backend (falcoir.core.respond.real) for its
later steps, with a ``first`` call (its cluster-wide permission questions) sent as soon
as the first answer is in.

Imports are CPU work and Python runs one thread at a time, so importing in a thread
only helps while the main thread is blocked on the network. :class:`Prefetch` waits
until the gateway has opened its first connection (``KubeGateway.stats.connections``:
the TCP and TLS handshakes are done, the request follows at once), leaves that request
:data:`SEND_GRACE_S` to go out, and imports while it is on the wire; or until the
first answer is in (``stats.bytes_received``; at once for a gateway without stats, and
after :data:`START_WAIT_S` at the latest). Starting at the first request instead
delayed that request by 20-40 ms on the benchmark (the thread took the interpreter
during the handshakes). ``first`` is called once the first answer is in (between two
imports, if they have begun). While it imports, the interpreter switches threads every
:data:`SWITCH_S` instead of every 5 ms, so locate's threads get the interpreter back
soon after each answer arrives.

Whoever needs the modules calls :meth:`Prefetch.wait` before importing them, so no
module is imported by two threads at once (a package whose submodules import from it, as
``falcoir.core.contain`` does, could otherwise be seen half-initialised). An import
that fails here is skipped: the caller imports the module again and gets the error.
``wait(names)`` returns as soon as those are done (list them first), so a command can
go on with what it needs next while the rest is still being imported; :meth:`Prefetch.go`
starts the imports at once when waiting for an answer is pointless (the first request
failed before any answer came: its error is on its way, and so is the command's end).
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
SEND_GRACE_S = 0.002
"""Once the first connection is open, how long the imports leave its request alone."""
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
        self._go = threading.Event()
        self._done: set[str] = set()
        """Modules tried (imported or failed)."""
        self._cond = threading.Condition()
        self._finished = False
        self.imported: list[str] = []

    def _answer_received(self) -> bool:
        if self._stats is None:
            return True
        return int(getattr(self._stats, "bytes_received", 1) or 0) > 0

    def _connected(self) -> bool:
        """The first connection is open (its request follows at once)."""
        return self._stats is not None and int(getattr(self._stats, "connections", 0) or 0) > 0

    def _call_first(self) -> None:
        first, self._first = self._first, None
        if first is not None:
            with contextlib.suppress(Exception):  # whoever needs it asks again
                first()

    def _run(self) -> None:
        if not self._wait_for_the_wire():
            self._call_first()  # answered, or no answer is coming soon: ask now
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, SWITCH_S))
        try:
            for name in self.modules:
                if self._first is not None and self._answer_received():
                    self._call_first()
                try:
                    importlib.import_module(name)
                    self.imported.append(name)
                except Exception:  # noqa: S110 - the caller imports it again and reports it
                    pass
                with self._cond:
                    self._done.add(name)
                    self._cond.notify_all()
        finally:
            sys.setswitchinterval(interval)
            with self._cond:
                self._done.update(self.modules)  # whatever happened: nobody waits for more
                self._finished = True
                self._cond.notify_all()
        if self._first is not None:
            # Imported before the answer came: the questions wait for it still.
            self._wait_for_the_wire(answer=True)
            self._call_first()  # (or it is not coming soon: ask anyway, as always)

    def _wait_for_the_wire(self, *, answer: bool = False) -> bool:
        """Until the first answer is in (or :meth:`go`, or :data:`START_WAIT_S`); unless
        ``answer``, only until :data:`SEND_GRACE_S` after the first connection opened.
        True when that is why it stopped waiting (the answer is still to come)."""
        deadline = time.monotonic() + START_WAIT_S
        connected = answer
        while not self._answer_received() and time.monotonic() < deadline:
            if not connected and self._connected():
                connected = True
                deadline = min(deadline, time.monotonic() + SEND_GRACE_S)
            if self._go.wait(POLL_S):
                return False
        return connected and not answer and not self._answer_received()

    def start(self) -> Prefetch:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def go(self) -> None:
        """Import now, without waiting any longer for the first answer."""
        self._go.set()

    def wait(self, modules: Sequence[str] | None = None) -> None:
        """Block until ``modules`` (default: every module) are imported, or failed to
        import (at once if never started, or for a module not in the list)."""
        if not self._started:
            return
        with self._cond:
            if modules is None:
                self._cond.wait_for(lambda: self._finished, WAIT_S)
            else:
                wanted = set(modules) & set(self.modules)
                self._cond.wait_for(lambda: wanted <= self._done, WAIT_S)
