"""`falcoir collect` and `falcoir bundle verify|show` through the CLI: stdout, stderr and
exit codes apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from falcoir.cli import common
from falcoir.cli.app import app
from tests.collect.support import NS, POD, ScriptedCluster
from tests.collect.test_collect_scripted import XMRIG, cluster_with, miner_container

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FALCOIR_HOME", str(tmp_path / "home"))
    return tmp_path


def use(monkeypatch: pytest.MonkeyPatch, cluster: ScriptedCluster) -> None:
    monkeypatch.setattr(common, "connect", lambda kubeconfig, context: cluster)


def test_collect_pod_json(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, cluster_with(miner_container()))
    out = home / "ev"
    r = runner.invoke(app, ["collect", "--pod", f"{NS}/{POD}", "--out", str(out), "-o", "json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["complete"] is True and doc["incident"].startswith("inc-")
    assert Path(doc["bundle"]).is_dir() and Path(doc["archive"]).is_file()
    assert Path(doc["bundle"]).parent == out.resolve()
    names = {a["name"] for a in doc["artifacts"]}
    assert {"processes/ps.txt", "network/connections.json", "api/pod.yaml"} <= names
    for a in doc["artifacts"]:
        assert {"name", "path", "sha256", "bytes", "exit_code", "status"} <= set(a)
    # no progress display and no summary with -o json
    assert "collector" not in r.stderr and "⠋" not in r.stderr
    # the incident store knows the bundle (so delete can see evidence was saved)
    inc = json.loads((home / "home/incidents" / doc["incident"] / "incident.json").read_text())
    assert inc["bundles"] == [doc["bundle"]]

    v = runner.invoke(app, ["bundle", "verify", doc["archive"]])
    assert v.exit_code == 0, v.stderr
    assert "OK" in v.stderr
    s = runner.invoke(app, ["bundle", "show", doc["bundle"]])
    assert s.exit_code == 0
    assert "processes/ps.txt" in s.stderr and "complete" in s.stderr
    a = runner.invoke(app, ["bundle", "show", doc["archive"], "-o", "json"])
    assert a.exit_code == 0, a.stderr
    shown = json.loads(a.stdout)
    assert shown["verified"] is True and shown["incident"] == doc["incident"]
    # what collect reported, plus the located target written when the bundle was opened
    names = {x["name"] for x in doc["artifacts"]} | {"target.json"}
    assert {x["name"] for x in shown["artifacts"]} == names


def test_collect_from_a_json_alert_human_summary(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, cluster_with(miner_container()))
    alert = {
        "time": "2026-11-28T08:30:00.123456789Z",
        "priority": "Critical",
        "rule": "Suspicious crypto miner process",
        "output": "Suspicious crypto miner process (name=xmrig)",
        "output_fields": {
            "k8s.ns.name": NS,
            "k8s.pod.name": POD,
            "container.name": "miner",
            "proc.name": "xmrig",
            "proc.cmdline": "xmrig -o pool.example.com:3333 -u wallet_address -p x",
            "proc.exepath": "/tmp/xmrig",
        },
    }
    f = home / "alert.json"
    f.write_text(json.dumps(alert))
    r = runner.invoke(app, ["collect", "-f", str(f), "--out", str(home / "ev")])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "complete" in r.stderr and "binary" in r.stderr
    assert "10.96.0.9:3333" in r.stderr  # the pool connection, mapped to xmrig
    bundle = next(p for p in (home / "ev").iterdir() if p.is_dir())
    assert json.loads((bundle / "data/target.json").read_text())["pod"] == POD
    assert (bundle / "data/alert.txt").read_text() == json.dumps(alert)
    import hashlib

    assert hashlib.sha256(XMRIG).hexdigest() in r.stderr


def test_collect_incomplete_exits_7_and_still_writes(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, cluster_with(miner_container(tools=set())))
    r = runner.invoke(app, ["collect", "--pod", f"{NS}/{POD}", "--out", str(home), "-o", "json"])
    assert r.exit_code == 7, r.stderr
    doc = json.loads(r.stdout)
    assert doc["complete"] is False and Path(doc["archive"]).is_file()
    assert "evidence incomplete" in r.stderr and "processes" in r.stderr
    assert any("--ephemeral-debug" in n for n in doc["notes"])


def test_collect_usage_errors(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, cluster_with(miner_container()))
    r = runner.invoke(app, ["collect", "--pod", "a/b/c"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["collect"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["collect", "--pod", f"{NS}/nope", "--out", str(home)])
    assert r.exit_code == 5


def test_verify_reports_each_bad_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, cluster_with(miner_container()))
    r = runner.invoke(app, ["collect", "--pod", f"{NS}/{POD}", "--out", str(home), "-o", "json"])
    doc = json.loads(r.stdout)
    bundle = Path(doc["bundle"])
    for rel in ("data/processes/ps.txt", "data/api/pod.yaml"):
        p = bundle / rel
        p.chmod(0o644)
        data = bytearray(p.read_bytes())
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))
    v = runner.invoke(app, ["bundle", "verify", str(bundle), "-o", "json"])
    assert v.exit_code == 1
    rep = json.loads(v.stdout)
    assert rep["ok"] is False
    assert {(p["path"], p["kind"]) for p in rep["problems"]} == {
        ("data/processes/ps.txt", "checksum-mismatch"),
        ("data/api/pod.yaml", "checksum-mismatch"),
    }
    h = runner.invoke(app, ["bundle", "verify", str(bundle)])
    assert h.exit_code == 1 and "data/api/pod.yaml" in h.stderr
    assert runner.invoke(app, ["bundle", "verify", str(home / "missing")]).exit_code == 2


def test_show_neutralises_hostile_text(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, cluster_with(miner_container()))
    evil = "08:30:00.123 - Critical - x (name=\x1b[2J[bold]boom[/], pid=1)"
    r = runner.invoke(
        app, ["collect", evil, "--pod", f"{NS}/{POD}", "--out", str(home), "-o", "json"]
    )
    assert r.exit_code in (0, 7), r.stderr
    s = runner.invoke(app, ["bundle", "show", json.loads(r.stdout)["bundle"]])
    assert s.exit_code == 0
    assert "\x1b" not in s.stderr
    assert "\\x1b[2J[bold]boom[/]" in s.stderr


class _Tty:
    """Stands for ``sys`` in falcoir.cli.collect with a terminal on stderr."""

    class stderr:  # mirrors sys.stderr
        @staticmethod
        def isatty() -> bool:
            return True


def test_live_progress_only_on_a_terminal_and_never_with_json(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import falcoir.cli.collect as collect_cli

    use(monkeypatch, cluster_with(miner_container()))
    monkeypatch.setattr(collect_cli, "sys", _Tty)
    r = runner.invoke(app, ["collect", "--pod", f"{NS}/{POD}", "--out", str(home)])
    assert r.exit_code == 0, r.stderr
    assert "✓" in r.stderr and "processes" in r.stderr  # the live lines
    assert r.stdout == ""
    j = runner.invoke(app, ["collect", "--pod", f"{NS}/{POD}", "--out", str(home), "-o", "json"])
    assert j.exit_code == 0
    assert "✓" not in j.stderr and "running" not in j.stderr
    assert json.loads(j.stdout)["complete"] is True


def test_fast_exit_flushes_and_runs_exit_handlers(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from falcoir.cli.common import exit_now

    exit_now()  # under pytest: a no-op (this test is still running)
    flag = tmp_path / "handler-ran"
    code = (
        "import atexit, sys\n"
        "sys.argv[0] = 'falcoir'\n"
        f"atexit.register(lambda: open({str(flag)!r}, 'w').write('ran'))\n"
        "sys.stdout.write('{\"complete\": true}')\n"
        "from falcoir.cli.common import exit_now\n"
        "exit_now()\n"
        "print('not reached')\n"
    )
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"complete": true}'
    assert flag.read_text() == "ran"
