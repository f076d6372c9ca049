"""The C accelerator (``falcoir.core.parse._speedups``) against the pure-Python parser.

Every comparison runs the same lines through ``iter_parse`` twice, once with the
accelerator and once with ``accel.TEXT_ALERT = None`` (the pure path, the reference),
and asserts equal items: the corpus, the benchmark's log, the examples and generated
lines (hypothesis). ``text_alert`` itself is also compared with the pure builder on
every generated line, and fed hostile input: it must decline or agree, never crash.

When the installed package has no built extension (a stale editable install, or the
checkout run in place), the fixture compiles ``_speedups.c`` into a temporary directory
with the same setup.py, so the C path is tested wherever a C compiler exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcoir.core.alert import Alert
from falcoir.core.parse import ParseProblem, Skipped, accel, iter_parse
from falcoir.core.parse.build import text_alert as pure_text_alert
from falcoir.core.parse.textline import ANCHOR, _wrapper_of
from tests.parse.corpus import records

REPO = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Item = Alert | ParseProblem | Skipped


def both(fast: accel.TextAlert, lines: list[str]) -> tuple[list[Item], list[Item]]:
    saved = accel.TEXT_ALERT
    try:
        accel.TEXT_ALERT = fast
        accelerated = list(iter_parse(lines))
        accel.TEXT_ALERT = None
        pure = list(iter_parse(lines))
    finally:
        accel.TEXT_ALERT = saved
    return accelerated, pure


def assert_same(fast: accel.TextAlert, lines: list[str]) -> list[Item]:
    accelerated, pure = both(fast, lines)
    assert [type(i) for i in accelerated] == [type(i) for i in pure]
    for a, b in zip(accelerated, pure, strict=True):
        assert a == b
        if isinstance(a, Alert):
            assert isinstance(b, Alert)
            assert a.to_dict() == b.to_dict()
            assert vars(a) == vars(b)
            assert hash(a) == hash(b)
            for sub in ("process", "container", "k8s", "connection"):
                assert type(getattr(a, sub)) is type(getattr(b, sub))
    return accelerated


def assert_line_agrees(fast: accel.TextAlert, line: str, lineno: int = 7) -> Alert | None:
    """``text_alert`` declines the line or builds what the pure builder builds."""
    got = fast(line, lineno)
    if got is None:
        return None
    m = ANCHOR.search(line)
    assert m is not None, f"accelerated an anchorless line: {line!r}"
    assert "{" not in line
    want = pure_text_alert(line, m, lineno)
    assert got == want
    assert got.to_dict() == want.to_dict()
    assert vars(got) == vars(want)
    return got


def taken(fast: accel.TextAlert, lines: Iterable[str]) -> int:
    return sum(fast(line, 1) is not None for line in lines)


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


# --- the corpus, the benchmark, the examples ----------------------------------------


def test_every_corpus_record_alone_on_both_paths(fast: accel.TextAlert) -> None:
    for rec in records():
        assert_same(fast, str(rec["text"]).split("\n"))
    assert taken(fast, corpus_lines()) >= 50  # the C path really read most text alerts


def test_the_whole_corpus_as_one_stream_on_both_paths(fast: accel.TextAlert) -> None:
    lines = corpus_lines()
    items = assert_same(fast, lines)
    assert sum(isinstance(i, Alert) for i in items) >= 80
    doc = json.dumps({"output": "10:00:00.1: Notice x (pid=1)", "priority": "Notice"}, indent=2)
    assert_same(fast, lines[:40] + doc.split("\n") + lines[40:])


def test_corpus_scores_the_same_on_the_accelerated_path(fast: accel.TextAlert) -> None:
    from tests.parse.corpus import differences

    saved = accel.TEXT_ALERT
    accel.TEXT_ALERT = fast
    try:
        wrong = set()
        for rec in records():
            if not rec["expected"]["is_alert"]:
                continue
            alerts = [i for i in iter_parse(str(rec["text"]).split("\n")) if isinstance(i, Alert)]
            if not alerts or differences(rec, alerts[0]):
                wrong.add(rec["id"])
    finally:
        accel.TEXT_ALERT = saved
    assert (len(records()) - len(wrong)) / len(records()) >= 0.95
    assert wrong <= {"fc-015", "fc-017", "fc-059"}, wrong


def test_the_benchmark_log_on_both_paths(fast: accel.TextAlert, tmp_path: Path) -> None:
    bench = _bench()
    bench.generate(tmp_path / "all.log", tmp_path / "t.log", tmp_path / "j.log", 3000, seed=5)
    lines = (tmp_path / "all.log").read_text().split("\n")[:-1]
    items = assert_same(fast, lines)
    assert sum(isinstance(i, Alert) for i in items) == 2940
    text_alerts = [line for line in lines if not line.startswith("{") and ANCHOR.search(line)]
    assert taken(fast, text_alerts) == len(text_alerts)  # every benchmark text line in C


def test_the_examples_on_both_paths(fast: accel.TextAlert) -> None:
    lines: list[str] = []
    for example in sorted((REPO / "examples" / "alerts").glob("*")):
        if example.suffix in (".txt", ".log", ".jsonl", ".json"):
            lines.extend(example.read_text(errors="replace").split("\n"))
    assert lines
    assert_same(fast, lines)


# --- shapes one at a time ------------------------------------------------------------

SHAPES = [
    # pipe style, wrappers
    "2026-03-02T10:14:03.413551207+0000: Critical Executing binary | proc_exe=/tmp/x "
    "user=root command=sh -c a=b c container_id=3c1f0d9be2a4 k8s_ns_name=default",
    "falco_1  | 10:14:03.412758113: Warning Shell (user=root pid=1 container=web)",
    "Mar  2 10:14:03 node-1 falco[1187]: 10:14:03.412758113: Notice x (proc.pid=5 vpid=3)",
    "[pod/falco-7kq2m/falco] 2026-03-02T10:14:03.413551207Z 10:14:03.1: Error a (pid=-0)",
    # paren with appended -pk / -pc, gVisor's pid/tid
    "10:14:03.1: Critical A shell (user=root shell=sh) k8s.ns=default k8s.pod=p container=web",
    "10:14:03.1: Critical A shell (user=root shell=sh) container=f6d77af4ee3d pid=8 tid=8",
    "10:14:03.1: Critical A shell (user=root proc.pid=4 shell=sh) container=x pid=0 tid=8",
    "10:14:03.1: Critical A shell (user=root vpid=0 shell=sh) container=x pid=9 tid=8",
    # container info, keyless and glued
    "10:14:03.1: Notice Shell (web (id=3c1f0d9be2a4) user=root)",
    "10:14:03.1: Notice Shell (user=root proc.cmdline=sh -c id web (id=3c1f0d9be2a4))",
    "10:14:03.1: Notice Shell (user=root oldpath=<NA> host (id=host))",
    "10:14:03.1: Notice S (container=" + "a" * 64 + " container.full_id=" + "b" * 64 + ")",
    "10:14:03.1: Notice S (container.full_id=" + "c" * 64 + ")",
    "10:14:03.1: Notice S (container=nginx (id=3c1f0d9be2a4))",
    "10:14:03.1: Notice S (%container.info=nginx (id=host) x=1)",
    # nested keys, free text values, comma style
    "10:14:03.1: Notice S (container=k8s.ns=x k8s.pod=y container=3c1f0d9be2a4)",
    "08:30:00.123 - Critical - Suspicious crypto miner (name=xmrig, cmdline=/tmp/x -o a:1, pid=1)",
    "08:30:00.123 - Critical - S (name=xmrig, cmdline=a b=c d, pid=1)",
    "10:14:03.1: Notice S (cmdline=mount -o size=390 tmpfs TERM=xterm user=root)",
    "10:14:03.1: Notice S (cmdline=a --allowed-types=rulesfile a.b=c)",
    # k8s audit, connections, files
    "10:14:03.1: Warning K8s (user=alice verb=create resource=pods/exec command=id)",
    "10:14:03.1: Warning K8s (ka.user.name=bob ka.target.resource=pods ka.target.name=p)",
    "10:14:03.1: Warning K8s (ka.user.name=bob ka.target.resource=deployments user=x)",
    "10:14:03.1: Notice Net (connection=10.0.0.1:80->10.0.0.2:443 fd.rip=10.0.0.2 fd.rport=443)",
    "10:14:03.1: Notice Net (fd.name=[::1]:80->[::2]:x fd.rip.name=host)",
    "10:14:03.1: Notice Net (fd.rport=abc)",
    "10:14:03.1: Notice Net (fd.rport=12 fd.sip.name=s)",
    "10:14:03.1: Notice F (file=/etc/shadow fd.name=/etc/passwd)",
    # absent values, duplicates, truncation by a pager
    "10:14:03.1: Notice S (user=<NA> user=root pid= pid=4 ppid=<NA> ppid=2)",
    "10:14:03.1: Notice S (user=root command=ls -l>",
    "10:14:03.1: Notice S | user=root command=ls ->",
    "10:14:03.1: Notice S | user=root command=<NA>",
    "10:14:03.1: Notice S user=root command=ls <b>",
    "10:14:03.1: Notice Falco internal: syscall event drop. 1 system calls dropped",
    "10:14:03.1: Notice",
    "10:14:03.1: Informational message only",
    "10:14:03.1:  Info  two spaces (a=1)",
    "2026-03-02T10:14:03.1234567890+0000: Debug ten digits (a=1)",
    "10:14:03.1111111111: Notice ten digits (a=1)",
    "2026-03-02T10:14:03.123Z: Debug zulu (a[1]=x a[=y a]=z)",
    "2026-03-02T10:14:03.123+01: Debug bad zone (a=1)",
    "x 1 10:14:03.1 - Alert - walk (pid=99999999999999999999 ppid=-12)",
    "10:14:03.1: Emergency (=) (a==b) (  ) ((id=x) x=(",
]


@pytest.mark.parametrize("line", SHAPES)
def test_each_shape_on_both_paths(fast: accel.TextAlert, line: str) -> None:
    assert_same(fast, [line])
    assert_line_agrees(fast, line)


BOUNDARIES = [
    *(f"08:30:00.123 - Notice - S (name=a, {'k' * n}=v, pid=1)" for n in range(59, 64)),
    *(f"08:30:00.123 - Notice - S (name=a, k{' ' * n}x=v, pid=1)" for n in range(58, 62)),
    *(f"10:14:03.1: Notice S ({'k' * n}=v)" for n in range(59, 64)),
    *(f"10:14:03.1: Notice S (k{'-' * n}=v) x=1" for n in range(58, 62)),
    *(f"10:14:03.{'1' * n}: Notice S (a=1)" for n in range(8, 10)),
    *(f"10:14:03.1: Notice S (container={'a' * n})" for n in (11, 12, 13, 63, 64, 65)),
    *(f"10:14:03.1: Notice S (x=1 n (id={'b' * n}))" for n in (11, 12, 13, 63, 64, 65)),
    *(f"10:14:03.1: Notice S (pid={'9' * n} ppid=-{'1' * n})" for n in (18, 19, 20)),
]


@pytest.mark.parametrize("line", BOUNDARIES)
def test_length_limits_on_both_paths(fast: accel.TextAlert, line: str) -> None:
    assert fast(line, 1) is not None
    assert_line_agrees(fast, line)


def test_most_shapes_are_taken_by_the_c_path(fast: accel.TextAlert) -> None:
    assert taken(fast, SHAPES) >= len(SHAPES) - 3


# --- what the C path declines ----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "10:14:03.1: Notice tab\t(a=1)",
        "10:14:03.1: Notice nonascii é (a=1)",
        "10:14:03.1: Notice brace { (a=1)",
        "10:14:03.1: Notice nul \x00 (a=1)",
        "10:14:03.1: Notice surrogate \ud800 (a=1)",
        "no anchor at all (a=1)",
        "",
        "10:14:03.1: Notice long (a=" + "x" * 20_000 + ")",
        "10:14:03.1: Notice many (" + " ".join(f"k{i}=v" for i in range(400)) + ")",
        "10:14:03.1: Notice many, " + ", ".join(f"k{i}=v" for i in range(400)),
    ],
)
def test_declined_lines_fall_back_to_the_pure_path(fast: accel.TextAlert, line: str) -> None:
    assert fast(line, 1) is None
    assert_same(fast, [line])


def test_wrong_argument_types_are_declined_or_refused(fast: accel.TextAlert) -> None:
    class Sub(str):
        pass

    assert fast(Sub("10:14:03.1: Notice x (a=1)"), 1) is None
    assert fast(b"10:14:03.1: Notice x (a=1)", 1) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast("10:14:03.1: Notice x (a=1)")  # type: ignore[call-arg]


def test_many_distinct_field_names_keep_results_exact(fast: accel.TextAlert) -> None:
    # More names than the C key cache holds: it starts afresh, results stay equal.
    lines = [
        f"10:14:03.1: Notice S (user=u{i} name_{i}=v{i} pid={i} k.{i}=x container=c{i})"
        for i in range(6000)
    ]
    items = assert_same(fast, lines)
    assert all(isinstance(i, Alert) for i in items)
    assert taken(fast, lines[:50]) == 50


def test_pure_parser_env_var_selects_the_pure_path() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), FALCOIR_PURE_PARSER="1")
    code = "from falcoir.core.parse import accel; print(accel.active())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "pure", out.stderr


def test_a_stale_build_is_not_used(tmp_path: Path) -> None:
    class Old:
        VERSION = accel.EXPECTED_VERSION - 1

    assert accel.configure(Old()) is None  # type: ignore[arg-type]
    built = tmp_path / "_speedups.cpython-311-x86_64-linux-gnu.so"
    built.write_bytes(b"")
    assert not accel._stale(str(built))  # no C source next to it
    source = tmp_path / "_speedups.c"
    source.write_text("/* newer */")
    os.utime(built, (1_000_000, 1_000_000))
    assert accel._stale(str(built))  # the source changed since the build
    os.utime(built, (4_000_000_000, 4_000_000_000))
    assert not accel._stale(str(built))
    os.utime(source, (2_000_000_000, 2_000_000_000))
    os.utime(built, (2_000_000_000 - 2, 2_000_000_000 - 2))
    assert not accel._stale(str(built))  # unpacked from a wheel a moment apart
    assert not accel._stale(None)


def _sources(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A fake package directory: a built module and every mirrored source, all old."""
    pkg = tmp_path / "falcoir" / "core" / "parse"
    pkg.mkdir(parents=True)
    built = pkg / "_speedups.cpython-311-x86_64-linux-gnu.so"
    built.write_bytes(b"")
    sources = [pkg / name for name in accel.MIRRORED]
    for path in [built, *sources]:
        path.write_text("")
        os.utime(path, (1_000_000_000, 1_000_000_000))
    return built, sources


