"""Turning a text line or a JSON document into an :class:`~falcoir.core.alert.Alert`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from falcoir.core.alert import Alert
from falcoir.core.parse.normalize import ABSENT, Normalized, collect, normalize, present
from falcoir.core.parse.textline import (
    ANCHOR,
    PRIORITY_WORDS,
    TextParts,
    parse_text_line,
    split_body,
    wrapper_of,
)

if TYPE_CHECKING:
    from falcoir.core.parse.rules import RuleSet


def _text_source(message: str, keys: Mapping[str, str]) -> str | None:
    if message.startswith("Falco internal:"):
        return "internal"
    if "resource" in keys and ("verb" in keys or "action" in keys):
        return "k8s_audit"
    if "ka.target.resource" in keys or "ka.user.name" in keys:
        return "k8s_audit"
    return None


def _gvisor_pid(appended: tuple[tuple[str, str], ...]) -> bool:
    """Falco's ``-pc``/``-pk`` under gVisor appends ``pid=%proc.vpid tid=%thread.vtid``."""
    keys = [k for k, _ in appended]
    return "pid" in keys and "tid" in keys


def alert_from_text(
    line: str,
    *,
    lineno: int | None = None,
    rules: RuleSet | None = None,
    anchor: re.Match[str] | None = None,
) -> Alert | None:
    """The alert in one text line, or ``None`` when the line holds no alert anchor.

    ``anchor``: ``ANCHOR.search(line)`` when the caller already ran it.
    """
    parts = parse_text_line(line, anchor)
    if parts is None:
        return None
    rule_name: str | None = None
    source: str | None = None
    fields = parts.fields
    appended = parts.appended
    message = parts.message
    style = parts.style
    field_names: dict[str, str] = {}
    if rules is not None:
        matched = rules.match(line[len(parts.prefix) :], parts)
        if matched is not None:
            rule_name = matched.rule
            source = matched.source
            message = matched.message
            fields = matched.fields
            appended = matched.appended
            field_names = matched.field_names
    return _assemble_text(
        line,
        parts,
        lineno=lineno,
        message=message,
        style=style,
        fields=fields,
        appended=appended,
        rule=rule_name,
        source=source,
        field_names=field_names,
    )


def text_alert(line: str, m: re.Match[str], lineno: int) -> Alert:
    """:func:`alert_from_text` without rules, for a line whose ``ANCHOR.search`` is
    ``m``: the same steps, inlined (tests compare the two on every corpus record)."""
    start = m.start()
    time, prio = m.group(1, 2)
    message, style, fields, appended, truncated = split_body(line[m.end() :])
    all_fields = (*fields, *appended)
    d = collect_text(all_fields)
    source = _text_source(message, d)
    norm = normalize(
        d,
        source=source,
        vpid_from_pid=bool(appended) and _gvisor_pid(tuple(appended)),
        clean=True,
    )
    return _text_alert(
        line,
        time=time,
        priority=PRIORITY_WORDS[prio],
        rule=None,
        message=message,
        output=line[start:].rstrip("\r\n"),
        style=style,
        fields=all_fields,
        norm=norm,
        source=source,
        lineno=lineno,
        truncated=truncated,
        wrapper=wrapper_of(line[:start]) if start else (),
    )


def _assemble_text(
    line: str,
    parts: TextParts,
    *,
    lineno: int | None,
    message: str,
    style: str,
    fields: tuple[tuple[str, str], ...],
    appended: tuple[tuple[str, str], ...],
    rule: str | None,
    source: str | None,
    field_names: Mapping[str, str],
) -> Alert:
    all_fields = fields + appended
    d: dict[str, str]
    if field_names:
        # With a rule template, the label's real Falco field name is known.
        d = collect((field_names.get(k, k), v) for k, v in fields)
        collect(all_fields, d)
    else:
        d = collect_text(all_fields)
    if source is None:
        source = _text_source(message, d)
    norm = normalize(
        d, source=source, vpid_from_pid=bool(appended) and _gvisor_pid(appended), clean=True
    )
    return _text_alert(
        line,
        time=parts.time,
        priority=parts.priority,
        rule=rule,
        message=message,
        output=parts.output,
        style=style,
        fields=all_fields,
        norm=norm,
        source=source,
        lineno=lineno,
        truncated=parts.truncated,
        wrapper=wrapper_of(parts.prefix),
    )


