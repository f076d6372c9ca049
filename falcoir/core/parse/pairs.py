"""Splitting the ``key=value`` part of a Falco text output into ordered pairs.

Falco prints values raw: no quoting, no escaping. A command line can hold spaces, ``=``,
parentheses, quotes and commas, so no grammar recovers the exact split; these
heuristics recover what real alerts need (see ``docs/falco-formats.md``):

- keys are Falco labels (``user``, ``proc_exepath``, ``k8s.ns``, ``aname[2]``) that
  follow whitespace, contain a lower-case letter (``TERM=xterm`` in a command line is
  not a key) and do not start with ``-`` (``--allowed-types=rulesfile`` is an argument);
- after a free-text key (``command``, ``cmdline``, ...) only a well-known label, or one
  that looks like a Falco field (a ``.``, ``_`` or ``[``), ends the value, so
  ``mount -o size=390 tmpfs`` stays one command line;
- ``, `` separated pairs (plugin rules, the walkthrough, some ``append_output``) are
  recognised when every piece is a pair;
- the keyless ``%container.info`` expansion ``name (id=<12 hex>)`` glued to the end of
  a value becomes its own ``%container.info`` pair.

With a rules file, :mod:`falcoir.core.parse.rules` splits by the rule's template instead.
"""

from __future__ import annotations

import re

Pair = tuple[str, str]

# A key candidate: start of text or after whitespace, a label, then "=".
_KEY = re.compile(r"(?:(?<=\s)|^)(%?[A-Za-z_][\w.]*(?:\[[^\]\s=]*\])?)=")
_HAS_LOWER = re.compile(r"[a-z]")

# Values of these keys are free text: only a known or field-like key ends them.
FREE_TEXT_KEYS = frozenset(
    {
        "command",
        "cmdline",
        "pcmdline",
        "proc_cmdline",
        "proc_pcmdline",
        "proc.cmdline",
        "proc.pcmdline",
        "proc.args",
        "proc_args",
        "args",
        "evt_args",
        "evt.args",
        "socket_info",
        "cap_effective",
        "cap_permitted",
        "cap_inheritable",
        "exec_command",
        "gcmdline",
        "ggcmdline",
        "acmdline",
    }
)

# Labels used in Falco's stock rules and by older and newer Falco versions; inside a
# free-text value, one of these (or a field-like label) starts the next pair.
KNOWN_KEYS = frozenset(
    {
        "user",
        "uid",
        "gid",
        "pid",
        "ppid",
        "vpid",
        "tid",
        "name",
        "path",
        "file",
        "type",
        "flags",
        "image",
        "shell",
        "parent",
        "gparent",
        "ggparent",
        "gggparent",
        "program",
        "process",
        "command",
        "cmdline",
        "pcmdline",
        "terminal",
        "container",
        "connection",
        "lport",
        "rport",
        "oldpath",
        "newpath",
        "target",
        "linkpath",
        "mounts",
        "res",
        "ns",
        "pod",
        "resource",
        "verb",
        "action",
        "sip",
        "dip",
        "sport",
        "dport",
        "proto",
        "fd",
        "evt",
        "exe",
        "cwd",
        "namespace",
        "config",
        "domain",
        "family",
        "mode",
        "dev",
        "module",
        "syscall",
        "comm",
        "tty",
    }
)

# The "(id=...)" suffix alone; the name before it is found by scanning back (a regex
# "^(.*?)\s*(\S+ \(id=...\))$" backtracks quadratically on a long hostile value).
_CONTAINER_ID_SUFFIX = re.compile(r"\(id=(?:[0-9a-f]{12}|[0-9a-f]{64}|host)\)")
_NESTED_KEY = re.compile(r"^([A-Za-z_][\w]*\.[\w.]*)=(.*)$", re.S)
_COMMA_SPLIT = re.compile(r",\s+(?=[A-Za-z_][\w .\[\]-]{0,60}?=)")
_SPACED_KEY = re.compile(r"\s[a-z_][\w.]*(?:\[[^\]\s=]*\])?=")
_COMMA_PIECE = re.compile(r"^([A-Za-z_][\w .\[\]-]{0,60}?)=(.*)$", re.S)


def _field_like(key: str) -> bool:
    return key in KNOWN_KEYS or "_" in key or "." in key or "[" in key or key[0] == "%"


def key_positions(text: str) -> list[tuple[int, int, str]]:
    """``(start, value_start, key)`` for each key that starts a pair in ``text``."""
    out: list[tuple[int, int, str]] = []
    free_text = False
    for m in _KEY.finditer(text):
        key = m.group(1)
        if not _HAS_LOWER.search(key):
            continue
        if free_text and not _field_like(key):
            continue
        out.append((m.start(), m.end(), key))
        free_text = key in FREE_TEXT_KEYS
    return out


