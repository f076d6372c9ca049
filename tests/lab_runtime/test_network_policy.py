"""NetworkPolicy enforcement in the pod's netns, against the lab's stratum pool."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falcoir.lab.assets import compile_c
from falcoir.lab.linux.pool import read_records
from tests.lab_runtime.conftest import Harness, needs_isolation, needs_nft

pytestmark = [pytest.mark.root, needs_isolation]

MINER_CMD = (
    "cp /opt/payload/xmrig /tmp/xmrig && chmod +x /tmp/xmrig && "
    "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x"
)


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("payload")
    if compile_c("xmrig", d) is None:
        pytest.skip("no C compiler")
    return d


@pytest.fixture(scope="module")
def unenforced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("lab-noenforce"), enforce=False)
    try:
        yield h
    finally:
        h.close()


def run_miner(h: Harness, payload: Path, name: str) -> dict[str, Any]:
    return h.pod(
        name,
        [
            {
                "name": "miner",
                "image": "ubuntu:latest",
                "command": ["/bin/sh", "-c", MINER_CMD],
                "volumeMounts": [
                    {"name": "payload", "mountPath": "/opt/payload", "readOnly": True}
                ],
            }
        ],
        labels={"app": "cryptominer"},
        volumes=[{"name": "payload", "hostPath": {"path": str(payload), "type": "Directory"}}],
    )


def messages_from(h: Harness, ip: str) -> int:
    return sum(
        1
        for r in read_records(h.state_dir)
        if r["event"] == "message" and r["peer"].startswith(ip + ":")
    )


def deny_egress(ns: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": "deny-egress", "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": "cryptominer"}}, "policyTypes": ["Egress"]},
    }


def pod_with_status(h: Harness, pod: dict[str, Any]) -> dict[str, Any]:
    return {**pod, "status": h.status(pod)}


@needs_nft
def test_miner_talks_to_the_pool_until_egress_is_denied(harness: Harness, payload: Path) -> None:
    pod = run_miner(harness, payload, "miner-a")
    ip = harness.status(pod)["podIP"]
    harness.wait_for(lambda: messages_from(harness, ip) >= 3, what="the miner's messages")
    methods = [r.get("method") for r in read_records(harness.state_dir) if r["peer"].startswith(ip)]
    assert "login" in methods and "keepalived" in methods

    rc, out, _ = harness.exec(pod, "miner", ["netstat", "-tnp"])
    conn = [line for line in out.decode().splitlines() if ":3333" in line]
    assert rc == 0 and conn and "ESTABLISHED" in conn[0] and "xmrig" in conn[0], out.decode()
    host_pid = harness.rt.host_pid(pod, "miner")
    procs = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    miner = [p for p in procs if _comm(p) == "xmrig" and _ppid(p) == host_pid]
    assert miner, "xmrig is a child of the container's shell"
    assert Path(miner[0], "exe").readlink() == Path("/tmp/xmrig")

    pods = [pod_with_status(harness, pod)]
    harness.run(harness.rt.apply_network_policies(pods, [deny_egress()]))
    time.sleep(0.7)
    before = messages_from(harness, ip)
    time.sleep(2.0)
    assert messages_from(harness, ip) == before, "the pool still hears from the miner"
    # New connections fail too.
    rc, _, _ = harness.exec(
        pod, "miner", ["timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/pool.example.com/3333"]
    )
    assert rc != 0

    allow = {
        "metadata": {"name": "allow-pool", "namespace": "default"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": f"{harness.rt.gateway}/32"}}],
                    "ports": [{"port": 3333}],
                }
            ],
        },
    }
    harness.run(harness.rt.apply_network_policies(pods, [deny_egress(), allow]))
    rc, _, _ = harness.exec(
        pod, "miner", ["timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/pool.example.com/3333"]
    )
    assert rc == 0
    harness.run(harness.rt.apply_network_policies(pods, []))
    n = messages_from(harness, ip)
    harness.wait_for(lambda: messages_from(harness, ip) > n + 2, timeout=30, what="the miner again")


def test_policy_in_another_namespace_or_label_does_not_apply(
    harness: Harness, payload: Path
) -> None:
    pod = run_miner(harness, payload, "miner-b")
    ip = harness.status(pod)["podIP"]
    harness.wait_for(lambda: messages_from(harness, ip) >= 2, what="the miner's messages")
    other = {
        "metadata": {"name": "other", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]},
    }
    harness.run(
        harness.rt.apply_network_policies(
            [pod_with_status(harness, pod)], [deny_egress("prod"), other]
        )
    )
    n = messages_from(harness, ip)
    harness.wait_for(lambda: messages_from(harness, ip) > n + 2, what="more messages")
    harness.run(harness.rt.kill_pod(pod, 0))


def test_without_enforcement_the_miner_keeps_talking(unenforced: Harness, payload: Path) -> None:
    pod = run_miner(unenforced, payload, "miner-c")
    ip = unenforced.status(pod)["podIP"]
    unenforced.wait_for(lambda: messages_from(unenforced, ip) >= 2, what="the miner's messages")
    unenforced.run(
        unenforced.rt.apply_network_policies([pod_with_status(unenforced, pod)], [deny_egress()])
    )
    n = messages_from(unenforced, ip)
    unenforced.wait_for(lambda: messages_from(unenforced, ip) > n + 3, what="more messages")


def test_two_labs_side_by_side(harness: Harness, unenforced: Harness) -> None:
    assert harness.rt.lab_id != unenforced.rt.lab_id
    assert harness.rt.gateway != unenforced.rt.gateway
    a = harness.pod("side", [{"name": "c", "image": "ubuntu", "command": ["sleep", "1000"]}])
    b = unenforced.pod("side", [{"name": "c", "image": "ubuntu", "command": ["sleep", "1000"]}])
    assert harness.status(a)["podIP"] != unenforced.status(b)["podIP"]
    harness.run(harness.rt.kill_pod(a, 0))
    assert unenforced.exec(b, "c", ["true"])[0] == 0


def _comm(p: Path) -> str:
    try:
        return (p / "comm").read_text().strip()
    except OSError:
        return ""


def _ppid(p: Path) -> int:
    try:
        for line in (p / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_script_fallback_miner_without_a_compiler(harness: Harness, tmp_path: Path) -> None:
    import shutil

    from falcoir.lab.assets import asset

    shutil.copy(asset("xmrig.sh"), tmp_path / "xmrig")
    pod = run_miner(harness, tmp_path, "miner-sh")
    ip = harness.status(pod)["podIP"]
    harness.wait_for(lambda: messages_from(harness, ip) >= 3, what="the script miner's messages")
    rc, out, _ = harness.exec(pod, "miner", ["ps", "-eo", "comm,args"])
    assert rc == 0
    assert any(line.split()[0] == "xmrig" for line in out.decode().splitlines()[1:]), out.decode()
    harness.run(harness.rt.kill_pod(pod, 0))


@needs_nft
def test_ingress_deny_and_allow_by_cidr(harness: Harness) -> None:
    import socket

    pod = harness.pod(
        "server",
        [
            {
                "name": "c",
                "image": "busybox",
                "command": ["nc", "-ll", "-p", "8080", "-e", "echo", "hi"],
            }
        ],
        labels={"app": "web"},
    )
    ip = harness.status(pod)["podIP"]

    def reach() -> bool:
        try:
            with socket.create_connection((ip, 8080), timeout=1.5) as s:
                s.settimeout(1.5)
                return s.recv(16) == b"hi\n"
        except OSError:
            return False

    harness.wait_for(reach, what="the pod's server")
    pods = [pod_with_status(harness, pod)]
    deny = {
        "metadata": {"name": "deny-in", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
    }
    harness.run(harness.rt.apply_network_policies(pods, [deny]))
    assert not reach()
    # The pod's own egress is untouched by an ingress-only policy.
    harness.exec(pod, "c", ["sh", "-c", "echo '{}' | nc -w 1 pool.example.com 3333"])
    assert any(
        r["event"] == "connect" and r["peer"].startswith(ip + ":")
        for r in read_records(harness.state_dir)
    )
    allow = {
        "metadata": {"name": "allow-node", "namespace": "default"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": f"{harness.rt.gateway}/32"}}],
                    "ports": [{"port": 8080}],
                }
            ],
        },
    }
    harness.run(harness.rt.apply_network_policies(pods, [deny, allow]))
    harness.wait_for(reach, what="the server again")
    harness.run(harness.rt.kill_pod(pod, 0))


@needs_nft
def test_only_pods_whose_rules_change_are_reloaded(
    harness: Harness, payload: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A change reaches its pod in one nft load however many pods run: the others keep
    # their rules untouched (the lab used to reload every pod on every change).
    from falcoir.lab.linux import net

    a = run_miner(harness, payload, "reload-a")
    b = harness.pod(
        "reload-b",
        [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}],
        labels={"app": "other"},
    )
    pods = [pod_with_status(harness, a), pod_with_status(harness, b)]
    harness.run(harness.rt.apply_network_policies(pods, []))
    loads: list[str] = []
    real = net.nft_apply

    def counting(netns: str, ruleset: str) -> None:
        loads.append(netns)
        real(netns, ruleset)

    monkeypatch.setattr(net, "nft_apply", counting)
    harness.run(harness.rt.apply_network_policies(pods, []))
    assert loads == []  # nothing changed, nothing reloaded
    netns = {p.name: p.netns for p in harness.rt._pods.values()}
    harness.run(harness.rt.apply_network_policies(pods, [deny_egress()]))
    # Only pods the policy selects (app=cryptominer: this miner, and any an earlier test
    # of this module left running) are reloaded; the other pod is not.
    assert netns["reload-a"] in loads and netns["reload-b"] not in loads
    assert len(loads) == len(set(loads))
    rc, _, _ = harness.exec(
        a, "miner", ["timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/pool.example.com/3333"]
    )
    assert rc != 0  # and the load is in force
    loads.clear()
    harness.run(harness.rt.apply_network_policies(pods, [deny_egress()]))
    assert loads == []
