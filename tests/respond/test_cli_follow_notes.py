"""respond --follow: its notes on stderr (cannot locate ...) carry alert text, so they
are neutralised like every other line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.core.incident import IncidentStore
from falcoir.errors import TargetNotFound

from .fake_backend import FakeBackend


def test_follow_note_with_hostile_rule_is_neutralised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeBackend(fail={"locate": TargetNotFound("no pod runs that process")})
    store = IncidentStore(tmp_path / "home")

    def make(*_a: Any, **_k: Any) -> tuple[FakeBackend, IncidentStore]:
        return fake, store

    monkeypatch.setattr("falcoir.cli.respond._backend", make)
    rule = "[bold red]miner[/bold red]\x1b]0;owned\x07"
    alert = {
        "time": "2024-01-01T00:00:00Z",
        "priority": "Critical",
        "rule": rule,
        "output": "08:30:00.123 Critical miner (proc.name=xmrig proc.pid=12345)",
        "output_fields": {"proc.name": "xmrig", "proc.pid": 12345},
    }
    res = CliRunner().invoke(
        app,
        ["respond", "--follow", "-f", "-", "--out", str(tmp_path / "out")],
        input=json.dumps(alert) + "\n",
    )
    assert "cannot locate" in res.stderr, res.stderr
    assert "\x1b]0;owned" not in res.stderr
    assert "[bold red]miner[/bold red]\\x1b]0;owned\\x07" in res.stderr
