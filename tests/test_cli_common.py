"""Shared CLI helpers: the confirmation prompt and the alert-or-pod target."""

from __future__ import annotations

import io
from typing import Any

import pytest
import typer

from falcoir.cli import common
from falcoir.errors import ConfirmationRefused


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirm_neutralises_the_question(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def fake_confirm(text: str, **_: Any) -> bool:
        asked.append(text)
        return True

    monkeypatch.setattr("sys.stdin", _Tty())
    monkeypatch.setattr(typer, "confirm", fake_confirm)
    common.confirm("Delete pod ns/web\x1b]0;owned\x07\u202e?", yes=False)
    assert asked == ["Delete pod ns/web\\x1b]0;owned\\x07\\u202e?"]


def test_confirm_refusal_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", _Tty())
    monkeypatch.setattr(typer, "confirm", lambda *_a, **_k: False)
    with pytest.raises(ConfirmationRefused):
        common.confirm("Delete pod ns/web?", yes=False)