@pytest.mark.parametrize("name", accel.MIRRORED)
def test_a_build_older_than_a_mirrored_source_is_stale(tmp_path: Path, name: str) -> None:
    built, sources = _sources(tmp_path)
    assert not accel._stale(str(built))
    (source,) = [s for s in sources if s.name == os.path.basename(name)]
    os.utime(source, (1_000_000_002, 1_000_000_002))
    assert not accel._stale(str(built))  # within a wheel's unpacking time
    os.utime(source, (1_000_000_060, 1_000_000_060))
    assert accel._stale(str(built))
    os.utime(built, (1_000_000_100, 1_000_000_100))
    assert not accel._stale(str(built))  # rebuilt since


def test_missing_mirrored_sources_do_not_make_a_build_stale(tmp_path: Path) -> None:
    built, sources = _sources(tmp_path)
    for source in sources:
        source.unlink()  # a wheel may ship the module alone
    assert not accel._stale(str(built))
    os.utime(built, (0, 0))
    assert not accel._stale(str(built))


def test_mirrored_sources_are_the_files_the_c_code_names() -> None:
    here = Path(accel.__file__).parent
    for name in accel.MIRRORED:
        assert (here / name).is_file(), name  # renamed or moved: update MIRRORED
    c_source = (here / "_speedups.c").read_text()
    named = set(re.findall(r"\b(\w+)\.py\b", c_source))
    named |= set(re.findall(r"falcoir\.core\.parse\.(\w+)\.\w", c_source))
    named -= {"accel", "_speedups"}  # the loader, and the module itself
    assert named, "the C source names the Python files it mirrors"
    basenames = {os.path.basename(name).removesuffix(".py") for name in accel.MIRRORED}
    assert named <= basenames


