"""A collection killed with SIGKILL leaves an unsealed bundle directory: `bundle verify`
says so (no traceback), and `bundle seal` seals it as incomplete, recording why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import bagit
import pytest

from falcoir.core.bundle import (
    INFO_INCOMPLETE_REASON,
    UNSEALED_MARKER,
    ArtifactMeta,
    BundleError,
    BundleWriter,
    seal_unsealed,
    verify,
)
from falcoir.core.incident import IncidentStore
from falcoir.core.target import LocateMethod, Target

ROOT = Path(__file__).resolve().parents[2]

# A collection whose binary copy sends a first chunk and then never ends: the process
# is killed while the copy is being streamed into the bundle.
COLLECTOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from falcoir.core.collect import CollectOptions, run_collect, target_from_pod
    from falcoir.core.incident import IncidentStore
    from falcoir.core.target import PodRef
    from tests.collect.support import NS, POD, Hang
    from tests.collect.test_collect_scripted import alert, cluster_with, miner_container

    class Stalling(type(cluster_with(miner_container()))):
        def exec(self, namespace, pod, container, argv, **kw):
            if list(argv[:1]) == ["cat"]:
                sink = kw.get("stdout_sink")
                if sink is not None:
                    sink.write(b"\\x7fELF-first-chunk")
                    sink.flush()
                print("STREAMING", flush=True)
                time.sleep(600)
            return super().exec(namespace, pod, container, argv, **kw)

    box = miner_container()
    box.overrides[("netstat",)] = Hang
    cluster = Stalling()
    from tests.collect.support import add_workload
    add_workload(cluster)
    cluster.containers["miner"] = box
    out, home = Path(sys.argv[1]), Path(sys.argv[2])
    target = target_from_pod(cluster, PodRef(NS, POD))
    run_collect(cluster, target, alert=alert(), out_dir=out,
                options=CollectOptions(timeout=600, binary_timeout=600),
                store=IncidentStore(home))
    """
)


def falcoir(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FALCOIR_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def killed_bundle(tmp_path: Path) -> Path:
    script = tmp_path / "collector.py"
    script.write_text(COLLECTOR)
    out, home = tmp_path / "evidence", tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the script prints or dies
        assert line.strip() == "STREAMING", proc.stderr.read() if proc.stderr else ""
        # let the other collectors write what they have
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if list(out.glob("*/data/api/pod.yaml.meta.json")):
                break
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    (bundle,) = [p for p in out.iterdir() if p.is_dir()]
    assert not list(out.glob("*.tar.gz"))
    return bundle


def test_verify_says_a_killed_collection_was_never_sealed(
    killed_bundle: Path, tmp_path: Path
) -> None:
    assert (killed_bundle / UNSEALED_MARKER).is_file()
    r = falcoir(tmp_path / "home", "bundle", "verify", str(killed_bundle))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "never sealed" in r.stderr and "killed?" in r.stderr
    assert f"falcoir bundle seal {killed_bundle}" in r.stderr
    j = falcoir(tmp_path / "home", "bundle", "verify", str(killed_bundle), "-o", "json")
    doc = json.loads(j.stdout)
    assert doc["ok"] is False and doc["sealed"] is False
    assert [p["kind"] for p in doc["problems"]] == ["unsealed"]
    s = falcoir(tmp_path / "home", "bundle", "show", str(killed_bundle))
    assert s.returncode == 0 and "unsealed" in s.stderr and "Traceback" not in s.stderr


def test_seal_marks_it_incomplete_records_why_and_verifies(
    killed_bundle: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    r = falcoir(home, "bundle", "seal", str(killed_bundle), "--reason", "OOM-killed", "-o", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["complete"] is False and doc["changed"] is True
    assert "INCOMPLETE" in r.stderr
    assert not (killed_bundle / UNSEALED_MARKER).exists()
    report = verify(killed_bundle)
    assert report.ok and report.sealed and report.complete is False
    assert report.info[INFO_INCOMPLETE_REASON] == "OOM-killed"
    assert verify(Path(doc["archive"])).ok
    assert bagit.Bag(str(killed_bundle)).is_valid()
    arts = {a["name"]: a for a in doc["artifacts"]}
    # the copy cut short by the kill is kept, and said to be interrupted
    copy = arts["binary/exe.bin"]
    assert copy["status"] == "interrupted" and copy["bytes"] == len(b"\x7fELF-first-chunk")
    assert arts["api/pod.yaml"]["status"] == "ok"
    index = json.loads((killed_bundle / "data" / "index.json").read_text())
    assert index["complete"] is False
    # the incident learns of the bundle (run_collect never got to record it)
    (inc,) = IncidentStore(home).all()
    assert str(killed_bundle.resolve()) in inc.bundles
    # again: nothing to do
    again = falcoir(home, "bundle", "seal", str(killed_bundle))
    assert again.returncode == 0 and "already sealed" in again.stderr
    v = falcoir(home, "bundle", "verify", str(killed_bundle))
    assert v.returncode == 0 and "incomplete" in v.stderr


def test_seal_never_launders_a_sealed_bundle_that_changed(tmp_path: Path) -> None:
    inc = IncidentStore(tmp_path / "home").open("prod", "web-1", "uid-1")
    writer = BundleWriter.create(
        tmp_path / "out",
        inc,
        alert_raw=None,
        target=Target("prod", "web-1", "app", LocateMethod.POD_FLAG),
        context="lab",
        operator="alice",
    )
    writer.add_bytes("processes/ps.txt", b"42 xmrig\n", ArtifactMeta())
    sealed = writer.finalize(True)
    art = sealed.dir / "data" / "processes" / "ps.txt"
    art.chmod(0o644)
    art.write_bytes(b"42 innocent\n")
    r = falcoir(tmp_path / "home", "bundle", "seal", str(sealed.dir))
    assert r.returncode == 1 and "no longer verifies" in r.stderr
    with pytest.raises(BundleError, match="already sealed"):
        seal_unsealed(sealed.dir)
    assert not verify(sealed.dir).ok
    assert falcoir(tmp_path / "home", "bundle", "seal", str(sealed.archive)).returncode == 2


def test_seal_refuses_a_bundle_whose_writer_still_runs(tmp_path: Path) -> None:
    inc = IncidentStore(tmp_path / "home").open("prod", "web-1", "uid-1")
    writer = BundleWriter.create(
        tmp_path / "out", inc, alert_raw=None, target=None, context="lab", operator="a"
    )
    report = verify(writer.dir)
    assert not report.sealed and "still writing" in report.problems[0].message
    with pytest.raises(BundleError, match="still being written"):
        seal_unsealed(writer.dir)
    assert seal_unsealed(writer.dir, force=True).complete is False
