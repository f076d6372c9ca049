"""Machine output of hostile alert text: valid JSON that a terminal cannot act on."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from falcoir.core.parse import ParseProblem, iter_parse
from falcoir.render.output import OutputFormat, to_json, write_machine

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "x\x9b31m\x85 \u202egnp.exe\u2066\u200f\x7f\u2028 ok é日本"


@pytest.mark.parametrize("fmt", [OutputFormat.JSON, OutputFormat.JSONL])
def test_c1_controls_and_bidi_are_escaped(fmt: OutputFormat) -> None:
    buf = io.StringIO()
    write_machine({"value": HOSTILE}, fmt, stream=buf)
    text = buf.getvalue()
    for ch in "\x9b\x85\u202e\u2066\u200f\x7f\u2028":
        assert ch not in text
    assert "\\u009b" in text and "\\u202e" in text
    assert "é日本" in text  # other non-ASCII text stays readable
    assert json.loads(text.splitlines()[0] if fmt is OutputFormat.JSONL else text) == {
        "value": HOSTILE
    }


def test_nan_and_infinity_are_never_written() -> None:
    with pytest.raises(ValueError):
        to_json({"n": float("nan")})
    with pytest.raises(ValueError):
        to_json({"n": float("inf")})


@pytest.mark.parametrize(
    "lines",
    [
        ['{"output_fields": {"proc.pid": 1e999}, "output": "x", "rule": "r"}'],
        ['{"output_fields": {"proc.pid": NaN}, "output": "x", "rule": "r"}'],
        ['{"output_fields": {"proc.pid": -Infinity}, "output": "x", "rule": "r"}'],
        ['  {"output_fields": {"proc.pid": Infinity}, "output": "x", "rule": "r"}'],
        ["{", '  "output_fields": {"proc.pid": NaN},', '  "rule": "r", "output": "x"', "}"],
    ],
)
def test_non_finite_numbers_in_an_alert_are_a_problem(lines: list[str]) -> None:
    items = list(iter_parse(lines))
    assert len(items) == 1
    (item,) = items
    assert isinstance(item, ParseProblem), item
    assert "invalid JSON" in item.reason


def test_a_full_alert_with_nan_is_not_recovered_from_its_output() -> None:
    line = json.dumps(
        {
            "output": "12:00:00.000000000: Critical Shell (user=root proc.pid=7)",
            "priority": "Critical",
            "rule": "Shell",
            "output_fields": {"proc.pid": 7, "evt.num": 1.5},
        }
    ).replace("1.5", "NaN")
    (item,) = list(iter_parse([line]))
    assert isinstance(item, ParseProblem), item


def test_parse_cli_json_has_no_raw_c1_or_infinity(tmp_path: Path) -> None:
    alert = {
        "output": "12:00:00.000000000: Critical x (proc_exepath=/tmp/\x9b31m)",
        "priority": "Critical",
        "rule": "r",
        "time": "2026-01-01T00:00:00.000000000Z",
        "output_fields": {"proc.exepath": "/tmp/\x9b31m", "proc.cmdline": "a \u202e gnp.exe"},
    }
    src = tmp_path / "a.json"
    src.write_text(json.dumps(alert) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for fmt in ("json", "jsonl"):
        proc = subprocess.run(
            [sys.executable, "-m", "falcoir", "parse", "-f", str(src), "-o", fmt],
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode("utf-8")
        assert "\x9b" not in out and "\u202e" not in out
        assert "\\u009b31m" in out
