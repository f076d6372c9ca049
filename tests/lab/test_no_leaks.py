"""No pod process outlives its lab: not after ``lab down`` while pods are starting, not
after a pod is deleted while it starts, not after the lab's server was killed.

Each test runs a lab of its own and looks only for that lab's processes: a process
whose command line names the lab's state dir (its shims) or whose cgroups are those of
one of the lab's pods (``pod<uid>``; uids are random, so no other lab's). Other labs
running on this machine at the same time are never counted, never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from falcoir.lab.linux import LinuxRuntime, can_isolate, net
from tests.plugins.lab import Lab, run_falcoir, start_lab

ISOLATED, WHY_NOT = can_isolate()
pytestmark = [
    pytest.mark.lab,
    pytest.mark.root,
    pytest.mark.skipif(not ISOLATED, reason=f"needs root on Linux for pods ({WHY_NOT})"),
]

ESCAPE = "setsid sleep infinity & exec sleep infinity"
SLEEPER = {"name": "c", "image": "ubuntu:latest", "command": ["sleep", "infinity"]}


SHIM_SESSIONS: set[int] = set()
"""Pids of every shim of the labs of this module seen so far: a shim leads its own
session, so a container process it left (reparented, maybe out of its cgroups) still
has one of these as its session id."""


def _sid(stat: bytes) -> int:
    return int(stat.rsplit(b")", 1)[1].split()[4])


def lab_processes(state_dir: Path, uids: list[str], *, server: bool = True) -> list[str]:
    """``pid cmdline`` of every live process that belongs to this lab's pods (and its
    server unless ``server`` is false)."""
    marks = {str(state_dir).encode(), str(state_dir.resolve()).encode()}
    pod_marks = [f"pod{u}".encode() for u in uids]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
            cgroup = (entry / "cgroup").read_bytes()
        except OSError:
            continue
        if stat.rsplit(b")", 1)[1].split()[0] == b"Z":
            continue
        args = cmdline.replace(b"\0", b" ").decode(errors="replace")
        if not server and "falcoir.lab.serve" in args:
            continue
        ours = any(m in cmdline for m in marks) and "shim.py" in args
        if ours:
            SHIM_SESSIONS.add(int(entry.name))
        if (
            ours
            or any(m in cmdline for m in marks)
            or any(m in cgroup for m in pod_marks)
            or _sid(stat) in SHIM_SESSIONS
        ):
            found.append(f"{entry.name} {args}")
    return found


def wait_gone(state_dir: Path, uids: list[str], timeout: float = 5.0) -> list[str]:
    """This lab's pod processes still alive after ``timeout`` (a SIGKILLed process
    takes a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = lab_processes(state_dir, uids, server=False)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def pod_cgroups(uids: list[str]) -> list[str]:
    """The cgroup directories of these pods that still exist (any hierarchy, any base)."""
    found: list[str] = []
    for uid in uids:
        for depth in range(4):
            base = "/sys/fs/cgroup/*" + "/*" * depth
            for pattern in (f"{base}/kubepods/*/pod{uid}", f"{base}/kubepods/pod{uid}"):
                found.extend(glob.glob(pattern))
    return sorted(set(found))


def shims_of(state_dir: Path) -> int:
    return sum(1 for line in lab_processes(state_dir, []) if "shim.py" in line)


def create_pods(lab: Lab, n: int, containers: int = 2, prefix: str = "p") -> list[str]:
    uids = []
    for i in range(n):
        spec = {"containers": [{**SLEEPER, "name": f"c{j}"} for j in range(containers)]}
        if i % 3 == 1:
            spec["initContainers"] = [{"name": "init", "image": "busybox", "command": ["true"]}]
        if i % 3 == 2:
            spec["shareProcessNamespace"] = True
        body = {"metadata": {"name": f"{prefix}{i}"}, "spec": spec}
        uids.append(str(lab.client.create("pods", body, "default")["metadata"]["uid"]))
    return uids


