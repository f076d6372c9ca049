"""Extracting a bundle archive is bounded: by a cap, by the free disk, by a compression
ratio (a gzip bomb), and ``bundle show`` extracts it once (finding 15)."""

from __future__ import annotations

import tarfile
from collections import namedtuple
from pathlib import Path

import pytest

from falcoir.core import bundle as bundle_mod
from falcoir.core.bundle import BundleError
from tests.collect.test_bundle_hostile import make_bag


def archive_of(tmp_path: Path, files: dict[str, bytes]) -> Path:
    bag = make_bag(tmp_path, dict(files))
    out = tmp_path / "b.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(bag, arcname="inc-bundle")
    return out


def test_a_gzip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_mod, "_ARCHIVE_SMALL", 1024 * 1024)
    archive = archive_of(tmp_path, {"zeros": bytes(8 * 1024 * 1024)})
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BundleError, match="times its size"):
        bundle_mod.safe_extract(archive, dest)
    report = bundle_mod.verify(archive)
    assert not report.ok and any(p.kind == "archive" for p in report.problems)


def test_never_past_the_free_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = archive_of(tmp_path, {"data.bin": bytes(range(256)) * 4096})  # 1 MiB
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        bundle_mod.shutil, "disk_usage", lambda _p: usage(1 << 40, 1 << 40, 256 * 1024**2 + 4096)
    )
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BundleError, match="free disk"):
        bundle_mod.safe_extract(archive, dest)


def test_the_default_cap_is_a_few_gib() -> None:
    assert bundle_mod._ARCHIVE_MAX_BYTES <= 8 * 1024**3


def test_show_extracts_the_archive_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = archive_of(tmp_path, {"x": b"x" * 1000})
    calls: list[Path] = []
    real = bundle_mod.safe_extract

    def counting(path: Path, dest: Path, **kw: int) -> str:
        calls.append(path)
        return real(path, dest, **kw)

    monkeypatch.setattr(bundle_mod, "safe_extract", counting)
    summary = bundle_mod.summarize(archive)
    assert calls == [archive]
    assert summary.verify.archive_sha256 is not None
