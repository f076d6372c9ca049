"""`falcoir bundle show` and the incident report respond adds to a bundle: mentioned in
the summary, printed with --report, opened with --open, from a directory or an archive
(read member by member, never extracted blindly)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from falcoir.cli.app import app
from falcoir.core.bundle import (
    ArtifactMeta,
    BundleError,
    BundleWriter,
    find_reports,
    read_report,
    summarize,
)
from falcoir.core.incident import IncidentStore
from falcoir.core.target import LocateMethod, Target

runner = CliRunner()
REPORT_MD = "# Incident report\n\nminer \x1b[31mxmrig\x1b[0m contained\n"
REPORT_HTML = "<!doctype html><title>Incident report</title><p>xmrig contained</p>\n"


def _bundle(tmp_path: Path, *, report: bool = True) -> tuple[Path, Path]:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("prod", "web-1", "uid-1", alert_raw="alert")
    writer = BundleWriter.create(
        tmp_path / "out",
        inc,
        alert_raw="alert",
        target=Target("prod", "web-1", "app", LocateMethod.POD_FLAG),
        context="lab",
        operator="alice",
    )
    writer.add_bytes("processes/ps.txt", b"PID CMD\n42 /tmp/xmrig\n", ArtifactMeta())
    sealed = writer.finalize(True)
    if report:
        # what respond's report step does: reopen, add the report, seal again
        again = BundleWriter.reopen(sealed.dir)
        for name, text in (("report.md", REPORT_MD), ("report.html", REPORT_HTML)):
            again.add_bytes(name, text.encode(), ArtifactMeta(source="falcoir"))
        sealed = again.finalize(True)
    return sealed.dir, sealed.archive


def test_show_mentions_the_report_of_a_directory_and_an_archive(tmp_path: Path) -> None:
    directory, archive = _bundle(tmp_path)
    for path in (directory, archive):
        s = runner.invoke(app, ["bundle", "show", str(path)])
        assert s.exit_code == 0, s.stderr
        assert "incident report" in s.stderr and "data/report.md" in s.stderr
        assert "data/report.html" in s.stderr and "--report" in s.stderr
        j = runner.invoke(app, ["bundle", "show", str(path), "-o", "json"])
        assert json.loads(j.stdout)["report"] == {
            "markdown": "data/report.md",
            "html": "data/report.html",
        }


def test_show_without_a_report_says_nothing_of_it_and_report_fails(tmp_path: Path) -> None:
    directory, archive = _bundle(tmp_path, report=False)
    s = runner.invoke(app, ["bundle", "show", str(directory)])
    assert s.exit_code == 0 and "incident report" not in s.stderr
    assert summarize(directory).to_dict()["report"] == {"markdown": None, "html": None}
    for path in (directory, archive):
        r = runner.invoke(app, ["bundle", "show", str(path), "--report"])
        assert r.exit_code == 1 and r.stdout == ""
        assert "no incident report" in r.stderr


def test_report_prints_the_markdown_neutralised_from_dir_and_archive(tmp_path: Path) -> None:
    directory, archive = _bundle(tmp_path)
    for path in (directory, archive):
        r = runner.invoke(app, ["bundle", "show", str(path), "--report"])
        assert r.exit_code == 0, r.stderr
        assert r.stdout.startswith("# Incident report\n\nminer ")
        assert "\x1b" not in r.stdout and "\\x1b[31mxmrig" in r.stdout
        assert read_report(path, "markdown") == REPORT_MD.encode()
        assert read_report(path, "html") == REPORT_HTML.encode()
    assert (
        runner.invoke(app, ["bundle", "show", str(archive), "--report", "-o", "json"]).exit_code
        == 2
    )


def test_the_newest_report_wins() -> None:
    names = ["data/report.md", "data/report-3.md", "data/report-2.md", "data/report.html"]
    names += ["data/x/report.md", "data/report.md.meta.json", "report.md"]
    assert find_reports(names) == {"markdown": "data/report-3.md", "html": "data/report.html"}


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_hostile_archives_are_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    link = tarfile.TarInfo("b/data/report.md")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    cases = {
        "climb": [_file("b/bagit.txt", b"x"), _file("b/../../escaped.md", b"evil")],
        "absolute": [_file("/tmp/falcoir-evil-report.md", b"evil")],
        "link": [_file("b/bagit.txt", b"x"), (link, None)],
        "two-tops": [_file("b/bagit.txt", b"x"), _file("c/data/report.md", b"evil")],
    }
    for name, members in cases.items():
        archive = _tar(tmp_path / f"{name}.tar.gz", members)
        with pytest.raises(BundleError):
            read_report(archive, "markdown")
        r = runner.invoke(app, ["bundle", "show", str(archive), "--report"])
        assert r.exit_code == 1 and r.stdout == "", name
    assert not (tmp_path.parent / "escaped.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.tar.gz" for n in cases)
    big = _tar(tmp_path / "big.tar.gz", [_file("b/data/report.md", b"x" * 2048)])
    with pytest.raises(BundleError, match="larger"):
        read_report(big, "markdown", max_bytes=1024)


def test_a_linked_report_in_a_directory_is_refused(tmp_path: Path) -> None:
    directory, _ = _bundle(tmp_path, report=False)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (directory / "data" / "report.md").symlink_to(secret)
    r = runner.invoke(app, ["bundle", "show", str(directory), "--report"])
    assert r.exit_code == 1 and "secret" not in r.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands for xdg-open")
def test_open_runs_the_platform_opener_on_the_html(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, archive = _bundle(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "opened.txt"
    opener = bin_dir / "xdg-open"
    opener.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{seen}"\n')
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(sys, "platform", "linux")
    for path in (directory, archive):
        r = runner.invoke(app, ["bundle", "show", str(path), "--open"])
        assert r.exit_code == 0, r.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        not seen.exists() or len(seen.read_text().splitlines()) < 2
    ):
        time.sleep(0.05)
    opened = [Path(p) for p in seen.read_text().splitlines()]
    assert opened[0] == (directory / "data" / "report.html").resolve()
    # from the archive: a private copy, not an extraction of the archive
    assert opened[1].name == "report.html" and opened[1].read_text() == REPORT_HTML
    assert stat.S_IMODE(opened[1].stat().st_mode) == 0o600
    assert sorted(p.name for p in opened[1].parent.iterdir()) == ["report.html"]


def test_open_without_an_opener_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _ = _bundle(tmp_path)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    r = runner.invoke(app, ["bundle", "show", str(directory), "--open"])
    assert r.exit_code == 1
    assert "report.html" in r.stderr
