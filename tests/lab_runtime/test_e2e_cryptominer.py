"""End to end: the cryptominer scenario on a real lab, through kubectl and the Python client."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from falcoir.lab.linux.pool import messages_from
from falcoir.lab.scenario import CryptominerScenario
from tests.lab_runtime.conftest import needs_isolation, needs_nft

pytestmark = [pytest.mark.lab, pytest.mark.root, needs_isolation]

ALERT_RE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} - Critical - Suspicious crypto miner process \(name=xmrig, "
    r"cmdline=/tmp/xmrig -o pool\.example\.com:3333 -u wallet_address -p x, pid=(\d+)\)$"
)


def kexec(lab: Any, sc: CryptominerScenario, *cmd: str) -> Any:
    return lab.kubectl("exec", "-n", sc.namespace, sc.pod, "-c", "miner", "--", *cmd)


def test_the_alert_names_the_real_host_pid(lab: Any, cryptominer: CryptominerScenario) -> None:
    sc = cryptominer
    m = ALERT_RE.match(sc.alert_text)
    assert m, sc.alert_text
    pid = int(m.group(1))
    assert pid == sc.host_pid
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "xmrig"
    assert Path(f"/proc/{pid}/exe").readlink() == Path("/tmp/xmrig")
    cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    full_id = sc.container_id.removeprefix("containerd://")
    assert f"pod{sc.pod_uid}/{full_id}" in cgroup
    nspid = re.search(r"^NSpid:\s+(\d+)\s+(\d+)$", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert nspid and int(nspid.group(1)) == pid and int(nspid.group(2)) == sc.vpid
    f = sc.alert_json["output_fields"]
    assert sc.alert_json["hostname"] == "lab-node" == sc.node
    assert (f["proc.pid"], f["proc.vpid"], f["container.id"]) == (pid, sc.vpid, full_id[:12])
    assert (f["k8s.ns.name"], f["k8s.pod.name"]) == ("default", sc.pod)
    assert sc.alert_text in sc.alerts_txt.read_text().splitlines()
    logs = lab.kubectl("logs", "-n", "falco", sc.falco_pod)
    assert logs.returncode == 0 and sc.alert_text in logs.stdout.splitlines()
    pods = lab.kubectl(
        "get",
        "pods",
        "-n",
        "falco",
        "-l",
        "app.kubernetes.io/name=falco,app.kubernetes.io/instance=falco",
        "-o",
        "name",
    )
    assert pods.stdout.strip() == f"pod/{sc.falco_pod}"


def test_kubectl_exec_investigation(lab: Any, cryptominer: CryptominerScenario) -> None:
    sc = cryptominer
    ps = kexec(lab, sc, "ps", "aux")
    assert ps.returncode == 0, ps.stderr
    rows = ps.stdout.splitlines()[1:]
    cmds = [r.split(None, 10)[10] for r in rows]
    assert cmds[0].startswith("/bin/sh -c cp /opt/payload/xmrig /tmp/xmrig")
    assert "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x" in cmds
    assert len(rows) == 3, ps.stdout  # sh, xmrig, ps: nothing of the host
    ls = kexec(lab, sc, "ls", "-la", "/tmp")
    assert ls.returncode == 0 and re.search(r"^-rwx.* xmrig$", ls.stdout, re.M), ls.stdout
    ns = kexec(lab, sc, "netstat", "-tnp")
    conn = [x for x in ns.stdout.splitlines() if x.split()[4:5] and x.split()[4].endswith(":3333")]
    assert conn and "ESTABLISHED" in conn[0] and conn[0].rstrip().endswith(f"{sc.vpid}/xmrig"), (
        ns.stdout
    )
    ss = kexec(lab, sc, "ss", "-tnp")
    assert "ESTAB" in ss.stdout and ":3333" in ss.stdout and '"xmrig"' in ss.stdout
    digest = kexec(lab, sc, "sha256sum", "/tmp/xmrig").stdout.split()[0]
    on_host = hashlib.sha256(Path(f"/proc/{sc.host_pid}/root/tmp/xmrig").read_bytes()).hexdigest()
    assert digest == on_host
    false = kexec(lab, sc, "false")
    assert false.returncode == 1
    assert "command terminated with exit code 1" in false.stderr
    sh = lab.kubectl(
        "exec", "-n", sc.namespace, sc.pod, "-c", "miner", "--", "/bin/sh", "-c", "exit 42"
    )
    assert sh.returncode == 42


def test_exec_in_distroless_fails_as_on_a_real_cluster(lab: Any, fresh_namespace: str) -> None:
    lab.client.create(
        "pods",
        {
            "metadata": {"name": "static"},
            "spec": {"containers": [{"name": "app", "image": "gcr.io/distroless/static-debian12"}]},
        },
        fresh_namespace,
    )
    lab.client.wait_for(
        "pods", "static", fresh_namespace, lambda p: p.get("status", {}).get("phase") == "Running"
    )
    r = lab.kubectl("exec", "-n", fresh_namespace, "static", "--", "sh", "-c", "true")
    assert r.returncode == 1
    assert "executable file not found in $PATH" in r.stderr
    assert r.stderr.startswith("error: Internal error occurred:"), r.stderr


def _api(lab: Any) -> Any:
    kubernetes = pytest.importorskip("kubernetes")
    return kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(config_file=str(lab.kubeconfig))
    )


def _stream(
    api: Any, sc: CryptominerScenario, command: list[str], stdin: bytes | None = None
) -> tuple[bytes, bytes, dict]:
    from kubernetes.stream import stream

    ws = stream(
        api.connect_get_namespaced_pod_exec, sc.pod, sc.namespace, container="miner",
        command=command, stdin=stdin is not None, stdout=True, stderr=True, tty=False,
        _preload_content=False, binary=True,
    )  # fmt: skip
    out, err, status = b"", b"", b""
    if stdin is not None:
        ws.write_stdin(stdin)
    deadline = time.monotonic() + 30
    sent_close = False
    while ws.is_open() and time.monotonic() < deadline:
        ws.update(timeout=1)
        out += ws.read_channel(1) or b""
        err += ws.read_channel(2) or b""
        status += ws.read_channel(3) or b""
        if stdin is not None and not sent_close:
            ws.close_channel(0)  # the v5 close signal for stdin
            sent_close = True
    # read_channel() of an empty channel runs update() itself, which may have buffered
    # the last frames of the other channels before it saw the close: collect them too.
    out += ws.read_channel(1) or b""
    err += ws.read_channel(2) or b""
    status += ws.read_channel(3) or b""
    ws.close()
    return out, err, json.loads(status or b"{}")


def test_python_client_stream(lab: Any, cryptominer: CryptominerScenario) -> None:
    api = _api(lab)
    sc = cryptominer
    out, err, st = _stream(api, sc, ["sha256sum", "/tmp/xmrig"])
    assert st["status"] == "Success" and err == b""
    assert (
        out.split()[0].decode()
        == hashlib.sha256(Path(f"/proc/{sc.host_pid}/root/tmp/xmrig").read_bytes()).hexdigest()
    )
    binary = Path(f"/proc/{sc.host_pid}/root/tmp/xmrig").read_bytes()
    big = ["sh", "-c", "cat /tmp/xmrig; head -c 1500000 /dev/urandom"]
    out, _, st = _stream(api, sc, big)
    assert st["status"] == "Success"
    assert len(out) == len(binary) + 1_500_000 and out.startswith(binary)
    out, _, st = _stream(api, sc, ["sh", "-c", "exit 3"])
    assert st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    payload = bytes(range(256)) * 64
    out, _, st = _stream(api, sc, ["sha256sum"], stdin=payload)
    assert st["status"] == "Success"
    assert out.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def _from_ip(state_dir: Path, ip: str) -> int:
    return messages_from(state_dir, ip)


DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-miner-egress
  namespace: {ns}
spec:
  podSelector:
    matchLabels:
      app: cryptominer
  policyTypes: ["Egress"]
"""


