"""A bundle is sealed whatever happens: Ctrl-C, a call that ignores its timeout, a crash."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import bagit
import pytest

from falcoir.core.bundle import BundleWriter, verify
from falcoir.core.collect import CollectOptions, CollectorStatus, run_collect, target_from_pod
from falcoir.core.gateway import ExecResult
from falcoir.core.incident import IncidentStore
from falcoir.core.target import PodRef
from tests.collect.support import NS, POD, Container, ScriptedCluster, add_workload
from tests.collect.test_collect_scripted import miner_container


@dataclass
class StuckCluster(ScriptedCluster):
    """exec of ``ls`` writes a little, then blocks far past its timeout (a broken
    gateway or a hung API server): falcoir must not wait for it."""

    stuck_for: float = 3.0
    on_stuck: Callable[[], None] | None = None

    def exec(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 30.0,
        max_bytes: int = 16 * 1024 * 1024,
        stdout_sink: BinaryIO | None = None,
    ) -> ExecResult:
        if argv[0] == "ls" and stdout_sink is not None:
            stdout_sink.write(b"partial listing\n")
            if self.on_stuck is not None:
                self.on_stuck()
            time.sleep(self.stuck_for)
            stdout_sink.write(b"written after the bundle was sealed\n")
        return super().exec(
            namespace, pod, container, argv, stdin=stdin, timeout=timeout,
            max_bytes=max_bytes, stdout_sink=stdout_sink,
        )  # fmt: skip


def _run(tmp_path: Path, cluster: ScriptedCluster, **opts: Any):
    add_workload(cluster)
    target = target_from_pod(cluster, PodRef(NS, POD))
    return run_collect(
        cluster,
        target,
        alert=None,
        out_dir=tmp_path / "ev",
        options=CollectOptions(**opts),
        store=IncidentStore(tmp_path / "home"),
    )


def test_a_call_past_the_deadline_is_recorded_and_cannot_spoil_the_seal(tmp_path: Path) -> None:
    cluster = StuckCluster(stuck_for=3.0)
    cluster.containers["miner"] = miner_container()
    t0 = time.monotonic()
    res = _run(tmp_path, cluster, deadline=1.0)
    assert time.monotonic() - t0 < 2.8
    assert not res.complete
    st = {c.name: c.status for c in res.collectors}
    assert st["files"] is CollectorStatus.TIMEOUT and st["pod"] is CollectorStatus.OK
    assert verify(res.bundle.dir).ok
    # the stuck call comes back after the seal: its late bytes go nowhere
    time.sleep(3.0)
    assert verify(res.bundle.dir).ok and bagit.Bag(str(res.bundle.dir)).is_valid()
    ls = next(a for a in res.bundle.artifacts if a.name == "files/ls-tmp.txt")
    assert ls.status.value == "interrupted"
    assert (res.bundle.dir / ls.path).read_bytes() == b"partial listing\n"


def test_ctrl_c_seals_an_incomplete_bundle(tmp_path: Path) -> None:
    # Ctrl-C arrives while the listing is stuck (so while falcoir waits on collectors).
    cluster = StuckCluster(stuck_for=2.0, on_stuck=lambda: os.kill(os.getpid(), signal.SIGINT))
    cluster.containers["miner"] = miner_container()
    try:
        res = _run(tmp_path, cluster)
    except KeyboardInterrupt:  # pragma: no cover - would mean the interrupt escaped
        pytest.fail("Ctrl-C escaped collect() instead of sealing an incomplete bundle")
    assert res.interrupted and not res.complete
    assert any("interrupted" in n for n in res.notes)
    st = {c.name: c.status for c in res.collectors}
    assert st["files"] is CollectorStatus.INTERRUPTED
    assert bagit.Bag(str(res.bundle.dir)).info["Falcoir-Complete"] == "false"
    assert verify(res.bundle.archive).ok
    time.sleep(2.0)


@pytest.mark.parametrize("where", ["_launch", "_await"])
def test_an_exception_while_collecting_still_seals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from falcoir.core.collect import engine

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("bug")

    # while starting the collectors, and while waiting for them
    monkeypatch.setattr(engine, where, boom)
    cluster = ScriptedCluster()
    cluster.containers["miner"] = Container()
    with pytest.raises(RuntimeError):
        _run(tmp_path, cluster)
    store = IncidentStore(tmp_path / "home")
    (inc,) = store.all()
    (bundle,) = inc.bundles
    assert verify(Path(bundle)).ok
    assert bagit.Bag(bundle).info["Falcoir-Complete"] == "false"


def test_a_crashed_bundle_can_be_sealed_later(tmp_path: Path) -> None:
    """A process killed mid-collection leaves data/ and sidecars; reopen+finalize seals
    what is there, marked incomplete."""
    store = IncidentStore(tmp_path / "home")
    inc = store.open(NS, POD, None)
    w = BundleWriter.create(
        tmp_path / "ev", inc, alert_raw="a", target=None, context="c", operator="o"
    )
    w.add_bytes("processes/ps.txt", b"1 sh\n")
    stream = w.open_stream("binary/exe.bin")
    stream.write(b"half")
    stream.flush()
    # (no finalize: the process died here)
    assert not verify(w.dir).ok
    again = BundleWriter.reopen(w.dir, actions_path=inc.actions_path)
    res = again.finalize(False)
    assert verify(res.dir).ok
    assert {"processes/ps.txt", "alert.txt"} <= {a.name for a in res.artifacts}
