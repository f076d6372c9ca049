"""--follow on the lab: 1,000 alerts for 20 pods, with repeats and noise, plan only."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugins.lab import Lab, falcoir_env

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

POLICY = """\
version: 1
rules:
  - name: databases get evidence only
    match:
      rule: ["*miner*"]
      fields: {k8s.pod.name: "db-*"}
    actions: [collect]
  - name: miners
    match:
      rule: ["*miner*"]
      priority: ">= Critical"
    actions: [quarantine, collect, delete]
  - name: noise
    match: {}
    actions: []
"""


def alert(ns: str, pod: str, priority: str = "Critical", rule: str = "") -> str:
    return json.dumps(
        {
            "time": "2026-11-28T08:30:00.123456789Z",
            "priority": priority,
            "rule": rule or "Suspicious crypto miner process",
            "output": f"alert for {pod}",
            "output_fields": {"k8s.ns.name": ns, "k8s.pod.name": pod, "proc.name": "xmrig"},
            "tags": ["crypto-mining"],
        }
    )


def test_follow_1000_alerts_20_pods_plans_20_incidents(
    lab: Lab, fresh_namespace: str, tmp_path: Path
) -> None:
    ns = fresh_namespace
    names = [f"{'db' if i < 5 else 'web'}-{i:02d}" for i in range(20)]
    for name in names:
        lab.client.create(
            "pods",
            {
                "metadata": {"name": name, "namespace": ns, "labels": {"app": "victim"}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            },
            namespace=ns,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = lab.client.list("pods", namespace=ns)
        if sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running") == 20:
            break
        time.sleep(0.3)
    rnd = random.Random(42)
    lines = [alert(ns, n) for n in names]
    while len(lines) < 1000:
        roll = rnd.random()
        if roll < 0.75:
            lines.append(alert(ns, rnd.choice(names)))
        elif roll < 0.9:
            lines.append(alert(ns, rnd.choice(names), "Notice", "Read sensitive file untrusted"))
        else:
            lines.append("Sat Nov 28 08:30:00 2026: Falco internal: syscall event drop")
    rnd.shuffle(lines)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    env = falcoir_env(FALCOIR_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = str(ROOT)
    before = sorted(
        (p["metadata"]["name"], p["metadata"]["resourceVersion"])
        for p in lab.client.list("pods", namespace=ns)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "falcoir", "respond", "--follow", "-f", "-", "--policy",
         str(policy), "--kubeconfig", str(lab.kubeconfig), "--concurrency", "4",
         "-o", "json", "--out", str(tmp_path / "out")],
        input="\n".join(lines) + "\n", capture_output=True, text=True, env=env, timeout=300,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    summary = doc["summary"]
    assert summary["incidents"] == 20
    assert summary["failures"] == 0
    miner = sum(1 for ln in lines if "Suspicious crypto miner" in ln)
    assert summary["alerts"] == miner + sum(1 for ln in lines if "Read sensitive" in ln)
    assert summary["duplicates"] == miner - 20
    by_pod = {i["locate"]["pod"]: i for i in doc["incidents"]}
    assert sorted(by_pod) == sorted(names)
    for name, inc in by_pod.items():
        assert inc["status"] == "dry-run"
        if name.startswith("db-"):
            assert inc["actions"] == ["collect"] and inc["quarantine"] is None
        else:
            assert inc["actions"] == ["collect", "delete", "quarantine"]
            assert inc["quarantine"]["dry_run"] is True
    # plans only: nothing changed in the cluster, no evidence written
    after = sorted(
        (p["metadata"]["name"], p["metadata"]["resourceVersion"])
        for p in lab.client.list("pods", namespace=ns)
    )
    assert after == before
    assert lab.client.list("networkpolicies", namespace=ns) == []
    assert not (tmp_path / "out").exists()
