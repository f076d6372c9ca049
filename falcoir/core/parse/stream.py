"""Reading a stream of lines: text alerts, JSON documents (one a line or pretty-printed
over several), Falco's own log lines, and whatever else a paste or a log holds.

:func:`iter_parse` yields each alert as soon as the line(s) holding it have arrived and
keeps only the current multi-line JSON document in memory (bounded). Every input line
ends up in exactly one yielded item: an alert, a problem, or a skipped line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from falcoir.core.alert import Alert
from falcoir.core.parse import accel
from falcoir.core.parse.build import (
    alert_from_json,
    alert_from_text,
    looks_like_alert,
    partial_output,
    text_alert,
)
from falcoir.core.parse.model import ParseProblem, ParseReport, Skipped
from falcoir.core.parse.textline import ANCHOR
from falcoir.core.readlimits import MAX_LINE_CHARS

if TYPE_CHECKING:
    from falcoir.core.parse.rules import RuleSet

MAX_DOC_LINES = 10_000
MAX_DOC_CHARS = 4 * 1024 * 1024
MAX_PROBLEM_TEXT = 500

# Falco's own log lines: asctime or second-precision ISO prefix, shutdown statistics,
# kubectl's chatter. Searched anywhere in the line (wrappers come first).
_FALCO_LOG = re.compile(
    r"(?:[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}: "
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}: )"
)
_FALCO_STATS = re.compile(
    r"^\s*(?:Events detected:|Rule counts by severity:|Triggered rules by rule name:"
    r"|Syscall event drop monitoring:|Defaulted container \"|- event drop detected:"
    r"|- num times actions taken:|Falco initialized|\* )"
    r"|^\s+(?:[A-Z]+|[^:]{1,200}): \d+$"
)
# A JSON string, or (group 1) the quote that opens one left unterminated together with
# the rest it would take: removing only the terminated ones (r'"(?:[^"\\]|\\.)*"' with
# re.sub) retried each escaped quote of a long unterminated string ('"\\"\\"\\"...') and
# took quadratic time; every quote inside that rest fails the same way, so it is taken
# whole and only its opening quote is left. Possessive runs: nothing to backtrack into
# (each character has one reading), and the run of plain characters is one fast loop.
_STRINGS = re.compile(r'"(?:[^"\\]++|\\.)*+"|(")(?:[^"\\]++|\\.)*+')
_JSON_CONT = re.compile(r'^(?:\s|[}\]"])')


class _NotFinite(ValueError):
    """NaN, Infinity or an overflowing float in an alert: not JSON, and not re-emittable."""


def _reject_constant(name: str) -> float:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf (NaN comes as a constant)
        raise _NotFinite(f"{text} is out of range")
    return value


# Floats are rare in alerts (the hook runs only for them); integers stay on the C path.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _trim(text: str) -> str:
    return text if len(text) <= MAX_PROBLEM_TEXT else text[:MAX_PROBLEM_TEXT] + "…"


def _json_state(fragment: str) -> tuple[int, bool]:
    """(brace/bracket depth change, ends inside a string) of one line of JSON."""
    without = _STRINGS.sub(r"\1", fragment)
    if '"' in without:
        return 0, True
    depth = without.count("{") + without.count("[") - without.count("}") - without.count("]")
    return depth, False


def _json_start(line: str, anchor_at: int) -> int:
    """Where a JSON document starts in ``line`` (after any wrapper), or -1."""
    pos = line.find("{")
    while pos >= 0:
        if 0 <= anchor_at < pos:
            return -1
        rest = line[pos + 1 : pos + 40].lstrip()
        if rest == "" or rest.startswith('"') or rest.startswith("}"):
            return pos
        pos = line.find("{", pos + 1)
    return -1


class _Parser:
    def __init__(self, rules: RuleSet | None) -> None:
        self.rules = rules
        self.buf: list[str] = []
        self.buf_chars = 0
        self.buf_start = 0
        self.buf_prefix = ""
        self.depth = 0

    # --- multi-line JSON -------------------------------------------------------------

    def _flush_doc(self, end: int) -> Iterator[Alert | ParseProblem]:
        text = "\n".join(self.buf)
        start, prefix = self.buf_start, self.buf_prefix
        self.buf = []
        self.buf_chars = 0
        self.depth = 0
        yield self._from_json_text(text, start, end, prefix)

    def _abandon_doc(self, end: int, reason: str) -> ParseProblem:
        text = "\n".join(self.buf)
        start = self.buf_start
        self.buf = []
        self.buf_chars = 0
        self.depth = 0
        return ParseProblem(line=start, reason=reason, text=_trim(text), end_line=end)

    def _from_json_text(
        self, text: str, start: int, end: int, prefix: str, doc: object = None
    ) -> Alert | ParseProblem:
        if doc is None:
            try:
                doc = _DECODER.decode(text)
            except (ValueError, RecursionError) as exc:
                partial = (
                    None if isinstance(exc, _NotFinite) else self._partial(text, start, end, prefix)
                )
                if partial is not None:
                    return partial
                return ParseProblem(
                    line=start, reason=f"invalid JSON: {exc}", text=_trim(text), end_line=end
                )
        if not isinstance(doc, dict):
            return ParseProblem(
                line=start,
                reason="JSON document is not a Falco alert (not an object)",
                text=_trim(text),
                end_line=end,
            )
        if not looks_like_alert(doc):
            return ParseProblem(
                line=start,
                reason="JSON document is not a Falco alert (no output/priority/rule)",
                text=_trim(text),
                end_line=end,
            )
        try:
            return alert_from_json(
                doc, text, lineno=start, end_line=end, prefix=prefix, rules=self.rules
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pragma: no cover
            return ParseProblem(
                line=start, reason=f"cannot read the alert: {exc}", text=_trim(text), end_line=end
            )

    def _partial(self, text: str, start: int, end: int, prefix: str) -> Alert | None:
        """A cut JSON line (journald truncates): the alert its ``output`` still shows."""
        out = partial_output(text)
        if out is None:
            return None
        alert = alert_from_text(out, lineno=start, rules=self.rules)
        if alert is None:
            return None
        from dataclasses import replace

        from falcoir.core.parse.textline import wrapper_of

        return replace(
            alert,
            raw=text,
            source_format="json",
            truncated=True,
            end_line=end,
            wrapper=wrapper_of(prefix),
        )

    # --- one line --------------------------------------------------------------------

    def feed(self, lineno: int, line: str) -> Iterator[Alert | ParseProblem | Skipped]:
        if len(line) > MAX_LINE_CHARS:
            if self.buf:
                yield self._abandon_doc(lineno - 1, "incomplete JSON document")
            yield ParseProblem(
                line=lineno,
                reason=f"line longer than {MAX_LINE_CHARS} characters",
                text=_trim(line),
            )
            return
        if self.buf:
            if _JSON_CONT.match(line) and not ANCHOR.match(line.lstrip()):
                delta, in_string = _json_state(line)
                if in_string:
                    self.buf.append(line)
                    yield self._abandon_doc(lineno, "invalid JSON: unterminated string")
                    return
                self.buf.append(line)
                self.buf_chars += len(line)
                self.depth += delta
                if self.depth <= 0:
                    yield from self._flush_doc(lineno)
                elif len(self.buf) > MAX_DOC_LINES or self.buf_chars > MAX_DOC_CHARS:
                    yield self._abandon_doc(lineno, "JSON document too large")
                return
            # Not JSON: the document was cut; report it and read this line afresh.
            yield self._abandon_doc(lineno - 1, "incomplete JSON document")

        if not line.strip():
            yield Skipped(line=lineno, text=line)
            return
        m = ANCHOR.search(line)
        anchor_at = m.start() if m is not None else -1
        jpos = _json_start(line, anchor_at)
        if jpos >= 0:
            fragment = line[jpos:]
            prefix = line[:jpos]
            try:
                doc = _DECODER.decode(fragment)
            except (ValueError, RecursionError):
                doc = None
            else:
                if isinstance(doc, dict):
                    yield self._from_json_text(fragment, lineno, lineno, prefix, doc)
                    return
            if doc is None:
                delta, in_string = _json_state(fragment)
                if not in_string and delta > 0 and not fragment.rstrip().endswith("}"):
                    self.buf = [fragment]
                    self.buf_chars = len(fragment)
                    self.buf_start = lineno
                    self.buf_prefix = prefix
                    self.depth = delta
                    return
            yield self._from_json_text(fragment, lineno, lineno, prefix)
            return
        if m is not None:
            alert = alert_from_text(line, lineno=lineno, rules=self.rules)
            if alert is not None:
                yield alert
                return
        if _FALCO_LOG.search(line) or _FALCO_STATS.search(line):
            yield Skipped(line=lineno, text=line)
            return
        yield ParseProblem(line=lineno, reason="not a Falco alert", text=_trim(line))

    def finish(self, last: int) -> Iterator[ParseProblem]:
        if self.buf:
            yield self._abandon_doc(last, "incomplete JSON document at end of input")


def iter_parse(
    lines: Iterable[str], *, rules: RuleSet | None = None
) -> Iterator[Alert | ParseProblem | Skipped]:
    """Parse a stream of lines lazily; yield each alert, problem or skipped line as soon
    as the line(s) holding it have arrived."""
    parser = _Parser(rules)
    # The C accelerator builds the same Alert for plain text lines, or declines one.
    fast = accel.TEXT_ALERT if rules is None else None
    feed = parser.feed
    search = ANCHOR.search
    decode = _DECODER.decode
    lineno = 0
    for raw in lines:
        lineno += 1
        if fast is not None and not parser.buf:
            # It strips the line end itself, and reads only lines of at most
            # _speedups.MAX_LINE characters (fewer than MAX_LINE_CHARS).
            alert = fast(raw, lineno)
            if alert is not None:
                yield alert
                continue
        line = raw.rstrip("\r\n") if raw.endswith(("\n", "\r")) else raw
        # The two common shapes go straight to their builder; everything else (and any
        # line while a multi-line JSON document is open) takes the general path, which
        # reaches the same result for these lines, only with more checks first.
        if not parser.buf and len(line) <= MAX_LINE_CHARS:
            if line[:2] == '{"':
                try:
                    doc = decode(line)
                except (ValueError, RecursionError):
                    doc = None
                if doc.__class__ is dict:
                    yield parser._from_json_text(line, lineno, lineno, "", doc)
                    continue
            elif "{" not in line:
                m = search(line)
                if m is not None:
                    if rules is None:
                        yield text_alert(line, m, lineno)
                        continue
                    alert = alert_from_text(line, lineno=lineno, rules=rules, anchor=m)
                    if alert is not None:  # always, with an anchor
                        yield alert
                        continue
        yield from feed(lineno, line)
    yield from parser.finish(lineno)


def parse_text(text: str, *, rules: RuleSet | None = None) -> ParseReport:
    """Parse everything in ``text`` (any mix of shapes, one alert or a whole log)."""
    alerts: list[Alert] = []
    problems: list[ParseProblem] = []
    skipped = 0
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for item in iter_parse(lines, rules=rules):
        if isinstance(item, Alert):
            alerts.append(item)
        elif isinstance(item, ParseProblem):
            problems.append(item)
        else:
            skipped += 1
    return ParseReport(alerts=tuple(alerts), skipped=skipped, problems=tuple(problems))
