"""Reads and the baseline probe done ahead of the quarantine (while respond checks the
permissions) are used when fresh and for the same pod and incident, and change nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from falcoir.core.contain import QuarantineOptions, quarantine
from falcoir.core.contain.isolation import prepare
from falcoir.core.incident import IncidentStore
from tests.contain.cluster import NS, POD, make_cluster, policies, target
from tests.contain.test_quarantine import FAST, miner_alert


def test_prepared_reads_are_used_and_change_nothing(tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    opts = QuarantineOptions(check_permissions=False, **FAST)  # type: ignore[arg-type]
    ready = prepare(cluster, t, alert=miner_alert(), incident_id=inc.id, options=opts)
    assert ready.baseline is not None and ready.baseline.result().connected is True
    assert not policies(cluster)
    assert not [c for c in cluster.calls if c[0] in ("create", "patch", "delete")]
    cluster.calls.clear()
    steps: list[str] = []
    result = quarantine(
        cluster,
        t,
        alert=miner_alert(),
        options=opts,
        incident=inc,
        log=inc.action_log("tester"),
        on_step=lambda s: steps.append(s.name),
        prepared=ready,
    )
    # straight to the changes: no second read of the pod or the policy, no second probe
    first = [c[0] for c in cluster.calls if c[0] != "whoami"][:2]
    assert first == ["create", "patch"]
    assert result.egress_blocked is True
    assert result.verified["probe"]["before"]["connected"] is True
    assert steps[:3] == ["probe", "policy", "label"]


def test_stale_or_foreign_prepared_reads_are_not_used(tmp_path: Path) -> None:
    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    opts = QuarantineOptions(check_permissions=False, **FAST)  # type: ignore[arg-type]
    ready = prepare(cluster, t, alert=miner_alert(), incident_id=inc.id, options=opts)
    for bad in (
        dataclasses.replace(ready, at=ready.at - 60),
        dataclasses.replace(ready, incident="inc-20261128-000000-ffffff"),
        dataclasses.replace(ready, pod_name="another-pod"),
    ):
        assert not bad.usable(t, inc.id)
    stale = dataclasses.replace(ready, at=ready.at - 60)
    cluster.calls.clear()
    quarantine(
        cluster,
        t,
        alert=miner_alert(),
        options=opts,
        incident=inc,
        log=inc.action_log("tester"),
        prepared=stale,
    )
    kinds = [c[0] for c in cluster.calls]
    assert kinds.index("get") < kinds.index("create")  # read again before changing


def test_a_probe_read_ahead_waits_for_the_snapshot(tmp_path: Path) -> None:
    # respond reads ahead when locate finds the pod; its baseline probe waits until the
    # volatile snapshot's commands run, so the snapshot does not record its connection.
    import threading
    import time

    cluster = make_cluster()
    store = IncidentStore(tmp_path / "home")
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    opts = QuarantineOptions(check_permissions=False, **FAST)  # type: ignore[arg-type]
    snapshot_running = threading.Event()
    ready = prepare(
        cluster, t, alert=miner_alert(), incident_id=inc.id, options=opts,
        probe_after=snapshot_running,
    )  # fmt: skip
    time.sleep(0.3)
    assert ready.baseline is not None and not ready.baseline.done()
    assert not [c for c in cluster.calls if c[0] == "exec"]
    snapshot_running.set()
    assert ready.baseline.result(timeout=10).connected is True
    assert [c for c in cluster.calls if c[0] == "exec"]