def _text_alert(
    line: str,
    *,
    time: str | None,
    priority: str | None,
    rule: str | None,
    message: str,
    output: str,
    style: str,
    fields: tuple[tuple[str, str], ...],
    norm: Normalized,
    source: str | None,
    lineno: int | None,
    truncated: bool,
    wrapper: Any,
) -> Alert:
    """A text line's Alert, every field in order: equal to ``Alert(...)`` (tests
    check), without the cost of the frozen dataclass's constructor."""
    alert = _new(Alert)
    _setattr(
        alert,
        "__dict__",
        {
            "raw": line.rstrip("\r\n"),
            "source_format": "text",
            "time": time,
            "priority": priority,
            "rule": rule,
            "message": message,
            "output": output,
            "output_style": style,
            "fields": fields,
            "process": norm.process,
            "container": norm.container,
            "k8s": norm.k8s,
            "node": None,
            "connection": norm.connection,
            "tags": (),
            "source": source,
            "uuid": None,
            "event_time_ns": None,
            "line": lineno,
            "end_line": lineno,
            "file": norm.file,
            "exec_command": norm.exec_command,
            "output_fields": (),
            "truncated": truncated,
            "wrapper": wrapper,
        },
    )
    return alert


_new = object.__new__
_setattr = object.__setattr__
_VALUE = itemgetter(1)


