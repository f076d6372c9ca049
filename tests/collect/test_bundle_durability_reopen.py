"""Sealing a bundle again (``BundleWriter.reopen``: respond adding its report, the action
log synced after a quarantine, ``bundle seal`` after a crash) keeps the hashes recorded
when each file was written: it does not read a large binary back, and it never blesses
a file changed or removed since; ``bundle verify``, which re-hashes everything, says so."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import bagit
import pytest

import falcoir.core.bundle as bundle_mod
from falcoir.core.bundle import ArtifactMeta, BundleWriter, seal_unsealed, verify
from falcoir.core.contain.record import sync_action_log
from falcoir.core.incident import Incident, IncidentStore
from falcoir.core.target import LocateMethod, Target

ROOT = Path(__file__).resolve().parents[2]
BINARY = b"\x7fELF" + bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "home")


@pytest.fixture
def incident(store: IncidentStore) -> Incident:
    inc = store.open("prod", "web-1", "uid-1", alert_raw="alert")
    inc.action_log("alice").append("patch", "Pod", "prod", "web-1", "ok", "labelled")
    return inc


def _sealed(tmp_path: Path, store: IncidentStore, incident: Incident) -> BundleWriter:
    w = BundleWriter.create(
        tmp_path / "out",
        incident,
        alert_raw="08:30:00 Critical miner",
        target=Target("prod", "web-1", "app", LocateMethod.POD_FLAG),
        context="lab",
        operator="alice",
    )
    w.add_bytes("processes/ps.txt", b"42 /tmp/xmrig\n", ArtifactMeta(stderr=b"warn\n"))
    with w.open_stream("binary/exe.bin") as s:
        s.write(BINARY)
        s.commit(ArtifactMeta(argv=("cat", "/proc/42/exe")))
    res = w.finalize(True)
    store.add_bundle(incident, res.dir)
    return w


def _tamper(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def falcoir(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def test_a_reseal_does_not_read_the_recorded_files_back(
    tmp_path: Path, store: IncidentStore, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _sealed(tmp_path, store, incident)
    hashed: list[str] = []
    real = bundle_mod._sha256_file

    def spy(path: Path) -> tuple[str, int]:
        hashed.append(path.relative_to(first.dir).as_posix())
        return real(path)

    monkeypatch.setattr(bundle_mod, "_sha256_file", spy)
    w = BundleWriter.reopen(first.dir, actions_path=incident.actions_path)
    w.add_bytes("report.md", b"# report\n", ArtifactMeta(source="falcoir"))
    res = w.finalize(True)
    # not the binary copy, nor anything else recorded: only the bag's own records, to
    # check that its manifests vouch for them
    assert hashed and all(h == "manifest-sha256.txt" or h.endswith(".meta.json") for h in hashed), (
        hashed
    )
    monkeypatch.setattr(bundle_mod, "_sha256_file", real)
    assert verify(res.dir).ok and verify(res.archive).ok
    assert bagit.Bag(str(res.dir)).is_valid()
    manifest = (res.dir / "manifest-sha256.txt").read_text()
    assert f"{hashlib.sha256(BINARY).hexdigest()}  data/binary/exe.bin" in manifest
    assert "data/report.md" in manifest


def test_a_file_changed_after_the_seal_still_fails_verify_after_a_reseal(
    tmp_path: Path, store: IncidentStore, incident: Incident
) -> None:
    first = _sealed(tmp_path, store, incident)
    exe = first.dir / "data" / "binary" / "exe.bin"
    _tamper(exe, BINARY[:-1] + b"!")  # same size, one byte changed
    # the quarantine step syncs the action log into the incident's bundles: a reseal
    incident.action_log("alice").append("create", "NetworkPolicy", "prod", "q", "ok", "")
    synced = sync_action_log(store, incident)
    assert synced.updated == (first.dir,) and not synced.failed
    report = verify(first.dir)
    assert not report.ok
    assert [(p.path, p.kind) for p in report.problems] == [
        ("data/binary/exe.bin", "checksum-mismatch")
    ]
    assert report.problems[0].expected == hashlib.sha256(BINARY).hexdigest()
    archive = first.dir.with_name(first.dir.name + ".tar.gz")
    assert not verify(archive).ok
    # the CLI says so too
    r = falcoir("bundle", "verify", str(first.dir))
    assert r.returncode == 1 and "data/binary/exe.bin" in r.stderr, r.stderr
    # the action log was synced all the same
    assert "NetworkPolicy" in (first.dir / "data" / "actions.jsonl").read_text()


def test_a_file_removed_after_the_seal_is_reported_missing_after_a_reseal(
    tmp_path: Path, store: IncidentStore, incident: Incident
) -> None:
    first = _sealed(tmp_path, store, incident)
    (first.dir / "data" / "processes" / "ps.txt").unlink()
    w = BundleWriter.reopen(first.dir, actions_path=incident.actions_path)
    res = w.finalize(True)
    report = verify(res.dir)
    assert not report.ok
    assert ("data/processes/ps.txt", "missing") in [(p.path, p.kind) for p in report.problems]
    assert "data/processes/ps.txt" in (res.dir / "manifest-sha256.txt").read_text()


def test_a_reseal_without_the_incident_keeps_the_action_log(
    tmp_path: Path, store: IncidentStore, incident: Incident
) -> None:
    first = _sealed(tmp_path, store, incident)
    log = (first.dir / "data" / "actions.jsonl").read_bytes()
    assert b"labelled" in log
    # on another machine: no incident store to copy a newer log from
    w = BundleWriter.reopen(first.dir)
    w.add_bytes("note.txt", b"seen by the auditor\n", ArtifactMeta(source="input"))
    res = w.finalize(True)
    assert (res.dir / "data" / "actions.jsonl").read_bytes() == log
    assert verify(res.dir).ok and bagit.Bag(str(res.dir)).is_valid()


def test_sealing_after_a_crash_keeps_the_hashes_the_sidecars_recorded(
    tmp_path: Path, incident: Incident
) -> None:
    w = BundleWriter.create(
        tmp_path / "out", incident, alert_raw=None, target=None, context="lab", operator="a"
    )
    w.add_bytes("processes/ps.txt", b"42 /tmp/xmrig\n", ArtifactMeta())
    w.add_bytes("files/ls.txt", b"xmrig\n", ArtifactMeta())
    # the writer "dies" here; then someone edits a captured file before it is sealed
    _tamper(w.data / "processes" / "ps.txt", b"42 /tmp/xmriG\n")  # same size
    res = seal_unsealed(w.dir, force=True)
    report = verify(res.dir)
    assert [(p.path, p.kind) for p in report.problems] == [
        ("data/processes/ps.txt", "checksum-mismatch")
    ]
    sidecar = json.loads((w.data / "processes" / "ps.txt.meta.json").read_text())
    assert report.problems[0].expected == sidecar["sha256"]


def _relist(bundle: Path, rel: str, data: bytes) -> None:
    """Change ``rel`` and its line in the manifest to match (not the tag manifest)."""
    _tamper(bundle / rel, data)
    manifest = bundle / "manifest-sha256.txt"
    lines = [
        f"{hashlib.sha256(data).hexdigest()}  {rel}" if line.endswith(f"  {rel}") else line
        for line in manifest.read_text().splitlines()
    ]
    manifest.chmod(0o644)
    manifest.write_text("\n".join(lines) + "\n")


def test_a_file_changed_with_its_manifest_line_is_not_sealed_again(
    tmp_path: Path, store: IncidentStore, incident: Incident
) -> None:
    first = _sealed(tmp_path, store, incident)
    _relist(first.dir, "data/processes/ps.txt", b"1 /bin/sh\n")
    assert not verify(first.dir).ok  # the tag manifest still says otherwise
    with pytest.raises(bundle_mod.BundleError, match="does not match tagmanifest"):
        BundleWriter.reopen(first.dir, actions_path=incident.actions_path)
    assert not verify(first.dir).ok  # and still says so: nothing was laundered


def test_a_changed_sidecar_is_not_sealed_again(
    tmp_path: Path, store: IncidentStore, incident: Incident
) -> None:
    first = _sealed(tmp_path, store, incident)
    meta = first.dir / "data" / "processes" / "ps.txt.meta.json"
    doc = json.loads(meta.read_text())
    doc["exit_code"] = 0 if doc.get("exit_code") != 0 else 1
    _tamper(meta, (json.dumps(doc) + "\n").encode())
    with pytest.raises(bundle_mod.BundleError, match=r"ps\.txt\.meta\.json does not match"):
        BundleWriter.reopen(first.dir)


def test_a_reseal_cut_short_is_sealed_from_the_files(
    tmp_path: Path, store: IncidentStore, incident: Incident
) -> None:
    # A crash between the manifest's rename and the tag manifest's: the unsealed marker
    # (made durable by reopen) says so; the next reseal hashes the files as they are.
    first = _sealed(tmp_path, store, incident)
    w = BundleWriter.reopen(first.dir)  # marks it unsealed
    del w
    manifest = first.dir / "manifest-sha256.txt"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text() + "")  # same text; now the tag list goes stale:
    tag = first.dir / "tagmanifest-sha256.txt"
    tag.chmod(0o644)
    tag.write_text(
        "".join(
            line.replace(line.split()[0], "0" * 64) + "\n"
            if "manifest-sha256" in line
            else line + "\n"
            for line in tag.read_text().splitlines()
        )
    )
    again = BundleWriter.reopen(first.dir)
    res = again.finalize(False)
    assert verify(res.dir).ok