def wait_for_shims(state_dir: Path, at_least: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while shims_of(state_dir) < at_least and time.monotonic() < deadline:
        time.sleep(0.005)


def creating_pods(lab: Lab, n: int, uids: list[str]) -> threading.Thread:
    """Create ``n`` one-container pods in a thread (their uids go to ``uids``), so that
    the test can act while their containers start."""

    def create() -> None:
        with contextlib.suppress(Exception):  # the lab may stop meanwhile
            for i in range(n):
                uids.extend(create_pods(lab, 1, containers=1, prefix=f"s{i}-"))

    t = threading.Thread(target=create, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("shims", [1, 3, 6])
def test_down_while_pods_start_leaves_no_process(shims: int) -> None:
    with start_lab() as lab:
        pid = json.loads((lab.state_dir / "server.json").read_text())["pid"]
        uids: list[str] = []
        creating = creating_pods(lab, 10, uids)
        wait_for_shims(lab.state_dir, shims)
        os.kill(pid, signal.SIGTERM)  # what lab down does first (without its start-up)
        down = run_falcoir("lab", "down", "--state-dir", str(lab.state_dir))
        assert down.returncode == 0, down.stderr
        creating.join(30)
        left = wait_gone(lab.state_dir, uids)
        assert not left, "pod processes outlived lab down:\n" + "\n".join(left)
        assert not pod_cgroups(uids), "pod cgroups outlived lab down"


def test_pod_deleted_while_starting_leaves_no_process() -> None:
    with start_lab() as lab:
        uids: list[str] = []
        for round_, delay in enumerate((0.0, 0.02, 0.06, 0.12)):
            before = shims_of(lab.state_dir)
            new = create_pods(lab, 3, prefix=f"r{round_}-")
            uids += new
            wait_for_shims(lab.state_dir, before + 1, timeout=10)
            time.sleep(delay)
            for i in range(3):
                lab.client.delete("pods", f"r{round_}-{i}", "default", grace_period=0)
        deadline = time.monotonic() + 30
        while lab.client.list("pods", "default") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not lab.client.list("pods", "default")
        # Deleted pods leave no process and no record behind while the lab goes on
        # running.
        left = wait_gone(lab.state_dir, uids)
        assert not left, "processes of deleted pods still run:\n" + "\n".join(left)
        assert not list((lab.state_dir / "runtime" / "pods").glob("*.json"))
        # Their cgroups go too; in about 1 run in 15 of this race an empty pod cgroup
        # (a hierarchy or two) stays while the lab runs (cause not found yet): the lab's
        # ledger has it, and lab down's sweep removes it.
    assert not pod_cgroups(uids), "cgroups of deleted pods outlived lab down"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_killed_while_pods_start_then_down_leaves_no_process(sig: int) -> None:
    with start_lab() as lab:
        pid = json.loads((lab.state_dir / "server.json").read_text())["pid"]
        uids = create_pods(lab, 6)
        wait_for_shims(lab.state_dir, 2)
        os.kill(pid, sig)
        deadline = time.monotonic() + 40
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if sig == signal.SIGTERM:
            # The server's own shutdown leaves nothing, before any lab down.
            left = wait_gone(lab.state_dir, uids)
            assert not left, "pod processes outlived the lab's shutdown:\n" + "\n".join(left)
        down = run_falcoir("lab", "down", "--state-dir", str(lab.state_dir))
        assert down.returncode == 0, down.stderr
        left = wait_gone(lab.state_dir, uids)
        assert not left, "pod processes outlived lab down:\n" + "\n".join(left)
        assert not pod_cgroups(uids), "pod cgroups outlived lab down"


def wait_running(lab: Lab, name: str) -> dict[str, object]:
    pod: dict[str, object] = lab.client.wait_for(
        "pods", name, "default", lambda p: p["status"].get("phase") == "Running"
    )
    return pod


def add_debug_container(lab: Lab, pod: str) -> threading.Thread:
    """``kubectl debug --target=c0``, in a thread (the request returns once it started)."""
    body = {
        "spec": {
            "ephemeralContainers": [
                {
                    "name": "dbg",
                    "image": "busybox",
                    "command": ["sleep", "infinity"],
                    "targetContainerName": "c0",
                }
            ]
        }
    }

    def patch() -> None:
        with contextlib.suppress(Exception):  # the lab may stop under the request
            lab.client.patch("pods", pod, body, "default", sub="ephemeralcontainers")

    t = threading.Thread(target=patch, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("how", ["lab down", "pod deleted"])
def test_debug_container_starting_leaves_no_process(how: str) -> None:
    with start_lab() as lab:
        uids = create_pods(lab, 1, containers=1)
        wait_running(lab, "p0")
        before = shims_of(lab.state_dir)
        t = add_debug_container(lab, "p0")
        wait_for_shims(lab.state_dir, before + 1, timeout=10)
        if how == "lab down":
            down = run_falcoir("lab", "down", "--state-dir", str(lab.state_dir))
            assert down.returncode == 0, down.stderr
        else:
            lab.client.delete("pods", "p0", "default", grace_period=0)
            lab.client.wait_until(lambda: not lab.client.list("pods", "default"), timeout=30)
        t.join(30)
        left = wait_gone(lab.state_dir, uids)
        assert not left, f"pod processes outlived {how}:\n" + "\n".join(left)
        assert not pod_cgroups(uids), f"pod cgroups outlived {how}"


def test_down_sweeps_what_the_records_lost() -> None:
    """A lab killed with SIGKILL whose pod records are lost: ``lab down`` still finds its
    shims (by state dir and lab id) and the processes in its cgroups (by its cgroup
    ledger), kills them and says so; another lab's pods are untouched."""
    with start_lab() as other, start_lab() as lab:
        bystander = create_pods(other, 1, containers=1, prefix="bystander")
        wait_running(other, "bystander0")
        uids = create_pods(lab, 2)
        # A process that left its shim's session, in a pod without a pid namespace of
        # its own (so it outlives the shim): only the cgroup sweep can find it.
        escaper = {"containers": [{**SLEEPER, "command": ["sh", "-c", ESCAPE]}], "hostPID": True}
        body = {"metadata": {"name": "escaper"}, "spec": escaper}
        uids.append(str(lab.client.create("pods", body, "default")["metadata"]["uid"]))
        for name in ("p0", "p1", "escaper"):
            wait_running(lab, name)
        lab.client.wait_until(
            lambda: len(lab_processes(lab.state_dir, uids[2:], server=False)) >= 3
        )
        pid = json.loads((lab.state_dir / "server.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lab_processes(lab.state_dir, uids, server=False), "pods died with the server?"
        for record in (lab.state_dir / "runtime" / "pods").glob("*.json"):
            record.unlink()
        down = run_falcoir("lab", "down", "--state-dir", str(lab.state_dir))
        assert down.returncode == 0, down.stderr
        assert "killed leftover shim pid" in down.stderr, down.stderr
        assert "left in cgroup" in down.stderr, down.stderr
        left = wait_gone(lab.state_dir, uids)
        assert not left, "pod processes outlived lab down:\n" + "\n".join(left)
        assert not pod_cgroups(uids), "pod cgroups outlived lab down"
        assert not list((lab.state_dir / "runtime").glob("cgroups-*.txt"))
        # The other lab, on the same machine, lost nothing.
        assert other.client.get("pods", "bystander0", "default")["status"]["phase"] == "Running"
        assert len(lab_processes(other.state_dir, bystander, server=False)) >= 2


# ----------------------------------------------------------------------------------------
# The runtime driven directly: the moment a container's shim runs but has not answered
# yet (the window where a cancelled start used to orphan it) is hit every time.
# ----------------------------------------------------------------------------------------


REAPED = 0.3
"""Seconds a process SIGKILLed by kill_pod or shutdown may take to be gone (reaped)."""


class NoEvents:
    def pod_status(self, *args: object) -> None:
        pass

    def pod_event(self, *args: object) -> None:
        pass


def runtime_pod(name: str, **spec: Any) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    body = {"containers": [{**SLEEPER, "name": "c0"}, {**SLEEPER, "name": "c1"}], **spec}
    return {"metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": body}


async def shim_in_flight(rt: LinuxRuntime, pod: dict[str, Any]) -> None:
    """Return as soon as one of the pod's shims runs and has not answered yet."""
    uid = pod["metadata"]["uid"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        p = rt._pods.get(uid)
        if p and any(c.shim is not None and c.state == "waiting" for c in p.all_containers()):
            return
        await asyncio.sleep(0.001)
    raise AssertionError("no shim started")


@pytest.mark.parametrize("case", ["shutdown", "kill_pod", "run_pod cancelled", "sandbox"])
def test_runtime_start_in_flight_leaves_no_process(tmp_path: Path, case: str) -> None:
    state = tmp_path / "lab"
    pod = runtime_pod("p", shareProcessNamespace=case == "sandbox")
    uid = pod["metadata"]["uid"]
    left_after_kill: list[str] = []

    async def main() -> None:
        rt = LinuxRuntime(state, "lab-node")
        await rt.start(NoEvents())
        try:
            starting = asyncio.ensure_future(rt.run_pod(pod))
            await shim_in_flight(rt, pod)
            if case == "run_pod cancelled":  # as LabServer.stop() does
                starting.cancel()
            if case == "kill_pod":
                await rt.kill_pod(pod, 0)
                # Killed by then (not dying later of a lost spec file or netns): a
                # SIGKILLed process only needs a moment to be reaped.
                left_after_kill.extend(await asyncio.to_thread(wait_gone, state, [uid], REAPED))
        finally:
            await rt.shutdown()
        await asyncio.wait([starting], timeout=10)

    asyncio.run(main())
    assert not left_after_kill, "a deleted pod's processes run on:\n" + "\n".join(left_after_kill)
    left = wait_gone(state, [uid], REAPED)
    assert not left, "pod processes outlived the runtime:\n" + "\n".join(left)
    assert not pod_cgroups([uid]), "pod cgroups outlived the runtime"
    assert not list((state / "runtime").glob("*/*.json")), "records left behind"


def test_runtime_pod_started_during_shutdown_leaves_no_process(tmp_path: Path) -> None:
    """A pod the server starts while the lab shuts down (a create request still being
    answered, a controller's pod) never outlives the shutdown."""
    state = tmp_path / "lab"
    pod = runtime_pod("late", hostNetwork=True)
    uid = pod["metadata"]["uid"]

    async def main() -> None:
        rt = LinuxRuntime(state, "lab-node")
        await rt.start(NoEvents())
        await rt.run_pod(runtime_pod("early"))
        stopping = asyncio.ensure_future(rt.shutdown())
        while rt._pool is not None and not stopping.done():  # the pods are killed
            await asyncio.sleep(0)
        await asyncio.wait([asyncio.ensure_future(rt.run_pod(pod)), stopping], timeout=30)

    asyncio.run(main())
    left = wait_gone(state, [uid])
    assert not left, "a pod started during shutdown outlived it:\n" + "\n".join(left)


@pytest.mark.parametrize("share", [False, True])
def test_runtime_pod_deleted_during_network_setup_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, share: bool
) -> None:
    """kill_pod while run_pod still makes the pod's network namespace: nothing starts
    afterwards (not even the pause process of a shared pid namespace), nothing stays."""
    real = net.setup_pod

    def slow_setup(*args: Any) -> Any:
        time.sleep(0.5)  # kill_pod comes now
        return real(*args)

    monkeypatch.setattr(net, "setup_pod", slow_setup)
    state = tmp_path / "lab"
    pod = runtime_pod("p", shareProcessNamespace=share)
    uid = pod["metadata"]["uid"]
    left_after_kill: list[str] = []
    netns_after_kill: list[str] = []

    async def main() -> None:
        rt = LinuxRuntime(state, "lab-node")
        await rt.start(NoEvents())
        try:
            starting = asyncio.ensure_future(rt.run_pod(pod))
            await asyncio.sleep(0.1)
            assert uid in rt._pods
            await rt.kill_pod(pod, 0)
            await asyncio.wait([starting], timeout=20)
            await asyncio.sleep(0.5)  # what would start, has
            left_after_kill.extend(await asyncio.to_thread(wait_gone, state, [uid]))
            netns_after_kill.extend(
                str(n) for n in Path("/run/netns").glob(f"falcoir-{rt.lab_id}-*")
            )
        finally:
            await rt.shutdown()

    asyncio.run(main())
    assert not left_after_kill, "a deleted pod's processes run on:\n" + "\n".join(left_after_kill)
    assert not netns_after_kill, f"a deleted pod's network namespace stays: {netns_after_kill}"


def test_runtime_debug_container_in_flight_leaves_no_process(tmp_path: Path) -> None:
    """The request adding an ephemeral container is cancelled (the lab's HTTP server
    stops) while its shim starts, then the pod is deleted."""
    state = tmp_path / "lab"
    pod = runtime_pod("p")
    uid = pod["metadata"]["uid"]
    left_after_kill: list[str] = []

    async def main() -> None:
        rt = LinuxRuntime(state, "lab-node")
        await rt.start(NoEvents())
        try:
            await rt.run_pod(pod)
            dbg = {"name": "dbg", "image": "busybox", "command": ["sleep", "infinity"],
                   "targetContainerName": "c0"}  # fmt: skip
            request = asyncio.ensure_future(rt.add_ephemeral_container(pod, dbg))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                c = rt._pods[uid].ephemeral.get("dbg")
                if c is not None and c.shim is not None and c.state == "waiting":
                    break
                await asyncio.sleep(0.001)
            request.cancel()
            await rt.kill_pod(pod, 0)
            left_after_kill.extend(await asyncio.to_thread(wait_gone, state, [uid], REAPED))
        finally:
            await rt.shutdown()

    asyncio.run(main())
    assert not left_after_kill, "a deleted pod's processes run on:\n" + "\n".join(left_after_kill)
    assert not wait_gone(state, [uid], REAPED)


def test_a_cgroup_the_sweep_cannot_remove_stays_in_the_ledger(tmp_path: Path) -> None:
    # (No root needed: plain directories stand for cgroups; a file in one makes its
    # rmdir fail, as a process that will not die makes a cgroup's.)
    from falcoir.lab.linux.runtime import _sweep

    rt = tmp_path / "runtime"
    rt.mkdir()
    gone = tmp_path / "kubepods" / "besteffort" / "pod-gone"
    stuck = tmp_path / "kubepods" / "besteffort" / "pod-stuck"
    gone.mkdir(parents=True)
    stuck.mkdir(parents=True)
    (stuck / "busy").write_text("x")
    ledger = rt / "cgroups-abc123.txt"
    ledger.write_text(f"{gone}\n{stuck}\n")
    out = _sweep(rt, {}, lab_id="abc123")
    assert not gone.exists()
    assert ledger.read_text().split() == [str(stuck)]
    assert any("could not be removed" in line for line in out)
    (stuck / "busy").unlink()
    _sweep(rt, {}, lab_id="abc123")
    assert not stuck.exists() and not ledger.exists()