@needs_nft
def test_deny_egress_silences_the_miner(lab: Any, fresh_cryptominer: CryptominerScenario) -> None:
    sc = fresh_cryptominer
    ip = lab.client.get("pods", sc.pod, sc.namespace)["status"]["podIP"]
    assert ip == sc.pod_ip
    lab.client.wait_until(lambda: sc.pool_messages() >= 3, timeout=20)
    r = lab.kubectl("apply", "-f", "-", input=DENY.format(ns=sc.namespace))
    assert r.returncode == 0, r.stderr
    time.sleep(1.0)
    n = _from_ip(lab.state_dir, ip)
    time.sleep(2.0)
    assert _from_ip(lab.state_dir, ip) == n, "the pool still hears from the miner"
    # Exec still works: it goes through the API server, not the pod network.
    assert kexec(lab, sc, "true").returncode == 0
    lab.kubectl("delete", "networkpolicy", "-n", sc.namespace, "deny-miner-egress")
    lab.client.wait_until(lambda: _from_ip(lab.state_dir, ip) > n + 2, timeout=30)


def test_without_enforcement_the_miner_keeps_talking_and_down_cleans_up() -> None:
    from falcoir.lab.scenario import play_cryptominer
    from tests.plugins.lab import start_lab

    with start_lab("--no-enforce-network-policy") as lab:
        sc = play_cryptominer(lab.client, lab.state_dir)
        ip = lab.client.get("pods", sc.pod, sc.namespace)["status"]["podIP"]
        r = lab.kubectl("apply", "-f", "-", input=DENY.format(ns="default"))
        assert r.returncode == 0, r.stderr
        time.sleep(1.0)
        n = _from_ip(lab.state_dir, ip)
        lab.client.wait_until(lambda: _from_ip(lab.state_dir, ip) > n + 3, timeout=20)
        lab_ids = [
            json.loads(p.read_text())["lab_id"]
            for p in (lab.state_dir / "runtime").glob("lab-*.json")
        ]
        pids = [sc.host_pid]
    assert lab_ids
    for lab_id in lab_ids:
        assert not list(Path("/run/netns").glob(f"falcoir-{lab_id}-*"))
        assert not [n for n in Path("/sys/class/net").iterdir() if lab_id in n.name]
    assert not Path(f"/proc/{pids[0]}").exists()
    uid_dirs = list(Path("/sys/fs/cgroup/unified/kubepods").rglob(f"pod{sc.pod_uid}"))
    assert uid_dirs == []


