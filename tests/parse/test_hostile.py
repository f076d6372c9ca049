"""Hostile alert lines: what an attacker who controls a field's text can do to the parser."""

from __future__ import annotations

import time

from falcoir.core.parse import parse_text


def test_long_value_ending_like_container_info_parses_in_linear_time() -> None:
    # Finding 5: "^(.*?)\s*(\S+ \(id=...\))$" backtracked quadratically on this value
    # (100 KB took 18.8 s); 60 KB took several seconds before the fix.
    line = (
        "12:00:00.000000000: Critical Drop and execute new binary (user=root "
        "proc.cmdline=" + "a" * 60_000 + "(id=x) container_id=abc)"
    )
    started = time.process_time()
    report = parse_text(line)
    elapsed = time.process_time() - started
    assert elapsed < 1.0, elapsed
    (alert,) = report.alerts
    assert alert.process.cmdline == "a" * 60_000 + "(id=x)"


def test_container_info_after_a_value_still_split() -> None:
    line = (
        "12:00:00.000000000: Notice Shell (user=root proc.cmdline=sh -c id web (id=3c1f0d9be2a4))"
    )
    (alert,) = parse_text(line).alerts
    assert alert.process.cmdline == "sh -c id"
    assert alert.container.name == "web"
    assert alert.container.id == "3c1f0d9be2a4"
