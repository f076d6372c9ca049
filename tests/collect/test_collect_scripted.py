"""collect() against scripted containers: the miner, busybox, distroless, hostile pods."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import bagit
import pytest

from falcoir.core.alert import Alert, Process
from falcoir.core.bundle import BundleWriter, verify
from falcoir.core.collect import (
    CollectOptions,
    CollectorEvent,
    CollectorStatus,
    run_collect,
    scripts,
    snapshot,
    target_from_pod,
)
from falcoir.core.incident import IncidentStore
from falcoir.core.target import PodRef
from tests.collect.support import (
    NS,
    POD,
    Container,
    Drop,
    Flood,
    Hang,
    Proc,
    ScriptedCluster,
    add_workload,
    tmp_hex,
)

XMRIG = b"\x7fELF" + bytes(range(256)) * 64
# 10.244.0.5:41000 -> 10.96.0.9:3333 ESTABLISHED, inode 5555 (as /proc/net/tcp prints it)
TCP = (
    b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
    b"  timeout inode\n"
    b"   0: 0500F40A:A028 0900600A:0D05 01 00000000:00000000 00:00000000 00000000"
    b"     0        0 5555 1 0000000000000000 20 4 30 10 -1\n"
    b"   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
    b"     0        0 6666 1 0000000000000000 100 0 0 10 0\n"
)
CMDLINE = "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x"


def miner_container(**kw: object) -> Container:
    box = Container(
        procs=[
            Proc(1, b"sh", [b"/bin/sh", b"-c", b"sleep 3600 && /tmp/xmrig"], b"/bin/dash"),
            Proc(
                42,
                b"xmrig",
                [x.encode() for x in CMDLINE.split()],
                b"/tmp/xmrig",
                ppid=1,
                cwd=b"/tmp",
                sockets=[5555],
            ),
            Proc(7, b"web", [b"/usr/bin/web"], b"/usr/bin/web", sockets=[6666]),
        ],
        files={"/tmp/xmrig": XMRIG, "/tmp/notes.txt": b"hi"},
        tcp=TCP,
    )
    for k, v in kw.items():
        setattr(box, k, v)
    return box


def alert() -> Alert:
    raw = (
        "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
        f"cmdline={CMDLINE}, pid=12345)"
    )
    return Alert(
        raw=raw,
        source_format="text",
        rule="Suspicious crypto miner process",
        process=Process(name="xmrig", cmdline=CMDLINE, pid=12345),
    )


def cluster_with(box: Container, **kw: object) -> ScriptedCluster:
    c = ScriptedCluster(**kw)  # type: ignore[arg-type]
    add_workload(c)
    c.containers["miner"] = box
    return c


def go(
    tmp_path: Path,
    cluster: ScriptedCluster,
    *,
    with_alert: bool = True,
    events: list[CollectorEvent] | None = None,
    **opts: object,
):
    target = target_from_pod(cluster, PodRef(NS, POD))
    options = CollectOptions(**opts)  # type: ignore[arg-type]
    return run_collect(
        cluster,
        target,
        alert=alert() if with_alert else None,
        out_dir=tmp_path / "evidence",
        options=options,
        store=IncidentStore(tmp_path / "home"),
        progress=events.append if events is not None else None,
    )


def read(res, name: str) -> bytes:
    art = next(a for a in res.artifacts if a.name == name)
    return (res.bundle.dir / art.path).read_bytes()


def test_full_collection_of_the_miner(tmp_path: Path) -> None:
    cluster = cluster_with(miner_container())
    events: list[CollectorEvent] = []
    res = go(tmp_path, cluster, events=events)
    assert res.complete, res.collectors
    assert {c.name: c.status for c in res.collectors} == {
        n: CollectorStatus.OK
        for n in (
            "processes",
            "network",
            "files",
            "binary",
            "pod",
            "owners",
            "node",
            "events",
            "logs",
        )
    }
    assert b"/tmp/xmrig -o pool.example.com:3333" in read(res, "processes/ps.txt")
    assert b"xmrig" in read(res, "files/ls-tmp.txt")
    conns = json.loads(read(res, "network/connections.json"))
    pool = [c for c in conns if c["remote_port"] == 3333]
    assert pool == [
        {
            **pool[0],
            "remote": "10.96.0.9:3333",
            "local": "10.244.0.5:41000",
            "state": "ESTABLISHED",
            "pids": [42],
            "processes": ["xmrig"],
        }
    ]
    assert res.binary is not None
    assert res.binary.vpid == 42 and res.binary.path == "/tmp/xmrig"
    assert res.binary.sha256 == tmp_hex(XMRIG) == res.binary.in_pod_sha256
    copied = res.bundle.dir / next(a for a in res.artifacts if a.name == "binary/exe.bin").path
    assert copied.read_bytes() == XMRIG
    assert stat.S_IMODE(copied.stat().st_mode) & 0o333 == 0
    owners = read(res, "api/owners.yaml").decode()
    assert "ReplicaSet" in owners and "Deployment" in owners
    # each owner is read once (the chain's own reads are what the bundle saves)
    gets = [c[1] for c in cluster.calls if c[0] == "get"]
    assert gets.count("replicasets") == 1 and gets.count("deployments") == 1
    assert b"starting web server" in read(res, "logs/miner.log")
    assert verify(res.bundle.dir).ok and verify(res.bundle.archive).ok
    assert bagit.Bag(str(res.bundle.dir)).is_valid()
    doc = res.to_dict()
    assert {"incident", "bundle", "archive", "complete", "artifacts"} <= set(doc)
    assert {"name", "path", "sha256", "bytes", "exit_code", "status"} <= set(doc["artifacts"][0])
    # every command was an argv list; no shell string carries alert data
    for call in cluster.calls:
        if call[0] == "exec":
            argv = call[4:]
            if argv[0] == "sh":
                assert argv[1] == "-c" and "xmrig" not in argv[2] and "pool" not in argv[2]
    # live progress: each collector started and ended
    done = {e.collector for e in events if e.state == "done"}
    assert done == {c.name for c in res.collectors}
    # the incident store knows the bundle
    inc = IncidentStore(tmp_path / "home").get(res.incident)
    assert inc is not None and str(res.bundle.dir) in inc.bundles


def test_busybox_fallbacks(tmp_path: Path) -> None:
    box = miner_container(
        busybox=True, tools={"ps", "ls", "sh", "cat", "readlink", "sha256sum", "netstat"}
    )
    res = go(tmp_path, cluster_with(box))
    assert res.complete, res.collectors
    arts = {a.name: a for a in res.artifacts}
    assert arts["processes/ps.txt"].status.value == "failed"  # ps auxww rejected
    assert arts["processes/ps-2.txt"].argv == ("ps", "-ef")
    assert b"xmrig" in read(res, "processes/ps-2.txt")
    assert arts["files/ls-tmp.txt"].argv == ("ls", "-la", "--time-style=full-iso", "/tmp")
    assert arts["files/ls-tmp-2.txt"].argv == ("ls", "-la", "--full-time", "/tmp")
    assert b"xmrig" in read(res, "files/ls-tmp-2.txt")


def test_no_ps_no_netstat_reads_proc(tmp_path: Path) -> None:
    box = miner_container(tools={"sh", "cat", "readlink", "ls", "sha256sum"})
    res = go(tmp_path, cluster_with(box))
    assert res.complete
    procs = json.loads(read(res, "processes/processes.json"))
    xm = next(p for p in procs if p["pid"] == 42)
    assert xm["cmdline"] == CMDLINE.split() and xm["exe"] == "/tmp/xmrig"
    outcome = {c.name: c for c in res.collectors}
    assert "from /proc" in (outcome["processes"].note or "")
    assert any(c["remote_port"] == 3333 and c["pids"] == [42] for c in res.connections)


def test_distroless_is_said_and_incomplete_without_debug(tmp_path: Path) -> None:
    box = miner_container(tools=set())
    res = go(tmp_path, cluster_with(box))
    assert not res.complete
    assert any("no shell or tools" in n for n in res.notes)
    assert any("--ephemeral-debug" in n for n in res.notes)
    st = {c.name: c.status for c in res.collectors}
    assert st["processes"] is CollectorStatus.FAILED and st["pod"] is CollectorStatus.OK
    # every failed attempt is in the bundle, with its argv and the reason
    missing = [a for a in res.artifacts if a.status.value == "not-found"]
    assert missing and all(a.argv for a in missing)
    assert verify(res.bundle.dir).ok
    assert bagit.Bag(str(res.bundle.dir)).info["Falcoir-Complete"] == "false"


def test_distroless_with_ephemeral_debug_container(tmp_path: Path) -> None:
    target_box = miner_container(tools=set())
    debug = miner_container(root="/proc/1/root")
    debug.files = {"/proc/1/root" + k: v for k, v in target_box.files.items()}
    debug.files["/tmp/xmrig"] = XMRIG  # what /proc/42/exe resolves to
    cluster = cluster_with(target_box, debug_container=debug)
    res = go(tmp_path, cluster, ephemeral_debug=True, debug_image="busybox:1.36")
    assert res.complete, (res.collectors, res.notes)
    assert res.debug_container and res.debug_container.startswith("falcoir-debug-")
    pod = cluster.objects[("pods", NS, POD)]
    eph = pod["spec"]["ephemeralContainers"][0]
    assert eph["targetContainerName"] == "miner" and eph["image"] == "busybox:1.36"
    assert any("pod spec was changed" in n for n in res.notes)
    assert res.binary is not None and res.binary.sha256 == tmp_hex(XMRIG)
    ls = next(
        a for a in res.artifacts if a.name.startswith("debug/files/") and a.status.value == "ok"
    )
    assert ls.argv is not None and ls.argv[-1] == "/proc/1/root/tmp"
    actions = (res.bundle.dir / "data/actions.jsonl").read_text().splitlines()
    assert json.loads(actions[0])["action"] == "ephemeral-container"


def test_hostile_outputs_are_kept_raw(tmp_path: Path) -> None:
    evil_comm = b"\x1b]0;pwned\x07[bold red]x[/]\xff"
    box = miner_container()
    box.procs.append(Proc(66, evil_comm, [evil_comm, b"$(reboot);"], b"/tmp/evil"))
    box.files["/tmp/$(reboot);"] = b"x"
    box.files["/tmp/new\nline"] = b"y"
    cluster = cluster_with(box)
    res = go(tmp_path, cluster)
    assert res.complete
    ps = read(res, "processes/ps.txt")
    assert evil_comm in ps
    ls = read(res, "files/ls-tmp.txt")
    assert b"$(reboot);" in ls and b"new\nline" in ls
    procs = json.loads(read(res, "processes/processes.json"))
    evil = next(p for p in procs if p["pid"] == 66)
    assert evil["comm"] == "\x1b]0;pwned\x07[bold red]x[/]\\xff"
    # nothing derived from pod data was ever run
    execs = [c for c in cluster.calls if c[0] == "exec"]
    assert len(execs) > 5
    for call in execs:
        assert "reboot" not in " ".join(call)


def test_flood_is_capped_and_marked(tmp_path: Path) -> None:
    box = miner_container()
    box.overrides[("ps",)] = lambda: Flood(100 * 1024 * 1024)
    t0 = time.monotonic()
    res = go(tmp_path, cluster_with(box), max_bytes=1024 * 1024)
    assert time.monotonic() - t0 < 30
    art = next(a for a in res.artifacts if a.name == "processes/ps.txt")
    assert art.bytes == 1024 * 1024 and art.truncated and art.status.value == "truncated"
    assert (res.bundle.dir / art.path).stat().st_size == 1024 * 1024
    # the /proc dump still gave a full process list
    assert {c.name: c.status for c in res.collectors}["processes"] is CollectorStatus.OK


def test_command_that_never_ends_times_out_and_the_rest_is_there(tmp_path: Path) -> None:
    box = miner_container()
    box.overrides[("netstat",)] = Hang
    box.overrides[("sh", "-c", scripts.PROC_DUMP)] = Hang  # both /proc dumps hang too
    box.overrides[("sh", "-c", scripts.NET_DUMP)] = Hang
    t0 = time.monotonic()
    res = go(tmp_path, cluster_with(box), timeout=1.0)
    assert time.monotonic() - t0 < 20
    st = {c.name: c.status for c in res.collectors}
    assert st["network"] is CollectorStatus.TIMEOUT
    assert st["pod"] is CollectorStatus.OK and st["files"] is CollectorStatus.OK
    assert not res.complete
    timeouts = [a for a in res.artifacts if a.status.value == "timeout"]
    assert {a.name for a in timeouts} >= {"network/netstat.txt", "network/proc-net.txt"}
    assert verify(res.bundle.dir).ok


def test_dropped_stream_is_retried(tmp_path: Path) -> None:
    box = miner_container()
    box.overrides[("ls",)] = Drop
    res = go(tmp_path, cluster_with(box))
    ls = [a for a in res.artifacts if a.name.startswith("files/ls-tmp")]
    assert [a.status.value for a in ls] == ["failed", "ok"]
    assert ls[0].error == "stream dropped"
    assert res.complete


def test_dropped_stream_without_retry_is_recorded_failed(tmp_path: Path) -> None:
    box = miner_container()
    box.overrides[("ls",)] = Drop
    res = go(tmp_path, cluster_with(box), retries=0)
    files = {c.name: c for c in res.collectors}["files"]
    first = next(a for a in res.artifacts if a.name == "files/ls-tmp.txt")
    assert first.status.value == "failed" and "dropped" in (first.error or "")
    # the other attempts moved on; the rest of the bundle is there
    assert {c.name: c.status for c in res.collectors}["processes"] is CollectorStatus.OK
    assert files.status in (CollectorStatus.OK, CollectorStatus.FAILED)


def test_forbidden_exec_is_recorded_not_raised(tmp_path: Path) -> None:
    cluster = cluster_with(miner_container())
    cluster.denied.add(("create", "pods/exec", None))
    res = go(tmp_path, cluster)
    assert not res.complete
    a = next(a for a in res.artifacts if a.name == "processes/ps.txt")
    assert a.status.value == "failed" and "forbidden" in (a.error or "")
    assert {c.name: c.status for c in res.collectors}["pod"] is CollectorStatus.OK


def test_snapshot_writes_only_volatile_parts(tmp_path: Path) -> None:
    cluster = cluster_with(miner_container())
    store = IncidentStore(tmp_path / "home")
    target = target_from_pod(cluster, PodRef(NS, POD))
    inc = store.open(NS, POD, target.pod_uid)
    writer = BundleWriter.create(
        tmp_path / "ev", inc, alert_raw=None, target=target, context="fake", operator="t"
    )
    res = snapshot(cluster, target, writer=writer, options=CollectOptions())
    assert [c.name for c in res.collectors] == ["processes", "network"]
    assert res.complete
    assert all(a.name.split("/")[0] in {"processes", "network"} for a in res.artifacts)
    assert any(c["remote_port"] == 3333 for c in res.connections)
    sealed = writer.finalize(res.complete)
    assert verify(sealed.dir).ok


def test_pod_target_needs_container_when_several(tmp_path: Path) -> None:
    from falcoir.core.gateway import PODS
    from falcoir.errors import TargetAmbiguous, TargetNotFound
    from tests.collect.support import pod_json

    c = ScriptedCluster()
    c.add(PODS, pod_json(containers=("a", "b")))
    with pytest.raises(TargetAmbiguous):
        target_from_pod(c, PodRef(NS, POD))
    with pytest.raises(TargetNotFound):
        target_from_pod(c, PodRef(NS, POD), "zzz")
    t = target_from_pod(c, PodRef(NS, POD), "b")
    assert t.container == "b" and t.node == "lab-node" and t.owner[0].kind == "ReplicaSet"


def test_collect_logs_the_debug_container_in_the_incident_log_by_default(tmp_path: Path) -> None:
    from falcoir.core.collect import collect

    target_box = miner_container(tools=set())
    debug = miner_container(root="/proc/1/root")
    cluster = cluster_with(target_box, debug_container=debug)
    store = IncidentStore(tmp_path / "home")
    target = target_from_pod(cluster, PodRef(NS, POD))
    inc = store.open(NS, POD, target.pod_uid)
    writer = BundleWriter.create(
        tmp_path / "ev", inc, alert_raw=None, target=target, context="fake", operator="alice"
    )
    res = collect(
        cluster, target, alert=None, writer=writer, options=CollectOptions(ephemeral_debug=True)
    )
    assert res.debug_container
    (rec,) = inc.action_log().records()
    assert rec.action == "ephemeral-container" and rec.actor == "alice"
    assert rec.data["container"] == res.debug_container


def test_owners_from_a_located_chain_are_read_side_by_side(tmp_path: Path) -> None:
    import dataclasses

    import yaml

    from falcoir.core.target import LocateMethod, OwnerRef

    cluster = cluster_with(miner_container())
    target = dataclasses.replace(
        target_from_pod(cluster, PodRef(NS, POD)),
        method=LocateMethod.K8S_FIELDS,
        owner=(
            OwnerRef("ReplicaSet", "cryptominer-demo-7d4b", "rs-1", "apps/v1"),
            OwnerRef("Deployment", "cryptominer-demo", None, "apps/v1"),
            OwnerRef("Rollout", "argo", None, "argoproj.io/v1alpha1"),
        ),
    )
    res = run_collect(
        cluster, target, alert=None, out_dir=tmp_path / "ev",
        store=IncidentStore(tmp_path / "home"),
    )  # fmt: skip
    docs = yaml.safe_load(read(res, "api/owners.yaml"))
    assert [d["kind"] for d in docs] == ["ReplicaSet", "Deployment", "Rollout"]
    assert docs[1]["metadata"]["namespace"] == NS  # the real object, read from the API
    outcome = {c.name: c for c in res.collectors}["owners"]
    assert outcome.status is CollectorStatus.OK and "Rollout/argo" in (outcome.note or "")
    assert "falcoir does not read" in docs[2]["falcoirNote"]
    gets = [c[1] for c in cluster.calls if c[0] == "get"]
    assert gets.count("replicasets") == 1 and gets.count("deployments") == 1


@pytest.mark.parametrize("with_alert", [True, False])
def test_without_volatile_collectors_nothing_waits_for_the_process_list(
    tmp_path: Path, with_alert: bool
) -> None:
    # The binary and vpid steps used to wait for the processes collector's event
    # until the deadline when that collector was not part of the run.
    cluster = cluster_with(miner_container())
    t0 = time.monotonic()
    res = go(tmp_path, cluster, with_alert=with_alert, volatile=False, deadline=30.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 10, f"collect(volatile=False) took {elapsed:.1f}s"
    statuses = {c.name: c.status for c in res.collectors}
    assert "processes" not in statuses and "network" not in statuses
    assert all(s is not CollectorStatus.TIMEOUT for s in statuses.values()), statuses
    if with_alert:
        # copied from the alert's path, since there is no process list to find a pid in
        assert statuses["binary"] is CollectorStatus.OK
        assert res.binary is not None and res.binary.sha256 == tmp_hex(XMRIG)
    assert verify(res.bundle.dir).ok
