"""The evidence bundle: BagIt writing, sealing, reopening, verifying, hostile archives."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import bagit
import pytest

from falcoir.core.bundle import (
    ArtifactMeta,
    ArtifactStatus,
    BundleError,
    BundleWriter,
    safe_extract,
    summarize,
    verify,
)
from falcoir.core.incident import Incident, IncidentStore
from falcoir.core.target import LocateMethod, Target


@pytest.fixture
def incident(tmp_path: Path) -> Incident:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("prod", "web-1", "uid-1", alert_raw="alert")
    inc.action_log("alice").append("patch", "Pod", "prod", "web-1", "ok", "labelled")
    return inc


def _writer(tmp_path: Path, incident: Incident) -> BundleWriter:
    target = Target("prod", "web-1", "app", LocateMethod.POD_FLAG, node="n1")
    return BundleWriter.create(
        tmp_path / "out",
        incident,
        alert_raw="08:30:00 Critical \x1b[31mminer\x1b[0m",
        target=target,
        context="lab",
        operator="alice",
    )


def test_sealed_bundle_is_a_valid_bag_with_metadata(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    w.add_bytes(
        "processes/ps.txt",
        b"PID CMD\n1 /tmp/xmrig\n",
        ArtifactMeta(argv=("ps", "auxww"), container="app", exit_code=0, stderr=b"warn\xff"),
    )
    with w.open_stream("binary/exe") as s:
        s.write(b"\x7fELF" + b"x" * 100)
        s.commit(ArtifactMeta(argv=("cat", "/proc/7/exe")), mode=0o444)
    res = w.finalize(True)

    assert res.complete and res.dir.is_dir() and res.archive.is_file()
    bag = bagit.Bag(str(res.dir))
    assert bag.is_valid()
    assert bag.version_info == (1, 0)
    assert bag.info["Falcoir-Incident"] == incident.id
    assert bag.info["Falcoir-Operator"] == "alice"
    assert bag.info["Falcoir-Context"] == "lab"
    assert bag.info["Falcoir-Complete"] == "true"
    assert "\x1b" not in (res.dir / "bag-info.txt").read_text()
    # the alert is kept exactly as received in data/
    assert (res.dir / "data/alert.txt").read_bytes() == b"08:30:00 Critical \x1b[31mminer\x1b[0m"
    # the action log is copied in
    actions = (res.dir / "data/actions.jsonl").read_text().splitlines()
    assert json.loads(actions[0])["detail"] == "labelled"
    # the sidecar carries argv, exit code, raw stderr is kept next to it
    meta = json.loads((res.dir / "data/processes/ps.txt.meta.json").read_text())
    assert meta["argv"] == ["ps", "auxww"] and meta["exit_code"] == 0
    assert meta["container"] == "app" and meta["status"] == "ok"
    assert (res.dir / "data/processes/ps.txt.stderr").read_bytes() == b"warn\xff"
    # the binary is not executable
    mode = stat.S_IMODE((res.dir / "data/binary/exe").stat().st_mode)
    assert mode & 0o111 == 0
    # evidence is read-only once recorded, and private to the responder
    assert stat.S_IMODE((res.dir / "data/processes/ps.txt.stderr").stat().st_mode) == 0o444
    assert stat.S_IMODE(res.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(res.archive.stat().st_mode) == 0o600
    index = json.loads((res.dir / "data/index.json").read_text())
    assert {a["name"] for a in index["artifacts"]} >= {"processes/ps.txt", "binary/exe"}
    rep = verify(res.dir)
    assert rep.ok and rep.files_checked > 5
    assert verify(res.archive).ok


def test_flipping_one_byte_fails_both_checks(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    w.add_bytes("net/netstat.txt", b"tcp 0 0 10.0.0.2:4242 10.0.0.9:3333 ESTABLISHED\n")
    res = w.finalize(True)
    path = res.dir / "data/net/netstat.txt"
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    rep = verify(res.dir)
    assert not rep.ok
    assert [(p.path, p.kind) for p in rep.problems] == [
        ("data/net/netstat.txt", "checksum-mismatch")
    ]
    assert not bagit.Bag(str(res.dir)).is_valid()


def test_missing_and_extra_files_are_each_reported(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    w.add_bytes("a.txt", b"a")
    w.add_bytes("b.txt", b"b")
    res = w.finalize(True)
    (res.dir / "data/a.txt").unlink()
    (res.dir / "data/sneaky.txt").write_bytes(b"x")
    kinds = {(p.path, p.kind) for p in verify(res.dir).problems}
    assert ("data/a.txt", "missing") in kinds
    assert ("data/sneaky.txt", "unexpected") in kinds


def test_archive_tamper_is_detected(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    w.add_bytes("a.txt", b"original")
    res = w.finalize(True)
    # rebuild the archive with one changed member
    tampered = tmp_path / "t.tar.gz"
    with tarfile.open(res.archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for m in src:
            f = src.extractfile(m) if m.isreg() else None
            if m.name.endswith("data/a.txt"):
                body = b"Original"
                m.size = len(body)
                dst.addfile(m, io.BytesIO(body))
            else:
                dst.addfile(m, f)
    rep = verify(tampered)
    assert not rep.ok
    assert any(p.path == "data/a.txt" and p.kind == "checksum-mismatch" for p in rep.problems)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("../evil", tarfile.REGTYPE),
        ("/etc/evil", tarfile.REGTYPE),
        ("top/link", tarfile.SYMTYPE),
        ("top/dev", tarfile.CHRTYPE),
        ("other/file", tarfile.REGTYPE),
    ],
)
def test_hostile_archives_are_refused_without_writing_outside(
    tmp_path: Path, name: str, kind: bytes
) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        d = tarfile.TarInfo("top")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BundleError):
        safe_extract(archive, dest)
    assert not (tmp_path / "evil").exists()
    rep = verify(archive)
    assert not rep.ok and rep.problems[0].kind == "archive"


def test_reopen_adds_files_and_reseals(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    w.add_bytes("a.txt", b"a")
    first = w.finalize(True)
    incident.action_log("alice").append("delete", "Pod", "prod", "web-1", "ok")
    again = BundleWriter.reopen(first.dir, actions_path=incident.actions_path)
    assert again.previous_complete is True
    assert again.incident_id == incident.id
    again.add_bytes("report.md", b"# report\n")
    second = again.finalize(True)
    assert verify(second.dir).ok and verify(second.archive).ok
    assert second.archive_sha256 != first.archive_sha256
    lines = (second.dir / "data/actions.jsonl").read_text().splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["patch", "delete"]
    names = {a.name for a in summarize(second.dir).artifacts}
    assert {"a.txt", "report.md"} <= names


def test_interrupted_stream_and_bad_names(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    with pytest.raises(KeyboardInterrupt), w.open_stream("big.bin", max_bytes=4) as s:
        s.write(b"123456")
        raise KeyboardInterrupt
    art = next(a for a in w.artifacts if a.name == "big.bin")
    assert art.status is ArtifactStatus.INTERRUPTED and art.bytes == 4 and art.truncated
    for bad in ("../x", "/abs", "a/../b", "x.meta.json", "", "index.json", "a b"):
        with pytest.raises(BundleError):
            w.add_bytes(bad, b"")
    # same name twice gets a suffix, never overwrites
    a1 = w.add_bytes("dup.txt", b"1")
    a2 = w.add_bytes("dup.txt", b"2")
    assert a1.name == "dup.txt" and a2.name == "dup-2.txt"
    res = w.finalize(False)
    assert bagit.Bag(str(res.dir)).info["Falcoir-Complete"] == "false"
    assert verify(res.dir).complete is False
    assert os.path.exists(str(res.archive) + ".sha256")
