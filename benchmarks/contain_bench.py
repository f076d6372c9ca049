"""Time to containment: ``falcoir quarantine`` against the same cut made by hand.

Starts a falcoir lab (enforcing NetworkPolicies), plays the cryptominer scenario, and
for each API latency in ``--latency-ms`` (the lab's fault injection, standing for a
remote API server) times, each run from a fresh process as a person or runbook would:

- ``falcoir``: ``python -m falcoir quarantine -f ALERT --yes -o json``: locate from the
  alert, RBAC pre-check, baseline probe, policy, label, verification from inside the
  pod. ``contain_s`` is when the label (the last change) was logged, counted from the
  process start; ``total_s`` includes the verification (a dropped probe waits 3 s).
- ``kubectl``: ``kubectl apply`` of a deny-all-egress policy on a quarantine label, then
  ``kubectl label pod`` (``contain_s``), then one ``kubectl exec ... bash -c
  'exec 3<>/dev/tcp/pool.example.com/3333'`` to check (``total_s``). This assumes the
  person already knows the pod's name; falcoir starts from the alert line.

Each run is released (``falcoir release``) before the next. Run as root::

    python benchmarks/contain_bench.py [--runs 3] [--latency-ms 0,50] [-o json]
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
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KUBECTL = "/usr/bin/kubectl"


def run(argv: list[str], home: Path, stdin: str | None = None) -> tuple[float, str, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["FALCOIR_HOME"] = str(home)
    env.pop("KUBECONFIG", None)
    t0 = time.time()
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=300)
    return t0, p.stdout, p.returncode


def falcoir_run(kc: Path, home: Path, alert: Path) -> dict[str, float]:
    t0, out, rc = run(
        [sys.executable, "-m", "falcoir", "quarantine", "-f", str(alert), "--yes", "-o", "json",
         "--kubeconfig", str(kc)],
        home,
    )  # fmt: skip
    total = time.time() - t0
    doc = json.loads(out)
    log = home / "incidents" / doc["incident"] / "actions.jsonl"
    last = [json.loads(line) for line in log.read_text().splitlines()][-1]
    at = datetime.fromisoformat(last["time"].replace("Z", "+00:00")).timestamp()
    run([sys.executable, "-m", "falcoir", "release", "--incident", doc["incident"], "--yes",
         "--kubeconfig", str(kc)], home)  # fmt: skip
    return {"contain_s": at - t0, "total_s": total, "exit": rc,
            "blocked": doc["verified"]["egress_blocked"]}  # fmt: skip


def kubectl_run(kc: Path, home: Path, ns: str, pod: str) -> dict[str, float]:
    k = [KUBECTL, "--kubeconfig", str(kc), "-n", ns]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "manual-quarantine", "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"quarantine": "true"}},
                 "policyTypes": ["Egress"]},
    }  # fmt: skip
    t0, _, _ = run([*k, "apply", "-f", "-"], home, stdin=yaml.safe_dump(policy))
    run([*k, "label", "pod", pod, "quarantine=true", "--overwrite"], home)
    contain = time.time() - t0
    _, _, rc = run([*k, "exec", pod, "-c", "miner", "--", "timeout", "3", "bash", "-c",
                    "exec 3<>/dev/tcp/pool.example.com/3333"], home)  # fmt: skip
    total = time.time() - t0
    run([*k, "label", "pod", pod, "quarantine-"], home)
    run([*k, "delete", "networkpolicy", "manual-quarantine"], home)
    return {"contain_s": contain, "total_s": total, "exit": 0, "blocked": rc != 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-ms", default="0,50")
    ap.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = ap.parse_args()

    from falcoir.lab.scenario import play_cryptominer
    from tests.plugins.lab import start_lab

    results: list[dict[str, Any]] = []
    home = Path(tempfile.mkdtemp(prefix="falcoir-contain-bench-"))
    try:
        with start_lab() as lab:
            sc = play_cryptominer(lab.client, lab.state_dir)
            alert = home / "alert.txt"
            alert.write_text(sc.alert_text + "\n")
            for latency in [float(x) for x in args.latency_ms.split(",")]:
                lab.set_faults(latency_ms=latency)
                for tool in ("falcoir", "kubectl"):
                    runs = [
                        falcoir_run(lab.kubeconfig, home, alert)
                        if tool == "falcoir"
                        else kubectl_run(lab.kubeconfig, home, sc.namespace, sc.pod)
                        for _ in range(args.runs)
                    ]
                    results.append(
                        {
                            "tool": tool,
                            "latency_ms": latency,
                            "contain_s": round(statistics.median(r["contain_s"] for r in runs), 3),
                            "total_s": round(statistics.median(r["total_s"] for r in runs), 3),
                            "all_blocked": all(r["blocked"] for r in runs),
                        }
                    )
                lab.clear_faults()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.output == "json":
        print(json.dumps(results, indent=2))
        return
    print(f"{'tool':8} {'latency':>8} {'contain_s':>10} {'total_s':>8}  blocked")
    for r in results:
        print(f"{r['tool']:8} {r['latency_ms']:>8.0f} {r['contain_s']:>10.2f} "
              f"{r['total_s']:>8.2f}  {r['all_blocked']}")  # fmt: skip


if __name__ == "__main__":
    main()
