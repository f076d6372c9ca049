"""Shared CLI helpers: the confirmation prompt and the alert-or-pod target."""

from __future__ import annotations

import io
from typing import Any

import pytest
import typer

from falcoir.cli import common
from falcoir.errors import ConfirmationRefused, InputError


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


def test_alert_or_pod_needs_a_target() -> None:
    with pytest.raises(InputError, match="no target given") as exc:
        common.alert_or_pod(None, None, None)
    assert "--pod" in (exc.value.hint or "")


@pytest.mark.parametrize("bad", ["a/b/c", "/x", "ns/", "Bad_NS/web", "ns/web\x1b[2J"])
def test_pod_ref_refuses_what_kubernetes_would(bad: str) -> None:
    with pytest.raises(InputError):
        common.parse_pod_ref(bad)


def test_pod_ref_alone_and_with_alert() -> None:
    alert, ref = common.alert_or_pod(None, None, "web")
    assert alert is None and ref is not None
    assert (ref.namespace, ref.name) == ("default", "web")
    line = "12:00:00.000000000: Warning Shell spawned (k8s.ns=prod k8s.pod=api-1 container=abc)"
    alert, ref = common.alert_or_pod(line, None, "prod/api-1")
    assert alert is not None and ref is not None and str(ref) == "prod/api-1"
