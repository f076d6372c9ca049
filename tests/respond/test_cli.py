"""`falcoir respond` through the CLI, with the fake backend: stdout, stderr, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.core.incident import IncidentStore
from falcoir.errors import ApiError, Forbidden

from .fake_backend import FakeBackend, make_target

ALERT = (
    "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)"
)


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeBackend:
    fake = FakeBackend()
    store = IncidentStore(tmp_path / "home")

    def make(*args: Any, **kwargs: Any) -> tuple[FakeBackend, IncidentStore]:
        return fake, store

    monkeypatch.setattr("falcoir.cli.respond._backend", make)
    return fake


def invoke(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["respond", *args], input=stdin)


def test_json_output_and_exit_0(backend: FakeBackend, tmp_path: Path) -> None:
    res = invoke(ALERT, "--yes", "-o", "json", "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    for key in ("incident", "locate", "collect", "quarantine", "delete", "timings"):
        assert key in doc
    assert doc["timings"]["clock"] in ("proc", "import")
    assert doc["timings"]["containment_s"] > 0
    assert "Plan" not in res.stderr and res.stderr.strip() == ""


@pytest.mark.parametrize(
    ("step", "exc", "code"),
    [
        ("quarantine", Forbidden("no", missing=["create networkpolicies -n default"]), 4),
        ("collect", ApiError("lab 500", status=500), 1),
    ],
)
def test_failed_step_exit_code_and_json(
    backend: FakeBackend, tmp_path: Path, step: str, exc: Exception, code: int
) -> None:
    backend.fail[step] = exc
    res = invoke(ALERT, "--yes", "-o", "json", "--out", str(tmp_path / "out"))
    assert res.exit_code == code
    doc = json.loads(res.stdout)
    assert doc["failed_step"] == step and doc["exit_code"] == code
    assert "error:" in res.stderr


def test_incomplete_evidence_exits_7(backend: FakeBackend, tmp_path: Path) -> None:
    backend.incomplete.add("collect")
    res = invoke(ALERT, "--yes", "-o", "json", "--out", str(tmp_path / "out"))
    assert res.exit_code == 7
    assert json.loads(res.stdout)["status"] == "incomplete"


def test_no_terminal_and_no_yes_refuses_before_any_change(
    backend: FakeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no stdin terminal and no controlling terminal either
    monkeypatch.setattr("falcoir.render.respond._terminal", lambda: False)
    res = invoke(ALERT, "--out", str(tmp_path / "out"))
    assert res.exit_code == 2
    assert "no terminal" in res.stderr
    assert "quarantine" not in backend.order()


def test_human_summary_on_stderr_only(backend: FakeBackend, tmp_path: Path) -> None:
    res = invoke(ALERT, "--yes", "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert "egress blocked (in-pod probe, untrusted)" in res.stderr  # the pod's own tools
    assert "Quarantine (verified)" in res.stderr


def test_hostile_pod_name_is_neutralised_on_the_terminal(
    backend: FakeBackend, tmp_path: Path
) -> None:
    backend.target = make_target(pod="evil\x1b[2J[bold]x[/bold]")
    res = invoke(ALERT, "--yes", "--out", str(tmp_path / "out"))
    assert "\x1b[2J" not in res.stderr
    assert "\\x1b[2J[bold]x[/bold]" in res.stderr


def test_policy_that_ignores_the_alert(backend: FakeBackend, tmp_path: Path) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text("version: 1\nrules:\n  - match: {priority: Emergency}\n    actions: [collect]\n")
    res = invoke(ALERT, "--yes", "--policy", str(pol), "-o", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["status"] == "ignored"
    assert backend.order() == []


def test_bad_policy_is_exit_2_with_line_numbers(backend: FakeBackend, tmp_path: Path) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text("version: 1\nrules:\n  - match: {prio: Critical}\n    actions: []\n")
    res = invoke(ALERT, "--policy", str(pol))
    assert res.exit_code == 2
    assert f"{pol}:3: match: unknown key 'prio'" in res.stderr


def test_follow_jsonl_one_line_per_incident_then_summary(
    backend: FakeBackend, tmp_path: Path
) -> None:
    stream = "\n".join([ALERT] * 5 + ["garbage line"]) + "\n"
    res = invoke("--follow", "-f", "-", "--yes", "-o", "jsonl", "--out", str(tmp_path / "out"),
                 stdin=stream)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["follow"]["alerts"] >= 1 and lines[0]["status"] == "ok"
    assert lines[1]["summary"]["incidents"] == 1
    assert lines[1]["summary"]["alerts"] == 5
    assert lines[1]["summary"]["parse_problems"] == 1


def test_follow_without_yes_only_plans(backend: FakeBackend, tmp_path: Path) -> None:
    res = invoke("--follow", "-f", "-", "-o", "json", "--out", str(tmp_path / "out"),
                 stdin=ALERT + "\n")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["incidents"][0]["status"] == "dry-run"
    assert backend.dry_runs == {"quarantine": True, "delete": True}


def test_an_unmapped_exception_still_names_the_step_on_stderr(
    backend: FakeBackend, tmp_path: Path
) -> None:
    backend.fail["collect"] = RuntimeError("boom \x1b[2J")
    res = invoke(ALERT, "--yes", "-o", "json", "--out", str(tmp_path / "out"))
    assert res.exit_code == 1
    assert json.loads(res.stdout)["failed_step"] == "collect"
    assert "step collect failed: RuntimeError: boom" in res.stderr
    assert "\x1b[2J" not in res.stderr
