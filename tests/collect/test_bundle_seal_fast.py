"""Sealing without re-reading: falcoir writes the bag's tag files itself, from the
hashes taken as each file was written, byte for byte as ``bagit`` would, and the
archive is hashed as it is written. ``bagit`` still validates every bundle here."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import bagit
import pytest

import falcoir.core.bundle as bundle_mod
from falcoir.core.bundle import (
    UNSEALED_MARKER,
    ArtifactMeta,
    BundleWriter,
    safe_extract,
    seal_unsealed,
    verify,
)
from falcoir.core.incident import Incident, IncidentStore
from falcoir.core.target import LocateMethod, Target

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def incident(tmp_path: Path) -> Incident:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("prod", "web-1", "uid-1", alert_raw="alert")
    inc.action_log("alice").append("patch", "Pod", "prod", "web-1", "ok", "labelled")
    return inc


def _writer(tmp_path: Path, incident: Incident, *, empty: bool = False) -> BundleWriter:
    return BundleWriter.create(
        tmp_path / "out",
        incident,
        alert_raw=None if empty else "08:30:00 Critical miner\r\nsecond line",
        target=None if empty else Target("prod", "web-1", "app", LocateMethod.POD_FLAG),
        context="lab",
        operator="alice",
    )


def _fill(w: BundleWriter) -> None:
    w.add_bytes("processes/ps.txt", b"PID CMD\n1 /tmp/xmrig\n", ArtifactMeta(stderr=b"warn\n"))
    w.add_bytes("files/ls-tmp.txt", b"", ArtifactMeta(exit_code=0))
    with w.open_stream("binary/exe.bin", max_bytes=10) as s:
        s.write(b"\x7fELF" + b"x" * 100)  # cut at 10 bytes: the hash is of what was kept
        s.commit(ArtifactMeta(argv=("cat", "/proc/7/exe")))


def test_a_new_bundle_is_an_empty_valid_bag_marked_unsealed(
    tmp_path: Path, incident: Incident
) -> None:
    w = _writer(tmp_path, incident, empty=True)
    bag = bagit.Bag(str(w.dir))
    assert bag.is_valid()
    assert bag.info["Payload-Oxum"] == "0.0"
    assert bag.info["Falcoir-Complete"] == "false"
    assert bag.info["Falcoir-Incident"] == incident.id
    assert (w.dir / UNSEALED_MARKER).is_file()
    report = verify(w.dir)
    assert not report.ok and not report.sealed
    assert stat.S_IMODE(w.dir.stat().st_mode) == 0o700


def test_tag_files_are_byte_for_byte_what_bagit_writes(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    _fill(w)
    res = w.finalize(True)
    assert bagit.Bag(str(res.dir)).is_valid() and verify(res.dir).ok
    # bagit re-hashing every file of a copy writes exactly the same tag files
    copy = tmp_path / "copy"
    shutil.copytree(res.dir, copy)
    bag = bagit.Bag(str(copy))
    bag.save(manifests=True)
    for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt"):
        assert (copy / name).read_bytes() == (res.dir / name).read_bytes(), name
    # (bagit lists the tag files in directory order)
    tags = [
        sorted((d / "tagmanifest-sha256.txt").read_text().splitlines()) for d in (copy, res.dir)
    ]
    assert tags[0] == tags[1] and len(tags[0]) == 3
    manifest = (res.dir / "manifest-sha256.txt").read_text()
    kept = hashlib.sha256(b"\x7fELF" + b"x" * 6).hexdigest()
    assert f"{kept}  data/binary/exe.bin\n" in manifest
    # every file of data/ is listed: payload, stderr, sidecars, index, action log
    listed = {line.split("  ", 1)[1] for line in manifest.splitlines()}
    on_disk = {p.relative_to(res.dir).as_posix() for p in res.dir.rglob("*") if p.is_file()}
    assert listed == {p for p in on_disk if p.startswith("data/")}
    assert "data/processes/ps.txt.stderr" in listed and "data/actions.jsonl" in listed
    # a CR/LF in a value cannot start a new tag line
    assert bagit.Bag(str(res.dir)).info["Falcoir-Alert"].startswith("08:30:00 Critical miner")


def test_a_file_changed_after_capture_fails_verification(
    tmp_path: Path, incident: Incident
) -> None:
    w = _writer(tmp_path, incident)
    _fill(w)
    ps = w.data / "processes" / "ps.txt"
    ps.chmod(0o644)
    ps.write_bytes(b"PID CMD\n1 /tmp/xmriG\n")  # same size, other bytes
    res = w.finalize(True)
    report = verify(res.dir)
    assert not report.ok
    assert [(p.path, p.kind) for p in report.problems] == [
        ("data/processes/ps.txt", "checksum-mismatch")
    ]
    assert not bagit.Bag(str(res.dir)).is_valid()
    # the manifest says what was captured
    captured = hashlib.sha256(b"PID CMD\n1 /tmp/xmrig\n").hexdigest()
    assert report.problems[0].expected == captured


def test_archive_is_hashed_as_written_fast_and_private(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    _fill(w)
    res = w.finalize(True)
    data = res.archive.read_bytes()
    assert hashlib.sha256(data).hexdigest() == res.archive_sha256
    sidecar = res.archive.with_name(res.archive.name + ".sha256").read_text()
    assert sidecar == f"{res.archive_sha256}  {res.archive.name}\n"
    assert data[:2] == b"\x1f\x8b" and data[8] == 4  # gzip XFL 4: the fastest level
    assert stat.S_IMODE(res.archive.stat().st_mode) == 0o600
    assert not res.archive.with_name(res.archive.name + ".part").exists()
    assert verify(res.archive).ok
    out = tmp_path / "x"
    out.mkdir()
    top = safe_extract(res.archive, out)
    assert bagit.Bag(str(out / top)).is_valid()


def test_many_writers_at_once_seal_a_valid_bag(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)

    def one(i: int) -> None:
        if i % 2:
            w.add_bytes(f"n/{i}.txt", os.urandom(i * 97), ArtifactMeta(stderr=b"e" * (i % 3)))
        else:
            with w.open_stream(f"s/{i}.bin") as s:
                for _ in range(5):
                    s.write(os.urandom(4096))
                s.commit(ArtifactMeta())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = w.finalize(True)
    assert bagit.Bag(str(res.dir)).is_valid() and verify(res.archive).ok


def test_writing_a_bundle_does_not_import_bagit(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from falcoir.core.bundle import ArtifactMeta, BundleWriter
        from falcoir.core.incident import IncidentStore
        tmp = Path(sys.argv[1])
        inc = IncidentStore(tmp / "home").open("prod", "web-1", "uid-1")
        w = BundleWriter.create(tmp / "out", inc, alert_raw="a", target=None,
                                context="lab", operator="me")
        w.add_bytes("x.txt", b"x", ArtifactMeta())
        w.finalize(True)
        print("bagit" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    (sealed,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert bagit.Bag(str(sealed)).is_valid()


def test_a_reopened_bag_with_other_manifests_reseals_valid(
    tmp_path: Path, incident: Incident
) -> None:
    bag_dir = tmp_path / "foreign"
    (bag_dir / "sub").mkdir(parents=True)
    (bag_dir / "sub" / "a.txt").write_text("a")
    bagit.make_bag(str(bag_dir), {"Falcoir-Incident": incident.id}, checksums=["md5", "sha256"])
    w = BundleWriter.reopen(bag_dir)
    w.add_bytes("report.md", b"# report\n", ArtifactMeta(source="falcoir"))
    w.finalize(False)
    bag = bagit.Bag(str(bag_dir))
    assert bag.is_valid()
    assert "data/report.md" in (bag_dir / "manifest-md5.txt").read_text()
    assert verify(bag_dir).ok


def test_reopen_reseals_from_disk_and_new_hashes(tmp_path: Path, incident: Incident) -> None:
    w = _writer(tmp_path, incident)
    _fill(w)
    first = w.finalize(True)
    again = BundleWriter.reopen(first.dir, actions_path=incident.actions_path)
    again.add_bytes("report.md", b"# report\n", ArtifactMeta(source="falcoir"))
    res = again.finalize(True)
    assert bagit.Bag(str(res.dir)).is_valid() and verify(res.archive).ok
    assert "data/report.md" in (res.dir / "manifest-sha256.txt").read_text()


def test_a_writer_that_dies_while_sealing_leaves_it_unsealed(
    tmp_path: Path, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _writer(tmp_path, incident)
    _fill(w)
    real = bundle_mod._write_tags

    def dies_half_way(directory: Path, *args: object, **kw: object) -> None:
        (directory / "manifest-sha256.txt").write_text("deadbeef  data/x\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "_write_tags", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        w.finalize(True)
    monkeypatch.setattr(bundle_mod, "_write_tags", real)
    # the marker is removed only once the tag files are written
    assert (w.dir / UNSEALED_MARKER).is_file()
    report = verify(w.dir)
    assert not report.ok and not report.sealed
    res = seal_unsealed(w.dir, force=True)  # the "dead" writer is this very process
    assert res.complete is False
    assert bagit.Bag(str(w.dir)).is_valid() and verify(res.archive).ok