def test_ephemeral_debug_container_sees_a_distroless_target(lab: Any, fresh_namespace: str) -> None:
    ns = fresh_namespace
    lab.client.create(
        "pods",
        {
            "metadata": {"name": "app"},
            "spec": {
                "containers": [
                    {"name": "app", "image": "gcr.io/distroless/base", "command": ["/server"]}
                ]
            },
        },
        ns,
    )
    lab.client.wait_for("pods", "app", ns, lambda p: p.get("status", {}).get("phase") == "Running")
    patch = {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": "debugger",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "targetContainerName": "app",
                    "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}},
                }
            ]
        }
    }
    lab.client.patch("pods", "app", patch, ns, sub="ephemeralcontainers")
    pod = lab.client.wait_for(
        "pods", "app", ns,
        lambda p: any("running" in s.get("state", {}) for s in p.get("status", {}).get("ephemeralContainerStatuses") or []),  # noqa: E501
    )  # fmt: skip
    eph = pod["status"]["ephemeralContainerStatuses"][0]
    assert re.fullmatch(r"containerd://[0-9a-f]{64}", eph["containerID"])
    r = lab.kubectl("exec", "-n", ns, "app", "-c", "debugger", "--", "readlink", "/proc/1/exe")
    assert r.returncode == 0 and r.stdout.strip() == "/server", r.stderr
    r = lab.kubectl("exec", "-n", ns, "app", "-c", "debugger", "--", "cat", "/proc/1/net/tcp")
    assert r.returncode == 0 and "local_address" in r.stdout


def test_python_client_tty(lab: Any, cryptominer: CryptominerScenario) -> None:
    from kubernetes.stream import stream

    api = _api(lab)
    ws = stream(
        api.connect_get_namespaced_pod_exec, cryptominer.pod, cryptominer.namespace,
        container="miner", command=["sh", "-c", "sleep 0.3; tty; stty size"], stdin=True,
        stdout=True, stderr=False, tty=True, _preload_content=False, binary=True,
    )  # fmt: skip
    ws.write_channel(4, json.dumps({"Width": 123, "Height": 45}))
    out, status = b"", b""
    deadline = time.monotonic() + 20
    while ws.is_open() and time.monotonic() < deadline:
        ws.update(timeout=1)
        out += ws.read_channel(1) or b""
        status += ws.read_channel(3) or b""
    out += ws.read_channel(1) or b""
    status += ws.read_channel(3) or b""
    ws.close()
    assert json.loads(status)["status"] == "Success", (status, out)
    assert b"/dev/pts/" in out and b"45 123" in out, out


QUARANTINE = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: falcoir-quarantine
  namespace: {ns}
spec:
  podSelector:
    matchLabels:
      falcoir.dev/quarantine: "true"
  policyTypes: ["Ingress", "Egress"]
"""


@needs_nft
def test_policy_first_then_label_isolates_the_running_miner(
    lab: Any, fresh_cryptominer: CryptominerScenario
) -> None:
    sc = fresh_cryptominer
    lab.client.wait_until(lambda: sc.pool_messages() >= 3, timeout=20)
    assert lab.kubectl("apply", "-f", "-", input=QUARANTINE.format(ns=sc.namespace)).returncode == 0
    time.sleep(0.5)
    n = sc.pool_messages()
    lab.client.wait_until(lambda: sc.pool_messages() > n + 1, timeout=10)  # not selected yet
    r = lab.kubectl("label", "pod", "-n", sc.namespace, sc.pod, "falcoir.dev/quarantine=true")
    assert r.returncode == 0, r.stderr
    time.sleep(1.0)
    n = sc.pool_messages()
    time.sleep(2.0)
    assert sc.pool_messages() == n
    probe = kexec(lab, sc, "timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/pool.example.com/3333")
    assert probe.returncode != 0


def test_cli_prints_the_alert_and_replays_idempotently(
    lab: Any, cryptominer: CryptominerScenario
) -> None:
    from tests.plugins.lab import run_falcoir

    r = run_falcoir("lab", "scenario", "cryptominer", "--state-dir", str(lab.state_dir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [cryptominer.alert_text]
    assert f"default/{cryptominer.pod}" in r.stderr
    j = run_falcoir(
        "lab", "scenario", "cryptominer", "--state-dir", str(lab.state_dir), "-o", "json"
    )
    doc = json.loads(j.stdout)
    assert (doc["pod"], doc["host_pid"], doc["vpid"]) == (
        cryptominer.pod,
        cryptominer.host_pid,
        cryptominer.vpid,
    )
    assert doc["alert"]["output_fields"]["proc.pid"] == cryptominer.host_pid
    assert len(lab.client.list("pods", "default", label_selector="app=cryptominer")) == 1
