"""The parser's fast paths agree with its general path, item for item.

``iter_parse`` sends a plain text alert line or a one-line JSON object straight to its
builder; the general path is ``_Parser.feed``, which every line may take. Text pairs
without an absent value skip ``collect``'s loop (``collect_text``), and cleaned values
skip ``normalize``'s checks (``clean=True``); the records are built from their whole
instance dictionary instead of their constructor. Each is compared with the slower way
on every corpus record, on the benchmark's generated log and on generated lines.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import string
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcoir.core.alert import Alert
from falcoir.core.parse import ParseProblem, RuleSet, Skipped, iter_parse, load_rules
from falcoir.core.parse.build import collect_text
from falcoir.core.parse.normalize import collect, normalize
from falcoir.core.parse.stream import _Parser
from tests.parse.corpus import records

REPO = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Item = Alert | ParseProblem | Skipped


def general_path(lines: Iterable[str], rules: RuleSet | None = None) -> list[Item]:
    """Every line through ``_Parser.feed``, as ``iter_parse`` did before its fast paths."""
    parser = _Parser(rules)
    out: list[Item] = []
    lineno = 0
    for raw in lines:
        lineno += 1
        line = raw.rstrip("\r\n") if raw.endswith(("\n", "\r")) else raw
        out.extend(parser.feed(lineno, line))
    out.extend(parser.finish(lineno))
    return out


def assert_same(lines: list[str], rules: RuleSet | None = None) -> list[Item]:
    fast = list(iter_parse(lines, rules=rules))
    slow = general_path(lines, rules)
    assert [type(i) for i in fast] == [type(i) for i in slow]
    assert fast == slow
    for a, b in zip(fast, slow, strict=True):
        if isinstance(a, Alert):
            assert a.to_dict() == b.to_dict()
            assert hash(a) == hash(b)
    return fast


def corpus_lines() -> list[str]:
    lines: list[str] = []
    for rec in records():
        lines.extend(str(rec["text"]).split("\n"))
    return lines


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "parse_bench", REPO / "benchmarks" / "parse_bench.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_corpus_record_alone() -> None:
    taken = 0
    for rec in records():
        items = assert_same(str(rec["text"]).split("\n"))
        taken += sum(isinstance(i, Alert) for i in items)
    assert taken >= 80  # the fast paths were really exercised


def test_the_whole_corpus_as_one_stream() -> None:
    lines = corpus_lines()
    items = assert_same(lines)
    assert sum(isinstance(i, Alert) for i in items) >= 80
    # ... and with a multi-line JSON document open in the middle of it.
    doc = json.dumps({"output": "10:00:00.1: Notice x (pid=1)", "priority": "Notice"}, indent=2)
    assert_same(lines[:40] + doc.split("\n") + lines[40:])


def test_the_benchmark_log(tmp_path: Path) -> None:
    bench = _bench()
    bench.generate(tmp_path / "all.log", tmp_path / "t.log", tmp_path / "j.log", 2000, seed=11)
    lines = (tmp_path / "all.log").read_text().split("\n")[:-1]
    items = assert_same(lines)
    assert sum(isinstance(i, Alert) for i in items) == 1960


def test_with_a_rules_file() -> None:
    rules = load_rules(REPO / "examples" / "alerts" / "rules-cryptominer.yaml")
    lines = corpus_lines()
    for example in sorted((REPO / "examples" / "alerts").glob("*.txt")):
        lines.extend(example.read_text().split("\n"))
    items = assert_same(lines, rules)
    assert any(isinstance(i, Alert) and i.source_format == "text" and i.rule for i in items)


def test_alerts_built_from_their_dict_equal_the_constructors() -> None:
    alerts = [i for i in iter_parse(corpus_lines()) if isinstance(i, Alert)]
    assert len(alerts) >= 80
    for a in alerts:
        # dataclasses.replace calls each class's real constructor.
        rebuilt = dataclasses.replace(
            a,
            process=dataclasses.replace(a.process),
            container=dataclasses.replace(a.container),
            k8s=dataclasses.replace(a.k8s),
        )
        assert rebuilt == a
        assert hash(rebuilt) == hash(a)
        assert repr(rebuilt) == repr(a)
        for obj in (a, a.process, a.container, a.k8s):
            assert set(vars(obj)) == {f.name for f in dataclasses.fields(obj)}


def test_collect_text_and_clean_normalize_agree_on_the_corpus() -> None:
    alerts = [i for i in iter_parse(corpus_lines()) if isinstance(i, Alert)]
    for a in alerts:
        if a.source_format != "text":
            continue
        assert collect_text(a.fields) == collect(a.fields)
        d = collect(a.fields)
        for source in (None, "k8s_audit"):
            for gvisor in (False, True):
                assert normalize(d, source=source, vpid_from_pid=gvisor, clean=True) == normalize(
                    d, source=source, vpid_from_pid=gvisor
                )


NAMES = st.sampled_from(
    [
        "pid",
        "proc.pid",
        "proc_pid",
        "vpid",
        "container",
        "container_id",
        "%container.info",
        "k8s.pod",
        "k8s_ns",
        "ns",
        "pod",
        "user",
        "command",
        "cmdline",
        "fd.name",
        "file",
        "connection",
        "fd.rip",
        "fd.rport",
        "name",
        "proc.name",
        "image",
        "ka.target.resource",
    ]
)
VALUES = st.one_of(
    st.sampled_from(["", "<NA>", " ", "\u2003", "12345", "3c1f0d9be2a4", "host", "pods"]),
    st.sampled_from(["nginx (id=3c1f0d9be2a4)", "10.0.0.1:80->10.0.0.2:443", "x y"]),
    st.text(max_size=12),
)


@SETTINGS
@given(st.lists(st.tuples(NAMES, VALUES), max_size=12).map(tuple))
def test_collect_text_and_clean_normalize_agree_on_generated_pairs(
    pairs: tuple[tuple[str, str], ...],
) -> None:
    assert collect_text(pairs) == collect(pairs)
    d = collect(pairs)
    for source in (None, "k8s_audit"):
        assert normalize(d, source=source, clean=True) == normalize(d, source=source)


FRAGMENTS = st.sampled_from(
    [
        "10:14:03.412758113: Critical ",
        "2026-03-02T10:14:03.412758113+0000: Warning ",
        "08:30:00.123 - Notice - ",
        "falco_1  | ",
        "Mar  2 10:14:03 node-1 falco[1187]: ",
        "[pod/falco-7kq2m/falco] ",
        "Shell in container",
        " | ",
        " (",
        ")",
        "=",
        " k8s.ns=",
        " pid=",
        " proc.pid=",
        " command=",
        " container=",
        " user=",
        "<NA>",
        ", ",
        " (id=3c1f0d9be2a4)",
        '{"output": "',
        '{"',
        '"priority": "Error"',
        '", "rule": "R"}',
        "{",
        "}",
        ">",
        "\r",
        "\t",
    ]
)
LINES = st.lists(
    st.lists(st.one_of(FRAGMENTS, st.text(alphabet=string.printable, max_size=6)), max_size=25)
    .map("".join)
    .map(lambda s: s.replace("\n", " ")),
    max_size=8,
)


@SETTINGS
@given(LINES)
def test_generated_lines_agree(lines: list[str]) -> None:
    assert_same(lines)


@SETTINGS
@given(st.lists(st.text(max_size=80), max_size=8))
def test_arbitrary_lines_agree(lines: list[str]) -> None:
    assert_same(lines)
