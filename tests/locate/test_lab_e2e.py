"""End to end on the lab's cryptominer scenario: the real KubeGateway, real processes
in their own pid namespaces and kubelet-named cgroups, the Falco pod's /host/proc.

``falcoir locate`` runs as a subprocess on the walkthrough's text alert (pid only), on
Falco's JSON alert by container id and by k8s fields, and on ``--pod``: each gives the
same pod, container ``miner``, the pid inside the container (NSpid) and the owner chain
ReplicaSet -> Deployment ``cryptominer-demo``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.lab, pytest.mark.root]

NA = "<NA>"


def falcoir(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def _kc(lab: Any) -> str:
    return str(lab.kubeconfig)


def _json_alert(scenario: Any, **fields: Any) -> str:
    doc = json.loads(json.dumps(scenario.alert_json))
    doc["output_fields"].update(fields)
    return json.dumps(doc)


def _locate(lab: Any, *args: str) -> dict[str, Any]:
    res = falcoir("locate", "--kubeconfig", _kc(lab), "-o", "json", *args)
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def _check(scenario: Any, doc: dict[str, Any], method: str) -> None:
    assert doc["method"] == method
    assert (doc["namespace"], doc["pod"], doc["container"]) == (
        scenario.namespace,
        scenario.pod,
        "miner",
    )
    assert doc["node"] == scenario.node == "lab-node"
    assert doc["pod_uid"] == scenario.pod_uid
    assert f"{doc['container_runtime']}://{doc['container_id']}" == scenario.container_id
    assert doc["vpid"] == scenario.vpid
    assert scenario.vpid != scenario.host_pid  # really inside a pid namespace
    kinds = [(o["kind"], o["name"]) for o in doc["owner"]]
    assert kinds[0][0] == "ReplicaSet" and kinds[0][1].startswith("cryptominer-demo-")
    assert kinds[1:] == [("Deployment", "cryptominer-demo")]


def test_walkthrough_text_alert_pid_only(lab: Any, cryptominer: Any) -> None:
    assert "pid=" in cryptominer.alert_text and "hostname" not in cryptominer.alert_text
    res = falcoir("locate", "--kubeconfig", _kc(lab), "-o", "json", cryptominer.alert_text)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    _check(cryptominer, doc, "host-pid")
    assert doc["host_pid"] == cryptominer.host_pid
    assert "runs xmrig" in res.stderr  # the node was found by asking the Falco pods


@pytest.mark.parametrize("full", [True, False])
def test_json_alert_by_container_id(lab: Any, cryptominer: Any, full: bool) -> None:
    fields: dict[str, Any] = {"k8s.ns.name": NA, "k8s.pod.name": NA, "k8s.pod.uid": NA}
    if not full:
        fields["container.full_id"] = NA  # Falco's 12-hex container.id only
    _check(cryptominer, _locate(lab, _json_alert(cryptominer, **fields)), "container-id")


def test_json_alert_by_k8s_fields(lab: Any, cryptominer: Any) -> None:
    fields = cryptominer.alert_json["output_fields"]
    assert fields.get("k8s.pod.name") == cryptominer.pod
    _check(cryptominer, _locate(lab, json.dumps(cryptominer.alert_json)), "k8s-fields")


def test_alert_file_from_falco_itself(lab: Any, cryptominer: Any) -> None:
    """The lines the Falco stand-in wrote, fed as they are (-f)."""
    last = cryptominer.alerts_jsonl.read_text().strip().splitlines()[-1]
    assert json.loads(last)["output_fields"]["proc.pid"]
    path = lab.state_dir / "locate-alert.json"
    path.write_text(json.dumps(cryptominer.alert_json) + "\n")
    _check(cryptominer, _locate(lab, "-f", str(path)), "k8s-fields")


def test_pod_flag_and_table(lab: Any, cryptominer: Any) -> None:
    ref = f"{cryptominer.namespace}/{cryptominer.pod}"
    res = falcoir("locate", "--kubeconfig", _kc(lab), "--pod", ref)
    assert res.returncode == 0, res.stderr
    assert ref in res.stdout
    assert "pod-flag" in res.stdout and "Deployment cryptominer-demo" in res.stdout


def test_scan_within_a_selector_finds_the_process_inside(lab: Any, cryptominer: Any) -> None:
    text = cryptominer.alert_text.replace(f", pid={cryptominer.host_pid}", "")
    assert "pid=" not in text
    doc = _locate(lab, "-n", cryptominer.namespace, "-l", "app=cryptominer", text)
    assert (doc["method"], doc["pod"], doc["container"]) == ("scan", cryptominer.pod, "miner")
    assert doc["vpid"] == cryptominer.vpid


def test_exited_process_is_not_found(lab: Any, cryptominer: Any) -> None:
    alert = _json_alert(
        cryptominer,
        **{
            "proc.pid": 4_000_000,
            "container.id": NA,
            "container.full_id": NA,
            "k8s.ns.name": NA,
            "k8s.pod.name": NA,
        },
    )
    res = falcoir("locate", "--kubeconfig", _kc(lab), alert)
    assert res.returncode == 5
    assert "no pid 4000000 on node lab-node" in res.stderr
    assert "hint:" in res.stderr


def test_forbidden_identity_names_the_permission(lab: Any, cryptominer: Any) -> None:
    res = falcoir("locate", "--kubeconfig", _kc(lab), "--context", "falcoir-lab-restricted",
                  cryptominer.alert_text)  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert "pods/exec -n falco" in res.stderr


def test_unreachable_cluster(lab: Any, tmp_path: Path) -> None:
    doc = json.loads(Path(_kc(lab)).read_text())
    for cl in doc["clusters"]:
        cl["cluster"]["server"] = "https://127.0.0.1:1"
    bad = tmp_path / "kubeconfig"
    bad.write_text(json.dumps(doc))
    res = falcoir("locate", "--kubeconfig", str(bad), "--pod", "default/x")
    assert res.returncode == 3
    assert "cannot reach" in res.stderr


def test_gone_pod_is_reported_with_its_replacement(lab: Any, fresh_cryptominer: Any) -> None:
    sc = fresh_cryptominer
    alert = json.dumps(sc.alert_json)
    lab.client.delete("pods", sc.pod, namespace=sc.namespace, grace_period=0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = [p["metadata"]["name"] for p in lab.client.list("pods", namespace=sc.namespace)]
        if sc.pod not in names and any(n.startswith("cryptominer-demo-") for n in names):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("no replacement pod")
    res = falcoir("locate", "--kubeconfig", _kc(lab), alert)
    assert res.returncode == 5, res.stderr
    assert "no longer exists" in res.stderr and "replaced it with" in res.stderr
    assert f"--pod {sc.namespace}/cryptominer-demo-" in res.stderr


def test_node_debug_pod_when_no_falco_pod_can_read(lab: Any, cryptominer: Any) -> None:
    alert = _json_alert(
        cryptominer,
        **{"container.id": NA, "container.full_id": NA, "k8s.ns.name": NA, "k8s.pod.name": NA},
    )
    nothing = ("--falco-selector", "app=no-such-falco")
    res = falcoir("locate", "--kubeconfig", _kc(lab), *nothing, alert)
    assert res.returncode == 5
    assert "--node-debug" in res.stderr
    res = falcoir("locate", "--kubeconfig", _kc(lab), "-o", "json", *nothing, "--node-debug",
                  "--debug-image", "busybox:1.36", alert)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    _check(cryptominer, doc, "host-pid")
    created = [n for n in doc["notes"] if n.startswith("created node debug pod default/")]
    deleted = [n for n in doc["notes"] if n.startswith("deleted node debug pod default/")]
    assert len(created) == 1 and len(deleted) == 1
    name = deleted[0].split("/")[1]
    still = [
        p
        for p in lab.client.list("pods", namespace="default")
        if p["metadata"]["name"] == name and not p["metadata"].get("deletionTimestamp")
    ]
    assert still == []  # deleted (or being deleted) before locate returned
