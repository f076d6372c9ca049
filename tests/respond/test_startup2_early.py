"""respond's early locate (started before the orchestrator is imported) and its
hand-over; the prefetch waiting for some modules only; --pod's own name checks."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from falcoir.core.clock import Clock
from falcoir.core.incident import IncidentStore
from falcoir.core.policy import ActionOptions
from falcoir.core.prefetch import Prefetch
from falcoir.core.respond import RespondRequest, respond
from falcoir.core.respond.early import EarlyLocate, after_first_connection, ahead_for
from falcoir.core.respond.graph import Step, run_graph
from falcoir.core.target import Target
from falcoir.errors import InputError, TargetNotFound

from .fake_backend import FakeBackend, make_alert, make_target


class _GatedBackend(FakeBackend):
    """locate writes two notes, finds the pod when ``found`` is set, then returns."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.found_gate = threading.Event()
        self.locates = 0

    def locate(
        self, alert: Any, progress: Any, ahead: object = None, on_found: Any = None
    ) -> Target:
        self.locates += 1
        self.ahead_seen = ahead
        progress("listing the Falco pods")
        progress("reading /proc/623 on node-1")
        self.found_gate.wait(5)
        if self.fail.get("locate"):
            raise self.fail["locate"]
        target = make_target()
        if on_found is not None:
            on_found(target)
        progress("owners: ReplicaSet x")
        return target


def test_notes_written_before_the_hand_over_are_replayed_in_order() -> None:
    backend = _GatedBackend()
    done = threading.Event()
    early = EarlyLocate(backend, make_alert(), None, on_done=done.set).start()
    time.sleep(0.05)  # the two first notes are written, nobody listens yet
    notes: list[str] = []
    found: list[Target] = []
    taken: list[Target] = []
    thread = threading.Thread(target=lambda: taken.append(early.take(notes.append, found.append)))
    thread.start()
    time.sleep(0.05)
    assert notes == ["listing the Falco pods", "reading /proc/623 on node-1"]
    assert found == [] and not done.is_set()
    backend.found_gate.set()
    thread.join(5)
    assert notes[-1] == "owners: ReplicaSet x" and len(notes) == 3
    assert found == [make_target()] and taken == [make_target()]
    assert done.wait(1)
    assert backend.locates == 1


def test_a_failed_early_locate_is_raised_by_the_step_that_takes_it() -> None:
    backend = _GatedBackend(fail={"locate": TargetNotFound("no such pod")})
    done = threading.Event()
    early = EarlyLocate(backend, make_alert(), None, on_done=done.set).start()
    backend.found_gate.set()
    assert done.wait(5)
    found: list[Target] = []
    with pytest.raises(TargetNotFound, match="no such pod"):
        early.take(lambda _t: None, found.append)
    assert found == []


def test_the_orchestrator_takes_the_running_locate(tmp_path: Path) -> None:
    backend = _GatedBackend()
    alert = make_alert()
    options = ActionOptions()
    ahead = ahead_for(frozenset({"quarantine"}), options, dry_run=False, asks=False)
    assert ahead is options
    early = EarlyLocate(backend, alert, ahead).start()
    assert early.started_mono is not None
    time.sleep(0.2)  # as if the rest of respond were being imported
    backend.found_gate.set()
    notes: list[tuple[str, str]] = []
    clock = Clock.now()
    result = respond(
        early.backend(),
        RespondRequest(alert=alert, out_dir=tmp_path / "out", actions=frozenset({"quarantine"})),
        store=IncidentStore(tmp_path / "home"),
        clock=clock,
        confirm=None,
        notes=lambda step, text: notes.append((step, text)),
        locate_started=early.started_mono,
        grace_s=2.0,
    )
    assert result.exit_code == 0, result.to_dict()
    assert backend.locates == 1  # not located twice
    assert backend.ahead_seen is options
    assert [t for s, t in notes if s == "locate"][:2] == [
        "listing the Falco pods",
        "reading /proc/623 on node-1",
    ]
    rec = result.records["locate"]
    # its record starts when locate did, not when the graph got to it
    assert rec.started_s == pytest.approx(clock.elapsed(early.started_mono), abs=0.005)
    assert rec.duration_s is not None and rec.duration_s >= 0.19
    # the rest of the backend is the backend's
    assert "quarantine" in backend.order()


def test_another_alert_or_another_ahead_is_located_afresh() -> None:
    backend = _GatedBackend()
    backend.found_gate.set()
    early = EarlyLocate(backend, make_alert(), None).start()
    early.whole.result(5)
    wrapped = early.backend()
    wrapped.locate(make_alert(), lambda _t: None, ActionOptions())
    assert backend.locates == 2
    assert wrapped.operator() == "tester"


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("asks", [False, True])
@pytest.mark.parametrize("actions", [{"quarantine", "delete"}, {"collect"}])
def test_ahead_for_is_the_orchestrators_rule(dry_run: bool, asks: bool, actions: set[str]) -> None:
    opts = ActionOptions(ingress=True)
    expected = opts if "quarantine" in actions and not dry_run and not asks else None
    assert ahead_for(frozenset(actions), opts, dry_run=dry_run, asks=asks) is expected


class _Stats:
    connections = 0
    bytes_received = 0


class _Gateway:
    def __init__(self) -> None:
        self.stats = _Stats()


