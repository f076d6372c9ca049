"""End to end on the lab: the miner Deployment, its pool, the real CLI as a subprocess.

Enforcement on (the session lab) and off (a lab of its own), the restricted identity,
detaching, release, owner-aware delete, and API faults during quarantine.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.lab import Lab, falcoir_env, start_lab

pytestmark = [pytest.mark.lab, pytest.mark.root, pytest.mark.slow]

LABEL = "falcoir.io/quarantine"
POOL = "pool.example.com:3333"
MINER_CMD = (
    "cp /opt/payload/xmrig /tmp/xmrig && chmod +x /tmp/xmrig && "
    "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x"
)


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    from falcoir.lab.linux import can_isolate

    if os.geteuid() != 0 or not can_isolate()[0]:
        pytest.skip("needs root for the lab's isolated pods and NetworkPolicy enforcement")
    from falcoir.lab.assets import compile_c

    d = tmp_path_factory.mktemp("payload")
    if compile_c("xmrig", d) is None:
        pytest.skip("no C compiler for the xmrig stand-in")
    return d


def falcoir(
    lab: Lab, home: Path, *args: str, context: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "falcoir", *args, "--kubeconfig", str(lab.kubeconfig)]
    if context:
        argv += ["--context", context]
    env = falcoir_env(FALCOIR_HOME=str(home))
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def deploy_miner(lab: Lab, ns: str, payload: Path, replicas: int = 2) -> list[dict[str, Any]]:
    lab.client.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "cryptominer-demo", "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "cryptominer"}},
                "template": {
                    "metadata": {"labels": {"app": "cryptominer"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "miner",
                                "image": "ubuntu:latest",
                                "command": ["/bin/sh", "-c", MINER_CMD],
                                "volumeMounts": [
                                    {"name": "payload", "mountPath": "/opt/payload",
                                     "readOnly": True}
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "payload",
                             "hostPath": {"path": str(payload), "type": "Directory"}}
                        ],
                    },
                },
            },
        }
    )  # fmt: skip
    from falcoir.errors import LabError

    try:
        return lab.client.wait_until(lambda: running(lab, ns, replicas), timeout=90)  # type: ignore[no-any-return]
    except LabError:
        states = [
            (p["metadata"]["name"], json.dumps(p.get("status"))[:600])
            for p in lab.client.list("pods", ns)
        ]
        events = lab.kubectl("-n", ns, "get", "events").stdout[-2000:]
        pytest.fail(f"the miner pods did not start: {states}\n{events}")


def running(lab: Lab, ns: str, count: int, selector: str = "app=cryptominer") -> list[Any] | None:
    pods = [
        p
        for p in lab.client.list("pods", ns, label_selector=selector)
        if (p.get("status") or {}).get("phase") == "Running"
        and (p.get("status") or {}).get("podIP")
        and not p["metadata"].get("deletionTimestamp")
    ]
    return pods if len(pods) == count else None


def pool_messages(lab: Lab, ip: str) -> int:
    from falcoir.lab.linux.pool import read_records

    return sum(
        1
        for r in read_records(lab.state_dir)
        if r.get("event") == "message" and str(r.get("peer", "")).startswith(ip + ":")
    )


def hears_from(lab: Lab, ip: str, seconds: float = 2.5) -> bool:
    before = pool_messages(lab, ip)
    time.sleep(seconds)
    return pool_messages(lab, ip) > before


@pytest.fixture
def ns(lab: Lab) -> Iterator[str]:
    name = f"c-{secrets.token_hex(4)}"
    lab.client.create("namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):  # best-effort clean-up
            lab.client.delete("namespaces", name)


def test_quarantine_cuts_the_miner_off_and_release_restores(
    lab: Lab, ns: str, payload: Path, tmp_path: Path
) -> None:
    pods = deploy_miner(lab, ns, payload)
    target, other = pods[0], pods[1]
    name, ip = target["metadata"]["name"], target["status"]["podIP"]
    other_ip = other["status"]["podIP"]
    lab.client.wait_until(lambda: pool_messages(lab, ip) >= 2, timeout=30)

    started = time.monotonic()
    res = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--probe", POOL,
                  "--yes", "-o", "json")  # fmt: skip
    elapsed = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    inc = doc["incident"]
    assert doc["verified"]["egress_blocked"] is True
    assert doc["verified"]["probe"]["before"]["connected"] is True
    assert doc["verified"]["probe"]["after"]["connected"] is False
    assert doc["label"] == {"key": LABEL, "value": inc, "status": "applied"}
    assert doc["dry_run"] is False
    print(f"quarantine took {elapsed:.2f}s (including process start and the 3 s probe)")

    # the pool stops hearing from the miner; the other replica keeps mining
    assert not hears_from(lab, ip), "the pool still hears from the quarantined miner"
    assert hears_from(lab, other_ip), "the other replica was cut off too"

    # only that pod carries the label; the policy is exactly the documented shape
    labelled = lab.client.list("pods", ns, label_selector=f"{LABEL}={inc}")
    assert [p["metadata"]["name"] for p in labelled] == [name]
    pol = lab.client.get("networking.k8s.io/v1/networkpolicies", f"falcoir-quarantine-{inc}", ns)
    assert pol["spec"] == {"podSelector": {"matchLabels": {LABEL: inc}}, "policyTypes": ["Egress"]}
    assert pol["metadata"]["labels"] == {LABEL: inc, "app.kubernetes.io/managed-by": "falcoir"}
    assert pol["metadata"]["annotations"]["falcoir.io/incident"] == inc

    # and the real kubectl sees the same
    kc = lab.kubectl("-n", ns, "get", "pods", "-l", f"{LABEL}={inc}", "-o", "name")
    assert kc.returncode == 0 and kc.stdout.split() == [f"pod/{name}"], kc.stderr
    kc = lab.kubectl("-n", ns, "get", "networkpolicy", f"falcoir-quarantine-{inc}", "-o", "json")
    assert kc.returncode == 0 and json.loads(kc.stdout)["spec"] == pol["spec"], kc.stderr

    # a second run changes nothing and says so
    again = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--probe", POOL,
                    "--yes", "-o", "json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    doc2 = json.loads(again.stdout)
    assert doc2["changed"] is False and doc2["incident"] == inc
    assert doc2["policy"]["status"] == "unchanged" and doc2["label"]["status"] == "unchanged"

    # the action log has every change
    actions = [
        json.loads(line)
        for line in (tmp_path / "incidents" / inc / "actions.jsonl").read_text().splitlines()
    ]
    assert [(a["action"], a["kind"], a["outcome"]) for a in actions][:2] == [
        ("create", "NetworkPolicy", "ok"),
        ("patch", "Pod", "ok"),
    ]

    # release restores what was there
    rel = falcoir(lab, tmp_path, "release", "--incident", inc, "--yes", "-o", "json")
    assert rel.returncode == 0, rel.stderr
    assert json.loads(rel.stdout)["deleted_policies"] == [f"falcoir-quarantine-{inc}"]
    assert lab.client.list("networking.k8s.io/v1/networkpolicies", ns) == []
    labels = lab.client.get("pods", name, ns)["metadata"]["labels"]
    assert labels == {k: v for k, v in target["metadata"]["labels"].items() if k != LABEL}
    lab.client.wait_until(lambda: hears_from(lab, ip, 1.0), timeout=40)


def test_detach_from_owner(lab: Lab, ns: str, payload: Path, tmp_path: Path) -> None:
    pods = deploy_miner(lab, ns, payload, replicas=1)
    name = pods[0]["metadata"]["name"]
    res = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--probe", POOL,
                  "--detach-from-owner", "--yes", "-o", "json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["detach"]["released"] is True
    assert doc["verified"]["egress_blocked"] is True
    pod = lab.client.get("pods", name, ns)
    assert not pod["metadata"].get("ownerReferences")
    assert pod["status"]["phase"] == "Running"
    replacement = lab.client.wait_until(lambda: running(lab, ns, 1), timeout=30)
    assert replacement[0]["metadata"]["name"] != name
    labelled = lab.client.list("pods", ns, label_selector=f"{LABEL}={doc['incident']}")
    assert [p["metadata"]["name"] for p in labelled] == [name]


def test_delete_is_owner_aware(lab: Lab, ns: str, payload: Path, tmp_path: Path) -> None:
    pods = deploy_miner(lab, ns, payload, replicas=1)
    name = pods[0]["metadata"]["name"]
    refused = falcoir(lab, tmp_path, "delete", "--pod", f"{ns}/{name}", "--yes")
    assert refused.returncode == 2 and "no evidence bundle" in refused.stderr
    assert lab.client.get("pods", name, ns)["metadata"].get("deletionTimestamp") is None

    res = falcoir(lab, tmp_path, "delete", "--pod", f"{ns}/{name}", "--force", "--yes",
                  "--grace-period", "0", "-o", "json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "will recreate it" in res.stderr
    assert json.loads(res.stdout)["plan"]["recreates"] is True
    new = lab.client.wait_until(
        lambda: [p for p in (running(lab, ns, 1) or []) if p["metadata"]["name"] != name],
        timeout=30,
    )
    new_name = new[0]["metadata"]["name"]

    res = falcoir(lab, tmp_path, "delete", "--pod", f"{ns}/{new_name}", "--force",
                  "--scale-owner", "--yes", "-o", "json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["scaled"]["to"] == 0
    dep = lab.client.get("apps/v1/deployments", "cryptominer-demo", ns)
    assert dep["spec"]["replicas"] == 0
    lab.client.wait_until(
        lambda: (
            not [
                p for p in lab.client.list("pods", ns) if not p["metadata"].get("deletionTimestamp")
            ]
        ),
        timeout=30,
    )


def test_restricted_identity_changes_nothing(
    lab: Lab, ns: str, payload: Path, tmp_path: Path
) -> None:
    pods = deploy_miner(lab, ns, payload, replicas=1)
    name = pods[0]["metadata"]["name"]
    res = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--yes",
                  context="falcoir-lab-restricted")  # fmt: skip
    assert res.returncode == 4, res.stderr
    for perm in (
        f"create networkpolicies.networking.k8s.io -n {ns}",
        f"patch pods -n {ns}",
        f"create pods/exec -n {ns}",
    ):
        assert perm in res.stderr
    res = falcoir(lab, tmp_path, "delete", "--pod", f"{ns}/{name}", "--yes", "--force",
                  "--scale-owner", context="falcoir-lab-restricted")  # fmt: skip
    assert res.returncode == 4
    assert f"delete pods -n {ns}" in res.stderr
    assert f"patch deployments.apps/scale -n {ns}" in res.stderr
    assert lab.client.list("networking.k8s.io/v1/networkpolicies", ns) == []
    pod = lab.client.get("pods", name, ns)
    assert LABEL not in pod["metadata"]["labels"] and not pod["metadata"].get("deletionTimestamp")


def test_faults_during_quarantine_are_retried_or_reported(
    lab: Lab, ns: str, payload: Path, tmp_path: Path
) -> None:
    pods = deploy_miner(lab, ns, payload, replicas=1)
    name = pods[0]["metadata"]["name"]
    lab.set_faults(rate_429=0.2, rate_500=0.1, rate_drop=0.05)
    try:
        res = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--probe", POOL,
                      "--yes", "-o", "json")  # fmt: skip
    finally:
        lab.clear_faults()
    pols = lab.client.list("networking.k8s.io/v1/networkpolicies", ns)
    labels = lab.client.get("pods", name, ns)["metadata"]["labels"]
    print(f"under faults: exit {res.returncode}; {res.stderr.strip().splitlines()[-1:]}")
    if res.returncode == 0:
        doc = json.loads(res.stdout)
        assert [p["metadata"]["name"] for p in pols] == [doc["policy"]["name"]]
        assert labels.get(LABEL) == doc["incident"]
    else:
        # never a half-applied state left unreported
        if pols and LABEL not in labels:
            assert "half-applied" in res.stderr, res.stderr
    # whatever happened, a clean re-run converges
    res = falcoir(lab, tmp_path, "quarantine", "--pod", f"{ns}/{name}", "--probe", POOL,
                  "--yes", "-o", "json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["verified"]["egress_blocked"] is True


def test_enforcement_off_is_reported(payload: Path, tmp_path: Path) -> None:
    """The walkthrough on a lab that enforces nothing (the flannel case): the policy is
    applied, the probe still connects, exit 1 and ``egress_blocked: false``."""
    from falcoir.lab.scenario import play_cryptominer

    with start_lab("--no-enforce-network-policy") as lab:
        sc = play_cryptominer(lab.client, lab.state_dir)
        ip = lab.client.get("pods", sc.pod, sc.namespace)["status"]["podIP"]
        lab.client.wait_until(lambda: pool_messages(lab, ip) >= 1, timeout=30)
        alert_file = tmp_path / "alert.txt"
        alert_file.write_text(sc.alert_text + "\n")
        res = falcoir(lab, tmp_path, "quarantine", "-f", str(alert_file), "--yes", "-o", "json")
        assert res.returncode == 1, res.stderr
        doc = json.loads(res.stdout)
        assert doc["pod"] == sc.pod
        assert doc["verified"]["egress_blocked"] is False
        assert doc["verified"]["probe"]["after"]["connected"] is True
        assert doc["policy"]["status"] == "created" and doc["label"]["status"] == "applied"
        assert "does not enforce" in res.stderr and "NOT contained" in res.stderr
        assert hears_from(lab, ip), "without enforcement the miner keeps talking"


def test_walkthrough_alert_to_quarantine(fresh_cryptominer: Any, lab: Lab, tmp_path: Path) -> None:
    """The scenario's own alert line (host pid only, no k8s fields): located, cut off, and
    the endpoint to probe taken from the miner's command line."""
    sc = fresh_cryptominer
    pod = lab.client.get("pods", sc.pod, sc.namespace)
    ip = pod["status"]["podIP"]
    lab.client.wait_until(lambda: pool_messages(lab, ip) >= 1, timeout=30)
    alert_file = tmp_path / "alert.txt"
    alert_file.write_text(sc.alert_text + "\n")
    res = falcoir(lab, tmp_path, "quarantine", "-f", str(alert_file), "--yes", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["pod"] == sc.pod and doc["namespace"] == sc.namespace
    assert doc["verified"]["probe"]["endpoint"] == {
        "host": "pool.example.com",
        "port": 3333,
        "source": "alert.cmdline",
    }
    assert doc["verified"]["egress_blocked"] is True
    assert not hears_from(lab, ip), "the pool still hears from the miner"
