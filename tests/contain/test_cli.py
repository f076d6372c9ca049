from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.core.contain import LABEL_KEY
from falcoir.core.gateway import DEPLOYMENTS, PODS
from falcoir.core.incident import IncidentStore, read_actions
from tests.contain.cluster import (
    DEPLOY,
    NS,
    OTHER,
    POD,
    POOL,
    ContainCluster,
    make_cluster,
    policies,
)

runner = CliRunner()


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ContainCluster:
    c = make_cluster()
    monkeypatch.setenv("FALCOIR_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("falcoir.cli.common.connect", lambda kubeconfig, context: c)
    monkeypatch.setattr("falcoir.cli.contain.VERIFY_SECONDS", 0.2)
    return c


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def test_quarantine_json_and_second_run(cluster: ContainCluster) -> None:
    probe = f"{POOL[0]}:{POOL[1]}"
    res = invoke("quarantine", "--pod", f"{NS}/{POD}", "--probe", probe, "--yes", "-o", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verified"]["egress_blocked"] is True
    assert doc["policy"]["namespace"] == NS
    assert doc["label"]["key"] == LABEL_KEY and doc["label"]["value"] == doc["incident"]
    assert doc["dry_run"] is False
    assert "egress blocked" in res.stderr
    res2 = invoke("quarantine", "--pod", f"{NS}/{POD}", "--probe", probe, "--yes", "-o", "json")
    assert res2.exit_code == 0
    doc2 = json.loads(res2.stdout)
    assert doc2["incident"] == doc["incident"]
    assert doc2["changed"] is False
    assert doc2["policy"]["status"] == "unchanged"


def test_quarantine_not_enforced_exits_1(cluster: ContainCluster) -> None:
    cluster.enforce = False
    res = invoke(
        "quarantine", "--pod", f"{NS}/{POD}", "--probe", "10.96.0.50:3333", "-y", "-o", "json"
    )
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["verified"]["egress_blocked"] is False
    assert "does not enforce" in res.stderr


def test_no_terminal_and_no_yes_refuses(cluster: ContainCluster) -> None:
    res = invoke("quarantine", "--pod", f"{NS}/{POD}")
    assert res.exit_code == 2
    assert "--yes" in res.stderr
    assert policies(cluster) == []
    assert not [c for c in cluster.calls if c[0] in ("create", "patch")]
    assert "plan for pod" in res.stderr


def test_dry_run_prints_exact_objects(cluster: ContainCluster) -> None:
    res = invoke("quarantine", "--pod", f"{NS}/{POD}", "--dry-run", "--allow-cidr", "10.1.0.0/16")
    assert res.exit_code == 0, res.stderr
    objs = yaml.safe_load(res.stdout)
    assert objs[0]["kind"] == "NetworkPolicy"
    assert objs[0]["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]}]
    assert (
        objs[1]["patch"]["metadata"]["labels"][LABEL_KEY]
        == objs[0]["metadata"]["labels"][LABEL_KEY]
    )
    assert policies(cluster) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--allow-cidr", "10.0.0.1/8"],
        ["--allow-cidr", "nonsense"],
        ["--probe", "host"],
        ["--probe", "-x:80"],
        ["--probe", "h:70000"],
    ],
)
def test_bad_input_exits_2_before_touching_the_cluster(
    cluster: ContainCluster, args: list[str]
) -> None:
    res = invoke("quarantine", "--pod", f"{NS}/{POD}", "--yes", *args)
    assert res.exit_code == 2, res.stderr
    assert cluster.calls == []


def test_bad_pod_flag(cluster: ContainCluster) -> None:
    for value in ["Bad_NS/pod", "ns/", "a/b/c"]:
        res = invoke("quarantine", "--pod", value, "--yes")
        assert res.exit_code == 2, value


def test_forbidden_exits_4_naming_each(cluster: ContainCluster) -> None:
    cluster.denied |= {("create", "networkpolicies", NS), ("patch", "pods", NS)}
    res = invoke("quarantine", "--pod", f"{NS}/{POD}", "--yes")
    assert res.exit_code == 4
    assert "create networkpolicies.networking.k8s.io -n shop" in res.stderr
    assert "patch pods -n shop" in res.stderr
    assert policies(cluster) == []


def test_quarantine_from_alert_probes_its_endpoint(cluster: ContainCluster) -> None:
    pod = cluster.get(PODS, POD, NS)
    alert = {
        "time": "2026-11-28T08:30:00.123456789Z",
        "rule": "Detect outbound connections to common miner pool ports",
        "priority": "Critical",
        "output": "miner",
        "output_fields": {
            "k8s.ns.name": NS,
            "k8s.pod.name": POD,
            "proc.cmdline": f"xmrig -o {POOL[0]}:{POOL[1]}",
            "fd.name": f"10.244.0.7:41234->{POOL[0]}:{POOL[1]}",
            "fd.rip": POOL[0],
            "fd.rport": POOL[1],
            "container.name": "miner",
        },
    }
    assert pod["metadata"]["uid"]
    res = invoke("quarantine", json.dumps(alert), "--yes", "-o", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verified"]["egress_blocked"] is True
    assert doc["verified"]["probe"]["endpoint"]["host"] == POOL[0]
    ann = doc["policy"]["object"]["metadata"]["annotations"]
    assert ann["falcoir.io/alert-rule"] == alert["rule"]


def test_release_restores(cluster: ContainCluster) -> None:
    res = invoke("quarantine", "--pod", f"{NS}/{POD}", "--yes", "-o", "json")
    inc = json.loads(res.stdout)["incident"]
    res = invoke("release", "--incident", inc)
    assert res.exit_code == 2  # needs --yes without a terminal
    res = invoke("release", "--incident", inc, "--yes", "-o", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["deleted_policies"] == [f"falcoir-quarantine-{inc}"]
    assert policies(cluster) == []
    assert LABEL_KEY not in cluster.get(PODS, POD, NS)["metadata"]["labels"]
    res = invoke("release", "--pod", f"{NS}/{POD}", "-o", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["changed"] is False
    assert invoke("release", "--incident", "bogus").exit_code == 2
    assert invoke("release").exit_code == 2


def test_delete_refuses_without_bundle_then_force_and_scale(
    cluster: ContainCluster, tmp_path: Path
) -> None:
    res = invoke("delete", "--pod", f"{NS}/{POD}", "--yes")
    assert res.exit_code == 2
    assert "no evidence bundle" in res.stderr
    assert ("pods", NS, POD) in cluster.objects
    res = invoke("delete", "--pod", f"{NS}/{POD}", "--force")
    assert res.exit_code == 2 and "--yes" in res.stderr
    assert "will recreate it" in res.stderr
    res = invoke(
        "delete", "--pod", f"{NS}/{POD}", "--force", "--scale-owner", "--dry-run", "-o", "json"
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "dry-run"
    assert cluster.get(DEPLOYMENTS, DEPLOY, NS)["spec"]["replicas"] == 2
    res = invoke(
        "delete", "--pod", f"{NS}/{OTHER}", "--force", "--scale-owner", "--yes", "-o", "json"
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["scaled"]["to"] == 0
    assert cluster.get(DEPLOYMENTS, DEPLOY, NS)["spec"]["replicas"] == 0
    store = IncidentStore(tmp_path / "home")
    inc = store.get(doc["incident"])
    assert inc is not None
    assert [r.action for r in read_actions(inc.actions_path)][-2:] == ["scale", "delete"]


def test_changes_land_in_the_evidence_bundle(cluster: ContainCluster, tmp_path: Path) -> None:
    from falcoir.core.bundle import ACTIONS_NAME, BundleWriter, verify

    store = IncidentStore(tmp_path / "home")
    pod = cluster.get(PODS, POD, NS)
    inc = store.open(NS, POD, pod["metadata"]["uid"])
    writer = BundleWriter.create(
        tmp_path / "out", inc, alert_raw=None, target=None, context="fake", operator="tester"
    )
    writer.add_bytes("note.txt", b"evidence\n")
    bundle = writer.finalize(True).dir
    store.add_bundle(inc, bundle)

    res = invoke("quarantine", "--pod", f"{NS}/{POD}", "--yes", "-o", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["incident"] == inc.id
    log = (bundle / "data" / ACTIONS_NAME).read_text()
    assert '"NetworkPolicy"' in log and '"create"' in log
    report = verify(bundle)
    assert report.ok, report.problems
    assert report.complete is True

    res = invoke("delete", "--pod", f"{NS}/{POD}", "--yes", "-o", "json")
    assert res.exit_code == 0, res.stderr  # a bundle exists: no --force needed
    log = (bundle / "data" / ACTIONS_NAME).read_text()
    assert '"delete"' in log
    assert verify(bundle).ok