def split_comma(text: str) -> list[Pair] | None:
    """``k=v, k=v`` pairs, or ``None`` when ``text`` is not in that style."""
    if ", " not in text and ",\t" not in text:
        return None
    pieces = _COMMA_SPLIT.split(text.strip())
    if len(pieces) < 2:
        return None
    pairs: list[Pair] = []
    for piece in pieces:
        m = _COMMA_PIECE.match(piece)
        if m is None:
            return None
        value = m.group(2).strip()
        if _SPACED_KEY.search(value):
            return None  # "k=v k=v" inside: space-separated after all
        pairs.append((m.group(1).strip(), value))
    return pairs


_KEY_FULL = re.compile(r"%?[A-Za-z_][\w.]*(?:\[[^\]\s=]*\])?")
_KEY_CACHE: dict[str, bool] = {}
_KEY_CACHE_MAX = 8192
_KEY_CACHE_WORD_MAX = 128
"""Longer words are not kept: a hostile stream could otherwise park 8192 words of up to
a line's length (1 MiB) each in the cache."""


def _is_key(word: str) -> bool:
    ok = _KEY_CACHE.get(word)
    if ok is None:
        ok = _KEY_FULL.fullmatch(word) is not None and _HAS_LOWER.search(word) is not None
        if len(_KEY_CACHE) < _KEY_CACHE_MAX and len(word) <= _KEY_CACHE_WORD_MAX:
            _KEY_CACHE[word] = ok
    return ok


def split_pairs(text: str) -> tuple[str, list[Pair]]:
    """Split ``text`` into its leading non-pair text and the ordered pairs after it."""
    comma = split_comma(text)
    if comma is not None:
        return "", comma
    if "\t" in text or "\n" in text:
        return _split_pairs_regex(text)
    # Fast path: split on "=" and take the last word of each piece as the next key.
    pieces = text.split("=")
    n = len(pieces)
    if n == 1:
        return text, []
    pairs: list[Pair] = []
    lead_parts: list[str] = []
    key = ""
    i = 0
    # The first key: the last word before an "=" (at the start or after a space).
    while i < n - 1:
        before, sp, word = pieces[i].rpartition(" ")
        if (sp or not i) and _is_key(word):
            lead_parts.append(before + sp)
            key = word
            break
        lead_parts.append(pieces[i] + "=")
        i += 1
    else:
        return text, []
    lead = "".join(lead_parts)
    acc = ""
    free_text = key in FREE_TEXT_KEYS
    cache_get = _KEY_CACHE.get
    append = pairs.append
    for j in range(i + 1, n - 1):
        piece = pieces[j]
        before, sp, word = piece.rpartition(" ")
        if not sp:
            acc += piece + "="
            continue
        ok = cache_get(word)
        if ok is None:
            ok = _is_key(word)
        if ok and (not free_text or _field_like(word)):
            value = (acc + before).strip() if acc else before.strip()
            if "=" in value or value[-1:] == ")":
                _append_value(pairs, key, value)
            else:
                append((key, value))
            acc = ""
            key = word
            free_text = key in FREE_TEXT_KEYS
        else:
            acc += piece + "="
    _append_value(pairs, key, (acc + pieces[n - 1]).strip())
    return lead, pairs


def _split_pairs_regex(text: str) -> tuple[str, list[Pair]]:
    positions = key_positions(text)
    if not positions:
        return text, []
    lead = text[: positions[0][0]]
    pairs: list[Pair] = []
    n = len(positions)
    for i in range(n):
        _start, vstart, key = positions[i]
        vend = positions[i + 1][0] if i + 1 < n else len(text)
        value = text[vstart:vend].strip()
        _append_value(pairs, key, value)
    return lead, pairs


def _container_info_tail(value: str) -> tuple[str, str] | None:
    """``(head, "name (id=...)")`` when ``value`` ends with a container info, in linear time."""
    mark = value.rfind(" (id=")
    if mark <= 0 or _CONTAINER_ID_SUFFIX.fullmatch(value, mark + 1) is None:
        return None
    start = mark
    while start > 0 and not value[start - 1].isspace():
        start -= 1
    if start == mark:
        return None
    return value[:start], value[start:]


def _append_value(pairs: list[Pair], key: str, value: str) -> None:
    # "container=k8s.ns=x k8s.pod=y container=id": %container.info under -pk printed
    # after a label; the label's own value is empty.
    if "=" in value and key not in FREE_TEXT_KEYS:
        nested = _NESTED_KEY.match(value)
        if nested is not None:
            pairs.append((key, ""))
            pairs.append((nested.group(1), nested.group(2).strip()))
            return
    if value.endswith(")") and "(id=" in value:
        info = _container_info_tail(value)
        if info is not None:
            pairs.append((key, info[0].strip()))
            pairs.append(("%container.info", info[1]))
            return
    pairs.append((key, value))
