"""examples/rbac.yaml and the code stay in step, and the code asks for no more than it
declares."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from falcoir.core.contain import (
    DeleteOptions,
    QuarantineOptions,
    delete,
    plan_delete,
    quarantine,
    release,
)
from falcoir.core.gateway import RESOURCES_BY_KIND
from falcoir.core.incident import IncidentStore
from falcoir.core.rbac import COMMAND_PERMISSIONS, Permission, rbac_manifest, rbac_yaml
from falcoir.core.target import PodRef
from tests.contain.cluster import NS, OTHER, POD, POOL, make_cluster, target

ROOT = Path(__file__).resolve().parents[2]
GROUPS = {r.plural: r.group_version.rpartition("/")[0] for r in RESOURCES_BY_KIND.values()}


def test_examples_rbac_yaml_is_generated_from_the_code() -> None:
    text = (ROOT / "examples" / "rbac.yaml").read_text()
    assert text == rbac_yaml(), "regenerate examples/rbac.yaml (see its header)"
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs == rbac_manifest()
    names = {d["metadata"]["name"] for d in docs}
    assert {"falcoir-quarantine", "falcoir-release", "falcoir-delete", "falcoir-respond"} <= names
    for doc in docs:
        assert doc["kind"] == "ClusterRole"
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]


def test_roles_are_least_privilege() -> None:
    q = {str(p) for p in COMMAND_PERMISSIONS["quarantine"]}
    assert "create networkpolicies.networking.k8s.io" in q
    assert not any(p.startswith("delete") for p in q)
    assert "delete pods" not in {str(p) for p in COMMAND_PERMISSIONS["release"]}
    d = {str(p) for p in COMMAND_PERMISSIONS["delete"]}
    assert "create networkpolicies.networking.k8s.io" not in d
    assert "patch deployments.apps/scale" in d


def _observed(calls: list[tuple[str, ...]]) -> set[Permission]:
    seen: set[Permission] = set()
    for call in calls:
        verb = call[0]
        if verb in ("whoami", "access_review"):
            continue
        if verb == "exec":
            seen.add(Permission("create", "pods", "", "exec"))
            continue
        if verb == "log":
            seen.add(Permission("get", "pods", "", "log"))
            continue
        res, _, sub = call[1].partition("/")
        seen.add(Permission(verb, res, GROUPS.get(res, ""), sub))
    return seen


@pytest.mark.parametrize("command", ["quarantine", "release", "delete"])
def test_every_call_is_declared(command: str, tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path)
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    opts = QuarantineOptions(detach_from_owner=True, probe=POOL, verify_seconds=0.1)
    if command != "quarantine":
        quarantine(cluster, t, alert=None, options=opts, incident=inc, log=inc.action_log())
        cluster.calls.clear()
    if command == "quarantine":
        quarantine(cluster, t, alert=None, options=opts, incident=inc, log=inc.action_log())
    elif command == "release":
        release(cluster, pod=PodRef(NS, POD), incident_id=None, store=store)
    else:
        t2 = target(cluster, OTHER)
        plan = plan_delete(cluster, t2, store=store)
        delete(
            cluster,
            t2,
            plan=plan,
            options=DeleteOptions(force=True, scale_owner=True),
            incident=inc,
            log=inc.action_log(),
        )
    observed = _observed(cluster.calls)
    assert observed, "the command made no calls?"
    undeclared = observed - set(COMMAND_PERMISSIONS[command])
    assert not undeclared, f"{command} uses undeclared permissions: {undeclared}"
    # and every access review it ran asked about something it then needed or declared
    reviews = {c[1:3] for c in cluster.calls if c[0] == "access_review"}
    assert reviews, "no SelfSubjectAccessReview before acting"
