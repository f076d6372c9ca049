"""Listing the processes inside a container, to compare them with the alert.

A constant ``sh`` script walks ``/proc`` (no ``ps`` needed) and leaves itself out by
its own pid (``$$``), so no process can hide by looking like it; ``ps -eo pid,args`` is
the fallback for images without ``sh``. Nothing from the alert is passed to the container:
matching happens here, on the output, which is hostile and parsed as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from falcoir.core.alert import Process
from falcoir.core.gateway import ClusterGateway
from falcoir.core.locate.procfs import Match, ProcStatus, process_match

LIST_TIMEOUT = 20.0
LIST_MAX_BYTES = 1024 * 1024
_PS_ARGV = ("ps", "-eo", "pid,args")

PS_SCRIPT = r"""for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  c=$(tr '\000\n\t' '\037  ' < "$d/cmdline" 2>/dev/null) || continue
  [ -n "$c" ] || continue
  n=$(head -n 1 "$d/status" 2>/dev/null)
  printf '%s\t%s\t%s\n' "$p" "${n#Name:?}" "$c"
done"""
"""Prints ``pid<TAB>name<TAB>arg\\x1farg...`` per process (constant; takes no input)."""


@dataclass(frozen=True)
class ContainerProcess:
    pid: int
    """The pid inside the container."""
    name: str | None
    argv: tuple[str, ...]


def _parse_script(text: str) -> list[ContainerProcess]:
    out: list[ContainerProcess] = []
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        argv = tuple(parts[2].split("\x1f"))
        if argv and argv[-1] == "":
            argv = argv[:-1]
        out.append(ContainerProcess(int(parts[0]), parts[1] or None, argv))
    return out


def _parse_ps(text: str) -> list[ContainerProcess]:
    out: list[ContainerProcess] = []
    for line in text.splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        if not pid.isdigit() or not args.strip():
            continue
        argv = tuple(args.strip().split())
        if argv == _PS_ARGV:
            continue  # ps itself
        name = argv[0].rsplit("/", 1)[-1] if argv else None
        out.append(ContainerProcess(int(pid), name, argv))
    return out


def list_processes(
    gateway: ClusterGateway, namespace: str, pod: str, container: str | None
) -> tuple[list[ContainerProcess], str | None]:
    """The container's processes, and why they could not be listed (or ``None``)."""
    res = gateway.exec(
        namespace,
        pod,
        container,
        ["sh", "-c", PS_SCRIPT],
        timeout=LIST_TIMEOUT,
        max_bytes=LIST_MAX_BYTES,
    )
    if res.ran and res.stdout:
        procs = _parse_script(res.stdout.decode("utf-8", errors="backslashreplace"))
        if procs:
            return procs, None
    res2 = gateway.exec(
        namespace,
        pod,
        container,
        list(_PS_ARGV),
        timeout=LIST_TIMEOUT,
        max_bytes=LIST_MAX_BYTES,
    )
    if res2.ran and res2.stdout:
        procs = _parse_ps(res2.stdout.decode("utf-8", errors="backslashreplace"))
        if procs:
            return procs, None
    why = res2.error or res.error or "no process listing"
    return [], f"cannot list processes in {namespace}/{pod}/{container}: {why}"


def match_processes(
    alert: Process, procs: list[ContainerProcess]
) -> list[tuple[ContainerProcess, Match]]:
    """Processes that match the alert (weak or strong), best first."""
    found: list[tuple[ContainerProcess, Match]] = []
    for p in procs:
        m = process_match(alert, ProcStatus(name=p.name, pid=p.pid), p.argv)
        if m >= Match.WEAK:
            found.append((p, m))
    found.sort(key=lambda pm: (-pm[1], pm[0].pid))
    return found
