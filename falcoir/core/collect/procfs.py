"""Reading ``/proc`` as dumped from a container: processes, sockets, and which process
owns which socket.

The dumps come from constant shell scripts (:mod:`falcoir.core.collect.scripts`) that
frame each section with a random marker passed as an argument, so that file contents
(attacker-controlled command lines, file names) cannot forge a section boundary
without knowing the marker. Everything here is pure parsing of bytes: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from falcoir.core.text import decode_hostile

TCP_STATES: Mapping[int, str] = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW_SYN_RECV",
}

_SOCKET_RE = re.compile(rb"(?:^|\s)socket:\[(\d+)\]$")
_DELETED = " (deleted)"


@dataclass(frozen=True)
class ProcInfo:
    """One process as ``/proc/<pid>`` showed it (pids as seen in the container)."""

    pid: int
    ppid: int | None = None
    comm: str | None = None
    state: str | None = None
    cmdline: tuple[str, ...] = ()
    """Arguments, decoded with ``\\xNN`` escapes for invalid UTF-8."""
    exe: str | None = None
    """``/proc/<pid>/exe`` link target (``(deleted)`` suffix removed, see ``exe_deleted``)."""
    exe_deleted: bool = False
    cwd: str | None = None
    uid: str | None = None
    nspid: tuple[int, ...] = ()
    sockets: tuple[int, ...] = ()
    """Inodes of the sockets this process holds open."""

    @property
    def argv0(self) -> str | None:
        return self.cmdline[0] if self.cmdline else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "comm": self.comm,
            "state": self.state,
            "cmdline": list(self.cmdline),
            "exe": self.exe,
            "exe_deleted": self.exe_deleted,
            "cwd": self.cwd,
            "uid": self.uid,
            "nspid": list(self.nspid),
            "sockets": list(self.sockets),
        }


@dataclass(frozen=True)
class Socket:
    proto: str
    """``tcp``, ``tcp6``, ``udp`` or ``udp6``."""
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: str
    inode: int
    uid: int | None = None
    pids: tuple[int, ...] = ()
    processes: tuple[str, ...] = field(default=())
    """``comm`` of each owning process, when the fd scan found it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "proto": self.proto,
            "local": f"{_host(self.local_ip)}:{self.local_port}",
            "remote": f"{_host(self.remote_ip)}:{self.remote_port}",
            "local_ip": self.local_ip,
            "local_port": self.local_port,
            "remote_ip": self.remote_ip,
            "remote_port": self.remote_port,
            "state": self.state,
            "inode": self.inode,
            "uid": self.uid,
            "pids": list(self.pids),
            "processes": list(self.processes),
        }


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


# -- framed dumps ------------------------------------------------------------------


def split_sections(data: bytes, marker: str) -> list[tuple[str, bytes]]:
    """Split a dump framed as ``\\n<marker> <header>\\n<content>`` into
    ``(header, content)`` pairs (content without the newline the framing added)."""
    token = b"\n" + marker.encode() + b" "
    chunks = (b"\n" + data).split(token)
    out: list[tuple[str, bytes]] = []
    for chunk in chunks[1:]:
        header, _, content = chunk.partition(b"\n")
        if content.endswith(b"\n"):
            content = content[:-1]
        out.append((header.decode("ascii", errors="replace").strip(), content))
    return out


def parse_proc_dump(data: bytes, marker: str) -> list[ProcInfo]:
    """Processes from the ``procs`` script's output (see ``scripts.PROC_DUMP``)."""
    procs: list[ProcInfo] = []
    current: dict[str, bytes] = {}
    pid: int | None = None

    def flush() -> None:
        if pid is not None:
            procs.append(_proc_from_sections(pid, current))

    # A process that learnt the marker could frame its own text (a cwd or exe link) as
    # sections: "end" counts only as the very last section, a pid seen before is not
    # taken again, and the first of a process's sections of one kind wins.
    sections = split_sections(data, marker)
    seen: set[int] = set()
    for i, (header, content) in enumerate(sections):
        kind, _, arg = header.partition(" ")
        if kind == "pid":
            flush()
            current = {}
            pid = int(arg) if arg.isdigit() else None
            if pid in seen:
                pid = None
            elif pid is not None:
                seen.add(pid)
        elif kind == "end":
            if i == len(sections) - 1:
                break
        else:
            current.setdefault(kind, content)
    flush()
    return sorted(procs, key=lambda p: p.pid)


def _proc_from_sections(pid: int, sec: Mapping[str, bytes]) -> ProcInfo:
    ppid = comm = state = None
    stat_raw = sec.get("stat", b"")
    if stat_raw:
        parsed = parse_stat(stat_raw)
        if parsed is not None:
            comm, state, ppid = parsed
    status = parse_status(sec.get("status", b""))
    if comm is None:
        comm = status.get("Name")
    if ppid is None and status.get("PPid", "").isdigit():
        ppid = int(status["PPid"])
    nspid = tuple(int(x) for x in status.get("NSpid", "").split() if x.isdigit())
    uid_fields = status.get("Uid", "").split()
    cmdline = tuple(
        decode_hostile(arg) for arg in sec.get("cmdline", b"").rstrip(b"\x00").split(b"\x00") if arg
    )
    exe = decode_hostile(sec["exe"].rstrip(b"\n")) if sec.get("exe") else None
    deleted = bool(exe and exe.endswith(_DELETED))
    if exe and deleted:
        exe = exe[: -len(_DELETED)]
    cwd = decode_hostile(sec["cwd"].rstrip(b"\n")) if sec.get("cwd") else None
    return ProcInfo(
        pid=pid,
        ppid=ppid,
        comm=comm,
        state=state,
        cmdline=cmdline,
        exe=exe or None,
        exe_deleted=deleted,
        cwd=cwd or None,
        uid=uid_fields[0] if uid_fields else None,
        nspid=nspid,
        sockets=tuple(parse_fd_links(sec.get("fd", b""))),
    )


