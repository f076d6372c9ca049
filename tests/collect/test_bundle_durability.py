"""A sealed bundle survives a power cut as sealed, or says it is not: every file is
fsynced before it is renamed into place and its directory after, in an order where a
crash cannot leave a bag that says "sealed" over files that are not on disk. Tested by
recording the order of ``os.fsync``/``os.replace``/``os.unlink``, not by crashing."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bagit
import pytest

from falcoir.core.bundle import (
    MANIFEST,
    TAGMANIFEST,
    UNSEALED_MARKER,
    ArtifactMeta,
    BundleWriter,
)
from falcoir.core.incident import Incident, IncidentStore
from falcoir.core.target import LocateMethod, Target

TAG_FILES = ("bagit.txt", "bag-info.txt", MANIFEST, TAGMANIFEST)


@dataclass
class Recorder:
    """The file-system calls that make a bundle durable, in the order they happened:
    an fsync is recorded once it has returned (it may run in another thread)."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, a: str, b: str = "") -> None:
        with self.lock:
            self.events.append((kind, a, b))

    def clear(self) -> None:
        with self.lock:
            self.events.clear()

    def index(self, kind: str, a: str, b: str = "", *, after: int = -1) -> int:
        """The first such event after position ``after``; -1 when there is none."""
        for i, ev in enumerate(self.events):
            if i > after and ev[0] == kind and ev[1] == a and (not b or ev[2] == b):
                return i
        return -1

    def fsynced(self, path: Path, *, after: int = -1, before: int | None = None) -> bool:
        end = len(self.events) if before is None else before
        return any(
            ev[0] == "fsync" and ev[1] == str(path) and after < i < end
            for i, ev in enumerate(self.events)
        )

    def of(self, kind: str) -> list[tuple[int, str, str]]:
        return [(i, a, b) for i, (k, a, b) in enumerate(self.events) if k == kind]


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    real_fsync, real_replace, real_rename, real_unlink = os.fsync, os.replace, os.rename, os.unlink

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        real_fsync(fd)
        r.add("fsync", path)

    def replace(src: object, dst: object, **kw: object) -> None:
        r.add("replace", os.fspath(src), os.fspath(dst))  # type: ignore[arg-type]
        real_replace(src, dst, **kw)  # type: ignore[arg-type]

    def rename(src: object, dst: object, **kw: object) -> None:
        r.add("replace", os.fspath(src), os.fspath(dst))  # type: ignore[arg-type]
        real_rename(src, dst, **kw)  # type: ignore[arg-type]

    def unlink(path: object, **kw: object) -> None:
        r.add("unlink", os.fspath(path))  # type: ignore[arg-type]
        real_unlink(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    return r


@pytest.fixture
def incident(tmp_path: Path) -> Incident:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("prod", "web-1", "uid-1", alert_raw="alert")
    inc.action_log("alice").append("patch", "Pod", "prod", "web-1", "ok", "labelled")
    return inc


def _writer(tmp_path: Path, incident: Incident) -> BundleWriter:
    return BundleWriter.create(
        tmp_path / "out",
        incident,
        alert_raw="08:30:00 Critical miner",
        target=Target("prod", "web-1", "app", LocateMethod.POD_FLAG),
        context="lab",
        operator="alice",
    )


def _fill(w: BundleWriter, n: int) -> int:
    """``n`` command outputs (some with stderr) in two directories, and a binary copy;
    returns how many artifacts were added."""
    for i in range(n):
        sub = "processes" if i % 2 else "network"
        w.add_bytes(f"{sub}/out-{i}.txt", b"x" * (i + 1), ArtifactMeta(stderr=b"e" * (i % 3)))
    with w.open_stream("binary/exe.bin") as s:
        s.write(b"\x7fELF" + os.urandom(4096))
        s.commit(ArtifactMeta(argv=("cat", "/proc/7/exe")))
    return n + 1


def _is_sidecar(path: str) -> bool:
    return path.endswith(".meta.json.tmp")


def assert_sealed_durably(rec: Recorder, bundle: Path) -> None:
    """What ``finalize`` must have done, in this order."""
    out = bundle.parent
    replaced = rec.of("replace")
    # 1. every file renamed into place was fsynced before, and its directory after
    #    (sidecars excepted: their content is sealed in index.json, see below)
    for i, src, dst in replaced:
        if _is_sidecar(src):
            continue
        assert rec.fsynced(Path(src), before=i), f"{src} renamed before it was fsynced"
        assert rec.fsynced(Path(dst).parent, after=i), f"{Path(dst).parent} not fsynced after"
    dsts = {dst for _, _, dst in replaced}
    for name in TAG_FILES:
        assert str(bundle / name) in dsts, f"{name} not written atomically"
    archive = out / (bundle.name + ".tar.gz")
    assert {str(archive), str(archive) + ".sha256"} <= dsts
    # 2. before the first tag file says "sealed": the index, the action log, every
    #    directory of the bag (the payload's names), and the bundle directory (the
    #    unsealed marker's name) are on disk
    first_tag = min(i for i, _, dst in replaced if Path(dst).name in TAG_FILES)
    for f in (bundle / "data" / "index.json", bundle / "data" / "actions.jsonl"):
        assert rec.fsynced(f, before=first_tag), f"{f.name} not on disk before the seal"
    for d in [bundle / "data", *(p for p in (bundle / "data").rglob("*") if p.is_dir())]:
        assert rec.fsynced(d, before=first_tag), f"{d} not fsynced before the seal"
    assert rec.fsynced(bundle, before=first_tag)
    # 3. the tag manifest is the last tag file renamed in; the marker is removed only
    #    once the directory was fsynced after it, and that removal is on disk before
    #    the archive appears
    tag_renames = [(i, Path(dst).name) for i, _, dst in replaced if Path(dst).name in TAG_FILES]
    assert tag_renames[-1][1] == TAGMANIFEST
    last_tag = tag_renames[-1][0]
    marker = rec.index("unlink", str(bundle / UNSEALED_MARKER))
    assert marker > last_tag
    assert rec.fsynced(bundle, after=last_tag, before=marker)
    archive_at = rec.index("replace", str(archive) + ".part", str(archive))
    assert archive_at > marker
    assert rec.fsynced(bundle, after=marker, before=archive_at)
    # 4. the archive directory (and so the bundle directory's own name) last
    sha_at = rec.index("replace", str(archive) + ".sha256.falcoir-tmp", str(archive) + ".sha256")
    assert rec.fsynced(out, after=max(archive_at, sha_at))
    # 5. nothing left half-way
    assert not list(bundle.glob("*.falcoir-tmp")) and not list(out.glob("*.falcoir-tmp"))
    assert not (bundle / UNSEALED_MARKER).exists()


def test_finalize_fsyncs_each_file_before_its_rename_and_the_directory_after(
    tmp_path: Path, incident: Incident, rec: Recorder
) -> None:
    w = _writer(tmp_path / "new" / "dirs", incident)  # --out DIR made by falcoir
    _fill(w, 6)
    rec.clear()
    res = w.finalize(True)
    assert_sealed_durably(rec, res.dir)
    assert bagit.Bag(str(res.dir)).is_valid()
    # the output directories falcoir made: their names are on disk too
    for made in (tmp_path, tmp_path / "new", tmp_path / "new" / "dirs"):
        assert rec.fsynced(made), made


def test_a_reseal_is_as_durable_and_marks_the_bundle_unsealed_durably_first(
    tmp_path: Path, incident: Incident, rec: Recorder
) -> None:
    first = _writer(tmp_path, incident)
    _fill(first, 3)
    first.finalize(True)
    rec.clear()
    w = BundleWriter.reopen(first.dir, actions_path=incident.actions_path)
    # its bag-info says "sealed": the marker saying otherwise is on disk before any
    # file of the bag changes
    marker = str(w.dir / UNSEALED_MARKER)
    at = rec.index("replace", marker + ".tmp", marker)
    assert at >= 0 and rec.fsynced(Path(marker + ".tmp"), before=at)
    assert rec.fsynced(w.dir, after=at)
    w.add_bytes("report.md", b"# report\n", ArtifactMeta(source="falcoir"))
    rec.clear()
    res = w.finalize(True)
    assert_sealed_durably(rec, res.dir)
    assert bagit.Bag(str(res.dir)).is_valid()


def test_durability_costs_no_fsync_per_artifact(
    tmp_path: Path, incident: Incident, rec: Recorder
) -> None:
    """One fsync per artifact while collecting (its data, as before), and a sealing cost
    that does not grow with the number of artifacts."""
    file_fsyncs = []
    for n in (2, 24):
        w = _writer(tmp_path / str(n), incident)
        rec.clear()
        added = _fill(w, n)
        assert len(rec.of("fsync")) == added
        rec.clear()
        w.finalize(True)
        files = [p for _, p, _ in rec.of("fsync") if not Path(p).is_dir()]
        file_fsyncs.append(len(files))
        # the four tag files, the index, the action log, the archive and its .sha256
        assert len(files) == 8, files
    assert file_fsyncs[0] == file_fsyncs[1]
