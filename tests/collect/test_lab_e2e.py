"""End to end against the falcoir lab: real API server, real exec, pods as real processes.

The CLI runs as a subprocess (``python -m falcoir``); bundles are checked with
``falcoir bundle verify`` and with the bagit library's own validation.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import bagit
import pytest

from tests.plugins.lab import Lab, falcoir_env

pytestmark = [pytest.mark.lab, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
MINER_CMD = (
    "cp /bin/sleep /tmp/xmrig && chmod +x /tmp/xmrig && "
    "touch '/tmp/$(reboot);' \"$(printf '/tmp/new\\nline')\" \"$(printf '/tmp/bad\\377')\" && "
    "exec -a $'\\e[31m[bold]evil[/]' /tmp/xmrig 3600 & "
    "/tmp/xmrig 3599 & wait"
)
ALERT = (
    "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig 3599, pid=12345)"
)


@pytest.fixture(autouse=True)
def _root_only() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("the lab isolates pods (own pid namespace, private /tmp) only as root")


def falcoir(
    lab: Lab, home: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args, "--kubeconfig", str(lab.kubeconfig)]
        if args[0] == "collect"
        else [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=falcoir_env(FALCOIR_HOME=str(home)),
        check=False,
        cwd=str(home),
    )


def make_pod(lab: Lab, ns: str, name: str, image: str, command: list[str] | None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": image}
    if command:
        c["command"] = command
    lab.client.create(
        "pods",
        {"metadata": {"name": name, "namespace": ns}, "spec": {"containers": [c]}},
        ns,
    )
    return lab.client.wait_for(
        "pods",
        name,
        ns,
        lambda p: (p.get("status") or {}).get("phase") == "Running",
        timeout=30,
    )


def test_ubuntu_pod_full_collection(lab: Lab, fresh_namespace: str, tmp_path: Path) -> None:
    ns = fresh_namespace
    make_pod(lab, ns, "web", "ubuntu:latest", ["/bin/bash", "-c", MINER_CMD])
    lab.client.wait_until(
        lambda: "3599" in lab.kubectl("exec", "-n", ns, "web", "--", "ps", "aux").stdout,
        timeout=20,
    )
    r = falcoir(lab, tmp_path, "collect", ALERT, "--pod", f"{ns}/web", "--out", "ev", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    bundle = Path(doc["bundle"])
    data = bundle / "data"
    ps = (data / "processes/ps.txt").read_bytes()
    assert b"/tmp/xmrig 3599" in ps
    # ps prints the escape as "."; the /proc dump keeps the raw bytes
    assert b"\x1b[31m[bold]evil[/]" in (data / "processes/proc.txt").read_bytes()
    ls = (data / "files/ls-tmp.txt").read_bytes()
    assert b"xmrig" in ls and b"$(reboot);" in ls and b"bad\xff" in ls  # raw bytes kept
    # the suspect binary: hash in the pod, hash of the copy, hash of the real file
    host_sleep = hashlib.sha256(
        Path(shutil.which("sleep") or "/bin/sleep").read_bytes()
    ).hexdigest()
    assert doc["binary"]["sha256"] == doc["binary"]["in_pod_sha256"] == host_sleep
    copied = data / "binary/exe.bin"
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == host_sleep
    assert copied.stat().st_mode & 0o222 == 0 and copied.stat().st_mode & 0o111 == 0
    assert "ownerReferences" not in (data / "api/pod.yaml").read_text()
    # the human output never shows the raw escape
    h = falcoir(lab, tmp_path, "bundle", "show", str(bundle))
    assert h.returncode == 0 and "\x1b[31m" not in h.stderr
    # verified by falcoir and by bagit, on the directory and the archive
    assert falcoir(lab, tmp_path, "bundle", "verify", str(bundle)).returncode == 0
    assert falcoir(lab, tmp_path, "bundle", "verify", doc["archive"]).returncode == 0
    assert bagit.Bag(str(bundle)).is_valid()
    # one flipped byte in any artifact: both checks fail
    copied.chmod(0o644)
    raw = bytearray(copied.read_bytes())
    raw[100] ^= 0x01
    copied.write_bytes(bytes(raw))
    bad = falcoir(lab, tmp_path, "bundle", "verify", str(bundle))
    assert bad.returncode == 1 and "data/binary/exe.bin" in bad.stderr
    assert not bagit.Bag(str(bundle)).is_valid()


def test_busybox_pod(lab: Lab, fresh_namespace: str, tmp_path: Path) -> None:
    make_pod(lab, fresh_namespace, "bb", "busybox:1.36", None)
    r = falcoir(lab, tmp_path, "collect", "--pod", f"{fresh_namespace}/bb", "--out", "ev",
                "-o", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    st = {c["name"]: c["status"] for c in doc["collectors"]}
    assert st["processes"] == st["network"] == st["files"] == "ok"
    assert st["binary"] == "skipped"
    assert bagit.Bag(doc["bundle"]).is_valid()


def test_distroless_pod_with_and_without_debug(
    lab: Lab, fresh_namespace: str, tmp_path: Path
) -> None:
    ns = fresh_namespace
    make_pod(lab, ns, "dl", "gcr.io/distroless/static", None)
    r = falcoir(lab, tmp_path, "collect", "--pod", f"{ns}/dl", "--out", "ev", "-o", "json")
    assert r.returncode == 7, r.stderr
    doc = json.loads(r.stdout)
    assert doc["complete"] is False
    assert any("no shell or tools" in n for n in doc["notes"])
    assert bagit.Bag(doc["bundle"]).info["Falcoir-Complete"] == "false"

    r = falcoir(lab, tmp_path, "collect", "--pod", f"{ns}/dl", "--pid", "1", "--out", "ev",
                "--ephemeral-debug", "-o", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["debug_container"].startswith("falcoir-debug-")
    assert doc["binary"]["sha256"] and doc["binary"]["path"] == "/app"
    pod = lab.client.get("pods", "dl", ns)
    assert pod["spec"]["ephemeralContainers"][0]["targetContainerName"] == "app"
    actions = (Path(doc["bundle"]) / "data/actions.jsonl").read_text().splitlines()
    assert any(json.loads(a)["action"] == "ephemeral-container" for a in actions)


def test_api_faults_during_collection_are_retried_or_recorded(
    lab: Lab, fresh_namespace: str, tmp_path: Path
) -> None:
    from falcoir.cluster import connect
    from falcoir.core.bundle import verify
    from falcoir.core.collect import CollectOptions, run_collect, target_from_pod
    from falcoir.core.incident import IncidentStore
    from falcoir.core.target import PodRef

    make_pod(lab, fresh_namespace, "flaky", "ubuntu:latest", None)
    gw = connect(str(lab.kubeconfig))
    target = target_from_pod(gw, PodRef(fresh_namespace, "flaky"))
    # The lab drops plain responses and watches (its exec streams are not dropped: the
    # exec-drop path is covered by test_collect_scripted); 503s on top.
    lab.set_faults(rate_drop=0.3, rate_503=0.2)
    try:
        res = run_collect(
            gw, target, alert=None, out_dir=tmp_path / "ev",
            options=CollectOptions(timeout=10), store=IncidentStore(tmp_path / "home"),
        )  # fmt: skip
    finally:
        lab.clear_faults()
    assert res.bundle is not None and verify(res.bundle.dir).ok
    # every collector has an outcome and every attempt is in the bundle
    assert {c.name for c in res.collectors} >= {"processes", "network", "files", "pod"}
    for a in res.artifacts:
        assert (res.bundle.dir / a.path).exists()
        if a.source == "exec":
            assert a.argv and a.status.value in {
                "ok",
                "failed",
                "not-found",
                "timeout",
                "truncated",
            }
        if a.status.value == "failed":
            assert a.error or a.exit_code  # a failure always says why
    # the verdict follows the collectors, and the bag says the same
    assert res.complete == all(c.status.good for c in res.collectors)
    assert bagit.Bag(str(res.bundle.dir)).info["Falcoir-Complete"] == str(res.complete).lower()


def test_cryptominer_scenario_from_falcos_alert(lab: Lab, cryptominer: Any, tmp_path: Path) -> None:
    """The issue's check: the walkthrough's miner, collected from Falco's own alert."""
    sc = cryptominer
    real = hashlib.sha256(Path(f"/proc/{sc.host_pid}/exe").read_bytes()).hexdigest()
    r = falcoir(lab, tmp_path, "collect", sc.alert_text, "--out", "ev", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target"]["pod"] == sc.pod and doc["target"]["container"] == sc.container
    data = Path(doc["bundle"]) / "data"
    ps = (data / "processes/ps.txt").read_text(errors="replace")
    assert "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x" in ps
    assert "xmrig" in (data / "files/ls-tmp.txt").read_text(errors="replace")
    conns = json.loads((data / "network/connections.json").read_text())
    pool = [c for c in conns if c["remote_port"] == 3333 and c["state"] == "ESTABLISHED"]
    assert pool and sc.vpid in pool[0]["pids"] and "xmrig" in pool[0]["processes"], conns
    assert b":3333" in (data / "network/netstat.txt").read_bytes()
    assert doc["binary"]["vpid"] == sc.vpid
    assert doc["binary"]["sha256"] == doc["binary"]["in_pod_sha256"] == real
    copied = data / "binary/exe.bin"
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == real
    assert (data / "alert.txt").read_text() == sc.alert_text
    bundle = Path(doc["bundle"])
    assert falcoir(lab, tmp_path, "bundle", "verify", str(bundle)).returncode == 0
    assert falcoir(lab, tmp_path, "bundle", "verify", doc["archive"]).returncode == 0
    bag = bagit.Bag(str(bundle))
    assert bag.is_valid()
    assert bag.info["Falcoir-Operator"] not in ("", "unknown")  # who the API says we are
    assert bag.info["Falcoir-Incident"] == doc["incident"]
    assert "Suspicious crypto miner process" in bag.info["Falcoir-Alert"]
    # any artifact, one flipped byte: both checks fail
    victim = data / "network/connections.json"
    victim.chmod(0o644)
    raw = bytearray(victim.read_bytes())
    raw[0] ^= 0x20
    victim.write_bytes(bytes(raw))
    bad = falcoir(lab, tmp_path, "bundle", "verify", str(bundle), "-o", "json")
    assert bad.returncode == 1
    assert [p["path"] for p in json.loads(bad.stdout)["problems"]] == [
        "data/network/connections.json"
    ]
    assert not bagit.Bag(str(bundle)).is_valid()
