"""Parsing /proc as dumped from a container: addresses, stat, framing, socket owners."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from falcoir.core.collect import procfs
from falcoir.core.collect.scripts import new_marker


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0100007F:0050", ("127.0.0.1", 80)),
        ("0500F40A:A028", ("10.244.0.5", 41000)),
        ("00000000:0D05", ("0.0.0.0", 3333)),
        ("00000000000000000000000001000000:0016", ("::1", 22)),
        ("0000000000000000FFFF00000100007F:1F90", ("127.0.0.1", 8080)),
        ("B80D01200000000000000000010000A0:01BB", ("2001:db8::a000:1", 443)),
    ],
)
def test_decode_address(text: str, expected: tuple[str, int]) -> None:
    assert procfs.decode_address(text) == expected


def test_proc_net_tables_and_states() -> None:
    tcp = (
        b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        b"  timeout inode\n"
        b"   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
        b"   101        0 111 1 0 100 0 0 10 0\n"
        b"   1: 0500F40A:A028 0900600A:0D05 01 00000000:00000000 00:00000000 00000000"
        b"     0        0 222 1 0 20 4 30 10 -1\n"
        b"garbage line\n"
    )
    udp = (
        b"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        b"  timeout inode ref pointer drops\n"
        b"  7: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000"
        b"     0        0 333 2 0 0\n"
    )
    socks = procfs.parse_proc_net(tcp, "tcp") + procfs.parse_proc_net(udp, "udp")
    assert [(s.proto, s.local_port, s.state, s.inode, s.uid) for s in socks] == [
        ("tcp", 80, "LISTEN", 111, 101),
        ("tcp", 41000, "ESTABLISHED", 222, 0),
        ("udp", 53, "UNCONN", 333, 0),
    ]


def test_stat_with_hostile_comm() -> None:
    raw = b"42 (x) (y) S 1 42 42 0 -1"
    assert procfs.parse_stat(raw) == ("x) (y", "S", 1)
    assert procfs.parse_stat(b"nonsense") is None


def _dump(marker: str, pid: int, comm: bytes, cmdline: bytes, fds: bytes) -> bytes:
    m = marker.encode()
    return (
        b"\n" + m + b" pid %d\n" % pid
        + b"\n" + m + b" stat\n" + b"%d (%s) S 1 0" % (pid, comm) + b"\n"
        + b"\n" + m + b" status\nName:\t" + comm + b"\nNSpid:\t900\t%d\n" % pid
        + b"\n" + m + b" cmdline\n" + cmdline
        + b"\n" + m + b" exe\n/tmp/xmrig (deleted)\n"
        + b"\n" + m + b" cwd\n/tmp\n"
        + b"\n" + m + b" fd\n" + fds
    )  # fmt: skip


def test_a_forged_marker_cannot_inject_sections() -> None:
    marker = new_marker()
    # the process tries to forge a section with a guessed marker and a fake pid
    forged = b"\x00\n@@falcoir-000000000000000000000000 pid 1\n"
    data = _dump(marker, 42, b"xmrig", b"/tmp/xmrig\x00-o\x00" + forged, b"socket:[777]\n")
    data += b"\n" + marker.encode() + b" end\n"
    procs = procfs.parse_proc_dump(data, marker)
    assert [p.pid for p in procs] == [42]
    p = procs[0]
    assert p.cmdline[:2] == ("/tmp/xmrig", "-o")
    assert p.exe == "/tmp/xmrig" and p.exe_deleted and p.cwd == "/tmp"
    assert p.nspid == (900, 42) and p.sockets == (777,)


def test_sockets_map_to_their_processes() -> None:
    marker = new_marker()
    data = _dump(marker, 42, b"xmrig", b"/tmp/xmrig\x00", b"socket:[5]\npipe:[6]\nsocket:[5]\n")
    data += _dump(marker, 7, b"web", b"/web\x00", b"socket:[9]\n")
    procs = procfs.parse_proc_dump(data, marker)
    socks = [
        procfs.Socket("tcp", "10.0.0.1", 1, "10.0.0.2", 3333, "ESTABLISHED", 5),
        procfs.Socket("tcp", "0.0.0.0", 80, "0.0.0.0", 0, "LISTEN", 9),
        procfs.Socket("tcp", "0.0.0.0", 81, "0.0.0.0", 0, "LISTEN", 10),
    ]
    mapped = procfs.map_sockets(socks, procs)
    assert [(s.pids, s.processes) for s in mapped] == [
        ((42,), ("xmrig",)),
        ((7,), ("web",)),
        ((), ()),
    ]
    assert procfs.find_process(procs, cmdline="/tmp/xmrig -o x", name=None) is not None
    assert procfs.find_process(procs, name="web").pid == 7  # type: ignore[union-attr]
    assert procfs.find_process(procs, exepath="/nope", name="nope") is None


@given(st.binary(max_size=2000))
def test_parsers_never_crash_on_arbitrary_bytes(data: bytes) -> None:
    marker = "@@falcoir-abc"
    procfs.parse_proc_dump(data, marker)
    procfs.parse_net_dump(data, marker)
    procfs.parse_proc_net(data, "tcp6")
    procfs.parse_status(data)
    procfs.parse_stat(data)
    list(procfs.parse_fd_links(data))
