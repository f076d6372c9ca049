"""Wall time of ``falcoir collect`` against the walkthrough's manual ``kubectl`` commands.

Starts a falcoir lab (or uses ``--kubeconfig``), runs the cryptominer scenario (or, if
the scenario command is not available, a pod whose ``miner`` container runs
``/tmp/xmrig``), then for each API latency in ``--latency-ms`` (the lab's fault
injection, to stand for a remote API server) times, as a person or a runbook would:

- ``falcoir``: ``python -m falcoir collect --pod NS/POD -c miner -o json`` (a fresh
  process: imports included), the whole bundle sealed and archived;
- ``walkthrough``: the seed walkthrough's commands one after the other: ``kubectl get
  pods -l app=cryptominer``, ``kubectl exec ... ps aux``, ``ls -la /tmp``,
  ``cat /tmp/xmrig``, ``netstat -tulnp``;
- ``same-evidence``: those plus what the bundle also holds: ``sha256sum``, the pod,
  node and owner YAML, events, logs.

Prints a table and the ratio falcoir / manual (goal: at most 0.3), and the collection
phase alone (``elapsed_s`` of the result: without Python start-up, the ``kubernetes``
import and locate). Each falcoir run also records every API request it makes
(``FALCOIR_API_TRACE``): the table gives the number of requests, the round trips on
falcoir's critical path (the longest chain of requests each sent after the previous
one was answered: with an API latency L they alone take at least that many L), the
start-up time before the first request, the TCP connections it opened (each a TLS
handshake; an exec on an idle pooled connection opens none) and the process's CPU
time. falcoir's bytecode is compiled first, as ``pip install`` does (under
``PYTHONDONTWRITEBYTECODE=1`` a checkout would otherwise recompile every module at each
start). Run as root (the lab isolates pods only as root)::

    python benchmarks/collect_bench.py [--runs 3] [--latency-ms 0,50] [-o json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from falcoir.cluster.gateway import TRACE_ENV, Span, critical_path  # noqa: E402

KUBECTL = "/usr/bin/kubectl"
NS = "bench-collect"
MINER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "cryptominer-bench", "namespace": NS, "labels": {"app": "cryptominer"}},
    "spec": {
        "containers": [
            {
                "name": "miner",
                "image": "ubuntu:latest",
                "command": [
                    "/bin/sh",
                    "-c",
                    "cp /bin/sleep /tmp/xmrig && chmod +x /tmp/xmrig && exec /tmp/xmrig 3600",
                ],
            }
        ]
    },
}


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.update(extra)
    return e


def falcoir(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        env=env(**kw.pop("extra_env", {})),  # type: ignore[arg-type]
        check=False,
        timeout=300,
    )


@contextlib.contextmanager
def lab(kubeconfig: str | None) -> Iterator[tuple[Path, Path | None]]:
    if kubeconfig:
        yield Path(kubeconfig), None
        return
    sd = Path(tempfile.mkdtemp(prefix="falcoir-bench-lab-"))
    up = falcoir("lab", "up", "--detach", "--state-dir", str(sd), "--port", "0", "-o", "json")
    if up.returncode != 0:
        raise SystemExit(f"falcoir lab up failed: {up.stderr}")
    try:
        yield sd / "kubeconfig", sd
    finally:
        falcoir("lab", "down", "--state-dir", str(sd))
        shutil.rmtree(sd, ignore_errors=True)


def kubectl(kubeconfig: Path, *args: str, out: Path | None = None) -> float:
    t0 = time.perf_counter()
    with open(out or os.devnull, "wb") as sink:
        subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
            stdout=sink,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=120,
        )
    return time.perf_counter() - t0


def find_miner(kubeconfig: Path, state_dir: Path | None) -> tuple[str, str, str | None]:
    """(namespace, pod, Falco's alert text) of the scenario's miner; starts it if needed
    (``falcoir lab scenario cryptominer``; a plain miner pod when that is missing)."""
    if state_dir is not None:
        sc = falcoir("lab", "scenario", "cryptominer", "--state-dir", str(state_dir), "-o", "json")
        if sc.returncode == 0:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                doc = json.loads(sc.stdout)
                return str(doc["namespace"]), str(doc["pod"]), str(doc["alert_text"])
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=yaml.safe_dump_all([namespace, MINER_POD]),
        text=True,
        capture_output=True,
        check=False,
    )
    name = MINER_POD["metadata"]["name"]  # type: ignore[index]
    for _ in range(100):
        got = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "exec", "-n", NS, str(name), "-c",
             "miner", "--", "ps", "aux"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if "/tmp/xmrig" in got.stdout:
            return NS, str(name), None
        time.sleep(0.2)
    raise SystemExit("the miner pod did not start")


def manual(kubeconfig: Path, ns: str, pod: str, *, full: bool, tmp: Path) -> float:
    ex = ["exec", "-n", ns, pod, "-c", "miner", "--"]
    steps: list[tuple[Sequence[str], Path | None]] = [
        (["get", "pods", "-n", ns, "-l", "app=cryptominer"], None),
        ([*ex, "ps", "aux"], tmp / "ps.txt"),
        ([*ex, "ls", "-la", "/tmp"], tmp / "ls.txt"),
        ([*ex, "cat", "/tmp/xmrig"], tmp / "xmrig"),
        ([*ex, "netstat", "-tulnp"], tmp / "netstat.txt"),
    ]
    if full:
        steps += [
            ([*ex, "sha256sum", "/tmp/xmrig"], tmp / "sha.txt"),
            (["get", "pod", "-n", ns, pod, "-o", "yaml"], tmp / "pod.yaml"),
            (
                ["get", "events", "-n", ns, "--field-selector", f"involvedObject.name={pod}"],
                tmp / "events.txt",
            ),
            (["logs", "-n", ns, pod, "-c", "miner"], tmp / "logs.txt"),
            (["get", "node", "-o", "yaml"], tmp / "node.yaml"),
            (["get", "replicasets,deployments", "-n", ns, "-o", "yaml"], tmp / "owners.yaml"),
        ]
    return sum(kubectl(kubeconfig, *argv, out=out) for argv, out in steps)


@dataclass
class Run:
    wall: float
    code: int
    phase: float
    """The collection phase (``elapsed_s``)."""
    requests: int
    round_trips: int
    startup: float
    """From the process start to its first API request."""
    by_verb: dict[str, int]
    cpu: float
    """The falcoir process's CPU time (user + system), steadier than the wall clock on
    a busy machine."""
    connections: int = -1
    """TCP connections the process opened (-1: the trace does not say)."""
    exec_reused: int = -1
    """Exec sessions on an idle pooled connection (-1: the trace does not say)."""


def run_falcoir(
    kubeconfig: Path, ns: str, pod: str, alert: str | None, out: Path, home: Path
) -> Run:
    """One ``falcoir collect``: from Falco's alert (locate included) when there is one."""
    what = [alert] if alert else ["--pod", f"{ns}/{pod}", "-c", "miner"]
    trace = out.with_name(out.name + ".trace.jsonl")
    t0 = time.perf_counter()
    started = time.monotonic()  # the same clock as the child's (CLOCK_MONOTONIC)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = falcoir(
        "collect", *what, "--out", str(out), "--kubeconfig", str(kubeconfig), "-o", "json",
        extra_env={"FALCOIR_HOME": str(home), TRACE_ENV: str(trace)},
    )  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phase = float("nan")
    with contextlib.suppress(ValueError, KeyError, TypeError):
        phase = float(json.loads(r.stdout)["elapsed_s"])
    spans = read_trace(trace)
    conns, reused = read_counters(trace)
    by_verb: dict[str, int] = {}
    for sp in spans:
        by_verb[sp.verb] = by_verb.get(sp.verb, 0) + 1
    first = min((sp.start for sp in spans), default=float("nan"))
    return Run(
        wall,
        r.returncode,
        phase,
        len(spans),
        critical_path(spans),
        first - started,
        by_verb,
        cpu,
        conns,
        reused,
    )


