"""Security: the pod's own ``falcoir.io/quarantine`` label proves nothing.

A workload can carry the label in its template. Only a falcoir NetworkPolicy of that
incident (or the incident store's record of one) makes it an existing quarantine;
otherwise quarantine replaces the label, logs it, and contains the pod."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.core.contain import LABEL_KEY, QuarantineOptions, build_policy, quarantine, release
from falcoir.core.contain.common import Step
from falcoir.core.contain.policy import PolicySpecOptions
from falcoir.core.gateway import NETWORK_POLICIES, PODS
from falcoir.core.incident import IncidentStore, read_actions
from falcoir.core.target import PodRef
from falcoir.errors import InputError
from tests.contain.cluster import NS, OTHER, POD, POOL, ContainCluster, make_cluster, target
from tests.contain.test_quarantine import FAST, miner_alert

FORGED = "inc-20260101-000000-abcdef"


def forge(cluster: ContainCluster, value: str, *pods: str) -> None:
    for name in pods or (POD, OTHER):
        cluster.objects[("pods", NS, name)]["metadata"]["labels"][LABEL_KEY] = value


def run(cluster: ContainCluster, store: IncidentStore):  # type: ignore[no-untyped-def]
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    steps: list[Step] = []
    result = quarantine(
        cluster,
        t,
        alert=miner_alert(),
        options=QuarantineOptions(**FAST),  # type: ignore[arg-type]
        incident=inc,
        log=inc.action_log("tester"),
        on_step=steps.append,
        store=store,
    )
    return result, inc, steps


def policy_for(incident: str) -> dict[str, Any]:
    return build_policy(
        incident_id=incident,
        namespace=NS,
        pod=POD,
        pod_uid=None,
        opts=PolicySpecOptions(),
        rule=None,
        alert_time=None,
        applied_by="tester",
        applied_at="2026-01-01T00:00:00.000000Z",
    )


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "home")


@pytest.mark.parametrize("value", [FORGED, "x"])
def test_forged_label_does_not_block_quarantine(store: IncidentStore, value: str) -> None:
    cluster = make_cluster()
    forge(cluster, value)  # the Deployment template carries it: every replica has it
    result, inc, steps = run(cluster, store)

    assert result.egress_blocked is True
    assert result.label_status == "applied"
    assert cluster.get(PODS, POD, NS)["metadata"]["labels"][LABEL_KEY] == inc.id
    # the other replica keeps its own (meaningless) label and is not selected
    assert cluster.get(PODS, OTHER, NS)["metadata"]["labels"][LABEL_KEY] == value
    assert result.verified["labelled_pods"] == [POD]
    # a baseline was taken: the endpoint was reachable before
    assert result.verified["probe"]["before"]["connected"] is True
    assert any(s.status == "warning" and "backs it" in s.detail for s in steps)
    patches = [a for a in read_actions(inc.actions_path) if a.kind == "Pod"]
    assert len(patches) == 1 and patches[0].outcome == "ok"
    assert patches[0].data["replaced_label"] == value
    assert value in patches[0].detail


def test_label_backed_by_a_falcoir_policy_is_an_existing_quarantine(
    store: IncidentStore,
) -> None:
    cluster = make_cluster()
    forge(cluster, FORGED, POD)
    cluster.add(
        NETWORK_POLICIES,
        policy_for(FORGED),
    )
    with pytest.raises(InputError, match="already quarantined"):
        run(cluster, store)


def test_policy_of_another_incident_or_not_falcoirs_does_not_count(store: IncidentStore) -> None:
    cluster = make_cluster()
    forge(cluster, FORGED, POD)
    fake = policy_for(FORGED)
    fake["metadata"]["labels"] = {LABEL_KEY: FORGED}  # not managed by falcoir
    cluster.add(NETWORK_POLICIES, fake)
    result, inc, _ = run(cluster, store)
    assert cluster.get(PODS, POD, NS)["metadata"]["labels"][LABEL_KEY] == inc.id
    assert result.incident == inc.id


def test_store_record_with_a_policy_is_an_existing_quarantine(store: IncidentStore) -> None:
    cluster = make_cluster()
    earlier = store.open(NS, OTHER, None, incident_id=FORGED)  # not found by for_pod(POD)
    store.set_policy(earlier, f"falcoir-quarantine-{FORGED}")
    forge(cluster, FORGED, POD)
    with pytest.raises(InputError, match="already quarantined"):
        run(cluster, store)


@pytest.mark.parametrize("value", ["x", "inc-../../etc", FORGED])
def test_release_by_pod_ignores_foreign_label_values(store: IncidentStore, value: str) -> None:
    cluster = make_cluster()
    forge(cluster, value, POD)
    res = release(cluster, pod=PodRef(NS, POD), incident_id=None, store=store)
    if value == FORGED:  # an incident id: its (absent) quarantine is looked up
        assert res.deleted_policies == ()
    else:
        assert res.incident is None and not res.changed
        assert cluster.get(PODS, POD, NS)["metadata"]["labels"][LABEL_KEY] == value


def test_cli_quarantine_and_release_with_forged_labels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = make_cluster()
    monkeypatch.setenv("FALCOIR_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("falcoir.cli.common.connect", lambda kubeconfig, context: cluster)
    monkeypatch.setattr("falcoir.cli.contain.VERIFY_SECONDS", 0.2)
    runner = CliRunner()
    forge(cluster, "x", OTHER)
    res = runner.invoke(app, ["release", "--pod", f"{NS}/{OTHER}", "--yes", "-o", "json"])
    assert res.exit_code == 0, res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert json.loads(res.stdout)["changed"] is False

    forge(cluster, FORGED, POD)
    probe = f"{POOL[0]}:{POOL[1]}"
    res = runner.invoke(
        app, ["quarantine", "--pod", f"{NS}/{POD}", "--probe", probe, "--yes", "-o", "json"]
    )
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["verified"]["egress_blocked"] is True
    assert doc["label"]["value"] != FORGED
    assert cluster.get(PODS, POD, NS)["metadata"]["labels"][LABEL_KEY] == doc["incident"]
    # a second run sees its own, policy-backed label: nothing to change
    res = runner.invoke(
        app, ["quarantine", "--pod", f"{NS}/{POD}", "--probe", probe, "--yes", "-o", "json"]
    )
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["changed"] is False
