"""falcoir.cli.coerce gives exactly what typer's own (pydantic) coercion gives.

Three levels:

- one value: the fast conversion and typer's on many values of every annotation kind
  (hand-picked edge cases and hypothesis-generated strings): the same result, of the
  same type, or the same error;
- one command line: for every command of the application, argv samples built from the
  command's own parameters (each option with good and bad values, flags, repeated
  options, environment variables, random combinations) parsed by the command built
  with the fast coercion and by the command built with typer's: the same keyword
  arguments (what the command function would receive, defaults included) or the same
  error message and exit code; for bad input, the whole run's output too;
- the process: ``python -m falcoir`` with and without ``FALCOIR_TYPER_COERCION=typer``
  prints the same errors, and the fast one never imports pydantic.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer import _coercion
from typer import core as typer_core
from typer._click.exceptions import ClickException
from typer.main import _normalize_collection_value, get_command
from typer.testing import CliRunner

from falcoir.cli import coerce
from falcoir.cli.app import full_app

ROOT = Path(__file__).resolve().parents[2]
ALERT = (
    "17:02:06.572 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=623)"
)

pytestmark = pytest.mark.skipif(
    coerce.typer_version() not in coerce.SUPPORTED_TYPER,
    reason="typer version without the replaced coercion: nothing to compare",
)


@pytest.fixture(autouse=True)
def _fast_installed() -> Iterator[None]:
    assert coerce.install()
    yield
    coerce.install()


def _original() -> Any:
    return _coercion.build_runtime_param


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        value = fn()
    except ClickException as exc:
        return ("error", (type(exc).__name__, exc.format_message(), exc.exit_code))
    return ("ok", (type(value).__name__, _plain(value)))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [(type(v).__name__, _plain(v)) for v in value])
    if isinstance(value, float) and value != value:
        return "nan"
    return value


# -- one value -------------------------------------------------------------------------


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"
    MIXED = "Mixed"


def _sample_command() -> Any:
    """A command with one parameter of every annotation kind the fast coercion takes,
    and some it must leave to typer."""
    app = typer.Typer(add_completion=False)

    @app.command()
    def sample(
        text: Annotated[str, typer.Option()] = "x",
        opt_text: Annotated[str | None, typer.Option()] = None,
        count: Annotated[int, typer.Option()] = 1,
        ranged: Annotated[int, typer.Option(min=1, max=64)] = 4,
        low: Annotated[int | None, typer.Option(min=1)] = None,
        real: Annotated[float, typer.Option()] = 1.5,
        bounded: Annotated[float, typer.Option(min=1, max=600)] = 30.0,
        colour: Annotated[Colour, typer.Option()] = Colour.RED,
        loose: Annotated[Colour, typer.Option(case_sensitive=False)] = Colour.RED,
        lit: Annotated[Literal["a", "b"], typer.Option()] = "a",
        path: Annotated[Path, typer.Option()] = Path("out"),
        opt_path: Annotated[Path | None, typer.Option()] = None,
        must_exist: Annotated[Path | None, typer.Option(exists=True)] = None,
        no_dir: Annotated[Path | None, typer.Option(dir_okay=False)] = None,
        many: Annotated[list[str] | None, typer.Option()] = None,
        numbers: Annotated[list[int] | None, typer.Option()] = None,
        flag: Annotated[bool, typer.Option()] = False,
        clamped: Annotated[int, typer.Option(min=0, max=5, clamp=True)] = 0,
        parsed: Annotated[int, typer.Option(parser=lambda s: len(str(s)))] = 0,
    ) -> None:
        pass

    return get_command(app)


SAMPLE = _sample_command()
PARAMS = {p.name: p for p in SAMPLE.params}

EDGE_STRINGS = [
    "",
    " ",
    "0",
    "1",
    "4",
    "64",
    "65",
    "-1",
    "+5",
    "007",
    " 5",
    "5 ",
    "1_000",
    "5.0",
    "5.5",
    "1.",
    ".5",
    "1e3",
    "1E-2",
    "inf",
    "-inf",
    "nan",
    "0x10",
    "٣",
    "9" * 20,
    "9" * 5000,
    "1" * 400 + ".5",
    "red",
    "RED",
    "Red",
    "green",
    "mixed",
    "Mixed",
    "MIXED",
    "blue",
    "a",
    "b",
    "A",
    "-",
    ".",
    "~",
    "/",
    "/tmp",
    "/etc/hostname",
    "/nonexistent/x",
    "a//b/",
    "x\x00y",
    "\udcff",
    "ns/pod",
    "--x",
]
EDGE_VALUES: list[Any] = [
    *EDGE_STRINGS,
    0,
    1,
    64,
    65,
    -3,
    True,
    False,
    1.0,
    2.5,
    float("nan"),
    float("inf"),
    2**60,
    b"bytes",
    Path("p"),
    Path("/tmp"),
    Colour.GREEN,
    ("a", "b"),
    ["1", "2"],
    ("1", "x"),
    [],
    (),
    None,
]


def _compare(name: str, value: Any) -> None:
    param = PARAMS[name]
    ctx = SAMPLE.make_context("sample", [])
    fast = coerce.fast_runtime_param(param.type_descriptor, _original())
    slow = _original()(param.type_descriptor)
    if fast is None:
        pytest.skip(f"{name}: left to typer")
    expected = _outcome(lambda: slow.coerce(value, param=param, ctx=ctx))
    got = _outcome(lambda: fast.coerce(value, param=param, ctx=ctx))
    assert got == expected, (name, value)


FAST_PARAMS = [
    "text",
    "opt_text",
    "count",
    "ranged",
    "low",
    "real",
    "bounded",
    "colour",
    "loose",
    "lit",
    "path",
    "opt_path",
    "must_exist",
    "no_dir",
    "many",
    "numbers",
    "flag",
]


def test_which_parameters_are_fast() -> None:
    fast = {
        name
        for name, p in PARAMS.items()
        if coerce.fast_runtime_param(p.type_descriptor, _original()) is not None
    }
    assert fast == set(FAST_PARAMS)  # clamp and parser stay with typer


@pytest.mark.parametrize("name", FAST_PARAMS)
def test_edge_values_same_as_typer(name: str) -> None:
    for value in EDGE_VALUES:
        _compare(name, value)


NUMBERISH = st.one_of(
    st.from_regex(r"[+-]?[0-9]{1,22}", fullmatch=True),
    st.from_regex(r"[+-]?[0-9]{0,12}\.?[0-9]{0,12}", fullmatch=True),
    st.from_regex(r" ?[+-]?[0-9_]{1,6}(e[+-]?[0-9]{1,3})? ?", fullmatch=True),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(value=NUMBERISH)
def test_numbers_same_as_typer(value: str) -> None:
    for name in ("count", "ranged", "low", "real", "bounded", "numbers"):
        _compare(name, [value] if name == "numbers" else value)


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=20))
def test_text_paths_and_choices_same_as_typer(value: str) -> None:
    for name in ("text", "colour", "loose", "lit", "path", "no_dir", "many"):
        _compare(name, [value, value] if name == "many" else value)


def test_no_pydantic_adapter_for_good_values() -> None:
    """Good values never build typer's coercion (that is where pydantic comes in)."""
    ctx = SAMPLE.make_context("sample", [])
    for name, value in [
        ("ranged", "8"),
        ("bounded", "2.5"),
        ("colour", "green"),
        ("path", "/tmp"),
        ("many", ("a", "b")),
        ("text", "x"),
    ]:
        param = PARAMS[name]
        fast = coerce.fast_runtime_param(param.type_descriptor, _original())
        assert fast is not None
        fast.coerce(value, param=param, ctx=ctx)
        assert fast._slow == [], name  # type: ignore[attr-defined]
    bad = coerce.fast_runtime_param(PARAMS["ranged"].type_descriptor, _original())
    assert bad is not None
    with pytest.raises(ClickException):
        bad.coerce("0", param=PARAMS["ranged"], ctx=ctx)
    assert len(bad._slow) == 1  # type: ignore[attr-defined]


