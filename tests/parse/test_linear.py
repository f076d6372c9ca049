"""Hostile alert lines parse in linear time, on the pure path and in the C accelerator.

Alert text is attacker-influenced (a process names itself, or puts whatever it likes in
its command line) and ``respond --follow`` reads a live stream: one long hostile line
must not stall it. Each hostile line is parsed at two sizes, S and 16 S, and the test
asserts ``time(16 S) / time(S) < 60``: about 16 for linear work, about 256 for quadratic
work, so the bound fails every quadratic case and leaves a linear one a margin of almost
4 for a loaded machine (CPU time of the process, best of a few runs; the small line is
parsed 16 times per run so both timings cover the same number of characters).

The linear rewrites are also compared with the regular expressions they replace, which
stay here as oracles.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcoir.core.alert import Alert
from falcoir.core.parse import ParseProblem, Rule, RuleSet, accel, iter_parse
from falcoir.core.parse.build import _OUTPUT_PREFIX
from falcoir.core.parse.rules import _split_template
from falcoir.core.parse.stream import _json_state
from falcoir.core.parse.textline import _paren_open
from falcoir.core.readlimits import MAX_LINE_CHARS

KIB = 1024
MAX_RATIO = 60.0
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANCHOR = "12:00:00.000000000: Critical "
# The runs a reviewer named, and the ones that were quadratic before (with "(a", "\"").
UNITS = ["(", ")", "=", ", ", "[", '"', "\\", "{", "(a", '\\"', "( (id="]
# Where a run sits: the message, a field's value, a bare body, the appended text after
# the field list, the text in front of the alert, an unterminated JSON string.
PLACES: dict[str, Callable[[str], str]] = {
    "message": lambda run: ANCHOR + "Shell " + run + " (user=root)",
    "value": lambda run: ANCHOR + "Shell (user=root cmdline=" + run + " pid=1)",
    "bare": lambda run: ANCHOR + run,
    "appended": lambda run: ANCHOR + "Shell (user=root) k8s.ns=" + run,
    "prefix": lambda run: run + " " + ANCHOR + "Shell (user=root)",
    "json": lambda run: '{"output": "' + run,
}


def _line(place: str, unit: str, size: int) -> str:
    """A line of exactly ``size`` characters: the run fills what the place leaves."""
    empty = PLACES[place]("")
    run = (unit * (size // len(unit) + 1))[: size - len(empty)]
    line = PLACES[place](run)
    assert len(line) == size
    return line


def _cpu(parse: Callable[[], object], repeat: int, runs: int) -> float:
    best = math.inf
    for _ in range(runs):
        started = time.process_time()
        for _ in range(repeat):
            parse()
        best = min(best, time.process_time() - started)
    return best / repeat


def _ratio(
    parse: Callable[[str], object], small: str, big: str, times: int = 1
) -> tuple[float, float, float]:
    """``time(big) / time(small)``; ``times``: parses per timing of the big line, for
    lines parsed in microseconds (the C path)."""
    t_small = _cpu(lambda: parse(small), repeat=times * len(big) // len(small), runs=3)
    t_big = _cpu(lambda: parse(big), repeat=times, runs=3 if times > 1 else 2)
    return t_big / max(t_small, 1e-9), t_small, t_big


def _items(line: str) -> list[object]:
    return list(iter_parse([line]))


@pytest.fixture
def pure() -> object:
    saved = accel.TEXT_ALERT
    accel.TEXT_ALERT = None
    yield
    accel.TEXT_ALERT = saved


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("unit", UNITS)
def test_hostile_runs_parse_in_linear_time_on_the_pure_path(
    pure: object, unit: str, place: str
) -> None:
    small, big = _line(place, unit, 64 * KIB), _line(place, unit, MAX_LINE_CHARS)
    items = _items(big)
    # Parsed, not refused for its length (a 1 MiB line is the longest one read).
    assert not any(
        isinstance(i, ParseProblem) and i.reason.startswith("line longer") for i in items
    )
    if place != "json":
        assert [type(i) for i in items] == [Alert]
    ratio, t_small, t_big = _ratio(_items, small, big)
    assert ratio < MAX_RATIO, (unit, place, t_small, t_big)


@pytest.mark.parametrize("place", sorted(set(PLACES) - {"json"}))
@pytest.mark.parametrize("unit", UNITS)
def test_hostile_runs_take_linear_time_in_the_c_accelerator(
    fast: accel.TextAlert, unit: str, place: str
) -> None:
    from falcoir.core.parse import _speedups

    size = _speedups.MAX_LINE  # the longest line it reads; 1 KiB is 16 times shorter
    small, big = _line(place, unit, size // 16), _line(place, unit, size)
    if unit == "{":
        assert fast(big, 1) is None  # never taken: "{" may start JSON
        return
    alert = fast(big, 1)
    assert alert is not None
    saved = accel.TEXT_ALERT
    try:
        accel.TEXT_ALERT = None
        assert _items(big) == [alert]  # what the pure path gives
    finally:
        accel.TEXT_ALERT = saved
    ratio, t_small, t_big = _ratio(lambda line: fast(line, 1), small, big, times=20)
    assert ratio < MAX_RATIO, (unit, place, t_small, t_big)


RULES = RuleSet(
    [
        Rule("shell", "Shell (user=%user.name cmdline=%proc.cmdline pid=%proc.pid)"),
        Rule(
            "pool",
            "Connection to a miner pool (command=%proc.cmdline connection=%fd.name "
            "user=%user.name pod=%k8s.pod.name ns=%k8s.ns.name)",
        ),
        Rule("named", "%proc.name did %proc.cmdline x"),
    ]
)


@pytest.mark.parametrize(
    ("head", "unit"),
    [
        ("Shell (user=", " cmdline="),
        ("Shell (user=root cmdline=", " pid="),
        ("Connection to a miner pool (command=", " connection= user= pod="),
        ("Connection to a miner pool (command=x connection=y user=", " pod= ns="),
        ("", " did "),
        ("Shell (user=root cmdline=", " pid=1)"),
    ],
)
def test_template_literals_repeated_in_a_value_match_in_linear_time(head: str, unit: str) -> None:
    # The templates' regular expressions backtracked polynomially here: 18 KB of
    # " connection= user=" took 54 s (cubic).
    def line(size: int) -> str:
        empty = ANCHOR + head
        return empty + (unit * (size // len(unit) + 1))[: size - len(empty)]

    def parse(text: str) -> list[object]:
        return list(iter_parse([text], rules=RULES))

    small, big = line(64 * KIB), line(MAX_LINE_CHARS)
    assert [type(i) for i in parse(big)] == [Alert]
    ratio, t_small, t_big = _ratio(parse, small, big)
    assert ratio < MAX_RATIO, (head, unit, t_small, t_big)


def test_template_split_still_exact() -> None:
    line = ANCHOR + "Shell (user=root cmdline=sh -c 'TERM=x a=(b) pid' pid=7) k8s.ns=default"
    (alert,) = list(iter_parse([line], rules=RULES))
    assert isinstance(alert, Alert)
    assert alert.rule == "shell"
    assert alert.process.cmdline == "sh -c 'TERM=x a=(b) pid'"
    assert alert.process.pid == 7
    assert alert.fields[-1] == ("k8s.ns", "default")
    # A value holding the next literal ends at its first occurrence (as the template's
    # regular expression did): the rest goes to the next field.
    line = ANCHOR + "Shell (user=root cmdline=a pid=2 pid=7)"
    (alert,) = list(iter_parse([line], rules=RULES))
    assert isinstance(alert, Alert)
    assert (alert.process.cmdline, alert.process.pid) == ("a", None)
    assert ("pid", "2 pid=7") in alert.fields


# --- the linear rewrites against the regular expressions they replace -------------------

OLD_PAREN_OPEN = re.compile(r"\((?=\s*(?:[A-Za-z_%][\w.\[\] -]{0,60}=|\S+ \(id=))")


@SETTINGS
@given(
    st.lists(
        st.sampled_from(["(", " ", "\t", "a", "=", ")", " (id=", "(id=", "x", "\u2003", "%"]),
        max_size=16,
    ).map("".join),
    st.integers(min_value=0, max_value=80),
)
def test_paren_open_finds_what_the_regular_expression_found(body: str, cut: int) -> None:
    end = min(cut, len(body)) if cut < 70 else len(body)
    m = OLD_PAREN_OPEN.search(body, 0, end)
    assert _paren_open(body, end) == (m.start() if m is not None else -1)


OLD_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
OLD_OUTPUT_PREFIX = re.compile(r'"output"\s*:\s*"((?:[^"\\]|\\.)*)', re.I)


def _old_json_state(fragment: str) -> tuple[int, bool]:
    without = OLD_STRINGS.sub("", fragment)
    if '"' in without:
        return 0, True
    return (
        without.count("{") + without.count("[") - without.count("}") - without.count("]"),
        False,
    )


@SETTINGS
@given(
    st.lists(
        st.sampled_from(['"', "\\", "a", "{", "}", "[", "]", "\n", '\\"', '""', " "]), max_size=16
    ).map("".join)
)
def test_json_state_is_what_the_regular_expression_gave(fragment: str) -> None:
    assert _json_state(fragment) == _old_json_state(fragment)
    text = '{"Output" :"' + fragment
    old = OLD_OUTPUT_PREFIX.search(text)
    new = _OUTPUT_PREFIX.search(text)
    assert old is not None and new is not None
    assert new.group(1) == old.group(1)


def _old_template_match(
    body: str, literals: tuple[str, ...], ends_with_field: bool
) -> tuple[list[str], str | None] | None:
    """The regular expression rules._compile built before (the reference)."""
    parts: list[str] = []
    fields = len(literals) - 1
    for i in range(fields):
        parts += [re.escape(literals[i]), f"(?P<f{i}>.*?)"]
    parts.append(re.escape(literals[fields]))
    if ends_with_field:
        parts[-2] = f"(?P<f{fields - 1}>.*)"
        pattern = re.compile("".join(parts) + r"$", re.S)
    else:
        joined = "".join(parts)
        pattern = re.compile(
            "(?:" + joined + "$)|(?:" + joined.replace("(?P<f", "(?P<t") + r"(?P<tail>\s.*)$)",
            re.S,
        )
    mm = pattern.match(body)
    if mm is None:
        return None
    tail = mm.groupdict().get("tail")
    group = "f" if tail is None else "t"
    return [mm.group(f"{group}{i}") or "" for i in range(fields)], tail


PIECES = st.sampled_from(["a", "b", " ", "=", "x=", " y=", ")", "(", "\t", "ab", "", "\u2003"])


@st.composite
def _templates(draw: st.DrawFn) -> tuple[str, tuple[str, ...], bool]:
    fields = draw(st.integers(min_value=0, max_value=3))
    literals = [draw(st.lists(PIECES, max_size=3).map("".join)) for _ in range(fields + 1)]
    ends_with_field = fields > 0 and draw(st.booleans())
    if ends_with_field:
        literals[-1] = ""
    elif not literals[-1]:
        literals[-1] = ")"  # a template that does not end with a field ends with text
    body = draw(st.lists(st.sampled_from(["a", "b", " ", "=", ")", "\n", *literals]), max_size=12))
    text = "".join(body).rstrip("\r\n")
    if draw(st.booleans()):
        text = literals[0] + text
    return text, tuple(literals), ends_with_field


@SETTINGS
@given(_templates())
def test_template_split_is_what_the_regular_expression_gave(
    case: tuple[str, tuple[str, ...], bool],
) -> None:
    body, literals, ends_with_field = case
    assert _split_template(body, literals, ends_with_field) == _old_template_match(
        body, literals, ends_with_field
    )


# --- what a hostile stream leaves in the parser's caches ---------------------------------


def test_long_names_and_prefixes_are_not_kept_in_the_caches(pure: object) -> None:
    from falcoir.core.parse import normalize, pairs, textline

    lines = [
        f"{'w' * 4000}{i} {ANCHOR}Shell ({'k' * 5000}{i}=v {'x' * 5000}{i}=y user=root)"
        for i in range(50)
    ]
    items = list(iter_parse(lines))
    assert [type(i) for i in items] == [Alert] * 50
    assert items[7].fields[0] == ("x" * 5000 + "7", "y")  # a key, though long
    assert all(len(w) <= pairs._KEY_CACHE_WORD_MAX for w in pairs._KEY_CACHE)
    assert all(len(p) <= textline._WRAPPER_CACHE_PREFIX_MAX for p in textline._WRAPPER_CACHE)
    assert all(sum(map(len, keys)) <= normalize._PLAN_KEYS_MAX_CHARS for keys in normalize._PLANS)
