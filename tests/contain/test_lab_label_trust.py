"""On the lab: a Deployment whose template carries the quarantine label cannot evade
quarantine, and ``release --pod`` on a foreign label value fails cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.lab import Lab, falcoir_env

pytestmark = [pytest.mark.lab, pytest.mark.root, pytest.mark.slow]

LABEL = "falcoir.io/quarantine"
FORGED = "inc-20260101-000000-abcdef"
POOL = "pool.example.com:3333"


def falcoir(lab: Lab, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "falcoir", *args, "--kubeconfig", str(lab.kubeconfig)]
    env = falcoir_env(FALCOIR_HOME=str(home))
    env.pop("KUBECONFIG", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def deploy(lab: Lab, ns: str, name: str, label_value: str) -> dict[str, Any]:
    labels = {"app": name, LABEL: label_value}
    lab.client.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {"name": "main", "image": "ubuntu:latest",
                             "command": ["sleep", "infinity"]}
                        ]
                    },
                },
            },
        }
    )  # fmt: skip

    def ready() -> dict[str, Any] | None:
        pods = [
            p
            for p in lab.client.list("pods", ns, label_selector=f"app={name}")
            if (p.get("status") or {}).get("phase") == "Running"
        ]
        return pods[0] if pods else None

    return lab.client.wait_until(ready, timeout=60)  # type: ignore[no-any-return]


@pytest.fixture
def isolating() -> None:
    from falcoir.lab.linux import can_isolate

    if os.geteuid() != 0 or not can_isolate()[0]:
        pytest.skip("needs root for the lab's isolated pods and NetworkPolicy enforcement")


def test_template_label_does_not_evade_quarantine(
    isolating: None, lab: Lab, fresh_namespace: str, tmp_path: Path
) -> None:
    ns = fresh_namespace
    pod = deploy(lab, ns, "evade", FORGED)
    name = pod["metadata"]["name"]
    assert pod["metadata"]["labels"][LABEL] == FORGED

    res = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--probe", POOL,
                  "--yes", "-o", "json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    inc = doc["incident"]
    assert inc != FORGED
    assert doc["label"]["status"] == "applied"
    assert doc["verified"]["egress_blocked"] is True
    assert "backs it" in res.stderr
    assert lab.client.get("pods", name, ns)["metadata"]["labels"][LABEL] == inc
    actions = [
        json.loads(line)
        for line in (tmp_path / "incidents" / inc / "actions.jsonl").read_text().splitlines()
    ]
    replaced = [a for a in actions if a["kind"] == "Pod" and a["action"] == "patch"]
    assert replaced and replaced[0]["data"]["replaced_label"] == FORGED

    rel = falcoir(lab, tmp_path, "release", "--incident", inc, "--yes", "-o", "json")
    assert rel.returncode == 0, rel.stderr


def test_release_by_pod_with_a_foreign_label_value(
    lab: Lab, fresh_namespace: str, tmp_path: Path
) -> None:
    ns = fresh_namespace
    lab.client.create(
        "pods",
        {
            "metadata": {"name": "odd", "namespace": ns, "labels": {LABEL: "x"}},
            "spec": {"containers": [{"name": "main", "image": "ubuntu:latest",
                                     "command": ["sleep", "infinity"]}]},
        },
        ns,
    )  # fmt: skip
    res = falcoir(lab, tmp_path, "release", "--pod", f"{ns}/odd", "--yes", "-o", "json")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads(res.stdout)["changed"] is False


def test_respond_contains_a_pod_with_a_forged_label(
    isolating: None, lab: Lab, fresh_namespace: str, tmp_path: Path
) -> None:
    ns = fresh_namespace
    pod = deploy(lab, ns, "evade", FORGED)
    name = pod["metadata"]["name"]
    alert = {
        "output": "x",
        "priority": "Critical",
        "rule": "Drop and execute new binary in container",
        "time": "2026-11-28T15:00:00.000000000Z",
        "output_fields": {
            "k8s.ns.name": ns,
            "k8s.pod.name": name,
            "proc.name": "sleep",
            "proc.cmdline": "sleep infinity",
            "proc.exepath": "/usr/bin/sleep",
        },
    }
    res = falcoir(lab, tmp_path / "home", "respond", json.dumps(alert), "--yes", "--no-delete",
                  "-o", "json", "--out", str(tmp_path / "out"))  # fmt: skip
    assert res.returncode in (0, 7), res.stderr[-3000:]
    doc = json.loads(res.stdout)
    quar = doc["quarantine"]
    assert quar["label"]["value"] == doc["incident"] != FORGED
    assert lab.client.get("pods", name, ns)["metadata"]["labels"][LABEL] == doc["incident"]
    assert lab.client.get("networking.k8s.io/v1/networkpolicies", quar["policy"]["name"], ns)
