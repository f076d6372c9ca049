"""Locate's first request before the rest of ``respond`` is imported.

``falcoir respond ALERT`` spends its first tenths of a second importing; the
orchestrator, the step graph and the live view are not needed until the pod is known,
which takes round trips. So the command parses the alert, connects, starts locate
(:class:`EarlyLocate`, a thread of its own) and only then imports the rest, while
locate waits for the API server (:class:`falcoir.core.prefetch.Prefetch` does the
importing once the first answer is in). :meth:`EarlyLocate.backend` hands the running
locate over to the orchestrator: its ``locate`` step takes the result (and the progress
notes written meanwhile) instead of starting another one.

This module is light on purpose (no orchestrator, no graph): the command imports it on
the way to the first request.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Protocol

from falcoir.core.alert import Alert
from falcoir.core.policy import ActionOptions, Decision
from falcoir.core.respond.backend import Backend, Progress
from falcoir.core.target import Target


def with_actions(decision: Decision, *, delete: bool) -> Decision:
    """``--no-delete`` wins over the policy."""
    if delete or "delete" not in decision.actions:
        return decision
    return replace(decision, actions=decision.actions - {"delete"})


def ahead_for(
    actions: frozenset[str], options: ActionOptions, *, dry_run: bool, asks: bool
) -> ActionOptions | None:
    """What locate is told about the quarantine to come (``Backend.locate``'s
    ``ahead``): its options when it will go ahead unasked (not a dry run, no question:
    ``--yes``), else ``None``."""
    return options if "quarantine" in actions and not dry_run and not asks else None


class Locator(Protocol):
    """What :class:`EarlyLocate` needs of a backend (``Backend.locate``)."""

    def locate(
        self,
        alert: Alert,
        progress: Progress,
        ahead: ActionOptions | None = None,
        on_found: Callable[[Target], None] | None = None,
    ) -> Target: ...


FIRST_CONNECTION_WAIT_S = 0.05
"""The longest :func:`after_first_connection` holds its call back."""
_POLL_S = 0.001


def after_first_connection(gateway: object, fn: Callable[[], object]) -> threading.Thread:
    """Call ``fn`` in a thread once ``gateway`` has opened its first connection (its
    ``stats``), so that its request does not take the interpreter from locate's
    first one while that one is being sent; after :data:`FIRST_CONNECTION_WAIT_S`
    at the latest, and at once for a gateway without stats. ``fn``'s errors are
    dropped: whoever needs its result asks again."""
    stats = getattr(gateway, "stats", None)

    def run() -> None:
        deadline = time.monotonic() + FIRST_CONNECTION_WAIT_S
        while (
            stats is not None
            and not (getattr(stats, "connections", 1) or getattr(stats, "bytes_received", 1))
            and time.monotonic() < deadline
        ):
            time.sleep(_POLL_S)
        with contextlib.suppress(Exception):
            fn()

    thread = threading.Thread(target=run, name="falcoir-after-first", daemon=True)
    thread.start()
    return thread


class EarlyLocate:
    """``backend.locate(alert)`` started now, in a thread, for an orchestrator that
    does not exist yet. Progress notes are kept until it asks for them (then replayed
    in order, and passed on as they come); ``on_done`` is called when locate ends,
    however it ends."""

    def __init__(
        self,
        backend: Locator,
        alert: Alert,
        ahead: ActionOptions | None,
        *,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._backend = backend
        self.alert = alert
        self.ahead = ahead
        self._on_done = on_done
        self._lock = threading.Lock()
        self._notes: list[str] = []
        self._sink: Progress | None = None
        self._found: Target | None = None
        self._known = threading.Event()
        self.whole: Future[Target] = Future()
        """The whole target (with its owner chain), or what locate raised."""
        self.started_mono: float | None = None
        """``time.monotonic()`` when locate started."""

    def start(self) -> EarlyLocate:
        if self.started_mono is None:
            self.started_mono = time.monotonic()
            threading.Thread(target=self._run, name="falcoir-early-locate", daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            self.whole.set_result(
                self._backend.locate(self.alert, self._progress, self.ahead, self._on_found)
            )
        except BaseException as exc:  # raised again by whoever takes the result
            self.whole.set_exception(exc)
        finally:
            self._known.set()
            if self._on_done is not None:
                self._on_done()

    def _progress(self, text: str) -> None:
        with self._lock:
            sink = self._sink
            if sink is None:
                self._notes.append(text)
                return
        sink(text)

    def _on_found(self, where: Target) -> None:
        with self._lock:
            if self._found is None:
                self._found = where
        self._known.set()

    def attach(self, progress: Progress) -> None:
        """From now on notes go to ``progress``; those written so far first."""
        with self._lock:
            for text in self._notes:
                progress(text)
            self._notes.clear()
            self._sink = progress

    def backend(self) -> Backend:
        """``backend`` whose ``locate`` for this alert is the one already running."""
        return _Prelocated(self._backend, self)

    def take(self, progress: Progress, on_found: Callable[[Target], None] | None = None) -> Target:
        """Locate's result: ``on_found`` is told the pod as soon as it is known (at once
        if it already is), notes go to ``progress``; raises what locate raised."""
        self.attach(progress)
        self._known.wait()
        with self._lock:
            found = self._found
        if found is not None and on_found is not None:
            on_found(found)
        return self.whole.result()


class _Prelocated:
    """The backend, with ``locate`` of the early alert answered by the early locate."""

    def __init__(self, backend: Locator, early: EarlyLocate) -> None:
        self._backend = backend
        self._early = early

    def locate(
        self,
        alert: Alert,
        progress: Progress,
        ahead: ActionOptions | None = None,
        on_found: Callable[[Target], None] | None = None,
    ) -> Target:
        if alert is not self._early.alert or ahead != self._early.ahead:
            # Not the locate that was started (never, from the command): a fresh one.
            return self._backend.locate(alert, progress, ahead, on_found)
        return self._early.take(progress, on_found)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)