# -- the guard -------------------------------------------------------------------------


def test_switch_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    coerce.uninstall()
    monkeypatch.setenv(coerce.ENV_SWITCH, "typer")
    assert coerce.install() is False
    assert typer_core.build_runtime_param is _coercion.build_runtime_param
    assert not coerce.installed()


def test_unknown_typer_version_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    coerce.uninstall()
    monkeypatch.setattr(typer, "__version__", "0.30.0")
    assert coerce.install() is False
    assert typer_core.build_runtime_param is _coercion.build_runtime_param


def test_unexpected_internals_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    coerce.uninstall()
    monkeypatch.setattr(typer_core, "build_runtime_param", lambda d: None)
    assert coerce.install() is False


def test_install_is_idempotent_and_reversible() -> None:
    assert coerce.install() and coerce.install()
    assert coerce.installed()
    coerce.uninstall()
    assert typer_core.build_runtime_param is _coercion.build_runtime_param
    assert coerce.install()


# -- one command line ------------------------------------------------------------------


def _commands() -> list[tuple[str, Any]]:
    """(path, click command) of every command of the application."""
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, cmd: Any) -> None:
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, child in sorted(sub.items()):
                walk(f"{prefix} {name}".strip(), child)
        else:
            found.append((prefix, cmd))

    walk("", get_command(full_app()))
    return found