def test_the_stale_check_costs_microseconds(tmp_path: Path) -> None:
    built = _sources(tmp_path)[0]  # every source there: each one is looked at
    calls = 200
    started = time.process_time()
    for _ in range(calls):
        assert not accel._stale(str(built))
    per_call = (time.process_time() - started) / calls
    assert per_call < 0.0005, per_call  # about 10 us; it runs at every `falcoir parse`


def test_setup_py_rebuilds_after_an_edit_to_a_mirrored_source(tmp_path: Path) -> None:
    import runpy

    depends = runpy.run_path(str(REPO / "setup.py"), run_name="setup")["mirrored"]()
    here = Path(accel.__file__).parent
    assert [REPO / d for d in depends] == [(here / n).resolve() for n in accel.MIRRORED]
    cc = str(sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip("no C compiler")
    # A copy of what the build reads, so the checkout's own files keep their times.
    shutil.copy(REPO / "setup.py", tmp_path)
    for dep in depends:
        (tmp_path / dep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / dep, tmp_path / dep)
        os.utime(tmp_path / dep, (1_000_000_000, 1_000_000_000))
    shutil.copy(REPO / "falcoir/core/parse/accel.py", tmp_path / "falcoir/core/parse")

    def build() -> Path:
        out = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        (built,) = (tmp_path / "falcoir/core/parse").glob("_speedups*.so")
        return built

    built = build()
    assert not accel._stale(str(built))
    os.utime(built, (1_500_000_000, 1_500_000_000))
    edited = tmp_path / "falcoir/core/parse/pairs.py"
    os.utime(edited, (1_600_000_000, 1_600_000_000))
    assert accel._stale(str(built))
    assert not accel._stale(str(build()))  # compiled anew, not skipped as up to date


# --- generated lines ---------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "10:14:03.412758113: Critical ",
        "2026-03-02T10:14:03.412758113+0000: Warning ",
        "2026-03-02T10:14:03.4Z: Info ",
        "08:30:00.123 - Notice - ",
        "falco_1  | ",
        "Mar  2 10:14:03 node-1 falco[1187]: ",
        "[pod/falco-7kq2m/falco] ",
        "falco-7kq2m falco ",
        "Shell in container",
        "Falco internal: ",
        " | ",
        " (",
        "(",
        ")",
        "=",
        ",",
        ", ",
        " ",
        "  ",
        "-",
        ".",
        "[",
        "]",
        "%",
        " k8s.ns=",
        " pid=",
        " tid=",
        " vpid=",
        " proc.pid=",
        " proc_pid=",
        " command=",
        " cmdline=",
        " container=",
        " container_id=",
        " container.full_id=",
        " %container.info=",
        " user=",
        " ka.user.name=",
        " ka.target.resource=pods",
        " ka.target.name=",
        " resource=",
        " verb=",
        " fd.name=",
        " fd.rip=",
        " fd.rport=",
        " fd.sip.name=",
        " file=",
        " connection=",
        " a[1]=",
        " TERM=",
        " --opt=",
        "->",
        ":",
        "<NA>",
        "<b>",
        ">",
        " (id=3c1f0d9be2a4)",
        " (id=host)",
        "3c1f0d9be2a4",
        "host",
        "a" * 64,
        "12345",
        "-7",
        "0",
        "10.0.0.1:80->10.0.0.2:443",
        "{",
        "\t",
        "é",
    ]
)
LINES = st.lists(
    st.lists(st.one_of(FRAGMENTS, st.text(alphabet=string.printable, max_size=6)), max_size=30)
    .map("".join)
    .map(lambda s: s.replace("\n", " ")),
    max_size=6,
)


