"""The constant /proc scripts and the collectors against real processes on this machine.

``LocalExecCluster`` runs each argv here, the way the lab runs it inside a pod: so
``ps``, ``ls``, ``sha256sum``, ``cat /proc/<pid>/exe`` and the /proc dumps are real.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoir.core.alert import Alert, Process
from falcoir.core.bundle import verify
from falcoir.core.collect import CollectOptions, CollectorStatus, run_collect, target_from_pod
from falcoir.core.incident import IncidentStore
from falcoir.core.target import PodRef
from tests.collect.support import NS, POD, LocalExecCluster, add_workload

CLIENT = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b'{"method":"login"}\\n')
time.sleep(60)
"""


@pytest.fixture
def miner(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], bytes, Path]]:
    """A 'miner': a copy of sleep run from a temp dir, then deleted from disk."""
    exe = tmp_path / "xmrig"
    shutil.copyfile(shutil.which("sleep") or "/bin/sleep", exe)
    exe.chmod(0o755)
    original = exe.read_bytes()
    proc = subprocess.Popen([str(exe), "300"])
    time.sleep(0.1)
    exe.unlink()
    yield proc, original, exe
    proc.kill()
    proc.wait()


@pytest.fixture
def pool() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A local 'pool' and a client process holding an established connection to it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)])
    conn, _ = srv.accept()
    yield port, client
    client.kill()
    client.wait()
    conn.close()
    srv.close()


def test_real_processes_sockets_and_deleted_binary(
    tmp_path: Path,
    miner: tuple[subprocess.Popen[bytes], bytes, Path],
    pool: tuple[int, subprocess.Popen[bytes]],
) -> None:
    proc, original, exe = miner
    port, client = pool
    cluster = LocalExecCluster()
    add_workload(cluster)
    target = target_from_pod(cluster, PodRef(NS, POD))
    alert = Alert(
        raw="miner alert",
        source_format="text",
        process=Process(name="xmrig", cmdline=f"{exe} 300", vpid=proc.pid),
    )
    res = run_collect(
        cluster,
        target,
        alert=alert,
        out_dir=tmp_path / "ev",
        options=CollectOptions(timeout=20),
        store=IncidentStore(tmp_path / "home"),
    )
    st = {c.name: c for c in res.collectors}
    assert st["processes"].status is CollectorStatus.OK
    data = res.bundle.dir / "data"
    procs = json.loads((data / "processes/processes.json").read_text())
    me = next(p for p in procs if p["pid"] == proc.pid)
    assert me["exe"] == str(exe) and me["exe_deleted"] is True
    assert me["cmdline"] == [str(exe), "300"] and me["comm"] == "xmrig"
    # the deleted binary was copied through /proc/<pid>/exe, same bytes, not executable
    assert res.binary is not None and res.binary.deleted
    assert res.binary.sha256 == hashlib.sha256(original).hexdigest() == res.binary.in_pod_sha256
    copied = data / "binary/exe.bin"
    assert copied.read_bytes() == original and copied.stat().st_mode & 0o111 == 0
    # the client's connection to the pool port is mapped to the client process
    conns = json.loads((data / "network/connections.json").read_text())
    mine = [c for c in conns if c["remote_port"] == port and c["state"] == "ESTABLISHED"]
    assert mine and mine[0]["pids"] == [client.pid], mine
    assert verify(res.bundle.dir).ok and verify(res.bundle.archive).ok


def test_hostile_file_names_in_a_real_listing(tmp_path: Path) -> None:
    d = tmp_path / "pod-tmp"
    d.mkdir()
    (d / "$(reboot);").write_bytes(b"x")
    (d / "new\nline").write_bytes(b"y")
    (d / "\x1b[31mred").write_bytes(b"z")
    cluster = LocalExecCluster()
    add_workload(cluster)
    target = target_from_pod(cluster, PodRef(NS, POD))
    res = run_collect(
        cluster,
        target,
        alert=None,
        out_dir=tmp_path / "ev",
        options=CollectOptions(extra_dirs=(str(d),), volatile=False),
        store=IncidentStore(tmp_path / "home"),
    )
    listing = next(
        a for a in res.artifacts if a.argv and a.argv[-1] == str(d) and a.status.value == "ok"
    )
    raw = (res.bundle.dir / listing.path).read_bytes()
    assert b"$(reboot);" in raw and b"red" in raw
    # the binary collector had no suspect: skipped, not failed
    assert {c.name: c.status for c in res.collectors}["binary"] is CollectorStatus.SKIPPED


def test_output_cap_and_timeout_hold_for_real_commands(tmp_path: Path) -> None:
    cluster = LocalExecCluster()
    add_workload(cluster)
    t0 = time.monotonic()
    r = cluster.exec(NS, POD, None, ["sleep", "30"], timeout=0.5)
    assert r.timed_out and r.exit_code is None and time.monotonic() - t0 < 5
    r = cluster.exec(
        NS, POD, None, ["head", "-c", str(5 * 1024 * 1024), "/dev/zero"], max_bytes=1000
    )
    assert len(r.stdout) == 1000 and r.stdout_truncated and r.stdout_bytes == 5 * 1024 * 1024