def _build(fast: bool) -> dict[str, Any]:
    if fast:
        coerce.install()
    else:
        coerce.uninstall()
    try:
        commands = dict(_commands())
        # Each parameter builds its coercion on first use, with whatever is installed
        # then: build them now, in the mode asked for.
        for cmd in commands.values():
            for param in cmd.params:
                if hasattr(param, "get_runtime_param"):
                    param.get_runtime_param()
        return commands
    finally:
        coerce.install()


COMMANDS_FAST = _build(True)
COMMANDS_SLOW = _build(False)
COMMAND_NAMES = sorted(COMMANDS_FAST)


def test_the_two_builds_differ() -> None:
    fast_kinds = {
        type(p.get_runtime_param()).__name__
        for c in COMMANDS_FAST.values()
        for p in c.params
        if hasattr(p, "get_runtime_param")
    }
    slow_kinds = {
        type(p.get_runtime_param()).__name__
        for c in COMMANDS_SLOW.values()
        for p in c.params
        if hasattr(p, "get_runtime_param")
    }
    assert "FastRuntimeParam" in fast_kinds
    assert "FastRuntimeParam" not in slow_kinds
    assert "AdapterRuntimeParam" in slow_kinds


def _annotation(param: Any) -> Any:
    return param.type_descriptor.annotation


def _samples_for(param: Any) -> list[str]:
    ann = _annotation(param)
    inner = ann.__args__[0] if getattr(ann, "__origin__", None) is list else ann
    if isinstance(inner, type) and issubclass(inner, Enum):
        values = [str(m.value) for m in inner]
        return [*values, values[0].upper(), "bogus", ""]
    if inner is int:
        return ["1", "5", "64", "0", "-3", "65", "abc", "1_000", "5.0", "", "99999999999"]
    if inner is float:
        return ["1", "2.5", "30", "0.5", "600", "601", "abc", "inf", "1e3", "nan", ""]
    if inner is Path:
        return ["/tmp", "rel/dir", "-", "", "/nonexistent/x", "/etc/hostname"]
    return ["x", "ns/pod", "", "-", "a b", "--", "10.0.0.0/8", "\x1b[31m"]


def _argvs(cmd: Any, seed: int) -> list[list[str]]:
    """Command lines for ``cmd`` from its own parameters."""
    rng = random.Random(seed)
    argvs: list[list[str]] = [[]]
    options = [p for p in cmd.params if p.param_type_name == "option" and p.expose_value]
    arguments = [p for p in cmd.params if p.param_type_name == "argument"]
    pieces: list[list[str]] = []
    for p in options:
        if getattr(p, "is_flag", False):
            pieces.extend([[p.opts[0]], *([[s] for s in p.secondary_opts])])
            continue
        for value in _samples_for(p):
            opt = rng.choice(p.opts)
            if opt.startswith("--") and rng.random() < 0.3:
                pieces.append([f"{opt}={value}"])
            else:
                pieces.append([opt, value])
        if getattr(p, "multiple", False):
            pieces.append([p.opts[0], "10.0.0.0/8", p.opts[0], "192.168.0.0/16"])
    for a in arguments:
        pieces.extend([[ALERT], ["just some text"]])
        if _annotation(a) is Path:
            pieces.append(["/tmp"])
    argvs.extend(pieces)
    for _ in range(40):
        k = rng.randint(2, 5)
        argv: list[str] = []
        for piece in rng.sample(pieces, min(k, len(pieces))):
            argv.extend(piece)
        argvs.append(argv)
    # Oddities click itself handles: a missing value, an unknown option, a stray value.
    if options:
        last = options[-1]
        if not getattr(last, "is_flag", False):
            argvs.append([last.opts[0]])
    argvs.extend([["--no-such-option"], ["a", "b", "c"], ["--", "-x"]])
    return argvs


