"""/proc status and cmdline parsing, and matching a process against the alert."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from falcoir.core.alert import Process
from falcoir.core.locate.pods import normalize_container_id, split_container_id
from falcoir.core.locate.procfs import (
    Match,
    ProcStatus,
    cmdline_matches,
    parse_cmdline,
    parse_status,
    process_match,
    valid_pid,
)

STATUS = (
    "Name:\txmrig\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t12345\nNgid:\t0\n"
    "Pid:\t12345\nPPid:\t12300\nTracerPid:\t0\nUid:\t0\t0\t0\t0\n"
    "NSpid:\t12345\t7\nNSpgid:\t12345\t7\nThreads:\t4\n"
)
ARGV = ("/tmp/xmrig", "-o", "pool.example.com:3333", "-u", "wallet_address", "-p", "x")


def test_status() -> None:
    s = parse_status(STATUS)
    assert (s.name, s.pid, s.ppid, s.nspid, s.vpid) == ("xmrig", 12345, 12300, (12345, 7), 7)


def test_status_nested_namespaces_and_host_process() -> None:
    assert parse_status("NSpid:\t900\t40\t3\n").vpid == 3
    assert parse_status("Pid:\t1\nNSpid:\t1\n").vpid == 1
    assert parse_status("").vpid is None


def test_cmdline() -> None:
    assert parse_cmdline(b"/tmp/xmrig\0-o\0a b\0") == ("/tmp/xmrig", "-o", "a b")
    assert parse_cmdline(b"") == ()
    assert parse_cmdline(b"\xff\0") == ("\\xff",)


def test_falco_style_and_walkthrough_style_cmdlines() -> None:
    assert cmdline_matches("xmrig -o pool.example.com:3333 -u wallet_address -p x", ARGV)
    assert cmdline_matches("/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x", ARGV)
    assert not cmdline_matches("xmrig -o other:3333 -u wallet_address -p x", ARGV)
    assert not cmdline_matches("xmrig", ARGV)


def test_sidekick_truncated_cmdline_matches_prefix() -> None:
    assert cmdline_matches("xmrig -o pool.example.com:3333 -u wal[...]", ARGV)
    assert not cmdline_matches("xmrig -o pool.other:3333[...]", ARGV)


def test_long_name_cut_to_15() -> None:
    argv = ("/usr/bin/a-very-long-miner-name", "--x")
    status = ProcStatus(name="a-very-long-min")
    assert (
        process_match(Process(name="a-very-long-min", cmdline="a-very-long-min --x"), status, argv)
        == Match.STRONG
    )


def test_match_levels() -> None:
    status = ProcStatus(name="xmrig")
    assert (
        process_match(Process(name="xmrig", cmdline=" ".join(ARGV)), status, ARGV) == Match.STRONG
    )
    assert process_match(Process(name="xmrig"), status, ARGV) == Match.WEAK
    assert process_match(Process(name="nginx"), status, ARGV) == Match.NONE
    assert process_match(Process(pid=3), status, ARGV) == Match.UNKNOWN
    assert process_match(Process(name="xmrig", cmdline="xmrig -o x"), status, ARGV) == Match.NONE


def test_valid_pid() -> None:
    assert valid_pid(12345) == 12345
    assert valid_pid("77") == 77
    for bad in (0, -1, True, "1;rm -rf /", "0x10", 10**12, None, 1.5, "../1"):
        assert valid_pid(bad) is None


def test_container_ids() -> None:
    full = "a" * 64
    assert normalize_container_id(f"containerd://{full}") == full
    assert normalize_container_id("ABCDEF012345") == "abcdef012345"
    assert normalize_container_id("host") is None
    assert normalize_container_id("<NA>") is None
    assert normalize_container_id("abc") is None
    assert split_container_id(f"cri-o://{full}") == (full, "cri-o")


@given(st.text(max_size=400))
def test_status_never_crashes(text: str) -> None:
    parse_status(text)


@given(st.binary(max_size=400), st.text(max_size=80))
def test_match_never_crashes(data: bytes, cmd: str) -> None:
    argv = parse_cmdline(data)
    process_match(Process(name=cmd[:5] or None, cmdline=cmd or None), ProcStatus(), argv)
