"""The lab through the official Python client (kubernetes 37) and raw HTTP."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.lab import Lab

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.lab
DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "cryptominer-demo"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "cryptominer"}},
        "template": {
            "metadata": {"labels": {"app": "cryptominer"}},
            "spec": {
                "containers": [
                    {
                        "name": "miner",
                        "image": "ubuntu:latest",
                        "command": ["/bin/sh", "-c", "sleep 3600"],
                    }
                ]
            },
        },
    },
}


def api(lab: Lab, context: str | None = None) -> Any:
    return config.new_client_from_config(config_file=str(lab.kubeconfig), context=context)


def running(core: Any, ns: str, selector: str, count: int, timeout: float = 15) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        pods = [
            p
            for p in core.list_namespaced_pod(ns, label_selector=selector).items
            if p.status.phase == "Running"
            and p.metadata.deletion_timestamp is None
            and all(cs.ready for cs in p.status.container_statuses or [])
        ]
        if len(pods) == count or time.monotonic() > deadline:
            return pods
        time.sleep(0.05)


def test_deployment_chain_and_owner_references(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    c = api(lab)
    apps, core = k8s.AppsV1Api(c), k8s.CoreV1Api(c)
    dep = apps.create_namespaced_deployment(ns, DEPLOY)
    assert dep.metadata.uid and dep.metadata.generation == 1
    assert dep.metadata.resource_version.isdigit()
    (pod,) = running(core, ns, "app=cryptominer", 1)
    (ref,) = pod.metadata.owner_references
    rs = apps.read_namespaced_replica_set(ref.name, ns)
    assert rs.metadata.owner_references[0].uid == dep.metadata.uid
    assert pod.metadata.labels["pod-template-hash"] == rs.metadata.labels["pod-template-hash"]
    cs = pod.status.container_statuses[0]
    assert cs.container_id.startswith("containerd://") and cs.ready
    # Scale subresource.
    apps.patch_namespaced_deployment_scale("cryptominer-demo", ns, {"spec": {"replicas": 2}})
    scale = apps.read_namespaced_deployment_scale("cryptominer-demo", ns)
    assert scale.spec.replicas == 2
    assert len(running(core, ns, "app=cryptominer", 2)) == 2
    # Status catches up.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = apps.read_namespaced_deployment_status("cryptominer-demo", ns).status
        if st.ready_replicas == 2:
            break
        time.sleep(0.05)
    assert st.ready_replicas == 2 and st.observed_generation == 2


def test_field_selectors_and_paging(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    core = k8s.CoreV1Api(api(lab))
    for i in range(5):
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": f"p{i}", "labels": {"i": str(i)}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    first = core.list_namespaced_pod(ns, limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata._continue and first.metadata.remaining_item_count == 3
    second = core.list_namespaced_pod(ns, limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["p2", "p3"]
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=lab-node")
    assert {p.metadata.name for p in on_node.items if p.metadata.namespace == ns} == {
        f"p{i}" for i in range(5)
    }
    named = core.list_namespaced_pod(ns, field_selector="metadata.name=p3")
    assert [p.metadata.name for p in named.items] == ["p3"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, field_selector="spec.containers.image=x")
    assert err.value.status == 400
    body = json.loads(err.value.body)
    assert body["reason"] == "BadRequest"
    assert body["message"].endswith("field label not supported: spec.containers.image")
    sel = core.list_namespaced_pod(ns, label_selector="i in (1,3),i!=3")
    assert [p.metadata.name for p in sel.items] == ["p1"]


def test_status_errors(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    core = k8s.CoreV1Api(api(lab))
    pod = {"metadata": {"name": "dup"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    core.create_namespaced_pod(ns, pod)
    cases = [
        (lambda: core.read_namespaced_pod("missing", ns), 404, "NotFound"),
        (lambda: core.create_namespaced_pod(ns, pod), 409, "AlreadyExists"),
        (
            lambda: core.create_namespaced_pod(
                ns, {"metadata": {"name": "bad"}, "spec": {"containers": [{"name": "c"}]}}
            ),
            422,
            "Invalid",
        ),
        (
            lambda: core.patch_namespaced_pod(
                "dup", ns, {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}}
            ),
            409,
            "Conflict",
        ),
        (lambda: core.create_namespaced_pod("no-such-ns", pod), 404, "NotFound"),
    ]
    for call, code, reason in cases:
        with pytest.raises(ApiException) as err:
            call()
        body = json.loads(err.value.body)
        assert (err.value.status, body["reason"], body["code"]) == (code, reason, code)
        assert body["kind"] == "Status" and body["status"] == "Failure"


def test_three_patch_types_and_dry_run(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    core = k8s.CoreV1Api(api(lab))
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "p", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    )
    # strategic merge (dict body), JSON patch (list body) through the client.
    core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"quarantine": "true"}}})
    core.patch_namespaced_pod(
        "p",
        ns,
        [{"op": "add", "path": "/metadata/annotations", "value": {"falcoir.dev/incident": "i-1"}}],
    )
    # JSON merge patch through LabClient.
    lab.client.patch("pods", "p", {"metadata": {"labels": {"app": None}}}, ns, patch_type="merge")
    # The runtime posts the pod's status on its own: read the resourceVersion only once
    # the pod is Running and ready, or a status write between the reads looks like a
    # dry run that changed something.
    (got,) = running(core, ns, "quarantine=true", 1)
    assert got.metadata.labels == {"quarantine": "true"}
    assert got.metadata.annotations == {"falcoir.dev/incident": "i-1"}
    rv = got.metadata.resource_version
    # dryRun on patch, create and delete changes nothing.
    dry = core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"x": "y"}}}, dry_run="All")
    assert dry.metadata.labels == {"quarantine": "true", "x": "y"}  # the would-be result
    core.create_namespaced_pod(
        ns,
        {"metadata": {"name": "ghost"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        dry_run="All",
    )
    core.delete_namespaced_pod("p", ns, dry_run="All")
    after = core.read_namespaced_pod("p", ns)
    assert after.metadata.resource_version == rv
    assert after.metadata.labels == {"quarantine": "true"}
    assert after.metadata.deletion_timestamp is None
    assert [p.metadata.name for p in core.list_namespaced_pod(ns).items] == ["p"]


def test_networkpolicy_round_trip(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    net = k8s.NetworkingV1Api(api(lab))
    pol = net.create_namespaced_network_policy(
        ns,
        {
            "metadata": {"name": "falcoir-quarantine"},
            "spec": {
                "podSelector": {"matchLabels": {"falcoir.dev/quarantine": "i-1"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                        "ports": [{"port": 53, "protocol": "UDP"}],
                    }
                ],
            },
        },
    )
    assert pol.spec.policy_types == ["Egress"]
    with pytest.raises(ApiException) as err:
        net.create_namespaced_network_policy(
            ns,
            {
                "metadata": {"name": "bad"},
                "spec": {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}],
                            "ports": [{"port": 70000}],
                        }
                    ],
                },
            },
        )
    body = json.loads(err.value.body)
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"spec.egress[0].ports[0].port", "spec.egress[0].to[0].ipBlock.except[0]"}


def test_watch_pods(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    core = k8s.CoreV1Api(api(lab))
    seen: list[tuple[str, str, str]] = []

    def creator() -> None:
        time.sleep(0.3)
        lab.client.create(
            "pods",
            {"metadata": {"name": "w"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            ns,
        )
        # Delete only once the runtime has posted Running (a fixed sleep races with it).
        lab.client.wait_for(
            "pods", "w", ns, lambda p: p.get("status", {}).get("phase") == "Running", timeout=15
        )
        lab.client.delete("pods", "w", ns, grace_period=0)

    t = threading.Thread(target=creator)
    t.start()
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_pod, ns, timeout_seconds=20):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].status.phase))
        if ev["type"] == "DELETED":
            w.stop()
    t.join()
    types = [s[0] for s in seen]
    assert types[0] == "ADDED" and types[-1] == "DELETED"
    assert ("MODIFIED", "w", "Running") in seen


def test_watch_resource_version_expired(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    # resourceVersions start above 1000: "1" is older than any history the lab keeps.
    events = list(lab.client.watch_events("pods", ns, resourceVersion="1", timeoutSeconds=1))
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    # A current resourceVersion streams only what happens after it. A namespace of the
    # test's own: in "default" the runtime may still be posting status for other tests'
    # pods (the scenario's, a pod being killed), which would race with this read.
    rv = lab.client.request("GET", f"/api/v1/namespaces/{ns}/pods")["metadata"]["resourceVersion"]
    assert list(lab.client.watch_events("pods", ns, resourceVersion=rv, timeoutSeconds=1)) == []


def test_restricted_identity_and_reviews(lab: Lab, fresh_namespace: str) -> None:
    ns = fresh_namespace
    rc = api(lab, context="falcoir-lab-restricted")
    core = k8s.CoreV1Api(rc)
    assert isinstance(core.list_namespaced_pod(ns).items, list)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(
            ns, {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        )
    assert err.value.status == 403
    assert json.loads(err.value.body)["reason"] == "Forbidden"
    authz = k8s.AuthorizationV1Api(rc)
    review = authz.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "namespace": ns,
                    "resource": "pods",
                    "subresource": "exec",
                    "verb": "create",
                }
            }
        }
    )
    assert review.status.allowed is False
    review = authz.create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"namespace": ns, "resource": "pods", "verb": "list"}}}
    )
    assert review.status.allowed is True
    admin = k8s.AuthorizationV1Api(api(lab))
    review = admin.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {
                    "namespace": ns,
                    "resource": "pods",
                    "subresource": "exec",
                    "verb": "create",
                }
            }
        }
    )
    assert review.status.allowed is True
    who = k8s.AuthenticationV1Api(rc).create_self_subject_review({})
    assert who.status.user_info.username == "restricted"


def test_wrong_token_401_status_json(lab: Lab) -> None:
    doc = json.loads(lab.kubeconfig.read_text())
    ca = (lab.state_dir / "ca.crt").read_text()
    ctx = ssl.create_default_context(cadata=ca)
    server = doc["clusters"][0]["cluster"]["server"]
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        req = urllib.request.Request(server + "/api/v1/pods", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, context=ctx, timeout=10)
        assert err.value.code == 401
        body = json.loads(err.value.read())
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)
    cfg = k8s.Configuration()
    cfg.host = server
    cfg.ssl_ca_cert = str(lab.state_dir / "ca.crt")
    cfg.api_key = {"authorization": "Bearer wrong"}
    with pytest.raises(ApiException) as exc:
        k8s.CoreV1Api(k8s.ApiClient(cfg)).list_namespaced_pod("default")
    assert exc.value.status == 401


def test_bearer_scheme_is_case_insensitive(lab: Lab, tmp_path: Path) -> None:
    from kubernetes.config.incluster_config import InClusterConfigLoader

    token = json.loads((lab.state_dir / "tokens.json").read_text())["admin"]
    ca = (lab.state_dir / "ca.crt").read_text()
    server = json.loads(lab.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cadata=ca)
    for scheme in ("bearer", "BEARER", "Bearer"):
        req = urllib.request.Request(
            server + "/api/v1/namespaces", headers={"Authorization": f"{scheme} {token}"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert json.loads(resp.read())["kind"] == "NamespaceList"
    # The official client's in-cluster loader, as in a pod: token file, "bearer <token>".
    (tmp_path / "token").write_text(token)
    host, port = server.removeprefix("https://").rsplit(":", 1)
    cfg = k8s.Configuration()
    InClusterConfigLoader(
        token_filename=str(tmp_path / "token"),
        cert_filename=str(lab.state_dir / "ca.crt"),
        environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
    ).load_and_set(cfg)
    assert cfg.api_key["BearerToken"].startswith("bearer ")
    names = {n.metadata.name for n in k8s.CoreV1Api(k8s.ApiClient(cfg)).list_namespace().items}
    assert "default" in names
    # Still no way in without a token after the scheme.
    req = urllib.request.Request(server + "/api/v1/pods", headers={"Authorization": "bearer "})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert err.value.code == 401


def test_spdy_exec_answered_with_status(lab: Lab) -> None:
    lab.client.create(
        "pods",
        {"metadata": {"name": "spdy"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        "default",
    )
    try:
        with pytest.raises(Exception) as err:
            lab.client.request(
                "POST",
                "/api/v1/namespaces/default/pods/spdy/exec?command=true&stdout=1",
            )
        assert getattr(err.value, "status", None) == 400
        assert "SPDY is not supported" in str(err.value)
    finally:
        lab.client.delete("pods", "spdy", "default", grace_period=0)


def test_kubeconfig_contexts(lab: Lab) -> None:
    doc = json.loads(Path(lab.kubeconfig).read_text())
    assert doc["current-context"] == "falcoir-lab"
    assert {c["name"] for c in doc["contexts"]} == {"falcoir-lab", "falcoir-lab-restricted"}
    assert doc["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert oct(lab.kubeconfig.stat().st_mode & 0o777) == "0o600"