@SETTINGS
@given(LINES)
def test_generated_lines_agree_on_both_paths(fast: accel.TextAlert, lines: list[str]) -> None:
    assert_same(fast, lines)
    for i, line in enumerate(lines):
        assert_line_agrees(fast, line, i)


@SETTINGS
@given(st.lists(st.text(max_size=80), max_size=6))
def test_arbitrary_lines_agree_on_both_paths(fast: accel.TextAlert, lines: list[str]) -> None:
    assert_same(fast, lines)


@SETTINGS
@given(
    st.sampled_from(["10:14:03.1: Notice ", "08:30:00.123 - Critical - "]),
    st.text(alphabet=string.printable.replace("{", ""), max_size=120),
)
def test_anchored_printable_text_agrees(fast: accel.TextAlert, anchor: str, body: str) -> None:
    line = (anchor + body).replace("\n", " ")
    assert_line_agrees(fast, line)
    assert_same(fast, [line])


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(fast: accel.TextAlert, data: bytes) -> None:
    for text in (data.decode("latin-1"), data.decode("utf-8", "surrogateescape")):
        assert_line_agrees(fast, "10:14:03.1: Notice " + text)
        assert_line_agrees(fast, text)


def test_random_benchmark_like_lines_agree(fast: accel.TextAlert) -> None:
    bench = _bench()
    rng = random.Random(3)
    lines = [bench.text_line(rng) for _ in range(3000)]
    assert taken(fast, lines) == len(lines)
    for i, line in enumerate(lines):
        assert_line_agrees(fast, line, i)


