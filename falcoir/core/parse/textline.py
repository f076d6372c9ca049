"""Plain-text Falco alert lines: ``<time>: <Priority> <rule output>[ <appended fields>]``.

The alert is found by its anchor (a Falco time followed by a priority word) anywhere in
the line, so every wrapper in front of it (docker-compose, journald, rsyslog,
``kubectl logs --timestamps/--prefix``, stern, sidekick syslog, a stray ``^C``) is
simply text before the anchor; :func:`wrapper_of` names it when it can.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from falcoir.core.parse.pairs import Pair, split_comma, split_pairs

PRIORITY_WORDS = {
    "Emergency": "Emergency",
    "Alert": "Alert",
    "Critical": "Critical",
    "Error": "Error",
    "Warning": "Warning",
    "Notice": "Notice",
    "Informational": "Informational",
    "Info": "Informational",
    "Debug": "Debug",
}

ANCHOR = re.compile(
    r"(?P<time>\d{2}:\d{2}:\d{2}\.\d{1,9}"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,9}(?:[+-]\d{4}|Z)?)"
    r"(?::[ \t]+| - )"
    r"(?P<prio>Emergency|Alert|Critical|Error|Warning|Notice|Informational|Info|Debug)"
    r"(?: - |[ \t]+|$)"
)

# "(" that opens the field list: followed by a key=, or by "%container.info" (name (id=.
# As one regex, r"\((?=\s*(?:[A-Za-z_%][\w.\[\] -]{0,60}=|\S+ \(id=))", searched in
# quadratic time: each "(" of a long run without whitespace ("((((...") scanned the whole
# run for " (id=". :func:`_paren_open` finds the same "(" in linear time.
_PAREN_KEY = re.compile(r"\((?=\s*[A-Za-z_%][\w.\[\] -]{0,60}=)")
# A run of non-space followed by " (id=", starting where a run starts (so each run is
# scanned once), or a "(" and whitespace in front of that run ("gap").
_PAREN_INFO = re.compile(r"(?:(?P<gap>\()\s+|(?<!\S))\S+(?= \(id=)")
_APPENDED = re.compile(r"(?:\s*$|\s+[A-Za-z_%][\w.\[\]]*=|,\s*[A-Za-z_])")
_PIPE_FIELDS = re.compile(r"^\s*[A-Za-z_%][\w.\[\]]*=")
_INFO_LEAD = re.compile(r"^\s*(\S+ \(id=(?:[0-9a-f]{12}|[0-9a-f]{64}|host)\))\s*$")
_TRUNC_OK = re.compile(r"(?:<[A-Za-z]*>|->)$")

_WRAPPERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "kubectl-prefix",
        re.compile(r"^\[pod/(?P<pod>[^/\]\s]+)/(?P<container>[^\]\s]+)\]\s"),
    ),
    ("syslog", re.compile(r"^<(?P<pri>\d{1,3})>(?P<ts>\S+) (?P<host>\S+) (?P<tag>[\w.-]+)")),
    (
        "syslog",
        re.compile(
            r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
            r"(?P<tag>[\w.-]+)(?:\[\d+\])?: "
        ),
    ),
    (
        "syslog",
        re.compile(
            r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)) "
            r"(?P<host>\S+) (?P<tag>[\w.-]+)(?:\[\d+\])?: "
        ),
    ),
    ("kubectl-timestamps", re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) ")),
    ("docker-compose", re.compile(r"^(?P<service>[\w.-]+)\s+\| ")),
    ("stern", re.compile(r"^(?P<pod>[a-z0-9][a-z0-9.-]*) (?P<container>[a-z0-9][a-z0-9-]*) ")),
)


_WRAPPER_CACHE: dict[str, tuple[tuple[str, str], ...]] = {}
_WRAPPER_CACHE_MAX = 1024
_WRAPPER_CACHE_PREFIX_MAX = 512
"""Longer prefixes are not kept (1024 of up to a line's length each would be 1 GiB)."""


def wrapper_of(prefix: str) -> tuple[tuple[str, str], ...]:
    """Name the wrapper(s) in front of an alert (``kind`` joins them with ``+``)."""
    if not prefix:
        return ()
    # Many prefixes repeat exactly (docker-compose, stern, kubectl --prefix).
    found = _WRAPPER_CACHE.get(prefix)
    if found is None:
        found = _wrapper_of(prefix)
        if len(prefix) > _WRAPPER_CACHE_PREFIX_MAX:
            return found
        if len(_WRAPPER_CACHE) >= _WRAPPER_CACHE_MAX:
            _WRAPPER_CACHE.clear()
        _WRAPPER_CACHE[prefix] = found
    return found


def _wrapper_of(prefix: str) -> tuple[tuple[str, str], ...]:
    if not prefix.strip():
        return ()
    kinds: list[str] = []
    items: dict[str, str] = {}
    rest = prefix
    for _ in range(3):
        for kind, pattern in _WRAPPERS:
            m = pattern.match(rest)
            if m is not None:
                kinds.append(kind)
                for k, v in m.groupdict().items():
                    if v is not None:
                        items.setdefault(k, v)
                rest = rest[m.end() :]
                break
        else:
            break
        if not rest.strip():
            break  # no wrapper pattern matches blank text
    if not kinds:
        return ()
    return (("kind", "+".join(kinds)), *items.items())


class TextParts(NamedTuple):
    time: str
    priority: str
    message: str
    style: str
    fields: tuple[Pair, ...]
    appended: tuple[Pair, ...]
    output: str
    prefix: str
    truncated: bool


def split_body(
    body: str, *, allow_truncation: bool = True, with_pairs: bool = True
) -> tuple[str, str, list[Pair], list[Pair], bool]:
    """``(message, style, fields, appended, truncated)`` of the text after the priority.

    ``with_pairs=False`` finds only the message and style (JSON alerts whose
    ``output_fields`` already say everything): fields and appended come back empty.
    """
    body = body.rstrip("\r\n")
    truncated = False
    pipe = body.find(" | ")
    # A field list opened by "(" must start before the pipe to matter.
    end = pipe if pipe >= 0 else len(body)
    if body.find(" (id=", 0, end) < 0:  # the common case, inlined from _paren_open
        paren_m = _PAREN_KEY.search(body, 0, end)
        paren = paren_m.start() if paren_m is not None else -1
    else:
        paren = _paren_open(body, end)
    if pipe >= 0 and (paren < 0 or pipe < paren) and _PIPE_FIELDS.match(body[pipe + 3 :]):
        message = body[:pipe].rstrip()
        if not with_pairs:
            return message, "pipe", [], [], False
        rest = body[pipe + 3 :]
        rest, truncated = _cut_pager(rest) if allow_truncation else (rest, False)
        lead, fields = split_pairs(rest)
        if truncated and fields:
            fields.pop()
        return message, "pipe", fields, [], truncated
    if paren >= 0:
        message = body[:paren].rstrip()
        if not with_pairs:
            return message, "paren", [], [], False
        inner_start = paren + 1
        close = _closing_paren(body, inner_start)
        if close < 0:
            inner, truncated = (
                _cut_pager(body[inner_start:]) if allow_truncation else (body[inner_start:], False)
            )
            tail = ""
        else:
            inner = body[inner_start:close]
            tail = body[close + 1 :]
        lead, fields = split_pairs(inner)
        if lead.strip():
            info = _INFO_LEAD.match(lead)
            if info is not None:
                fields.insert(0, ("%container.info", info.group(1)))
        if truncated and fields:
            fields.pop()
        appended: list[Pair] = []
        if tail.strip():
            tail_s = tail.strip().lstrip(",").strip()
            comma = split_comma(tail_s)
            if comma is not None:
                appended = comma
            else:
                _lead, appended = split_pairs(tail_s)
        return message, "paren", fields, appended, truncated
    rest, truncated = _cut_pager(body) if allow_truncation else (body, False)
    lead, fields = split_pairs(rest)
    if fields:
        if truncated:
            fields.pop()
        return lead.rstrip(), "bare", fields, [], truncated
    return rest.strip(), "bare", [], [], truncated


def _paren_open(body: str, end: int) -> int:
    """The first "(" of ``body[:end]`` followed (looking no further than ``end``) by
    ``\\s*`` and either a ``key=`` or a run of non-space and " (id=" (the run's end is
    where the next whitespace is); -1 when there is none. Linear time."""
    m = _PAREN_KEY.search(body, 0, end)
    best = m.start() if m is not None else end
    if body.find(" (id=", 0, end) < 0:
        return best if best < end else -1
    pos = 0
    while pos < best:
        info = _PAREN_INFO.search(body, pos, end)
        if info is None or info.start() >= best:
            break
        start, run_end = info.span()
        if info.group("gap") is not None:
            best = start  # "(", whitespace, then the run
            break
        # A "(" inside the run, with at least one character of the run after it.
        inside = body.find("(", start, run_end - 1)
        if inside >= 0:
            best = min(best, inside)
            break
        # Later matches give later "(" (a gap "(" may end this run: look again there).
        pos = max(start + 1, run_end - 1)
    return best if best < end else -1


def _closing_paren(body: str, start: int) -> int:
    """The ``)`` that closes the field list: the last one after which only appended
    ``key=value`` text (or nothing) follows."""
    pos = len(body)
    while True:
        pos = body.rfind(")", start, pos)
        if pos < 0:
            return -1
        if _APPENDED.match(body, pos + 1):
            return pos


def _cut_pager(text: str) -> tuple[str, bool]:
    """A pager (``journalctl``, ``less -S``) cuts long lines and ends them with ``>``."""
    stripped = text.rstrip()
    if stripped.endswith(">") and not _TRUNC_OK.search(stripped):
        return stripped[:-1], True
    return text, False


def parse_text_line(line: str, anchor: re.Match[str] | None = None) -> TextParts | None:
    """The parts of the alert in ``line``, or ``None`` when it holds none.

    ``anchor``: ``ANCHOR.search(line)`` when the caller already ran it.
    """
    m = anchor if anchor is not None else ANCHOR.search(line)
    if m is None:
        return None
    body = line[m.end() :]
    message, style, fields, appended, truncated = split_body(body)
    return TextParts(
        time=m.group("time"),
        priority=PRIORITY_WORDS[m.group("prio")],
        message=message,
        style=style,
        fields=tuple(fields),
        appended=tuple(appended),
        output=line[m.start() :].rstrip("\r\n"),
        prefix=line[: m.start()],
        truncated=truncated,
    )
