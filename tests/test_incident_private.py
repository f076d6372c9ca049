"""The incident store holds the raw alert and what was done: readable by its owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoir.core.incident import IncidentStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_incident_files_are_private(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("default", "web-1", "uid-1", alert_raw="token=s3cret")
    inc.action_log("alice").append("create", "NetworkPolicy", "default", "q", "ok")
    store.set_policy(inc, "q")
    assert mode(store.root) == 0o700
    assert mode(inc.dir) == 0o700
    assert mode(inc.dir / "incident.json") == 0o600
    assert mode(inc.actions_path) == 0o600


@pytest.mark.usefixtures("open_umask")
def test_files_of_an_older_version_are_tightened(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("default", "web-1", "uid-1", alert_raw="x")
    inc.action_log().append("patch", "Pod", "default", "web-1", "ok")
    os.chmod(inc.dir, 0o755)
    os.chmod(inc.dir / "incident.json", 0o644)
    os.chmod(inc.actions_path, 0o644)
    store.set_policy(inc, "q")
    inc.action_log().append("patch", "Pod", "default", "web-1", "ok")
    assert mode(inc.dir) == 0o700
    assert mode(inc.dir / "incident.json") == 0o600
    assert mode(inc.actions_path) == 0o600
    assert len(inc.action_log().records()) == 2
    got = store.get(inc.id)
    assert got is not None and got.policy == "q"
