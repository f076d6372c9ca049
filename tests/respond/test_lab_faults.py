"""Failures injected at each step on the lab: the exit code and the bundle say what
happened, and nothing that was saved is lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from falcoir.core import report
from falcoir.core.bundle import verify
from falcoir.core.clock import Clock
from falcoir.core.collect import CollectOptions
from falcoir.core.gateway import JSON, NETWORK_POLICIES, PODS, Resource
from falcoir.core.incident import IncidentStore
from falcoir.core.parse import parse_text
from falcoir.core.policy import ActionOptions
from falcoir.core.respond import RespondRequest, respond
from falcoir.core.respond.real import RealBackend
from falcoir.errors import ApiError
from tests.plugins.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.root, pytest.mark.slow]


class Failing:
    """A gateway that answers 500 to creating NetworkPolicies (after retries too)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        if resource == NETWORK_POLICIES:
            raise ApiError("Internal error (injected)", status=500, reason="InternalError")
        result: JSON = self.inner.create(resource, body, dry_run=dry_run)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(lab: Lab, tmp_path: Path, scenario: Any, backend: RealBackend) -> Any:
    alert = parse_text(scenario.alert_text).alerts[0]
    return respond(
        backend,
        RespondRequest(alert=alert, out_dir=tmp_path / "out", options=ActionOptions()),
        store=backend.store,
        clock=Clock.now(),
        report_writer=report.render,
    )


def gateway(lab: Lab) -> Any:
    from falcoir.cluster import connect

    return connect(str(lab.kubeconfig))


def bundle_index(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (Path(result.bundle["dir"]) / "data" / "index.json").read_text()
    )
    return doc


def test_lab_500_on_the_policy_fails_quarantine_and_keeps_the_evidence(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    backend = RealBackend(Failing(gateway(lab)), IncidentStore(tmp_path / "home"))
    result = run(lab, tmp_path, fresh_cryptominer, backend)
    doc = result.to_dict()
    assert doc["failed_step"] == "quarantine" and result.exit_code == 1
    assert "injected" in doc["error"]["message"]
    assert doc["collect"]["complete"] is True
    assert verify(Path(doc["collect"]["bundle"])).ok
    respond_json = json.loads((Path(doc["collect"]["bundle"]) / "data/respond.json").read_text())
    steps = {s["name"]: s for s in respond_json["steps"]}
    assert steps["quarantine"]["status"] == "failed"
    md = (Path(doc["collect"]["bundle"]) / "data/report.md").read_text()
    assert "quarantine failed" in md


def test_pod_gone_midway_gives_an_incomplete_bundle_and_exit_7(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    sc = fresh_cryptominer

    class PodVanishes(RealBackend):
        def collect(self, target: Any, bundle: Any, options: Any, progress: Any) -> Any:
            self.gateway.delete(PODS, target.pod, target.namespace, grace_period_seconds=0)
            return super().collect(target, bundle, options, progress)

    backend = PodVanishes(gateway(lab), IncidentStore(tmp_path / "home"))
    result = run(lab, tmp_path, sc, backend)
    doc = result.to_dict()
    # the pod vanishes while quarantine and collection run: not found (5) if quarantine
    # notices it, else evidence incomplete (7)
    assert result.exit_code in (5, 7), doc["error"]
    assert doc["collect"]["complete"] is False
    assert doc["delete"] is None  # never deletes on incomplete evidence
    assert "evidence incomplete" in result.records["delete"].detail
    index = bundle_index(result)
    assert index["complete"] is False
    assert any(a["status"] != "ok" for a in index["artifacts"])
    assert verify(Path(doc["collect"]["bundle"])).ok  # incomplete, but intact


def test_collector_timeout_marks_the_bundle_incomplete(
    lab: Lab, fresh_cryptominer: Any, tmp_path: Path
) -> None:
    class Hasty(RealBackend):
        def _collect_options(self, options: ActionOptions, *, volatile: bool) -> CollectOptions:
            return CollectOptions(timeout=1.0, deadline=0.05, volatile=volatile)

    backend = Hasty(gateway(lab), IncidentStore(tmp_path / "home"))
    result = run(lab, tmp_path, fresh_cryptominer, backend)
    doc = result.to_dict()
    assert result.exit_code == 7, doc["error"]
    assert doc["status"] == "incomplete"
    assert doc["quarantine"]["verified"]["egress_blocked"] is True  # containment held
    assert bundle_index(result)["complete"] is False
    said = json.loads((Path(doc["collect"]["bundle"]) / "data/respond.json").read_text())
    statuses = {c["status"] for c in said["collect"]["collectors"]}
    assert "timeout" in statuses, said["collect"]
    assert lab.client.get("pods", fresh_cryptominer.pod, namespace=fresh_cryptominer.namespace)
