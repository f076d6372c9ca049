"""`falcoir lab up/down/status/kubeconfig/faults/load`, virtual nodes, DaemonSets, a
generated cluster and fault injection."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoir.lab.client import LabApiError
from tests.plugins.lab import KUBECTL, Lab, run_falcoir, start_lab

pytestmark = pytest.mark.lab


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def vlab() -> Iterator[Lab]:
    """A lab of its own with 3 virtual nodes (faults set here must not disturb others)."""
    with start_lab("--nodes", "3", "--runtime", "virtual") as lab:
        yield lab


def test_up_status_down_cycle(tmp_path: Path) -> None:
    sd = tmp_path / "lab"
    t0 = time.monotonic()
    up = run_falcoir("lab", "up", "--detach", "--state-dir", str(sd), "-o", "json")
    cold = time.monotonic() - t0
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["running"] is True and info["server"].startswith("https://127.0.0.1:")
    assert cold < 5, f"lab up --detach took {cold:.2f} s"
    try:
        st = run_falcoir("lab", "status", "--state-dir", str(sd), "-o", "json")
        assert st.returncode == 0 and json.loads(st.stdout)["pid"] == info["pid"]
        path = run_falcoir("lab", "kubeconfig", "--state-dir", str(sd), "--path")
        assert path.stdout.strip() == str(sd / "kubeconfig")
        doc = json.loads(run_falcoir("lab", "kubeconfig", "--state-dir", str(sd)).stdout)
        assert doc["current-context"] == "falcoir-lab"
        again = run_falcoir("lab", "up", "--detach", "--state-dir", str(sd), "-o", "json")
        assert json.loads(again.stdout)["pid"] == info["pid"]  # idempotent
    finally:
        down = run_falcoir("lab", "down", "--state-dir", str(sd))
    assert down.returncode == 0
    assert f"stopped lab server pid {info['pid']}" in down.stderr
    assert not alive(info["pid"])
    st = run_falcoir("lab", "status", "--state-dir", str(sd), "-o", "json")
    assert st.returncode == 1 and json.loads(st.stdout)["running"] is False
    assert run_falcoir("lab", "down", "--state-dir", str(sd)).returncode == 0  # idempotent


def test_down_after_kill_9_and_restart_keeps_credentials(tmp_path: Path) -> None:
    sd = tmp_path / "lab"
    first = json.loads(
        run_falcoir("lab", "up", "--detach", "--state-dir", str(sd), "-o", "json").stdout
    )
    token = json.loads((sd / "tokens.json").read_text())["admin"]
    os.kill(first["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(first["pid"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    st = run_falcoir("lab", "status", "--state-dir", str(sd))
    assert st.returncode == 1
    assert run_falcoir("lab", "down", "--state-dir", str(sd)).returncode == 0
    assert not (sd / "lab.pid").exists() and not (sd / "server.json").exists()
    second = json.loads(
        run_falcoir("lab", "up", "--detach", "--state-dir", str(sd), "-o", "json").stdout
    )
    try:
        assert second["pid"] != first["pid"]
        assert json.loads((sd / "tokens.json").read_text())["admin"] == token
    finally:
        run_falcoir("lab", "down", "--state-dir", str(sd))


def test_two_labs_coexist(lab: Lab, vlab: Lab) -> None:
    assert lab.server != vlab.server
    a = {n["metadata"]["name"] for n in lab.client.list("nodes")}
    b = {n["metadata"]["name"] for n in vlab.client.list("nodes")}
    assert "lab-vnode-001" in b and "lab-vnode-001" not in a


def test_bad_options_exit_2(tmp_path: Path) -> None:
    res = run_falcoir("lab", "up", "--detach", "--state-dir", str(tmp_path), "--port", "70000")
    assert res.returncode == 2 and "--port 70000 is not a TCP port" in res.stderr
    res = run_falcoir("lab", "faults", "--state-dir", str(tmp_path), "--rate-500", "2")
    assert res.returncode == 2


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="needs /usr/bin/kubectl")
def test_virtual_nodes_and_falco_daemonset(vlab: Lab) -> None:
    nodes = vlab.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert nodes == [
        "node/lab-node",
        "node/lab-vnode-001",
        "node/lab-vnode-002",
        "node/lab-vnode-003",
    ]
    vlab.client.create("namespaces", {"metadata": {"name": "falco"}})
    labels = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco"}
    vlab.client.create(
        "apps/v1/daemonsets",
        {
            "metadata": {"name": "falco", "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "falco", "image": "falcosecurity/falco:0.39.2"}]
                    },
                },
            },
        },
        "falco",
    )
    pods = vlab.client.wait_until(
        lambda: (
            lambda ps: (
                ps
                if len(ps) == 4 and all(p["status"].get("phase") == "Running" for p in ps)
                else None
            )
        )(vlab.client.list("pods", "falco", label_selector="app.kubernetes.io/name=falco"))
    )
    assert sorted(p["spec"]["nodeName"] for p in pods) == [
        "lab-node",
        "lab-vnode-001",
        "lab-vnode-002",
        "lab-vnode-003",
    ]
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" for p in pods)
    assert len({p["status"]["podIP"] for p in pods}) == 4
    on_v2 = vlab.kubectl(
        "get",
        "pods",
        "-n",
        "falco",
        "--field-selector",
        "spec.nodeName=lab-vnode-002",
        "-o",
        "name",
    ).stdout.split()
    assert len(on_v2) == 1
    ds = vlab.client.wait_for(
        "apps/v1/daemonsets",
        "falco",
        "falco",
        lambda d: d.get("status", {}).get("numberReady") == 4,
    )
    assert ds["status"]["desiredNumberScheduled"] == 4


def test_generated_cluster_load(vlab: Lab) -> None:
    t0 = time.monotonic()
    counts = vlab.client.load_generated(pods=2000, nodes=20, namespaces=10, seed=7)
    elapsed = time.monotonic() - t0
    assert counts["pods"] == 2000 and counts["deployments"] == 400 and counts["replicasets"] == 400
    assert elapsed < 30
    t1 = time.monotonic()
    pods = vlab.client.list("pods", label_selector="tier=web")
    list_s = time.monotonic() - t1
    assert len(pods) == 200 and list_s < 10
    on_node = vlab.client.list(
        "pods", field_selector="spec.nodeName=lab-vnode-007", label_selector="tier"
    )
    assert len(on_node) == 100
    # The falco DaemonSet (if an earlier test made it) followed the new nodes.
    falco = vlab.client.list("pods", "falco", field_selector="spec.nodeName=lab-vnode-020")
    assert len(falco) in (0, 1)
    assert all(p["status"]["phase"] == "Running" for p in on_node)
    cid = on_node[0]["status"]["containerStatuses"][0]["containerID"]
    assert cid.startswith("containerd://") and len(cid) == 13 + 64
    # The controller leaves the loaded chain alone: no extra pods appear.
    time.sleep(0.5)
    assert len(vlab.client.list("pods", "gen-003")) == 200


def _raw(lab: Lab, path: str) -> tuple[int, dict[str, str], bytes]:
    doc = json.loads(lab.kubeconfig.read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(lab.state_dir / "ca.crt"))
    req = urllib.request.Request(
        server + path, headers={"Authorization": f"Bearer {lab.client.token}"}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_fault_injection_changes_while_running(vlab: Lab) -> None:
    try:
        vlab.set_faults(rate_429=1.0)
        code, headers, body = _raw(vlab, "/api/v1/namespaces/default/pods")
        assert code == 429 and headers["Retry-After"] == "1"
        assert json.loads(body)["reason"] == "TooManyRequests"
        vlab.set_faults(rate_503=1.0)
        assert _raw(vlab, "/api/v1/pods")[0] == 503
        vlab.set_faults(rate_500=1.0)
        assert _raw(vlab, "/api/v1/pods")[0] == 500
        assert _raw(vlab, "/version")[0] == 200  # /version and health stay clean
        vlab.set_faults(rate_drop=1.0)
        with pytest.raises((http.client.IncompleteRead, ConnectionError, urllib.error.URLError)):
            _raw(vlab, "/api/v1/pods")
        got: list[dict] = []
        with contextlib.suppress(http.client.IncompleteRead, ConnectionError, OSError):
            for ev in vlab.client.watch_events("namespaces", timeoutSeconds=5):
                got.append(ev)
        assert len(got) == 1  # the watch died after its first event (of 4+ namespaces)
        vlab.set_faults(latency_ms=300)
        t0 = time.monotonic()
        assert _raw(vlab, "/api/v1/namespaces")[0] == 200
        assert time.monotonic() - t0 >= 0.3
        run = run_falcoir("lab", "faults", "--state-dir", str(vlab.state_dir), "--rate-503", "1")
        assert run.returncode == 0
        with pytest.raises(LabApiError) as err:
            vlab.client.get("namespaces", "default")
        assert err.value.status == 503
    finally:
        vlab.clear_faults()
    assert vlab.client.get("namespaces", "default")["metadata"]["name"] == "default"
