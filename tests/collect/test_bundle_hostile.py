"""Crafted bundles: ``bundle show`` and ``bundle verify`` read files an attacker may have
edited (and re-bagged), so nothing in them may reach the terminal raw or crash falcoir."""

from __future__ import annotations

import io
import json
from pathlib import Path

import bagit
import pytest
from rich.console import Console

from falcoir.core.bundle import Artifact, summarize
from falcoir.render import bundle as view
from falcoir.render import console as console_mod


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buf = io.StringIO()
    con = Console(file=buf, width=200, force_terminal=True, color_system=None)
    monkeypatch.setattr(view, "stderr_console", lambda: con)
    monkeypatch.setattr(console_mod, "stderr_console", lambda: con)
    return buf


def make_bag(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    """A bag whose payload holds ``files`` (names relative to ``data/``)."""
    bag = tmp_path / "bag"
    bag.mkdir()
    for name, content in files.items():
        target = bag / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    bagit.make_bag(str(bag), {"Falcoir-Incident": "i"}, checksums=["sha256"])
    return bag


def index(*artifacts: dict[str, object]) -> str:
    return json.dumps({"artifacts": list(artifacts)})


def test_forged_exit_code_never_reaches_the_terminal(tmp_path: Path, captured: io.StringIO) -> None:
    evil = "\x1b]0;PWNED\x07\x1b[2J[blink red]OWNED"
    art = {"name": "x", "path": "data/x", "bytes": 1, "exit_code": evil, "argv": ["ls"]}
    bag = make_bag(tmp_path, {"index.json": index(art), "x": "x"})
    summary = summarize(bag)
    assert summary.artifacts[0].exit_code is None
    view.print_show(summary)
    out = captured.getvalue()
    assert "\x1b" not in out and "\x07" not in out
    assert "OWNED" not in out


@pytest.mark.parametrize(
    ("doc", "exit_code", "size"),
    [
        ({"exit_code": 3, "bytes": 5}, 3, 5),
        ({"exit_code": -9, "bytes": 0}, -9, 0),
        ({"exit_code": "3", "bytes": "5"}, None, 0),
        ({"exit_code": True, "bytes": -1}, None, 0),
        ({"exit_code": 1.5, "bytes": 10**400}, None, 0),
        ({"exit_code": [1], "bytes": 1e300}, None, 0),
    ],
)
def test_artifact_from_dict_accepts_only_integers(
    doc: dict[str, object], exit_code: int | None, size: int
) -> None:
    art = Artifact.from_dict({"name": "x", "path": "data/x", **doc})
    assert art.exit_code == exit_code
    assert art.bytes == size


def _set_encoding(bag: Path, encoding: str) -> None:
    (bag / "bagit.txt").write_text(
        f"BagIt-Version: 1.0\nTag-File-Character-Encoding: {encoding}\n", encoding="ascii"
    )


def _garble_info(bag: Path) -> None:
    info = bag / "bag-info.txt"
    info.write_bytes(info.read_bytes() + b"Falcoir-Alert: \xff\xfe\n")


CRAFTED = {
    "bag-info-not-utf8": ({"x": "x"}, _garble_info),
    "encoding-utf-32": ({"x": "x"}, lambda b: _set_encoding(b, "utf-32")),
    "encoding-rot13": ({"x": "x"}, lambda b: _set_encoding(b, "rot13")),
    "encoding-unknown": ({"x": "x"}, lambda b: _set_encoding(b, "no-such-codec")),
    "index-a-list": ({"index.json": "[1, 2]"}, None),
    "index-artifacts-not-dicts": ({"index.json": '{"artifacts": [1, "x", null]}'}, None),
    "index-deeply-nested": ({"index.json": "[" * 100_000 + "]" * 100_000}, None),
    "sidecar-a-list": ({"x": "x", "x.meta.json": "[1, 2]"}, None),
    "actions-not-objects": ({"actions.jsonl": '[1, 2]\n"x"\n' + "[" * 100_000 + "\n"}, None),
    "bytes-huge": ({"index.json": index({"name": "x", "path": "data/x", "bytes": 10**400})}, None),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_bundle_is_reported_not_a_traceback(
    case: str, tmp_path: Path, captured: io.StringIO
) -> None:
    from falcoir.core.bundle import verify
    from falcoir.render.output import to_json

    files, damage = CRAFTED[case]
    bag = make_bag(tmp_path, dict(files))
    if damage is not None:
        damage(bag)
    report = verify(bag)
    summary = summarize(bag)
    view.print_verify(report)
    view.print_show(summary)
    assert all(isinstance(a, dict) for a in summary.actions)
    json.loads(to_json(report.to_dict()))
    json.loads(to_json(summary.to_dict()))
    if damage is not None:
        assert not report.ok
        assert any(p.kind == "structure" for p in report.problems), report.problems


def test_crafted_bundle_through_the_cli_prints_a_json_document(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    bag = make_bag(tmp_path, {"x": "x"})
    _set_encoding(bag, "rot13")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for command in ("verify", "show"):
        proc = subprocess.run(
            [sys.executable, "-m", "falcoir", "bundle", command, str(bag), "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        doc = json.loads(proc.stdout)
        problems = doc["problems"]
        assert any(p["kind"] == "structure" for p in problems)
