"""A collection started ahead of locate and then abandoned (locate failed or Ctrl-C
before the owner chain was read) is sealed with a ``target.json`` saying which pod it
was about, marked partial; with no target at all, ``bag-info.txt`` says so. Months
later ``falcoir bundle show`` tells an auditor which pod, and what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import bagit
import pytest

from falcoir.core.bundle import BundleWriter, verify
from falcoir.core.collect import Started, start_collect
from falcoir.core.incident import IncidentStore
from falcoir.core.locate import locate
from falcoir.core.target import PodRef, Target
from falcoir.errors import Forbidden
from tests.collect.support import NS, POD, ScriptedCluster, add_workload
from tests.collect.test_collect_scripted import miner_container

ROOT = Path(__file__).resolve().parents[2]


def _cluster() -> ScriptedCluster:
    cluster = ScriptedCluster()
    add_workload(cluster)
    cluster.containers["miner"] = miner_container()
    return cluster


def _early(cluster: ScriptedCluster) -> Target:
    """The target locate hands over before it reads the owner chain."""
    return replace(locate(cluster, pod=PodRef(NS, POD)), owner=(), vpid=42, host_pid=4242)


def show(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcoir", "bundle", "show", str(path), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        timeout=60,
        check=False,
    )


def _target_json(bundle: Path) -> dict[str, Any]:
    doc = json.loads((bundle / "data" / "target.json").read_text())
    assert isinstance(doc, dict)
    return doc


def test_abandon_after_locate_failed_writes_the_known_target_marked_partial(
    tmp_path: Path,
) -> None:
    cluster = _cluster()
    where = _early(cluster)
    started = start_collect(
        cluster,
        where,
        alert=None,
        out_dir=tmp_path / "evidence",
        store=IncidentStore(tmp_path / "home"),
        located=False,
    )
    try:
        raise Forbidden("cannot get replicasets in prod")
    except Forbidden:
        sealed = started.abandon()
    assert sealed is not None and not sealed.complete
    doc = _target_json(sealed.dir)
    assert (doc["namespace"], doc["pod"], doc["container"]) == (NS, POD, "miner")
    assert (doc["vpid"], doc["host_pid"], doc["pod_uid"]) == (42, 4242, "pod-uid-1")
    assert doc["partial"] is True and doc["not_read"] == ["owner"] and doc["owner"] == []
    assert "cannot get replicasets in prod" in doc["partial_reason"]
    info = bagit.Bag(str(sealed.dir)).info
    assert info["Falcoir-Target-Status"] == "partial"
    assert "owner chain" in info["Falcoir-Incomplete-Reason"]
    assert "Forbidden: cannot get replicasets in prod" in info["Falcoir-Incomplete-Reason"]
    assert verify(sealed.dir).ok and verify(sealed.archive).ok
    (art,) = [a for a in sealed.artifacts if a.name == "target.json"]
    assert art.status.value == "interrupted" and "owner chain was not read" in (art.error or "")
    # what an auditor reads
    r = show(sealed.archive)
    assert r.returncode == 0, r.stderr
    assert f"{NS}/{POD} container=miner" in r.stderr
    assert "why" in r.stderr and "owner chain" in r.stderr and "INCOMPLETE" in r.stderr
    assert "partial target" in r.stderr
    j = json.loads(show(sealed.dir, "-o", "json").stdout)
    assert j["bag_info"]["Falcoir-Target-Status"] == "partial"


def test_ctrl_c_before_the_owner_chain_says_interrupted(tmp_path: Path) -> None:
    cluster = _cluster()
    started = start_collect(
        cluster,
        _early(cluster),
        alert=None,
        out_dir=tmp_path / "evidence",
        store=IncidentStore(tmp_path / "home"),
        located=False,
    )
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sealed = started.abandon()
    assert sealed is not None
    assert "Ctrl-C" in _target_json(sealed.dir)["partial_reason"]
    assert "Ctrl-C" in bagit.Bag(str(sealed.dir)).info["Falcoir-Incomplete-Reason"]


def test_with_no_target_known_bag_info_says_so(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "home")
    inc = store.open("unknown", "unknown", None)
    writer = BundleWriter.create(
        tmp_path / "evidence", inc, alert_raw="an alert", target=None, context="lab", operator="a"
    )
    idle = threading.Thread(target=lambda: None)
    idle.start()
    started = Started(store, inc, writer, None, idle, ["alice"], target=None, located=False)
    sealed = started.abandon("locate found no pod for the alert")
    assert sealed is not None and not (sealed.dir / "data" / "target.json").exists()
    info = bagit.Bag(str(sealed.dir)).info
    assert info["Falcoir-Target-Status"] == "unknown"
    why = info["Falcoir-Incomplete-Reason"]
    assert "no target was located" in why and "locate found no pod for the alert" in why
    assert "does not say which pod" in why
    assert verify(sealed.dir).ok
    r = show(sealed.dir)
    assert r.returncode == 0, r.stderr
    assert "no target was located" in r.stderr and "does not say which pod" in r.stderr


def test_finish_interrupted_while_writing_the_target_still_seals_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = _cluster()
    target = locate(cluster, pod=PodRef(NS, POD))
    started = start_collect(
        cluster,
        replace(target, owner=()),
        alert=None,
        out_dir=tmp_path / "evidence",
        store=IncidentStore(tmp_path / "home"),
        located=False,
    )
    real = BundleWriter.add_target
    calls: list[Target] = []

    def ctrl_c_once(self: BundleWriter, t: Target, *, partial: str | None = None) -> Any:
        calls.append(t)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(self, t, partial=partial)

    monkeypatch.setattr(BundleWriter, "add_target", ctrl_c_once)
    res = started.finish(target)
    assert res.bundle is not None and not res.complete
    doc = _target_json(res.bundle.dir)
    # the final target, with its owner chain: not the early one, not partial
    assert [o["kind"] for o in doc["owner"]] == [o.kind for o in target.owner] != []
    assert "partial" not in doc
    assert "Falcoir-Target-Status" not in bagit.Bag(str(res.bundle.dir)).info
    assert verify(res.bundle.dir).ok
