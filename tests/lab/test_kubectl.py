"""The lab driven by the real kubectl 1.32 (as a subprocess, with the lab's kubeconfig)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.plugins.lab import KUBECTL, Lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="needs /usr/bin/kubectl"),
]
DATA = Path(__file__).parent / "data"


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"kubectl failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout


def pods_json(lab: Lab, ns: str, *args: str) -> list[dict]:
    return json.loads(ok(lab.kubectl("get", "pods", "-n", ns, "-o", "json", *args)))["items"]


def wait_pods(lab: Lab, ns: str, selector: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        items = [
            p
            for p in pods_json(lab, ns, "-l", selector)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        ]
        if len(items) == count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_version_and_nodes(lab: Lab) -> None:
    out = json.loads(ok(lab.kubectl("version", "-o", "json")))
    assert out["serverVersion"]["major"] == "1"
    assert out["serverVersion"]["minor"] == "32"
    nodes = ok(lab.kubectl("get", "nodes", "-o", "wide")).splitlines()
    assert nodes[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert any(line.split()[:2] == ["lab-node", "Ready"] for line in nodes[1:])


def test_apply_walkthrough_deployment_creates_the_chain(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    out = ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "cryptominer-demo.yaml")))
    assert out.strip() == "deployment.apps/cryptominer-demo created"
    pods = wait_pods(lab, ns, "app=cryptominer", 1)
    assert len(pods) == 1
    pod = pods[0]
    rs_ref = pod["metadata"]["ownerReferences"][0]
    assert rs_ref["kind"] == "ReplicaSet" and rs_ref["controller"] is True
    rs = json.loads(ok(lab.kubectl("get", "rs", rs_ref["name"], "-n", ns, "-o", "json")))
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert rs["metadata"]["ownerReferences"][0]["name"] == "cryptominer-demo"
    cid = pod["status"]["containerStatuses"][0]["containerID"]
    assert cid.startswith("containerd://") and len(cid) == len("containerd://") + 64
    assert pod["spec"]["nodeName"] == "lab-node"
    assert pod["status"]["podIP"]
    # -A -o wide: the real columns, with our pod in them.
    wide = ok(lab.kubectl("get", "pods", "-A", "-o", "wide")).splitlines()
    assert wide[0].split() == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    row = next(line.split() for line in wide if pod["metadata"]["name"] in line)
    assert row[0] == ns and row[2] == "1/1" and row[3] == "Running"
    assert row[6] == pod["status"]["podIP"] and row[7] == "lab-node"
    # Apply again: unchanged; then scale through apply.
    again = ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "cryptominer-demo.yaml")))
    assert again.strip() == "deployment.apps/cryptominer-demo unchanged"
    deploy = ok(lab.kubectl("get", "deploy", "-n", ns)).splitlines()
    assert deploy[1].split()[:4] == ["cryptominer-demo", "1/1", "1", "1"]


def test_selectors(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "cryptominer-demo.yaml")))
    ok(lab.kubectl("run", "bystander", "-n", ns, "--image=busybox", "--labels=app=web"))
    wait_pods(lab, ns, "app=cryptominer", 1)
    names = ok(lab.kubectl("get", "pods", "-n", ns, "-l", "app=cryptominer", "-o", "name"))
    assert len(names.split()) == 1 and "cryptominer-demo-" in names
    names = ok(lab.kubectl("get", "pods", "-n", ns, "-l", "app in (web,other)", "-o", "name"))
    assert names.split() == ["pod/bystander"]
    names = ok(lab.kubectl("get", "pods", "-n", ns, "-l", "app!=web", "-o", "name"))
    assert "bystander" not in names and "cryptominer" in names
    fields = "spec.nodeName=lab-node,metadata.name=bystander"
    names = ok(lab.kubectl("get", "pods", "-n", ns, "--field-selector", fields, "-o", "name"))
    assert names.split() == ["pod/bystander"]
    none = lab.kubectl("get", "pods", "-n", ns, "--field-selector", "spec.nodeName=elsewhere")
    assert none.returncode == 0 and "No resources found" in none.stderr
    bad = lab.kubectl("get", "pods", "-n", ns, "--field-selector", "spec.containers=x")
    assert bad.returncode == 1
    assert "field label not supported: spec.containers" in bad.stderr
    assert "(BadRequest)" in bad.stderr


def test_label_releases_and_replaces(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "cryptominer-demo.yaml")))
    (pod,) = wait_pods(lab, ns, "app=cryptominer", 1)
    name = pod["metadata"]["name"]
    out = ok(lab.kubectl("label", "pod", name, "-n", ns, "app=quarantined", "--overwrite"))
    assert out.strip() == f"pod/{name} labeled"
    replacement = wait_pods(lab, ns, "app=cryptominer", 1)
    assert len(replacement) == 1 and replacement[0]["metadata"]["name"] != name
    released = json.loads(ok(lab.kubectl("get", "pod", name, "-n", ns, "-o", "json")))
    assert "ownerReferences" not in released["metadata"]
    assert released["status"]["phase"] == "Running"
    assert released["metadata"]["labels"]["app"] == "quarantined"


def test_delete_pod_is_replaced(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "cryptominer-demo.yaml")))
    (pod,) = wait_pods(lab, ns, "app=cryptominer", 1)
    name = pod["metadata"]["name"]
    out = ok(lab.kubectl("delete", "pod", name, "-n", ns, "--grace-period=1"))
    assert out.strip() == f'pod "{name}" deleted'
    gone = lab.kubectl("get", "pod", name, "-n", ns)
    assert gone.returncode == 1 and f'pods "{name}" not found' in gone.stderr
    (new,) = wait_pods(lab, ns, "app=cryptominer", 1)
    assert new["metadata"]["name"] != name
    assert new["metadata"]["name"].startswith("cryptominer-demo-")


def test_networkpolicy_apply_and_validation(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    out = ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "deny-all.yaml")))
    assert out.strip() == "networkpolicy.networking.k8s.io/deny-all created"
    table = ok(lab.kubectl("get", "networkpolicy", "-n", ns)).splitlines()
    assert table[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    assert table[1].split()[:2] == ["deny-all", "<none>"]
    got = json.loads(ok(lab.kubectl("get", "netpol", "deny-all", "-n", ns, "-o", "json")))
    assert got["spec"]["policyTypes"] == ["Ingress", "Egress"]
    bad = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "bad"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "x"}},
            "policyTypes": ["Sideways"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}],
        },
    }
    res = lab.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(bad))
    assert res.returncode == 1
    assert 'The NetworkPolicy "bad" is invalid' in res.stderr
    assert "spec.policyTypes[0]" in res.stderr and "spec.egress[0].to[0].ipBlock.cidr" in res.stderr


def test_auth_can_i_and_whoami(lab: Lab) -> None:
    assert ok(lab.kubectl("auth", "can-i", "delete", "pods")).strip() == "yes"
    no = lab.kubectl("auth", "can-i", "delete", "pods", context="falcoir-lab-restricted")
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    yes = lab.kubectl("auth", "can-i", "list", "pods", context="falcoir-lab-restricted")
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes")
    exec_ = lab.kubectl("auth", "can-i", "create", "pods/exec", context="falcoir-lab-restricted")
    assert exec_.stdout.strip() == "no"
    who = ok(lab.kubectl("auth", "whoami", "-o", "json", context="falcoir-lab-restricted"))
    assert json.loads(who)["status"]["userInfo"]["username"] == "restricted"


def test_restricted_identity_gets_403(lab: Lab, fresh_namespace: str) -> None:
    res = lab.kubectl(
        "run", "x", "-n", fresh_namespace, "--image=busybox", context="falcoir-lab-restricted"
    )
    assert res.returncode == 1
    assert res.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "restricted" cannot create '
        f'resource "pods" in API group "" in the namespace "{fresh_namespace}"'
    )
    listed = lab.kubectl("get", "pods", "-n", fresh_namespace, context="falcoir-lab-restricted")
    assert listed.returncode == 0


def test_wrong_token_gets_401(lab: Lab, tmp_path: Path) -> None:
    doc = json.loads(lab.kubeconfig.read_text())
    doc["users"][0]["user"]["token"] = "not-the-token"
    bad = tmp_path / "kubeconfig"
    bad.write_text(json.dumps(doc))
    res = subprocess.run(
        [KUBECTL, "--kubeconfig", str(bad), "get", "pods"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 1
    assert "error: You must be logged in to the server" in res.stderr


def test_get_pods_watch_sees_events(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    ok(lab.kubectl("run", "anchor", "-n", ns, "--image=busybox"))
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(lab.kubeconfig),
            "get",
            "pods",
            "-n",
            ns,
            "-w",
            "--request-timeout=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()

    def rows() -> list[list[str]]:
        return [line.split() for line in list(lines) if line.startswith("watched")]

    def until(pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not pred():
            assert time.monotonic() < deadline, f"{what}: {lines}"
            time.sleep(0.05)

    try:
        # The anchor's row means kubectl's initial list is done (its watch starts from
        # that list); fixed sleeps raced with a slow kubectl start and a slow event.
        until(lambda: any(line.startswith("anchor") for line in lines), "anchor listed")
        ok(lab.kubectl("run", "watched", "-n", ns, "--image=busybox"))
        ok(lab.kubectl("wait", "--for=condition=Ready", "pod/watched", "-n", ns, "--timeout=20s"))
        ok(lab.kubectl("delete", "pod", "watched", "-n", ns, "--grace-period=0", "--force"))
        until(lambda: any(r[2] == "Terminating" for r in rows()), "Terminating seen")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
        reader.join(10)
    statuses = [r[2] for r in rows()]
    assert "Running" in statuses, lines
    assert statuses[-1] == "Terminating", lines


def test_dry_run_creates_nothing(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    out = ok(lab.kubectl("run", "dry", "-n", ns, "--image=busybox", "--dry-run=server"))
    assert out.strip() == "pod/dry created (server dry run)"
    res = lab.kubectl("get", "pod", "dry", "-n", ns)
    assert res.returncode == 1 and "NotFound" in res.stderr


def test_scale_and_delete_deployment_cascades(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    ok(lab.kubectl("apply", "-n", ns, "-f", str(DATA / "cryptominer-demo.yaml")))
    out = ok(lab.kubectl("scale", "deployment/cryptominer-demo", "-n", ns, "--replicas=3"))
    assert out.strip() == "deployment.apps/cryptominer-demo scaled"
    assert len(wait_pods(lab, ns, "app=cryptominer", 3)) == 3
    ok(lab.kubectl("delete", "deployment", "cryptominer-demo", "-n", ns, "--grace-period=0"))
    # The pods go with their own grace period (as with the real garbage collector): each
    # is gone or terminating at once, and no replacement appears.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = pods_json(lab, ns)
        if all(p["metadata"].get("deletionTimestamp") for p in left):
            break
        time.sleep(0.1)
    assert all(p["metadata"].get("deletionTimestamp") for p in left)
    assert len(left) <= 3
    assert json.loads(ok(lab.kubectl("get", "rs", "-n", ns, "-o", "json")))["items"] == []


def test_server_side_apply_and_create_namespace(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    first = ok(lab.kubectl("apply", "--server-side", "-n", ns, "-f", str(DATA / "deny-all.yaml")))
    assert first.strip() == "networkpolicy.networking.k8s.io/deny-all serverside-applied"
    assert lab.client.get("networkpolicies", "deny-all", ns)["spec"]["podSelector"] == {}
    # kubectl create namespace posts a protobuf body.
    name = f"{ns}-extra"
    assert ok(lab.kubectl("create", "namespace", name)).strip() == f"namespace/{name} created"
    labels = lab.client.get("namespaces", name)["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": name}
    assert ok(lab.kubectl("delete", "namespace", name)).strip() == f'namespace "{name}" deleted'
    gone = lab.kubectl("get", "namespace", name)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


LOG_SCRIPT = (
    "echo first; sleep 1.2; printf 'second\\t with  spaces \\r\\n'; echo oops >&2; "
    "head -c 20000 /dev/zero | tr '\\0' x; echo; printf 'tail-without-newline'"
)
LOG_EXPECTED = "first\nsecond\t with  spaces \r\noops\n" + "x" * 20000 + "\ntail-without-newline"


def kubectl_bytes(lab: Lab, *args: str) -> bytes:
    """kubectl's stdout as bytes (text mode would turn \\r\\n into \\n)."""
    env = {**os.environ, "KUBECACHEDIR": str(lab.state_dir / "kube-cache")}
    env.pop("KUBECONFIG", None)
    res = subprocess.run(
        [KUBECTL, "--kubeconfig", str(lab.kubeconfig), *args],
        capture_output=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_logs_keep_bytes_and_per_line_timestamps(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    lab.client.create(
        "pods",
        {
            "metadata": {"name": "talk"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "c", "image": "ubuntu:latest", "command": ["sh", "-c", LOG_SCRIPT]}
                ],
            },
        },
        ns,
    )
    lab.client.wait_for(
        "pods", "talk", ns, lambda p: p["status"].get("phase") == "Succeeded", timeout=30
    )
    # Without --timestamps: byte for byte what the container wrote (a line over 16 KiB,
    # \r, tabs, stderr, and no newline at the very end).
    assert kubectl_bytes(lab, "logs", "talk", "-n", ns) == LOG_EXPECTED.encode()
    # With --timestamps: each line stamped when it was written, not when it was read.
    stamped = kubectl_bytes(lab, "logs", "talk", "-n", ns, "--timestamps").decode()
    rows = stamped.split("\n")
    assert len(rows) == 5 and rows[-1].endswith(" tail-without-newline")
    stamps = [r.split(" ", 1)[0] for r in rows]
    assert [r.split(" ", 1)[1] for r in rows[:2]] == ["first", "second\t with  spaces \r"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", s) for s in stamps)
    when = [datetime.fromisoformat(s[:26].rstrip("Z") + "+00:00") for s in stamps]
    assert when == sorted(when)
    assert (when[1] - when[0]).total_seconds() >= 1.0  # the sleep between the two lines
    # sinceTime cuts on those stamps: from the second line on.
    since = kubectl_bytes(lab, "logs", "talk", "-n", ns, f"--since-time={stamps[1]}")
    assert since == LOG_EXPECTED[len("first\n") :].encode()
    assert lab.kubectl("logs", "talk", "-n", ns, "--tail=1").stdout == "tail-without-newline"
