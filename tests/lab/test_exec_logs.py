"""Exec over WebSocket, logs and ephemeral containers, against a lab whose pods are host
processes (tests/lab/hostruntime.py), driven by kubectl and by the official client."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.lab import KUBECTL, Lab, start_lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="needs /usr/bin/kubectl"),
]

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "talker", "labels": {"app": "talker"}},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "busybox",
                "command": [
                    "sh",
                    "-c",
                    "for i in 1 2 3; do echo line $i; done; echo oops >&2; "
                    "while sleep 0.2; do echo tick; done",
                ],
            }
        ]
    },
}


@pytest.fixture(scope="module")
def host_lab() -> Iterator[Lab]:
    with start_lab(
        "--runtime",
        "tests.lab.hostruntime:make_runtime",
        "--nodes",
        "1",
        "--no-enforce-network-policy",
    ) as lab:
        lab.client.create("pods", POD, "default")
        lab.client.wait_for(
            "pods", "talker", "default", lambda p: p["status"].get("phase") == "Running"
        )
        yield lab


def test_exec_stdout_stderr_exit_code(host_lab: Lab) -> None:
    res = host_lab.kubectl("exec", "talker", "--", "echo", "hello world")
    assert (res.returncode, res.stdout) == (0, "hello world\n")
    res = host_lab.kubectl(
        "exec", "talker", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert res.returncode == 3
    assert res.stdout == "out\n"
    assert "err" in res.stderr
    assert "command terminated with exit code 3" in res.stderr


def test_exec_missing_binary(host_lab: Lab) -> None:
    res = host_lab.kubectl("exec", "talker", "--", "/no/such/tool")
    assert res.returncode == 1
    assert "executable file not found in $PATH" in res.stderr


def test_exec_stdin(host_lab: Lab) -> None:
    res = host_lab.kubectl("exec", "-i", "talker", "--", "wc", "-c", input="12345")
    assert res.returncode == 0 and res.stdout.strip() == "5"


def test_exec_errors_before_upgrade(host_lab: Lab) -> None:
    res = host_lab.kubectl("exec", "nope", "--", "true")
    assert res.returncode == 1 and 'pods "nope" not found' in res.stderr
    res = host_lab.kubectl("exec", "talker", "-c", "ghost", "--", "true")
    assert res.returncode == 1 and "container ghost is not valid for pod talker" in res.stderr
    res = host_lab.kubectl("exec", "talker", "--", "true", context="falcoir-lab-restricted")
    assert res.returncode == 1
    assert 'cannot create resource "pods/exec"' in res.stderr or "Forbidden" in res.stderr
    # A pod on a virtual node is an object only.
    host_lab.client.create(
        "pods",
        {
            "metadata": {"name": "ghostly"},
            "spec": {"nodeName": "lab-vnode-001", "containers": [{"name": "c", "image": "x"}]},
        },
        "default",
    )
    res = host_lab.kubectl("exec", "ghostly", "--", "true")
    assert res.returncode == 1
    assert "virtual node of the falcoir lab" in res.stderr


def test_logs_options(host_lab: Lab) -> None:
    res = host_lab.kubectl("logs", "talker")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[:3] == ["line 1", "line 2", "line 3"]
    assert "oops" in lines
    tail = host_lab.kubectl("logs", "talker", "--tail=1").stdout
    assert len(tail.splitlines()) == 1
    stamped = host_lab.kubectl("logs", "talker", "--timestamps", "--tail=2").stdout.splitlines()
    assert len(stamped) == 2 and all(line[:4].isdigit() and "Z " in line for line in stamped)
    limited = host_lab.client.logs("talker", "default", limitBytes=8)
    assert limited == b"line 1\nl"
    prev = host_lab.kubectl("logs", "talker", "--previous")
    assert prev.returncode == 1 and "previous terminated container" in prev.stderr


def test_logs_follow_streams_new_lines(host_lab: Lab) -> None:
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(host_lab.kubeconfig), "logs", "-f", "--tail=0", "talker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert out.count("tick") >= 2


def test_ephemeral_container_via_kubectl_debug(host_lab: Lab) -> None:
    res = host_lab.kubectl(
        "debug",
        "talker",
        "--image=busybox",
        "--target=main",
        "--container=dbg",
        "--",
        "sleep",
        "30",
    )
    assert res.returncode == 0, res.stderr
    pod = host_lab.client.wait_for(
        "pods",
        "talker",
        "default",
        lambda p: any(
            s.get("name") == "dbg" for s in p["status"].get("ephemeralContainerStatuses") or []
        ),
    )
    (eph,) = pod["spec"]["ephemeralContainers"]
    assert eph["targetContainerName"] == "main" and eph["command"] == ["sleep", "30"]
    # Existing ephemeral containers cannot be removed.
    with pytest.raises(Exception, match="may not be removed"):
        host_lab.client.request(
            "PUT",
            "/api/v1/namespaces/default/pods/talker/ephemeralcontainers",
            {**pod, "spec": {**pod["spec"], "ephemeralContainers": []}},
        )
    res = host_lab.kubectl("exec", "talker", "-c", "dbg", "--", "echo", "in-debug")
    assert res.stdout == "in-debug\n"


def test_network_policies_reach_the_runtime(host_lab: Lab) -> None:
    calls = host_lab.state_dir / "policy-calls.txt"
    before = calls.read_text().splitlines() if calls.exists() else []
    host_lab.client.create(
        "networkpolicies",
        {
            "metadata": {"name": "q"},
            "spec": {"podSelector": {"matchLabels": {"q": "1"}}, "policyTypes": ["Egress"]},
        },
        "default",
    )
    host_lab.client.wait_until(lambda: calls.exists() and calls.read_text().splitlines() != before)
    last = calls.read_text().splitlines()[-1].split()
    assert int(last[1]) >= 1  # the runtime saw the policy
    assert int(last[0]) >= 1  # and the lab node's pods


def test_namespace_labels_reach_the_runtime_and_changes_reapply(host_lab: Lab) -> None:
    seen = host_lab.state_dir / "policy-namespaces.json"

    def labels_of(ns: str) -> dict[str, str] | None:
        if not seen.exists():
            return None
        try:
            doc = json.loads(seen.read_text())
        except ValueError:
            return None
        got: dict[str, str] | None = (doc or {}).get(ns)
        return got

    name = f"nsl-{secrets.token_hex(3)}"
    host_lab.client.create("namespaces", {"metadata": {"name": name, "labels": {"team": "a"}}})
    try:
        host_lab.client.wait_until(lambda: (labels_of(name) or {}).get("team") == "a")
        assert labels_of(name) == {"kubernetes.io/metadata.name": name, "team": "a"}
        # Relabelling the namespace alone (no pod or policy change) re-applies.
        host_lab.client.patch("namespaces", name, {"metadata": {"labels": {"team": "b"}}})
        host_lab.client.wait_until(lambda: (labels_of(name) or {}).get("team") == "b")
    finally:
        host_lab.client.delete("namespaces", name)


# --- the official Python client ----------------------------------------------------------


def _api(lab: Lab):  # type: ignore[no-untyped-def]
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(lab.kubeconfig))
    return kubernetes.client.CoreV1Api(api_client)


def test_python_client_exec_binary_channels(host_lab: Lab) -> None:
    from kubernetes.stream import stream

    core = _api(host_lab)
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        "default",
        command=["sh", "-c", "printf 'a\\377b'; echo e >&2; exit 4"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
        binary=True,
    )
    out, err = b"", b""
    status = b""
    deadline = time.monotonic() + 10
    while ws.is_open() and time.monotonic() < deadline:
        ws.update(timeout=1)
        out += ws.read_channel(1) or b""
        err += ws.read_channel(2) or b""
        status += ws.read_channel(3) or b""
    ws.close()
    assert out == b"a\xffb"
    assert err == b"e\n"
    doc = json.loads(status)
    assert doc["reason"] == "NonZeroExitCode"
    assert doc["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]


def test_python_client_exec_default_and_tty(host_lab: Lab) -> None:
    from kubernetes.stream import stream

    core = _api(host_lab)
    text = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        "default",
        command=["echo", "hi"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert text == "hi\n"
    core = _api(host_lab)
    text = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        "default",
        command=["sh", "-c", "test -t 1 && echo tty"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=True,
    )
    assert text.strip() == "tty"


def test_python_client_exec_stdin(host_lab: Lab) -> None:
    from kubernetes.stream import stream

    core = _api(host_lab)
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        "default",
        command=["cat"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    ws.write_stdin("piped text")
    got = ""
    deadline = time.monotonic() + 5
    while "piped text" not in got and time.monotonic() < deadline:
        ws.update(timeout=0.5)
        got += ws.read_stdout() or ""
    ws.close()
    assert got == "piped text"


def test_python_client_logs(host_lab: Lab) -> None:
    core = _api(host_lab)
    text = core.read_namespaced_pod_log("talker", "default", tail_lines=1)
    assert text in ("tick\n", "oops\n", "line 3\n")
    full = core.read_namespaced_pod_log("talker", "default", container="main")
    assert full.startswith("line 1\nline 2\nline 3\n")


def test_runtime_factory_gets_node_and_enforcement_flag(host_lab: Lab) -> None:
    doc = json.loads((host_lab.state_dir / "host-runtime.json").read_text())
    assert doc == {"node": "lab-node", "enforce": False}
    assert host_lab.runtime == "HostRuntime"


def _ws_exec(lab: Lab, protocols: list[str], query: str) -> tuple[str, list[bytes | str], int]:
    """Raw WebSocket exec with websocket-client (what the official client uses underneath):
    (chosen protocol, data messages, close code)."""
    websocket = pytest.importorskip("websocket")
    url = lab.server.replace("https://", "wss://") + (
        "/api/v1/namespaces/default/pods/talker/exec?" + query
    )
    ws = websocket.create_connection(
        url,
        subprotocols=protocols,
        sslopt={"ca_certs": str(lab.state_dir / "ca.crt")},
        header=[f"Authorization: Bearer {lab.client.token}"],
        timeout=10,
    )
    msgs: list[bytes | str] = []
    code = 0
    try:
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big")
                break
            if op == websocket.ABNF.OPCODE_TEXT:
                msgs.append(data.decode())
            elif op == websocket.ABNF.OPCODE_BINARY:
                msgs.append(data)
        return ws.subprotocol or "", msgs, code
    finally:
        ws.close()


def test_exec_protocol_negotiation_and_framing(host_lab: Lab) -> None:
    q = "command=sh&command=-c&command=echo+hi%3B+exit+2&stdout=true&stderr=True"
    proto, msgs, code = _ws_exec(host_lab, ["v5.channel.k8s.io", "v4.channel.k8s.io"], q)
    assert proto == "v5.channel.k8s.io" and code == 1000
    assert msgs[0] == b"\x01"  # the empty hello on the lowest writable channel
    assert b"\x01hi\n" in msgs
    status = json.loads(msgs[-1][1:])
    assert msgs[-1][:1] == b"\x03" and status["details"]["causes"][0]["message"] == "2"
    proto, msgs, code = _ws_exec(host_lab, ["bogus", "v4.channel.k8s.io"], q)
    assert proto == "v4.channel.k8s.io"
    proto, msgs, _ = _ws_exec(host_lab, ["base64.channel.k8s.io"], q)
    assert proto == "base64.channel.k8s.io"
    assert "1aGkK" in msgs  # "1" + base64("hi\n"), as TEXT frames
    proto, msgs, _ = _ws_exec(host_lab, ["channel.k8s.io"], "command=true&stdout=1")
    assert proto == "channel.k8s.io" and msgs == [b"\x01"]  # success: no status text


def test_python_client_tty_resize(host_lab: Lab) -> None:
    from kubernetes.stream import stream

    core = _api(host_lab)
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        "talker",
        "default",
        command=["sh", "-c", "sleep 0.5; stty size"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    ws.write_channel(4, json.dumps({"Width": 91, "Height": 17}))
    # A zero-sized terminal (kubectl under `script` with no terminal) changes nothing.
    ws.write_channel(4, json.dumps({"Width": 0, "Height": 0}))
    out = ""
    deadline = time.monotonic() + 5
    while ws.is_open() and time.monotonic() < deadline:
        ws.update(timeout=0.5)
        out += ws.read_stdout() or ""
    ws.close()
    assert out.strip() == "17 91"


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) from util-linux")
def test_kubectl_exec_it_under_script_sends_the_command_nothing(host_lab: Lab) -> None:
    """kubectl exec -it on a pseudo-terminal (script) whose input stays open: the
    command's terminal gets no byte from the lab (no NUL from the hello frame, the
    resize or the stdin channel). (A NUL does reach it when script's own stdin is at
    EOF: script then types its EOF character into kubectl's terminal before kubectl
    switches it to raw mode, and Linux hands that over as a NUL byte. That comes from
    the client side; a real API server passes it on just the same.)"""
    cmd = (
        f"{KUBECTL} --kubeconfig {host_lab.kubeconfig} exec -it talker -- "
        "sh -c 'stty raw -echo; timeout 2 od -An -c; stty size'"
    )
    feeder = subprocess.Popen(["sleep", "6"], stdout=subprocess.PIPE)
    try:
        res = subprocess.run(
            ["script", "-q", "-e", "-c", cmd, "/dev/null"],
            stdin=feeder.stdout, capture_output=True, timeout=30, check=False,
            env={**os.environ, "KUBECACHEDIR": str(host_lab.state_dir / "kube-cache")},
        )  # fmt: skip
    finally:
        feeder.kill()
        feeder.wait()
    out = res.stdout.replace(b"\r", b"")
    assert b"^@" not in out and b"\\0" not in out, out
    # od read nothing; the zero-sized resize kubectl sent was ignored (size stays unset).
    assert out.strip().splitlines()[-1] == b"0 0", out
