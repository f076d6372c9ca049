"""``/proc/<pid>/status`` and ``/proc/<pid>/cmdline`` as read through a pod, and how a
process compares with what an alert says about it.

All of it is hostile text from a node or a suspect container: parsed, never trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from falcoir.core.alert import Process  # annotations only: --pod has no alert

COMM_LEN = 15
"""The kernel keeps 15 characters of a process name (``TASK_COMM_LEN`` - 1)."""

_TRUNCATION_MARK = "[...]"


@dataclass(frozen=True)
class ProcStatus:
    """The parts of ``/proc/<pid>/status`` locate uses."""

    name: str | None = None
    pid: int | None = None
    ppid: int | None = None
    nspid: tuple[int, ...] = ()
    """Host pid first, then the pid in each nested pid namespace (the last is the
    pid inside the container)."""
    state: str | None = None

    @property
    def vpid(self) -> int | None:
        """The pid inside the innermost pid namespace (the container's)."""
        return self.nspid[-1] if self.nspid else None


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_status(text: str) -> ProcStatus:
    """Parse ``Key:\\tvalue`` lines; unknown and malformed lines are ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep or not key or not key[0].isalpha() or " " in key:
            continue
        values.setdefault(key, value.strip("\t ").rstrip("\r"))
    nspid = tuple(int(x) for x in values.get("NSpid", "").split() if x.isdigit())
    return ProcStatus(
        name=values.get("Name"),
        pid=_int(values.get("Pid", "")),
        ppid=_int(values.get("PPid", "")),
        nspid=nspid,
        state=values.get("State"),
    )


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """``/proc/<pid>/cmdline``: NUL-separated arguments (invalid UTF-8 escaped)."""
    text = data.decode("utf-8", errors="backslashreplace")
    if text.endswith("\0"):
        text = text[:-1]
    return tuple(text.split("\0")) if text else ()


class Match(IntEnum):
    """How well a process matches what the alert says about it."""

    NONE = 0
    """Something the alert says is different."""
    UNKNOWN = 1
    """The alert names neither the process nor its command line: nothing to compare."""
    WEAK = 2
    """The name matches; the alert gives no command line to compare."""
    STRONG = 3
    """The command line matches (and the name, when given)."""


def _base(arg: str) -> str:
    return arg.rsplit("/", 1)[-1]


def same_name(alert_name: str, name: str) -> bool:
    """Process names compared as the kernel keeps them (15 characters)."""
    return alert_name[:COMM_LEN] == name[:COMM_LEN]


def _cmd_tokens(cmdline: str) -> tuple[list[str], bool]:
    text = cmdline.strip()
    truncated = text.endswith(_TRUNCATION_MARK)
    if truncated:
        text = text[: -len(_TRUNCATION_MARK)]
    return text.split(), truncated


def cmdline_matches(alert_cmdline: str, argv: tuple[str, ...], comm: str | None = None) -> bool:
    """Falco's ``proc.cmdline`` is the process name then the arguments, space-joined;
    some renderings print ``argv[0]`` instead of the name. Both are accepted; a
    Falcosidekick line cut to ``...[...]`` matches on its prefix."""
    want, truncated = _cmd_tokens(alert_cmdline)
    have = " ".join(argv).split()
    if not want or not have:
        return False
    heads = {have[0], _base(have[0]), _base(have[0])[:COMM_LEN]}
    if comm:
        heads |= {comm, comm[:COMM_LEN]}
    first_ok = want[0] in heads or _base(want[0]) in heads
    if not first_ok:
        return False
    if truncated:
        rest_want = " ".join(want[1:])
        rest_have = " ".join(have[1:])
        return rest_have.startswith(rest_want.rstrip())
    return want[1:] == have[1:]


def process_match(alert: Process, status: ProcStatus, argv: tuple[str, ...]) -> Match:
    """Compare a live process (status + cmdline) with the alert's process."""
    if not alert.name and not alert.cmdline:
        return Match.UNKNOWN
    names = [n for n in (status.name, _base(argv[0]) if argv else None) if n]
    if alert.name and not any(same_name(alert.name, n) for n in names):
        return Match.NONE
    if alert.cmdline:
        return Match.STRONG if cmdline_matches(alert.cmdline, argv, status.name) else Match.NONE
    return Match.WEAK


def describe(status: ProcStatus, argv: tuple[str, ...], *, width: int = 80) -> str:
    """A short plain description of a process: ``xmrig (/tmp/xmrig -o ...)``."""
    cmd = " ".join(argv)
    if len(cmd) > width:
        cmd = cmd[: width - 1] + "…"
    name = status.name or (_base(argv[0]) if argv else "?")
    return f"{name} ({cmd})" if cmd else name


_PID_RE = re.compile(r"^[1-9][0-9]{0,9}$")


def valid_pid(pid: object) -> int | None:
    """``pid`` as a positive int that fits a Linux pid, else ``None``."""
    if isinstance(pid, bool):
        return None
    if isinstance(pid, int):
        return pid if 0 < pid <= 4_194_304 else None
    if isinstance(pid, str) and _PID_RE.match(pid.strip()):
        value = int(pid.strip())
        return value if value <= 4_194_304 else None
    return None
