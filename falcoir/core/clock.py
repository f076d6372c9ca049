"""Time since the falcoir process started, so timings count interpreter start-up too.

``respond`` reports ``timings.containment_s`` and ``timings.total_s`` from the start of
the process (``product.md``): a person typing ``kubectl`` commands pays for kubectl's
start-up, so falcoir's own start-up and imports must count as well. The process start
is read from ``/proc/self/stat`` (field 22, ``starttime``, in clock ticks since boot)
against ``/proc/uptime``; where that is unavailable (not Linux, a restricted ``/proc``)
the fallback is the moment this module was first imported, and :attr:`Clock.source`
says which one is in use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

_IMPORTED_MONO = time.monotonic()
_IMPORTED_WALL = time.time()


def _clock_ticks() -> int:
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100
    return ticks if ticks > 0 else 100


def parse_stat_starttime(stat: str) -> int:
    """Field 22 (``starttime``) of a ``/proc/<pid>/stat`` line.

    The command name (field 2) is in parentheses and may itself hold spaces and
    parentheses, so fields are counted from the last ``)``. Raises ``ValueError``.
    """
    close = stat.rfind(")")
    if close < 0:
        raise ValueError("no command name in stat line")
    rest = stat[close + 1 :].split()
    # rest[0] is field 3 (state); field 22 is rest[19].
    if len(rest) < 20:
        raise ValueError("stat line too short")
    return int(rest[19])


def process_age(
    proc: Path = Path("/proc"), *, pid: str = "self", ticks: int | None = None
) -> float | None:
    """Seconds since the process started, from ``/proc``; ``None`` if unreadable."""
    try:
        stat = (proc / pid / "stat").read_text(encoding="ascii", errors="replace")
        uptime = float((proc / "uptime").read_text(encoding="ascii").split()[0])
        start_ticks = parse_stat_starttime(stat)
    except (OSError, ValueError, IndexError):
        return None
    age = uptime - start_ticks / (ticks or _clock_ticks())
    # A negative or absurd age means the two files disagree (containers with a
    # virtualised /proc/uptime): do not trust it.
    if age < 0 or age > 366 * 24 * 3600:
        return None
    return age


@dataclass(frozen=True)
class Clock:
    """A start instant on the monotonic clock, and the wall time it corresponds to."""

    start_mono: float
    start_wall: float
    source: str
    """``proc`` (process start from /proc), ``import`` (fallback) or ``explicit``."""

    def elapsed(self, mono: float | None = None) -> float:
        """Seconds since the start (at ``mono``, a ``time.monotonic()`` reading)."""
        return (time.monotonic() if mono is None else mono) - self.start_mono

    def wall(self, mono: float) -> datetime:
        """UTC wall time of a monotonic reading."""
        return datetime.fromtimestamp(self.start_wall, UTC) + timedelta(
            seconds=mono - self.start_mono
        )

    @classmethod
    def now(cls) -> Clock:
        """A clock starting now (tests, and each incident in ``--follow`` mode)."""
        return cls(time.monotonic(), time.time(), "explicit")


def process_clock(proc: Path = Path("/proc")) -> Clock:
    """A clock starting when this process started (imports included)."""
    age = process_age(proc)
    if age is None:
        return Clock(_IMPORTED_MONO, _IMPORTED_WALL, "import")
    mono, wall = time.monotonic(), time.time()
    return Clock(mono - age, wall - age, "proc")