def test_after_first_connection_waits_for_it_then_calls() -> None:
    gateway = _Gateway()
    called = threading.Event()
    thread = after_first_connection(gateway, called.set)
    time.sleep(0.01)
    assert not called.is_set()
    gateway.stats.connections = 1
    assert called.wait(1)
    thread.join(1)


def test_after_first_connection_gives_up_waiting_and_drops_errors() -> None:
    def boom() -> None:
        raise RuntimeError("only asked again later")

    start = time.monotonic()
    after_first_connection(_Gateway(), boom).join(2)
    assert 0.04 <= time.monotonic() - start < 1.0


def test_graph_step_began_earlier() -> None:
    clock = Clock.now()
    began = time.monotonic()
    time.sleep(0.05)
    run = run_graph([Step("a", lambda: None, began=began), Step("b", lambda: None)], clock=clock)
    assert run.records["a"].started_s == pytest.approx(clock.elapsed(began), abs=0.002)
    assert run.records["b"].started_s is not None
    assert run.records["b"].started_s >= run.records["a"].started_s + 0.04


# -- Prefetch: some modules first -------------------------------------------------------


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"startup2_slow_{id(tmp_path)}"
    (tmp_path / f"{name}.py").write_text("import time\ntime.sleep(0.5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_wait_for_some_modules_only(slow_module: str) -> None:
    quick = "colorsys"
    prefetch = Prefetch([quick, slow_module], object()).start()
    start = time.monotonic()
    prefetch.wait([quick])
    assert time.monotonic() - start < 0.4
    assert quick in sys.modules and slow_module not in prefetch.imported
    prefetch.wait([slow_module, "not.in.the.list"])
    assert prefetch.imported == [quick, slow_module]


def test_wait_for_a_module_that_fails_to_import() -> None:
    prefetch = Prefetch(["falcoir.no_such_module_here", "json"], object()).start()
    prefetch.wait(["falcoir.no_such_module_here"])  # returns: the caller gets the error
    prefetch.wait()
    assert prefetch.imported == ["json"]


def test_go_imports_without_waiting_for_an_answer() -> None:
    gateway = _Gateway()
    prefetch = Prefetch(["colorsys"], gateway).start()
    time.sleep(0.05)
    assert prefetch.imported == []  # no answer yet
    start = time.monotonic()
    prefetch.go()
    prefetch.wait(["colorsys"])
    assert prefetch.imported == ["colorsys"]
    assert time.monotonic() - start < 0.5  # not START_WAIT_S


# -- --pod's checks, without importing containment --------------------------------------


# (value, valid namespace, valid pod name)
NAMES = [
    ("default", True, True),
    ("kube-system", True, True),
    ("a", True, True),
    ("a-b", True, True),
    ("a.b", False, True),
    ("web-1.x", False, True),
    ("-a", False, False),
    ("a-", False, False),
    ("A", False, False),
    ("a_b", False, False),
    ("", False, False),
    ("a" * 63, True, True),
    ("a" * 64, False, True),
    ("a." * 126 + "a", False, True),
    ("a" * 254, False, False),
    ("ns\n", False, False),
    ("ünï", False, False),
]


@pytest.mark.parametrize(("value", "namespace", "pod"), NAMES)
def test_pod_flag_checks(value: str, namespace: bool, pod: bool) -> None:
    # --pod is checked by the CLI with containment's own checks (one module, no
    # containment import on the way to the first request).
    from falcoir.cli import common
    from falcoir.core.contain import policy

    assert common.validate_namespace is policy.validate_namespace
    assert common.validate_pod_name is policy.validate_pod_name
    for check, valid in ((common.validate_namespace, namespace), (common.validate_pod_name, pod)):
        if valid:
            assert check(value) == value
        else:
            with pytest.raises(InputError, match="not a valid"):
                check(value)


class _ConnStats:
    def __init__(self) -> None:
        self.connections = 0
        self.bytes_received = 0


class _ConnGateway:
    def __init__(self) -> None:
        self.stats = _ConnStats()


def test_imports_start_once_the_first_connection_is_open() -> None:
    # The request follows its connection at once: the imports use the round trip,
    # the permission questions (``first``) still wait for the answer.
    gateway = _ConnGateway()
    asked: list[list[str]] = []
    prefetch = Prefetch(["colorsys"], gateway, first=lambda: asked.append(list(prefetch.imported)))
    prefetch.start()
    time.sleep(0.05)
    assert prefetch.imported == []  # not connected yet
    gateway.stats.connections = 1
    prefetch.wait(["colorsys"])
    assert prefetch.imported == ["colorsys"]
    time.sleep(0.05)
    assert asked == []  # no answer yet
    gateway.stats.bytes_received = 100
    deadline = time.monotonic() + 2
    while not asked and time.monotonic() < deadline:
        time.sleep(0.005)
    assert asked == [["colorsys"]]


def test_wait_for_all_does_not_wait_for_the_answer() -> None:
    gateway = _ConnGateway()
    gateway.stats.connections = 1
    prefetch = Prefetch(["colorsys"], gateway, first=lambda: None).start()
    start = time.monotonic()
    prefetch.wait()  # every module is imported; ``first`` still waits for its answer
    assert prefetch.imported == ["colorsys"]
    assert time.monotonic() - start < 0.5
