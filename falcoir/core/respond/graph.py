"""A small step graph: run steps as soon as what they need is done, concurrently.

Each step names the steps it ``needs`` (they must succeed, else it is skipped and says
which one stopped it) and the steps it only comes ``after`` (they must have finished,
whatever their outcome). Steps run in daemon threads; the caller's thread only waits,
so Ctrl-C reaches it: the runner then starts nothing new, gives running steps a
bounded grace period to finish what they are doing (a half-applied change is worse
than a late one), marks everything else interrupted or skipped, and returns.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from falcoir.core.clock import Clock
from falcoir.errors import ExitCode, FalcoirError, exit_code_for


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class StepSkip(Exception):
    """Raised by a step body to end as ``skipped`` with a reason (``--no-delete``...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[], Any]
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    title: str = ""
    began: float | None = None
    """``time.monotonic()`` when its work began, if before the graph started it (locate,
    started while the rest of respond was being imported): its record says so."""


@dataclass
class StepRecord:
    """What happened to one step (times in seconds from the clock's start)."""

    name: str
    title: str
    status: StepStatus = StepStatus.PENDING
    started_s: float | None = None
    ended_s: float | None = None
    started_at: str | None = None
    ended_at: str | None = None
    detail: str = ""
    error: dict[str, Any] | None = None
    result: Any = None
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None:
            return None
        return self.ended_s - self.started_s

    def to_dict(self) -> dict[str, Any]:
        dur = self.duration_s
        return {
            "name": self.name,
            "status": self.status.value,
            "started_s": _r(self.started_s),
            "ended_s": _r(self.ended_s),
            "duration_s": _r(dur),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "detail": self.detail,
            "error": self.error,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def error_info(exc: BaseException) -> dict[str, Any]:
    """The JSON description of a step's failure."""
    code = exit_code_for(exc)
    if isinstance(exc, FalcoirError):
        message, hint = exc.message, exc.hint
    else:
        message, hint = f"{type(exc).__name__}: {exc}", None
        code = ExitCode.FAILED
    info: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": message,
        "hint": hint,
        "exit_code": int(code),
    }
    missing = getattr(exc, "missing", None)
    if missing:
        info["missing"] = list(missing)
    candidates = getattr(exc, "candidates", None)
    if candidates:
        info["candidates"] = list(candidates)
    return info


Listener = Callable[[StepRecord], None]


@dataclass
class GraphRun:
    records: dict[str, StepRecord]
    interrupted: bool = False


def run_graph(
    steps: Sequence[Step],
    *,
    clock: Clock,
    on_change: Listener | None = None,
    grace_s: float = 10.0,
    poll_s: float = 0.1,
) -> GraphRun:
    """Run ``steps``; returns every step's record. Never raises for a step's failure."""
    by_name: Mapping[str, Step] = {s.name: s for s in steps}
    for s in steps:
        for dep in (*s.needs, *s.after):
            if dep not in by_name:
                raise ValueError(f"step {s.name!r} refers to unknown step {dep!r}")
    records = {s.name: StepRecord(s.name, s.title or s.name) for s in steps}
    done: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    lock = threading.Lock()

    def notify(rec: StepRecord) -> None:
        if on_change is not None:
            # a display problem must not stop a response
            with contextlib.suppress(Exception):
                on_change(rec)

    def stamp_start(rec: StepRecord, began: float | None) -> None:
        now = time.monotonic() if began is None else min(began, time.monotonic())
        rec.started_s = clock.elapsed(now)
        rec.started_at = _iso(clock, now)

    def stamp_end(rec: StepRecord) -> None:
        now = time.monotonic()
        rec.ended_s = clock.elapsed(now)
        rec.ended_at = _iso(clock, now)

    def body(step: Step) -> None:
        try:
            result = step.run()
        except StepSkip as skip:
            done.put((step.name, "skip", skip.reason))
        except BaseException as exc:
            done.put((step.name, "error", exc))
        else:
            done.put((step.name, "ok", result))

    def finish(name: str, kind: str, value: Any) -> None:
        rec = records[name]
        with lock:
            stamp_end(rec)
            if kind == "ok":
                rec.status, rec.result = StepStatus.OK, value
            elif kind == "skip":
                rec.status, rec.detail = StepStatus.SKIPPED, str(value)
            elif isinstance(value, KeyboardInterrupt):
                rec.status, rec.detail = StepStatus.INTERRUPTED, "interrupted"
            else:
                rec.status, rec.exception = StepStatus.FAILED, value
                rec.error = error_info(value)
                rec.detail = rec.error["message"]
        notify(rec)

    def schedule() -> int:
        """Start what can start, skip what cannot run; returns how many are running."""
        progress = True
        while progress:
            progress = False
            for step in steps:
                rec = records[step.name]
                if rec.status is not StepStatus.PENDING:
                    continue
                blocked = [d for d in step.needs if records[d].status.finished]
                failed = [d for d in blocked if records[d].status is not StepStatus.OK]
                if failed:
                    dep = records[failed[0]]
                    rec.status = StepStatus.SKIPPED
                    rec.detail = f"not run: {dep.name} {dep.status.value}"
                    notify(rec)
                    progress = True
                    continue
                waiting = [d for d in (*step.needs, *step.after) if not records[d].status.finished]
                if waiting:
                    continue
                rec.status = StepStatus.RUNNING
                stamp_start(rec, step.began)
                notify(rec)
                threading.Thread(
                    target=body, args=(step,), name=f"falcoir-step-{step.name}", daemon=True
                ).start()
                progress = True
        return sum(1 for r in records.values() if r.status is StepStatus.RUNNING)

    run = GraphRun(records)
    try:
        while schedule():
            try:
                name, kind, value = done.get(timeout=poll_s)
            except queue.Empty:
                continue
            finish(name, kind, value)
    except KeyboardInterrupt:
        run.interrupted = True
        _wind_down(records, done, finish, notify, grace_s)
    return run


def _wind_down(
    records: dict[str, StepRecord],
    done: queue.Queue[tuple[str, str, Any]],
    finish: Callable[[str, str, Any], None],
    notify: Listener,
    grace_s: float,
) -> None:
    """After Ctrl-C: let running steps finish (bounded), mark the rest."""
    deadline = time.monotonic() + grace_s
    try:
        while any(r.status is StepStatus.RUNNING for r in records.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                name, kind, value = done.get(timeout=min(left, 0.1))
            except queue.Empty:
                continue
            finish(name, kind, value)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop waiting
    for rec in records.values():
        if rec.status is StepStatus.RUNNING:
            rec.status = StepStatus.INTERRUPTED
            rec.detail = "interrupted while running; its outcome is unknown"
            notify(rec)
        elif rec.status is StepStatus.PENDING:
            rec.status = StepStatus.SKIPPED
            rec.detail = "not run: interrupted"
            notify(rec)


def _iso(clock: Clock, mono: float) -> str:
    return clock.wall(mono).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