def collect_text(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """:func:`collect` for text pairs (every value a ``str``): when none is absent, the
    first value of each name is what ``dict`` keeps from the pairs reversed."""
    values = list(map(_VALUE, pairs))
    if "" in values or "<NA>" in values or any(map(str.isspace, values)):
        return collect(pairs)
    return dict(reversed(pairs))


_SIDEKICK_SOURCES = frozenset({"syscalls"})


_NESTED = (dict, list)
_NESTED_TYPES = frozenset(_NESTED)
_STR_ONLY = frozenset({str})


def _str(value: Any) -> str | None:
    if value.__class__ is str:
        return None if value in ABSENT else str(value)
    return present(value)


def _lowered(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """``doc`` with lower-case keys (Falcosidekick may send ``"Rule"``), and whether any
    key was capitalised."""
    for k in doc:
        if k.__class__ is not str or k != k.lower():
            break
    else:
        return doc, False
    low: dict[str, Any] = {}
    for k, v in doc.items():
        low.setdefault(str(k).lower(), v)
    return low, True


def looks_like_alert(doc: Mapping[str, Any]) -> bool:
    if "output" in doc and ("priority" in doc or "rule" in doc):
        return True
    low, _ = _lowered(doc)
    return "output" in low and ("priority" in low or "rule" in low)


def alert_from_json(
    doc: Mapping[str, Any],
    raw: str,
    *,
    lineno: int | None = None,
    end_line: int | None = None,
    prefix: str = "",
    rules: RuleSet | None = None,
) -> Alert:
    """The alert in a Falco or Falcosidekick JSON document (keys case-insensitive)."""
    low, capitalised = _lowered(doc)
    output = low.get("output")
    output_s = output if isinstance(output, str) else ""
    of_raw: Any = low.get("output_fields")
    output_fields: tuple[tuple[str, Any], ...] = ()
    of_map = of_raw.__class__ is dict or isinstance(of_raw, Mapping)
    if of_map:
        output_fields = tuple(of_raw.items())
        if not _NESTED_TYPES.isdisjoint(map(type, of_raw.values())):
            # Keep the Alert hashable: nested values become their JSON text.
            output_fields = tuple(
                (k, json.dumps(v) if v.__class__ in _NESTED else v) for k, v in output_fields
            )
    source = _str(low.get("source"))
    uuid = _str(low.get("uuid"))
    fmt = "sidekick" if (uuid or capitalised or source in _SIDEKICK_SOURCES) else "json"

    m = ANCHOR.match(output_s) or ANCHOR.search(output_s[:200])
    out_time = out_prio = None
    if m is not None:
        body = output_s[m.end() :]
        out_time = m.group("time")
        out_prio = PRIORITY_WORDS[m.group("prio")]
    else:
        body = output_s
    # With output_fields, the labels printed in the output add nothing but time.
    message, style, fields, appended, _trunc = split_body(
        body, allow_truncation=False, with_pairs=not output_fields
    )
    if m is None and not fields and not output_fields:
        style_out: str | None = None
    else:
        style_out = style
    all_fields = (*fields, *appended)

    d: Mapping[str, Any]
    if all_fields:
        d = collect(output_fields)
        collect(all_fields, d)
    else:
        d = of_raw if isinstance(of_raw, dict) else {}
    if source is None:
        source = _text_source(message, d) if m is not None else None
        if source is None and message.startswith("Falco internal:"):
            source = "internal"
    norm = normalize(
        d,
        source=source,
        vpid_from_pid=bool(appended) and _gvisor_pid(tuple(appended)),
        clean=bool(all_fields),
    )

    prio = _str(low.get("priority"))
    if prio is not None:
        prio = PRIORITY_WORDS.get(prio.capitalize(), prio.capitalize())
    else:
        prio = out_prio
    tags_raw = low.get("tags")
    tags: tuple[str, ...] = ()
    if isinstance(tags_raw, list):
        tags = tuple(tags_raw)
        if not _STR_ONLY.issuperset(map(type, tags)):
            tags = tuple(str(t) for t in tags)
    evt_ns = None
    if of_map:
        for name in ("evt.time", "evt.time.iso8601", "evt.rawtime"):
            v = of_raw.get(name)
            if isinstance(v, int) and not isinstance(v, bool):
                evt_ns = v
                break
    rule = _str(low.get("rule"))
    if rule is None and rules is not None and m is not None:
        # A payload without its rule (some Falcosidekick tests): name it by template.
        named = alert_from_text(output_s, rules=rules)
        if named is not None:
            rule = named.rule
    time = _str(low.get("time")) or out_time
    alert = _new(Alert)
    _setattr(
        alert,
        "__dict__",
        {
            "raw": raw,
            "source_format": fmt,
            "time": time,
            "priority": prio,
            "rule": rule,
            "message": message if message or output_s else None,
            "output": output_s or None,
            "output_style": style_out,
            "fields": all_fields,
            "process": norm.process,
            "container": norm.container,
            "k8s": norm.k8s,
            "node": _str(low.get("hostname")),
            "connection": norm.connection,
            "tags": tags,
            "source": source,
            "uuid": uuid,
            "event_time_ns": evt_ns,
            "line": lineno,
            "end_line": end_line if end_line is not None else lineno,
            "file": norm.file,
            "exec_command": norm.exec_command,
            "output_fields": output_fields,
            "truncated": False,
            "wrapper": wrapper_of(prefix),
        },
    )
    return alert


# Possessive: each character has one reading, and a run of plain ones is one fast loop.
_OUTPUT_PREFIX = re.compile(r'"output"\s*:\s*"((?:[^"\\]++|\\.)*+)', re.I)


def partial_output(text: str) -> str | None:
    """The (possibly cut) ``output`` string of a JSON document that does not parse."""
    m = _OUTPUT_PREFIX.search(text)
    if m is None:
        return None
    s = m.group(1)
    for cut in range(0, 7):  # a cut inside an escape like \u003c
        try:
            decoded = json.loads('"' + (s[: len(s) - cut] if cut else s) + '"')
        except ValueError:
            continue
        return str(decoded)
    return None