def _parse(cmd: Any, name: str, argv: list[str]) -> tuple[str, Any]:
    try:
        ctx = cmd.make_context(name.split()[-1], list(argv))
    except ClickException as exc:
        return ("error", (type(exc).__name__, exc.format_message(), exc.exit_code))
    by_name = {p.name: p for p in cmd.params}
    kwargs = {k: _plain(_normalize_collection_value(by_name[k], v)) for k, v in ctx.params.items()}
    return ("ok", kwargs)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_parses_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    fast_cmd, slow_cmd = COMMANDS_FAST[name], COMMANDS_SLOW[name]
    argvs = _argvs(fast_cmd, seed=hash(name) & 0xFFFF)
    assert len(argvs) > 20
    outcomes = {"ok": 0, "error": 0}
    for argv in argvs:
        got = _parse(fast_cmd, name, argv)
        expected = _parse(slow_cmd, name, argv)
        assert got == expected, argv
        outcomes[got[0]] += 1
    if any(
        p.param_type_name == "option" and not getattr(p, "is_flag", False) for p in fast_cmd.params
    ):
        assert outcomes["ok"] and outcomes["error"], outcomes  # both kinds were tried


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_environment_variables_the_same(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_cmd, slow_cmd = COMMANDS_FAST[name], COMMANDS_SLOW[name]
    with_env = [p for p in fast_cmd.params if p.envvar]
    if not with_env:
        pytest.skip(f"{name}: no parameter reads an environment variable")
    for p in with_env:
        envvars = [p.envvar] if isinstance(p.envvar, str) else list(p.envvar)
        for value in [*_samples_for(p), "/a/b:/c/d"]:
            for var in envvars:
                monkeypatch.setenv(var, value)
            for argv in ([], [p.opts[0], "/given"]):
                assert _parse(fast_cmd, name, argv) == _parse(slow_cmd, name, argv)
            for var in envvars:
                monkeypatch.delenv(var)


def _invoke(fast: bool, argv: list[str]) -> tuple[int, str, str]:
    if not fast:
        coerce.uninstall()
    try:
        result = CliRunner().invoke(full_app(), argv, prog_name="falcoir")
    finally:
        coerce.install()
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_bad_input_same_output_and_exit_code(name: str) -> None:
    """Whole runs, for the command lines that fail while parsing (so nothing runs)."""
    cmd = COMMANDS_FAST[name]
    if not any(p.param_type_name == "option" and p.expose_value for p in cmd.params):
        pytest.skip(f"{name}: reads its own arguments (no typer parameters to coerce)")
    tried = 0
    for argv in _argvs(cmd, seed=7):
        if _parse(cmd, name, argv)[0] != "error":
            continue
        full = [*name.split(), *argv]
        assert _invoke(True, full) == _invoke(False, full), full
        tried += 1
    assert tried >= 2


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help_the_same(name: str) -> None:
    fast = _invoke(True, [*name.split(), "--help"])
    assert fast == _invoke(False, [*name.split(), "--help"])
    assert fast[0] == 0 and "Usage:" in fast[1]


# -- the process -----------------------------------------------------------------------


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/nonexistent-home", **env}
    full_env.pop("KUBECONFIG", None)
    full_env.pop(coerce.ENV_SWITCH, None)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=60
    )


BAD_LINES = [
    ["respond", ALERT, "--concurrency", "0"],
    ["respond", ALERT, "--timeout", "abc"],
    ["respond", ALERT, "-o", "xml"],
    ["collect", ALERT, "--pid", "0"],
    ["collect", ALERT, "--timeout", "0.5"],
    ["locate", ALERT, "--output", "JSON5"],
    ["delete", "--pod", "a/b", "--grace-period", "x"],
]


@pytest.mark.parametrize("argv", BAD_LINES, ids=lambda a: " ".join(a[0:1] + a[2:]))
def test_process_errors_the_same(argv: list[str]) -> None:
    fast = _run(["-m", "falcoir", *argv])
    slow = _run(["-m", "falcoir", *argv], **{coerce.ENV_SWITCH: "typer"})
    assert fast.returncode == slow.returncode == 2
    assert fast.stderr == slow.stderr
    assert "Invalid value" in fast.stderr


GOOD_LINES = [
    ["respond", ALERT, "--yes", "-o", "json", "--concurrency", "8", "--timeout", "5"],
    ["collect", ALERT, "-o", "json", "--pid", "3", "--out", "/tmp/x"],
    ["locate", ALERT, "-o", "yaml", "-n", "default"],
    ["quarantine", ALERT, "--allow-cidr", "10.0.0.0/8", "--yes"],
    ["delete", "--pod", "ns/name", "--grace-period", "0", "--yes"],
    ["release", "--pod", "ns/name", "--yes"],
]


@pytest.mark.parametrize("argv", GOOD_LINES, ids=lambda a: a[0])
def test_hot_commands_do_not_import_pydantic(argv: list[str]) -> None:
    """Every option coerced (the missing kubeconfig stops the run after that, exit 2),
    and pydantic never imported."""
    proc = _run(["-X", "importtime", "-m", "falcoir", *argv, "--kubeconfig", "/nonexistent"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "kubeconfig /nonexistent not found" in proc.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "typer.main" in imported  # the listing is there
    assert not {m for m in imported if m.split(".")[0] in ("pydantic", "pydantic_core")}


def test_typer_coercion_still_available_by_switch() -> None:
    proc = _run(
        ["-X", "importtime", "-m", "falcoir", *GOOD_LINES[0], "--kubeconfig", "/nonexistent"],
        **{coerce.ENV_SWITCH: "typer"},
    )
    assert proc.returncode == 2
    assert "| pydantic\n" in proc.stderr or "| pydantic" in proc.stderr
