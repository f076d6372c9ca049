"""`falcoir locate` through the CLI: stdout, stderr and exit codes apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from falcoir.cli import common
from falcoir.cli.app import app
from falcoir.errors import ClusterUnreachable
from tests.locate.world import World, cid, scenario

runner = CliRunner()
POD = "cryptominer-demo-7d9f8b6c5-abc12"
WALKTHROUGH = (
    "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)"
)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w, _ = scenario()
    monkeypatch.setattr(common, "connect", lambda kubeconfig, context: w)
    return w


def test_text_alert_json_output(world: World) -> None:
    result = runner.invoke(app, ["locate", WALKTHROUGH, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["method"] == "host-pid"
    assert (doc["namespace"], doc["pod"], doc["container"], doc["vpid"]) == (
        "default",
        POD,
        "miner",
        7,
    )
    assert [o["kind"] for o in doc["owner"]] == ["ReplicaSet", "Deployment"]
    for key in ("node", "pod_uid", "container_id"):
        assert doc[key]
    assert "locate:" in result.stderr and "asking 3 Falco pods" in result.stderr


def test_table_to_stdout_progress_to_stderr(world: World) -> None:
    result = runner.invoke(app, ["locate", WALKTHROUGH])
    assert result.exit_code == 0, result.stderr
    assert f"default/{POD}" in result.stdout
    assert "ReplicaSet cryptominer-demo-7d9f8b6c5 -> Deployment cryptominer-demo" in result.stdout
    assert "7 in the container, 12345 on the node" in result.stdout
    assert "locate:" not in result.stdout


def test_json_alert_from_file(world: World, tmp_path: Path) -> None:
    doc = {
        "output": "x",
        "priority": "Critical",
        "rule": "r",
        "time": "2026-01-01T00:00:00.000000000Z",
        "hostname": "lab-node",
        "output_fields": {
            "proc.name": "xmrig",
            "proc.pid": 12345,
            "container.id": cid("default" + POD + "miner")[:12],
            "k8s.ns.name": "<NA>",
            "k8s.pod.name": None,
        },
    }
    f = tmp_path / "alert.json"
    f.write_text(json.dumps(doc))
    result = runner.invoke(app, ["locate", "-f", str(f), "-o", "jsonl"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout.strip())
    assert out["method"] == "container-id" and out["vpid"] == 7


def test_pod_flag_yaml(world: World) -> None:
    result = runner.invoke(app, ["locate", "--pod", f"default/{POD}", "-o", "yaml"])
    assert result.exit_code == 0, result.stderr
    assert "method: pod-flag" in result.stdout
    assert "container: miner" in result.stdout


def test_bad_pod_flag_is_usage(world: World) -> None:
    result = runner.invoke(app, ["locate", "--pod", "a/b/c"])
    assert result.exit_code == 2
    assert "NAMESPACE/POD" in result.stderr


def test_not_found_exit_5_with_hint(world: World) -> None:
    result = runner.invoke(app, ["locate", WALKTHROUGH.replace("12345", "4242")])
    assert result.exit_code == 5
    assert result.stdout == ""
    assert "hint:" in result.stderr and "--node" in result.stderr


def test_ambiguous_exit_6_lists_candidates(world: World) -> None:
    result = runner.invoke(
        app,
        [
            "locate",
            WALKTHROUGH.replace(
                ", cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x", ""
            ),
        ],
    )
    assert result.exit_code == 6
    assert "node lab-node: xmrig" in result.stderr


def test_forbidden_exit_4(world: World) -> None:
    world.denied.add(("create", "pods/exec", None))
    result = runner.invoke(app, ["locate", WALKTHROUGH])
    assert result.exit_code == 4
    assert "create pods/exec -n falco" in result.stderr


def test_unreachable_exit_3(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(kubeconfig: str | None, context: str | None) -> World:
        raise ClusterUnreachable("cannot reach https://x:6443: connection refused")

    monkeypatch.setattr(common, "connect", down)
    result = runner.invoke(app, ["locate", WALKTHROUGH])
    assert result.exit_code == 3


def test_hostile_values_are_neutralised(world: World) -> None:
    pod = world.pod("default", "evil", "lab-node", ("c",))
    pod_obj = world.objects[("pods", "default", "evil")]
    pod_obj["spec"]["containers"][0]["image"] = "img\x1b[31mred"
    assert pod["metadata"]["name"] == "evil"
    result = runner.invoke(app, ["locate", "--pod", "default/evil"])
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "img\\x1b[31mred" in result.stdout


def test_pod_flag_with_the_alert_uses_it_for_the_container_and_pid(world: World) -> None:
    result = runner.invoke(app, ["locate", "--pod", f"default/{POD}", "-o", "json", WALKTHROUGH])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["method"], doc["container"], doc["vpid"]) == ("pod-flag", "miner", 7)


def test_sidekick_payload(world: World) -> None:
    doc = {
        "uuid": "0b5f",
        "output": "x",
        "priority": "Critical",
        "rule": "r",
        "time": "2026-01-01T00:00:00.1Z",
        "source": "syscall",
        "tags": [],
        "hostname": "lab-node",
        "output_fields": {
            "proc.name": "xmrig",
            "proc.pid": 12345,
            "container.id": cid("default" + POD + "miner")[:12],
        },
    }
    result = runner.invoke(app, ["locate", "-o", "json", json.dumps(doc)])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["method"] == "container-id"


def test_help_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys; from falcoir.cli.app import app; from typer.testing import CliRunner;"
        "r = CliRunner().invoke(app, ['locate', '--help']); assert r.exit_code == 0;"
        "assert 'kubernetes' not in sys.modules, 'kubernetes imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