# --- wrappers in front of the alert ----------------------------------------------------

WRAPPER_PARTS = st.sampled_from(
    [
        "[pod/",
        "falco-7kq2m",
        "/",
        "falco",
        "]",
        " ",
        "  ",
        "<",
        ">",
        "13",
        "1234",
        "2026-03-02T10:14:03",
        ".413551207",
        ".",
        "Z",
        "+00:00",
        "-0100",
        "Mar  2 10:14:03",
        "Mar 12 10:14:03",
        "mar 12 10:14:03",
        "node-1",
        "falco[1187]",
        "[]",
        "[x]",
        ": ",
        ":",
        "| ",
        " | ",
        "falco_1",
        "a.b-c",
        "-x",
        "^C",
    ]
)


@SETTINGS
@given(st.lists(WRAPPER_PARTS, max_size=16).map("".join))
def test_wrapper_matches_the_pure_one(speedups: ModuleType, prefix: str) -> None:
    assert speedups.wrapper(prefix) == _wrapper_of(prefix)


@SETTINGS
@given(st.text(alphabet=string.printable, max_size=60))
def test_wrapper_of_printable_text_matches_the_pure_one(speedups: ModuleType, prefix: str) -> None:
    got = speedups.wrapper(prefix)
    if any(c in prefix for c in "\t\n\r\x0b\x0c"):
        assert got is None  # not printable: declined
    else:
        assert got == _wrapper_of(prefix)


