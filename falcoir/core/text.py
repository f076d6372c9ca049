"""Making hostile text safe to show.

Everything read from an alert or a suspect pod is attacker-controlled: process names,
file names, command output. Before it reaches a terminal it goes through
:func:`neutralize`, which turns every control character (C0, DEL, C1, and the Unicode
bidirectional overrides that reorder what a reader sees) into a visible escape such as
``\\x1b``. Rich markup is escaped separately by the renderers (``falcoir.render``).
Raw bytes are kept as they were in the evidence bundle; only what is shown changes.
"""

from __future__ import annotations

import re

# C0 controls except TAB and LF are escaped; callers that show one line pass
# ``keep_newlines=False`` to escape LF and TAB too.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_ONELINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def neutralize(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every terminal control character made visible and inert."""
    pattern = _UNSAFE_MULTILINE if keep_newlines else _UNSAFE_ONELINE
    return pattern.sub(_escape, text)


def decode_hostile(data: bytes) -> str:
    """Bytes from a pod as text for display: invalid UTF-8 becomes ``\\xNN`` escapes."""
    return data.decode("utf-8", errors="backslashreplace")


def shorten(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters with an ellipsis."""
    if width <= 1 or len(text) <= width:
        return text
    return text[: width - 1] + "…"
