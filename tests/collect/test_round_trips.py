"""Round trips of a collection right after locate: every collector's first call goes
out at once, and what locate read (the owners' objects, the pod's containers, its
node) is not asked again or waited for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from falcoir.core.collect import CollectorStatus, run_collect
from falcoir.core.gateway import PODS
from falcoir.core.incident import IncidentStore
from falcoir.core.locate import locate
from falcoir.core.target import PodRef
from tests.collect.support import NS, POD, ScriptedCluster, add_workload, pod_json
from tests.collect.test_collect_scripted import alert, miner_container, read
from tests.locate.slow import Slow


def _located(cluster: ScriptedCluster) -> Any:
    return locate(cluster, pod=PodRef(NS, POD))


def _collect(tmp_path: Path, gw: Any, target: Any, *, with_alert: bool) -> Any:
    return run_collect(
        gw,
        target,
        alert=alert() if with_alert else None,
        out_dir=tmp_path / "evidence",
        store=IncidentStore(tmp_path / "home"),
    )


def _cluster() -> ScriptedCluster:
    cluster = ScriptedCluster()
    add_workload(cluster)
    cluster.containers["miner"] = miner_container()
    return cluster


def test_everything_goes_out_at_once(tmp_path: Path) -> None:
    cluster = _cluster()
    target = _located(cluster)
    gw = Slow(cluster)
    res = _collect(tmp_path, gw, target, with_alert=False)
    assert res.complete, res.collectors
    # ps, /proc dump, netstat, /proc/net dump, ls /tmp | pod, node, events, log, whoami
    assert gw.round_trips == 1, gw.verbs()
    assert gw.verbs() == ["exec"] * 5 + ["get", "get", "list", "log", "whoami"]


def test_with_the_alert_the_binary_follows_the_process_list(tmp_path: Path) -> None:
    cluster = _cluster()
    target = _located(cluster)
    gw = Slow(cluster)
    res = _collect(tmp_path, gw, target, with_alert=True)
    assert res.complete, res.collectors
    assert res.binary is not None and res.binary.vpid == 42
    # the suspect's pid is found in the /proc dump, then its binary is read
    assert gw.round_trips == 2, gw.verbs()


def test_owner_objects_come_from_locate(tmp_path: Path) -> None:
    cluster = _cluster()
    target = _located(cluster)
    cluster.calls.clear()
    res = _collect(tmp_path, cluster, target, with_alert=False)
    owners = next(c for c in res.collectors if c.name == "owners")
    assert owners.status is CollectorStatus.OK
    assert "read while locating the pod" in (owners.note or "")
    assert not [c for c in cluster.calls if c[0] == "get" and c[1] != "pods" and c[1] != "nodes"]
    saved = read(res, "api/owners.yaml").decode()
    assert "cryptominer-demo-7d4b" in saved and "kind: Deployment" in saved
    # The pod itself is read again: the evidence is the pod as it is now.
    assert [c[1] for c in cluster.calls if c[0] == "get"].count("pods") == 1


def test_a_target_locate_did_not_make_reads_everything(tmp_path: Path) -> None:
    from falcoir.core.collect import target_from_pod

    cluster = _cluster()
    target = target_from_pod(cluster, PodRef(NS, POD))
    cluster.calls.clear()
    res = _collect(tmp_path, cluster, target, with_alert=False)
    assert res.complete, res.collectors
    gets = sorted(c[1] for c in cluster.calls if c[0] == "get")
    assert gets == ["deployments", "nodes", "pods", "replicasets"]


def test_a_container_that_restarted_since_locate_has_its_previous_log_read(
    tmp_path: Path,
) -> None:
    cluster = _cluster()
    target = _located(cluster)
    cluster.add(PODS, pod_json(restarts=1))  # it crashed and came back meanwhile
    cluster.logs[(NS, POD, "miner", True)] = b"the log before the restart\n"
    res = _collect(tmp_path, cluster, target, with_alert=False)
    assert res.complete, res.collectors
    assert read(res, "logs/miner.previous.log") == b"the log before the restart\n"
    assert read(res, "logs/miner.log") == b"starting web server\n"
    logs = [c for c in cluster.calls if c[0] == "log"]
    assert sorted(c[4] for c in logs) == ["False", "True"]  # each read once


def test_every_directory_is_listed_at_once(tmp_path: Path) -> None:
    from dataclasses import replace

    cluster = _cluster()
    box = cluster.containers["miner"]
    box.files.update({"/opt/miner/xmrig": b"x", "/root/.wallet": b"w"})
    target = _located(cluster)
    gw = Slow(cluster)
    noisy = alert()
    noisy = replace(noisy, process=replace(noisy.process, exepath="/opt/miner/xmrig", cwd="/root"))
    res = run_collect(
        gw,  # type: ignore[arg-type]
        target,
        alert=noisy,
        out_dir=tmp_path / "evidence",
        store=IncidentStore(tmp_path / "home"),
    )
    files = next(c for c in res.collectors if c.name == "files")
    assert files.status is CollectorStatus.OK, files
    listed = sorted(a for a in files.artifacts)
    assert listed == ["files/ls-opt_miner.txt", "files/ls-root.txt", "files/ls-tmp.txt"], listed
    assert b".wallet" in read(res, "files/ls-root.txt")
    assert gw.round_trips == 2, gw.verbs()  # the binary still follows the process list
