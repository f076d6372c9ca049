"""API requests and bytes per ``locate``, for each strategy, against listing every pod.

Two ways to run it:

- ``python benchmarks/locate_bench.py`` (default): an in-memory cluster of 5,000 pods
  over 100 nodes (a Falco pod on each) plus the cryptominer scenario on ``lab-node``,
  behind a counting wrapper (requests; bytes = the JSON the API would send, and exec
  output). ``--sizes 1000,5000,20000`` repeats it at other cluster sizes to show that
  the request count does not grow with the cluster.
- ``python benchmarks/locate_bench.py --kubeconfig PATH``: a real cluster (e.g. a
  ``falcoir lab`` loaded with virtual pods and the scenario), counted by the
  ``KubeGateway``'s own ``stats`` (HTTP requests and response bytes on the wire).

The baseline is ``kubectl get pods -A`` (one LIST of every pod): a tool that finds the
pod by listing everything pays that on every alert, and more as the cluster grows.
Output: a table on stderr, and the figures as JSON on stdout with ``--json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from falcoir.cluster.gateway import Span, critical_path
from falcoir.core.alert import Alert, Container, K8s, Process
from falcoir.core.gateway import JSON, PODS, ClusterGateway, ExecResult, Resource
from falcoir.core.locate import LocateOptions, locate
from falcoir.core.target import PodRef, Target

XMRIG = ("/tmp/xmrig", "-o", "pool.example.com:3333", "-u", "wallet_address", "-p", "x")
NS, DEPLOY, RS_HASH = "default", "cryptominer-demo", "7d9f8b6c5"
DEFAULT_LATENCY = 0.02
"""Offline: seconds each call takes, so that calls in flight together overlap."""


class Counting:
    """Wraps a gateway; counts requests, the bytes the API would have sent, and the
    round trips on the critical path: each call takes ``latency`` seconds (a remote
    API server) and its span is kept (:func:`falcoir.cluster.gateway.critical_path`)."""

    def __init__(self, inner: Any, latency: float = 0.0) -> None:
        self.inner = inner
        self.latency = latency
        self.requests = 0
        self.bytes = 0
        self.by_verb: dict[str, int] = {}
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def _count(self, verb: str, n: int, start: float) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += n
            self.by_verb[verb] = self.by_verb.get(verb, 0) + 1
            self.spans.append(Span(verb, verb, start, time.monotonic()))

    def _wait(self) -> float:
        start = time.monotonic()
        if self.latency:
            time.sleep(self.latency)
        return start

    def reset(self) -> None:
        with self._lock:
            self.requests = self.bytes = 0
            self.by_verb = {}
            self.spans = []

    @property
    def round_trips(self) -> int:
        with self._lock:
            return critical_path(self.spans)

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        start = self._wait()
        out: JSON = self.inner.get(resource, name, namespace)
        self._count("get", len(json.dumps(out)), start)
        return out

    def list(self, resource: Resource, namespace: str | None = None, **kw: Any) -> list[JSON]:
        start = self._wait()
        out: list[JSON] = self.inner.list(resource, namespace, **kw)
        self._count("list", len(json.dumps({"items": out})), start)
        return out

    def exec(self, *a: Any, **kw: Any) -> ExecResult:
        start = self._wait()
        res: ExecResult = self.inner.exec(*a, **kw)
        self._count("exec", len(res.stdout) + len(res.stderr), start)
        return res

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _cid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def build_cluster(pods: int, nodes: int) -> tuple[Any, JSON]:
    """``pods`` virtual pods over ``nodes`` nodes, a Falco pod per node, the scenario."""
    from tests.locate.world import World

    w = World()
    node_names = ["lab-node"] + [f"node-{i:03d}" for i in range(1, nodes)]
    for i in range(pods):
        node = node_names[i % nodes]
        w.pod(
            f"team-{i % 40}",
            f"app-{i}",
            node,
            ("app",),
            labels={"app": f"app-{i % 200}", "tier": "web"},
        )
    rs = w.deployment(NS, DEPLOY, RS_HASH, {"app": "cryptominer"})
    pod = w.pod(
        NS,
        f"{rs}-abc12",
        "lab-node",
        ("miner",),
        labels={"app": "cryptominer", "pod-template-hash": RS_HASH},
        owner=("ReplicaSet", rs),
    )
    w.run_process("lab-node", 12345, pod, "miner", 7, XMRIG)
    for node in node_names:
        w.falco(node)
    for node in node_names[1:]:
        # pids repeat across nodes: 12345 is some other process elsewhere
        w.host_process(node, 12345, ("nginx", "-g", "daemon off;"), "0::/system.slice/x\n")
    return w, pod


def cases(
    pod: JSON, proc: Process | None = None
) -> list[tuple[str, Callable[[ClusterGateway], Target]]]:
    meta = pod["metadata"]
    name = meta["name"]
    full = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    proc = proc or Process(name="xmrig", cmdline=" ".join(XMRIG), pid=12345)
    ns = meta["namespace"]
    text = Alert(raw="", source_format="text", process=proc)

    def json_alert(**kw: Any) -> Alert:
        return Alert(raw="", source_format="json", process=proc, node="lab-node", **kw)

    return [
        (
            "k8s-fields",
            lambda g: locate(g, alert=json_alert(k8s=K8s(namespace=meta["namespace"], pod=name))),
        ),
        (
            "container-id (node known)",
            lambda g: locate(g, alert=json_alert(container=Container(id=full[:12]))),
        ),
        (
            "container-id (no node)",
            lambda g: locate(
                g,
                alert=Alert(
                    raw="", source_format="json", process=proc, container=Container(id=full[:12])
                ),
            ),
        ),
        ("host-pid (node known)", lambda g: locate(g, alert=json_alert())),
        ("host-pid (no node: every Falco pod)", lambda g: locate(g, alert=text)),
        (
            "scan (-n default)",
            lambda g: locate(
                g,
                alert=Alert(raw="", source_format="text", process=replace(proc, pid=None)),
                options=LocateOptions(namespace=ns),
            ),
        ),
        ("pod-flag", lambda g: locate(g, pod=PodRef(meta["namespace"], name))),
    ]


def _measure(
    gw: Any,
    reset: Callable[[], None],
    stats: Callable[[], tuple[int, int, int]],
    fn: Callable[[Any], Target],
) -> dict[str, Any]:
    reset()
    t0 = time.perf_counter()
    target = fn(gw)
    elapsed = time.perf_counter() - t0
    req, nbytes, round_trips = stats()
    assert target.pod.startswith(f"{DEPLOY}-") and target.container == "miner", target
    return {
        "requests": req,
        "bytes": nbytes,
        "round_trips": round_trips,
        "seconds": round(elapsed, 4),
        "method": target.method.value,
        "vpid": target.vpid,
    }


def run_offline(pods: int, nodes: int, latency: float = DEFAULT_LATENCY) -> dict[str, Any]:
    world, pod = build_cluster(pods, nodes)
    gw = Counting(world, latency)

    def reset() -> None:
        gw.reset()

    def stats() -> tuple[int, int, int]:
        return gw.requests, gw.bytes, gw.round_trips

    reset()
    gw.list(PODS, None)
    baseline = {"requests": gw.requests, "bytes": gw.bytes}
    results = {label: _measure(gw, reset, stats, fn) for label, fn in cases(pod)}
    return {
        "pods": pods + nodes + 1,
        "nodes": nodes,
        "latency_ms": latency * 1000,
        "baseline_list_all": baseline,
        "strategies": results,
    }


def _miner_process(pod: JSON) -> Process:
    """The miner's process as Falco would report it: found in the local /proc (the
    lab's node is this machine) by its cgroup naming the pod's uid."""
    uid = pod["metadata"]["uid"]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cgroup = (entry / "cgroup").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if comm == "xmrig" and (uid in cgroup or uid.replace("-", "_") in cgroup):
            cmd = " ".join(a.decode(errors="replace") for a in argv if a)
            return Process(name=comm, cmdline=cmd, pid=int(entry.name))
    raise SystemExit(f"no xmrig process of pod {pod['metadata']['name']} on this machine")


def run_cluster(kubeconfig: str, context: str | None, pid: int | None = None) -> dict[str, Any]:
    """Measure a running cluster holding the cryptominer scenario."""
    from falcoir.cluster import connect

    gw = connect(kubeconfig=kubeconfig, context=context)
    pods = gw.list(PODS, None, label_selector="app=cryptominer")
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    if not running:
        raise SystemExit("no running cryptominer pod: play `falcoir lab scenario cryptominer`")
    pod = running[0]
    proc = _miner_process(pod) if pid is None else Process(name="xmrig", pid=pid)

    def reset() -> None:
        gw.stats.reset()

    def stats() -> tuple[int, int, int]:
        snap = gw.stats.snapshot()
        return int(snap["requests"]), int(snap["bytes_received"]), int(snap["critical_path"])

    gw.stats.record()
    reset()
    everything = gw.list(PODS, None)
    baseline = dict(zip(("requests", "bytes"), stats()[:2], strict=True))
    nodes = {(p.get("spec") or {}).get("nodeName") for p in everything}
    results = {label: _measure(gw, reset, stats, fn) for label, fn in cases(pod, proc)}
    return {
        "pods": len(everything),
        "nodes": len(nodes),
        "baseline_list_all": baseline,
        "strategies": results,
    }


def _falcoir(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _stand_in_scenario(kubeconfig: str) -> None:
    """The walkthrough's miner Deployment and a Falco-like pod, for labs whose
    ``falcoir lab scenario cryptominer`` is not there yet."""
    from falcoir.cluster import connect
    from falcoir.core.gateway import DEPLOYMENTS, NAMESPACES

    gw = connect(kubeconfig=kubeconfig)
    script = (
        "cp /bin/bash /tmp/xmrig && exec /tmp/xmrig -c 'sleep 3600; :' "
        "-o pool.example.com:3333 -u wallet_address -p x"
    )
    gw.create(
        DEPLOYMENTS,
        {
            "metadata": {"name": DEPLOY, "namespace": NS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "cryptominer"}},
                "template": {
                    "metadata": {"labels": {"app": "cryptominer"}},
                    "spec": {
                        "containers": [
                            {"name": "miner", "image": "ubuntu:latest",
                             "command": ["/bin/sh", "-c", script]}
                        ]
                    },
                },
            },
        },
    )  # fmt: skip
    gw.create(NAMESPACES, {"metadata": {"name": "falco"}})
    gw.create(
        PODS,
        {
            "metadata": {
                "name": "falco-lab-node",
                "namespace": "falco",
                "labels": {
                    "app.kubernetes.io/name": "falco",
                    "app.kubernetes.io/instance": "falco",
                },
            },
            "spec": {
                "hostPID": True,
                "containers": [
                    {"name": "falco", "image": "falcosecurity/falco:0.41.0",
                     "command": ["sleep", "3600"],
                     "volumeMounts": [{"name": "proc", "mountPath": "/host/proc",
                                       "readOnly": True}]}
                ],
                "volumes": [{"name": "proc", "hostPath": {"path": "/proc"}}],
            },
        },
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = gw.list(PODS, None, label_selector="app=cryptominer") + gw.list(PODS, "falco")
        if len(pods) == 2 and all(
            "running"
            in ((p.get("status") or {}).get("containerStatuses") or [{}])[0].get("state", {})
            for p in pods
        ):
            time.sleep(1.0)  # let the miner exec into /tmp/xmrig
            return
        time.sleep(0.5)
    raise SystemExit("the stand-in scenario did not start")


def run_lab(pods: int, nodes: int) -> dict[str, Any]:
    """Start a lab, load ``pods`` virtual pods over ``nodes`` virtual nodes, play the
    scenario, measure, stop the lab."""
    state = Path(tempfile.mkdtemp(prefix="falcoir-bench-lab-"))
    up = _falcoir("lab", "up", "--detach", "--state-dir", str(state), "--port", "0", "-o", "json")
    if up.returncode != 0:
        raise SystemExit(f"falcoir lab up failed: {up.stderr}")
    try:
        load = _falcoir(
            "lab", "load", "--state-dir", str(state), "--pods", str(pods), "--nodes", str(nodes)
        )
        if load.returncode != 0:
            raise SystemExit(f"falcoir lab load failed: {load.stderr}")
        kubeconfig = str(state / "kubeconfig")
        scen = _falcoir("lab", "scenario", "cryptominer", "--state-dir", str(state))
        if scen.returncode != 0:
            print("(no `falcoir lab scenario cryptominer` yet: using a stand-in)", file=sys.stderr)
            _stand_in_scenario(kubeconfig)
        return run_cluster(kubeconfig, None)
    finally:
        _falcoir("lab", "down", "--state-dir", str(state))
        shutil.rmtree(state, ignore_errors=True)


def _print_table(report: dict[str, Any]) -> None:
    base = report["baseline_list_all"]
    err = sys.stderr
    print(
        f"\ncluster: {report['pods']} pods"
        + (f" on {report['nodes']} nodes" if "nodes" in report else "")
        + f"; baseline LIST all pods: {base['requests']} request, {base['bytes']:,} bytes",
        file=err,
    )
    print(
        f"{'strategy':38} {'requests':>8} {'round trips':>11} {'bytes':>12} {'vs list-all':>11} "
        f"{'ms':>8}",
        file=err,
    )
    for label, r in report["strategies"].items():
        ratio = r["bytes"] / base["bytes"] if base["bytes"] else 0.0
        print(
            f"{label:38} {r['requests']:>8} {r['round_trips']:>11} {r['bytes']:>12,} "
            f"{ratio:>10.4f}x {r['seconds'] * 1000:>8.1f}",
            file=err,
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000", help="pod counts (comma-separated), offline")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=DEFAULT_LATENCY * 1000,
        help="offline: the time each call takes (round trips are counted from overlaps)",
    )
    ap.add_argument("--kubeconfig", help="measure a running cluster holding the scenario")
    ap.add_argument("--context")
    ap.add_argument("--pid", type=int, help="the miner's host pid (default: found locally)")
    ap.add_argument(
        "--lab",
        action="store_true",
        help="start a lab, load --sizes pods over --nodes virtual nodes, play the scenario",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = ap.parse_args(argv)
    if args.kubeconfig:
        reports = [run_cluster(args.kubeconfig, args.context, args.pid)]
    elif args.lab:
        reports = [run_lab(int(s), args.nodes) for s in args.sizes.split(",")]
    else:
        reports = [
            run_offline(int(s), args.nodes, args.latency_ms / 1000) for s in args.sizes.split(",")
        ]
    for r in reports:
        _print_table(r)
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
