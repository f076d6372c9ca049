"""``falcoir respond --yes`` against the walkthrough's manual runbook, on the lab.

A lab of its own is started (``falcoir lab up``) with 20 ms of latency injected on every
API request, and the cryptominer scenario is played in a fresh namespace for each run.
Two ways to the same end are timed from the moment the alert is in hand:

- manual: the walkthrough's commands one after the other, as an engineer would script
  them: ``kubectl get pods``, ``kubectl exec`` for ``ps aux``, ``ls -la /tmp``,
  ``netstat -tulnp``, ``sha256sum``, ``kubectl apply`` of a deny-all NetworkPolicy
  (containment), ``kubectl delete pod --wait=false`` (completion; falcoir does not wait
  for the pod to terminate either);
- falcoir: ``python -m falcoir respond ALERT --yes -o json``; containment is the JSON's
  ``timings.containment_s`` (from the process start, imports included), completion the
  wall time until the process exited.

And ``--follow``: a running ``falcoir respond --follow --yes`` is sent the alert on its
stdin; its ``containment_s`` then counts from the moment the alert was read, and is
compared with the lab's round-trip time (a GET of the pod through the same client).

falcoir's bytecode is compiled first (``python -m compileall falcoir``), as ``pip install``
does: under ``PYTHONDONTWRITEBYTECODE=1`` a checkout would otherwise compile every module
again at each start, which no installed falcoir does.

Usage: ``python benchmarks/respond_bench.py [--runs 3] [--latency-ms 20] [--json]``.
Needs root (the lab isolates pods). Prints a table on stderr, JSON on stdout with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

DENY_ALL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all-egress
spec:
  podSelector:
    matchLabels:
      app: cryptominer
  policyTypes: [Egress]
"""


