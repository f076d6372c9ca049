"""The shared stderr console: hostile text passed through ``safe()`` stays text."""

from __future__ import annotations

import pytest

from falcoir.render.console import safe, stderr_console


def test_emoji_shortcodes_are_not_turned_into_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.table import Table

    console = stderr_console()
    console.print(f"status {safe(':white_check_mark: verified')}")
    table = Table()
    table.add_column("value")
    table.add_row(safe(":skull: :lock: contained"))
    console.print(table)
    err = capsys.readouterr().err
    assert "\u2705" not in err and "\U0001f480" not in err and "\U0001f512" not in err
    assert ":white_check_mark: verified" in err
    assert ":skull: :lock: contained" in err