def read_counters(path: Path) -> tuple[int, int]:
    """The gateway's ``connections`` and ``exec_reused`` at its last trace line."""
    conns = reused = -1
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                d = json.loads(line)
                conns = max(conns, int(d["connections"]))
                reused = max(reused, int(d["exec_reused"]))
    return conns, reused


def read_trace(path: Path) -> list[Span]:
    spans = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                d = json.loads(line)
                spans.append(Span(str(d["verb"]), str(d["what"]), d["start"], d["end"]))
    return spans


def set_latency(state_dir: Path | None, ms: float) -> None:
    if state_dir is None:
        return
    path = state_dir / "faults.json"
    if ms <= 0:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    tmp = path.with_name("faults.json.tmp")
    tmp.write_text(json.dumps({"latency_ms": ms}))
    tmp.replace(path)
    time.sleep(0.5)  # the lab rereads the file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-ms", default="0,50", help="comma-separated API latencies")
    ap.add_argument("--kubeconfig", default=None, help="use this cluster instead of a new lab")
    ap.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = ap.parse_args()
    # As installed: pip compiles falcoir's bytecode at install time, and Python caches it
    # on first import. A checkout run with PYTHONDONTWRITEBYTECODE=1 (as on CI machines)
    # would otherwise compile every module again at each start (60-90 ms) and time that.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            str(Path(__file__).resolve().parents[1] / "falcoir"),
        ],
        check=False,
        capture_output=True,
    )
    rows = []
    with lab(args.kubeconfig) as (kubeconfig, state_dir):
        ns, pod, alert = find_miner(kubeconfig, state_dir)
        work = Path(tempfile.mkdtemp(prefix="falcoir-bench-"))
        try:
            for ms in [float(x) for x in args.latency_ms.split(",") if x.strip()]:
                set_latency(state_dir, ms)
                runs: list[Run] = []
                w_times, s_times = [], []
                for i in range(args.runs):
                    runs.append(
                        run_falcoir(
                            kubeconfig, ns, pod, alert, work / f"ev-{ms}-{i}", work / "home"
                        )
                    )
                    w_times.append(manual(kubeconfig, ns, pod, full=False, tmp=work))
                    s_times.append(manual(kubeconfig, ns, pod, full=True, tmp=work))
                f = statistics.median(r.wall for r in runs)
                w, s = statistics.median(w_times), statistics.median(s_times)
                rows.append(
                    {
                        "latency_ms": ms,
                        "falcoir_s": round(f, 3),
                        "falcoir_collection_phase_s": round(
                            statistics.median(r.phase for r in runs), 3
                        ),
                        "falcoir_startup_s": round(statistics.median(r.startup for r in runs), 3),
                        "falcoir_after_startup_s": round(
                            statistics.median(r.wall - r.startup for r in runs), 3
                        ),
                        "falcoir_cpu_s": round(statistics.median(r.cpu for r in runs), 3),
                        "falcoir_requests": max(r.requests for r in runs),
                        "falcoir_requests_by_verb": runs[-1].by_verb,
                        "falcoir_round_trips": max(r.round_trips for r in runs),
                        "falcoir_connections": max(r.connections for r in runs),
                        "falcoir_exec_reused": min(r.exec_reused for r in runs),
                        "walkthrough_s": round(w, 3),
                        "same_evidence_s": round(s, 3),
                        "ratio_vs_walkthrough": round(f / w, 3),
                        "ratio_vs_same_evidence": round(f / s, 3),
                        "falcoir_exit_codes": [r.code for r in runs],
                    }
                )
            set_latency(state_dir, 0)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.output == "json":
        doc = {"target": f"{ns}/{pod}", "from_alert": bool(alert), "runs": args.runs}
        print(json.dumps({**doc, "results": rows}, indent=2))
        return
    how = "from Falco's alert (locate included)" if alert else "--pod"
    print(f"target {ns}/{pod}, falcoir {how}, median of {args.runs} runs (goal: ratio <= 0.3)")
    print(f"{'latency':>8} {'falcoir':>9} {'(cpu)':>7} {'(start-up)':>11} {'(collect)':>10} "
          f"{'requests':>9} {'round trips':>12} {'conns':>6} {'walkthrough':>12} "
          f"{'same-evid.':>11} {'ratio/walk':>11} {'ratio/same':>11}")  # fmt: skip
    for r in rows:
        print(
            f"{r['latency_ms']:>6.0f}ms {r['falcoir_s']:>8.3f}s {r['falcoir_cpu_s']:>6.3f}s "
            f"{r['falcoir_startup_s']:>10.3f}s "
            f"{r['falcoir_collection_phase_s']:>9.3f}s {r['falcoir_requests']:>9} "
            f"{r['falcoir_round_trips']:>12} {r['falcoir_connections']:>6} "
            f"{r['walkthrough_s']:>11.3f}s "
            f"{r['same_evidence_s']:>10.3f}s {r['ratio_vs_walkthrough']:>11.3f} "
            f"{r['ratio_vs_same_evidence']:>11.3f}"
        )
    print("(cpu: the falcoir process's user + system time; "
          "start-up: process start to its first API request; round trips: the longest "
          "chain of requests each sent after the previous one's answer; conns: TCP "
          "connections opened, the most of any run)")  # fmt: skip


if __name__ == "__main__":
    main()