def _bits(alphabet: str, max_size: int = 5) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, max_size=max_size)


DIG = _bits(string.digits, 5)
TOK = _bits(string.ascii_letters + string.digits + "._-[]/:<>|", 6)
SEP = st.sampled_from([" ", "  ", "", "|", ": ", ":"])
ISO = st.builds(
    lambda d, t, f, z: f"{d}T{t}{f}{z}",
    st.sampled_from(["2026-03-02", "2026-3-02", "20260-03-02"]),
    st.sampled_from(["10:14:03", "10:14:3", "10:14:033"]),
    st.sampled_from(["", ".", ".4", ".413551207"]),
    st.sampled_from(["", "Z", "+00:00", "-01:30", "+0000", "+00:0"]),
)
ONE_WRAPPER = st.one_of(
    st.builds(lambda a, b, sep: f"[pod/{a}/{b}]{sep}", TOK, TOK, SEP),
    st.builds(lambda p, ts, h, t, sep: f"<{p}>{ts} {h} {t}{sep}", DIG, ISO | TOK, TOK, TOK, SEP),
    st.builds(
        lambda m, d, h, t, pid, sep: f"{m} {d} 10:14:03 {h} {t}{pid}{sep}",
        st.sampled_from(["Mar", "mar", "MAR", "Ma"]),
        st.sampled_from([" 2", "12", "2", "123", "x2"]),
        TOK,
        TOK,
        st.sampled_from(["", "[1187]", "[]", "[x]", "["]),
        SEP,
    ),
    st.builds(
        lambda ts, h, t, pid, sep: f"{ts} {h} {t}{pid}{sep}",
        ISO,
        TOK,
        TOK,
        st.sampled_from(["", "[1187]", "[]"]),
        SEP,
    ),
    st.builds(lambda ts, sep: f"{ts}{sep}", ISO, SEP),
    st.builds(lambda svc, sp, sep: f"{svc}{sp}{sep}", TOK, _bits(" ", 3), SEP),
    st.builds(lambda a, b, sep: f"{a} {b}{sep}", TOK, TOK, SEP),
)


