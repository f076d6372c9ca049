"""KubeGateway against a fake API server: config, CRUD, paging, errors, retries, TLS."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from falcoir.cluster import KubeGateway, connect
from falcoir.core.gateway import NETWORK_POLICIES, NODES, PODS, ClusterGateway
from falcoir.errors import (
    ApiConflict,
    ApiError,
    ApiInvalid,
    ApiNotFound,
    ClusterUnreachable,
    Forbidden,
    InputError,
)
from tests.cluster.conftest import FAST_RETRY
from tests.cluster.fakeapi import Certs, FakeApi, status_body, write_kubeconfig

POD_PATH = "/api/v1/namespaces/prod/pods/web-1"


def test_kube_gateway_satisfies_the_protocol(gw: KubeGateway) -> None:
    as_protocol: ClusterGateway = gw
    assert as_protocol.context == "fake"
    assert as_protocol.server.startswith("http://127.0.0.1:")


# -- configuration ---------------------------------------------------------------------


def test_missing_kubeconfig_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match=str(missing)):
        connect(str(missing))


def test_unknown_context_names_context_and_alternatives(kubeconfig: Path) -> None:
    with pytest.raises(InputError) as info:
        connect(str(kubeconfig), context="prod-eu")
    assert "prod-eu" in info.value.message and str(kubeconfig) in info.value.message
    assert info.value.hint is not None and "fake" in info.value.hint


def test_garbage_kubeconfig_is_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("{{{ not yaml : [")
    with pytest.raises(InputError, match="cannot read kubeconfig"):
        connect(str(bad))


def test_kubeconfig_without_current_context(tmp_path: Path, api: FakeApi) -> None:
    path = write_kubeconfig(tmp_path / "k", api.url)
    doc = json.loads(path.read_text())
    doc.pop("current-context")
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="current-context"):
        connect(str(path))
    assert connect(str(path), context="fake").context == "fake"


def test_kubeconfig_env_and_context_choice(
    tmp_path: Path, api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_kubeconfig(tmp_path / "k", api.url, extra_contexts=("other",))
    monkeypatch.setenv("KUBECONFIG", str(path))
    gw = connect()
    assert gw.context == "fake" and gw.kubeconfig_user == "tester"
    assert connect(context="other").context == "other"


def test_no_kubeconfig_and_not_in_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(InputError, match="not running inside a cluster"):
        connect()
    with pytest.raises(InputError, match="--context"):
        connect(context="x")


# -- objects ---------------------------------------------------------------------------


def test_get_returns_raw_json(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1", app="web")
    pod = gw.get(PODS, "web-1", "prod")
    assert pod["metadata"]["labels"] == {"app": "web"}
    req = api.requests_to("GET", POD_PATH)[0]
    assert req.headers["Authorization"] == "Bearer t0k3n"
    assert req.headers["Accept"] == "application/json"


def test_names_are_quoted_never_path_tricks(api: FakeApi, gw: KubeGateway) -> None:
    with pytest.raises(ApiNotFound):
        gw.get(PODS, "a/../../b", "prod")
    assert api.requests[-1].raw_path == "/api/v1/namespaces/prod/pods/a%2F..%2F..%2Fb"
    with pytest.raises(InputError):
        gw.get(PODS, "..", "prod")


def test_list_follows_continue_and_fills_kind(api: FakeApi, gw: KubeGateway) -> None:
    for i in range(7):
        api.add_pod("prod", f"p{i}", app="web" if i % 2 else "db")
    api.add_pod("dev", "other")
    pods = gw.list(PODS, "prod", limit=3)
    assert sorted(p["metadata"]["name"] for p in pods) == [f"p{i}" for i in range(7)]
    assert all(p["kind"] == "Pod" and p["apiVersion"] == "v1" for p in pods)
    pages = api.requests_to("GET", "/api/v1/namespaces/prod/pods")
    assert len(pages) == 3
    assert [r.q("continue") for r in pages] == [[], ["3"], ["6"]]
    assert len(gw.list(PODS)) == 8  # all namespaces: /api/v1/pods
    assert api.requests[-1].path == "/api/v1/pods"
    web = gw.list(PODS, "prod", label_selector="app=web")
    assert {p["metadata"]["name"] for p in web} == {"p1", "p3", "p5"}
    assert api.requests[-1].q("labelSelector") == ["app=web"]


def test_list_field_selector_error_is_invalid(api: FakeApi, gw: KubeGateway) -> None:
    with pytest.raises(ApiInvalid, match="field label not supported"):
        gw.list(PODS, field_selector="spec.bogus=1")


def test_cluster_scoped_resources_ignore_namespace(api: FakeApi, gw: KubeGateway) -> None:
    api.add("/api/v1", "nodes", {"metadata": {"name": "node-7"}})
    assert gw.get(NODES, "node-7", "prod")["metadata"]["name"] == "node-7"
    assert api.requests[-1].path == "/api/v1/nodes/node-7"


def test_create_dry_run_and_conflict(api: FakeApi, gw: KubeGateway) -> None:
    policy = {"metadata": {"name": "q", "namespace": "prod"}, "spec": {"policyTypes": ["Egress"]}}
    path = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies"
    out = gw.create(NETWORK_POLICIES, policy, dry_run=True)
    assert out["kind"] == "NetworkPolicy" and out["apiVersion"] == "networking.k8s.io/v1"
    assert api.requests_to("POST", path)[0].q("dryRun") == ["All"]
    assert not api.objects  # dry run stored nothing
    gw.create(NETWORK_POLICIES, policy)
    assert api.requests_to("POST", path)[1].q("dryRun") == []
    with pytest.raises(ApiConflict) as info:
        gw.create(NETWORK_POLICIES, policy)
    assert info.value.status == 409 and info.value.reason == "AlreadyExists"
    with pytest.raises(InputError, match="namespace"):
        gw.create(NETWORK_POLICIES, {"metadata": {"name": "x"}})


@pytest.mark.parametrize(
    ("patch_type", "patch", "content_type"),
    [
        ("merge", {"metadata": {"labels": {"q": "1"}}}, "application/merge-patch+json"),
        (
            "strategic",
            {"metadata": {"labels": {"q": "1"}}},
            "application/strategic-merge-patch+json",
        ),
        (
            "json",
            [{"op": "add", "path": "/metadata/labels/q", "value": "1"}],
            "application/json-patch+json",
        ),
    ],
)
def test_patch_content_types(
    api: FakeApi, gw: KubeGateway, patch_type: str, patch: object, content_type: str
) -> None:
    api.add_pod("prod", "web-1", app="web")
    out = gw.patch(PODS, "web-1", patch, "prod", patch_type=patch_type)  # type: ignore[arg-type]
    assert out["metadata"]["labels"] == {"app": "web", "q": "1"}
    req = api.requests_to("PATCH", POD_PATH)[0]
    assert req.headers["Content-Type"] == content_type
    assert json.loads(req.body) == patch


def test_patch_subresource_dry_run_and_bad_type(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    api.script("PATCH", POD_PATH + "/ephemeralcontainers", 200, {"kind": "Pod"})
    gw.patch(
        PODS,
        "web-1",
        {"spec": {"ephemeralContainers": [{"name": "dbg"}]}},
        "prod",
        patch_type="strategic",
        subresource="ephemeralcontainers",
        dry_run=True,
    )
    req = api.requests_to("PATCH", POD_PATH + "/ephemeralcontainers")[0]
    assert req.q("dryRun") == ["All"]
    with pytest.raises(InputError):
        gw.patch(PODS, "web-1", {"a": 1}, "prod", patch_type="apply")
    with pytest.raises(InputError):
        gw.patch(PODS, "web-1", {"a": 1}, "prod", patch_type="json")


def test_delete_options(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    gw.delete(PODS, "web-1", "prod", dry_run=True)
    assert ("/api/v1", "pods", "prod", "web-1") in api.objects
    out = gw.delete(PODS, "web-1", "prod", grace_period_seconds=0, propagation_policy="Background")
    assert out["metadata"]["name"] == "web-1"
    req = api.requests_to("DELETE", POD_PATH)[-1]
    assert req.q("gracePeriodSeconds") == ["0"] and req.q("propagationPolicy") == ["Background"]
    with pytest.raises(ApiNotFound):
        gw.delete(PODS, "web-1", "prod")


# -- error mapping ---------------------------------------------------------------------


def test_401_is_unreachable_with_hint(api: FakeApi, tmp_path: Path) -> None:
    gw = connect(str(write_kubeconfig(tmp_path / "k", api.url, token="wrong")), retry=FAST_RETRY)
    with pytest.raises(ClusterUnreachable) as info:
        gw.get(PODS, "x", "prod")
    assert "not authenticated" in info.value.message
    assert info.value.hint is not None and "fake" in info.value.hint


def test_403_names_the_missing_permission(api: FakeApi, gw: KubeGateway) -> None:
    msg = 'pods "web-1" is forbidden: User "bob" cannot patch resource "pods" in API group ""'
    api.script(
        "PATCH", POD_PATH, 403, status_body(403, "Forbidden", msg, name="web-1", kind="pods")
    )
    with pytest.raises(Forbidden) as info:
        gw.patch(PODS, "web-1", {"metadata": {}}, "prod")
    assert info.value.missing == ("patch pods -n prod",)
    assert 'User "bob"' in info.value.message
    api.script("GET", "/api/v1/nodes", 403, status_body(403, "Forbidden", "nodes is forbidden"))
    with pytest.raises(Forbidden) as info:
        gw.list(NODES)
    assert info.value.missing == ("list nodes",)


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (404, "NotFound", ApiNotFound),
        (409, "Conflict", ApiConflict),
        (400, "BadRequest", ApiInvalid),
        (422, "Invalid", ApiInvalid),
        (405, "MethodNotAllowed", ApiError),
        (501, "NotImplemented", ApiError),
    ],
)
def test_status_mapping(
    api: FakeApi, gw: KubeGateway, status: int, reason: str, error: type[ApiError]
) -> None:
    api.script("GET", POD_PATH, status, status_body(status, reason, f"the {reason} message"))
    with pytest.raises(error) as info:
        gw.get(PODS, "web-1", "prod")
    assert type(info.value) is error
    assert info.value.status == status and info.value.reason == reason
    assert f"the {reason} message" in info.value.message
    assert len(api.requests_to("GET", POD_PATH)) == 1  # none of these is retried


def test_huge_server_message_is_truncated(api: FakeApi, gw: KubeGateway) -> None:
    api.script("GET", POD_PATH, 422, status_body(422, "Invalid", "\x1b[31m" + "x" * 100_000))
    with pytest.raises(ApiInvalid) as info:
        gw.get(PODS, "web-1", "prod")
    assert len(info.value.message) < 1000
    assert "more)" in info.value.message


def test_non_json_error_body_kept(api: FakeApi, gw: KubeGateway) -> None:
    api.script("GET", POD_PATH, 404, "404 page not found")
    with pytest.raises(ApiNotFound, match="404 page not found"):
        gw.get(PODS, "web-1", "prod")


def test_connection_refused_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_kubeconfig(tmp_path / "k", f"http://127.0.0.1:{port}")
    gw = connect(str(path), retry=FAST_RETRY)
    with pytest.raises(ClusterUnreachable) as info:
        gw.get(PODS, "x", "prod")
    assert f"127.0.0.1:{port}" in info.value.message
    assert info.value.hint is not None and "context fake" in info.value.hint
    assert gw.stats.requests == 3  # connecting is always safe to retry


def test_timeout_is_unreachable(api: FakeApi, kubeconfig: Path) -> None:
    with socket.socket() as srv:  # accepts, never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        path = write_kubeconfig(
            kubeconfig.parent / "slow", f"http://127.0.0.1:{srv.getsockname()[1]}"
        )
        gw = connect(str(path), request_timeout=0.3, retry=FAST_RETRY)
        t0 = time.monotonic()
        with pytest.raises(ClusterUnreachable, match=r"timed out"):
            gw.get(PODS, "x", "prod")
        assert time.monotonic() - t0 < 5


# -- retries ---------------------------------------------------------------------------


def test_get_retried_on_429_honouring_retry_after(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    api.script(
        "GET",
        POD_PATH,
        429,
        status_body(429, "TooManyRequests", "slow down"),
        headers={"Retry-After": "0.3"},
    )
    t0 = time.monotonic()
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert time.monotonic() - t0 >= 0.3
    assert len(api.requests_to("GET", POD_PATH)) == 2
    assert gw.stats.retries == 1


def test_retry_after_is_capped(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    api.script("GET", POD_PATH, 429, {}, headers={"Retry-After": "3600"})
    t0 = time.monotonic()
    gw.get(PODS, "web-1", "prod")
    assert time.monotonic() - t0 < 2  # FAST_RETRY.max_wait is 0.5


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_list_retried_on_5xx(api: FakeApi, gw: KubeGateway, status: int) -> None:
    api.add_pod("prod", "web-1")
    api.script("GET", "/api/v1/namespaces/prod/pods", status, {}, times=2)
    assert len(gw.list(PODS, "prod")) == 1
    assert len(api.requests_to("GET", "/api/v1/namespaces/prod/pods")) == 3


def test_gives_up_after_the_attempts(api: FakeApi, gw: KubeGateway) -> None:
    api.script("GET", POD_PATH, 503, status_body(503, "ServiceUnavailable", "busy"), times=5)
    with pytest.raises(ApiError) as info:
        gw.get(PODS, "web-1", "prod")
    assert info.value.status == 503 and "busy" in info.value.message
    assert len(api.requests_to("GET", POD_PATH)) == 3


def test_get_retried_on_dropped_connection(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    api.script("GET", POD_PATH, drop=True, times=2)
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert len(api.requests_to("GET", POD_PATH)) == 3


def test_create_not_repeated_after_5xx_or_drop(api: FakeApi, gw: KubeGateway) -> None:
    path = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies"
    body = {"metadata": {"name": "q", "namespace": "prod"}}
    api.script("POST", path, 500, status_body(500, "InternalError", "etcd hiccup"))
    with pytest.raises(ApiError, match="etcd hiccup"):
        gw.create(NETWORK_POLICIES, body)
    api.script("POST", path, drop=True)
    with pytest.raises(ClusterUnreachable):
        gw.create(NETWORK_POLICIES, body)
    assert len(api.requests_to("POST", path)) == 2


def test_create_repeated_after_429(api: FakeApi, gw: KubeGateway) -> None:
    path = "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies"
    api.script("POST", path, 429, {}, headers={"Retry-After": "0"})
    gw.create(NETWORK_POLICIES, {"metadata": {"name": "q", "namespace": "prod"}})
    assert len(api.requests_to("POST", path)) == 2
    assert ("/apis/networking.k8s.io/v1", "networkpolicies", "prod", "q") in api.objects


def test_idempotent_mutations_retried_json_patch_not(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    api.script("PATCH", POD_PATH, 503, {})
    gw.patch(PODS, "web-1", {"metadata": {"labels": {"a": "b"}}}, "prod")
    assert len(api.requests_to("PATCH", POD_PATH)) == 2
    api.script("PATCH", POD_PATH, 503, {})
    with pytest.raises(ApiError):
        gw.patch(
            PODS, "web-1", [{"op": "add", "path": "/x", "value": 1}], "prod", patch_type="json"
        )
    assert len(api.requests_to("PATCH", POD_PATH)) == 3
    api.script("DELETE", POD_PATH, drop=True)
    gw.delete(PODS, "web-1", "prod")
    assert len(api.requests_to("DELETE", POD_PATH)) == 2


# -- TLS -------------------------------------------------------------------------------


def test_tls_with_the_right_ca(tls_api: FakeApi, certs: Certs, tmp_path: Path) -> None:
    tls_api.add_pod("prod", "web-1")
    gw = connect(str(write_kubeconfig(tmp_path / "k", tls_api.url, ca=certs.ca)))
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert gw.exec("prod", "web-1", None, ["echo", "tls"]).stdout == b"tls\n"
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: gw.exec("prod", "web-1", None, ["echo", str(i)]), range(24)))
    assert [r.stdout for r in outs] == [f"{i}\n".encode() for i in range(24)]


def test_tls_with_a_stranger_ca_is_unreachable(
    tls_api: FakeApi, certs: Certs, tmp_path: Path
) -> None:
    tls_api.add_pod("prod", "web-1")
    gw = connect(
        str(write_kubeconfig(tmp_path / "k", tls_api.url, ca=certs.other_ca)), retry=FAST_RETRY
    )
    with pytest.raises(ClusterUnreachable, match=r"TLS|SSL|certificate"):
        gw.get(PODS, "web-1", "prod")
    assert gw.stats.requests == 1  # a certificate problem is not retried
    with pytest.raises(ClusterUnreachable, match=r"TLS|SSL|certificate"):
        gw.exec("prod", "web-1", None, ["echo"])


# -- identity, reviews, logs, stats ----------------------------------------------------


def test_whoami_from_selfsubjectreview_then_cached(api: FakeApi, gw: KubeGateway) -> None:
    assert gw.whoami() == "jane@example.com"
    assert gw.whoami() == "jane@example.com"
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    assert len(api.requests_to("POST", path)) == 1
    assert json.loads(api.requests_to("POST", path)[0].body)["kind"] == "SelfSubjectReview"


def test_whoami_falls_back_to_kubeconfig_user(api: FakeApi, gw: KubeGateway) -> None:
    api.selfsubjectreview = False
    assert gw.whoami() == "tester"


def test_access_review(api: FakeApi, gw: KubeGateway) -> None:
    api.allowed.add(("create", "pods/exec", "prod"))
    assert gw.access_review("create", "pods", namespace="prod", subresource="exec") is True
    assert gw.access_review("delete", "pods", namespace="prod") is False
    sent = json.loads(api.requests[-1].body)
    assert sent["spec"]["resourceAttributes"] == {
        "verb": "delete",
        "resource": "pods",
        "group": "",
        "namespace": "prod",
    }


def test_read_log_bounded(api: FakeApi, gw: KubeGateway) -> None:
    api.logs[("prod", "web-1")] = b"line\n" * 100_000
    data = gw.read_log("prod", "web-1", "app", limit_bytes=1000, tail_lines=50, previous=True)
    assert data == (b"line\n" * 200)
    req = api.requests[-1]
    assert req.path == POD_PATH + "/log"
    assert req.q("container") == ["app"] and req.q("previous") == ["true"]
    assert req.q("tailLines") == ["50"] and req.q("limitBytes") == ["1000"]
    assert len(gw.read_log("prod", "web-1", None)) == 500_000
    with pytest.raises(ApiNotFound):
        gw.read_log("prod", "gone", None)


def test_stats_count_requests_and_bytes(api: FakeApi, gw: KubeGateway) -> None:
    for i in range(5):
        api.add_pod("prod", f"p{i}")
    gw.list(PODS, "prod", limit=2)
    snap = gw.stats.snapshot()
    assert snap["requests"] == 3 and snap["by_verb"] == {"list": 3}
    assert snap["bytes_received"] > 5 * 100
    gw.stats.reset()
    assert gw.stats.snapshot()["requests"] == 0


def test_gateway_is_thread_safe_for_reads(api: FakeApi, gw: KubeGateway) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for i in range(20):
        api.add_pod("prod", f"p{i}")
    with ThreadPoolExecutor(8) as pool:
        names = list(
            pool.map(lambda i: gw.get(PODS, f"p{i}", "prod")["metadata"]["name"], range(20))
        )
    assert names == [f"p{i}" for i in range(20)]
    assert gw.stats.requests == 20


def test_in_cluster_fallback(
    tls_api: FakeApi, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from kubernetes.config import incluster_config

    claims = base64.urlsafe_b64encode(b'{"sub":"system:serviceaccount:ir:falcoir"}').rstrip(b"=")
    token_file = tmp_path / "token"
    token_file.write_text(f"eyJhbGciOiJSUzI1NiJ9.{claims.decode()}.sig")
    tls_api.token = token_file.read_text()
    tls_api.selfsubjectreview = False
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(certs.ca))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(tls_api.port))
    tls_api.add_pod("prod", "web-1")
    gw = connect()
    assert gw.context == "in-cluster" and gw.server == tls_api.url
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert gw.whoami() == "system:serviceaccount:ir:falcoir"


def test_truncated_json_answer_is_retried_for_reads(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    api.script("GET", POD_PATH, 200, '{"kind": "Pod", "metadata": {"na')
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert len(api.requests_to("GET", POD_PATH)) == 2
    api.script("GET", POD_PATH, 200, "[]", times=3)
    with pytest.raises(ApiError, match="invalid JSON"):
        gw.get(PODS, "web-1", "prod")


def test_expired_continue_token_restarts_the_list_once(api: FakeApi, gw: KubeGateway) -> None:
    for i in range(5):
        api.add_pod("prod", f"p{i}")
    gone = status_body(410, "Expired", "The provided continue parameter is too old")
    original = api._list

    calls = {"n": 0}

    def flaky(rec, prefix, ns, plural):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            from aiohttp import web

            return web.json_response(gone, status=410)
        return original(rec, prefix, ns, plural)

    api._list = flaky  # type: ignore[method-assign]
    pods = gw.list(PODS, "prod", limit=2)
    assert sorted(p["metadata"]["name"] for p in pods) == [f"p{i}" for i in range(5)]
    assert [r.q("continue") for r in api.requests_to("GET", "/api/v1/namespaces/prod/pods")] == [
        [],
        ["2"],
        [],
        ["2"],
        ["4"],
    ]


def test_cli_connect_uses_this_gateway(api: FakeApi, kubeconfig: Path) -> None:
    from falcoir.cli.common import connect as cli_connect

    gw = cli_connect(str(kubeconfig), "fake")
    assert isinstance(gw, KubeGateway) and gw.context == "fake"
    api.add_pod("prod", "web-1")
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"


def test_retry_after_seconds_from_status_details(api: FakeApi, gw: KubeGateway) -> None:
    api.add_pod("prod", "web-1")
    throttled = status_body(429, "TooManyRequests", "slow down", retryAfterSeconds=0.3)
    api.script("GET", POD_PATH, 429, throttled)
    t0 = time.monotonic()
    gw.get(PODS, "web-1", "prod")
    assert 0.3 <= time.monotonic() - t0 < 2


def test_client_certificate_auth_for_requests_and_exec(certs: Certs, tmp_path: Path) -> None:
    from tests.cluster.fakeapi import server_ssl_context

    api = FakeApi(ssl_context=server_ssl_context(certs, client_certs=True)).start()
    try:
        api.add_pod("prod", "web-1")
        user = {"client-certificate": str(certs.client_cert), "client-key": str(certs.client_key)}
        path = write_kubeconfig(tmp_path / "k", api.url, ca=certs.ca, user_entry=user)
        gw = connect(str(path), retry=FAST_RETRY)
        assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
        assert gw.exec("prod", "web-1", None, ["echo", "mtls"]).stdout == b"mtls\n"
        assert len(api.cert_users) == 2 and all("cert-user" in u for u in api.cert_users)
        assert all("Authorization" not in r.headers for r in api.requests)
    finally:
        api.stop()


def test_exec_plugin_credentials(api: FakeApi, tmp_path: Path) -> None:
    plugin = tmp_path / "get-token"
    plugin.write_text(
        "#!/bin/sh\n"
        'echo \'{"apiVersion": "client.authentication.k8s.io/v1beta1", '
        '"kind": "ExecCredential", "status": {"token": "t0k3n"}}\'\n'
    )
    plugin.chmod(0o755)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    path = write_kubeconfig(tmp_path / "k", api.url, user_entry=user)
    gw = connect(str(path), retry=FAST_RETRY)
    api.add_pod("prod", "web-1")
    assert gw.get(PODS, "web-1", "prod")["metadata"]["name"] == "web-1"
    assert gw.exec("prod", "web-1", None, ["echo", "plugin"]).stdout == b"plugin\n"


def test_a_server_that_dribbles_cannot_hold_us(api: FakeApi, kubeconfig: Path) -> None:
    gw = connect(str(kubeconfig), request_timeout=0.4, retry=FAST_RETRY)
    api.script("GET", POD_PATH, dribble=True, times=3)
    t0 = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="longer than"):
        gw.get(PODS, "web-1", "prod")
    assert time.monotonic() - t0 < 4
    api.script("GET", POD_PATH + "/log", dribble=True)
    t0 = time.monotonic()
    log = gw.read_log("prod", "web-1", None, timeout=0.5)
    assert 0 < len(log) < 100 and set(log) == {ord(" ")}
    assert time.monotonic() - t0 < 2


def test_kubeconfig_path_list_merges(api: FakeApi, tmp_path: Path) -> None:
    first = write_kubeconfig(tmp_path / "a", api.url, context="one")
    second = write_kubeconfig(tmp_path / "b", "http://127.0.0.1:1", context="two")
    doc = json.loads(second.read_text())  # its own cluster name: the first "c" would win
    doc["clusters"][0]["name"] = doc["contexts"][0]["context"]["cluster"] = "c2"
    second.write_text(json.dumps(doc))
    listed = f"{tmp_path / 'missing'}:{first}:{second}"
    assert connect(listed).context == "one"  # the first file's current-context wins
    gw = connect(listed, context="two")
    assert gw.server == "http://127.0.0.1:1"