def parse_stat(raw: bytes) -> tuple[str, str, int | None] | None:
    """``(comm, state, ppid)`` from ``/proc/<pid>/stat``; ``comm`` may hold spaces and
    parentheses, so it is everything between the first ``(`` and the last ``)``."""
    start = raw.find(b"(")
    end = raw.rfind(b")")
    if start < 0 or end < start:
        return None
    comm = decode_hostile(raw[start + 1 : end])
    rest = raw[end + 1 :].split()
    state = rest[0].decode("ascii", errors="replace") if rest else ""
    ppid = int(rest[1]) if len(rest) > 1 and rest[1].isdigit() else None
    return comm, state, ppid


def parse_status(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.splitlines():
        key, sep, value = line.partition(b":")
        if sep:
            out[decode_hostile(key.strip())] = decode_hostile(value.strip())
    return out


def parse_fd_links(raw: bytes) -> Iterable[int]:
    """Socket inodes from fd link targets, one a line (``socket:[12345]``)."""
    seen: set[int] = set()
    for line in raw.splitlines():
        m = _SOCKET_RE.search(line.strip())
        if m:
            inode = int(m.group(1))
            if inode not in seen:
                seen.add(inode)
                yield inode


# -- /proc/net ----------------------------------------------------------------------


def decode_address(text: str) -> tuple[str, int]:
    """``0100007F:0050`` -> ``("127.0.0.1", 80)``; IPv6 is four little-endian words."""
    addr_hex, _, port_hex = text.partition(":")
    port = int(port_hex, 16)
    raw = bytes.fromhex(addr_hex)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(struct.pack("<I", struct.unpack(">I", raw)[0]))), port
    if len(raw) == 16:
        words = struct.unpack(">4I", raw)
        packed = b"".join(struct.pack("<I", w) for w in words)
        ip6 = ipaddress.IPv6Address(packed)
        mapped = ip6.ipv4_mapped
        return (str(mapped) if mapped else str(ip6)), port
    raise ValueError(f"bad address {text!r}")


def parse_proc_net(raw: bytes, proto: str) -> list[Socket]:
    """Sockets from one ``/proc/net/{tcp,tcp6,udp,udp6}`` table."""
    out: list[Socket] = []
    for line in raw.splitlines():
        cols = line.split()
        if len(cols) < 10 or not cols[0].rstrip(b":").isdigit():
            continue
        try:
            lip, lport = decode_address(cols[1].decode("ascii"))
            rip, rport = decode_address(cols[2].decode("ascii"))
            st = int(cols[3], 16)
            uid = int(cols[7])
            inode = int(cols[9])
        except (ValueError, UnicodeDecodeError):
            continue
        if proto.startswith("tcp"):
            state = TCP_STATES.get(st, f"0x{st:02X}")
        else:
            state = "ESTABLISHED" if st == 0x01 else ("UNCONN" if st == 0x07 else f"0x{st:02X}")
        out.append(Socket(proto, lip, lport, rip, rport, state, inode, uid))
    return out


def parse_net_dump(data: bytes, marker: str) -> list[Socket]:
    """All sockets from the ``net`` script's output (sections named by table)."""
    sockets: list[Socket] = []
    for header, content in split_sections(data, marker):
        if header in {"tcp", "tcp6", "udp", "udp6"}:
            sockets.extend(parse_proc_net(content, header))
    return sockets


def map_sockets(sockets: Iterable[Socket], procs: Iterable[ProcInfo]) -> list[Socket]:
    """Each socket with the processes holding it (through their fd links)."""
    owners: dict[int, list[ProcInfo]] = {}
    for p in procs:
        for inode in p.sockets:
            owners.setdefault(inode, []).append(p)
    out = []
    for s in sockets:
        held = owners.get(s.inode, []) if s.inode else []
        out.append(
            Socket(
                s.proto,
                s.local_ip,
                s.local_port,
                s.remote_ip,
                s.remote_port,
                s.state,
                s.inode,
                s.uid,
                pids=tuple(p.pid for p in held),
                processes=tuple(p.comm or "?" for p in held),
            )
        )
    return out


def find_process(
    procs: Iterable[ProcInfo],
    *,
    exepath: str | None = None,
    cmdline: str | None = None,
    name: str | None = None,
) -> ProcInfo | None:
    """The best match for an alert's process: same executable, else same command line,
    else same name (``comm`` is cut to 15 characters by the kernel)."""
    plist = list(procs)
    if exepath:
        for p in plist:
            if p.exe == exepath:
                return p
    if cmdline:
        for p in plist:
            if " ".join(p.cmdline) == cmdline.strip():
                return p
        first = cmdline.split()[0] if cmdline.split() else ""
        if first.startswith("/"):
            for p in plist:
                if p.exe == first or p.argv0 == first:
                    return p
    if name:
        for p in plist:
            if p.comm == name[:15] or (p.argv0 and p.argv0.rsplit("/", 1)[-1] == name):
                return p
    return None