@SETTINGS
@given(st.lists(ONE_WRAPPER, min_size=1, max_size=4).map("".join), _bits(string.printable, 4))
def test_generated_wrappers_match_the_pure_one(
    speedups: ModuleType, prefix: str, tail: str
) -> None:
    for text in (prefix, prefix + tail):
        if not any(c in text for c in "\t\n\r\x0b\x0c"):
            assert speedups.wrapper(text) == _wrapper_of(text)


@pytest.mark.parametrize(
    "prefix",
    [
        *(f"<{'1' * n}>2026-03-02T10:14:03Z node-1 falco " for n in range(0, 5)),
        "[pod//b] ",
        "[pod/a/] ",
        "[pod/a/b]",
        "[pod/a/b]x",
        "[pod/a b/c] ",
        "Mar  2 10:14:03 node-1 falco[1187]: ",
        "Mar  2 10:14:03 node-1 falco[]: ",
        "Mar  2 10:14:03 node-1 falco[1]:",
        "Mar  2 10:14:03  node-1 falco: ",
        "2026-03-02T10:14:03.413001+00:00 node-1 falco: ",
        "2026-03-02T10:14:03.+00:00 node-1 falco: ",
        "2026-03-02T10:14:03.4Z ",
        "2026-03-02T10:14:03Z ",
        "2026-03-02T10:14:03.4Z",
        "falco_1  | ",
        "falco_1 |",
        "falco-7kq2m falco ",
        "Falco-7kq2m falco ",
        "falco-7kq2m fal.co ",
        "a b c d e f g h ",
    ],
)
def test_wrapper_boundaries(speedups: ModuleType, prefix: str) -> None:
    assert speedups.wrapper(prefix) == _wrapper_of(prefix)


def test_wrappers_with_a_new_time_on_every_line(fast: accel.TextAlert) -> None:
    lines = []
    for i in range(300):
        ts = f"2026-03-02T10:{i % 60:02d}:{i % 60:02d}.{i:09d}"
        lines += [
            f"{ts}Z 10:14:03.{i}: Notice S (pid={i})",
            f"[pod/falco-{i}/falco] {ts}Z 10:14:03.1: Notice S (pid={i})",
            f"{ts}+00:00 node-{i} falco[{i}]: 10:14:03.1: Notice S (pid={i})",
            f"<{i % 200}>{ts}Z node-{i} falco 10:14:03.1: Notice S (pid={i})",
            f"Mar {i % 31:2d} 10:14:{i % 60:02d} node-1 falco: 10:14:03.1: Notice S (pid={i})",
        ]
    items = assert_same(fast, lines)
    assert taken(fast, lines) == len(lines)
    kinds = {dict(i.wrapper)["kind"] for i in items if isinstance(i, Alert)}
    assert kinds == {"kubectl-timestamps", "kubectl-prefix+kubectl-timestamps", "syslog"}


def test_importing_the_package_again_falls_back_instead_of_failing() -> None:
    # The extension keeps its first configuration; a second import (a reload, or the
    # package's modules dropped from sys.modules) must fall back to the pure path.
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import importlib, sys\n"
        "import falcoir.core.parse.accel as a\n"
        "importlib.reload(a)\n"
        "for m in [m for m in sys.modules if m.startswith('falcoir')]:\n"
        "    del sys.modules[m]\n"
        "from falcoir.core.parse import iter_parse\n"
        "line = '08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, pid=1)'\n"
        "print(next(iter(iter_parse([line]))).process.name)\n"
    )
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60,
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "xmrig"
