"""Every file in examples/ (but the alert corpus and rbac.yaml) runs against the lab."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from falcoir.core.parse import load_rules, parse_text
from tests.plugins.lab import Lab, falcoir_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FIELDS = ("proc.pid", "proc.vpid", "container.id", "k8s.ns.name", "k8s.pod.name", "hostname")


def test_every_example_is_covered() -> None:
    mine = sorted(
        p.name
        for p in EXAMPLES.iterdir()
        if p.is_file() and p.name != "rbac.yaml" and not p.name.startswith(".")
    )
    assert mine == [
        "cryptominer-demo.yaml",
        "falco-rules-cryptomining.yaml",
        "response-policy.yaml",
        "runbook.sh",
    ]


def test_falco_rules_output_carries_the_fields_falcoir_uses() -> None:
    path = EXAMPLES / "falco-rules-cryptomining.yaml"
    docs = yaml.safe_load(path.read_text())
    rules = [d for d in docs if "rule" in d]
    assert len(rules) == 3
    for rule in rules:
        for f in FIELDS[:5]:
            assert f"{f}=%{f}" in rule["output"], (rule["rule"], f)
    # Falco's text output of the first rule, as falcoir reads it with --rules
    out = " ".join(rules[0]["output"].split())
    values = {
        "proc.name": "xmrig",
        "proc.cmdline": "/tmp/xmrig -o pool.example.com:3333 -u w -p x",
        "proc.pid": "4242",
        "proc.vpid": "7",
        "proc.exepath": "/tmp/xmrig",
        "proc.cwd": "/",
        "proc.pname": "sh",
        "user.name": "root",
        "container.id": "0123456789ab",
        "container.name": "miner",
        "container.image.repository": "ubuntu",
        "k8s.ns.name": "default",
        "k8s.pod.name": "cryptominer-demo-x",
        "hostname": "lab-node",
    }
    line = "2026-11-28T08:30:00.123456789+0000: Critical " + re.sub(
        r"%([a-z0-9.]+)", lambda m: values[m.group(1)], out
    )
    alert = parse_text(line, rules=load_rules(path)).alerts[0]
    assert alert.rule == "Suspicious crypto miner process"
    assert (alert.k8s.namespace, alert.k8s.pod) == ("default", "cryptominer-demo-x")
    assert (alert.process.pid, alert.process.vpid) == (4242, 7)
    assert alert.container.id == "0123456789ab"


def run_falcoir(lab: Lab, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = falcoir_env(FALCOIR_HOME=str(home), KUBECONFIG=str(lab.kubeconfig))
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


@pytest.mark.lab
def test_walkthrough_deployment_runs_in_the_lab(lab: Lab, fresh_namespace: str) -> None:
    proc = lab.kubectl(
        "apply", "-n", fresh_namespace, "-f", str(EXAMPLES / "cryptominer-demo.yaml")
    )
    assert proc.returncode == 0, proc.stderr
    import time

    deadline = time.monotonic() + 60
    phase = None
    while time.monotonic() < deadline:
        pods = lab.client.list("pods", namespace=fresh_namespace, label_selector="app=cryptominer")
        phase = pods[0].get("status", {}).get("phase") if pods else None
        if phase == "Running":
            break
        time.sleep(0.3)
    assert phase == "Running"
    assert pods[0]["spec"]["containers"][0]["name"] == "miner"


@pytest.mark.lab
@pytest.mark.root
@pytest.mark.slow
def test_response_policy_with_follow_on_the_lab(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    sc = fresh_cryptominer
    noise = json.dumps(
        {
            "time": "2026-11-28T08:30:00Z",
            "priority": "Notice",
            "rule": "Read sensitive file untrusted",
            "output": "Sensitive file opened",
            "output_fields": {"k8s.ns.name": sc.namespace, "k8s.pod.name": "web-1"},
        }
    )
    stream = tmp_path / "alerts.log"
    stream.write_text("\n".join([sc.alert_text, json.dumps(sc.alert_json), noise] * 5) + "\n")
    proc = run_falcoir(lab, tmp_path / "home", "respond", "--follow", "-f", str(stream),
                       "--policy", str(EXAMPLES / "response-policy.yaml"), "--yes",
                       "--no-delete", "-o", "json", "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    summary = doc["summary"]
    assert summary["incidents"] == 1 and summary["alerts"] == 15
    assert summary["ignored"] == 5 and summary["duplicates"] == 9
    (inc,) = doc["incidents"]
    assert inc["policy_rule"] == "cryptominers"
    assert inc["quarantine"]["verified"]["egress_blocked"] is True
    assert inc["locate"]["pod"] == sc.pod


@pytest.mark.lab
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("jq") is None, reason="the runbook example needs jq")
def test_runbook_script_on_the_lab(lab: Lab, fresh_cryptominer: Any, tmp_path: Path) -> None:
    sc = fresh_cryptominer
    alert = tmp_path / "alert.txt"
    alert.write_text(sc.alert_text + "\n")
    env = falcoir_env(
        FALCOIR_HOME=str(tmp_path / "home"),
        KUBECONFIG=str(lab.kubeconfig),
        FALCOIR=f"{sys.executable} -m falcoir",
        RUNBOOK_NO_DELETE="1",
    )
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "runbook.sh"), str(alert), str(tmp_path / "evidence")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert f"pod:        {sc.namespace}/{sc.pod} (found by host-pid)" in proc.stdout
    assert "egress blocked = true" in proc.stdout
    assert re.search(r"evidence:   \S+\.tar\.gz sha256 [0-9a-f]{64}", proc.stdout)
    # and a restricted identity takes the runbook's exit-4 branch
    env["FALCOIR_CONTEXT"] = "falcoir-lab-restricted"
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "runbook.sh"), str(alert), str(tmp_path / "evidence")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert proc.returncode == 4
    assert "missing permissions" in proc.stderr or "forbidden" in proc.stderr
    assert os.access(EXAMPLES / "runbook.sh", os.X_OK)
