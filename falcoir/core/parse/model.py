"""What the parser hands back besides alerts."""

from __future__ import annotations

from dataclasses import dataclass

from falcoir.core.alert import Alert


@dataclass(frozen=True)
class ParseProblem:
    """A line (or a multi-line document starting at ``line``) that could not be read."""

    line: int
    reason: str
    text: str
    end_line: int | None = None
    """Last line of the document when it spanned several lines."""

    def to_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "end_line": self.end_line if self.end_line is not None else self.line,
            "reason": self.reason,
            "text": self.text,
        }


@dataclass(frozen=True)
class Skipped:
    """A line that is not an alert and needs no attention: blank, or Falco's own log."""

    line: int
    text: str


@dataclass(frozen=True)
class ParseReport:
    alerts: tuple[Alert, ...]
    skipped: int
    """Falco's own log lines and blank lines that were skipped."""
    problems: tuple[ParseProblem, ...]