def env_for(state_dir: Path, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["KUBECONFIG"] = str(state_dir / "kubeconfig")
    env["KUBECACHEDIR"] = str(state_dir / "kube-cache")
    env["FALCOIR_HOME"] = str(home)
    return env


def falcoir(*args: str, env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
        **kw,
    )


def play(state_dir: Path, namespace: str) -> Any:
    from falcoir.lab.client import LabClient
    from falcoir.lab.scenario import play_cryptominer

    client = LabClient.from_state_dir(state_dir)
    try:
        client.create("namespaces", {"metadata": {"name": namespace}})
    except Exception as exc:
        if "already" not in str(exc).lower():
            raise
    return play_cryptominer(client, state_dir, namespace=namespace)


def manual(state_dir: Path, env: dict[str, str], ns: str) -> dict[str, float]:
    """The walkthrough's commands, one after the other."""

    def kubectl(*args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [KUBECTL, "-n", ns, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    t0 = time.monotonic()
    pod = kubectl("get", "pods", "-l", "app=cryptominer", "-o", "name").split()[0]
    pod = pod.split("/", 1)[1]
    kubectl("exec", pod, "-c", "miner", "--", "ps", "aux")
    kubectl("exec", pod, "-c", "miner", "--", "ls", "-la", "/tmp")
    kubectl("exec", pod, "-c", "miner", "--", "netstat", "-tulnp")
    kubectl("exec", pod, "-c", "miner", "--", "sha256sum", "/tmp/xmrig")
    kubectl("apply", "-f", "-", stdin=DENY_ALL)
    contained = time.monotonic() - t0
    kubectl("delete", "pod", pod, "--wait=false")
    total = time.monotonic() - t0
    return {"containment_s": contained, "total_s": total}


def with_falcoir(env: dict[str, str], alert: str, out: Path) -> dict[str, float]:
    t0 = time.monotonic()
    proc = falcoir("respond", alert, "--yes", "-o", "json", "--out", str(out), env=env)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"falcoir respond exited {proc.returncode}: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    t = doc["timings"]
    return {
        "containment_s": float(t["containment_s"]),
        "egress_verified_s": float(t["egress_verified_s"]),
        "total_s": wall,
        "total_json_s": float(t["total_s"]),
        "clock": t["clock"],
    }


def round_trip(state_dir: Path, ns: str, pod: str) -> float:
    from falcoir.cluster import connect
    from falcoir.core.gateway import PODS

    gw = connect(str(state_dir / "kubeconfig"))
    gw.get(PODS, pod, ns)
    samples = []
    for _ in range(10):
        t = time.monotonic()
        gw.get(PODS, pod, ns)
        samples.append(time.monotonic() - t)
    return statistics.median(samples)


def follow_mode(env: dict[str, str], alert: str, out: Path) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "falcoir", "respond", "--follow", "-f", "-", "--yes",
         "--no-delete", "-o", "jsonl", "--out", str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    time.sleep(3.0)  # let it start (imports, connection)
    if proc.poll() is not None:
        raise RuntimeError(f"falcoir respond --follow exited early: {proc.communicate()[1]}")
    proc.stdin.write(alert + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"falcoir respond --follow wrote nothing: {proc.communicate()[1]}")
    proc.stdin.close()
    proc.wait(timeout=120)
    doc = json.loads(line)
    t = doc["timings"]
    return {
        "containment_s": float(t["containment_s"]),
        "egress_verified_s": float(t["egress_verified_s"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    # As installed: pip compiles falcoir's bytecode at install time, and Python caches it
    # on first import. A checkout run with PYTHONDONTWRITEBYTECODE=1 (as on CI machines)
    # would otherwise compile every module again at each start (60-90 ms) and time that.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "falcoir")],
        check=False,
        capture_output=True,
    )
    work = Path(tempfile.mkdtemp(prefix="falcoir-respond-bench-"))
    state = work / "lab"
    env = env_for(state, work / "home")
    up = falcoir("lab", "up", "--detach", "--state-dir", str(state), "--port", "0", env=env)
    if up.returncode != 0:
        print(f"falcoir lab up failed: {up.stderr}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"latency_ms": args.latency_ms, "runs": args.runs}
    try:
        from falcoir.lab.server import write_faults

        manual_runs, falcoir_runs, follow_runs, rtts = [], [], [], []
        for i in range(args.runs):
            write_faults(state, {})
            sc = play(state, f"bench-m{i}")
            write_faults(state, {"latency_ms": args.latency_ms})
            manual_runs.append(manual(state, env, sc.namespace))
            write_faults(state, {})
            sc = play(state, f"bench-f{i}")
            write_faults(state, {"latency_ms": args.latency_ms})
            rtts.append(round_trip(state, sc.namespace, sc.pod))
            falcoir_runs.append(with_falcoir(env, sc.alert_text, work / "out"))
            write_faults(state, {})
            sc = play(state, f"bench-w{i}")
            write_faults(state, {"latency_ms": args.latency_ms})
            follow_runs.append(follow_mode(env, json.dumps(sc.alert_json), work / "out"))

        def med(runs: list[dict[str, Any]], key: str) -> float:
            return statistics.median(float(r[key]) for r in runs)

        m_c, m_t = med(manual_runs, "containment_s"), med(manual_runs, "total_s")
        f_c, f_t = med(falcoir_runs, "containment_s"), med(falcoir_runs, "total_s")
        f_v = med(falcoir_runs, "egress_verified_s")
        w_c, w_v = med(follow_runs, "containment_s"), med(follow_runs, "egress_verified_s")
        rtt = statistics.median(rtts)
        results.update(
            manual={"containment_s": m_c, "total_s": m_t, "runs": manual_runs},
            falcoir={
                "containment_s": f_c,
                "egress_verified_s": f_v,
                "total_s": f_t,
                "runs": falcoir_runs,
            },
            ratios={"containment": f_c / m_c, "total": f_t / m_t},
            follow={
                "containment_s": w_c,
                "egress_verified_s": w_v,
                "round_trip_s": rtt,
                "round_trips_to_containment": w_c / rtt,
                "runs": follow_runs,
            },
            goals={
                "total_ratio_max": 0.35,
                "containment_ratio_max": 0.25,
                "follow_round_trips_max": 5,
            },
        )
        print(
            f"latency {args.latency_ms:.0f} ms, median of {args.runs} run(s)\n"
            f"{'':24}{'containment':>12}{'completion':>12}\n"
            f"{'manual (kubectl)':24}{m_c:>11.2f}s{m_t:>11.2f}s\n"
            f"{'falcoir respond --yes':24}{f_c:>11.2f}s{f_t:>11.2f}s"
            f"   (egress verified at {f_v:.2f}s)\n"
            f"{'ratio':24}{f_c / m_c:>12.2f}{f_t / m_t:>12.2f}   (goals 0.25 / 0.35)\n"
            f"--follow: alert-in to policy in force {w_c * 1000:.0f} ms = "
            f"{w_c / rtt:.1f} round trips of {rtt * 1000:.0f} ms (goal 5); verified at "
            f"{w_v * 1000:.0f} ms",
            file=sys.stderr,
        )
        if args.json:
            print(json.dumps(results, indent=2))
    finally:
        falcoir("lab", "down", "--state-dir", str(state), env=env)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
