"""End to end against the lab: the real KubeGateway, real processes, real /proc.

A miner Deployment (``cryptominer-demo``, container ``miner``, a process whose comm is
``xmrig``) and a Falco-like pod (hostPID, the host's ``/proc`` at ``/host/proc``) are
created in a namespace of their own in the session lab; ``falcoir locate`` is then run
as a subprocess on the walkthrough's text alert (pid only), on Falco JSON alerts (by
container id, by k8s fields) and on ``--pod``: each gives the same pod, container
``miner``, the in-container pid read from the host's ``/proc/<pid>/status`` (NSpid)
and the owner chain ReplicaSet -> Deployment ``cryptominer-demo``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.lab, pytest.mark.root]

if os.geteuid() != 0:  # pragma: no cover - CI runs as root
    pytest.skip(
        "needs root: the lab isolates pods (pid namespaces, cgroups) only as root",
        allow_module_level=True,
    )


def falcoir(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@dataclass
class Miner:
    kubeconfig: str
    namespace: str
    pod: str
    host_pid: int
    vpid: int
    container_id: str
    cmdline: str
    marker: str

    def text_alert(self, pid: int | None = None) -> str:
        return (
            "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
            f"cmdline={self.cmdline}, pid={pid or self.host_pid})"
        )

    def json_alert(self, **fields: Any) -> str:
        out = {
            "proc.name": "xmrig",
            "proc.cmdline": self.cmdline,
            "proc.pid": self.host_pid,
            "container.id": "<NA>",
            "k8s.ns.name": "<NA>",
            "k8s.pod.name": "<NA>",
        }
        out.update(fields)
        return json.dumps(
            {
                "hostname": "lab-node",
                "output": "Suspicious crypto miner process",
                "output_fields": out,
                "priority": "Critical",
                "rule": "Suspicious crypto miner process",
                "source": "syscall",
                "tags": ["crypto-mining"],
                "time": "2026-11-28T08:30:00.123000000Z",
            }
        )


def _find_host_pid(marker: str) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/comm", "rb") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == b"xmrig" and marker.encode() in argv:
            return int(entry)
    return None


def _nspid(pid: int) -> list[int]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def _wait(what: str, fn: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def miner(lab: Any) -> Iterator[Miner]:
    if "Linux" not in lab.runtime:
        pytest.skip(f"the lab runs {lab.runtime}, not the isolating Linux runtime")
    ns = f"loc-{secrets.token_hex(4)}"
    marker = f"wallet-{ns}"
    c = lab.client
    c.create("namespaces", {"metadata": {"name": ns}})
    script = (
        "cp /bin/bash /tmp/xmrig && exec /tmp/xmrig -c 'sleep 3600; :' -o pool.example.com:3333 -u "
        + marker
        + " -p x"
    )
    c.create(
        "deployments",
        {
            "metadata": {"name": "cryptominer-demo", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "cryptominer"}},
                "template": {
                    "metadata": {"labels": {"app": "cryptominer"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "miner",
                                "image": "ubuntu:latest",
                                "command": ["/bin/sh", "-c", script],
                            }
                        ]
                    },
                },
            },
        },
        namespace=ns,
    )
    c.create(
        "pods",
        {
            "metadata": {
                "name": "falco-e2e",
                "namespace": ns,
                "labels": {
                    "app.kubernetes.io/name": "falco",
                    "app.kubernetes.io/instance": "falco",
                },
            },
            "spec": {
                "hostPID": True,
                "containers": [
                    {
                        "name": "falco",
                        "image": "falcosecurity/falco:0.41.0",
                        "command": ["sleep", "3600"],
                        "volumeMounts": [
                            {"name": "proc", "mountPath": "/host/proc", "readOnly": True}
                        ],
                    }
                ],
                "volumes": [{"name": "proc", "hostPath": {"path": "/proc"}}],
            },
        },
        namespace=ns,
    )
    try:

        def running() -> list[dict[str, Any]]:
            pods = c.list("pods", namespace=ns)
            ok = [
                p
                for p in pods
                if (p.get("status") or {}).get("phase") == "Running"
                and all(
                    "running" in (s.get("state") or {})
                    for s in p["status"].get("containerStatuses") or [{}]
                )
            ]
            return ok if len(ok) == 2 else []

        pods = _wait("the miner and falco pods", running)
        pod = next(p for p in pods if p["metadata"]["name"].startswith("cryptominer-demo-"))
        host_pid = _wait("the miner process", lambda: _find_host_pid(marker))
        nspid = _nspid(host_pid)
        with open(f"/proc/{host_pid}/cmdline", "rb") as f:
            cmdline = " ".join(a.decode() for a in f.read().split(b"\0") if a)
        yield Miner(
            kubeconfig=str(lab.kubeconfig),
            namespace=ns,
            pod=pod["metadata"]["name"],
            host_pid=host_pid,
            vpid=nspid[-1],
            container_id=pod["status"]["containerStatuses"][0]["containerID"].split("://")[1],
            cmdline=cmdline,
            marker=marker,
        )
    finally:
        with contextlib.suppress(Exception):
            c.delete("namespaces", ns)


def _locate(m: Miner, *args: str) -> dict[str, Any]:
    res = falcoir("locate", "--kubeconfig", m.kubeconfig, "-o", "json", *args)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _check(m: Miner, doc: dict[str, Any], method: str) -> None:
    assert doc["method"] == method
    assert (doc["namespace"], doc["pod"], doc["container"]) == (m.namespace, m.pod, "miner")
    assert doc["node"] == "lab-node"
    assert doc["container_id"] == m.container_id
    assert doc["vpid"] == m.vpid
    assert m.vpid != m.host_pid  # really inside a pid namespace
    assert [(o["kind"], o["name"].startswith("cryptominer-demo-")) for o in doc["owner"]] == [
        ("ReplicaSet", True),
        ("Deployment", False),
    ]
    assert doc["owner"][1]["name"] == "cryptominer-demo"


def test_walkthrough_text_alert_pid_only(miner: Miner) -> None:
    res = falcoir("locate", "--kubeconfig", miner.kubeconfig, "-o", "json", miner.text_alert())
    assert res.returncode == 0, res.stderr
    _check(miner, json.loads(res.stdout), "host-pid")
    assert doc_host_pid(res.stdout) == miner.host_pid
    assert "read through Falco pod" in res.stderr or "runs xmrig" in res.stderr


def doc_host_pid(stdout: str) -> int:
    return int(json.loads(stdout)["host_pid"])


def test_json_alert_by_container_id(miner: Miner) -> None:
    doc = _locate(miner, miner.json_alert(**{"container.id": miner.container_id[:12]}))
    _check(miner, doc, "container-id")


def test_json_alert_by_k8s_fields(miner: Miner) -> None:
    doc = _locate(
        miner,
        miner.json_alert(
            **{
                "k8s.ns.name": miner.namespace,
                "k8s.pod.name": miner.pod,
                "container.id": miner.container_id[:12],
            }
        ),
    )
    _check(miner, doc, "k8s-fields")


def test_pod_flag_and_table(miner: Miner) -> None:
    res = falcoir(
        "locate", "--kubeconfig", miner.kubeconfig, "--pod", f"{miner.namespace}/{miner.pod}"
    )
    assert res.returncode == 0, res.stderr
    assert f"{miner.namespace}/{miner.pod}" in res.stdout
    assert "pod-flag" in res.stdout and "Deployment cryptominer-demo" in res.stdout


def test_scan_within_a_namespace_finds_the_process_inside(miner: Miner) -> None:
    text = miner.text_alert().replace(f", pid={miner.host_pid}", "")
    res = falcoir("locate", "--kubeconfig", miner.kubeconfig, "-o", "json",
                  "-n", miner.namespace, "-l", "app=cryptominer", text)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["method"], doc["pod"], doc["container"]) == ("scan", miner.pod, "miner")
    assert doc["vpid"] == miner.vpid


def test_exited_process_is_not_found(miner: Miner) -> None:
    res = falcoir(
        "locate", "--kubeconfig", miner.kubeconfig, miner.json_alert(**{"proc.pid": 4_000_000})
    )
    assert res.returncode == 5
    assert "no pid 4000000 on node lab-node" in res.stderr


def test_forbidden_identity_names_the_permission(miner: Miner) -> None:
    res = falcoir(
        "locate",
        "--kubeconfig",
        miner.kubeconfig,
        "--context",
        "falcoir-lab-restricted",
        miner.text_alert(),
    )
    assert res.returncode == 4, res.stderr
    assert "pods/exec" in res.stderr


def test_unreachable_cluster(miner: Miner, tmp_path: Path) -> None:
    doc = json.loads(Path(miner.kubeconfig).read_text())
    for cl in doc["clusters"]:
        cl["cluster"]["server"] = "https://127.0.0.1:1"
    bad = tmp_path / "kubeconfig"
    bad.write_text(json.dumps(doc))
    res = falcoir("locate", "--kubeconfig", str(bad), "--pod", f"{miner.namespace}/x")
    assert res.returncode == 3
    assert "cannot reach" in res.stderr


def test_gone_pod_is_reported_with_its_replacement(miner: Miner, lab: Any) -> None:
    # last: it replaces the miner's pod
    alert = miner.json_alert(**{"k8s.ns.name": miner.namespace, "k8s.pod.name": miner.pod})
    lab.client.delete("pods", miner.pod, namespace=miner.namespace, grace_period=0)

    def replaced() -> bool:
        pods = lab.client.list("pods", namespace=miner.namespace)
        names = [p["metadata"]["name"] for p in pods]
        return miner.pod not in names and any(n.startswith("cryptominer-demo-") for n in names)

    _wait("the replacement pod", replaced)
    res = falcoir("locate", "--kubeconfig", miner.kubeconfig, alert)
    assert res.returncode == 5, res.stderr
    assert "no longer exists" in res.stderr and "replaced it with" in res.stderr
    assert f"--pod {miner.namespace}/cryptominer-demo-" in res.stderr
