"""``cleanup(state_dir)`` after the lab was killed with SIGKILL: nothing of it remains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from falcoir.lab.linux import cleanup
from tests.lab_runtime.conftest import Harness, needs_isolation, subprocess_env

pytestmark = [pytest.mark.root, needs_isolation]

LAB = r"""
import asyncio, json, sys
from pathlib import Path
from falcoir.lab.linux import LinuxRuntime

class Ev:
    def pod_status(self, *a): pass
    def pod_event(self, *a): pass

async def main():
    rt = LinuxRuntime(Path(sys.argv[1]), "lab-node")
    await rt.start(Ev())
    pods = []
    for i in range(2):
        uid = f"0000000{i}-aaaa-bbbb-cccc-dddddddddddd"
        cmd = ["sh", "-c", "sleep 1000 & sleep 1000"]
        pod = {"metadata": {"name": f"p{i}", "namespace": "default", "uid": uid},
               "spec": {"containers": [{"name": "c", "image": "ubuntu", "command": cmd}]}}
        await rt.run_pod(pod)
        pods.append(rt.host_pid(pod, "c"))
    print(json.dumps({"lab_id": rt.lab_id, "pids": pods}), flush=True)
    await asyncio.sleep(1000)

asyncio.run(main())
"""


def test_cleanup_after_kill_9_removes_everything(tmp_path: Path, harness: Harness) -> None:
    other = harness.pod(
        "bystander", [{"name": "c", "image": "ubuntu", "command": ["sleep", "1000"]}]
    )
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", LAB, str(state)],
        stdout=subprocess.PIPE,
        env=subprocess_env(),
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    lab_id = info["lab_id"]
    pids = info["pids"]
    assert all(Path(f"/proc/{p}").exists() for p in pids), "containers outlive their lab"
    assert list(Path("/run/netns").glob(f"falcoir-{lab_id}-*"))
    cg = [Path(f"/proc/{p}/cgroup").read_text() for p in pids]

    removed = cleanup(state)
    assert len([r for r in removed if r.startswith("pod ")]) == 2
    time.sleep(0.1)
    for p in pids:
        assert not Path(f"/proc/{p}").exists() or _zombie(p)
    assert not list(Path("/run/netns").glob(f"falcoir-{lab_id}-*"))
    assert not [n for n in os.listdir("/sys/class/net") if lab_id in n]
    for text in cg:
        rel = text.splitlines()[-1].split("::", 1)[1]
        assert not Path("/sys/fs/cgroup/unified" + rel).exists()
        assert not Path("/sys/fs/cgroup/unified" + rel).parent.exists()
    assert cleanup(state) == []
    # Another lab's pod is untouched.
    assert harness.exec(other, "c", ["true"])[0] == 0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
