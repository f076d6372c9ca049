"""KubeGateway end to end against the falcoir lab: real HTTPS, RBAC, pods as processes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from falcoir.cluster import KubeGateway, RetryPolicy, connect
from falcoir.core.gateway import JSON, NETWORK_POLICIES, PODS
from falcoir.errors import ApiConflict, ApiError, ApiNotFound, ClusterUnreachable, Forbidden

pytestmark = pytest.mark.lab

QUICK = RetryPolicy(attempts=3, backoff=0.05, max_wait=1.0, budget=5.0)


@pytest.fixture
def gw(lab: Any) -> Iterator[KubeGateway]:
    gateway = connect(str(lab.kubeconfig), retry=QUICK)
    yield gateway
    gateway.close()


@pytest.fixture
def restricted(lab: Any) -> KubeGateway:
    return connect(str(lab.kubeconfig), context="falcoir-lab-restricted", retry=QUICK)


@pytest.fixture
def faults(lab: Any) -> Iterator[Any]:
    yield lab
    lab.clear_faults()
    time.sleep(0.05)


def pod_body(namespace: str, name: str, *command: str, image: str = "ubuntu") -> JSON:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "t", "n": name}},
        "spec": {
            "containers": [
                {"name": "app", "image": image, "command": list(command or ("sleep", "infinity"))}
            ]
        },
    }


def running(gw: KubeGateway, namespace: str, name: str, timeout: float = 30) -> JSON:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = gw.get(PODS, name, namespace)
        if (pod.get("status") or {}).get("phase") == "Running":
            return pod
        time.sleep(0.1)
    raise AssertionError(f"pod {namespace}/{name} not running after {timeout}s")


@pytest.fixture
def pod(gw: KubeGateway, fresh_namespace: str) -> str:
    gw.create(PODS, pod_body(fresh_namespace, "target"))
    running(gw, fresh_namespace, "target")
    return fresh_namespace


def test_crud_round_trip(gw: KubeGateway, fresh_namespace: str) -> None:
    ns = fresh_namespace
    dry = gw.create(PODS, pod_body(ns, "p0"), dry_run=True)
    assert dry["metadata"]["name"] == "p0"
    with pytest.raises(ApiNotFound):
        gw.get(PODS, "p0", ns)
    for i in range(5):
        gw.create(PODS, pod_body(ns, f"p{i}"))
    with pytest.raises(ApiConflict):
        gw.create(PODS, pod_body(ns, "p1"))
    gw.stats.reset()
    pods = gw.list(PODS, ns, limit=2)
    assert sorted(p["metadata"]["name"] for p in pods) == [f"p{i}" for i in range(5)]
    assert all(p["kind"] == "Pod" for p in pods)
    assert gw.stats.snapshot()["by_verb"]["list"] == 3  # 2 + 2 + 1, following continue
    assert [p["metadata"]["name"] for p in gw.list(PODS, ns, label_selector="n=p3")] == ["p3"]
    by_field = gw.list(PODS, ns, field_selector="metadata.name=p2")
    assert [p["metadata"]["name"] for p in by_field] == ["p2"]

    gw.patch(PODS, "p0", {"metadata": {"labels": {"m": "1"}}}, ns)
    gw.patch(PODS, "p0", {"metadata": {"labels": {"s": "2"}}}, ns, patch_type="strategic")
    ops = [{"op": "add", "path": "/metadata/labels/j", "value": "3"}]
    gw.patch(PODS, "p0", ops, ns, patch_type="json")
    gw.patch(PODS, "p0", {"metadata": {"labels": {"d": "x"}}}, ns, dry_run=True)
    labels = gw.get(PODS, "p0", ns)["metadata"]["labels"]
    assert labels == {"app": "t", "n": "p0", "m": "1", "s": "2", "j": "3"}

    gw.delete(PODS, "p4", ns, dry_run=True)
    assert gw.get(PODS, "p4", ns)
    gw.delete(PODS, "p4", ns, grace_period_seconds=0, propagation_policy="Background")
    with contextlib.suppress(ApiNotFound):  # gone, or on its way out (still stopping)
        assert gw.get(PODS, "p4", ns)["metadata"].get("deletionTimestamp")


def test_network_policy_create_in_its_group(gw: KubeGateway, fresh_namespace: str) -> None:
    policy = {
        "metadata": {"name": "falcoir-quarantine", "namespace": fresh_namespace},
        "spec": {"podSelector": {"matchLabels": {"q": "1"}}, "policyTypes": ["Egress"]},
    }
    made = gw.create(NETWORK_POLICIES, policy)
    assert made["kind"] == "NetworkPolicy"
    got = gw.get(NETWORK_POLICIES, "falcoir-quarantine", fresh_namespace)
    assert got["spec"]["policyTypes"] == ["Egress"]


def test_exec_end_to_end(gw: KubeGateway, pod: str) -> None:
    ok = gw.exec(pod, "target", "app", ["echo", "hello", "$(reboot);"])
    assert ok.ok and ok.stdout == b"hello $(reboot);\n"
    code = gw.exec(pod, "target", "app", ["sh", "-c", "echo out; echo err >&2; exit 7", "x"])
    assert (code.exit_code, code.stdout, code.stderr) == (7, b"out\n", b"err\n")
    missing = gw.exec(pod, "target", "app", ["no-such-tool", "-x"])
    assert missing.error_reason == "NotFound" and missing.exit_code is None
    echoed = gw.exec(pod, "target", "app", ["cat"], stdin=b"\x00\xffraw stdin")
    assert echoed.ok and echoed.stdout == b"\x00\xffraw stdin"
    big = bytes(range(256)) * 8192  # 2 MiB through stdin and back
    assert gw.exec(pod, "target", "app", ["cat"], stdin=big, timeout=30).stdout == big
    ignored = gw.exec(pod, "target", "app", ["true"], stdin=bytes(4 * 1024 * 1024))
    assert ignored.exit_code == 0
    t0 = time.monotonic()
    slow = gw.exec(pod, "target", "app", ["sleep", "30"], timeout=1)
    assert slow.timed_out and time.monotonic() - t0 < 5


def test_exec_large_output_caps_and_sink(gw: KubeGateway, pod: str) -> None:
    n = 5 * 1024 * 1024
    script = ["sh", "-c", 'head -c "$1" /dev/urandom | tee /tmp/blob | sha256sum', "x", str(n)]
    digest = gw.exec(pod, "target", "app", script).stdout.split()[0].decode()
    whole = gw.exec(pod, "target", "app", ["cat", "/tmp/blob"], timeout=30)
    assert whole.ok and len(whole.stdout) == n
    assert hashlib.sha256(whole.stdout).hexdigest() == digest
    sink = io.BytesIO()
    streamed = gw.exec(pod, "target", "app", ["cat", "/tmp/blob"], stdout_sink=sink)
    assert streamed.stdout == b"" and streamed.stdout_bytes == n
    assert hashlib.sha256(sink.getvalue()).hexdigest() == digest
    capped = gw.exec(pod, "target", "app", ["cat", "/tmp/blob"], max_bytes=1000)
    assert capped.ok and capped.stdout_truncated and capped.stdout == whole.stdout[:1000]
    assert capped.stdout_bytes == n


def test_exec_from_many_threads(gw: KubeGateway, pod: str) -> None:
    def one(i: int) -> bytes:
        return gw.exec(pod, "target", "app", ["sh", "-c", 'echo "n$1"', "x", str(i)]).stdout

    with ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(one, range(36)))
    assert outs == [f"n{i}\n".encode() for i in range(36)]


def test_logs_whoami_and_access_review(gw: KubeGateway, fresh_namespace: str) -> None:
    ns = fresh_namespace
    gw.create(PODS, pod_body(ns, "talker", "sh", "-c", "echo line-1; echo line-2; sleep 1000"))
    running(gw, ns, "talker")
    deadline = time.monotonic() + 10
    log = b""
    while time.monotonic() < deadline and b"line-2" not in log:
        log = gw.read_log(ns, "talker", "app")
        time.sleep(0.1)
    assert log == b"line-1\nline-2\n"
    assert gw.read_log(ns, "talker", "app", limit_bytes=4) == b"line"
    assert gw.whoami() == "falcoir-lab-admin"
    assert gw.access_review("create", "pods", namespace=ns, subresource="exec") is True


def test_restricted_identity_is_forbidden(
    gw: KubeGateway, restricted: KubeGateway, pod: str
) -> None:
    assert restricted.whoami() == "restricted"
    assert restricted.get(PODS, "target", pod)["metadata"]["name"] == "target"
    with pytest.raises(Forbidden) as info:
        restricted.delete(PODS, "target", pod)
    assert info.value.missing == (f"delete pods -n {pod}",)
    with pytest.raises(Forbidden) as info:
        restricted.exec(pod, "target", "app", ["echo"])
    assert f"get pods/exec -n {pod}" in info.value.missing
    assert restricted.access_review("delete", "pods", namespace=pod) is False


def test_wrong_token_and_no_server(lab: Any, tmp_path: Any) -> None:
    doc = json.loads(lab.kubeconfig.read_text())
    for user in doc["users"]:
        user["user"]["token"] = "not-a-token"
    bad = tmp_path / "kubeconfig"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ClusterUnreachable, match="not authenticated"):
        connect(str(bad), retry=QUICK).list(PODS, "default")


def test_faults_retried_where_safe(gw: KubeGateway, pod: str, faults: Any) -> None:
    faults.set_faults(rate_503=1.0)
    time.sleep(0.05)
    with pytest.raises(ApiError) as info:
        gw.get(PODS, "target", pod)
    assert info.value.status == 503
    gw.stats.reset()
    with pytest.raises(ApiError):
        gw.create(PODS, pod_body(pod, "never"))
    assert gw.stats.requests == 1  # a create is not repeated after a 5xx
    faults.set_faults(rate_drop=1.0)
    time.sleep(0.05)
    gw.stats.reset()
    with pytest.raises(ClusterUnreachable):
        gw.get(PODS, "target", pod)
    assert gw.stats.requests == 3
    # Under a steady rate of throttling and drops, reads get through (Retry-After: 1 from
    # the lab is capped by the policy, so this stays fast).
    faults.set_faults(rate_429=0.2, rate_drop=0.1)
    time.sleep(0.05)
    patient = connect(
        str(faults.kubeconfig), retry=RetryPolicy(attempts=10, backoff=0.01, max_wait=0.05)
    )
    names = {patient.get(PODS, "target", pod)["metadata"]["name"] for _ in range(30)}
    assert names == {"target"}
    assert patient.stats.retries > 0


def test_same_answers_as_kubectl(lab: Any, gw: KubeGateway, pod: str) -> None:
    script = 'printf "%s|" "$@"; echo; ls -d /tmp; echo to-stderr >&2; exit 3'
    argv = ["sh", "-c", script, "x", "a b", "$(reboot);", "ünï"]
    ours = gw.exec(pod, "target", "app", argv)
    theirs = lab.kubectl("exec", "-n", pod, "target", "-c", "app", "--", *argv)
    assert ours.exit_code == theirs.returncode == 3
    assert ours.stdout.decode() == theirs.stdout == "a b|$(reboot);|ünï|\n/tmp\n"
    assert ours.stderr.decode() == "to-stderr\n" and "to-stderr" in theirs.stderr
    listed = json.loads(lab.kubectl("get", "pods", "-n", pod, "-o", "json").stdout)["items"]
    assert [p["metadata"]["uid"] for p in listed] == [
        p["metadata"]["uid"] for p in gw.list(PODS, pod)
    ]
