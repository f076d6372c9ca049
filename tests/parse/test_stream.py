"""iter_parse on a stream: each alert as soon as its lines have arrived, nothing
buffered beyond the current JSON document, every line accounted for."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

from falcoir.core.alert import Alert
from falcoir.core.parse import ParseProblem, Skipped, iter_parse

TEXT = "10:14:03.412758113: Critical Miner (command=/tmp/xmrig pid=48213)"
DOC = {
    "output": "10:14:04.100220931: Notice Conn (command=xmrig)",
    "priority": "Notice",
    "rule": "R",
    "time": "2026-03-02T10:14:04.100220931Z",
    "output_fields": {"proc.pid": 1},
}


class Feed:
    """A line source that records how many lines the consumer has pulled."""

    def __init__(self, lines: list[str], then_forever: bool = False) -> None:
        self.lines = lines
        self.pulled = 0
        self.forever = then_forever

    def __iter__(self) -> Iterator[str]:
        for line in self.lines:
            self.pulled += 1
            yield line + "\n"
        while self.forever:  # like `kubectl logs -f`: never ends
            self.pulled += 1
            yield "Events detected: 0\n"


def test_each_alert_comes_out_before_the_next_line_is_read() -> None:
    pretty = json.dumps(DOC, indent=2).split("\n")
    feed = Feed([TEXT, *pretty, TEXT, "", "junk"], then_forever=True)
    it = iter_parse(feed)
    first = next(it)
    assert isinstance(first, Alert) and first.line == 1
    assert feed.pulled == 1
    second = next(it)
    assert isinstance(second, Alert)
    assert second.rule == "R"
    assert (second.line, second.end_line) == (2, 1 + len(pretty))
    assert feed.pulled == 1 + len(pretty)  # not one line more
    third = next(it)
    assert isinstance(third, Alert) and feed.pulled == 2 + len(pretty)
    assert isinstance(next(it), Skipped)
    problem = next(it)
    assert isinstance(problem, ParseProblem) and problem.text == "junk"
    # an endless stream keeps flowing
    rest = list(itertools.islice(it, 100))
    assert all(isinstance(x, Skipped) for x in rest)


def test_open_document_is_bounded() -> None:
    lines = ["{"] + ['  "k": "v",'] * 20_000
    items = list(iter_parse(lines))
    assert isinstance(items[0], ParseProblem)
    assert "too large" in items[0].reason
    # the lines after the cap are still accounted for
    covered = sum(_span(x) for x in items)
    assert covered == len(lines)


def test_very_long_line_is_a_problem_not_a_hang() -> None:
    items = list(iter_parse(["x" * (2 * 1024 * 1024), TEXT]))
    assert isinstance(items[0], ParseProblem)
    assert isinstance(items[1], Alert)
    assert len(items[0].text) < 1000


def _span(item: Alert | ParseProblem | Skipped) -> int:
    if isinstance(item, Skipped):
        return 1
    end = item.end_line if item.end_line is not None else item.line
    assert item.line is not None and end is not None
    return end - item.line + 1


def test_every_line_is_accounted_for_exactly_once() -> None:
    pretty = json.dumps(DOC, indent=2).split("\n")
    lines = [TEXT, "", "garbage", *pretty, "{", '  "output": ', TEXT, "Events detected: 3", "{"]
    items = list(iter_parse(lines))
    seen: list[int] = []
    for item in items:
        start = item.line
        assert start is not None
        seen.extend(range(start, start + _span(item)))
    assert seen == list(range(1, len(lines) + 1))
