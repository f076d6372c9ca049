"""LinuxRuntime driven directly: real namespaces, cgroups, image profiles, exec, logs."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from falcoir.lab.runtime import ContainerNotRunning, ExecNotFound
from tests.lab_runtime.conftest import Harness, log_text, needs_isolation

pytestmark = [pytest.mark.root, needs_isolation]

SLEEPER = {
    "name": "app",
    "image": "ubuntu:latest",
    "command": ["/bin/sh", "-c", "echo started; sleep 1000"],
}


def _cid(status: dict, name: str) -> str:
    cs = next(c for c in status["containerStatuses"] if c["name"] == name)
    m = re.fullmatch(r"containerd://([0-9a-f]{64})", cs["containerID"])
    assert m, cs
    return m.group(1)


def test_pod_runs_in_kubelet_cgroups_and_its_own_pid_namespace(harness: Harness) -> None:
    pod = harness.pod("cg", [dict(SLEEPER)])
    st = harness.status(pod)
    assert st["phase"] == "Running"
    assert st["podIP"].startswith("10.213.")
    assert st["qosClass"] == "BestEffort"
    cid = _cid(st, "app")
    pid = harness.rt.host_pid(pod, "app")
    assert pid > 0 and pid != os.getpid()
    uid = pod["metadata"]["uid"]
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert any(line.startswith("0::") for line in lines)
    for line in lines:
        assert line.endswith(f"/kubepods/besteffort/pod{uid}/{cid}"), line
    nspid = next(
        x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("NSpid:")
    )
    assert nspid.split()[1:] == [str(pid), "1"]
    # Its own mount, uts, pid and net namespaces; not the host's.
    for ns in ("mnt", "uts", "pid", "net"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert Path(f"/proc/{pid}/root/etc/hostname").read_text().strip() == "cg"


def test_exec_sees_only_the_pod_and_a_private_tmp(harness: Harness) -> None:
    pod = harness.pod("ex", [dict(SLEEPER)])
    rc, out, err = harness.exec(pod, "app", ["ps", "aux"])
    assert rc == 0, err
    rows = out.decode().splitlines()[1:]
    commands = [r.split(None, 10)[10] for r in rows]
    assert commands[0] == "/bin/sh -c echo started; sleep 1000"
    assert "sleep 1000" in commands and "ps aux" in commands
    assert len(rows) == 3, out.decode()
    rc, _, _ = harness.exec(pod, "app", ["sh", "-c", "echo secret > /tmp/dropped"])
    assert rc == 0
    assert not Path("/tmp/dropped").exists()
    pid = harness.rt.host_pid(pod, "app")
    assert Path(f"/proc/{pid}/root/tmp/dropped").read_text() == "secret\n"
    rc, out, _ = harness.exec(pod, "app", ["ls", "-la", "/tmp"])
    assert rc == 0 and "dropped" in out.decode()
    rc, out, _ = harness.exec(pod, "app", ["hostname"])
    assert out == b"ex\n"
    # The exec'd process joins the container's cgroup, as on a node.
    rc, out, _ = harness.exec(pod, "app", ["cat", "/proc/self/cgroup"])
    assert f"pod{pod['metadata']['uid']}/{_cid(harness.status(pod), 'app')}" in out.decode()


def test_exec_exit_codes_stdin_and_large_output(harness: Harness) -> None:
    pod = harness.pod("io", [dict(SLEEPER)])
    assert harness.exec(pod, "app", ["false"])[0] == 1
    assert harness.exec(pod, "app", ["sh", "-c", "exit 7"])[0] == 7
    rc, out, err = harness.exec(
        pod, "app", ["sh", "-c", "cat; echo oops >&2"], stdin=b"hello\x00\xff"
    )
    assert (rc, out, err) == (0, b"hello\x00\xff", b"oops\n")
    rc, out, _ = harness.exec(pod, "app", ["head", "-c", "3000000", "/dev/urandom"])
    assert rc == 0 and len(out) == 3_000_000
    assert harness.exec(pod, "app", ["sh", "-c", "kill -9 $$"])[0] == 137


def test_exec_with_a_tty(harness: Harness) -> None:
    pod = harness.pod("tty", [dict(SLEEPER)])
    rc, out, err = harness.exec(
        pod, "app", ["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty"], tty=True
    )
    assert rc == 0 and b"is-a-tty" in out and err == b""


def test_profiles_decide_what_exists(harness: Harness) -> None:
    pod = harness.pod(
        "prof",
        [
            dict(SLEEPER),
            {"name": "bb", "image": "busybox:1.36", "command": ["sleep", "1000"]},
            {"name": "dl", "image": "gcr.io/distroless/static-debian12"},
        ],
    )
    st = harness.status(pod)
    assert [c["state"].keys() for c in st["containerStatuses"]] == [{"running": 1}.keys()] * 3
    for tool in ("sh", "bash", "ps", "netstat", "ss", "sha256sum", "ls", "tar", "cat", "timeout"):
        assert harness.exec(pod, "app", ["sh", "-c", 'command -v "$1"', "sh", tool])[0] == 0, tool
    rc, out, _ = harness.exec(pod, "bb", ["ls", "-l", "/bin/sh"])
    assert rc == 0 and "busybox" in out.decode()
    with pytest.raises(ExecNotFound, match="executable file not found in \\$PATH"):
        harness.run(harness.rt.exec(pod, "bb", ["bash"], stdin=False, tty=False))
    for argv in (["sh"], ["/bin/sh"], ["ls", "/"], ["/usr/bin/python3"]):
        with pytest.raises(ExecNotFound):
            harness.run(harness.rt.exec(pod, "dl", argv, stdin=False, tty=False))
    # The distroless entrypoint is the only thing that runs there.
    pid = harness.rt.host_pid(pod, "dl")
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"/app\x00"
    with pytest.raises(ContainerNotRunning):
        harness.run(harness.rt.exec(pod, "nope", ["ls"], stdin=False, tty=False))


def test_logs_restarts_and_previous(harness: Harness) -> None:
    pod = harness.pod(
        "crash",
        [
            {
                "name": "c",
                "image": "ubuntu",
                "command": ["sh", "-c", 'echo "run $(date +%s%N)"; exit 3'],
            }
        ],
    )
    harness.wait_for(
        lambda: harness.rt.log_path(pod, "c", previous=True) is not None,
        what="a restarted container",
    )
    cs = harness.status(pod)["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    prev = harness.rt.log_path(pod, "c", previous=True)
    cur = harness.rt.log_path(pod, "c", previous=False)
    assert prev is not None and cur is not None and prev != cur
    assert log_text(prev).startswith("run ")
    assert any(r == "BackOff" for _, r, _ in harness.events.events)

    done = harness.pod(
        "once",
        [{"name": "c", "image": "ubuntu", "command": ["sh", "-c", "echo bye"]}],
        restartPolicy="Never",
    )
    harness.wait_for(lambda: harness.status(done)["phase"] == "Succeeded", what="Succeeded")
    log = harness.rt.log_path(done, "c", previous=False)
    assert log_text(log) == "bye\n"
    term = harness.status(done)["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    with pytest.raises(ContainerNotRunning):
        harness.run(harness.rt.exec(done, "c", ["ls"], stdin=False, tty=False))


def test_host_pid_pod_reads_the_host_proc(harness: Harness) -> None:
    pod = harness.pod(
        "hostpid",
        [
            {
                "name": "c",
                "image": "ubuntu",
                "command": ["sleep", "1000"],
                "volumeMounts": [{"name": "proc", "mountPath": "/host/proc", "readOnly": True}],
            }
        ],
        hostPID=True,
        volumes=[{"name": "proc", "hostPath": {"path": "/proc"}}],
    )
    pid = harness.rt.host_pid(pod, "c")
    nspid = next(
        x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("NSpid:")
    )
    assert nspid.split()[1:] == [str(pid)]
    rc, out, _ = harness.exec(pod, "c", ["cat", f"/host/proc/{os.getpid()}/comm"])
    assert rc == 0 and out.decode().strip() == Path("/proc/self/comm").read_text().strip()
    assert not Path("/host").exists()  # nothing made on the host's root


def test_ephemeral_container_shares_the_target_pid_namespace(harness: Harness) -> None:
    pod = harness.pod(
        "eph", [{"name": "app", "image": "gcr.io/distroless/base", "command": ["/server"]}]
    )
    harness.run(
        harness.rt.add_ephemeral_container(
            pod,
            {
                "name": "debugger",
                "image": "busybox",
                "command": ["sleep", "1000"],
                "targetContainerName": "app",
            },
        )
    )
    st = harness.status(pod)
    eph = st["ephemeralContainerStatuses"][0]
    assert eph["name"] == "debugger" and "running" in eph["state"]
    rc, out, _ = harness.exec(pod, "debugger", ["ps"])
    assert rc == 0 and "/server" in out.decode()
    rc, out, _ = harness.exec(pod, "debugger", ["readlink", "/proc/1/exe"])
    assert rc == 0 and out.decode().strip() == "/server"


def test_kill_pod_removes_processes_cgroups_and_netns(harness: Harness) -> None:
    pod = harness.pod("gone", [dict(SLEEPER)])
    pid = harness.rt.host_pid(pod, "app")
    cid = _cid(harness.status(pod), "app")
    netns = list(Path("/run/netns").glob(f"falcoir-{harness.rt.lab_id}-*"))
    assert netns
    t0 = time.monotonic()
    harness.run(harness.rt.kill_pod(pod, 1))
    assert time.monotonic() - t0 < 8
    assert not Path(f"/proc/{pid}").exists()
    assert not list(Path("/sys/fs/cgroup/unified").rglob(cid))
    assert len(list(Path("/run/netns").glob(f"falcoir-{harness.rt.lab_id}-*"))) == len(netns) - 1


def test_init_containers_run_first_and_in_order(harness: Harness) -> None:
    pod = harness.pod(
        "init",
        [{"name": "app", "image": "ubuntu", "command": ["sleep", "1000"]}],
        initContainers=[
            {"name": "one", "image": "busybox", "command": ["sh", "-c", "echo one"]},
            {"name": "two", "image": "ubuntu", "command": ["sh", "-c", "echo two"]},
        ],
    )
    harness.wait_for(lambda: harness.status(pod)["phase"] == "Running", what="Running")
    st = harness.status(pod)
    inits = st["initContainerStatuses"]
    assert [i["state"]["terminated"]["reason"] for i in inits] == ["Completed", "Completed"]
    assert (
        inits[0]["state"]["terminated"]["finishedAt"]
        <= inits[1]["state"]["terminated"]["startedAt"]
    )
    assert next(c for c in st["conditions"] if c["type"] == "Initialized")["status"] == "True"
    one = harness.rt.log_path(pod, "one", previous=False)
    assert log_text(one) == "one\n"


def test_interactive_shell_on_a_tty_has_its_own_session(harness: Harness) -> None:
    pod = harness.pod("shell", [dict(SLEEPER)])
    script = b"ps -o pid,sid,tty,comm\nexit 5\n"
    rc, out, _ = harness.exec(pod, "app", ["/bin/sh", "-i"], stdin=script, tty=True)
    text = out.decode(errors="replace")
    assert rc == 5, text
    assert "Cannot set tty process group" not in text
    rows = [line.split() for line in text.splitlines() if line.strip().endswith((" sh", " ps"))]
    sh_row = next(r for r in rows if r[-1] == "sh")
    assert sh_row[0] == sh_row[1], text  # sh leads its own session, inside the pod's pids


def test_missing_host_path_directory_fails_the_mount(harness: Harness, tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    pod = harness.pod(
        "nomount",
        [
            {
                "name": "c",
                "image": "ubuntu",
                "command": ["sleep", "1000"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        restartPolicy="Never",
        volumes=[{"name": "data", "hostPath": {"path": str(missing), "type": "Directory"}}],
    )
    harness.wait_for(lambda: harness.status(pod)["phase"] == "Failed", what="Failed")
    term = harness.status(pod)["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError" and "hostPath type check failed" in term["message"]
    assert any(r == "FailedMount" for _, r, _ in harness.events.events)
    assert not missing.exists()
    created = tmp_path / "made"
    ok = harness.pod(
        "mkmount",
        [
            {
                "name": "c",
                "image": "ubuntu",
                "command": ["sh", "-c", "echo hi > /data/f; sleep 1000"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        volumes=[{"name": "data", "hostPath": {"path": str(created), "type": "DirectoryOrCreate"}}],
    )
    harness.wait_for(lambda: (created / "f").exists(), what="the file through the volume")
    assert (created / "f").read_text() == "hi\n"
    harness.run(harness.rt.kill_pod(ok, 0))


def test_share_process_namespace_has_a_pause_pid_1(harness: Harness) -> None:
    pod = harness.pod(
        "shared",
        [
            {"name": "a", "image": "ubuntu", "command": ["sleep", "1001"]},
            {"name": "b", "image": "busybox", "command": ["sleep", "1002"]},
        ],
        shareProcessNamespace=True,
    )
    rc, out, _ = harness.exec(pod, "b", ["ps"])
    text = out.decode()
    assert rc == 0 and "sleep 1001" in text and "sleep 1002" in text, text
    first = text.splitlines()[1].split()
    assert first[0] == "1" and first[-1] == "/pause", text
    st = harness.status(pod)
    assert [c["name"] for c in st["containerStatuses"]] == ["a", "b"]
    assert not any(r == "Started" and "POD" in m for _, r, m in harness.events.events)
    with pytest.raises(ContainerNotRunning):
        harness.run(harness.rt.exec(pod, "POD", ["ls"], stdin=False, tty=False))
    harness.run(harness.rt.kill_pod(pod, 1))


def test_pods_starting_together_on_a_fresh_lab(tmp_path: Path) -> None:
    """Profiles and the idle program are built once even when pods start at once."""
    import asyncio

    images = ["ubuntu", "ubuntu", "busybox", "busybox", "gcr.io/distroless/static"]
    pods = []
    for i, image in enumerate(images):
        container: dict = {"name": "c", "image": image}
        if "distroless" not in image:
            container["command"] = ["sleep", "1000"]
        uid = f"0000000{i}-1111-2222-3333-444444444444"
        pods.append(
            {
                "metadata": {"name": f"r{i}", "namespace": "default", "uid": uid},
                "spec": {"containers": [container]},
            }
        )
    h = Harness(tmp_path / "fresh")
    try:

        async def start_all() -> None:
            await asyncio.gather(*(h.rt.run_pod(p) for p in pods))

        h.run(start_all())
        for pod in pods:
            assert h.status(pod)["phase"] == "Running", h.status(pod)
        assert h.exec(pods[0], "c", ["ls", "/"])[0] == 0
        assert h.exec(pods[3], "c", ["ls", "/"])[0] == 0
        with pytest.raises(ExecNotFound):
            h.run(h.rt.exec(pods[4], "c", ["ls"], stdin=False, tty=False))
    finally:
        h.close()
