"""A damaged incident record is a falcoir error naming the file, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from falcoir.core.incident import IncidentStore
from falcoir.errors import FalcoirError, exit_code_for


def test_damaged_record_is_a_falcoir_error_naming_the_file(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    good = store.open("ns", "web", "uid-1")
    bad = store.root / "inc-20240101-000000-abcdef" / "incident.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"id": "inc-20240101-000000-abcdef", "created"')
    with pytest.raises(FalcoirError, match="unreadable") as exc:
        store.for_pod("ns", "web", "uid-1")
    assert str(bad) in exc.value.message
    assert int(exit_code_for(exc.value)) == 1
    bad.write_text("[]")
    with pytest.raises(FalcoirError, match="unreadable"):
        store.all()
    bad.unlink()
    assert store.for_pod("ns", "web", "uid-1") == good
