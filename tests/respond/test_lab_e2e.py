"""respond end to end on the lab's cryptominer scenario, driven as a runbook would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from falcoir.core import report
from tests.plugins.lab import Lab, falcoir_env

from . import chromium

pytestmark = [pytest.mark.lab, pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def respond_cli(
    lab: Lab, home: Path, *args: str, stdin: str | None = None, context: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "falcoir", "respond", *args, "--kubeconfig", str(lab.kubeconfig)]
    if context:
        argv += ["--context", context]
    env = falcoir_env(FALCOIR_HOME=str(home))
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
        start_new_session=True,  # no controlling terminal: nobody to ask
    )


def pool_messages(state_dir: Path, ip: str) -> int:
    from falcoir.lab.linux.pool import read_records

    return sum(
        1
        for r in read_records(state_dir)
        if r.get("event") == "message" and str(r.get("peer", "")).startswith(ip + ":")
    )


def get_pod(lab: Lab, ns: str, name: str) -> dict[str, Any] | None:
    from falcoir.lab.client import LabApiError

    try:
        pod: dict[str, Any] = lab.client.get("pods", name, namespace=ns)
        return pod
    except LabApiError:
        return None


def wait_for(pred: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    return pred()


def replacement(lab: Lab, ns: str, old: str) -> str | None:
    pods = lab.client.list("pods", namespace=ns, label_selector="app=cryptominer")
    for p in pods:
        meta = p["metadata"]
        if (
            meta["name"] != old
            and not meta.get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running"
        ):
            return str(meta["name"])
    return None


def snapshot_objects(lab: Lab, ns: str) -> list[tuple[str, str, str, str]]:
    out = []
    for res in ("pods", "networkpolicies"):
        for obj in lab.client.list(res, namespace=ns):
            m = obj["metadata"]
            out.append((res, m["name"], m.get("resourceVersion", ""), json.dumps(m.get("labels"))))
    return sorted(out)


@pytest.mark.parametrize("shape", ["text", "json"])
def test_respond_yes_contains_collects_deletes(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path, shape: str
) -> None:
    sc = fresh_cryptominer
    alert = sc.alert_text if shape == "text" else json.dumps(sc.alert_json)
    proc = respond_cli(lab, tmp_path / "home", "-f", "-", "--yes", "-o", "json",
                       "--out", str(tmp_path / "out"), stdin=alert + "\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "ok" and doc["failed_step"] is None
    loc = doc["locate"]
    assert (loc["namespace"], loc["pod"], loc["container"]) == (sc.namespace, sc.pod, "miner")
    assert loc["method"] == ("host-pid" if shape == "text" else "k8s-fields")
    assert doc["quarantine"]["verified"]["egress_blocked"] is True
    assert doc["delete"]["deleted"] is True
    t = doc["timings"]
    assert 0 < t["containment_s"] <= t["egress_verified_s"] <= t["total_s"]

    # the pod is deleted (gone, or terminating for its grace period) and the Deployment
    # made a replacement
    def deleted() -> bool:
        pod = get_pod(lab, sc.namespace, sc.pod)
        return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

    assert deleted()
    assert wait_for(lambda: replacement(lab, sc.namespace, sc.pod), 60)
    # the bundle verifies, with falcoir and with the BagIt library
    bundle = Path(doc["collect"]["bundle"])
    assert doc["collect"]["complete"] is True
    from falcoir.core.bundle import verify

    assert verify(bundle).ok
    assert verify(Path(doc["collect"]["archive"])).ok
    import bagit

    bagit.Bag(str(bundle)).validate()
    # the report's process tree shows the miner, marked
    # target.json (the bundle opens as soon as the pod is known) has the owner chain
    located = json.loads((bundle / "data" / "target.json").read_text())
    assert [o["kind"] for o in located["owner"]] == ["ReplicaSet", "Deployment"]
    md = (bundle / "data" / "report.md").read_text()
    suspect = [ln for ln in md.splitlines() if ln.endswith("<== SUSPECT")]
    assert suspect and "/tmp/xmrig" in suspect[0], md[:3000]
    html = (bundle / "data" / "report.html").read_text()
    assert 'class="proc suspect"' in html and "/tmp/xmrig" in html
    if shape == "text" and chromium.chromium_path() is not None:
        # the real report, drawn: the suspect's marker is on screen, nothing is fetched
        rows, console = chromium.render(bundle / "data" / "report.html", tmp_path, height=2400)
        assert console == [], console
        assert chromium.count(rows, chromium.hex_rgb(report.SUSPECT_COLOUR)) >= 14 * 12
    actions = [json.loads(x) for x in (bundle / "data" / "actions.jsonl").read_text().splitlines()]
    kinds = {(a["action"], a["kind"]) for a in actions}
    assert ("delete", "Pod") in kinds


def test_no_delete_leaves_the_pod_quarantined_and_the_pool_silent(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    sc = fresh_cryptominer
    ip = lab.client.get("pods", sc.pod, namespace=sc.namespace)["status"]["podIP"]
    assert wait_for(lambda: pool_messages(lab.state_dir, ip) > 0, 20), "the miner talks first"
    proc = respond_cli(lab, tmp_path / "home", sc.alert_text, "--yes", "--no-delete",
                       "-o", "json", "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["delete"] is None
    pod = get_pod(lab, sc.namespace, sc.pod)
    assert pod is not None and not pod["metadata"].get("deletionTimestamp")
    assert pod["metadata"]["labels"]["falcoir.io/quarantine"] == doc["incident"]
    policy = doc["quarantine"]["policy"]["name"]
    assert lab.client.get("networkpolicies", policy, namespace=sc.namespace)
    before = pool_messages(lab.state_dir, ip)
    time.sleep(2.0)
    assert pool_messages(lab.state_dir, ip) == before, "the pool still hears from the miner"


def test_dry_run_changes_nothing(lab: Lab, fresh_cryptominer: Any, tmp_path: Path) -> None:
    sc = fresh_cryptominer
    before = snapshot_objects(lab, sc.namespace)
    proc = respond_cli(lab, tmp_path / "home", sc.alert_text, "--dry-run", "-o", "json",
                       "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "dry-run"
    assert doc["quarantine"]["dry_run"] is True and doc["delete"]["dry_run"] is True
    assert snapshot_objects(lab, sc.namespace) == before
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "home").exists()


def test_forbidden_identity_exits_4_and_changes_nothing(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    sc = fresh_cryptominer
    before = snapshot_objects(lab, sc.namespace)
    alert = json.dumps(sc.alert_json)
    out = str(tmp_path / "out")
    proc = respond_cli(lab, tmp_path / "home", alert, "--yes", "-o", "json", "--out", out,
                       context="falcoir-lab-restricted")  # fmt: skip
    assert proc.returncode == 4, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["failed_step"] in ("locate", "check")
    assert doc["error"]["exit_code"] == 4
    assert doc["quarantine"] is None and doc["delete"] is None
    assert snapshot_objects(lab, sc.namespace) == before


def test_without_yes_and_no_terminal_it_refuses(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    sc = fresh_cryptominer
    before = snapshot_objects(lab, sc.namespace)
    proc = respond_cli(lab, tmp_path / "home", sc.alert_text, "-o", "json",
                       "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["failed_step"] == "confirm"
    assert "no terminal" in doc["error"]["message"]
    assert snapshot_objects(lab, sc.namespace) == before


def test_ctrl_c_mid_way_leaves_a_consistent_marked_state(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    import signal

    sc = fresh_cryptominer
    out = tmp_path / "out"
    env = falcoir_env(FALCOIR_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "falcoir", "respond", sc.alert_text, "--yes", "-o", "json",
         "--out", str(out), "--kubeconfig", str(lab.kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    # Ctrl-C as soon as evidence is being written (the bundle exists)
    assert wait_for(lambda: out.exists() and any(out.iterdir()), 60)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    doc = json.loads(stdout)
    assert doc["interrupted"] is True and doc["status"] == "interrupted"
    bundle = Path(doc["collect"]["bundle"])
    info = (bundle / "bag-info.txt").read_text()
    assert "Falcoir-Complete: false" in info
    from falcoir.core.bundle import verify

    assert verify(bundle).ok  # sealed, marked incomplete, intact
    said = json.loads((bundle / "data" / "respond.json").read_text())
    assert said["interrupted"] is True
    actions = [json.loads(x) for x in (bundle / "data" / "actions.jsonl").read_text().splitlines()]
    assert actions[-1]["action"] == "interrupt"
    # never half-quarantined: the label is on the pod only if the policy exists
    pod = get_pod(lab, sc.namespace, sc.pod)
    policies = lab.client.list("networkpolicies", namespace=sc.namespace)
    if pod is not None and "falcoir.io/quarantine" in pod["metadata"].get("labels", {}):
        assert policies, "a quarantine label without its policy"
    assert doc["delete"] is None


def test_scale_owner_stops_the_deployment_before_deleting(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    sc = fresh_cryptominer
    proc = respond_cli(lab, tmp_path / "home", sc.alert_text, "--yes", "--scale-owner",
                       "-o", "json", "--out", str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["delete"]["deleted"] is True and doc["delete"]["scaled"]
    dep = lab.client.get("deployments", sc.deployment, namespace=sc.namespace)
    assert dep["spec"]["replicas"] == 0
    time.sleep(1.0)
    assert replacement(lab, sc.namespace, sc.pod) is None
