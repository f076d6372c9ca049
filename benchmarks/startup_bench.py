"""Start-up of the hot commands: from process start to the first Kubernetes API request.

What it measures, for ``respond``, ``collect``, ``locate`` (and ``parse``, which sends
nothing):

1. Time to first request: a tiny local HTTPS "API server" (a thread of this process,
   its own CA and certificate from :mod:`falcoir.lab.pki`) records the monotonic time
   each request arrives; the command is started with ``python -m falcoir CMD ALERT ...``
   and a kubeconfig pointing at it. The figure is the arrival of the first request
   minus the moment just before the process was spawned (so it includes the
   interpreter's own start, like ``python -c pass``). The server answers 404 to every
   API request, so the command stops right after (exit 5); ``/version`` gets a version
   document. ``parse`` is timed to its exit instead.
2. The same for a baseline tree (``--before REF``, default the merge base of ``HEAD``
   and ``main``: this branch's starting point): the package as it is in that revision,
   extracted with ``git archive`` to a temporary directory and run with the same
   interpreter and libraries, interleaved run by run with this tree's.
3. Two bytecode situations: ``cached`` (``.pyc`` files written once to a private
   ``PYTHONPYCACHEPREFIX``, as after ``pip install``) and ``source``
   (``PYTHONDONTWRITEBYTECODE=1`` and no cache: every module compiled at each start,
   which is what an editable checkout gets when that variable is set).
4. The import breakdown of each command (``-X importtime``, bytecode cached) up to its
   first request (an audit hook on ``http.client.send`` lists the modules loaded by
   then): time per top-level package, and which of the heavy ones (pydantic,
   kubernetes, rich, bagit, yaml, ...) were loaded.

5. With ``--lab``: ``respond --yes -o json`` against a lab of its own (20 ms of latency
   on every API request, root needed), a fresh cryptominer scenario per run, before
   and after interleaved: the JSON's own ``timings.alert_read_s``, the start of its
   locate step (``steps[].started_s``: the first request), ``containment_s`` and
   ``total_s``, all counted from the process start.

Usage, from the repository root::

    PYTHONPATH=. python benchmarks/startup_bench.py                 # vs merge base, 7 runs
    PYTHONPATH=. python benchmarks/startup_bench.py --before 4da39c6 --runs 11
    PYTHONPATH=. python benchmarks/startup_bench.py --before none --json
    PYTHONPATH=. python benchmarks/startup_bench.py --lab --runs 5     # and the lab

Figures are medians (and minima) of ``--runs`` runs, wall clock, on whatever else the
machine is doing: compare rows from the same run. ``process cpu`` (user + system time
of the whole run, which ends soon after the first request) is steadier on a busy
machine, and ``cpu to 1st req`` (the process's CPU time, every thread's, when its first
request is sent: an audit hook, one more run each) steadier still.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALERT = (
    "17:02:06.572 - Critical - Suspicious crypto miner process (name=xmrig, "
    "cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=623)"
)
ENV_SWITCH = "FALCOIR_TYPER_COERCION"
HEAVY = ("pydantic", "kubernetes", "rich", "bagit", "yaml", "urllib3", "websocket", "typer")


class Recorder:
    """Arrival times of the requests the fake API server received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, str, str]] = []

    def add(self, method: str, path: str) -> None:
        with self.lock:
            self.arrivals.append((time.monotonic(), method, path))

    def clear(self) -> None:
        with self.lock:
            self.arrivals.clear()

    def first(self, since: float) -> tuple[float, str] | None:
        with self.lock:
            hits = [(t, p) for t, _, p in self.arrivals if t >= since]
        return min(hits) if hits else None


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            recorder.add(self.command, self.path)
            if self.path.startswith("/version"):
                status, doc = 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}
            else:
                status, doc = (
                    404,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "NotFound",
                        "message": "startup_bench: nothing here",
                        "code": 404,
                    },
                )
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that exits mid-handshake is no news here


def start_server(state: Path) -> tuple[ThreadingHTTPServer, Recorder, Path]:
    """The fake API server on a free port, and a kubeconfig for it."""
    from falcoir.lab.pki import ensure_certificates, ensure_tokens, write_kubeconfig

    state.mkdir(parents=True, exist_ok=True)
    _ca, crt, key = ensure_certificates(state)
    tokens = ensure_tokens(state)
    recorder = Recorder()
    server = _QuietServer(("127.0.0.1", 0), _handler(recorder))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = write_kubeconfig(state, f"https://127.0.0.1:{server.server_address[1]}", tokens)
    return server, recorder, kubeconfig


def extract_tree(ref: str, dest: Path) -> Path:
    """The ``falcoir`` package as of git ``ref``, under ``dest``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "falcoir"],
        check=True,
        capture_output=True,
    ).stdout
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    return dest


def commands(out: Path) -> dict[str, list[str]]:
    return {
        "respond": ["respond", ALERT, "--yes", "--dry-run", "-o", "json", "--out", str(out)],
        "collect": ["collect", ALERT, "-o", "json", "--out", str(out)],
        "locate": ["locate", ALERT, "-o", "json"],
        "parse": ["parse", ALERT, "-o", "json"],
    }


def env_for(tree: Path, kubeconfig: Path, bytecode: str, pyc: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    env["KUBECONFIG"] = str(kubeconfig)
    env["HOME"] = str(kubeconfig.parent)  # no ~/.kube, no incident store of the user's
    env.pop(ENV_SWITCH, None)
    if bytecode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pyc)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def run_once(argv: list[str], env: dict[str, str], recorder: Recorder) -> dict[str, Any]:
    recorder.clear()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    # cwd: not the checkout, or ``-m falcoir`` would import it instead of PYTHONPATH's.
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=env["HOME"])
    end = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    first = recorder.first(start)
    api = [(t, p) for t, _, p in list(recorder.arrivals) if t >= start]
    first_api = next((t for t, p in sorted(api) if not p.startswith("/version")), None)
    return {
        "exit": proc.returncode,
        "wall_s": end - start,
        "cpu_s": cpu,
        "first_request_s": (first[0] - start) if first else None,
        "first_path": first[1] if first else None,
        "first_api_request_s": (first_api - start) if first_api else None,
        "stderr": proc.stderr.decode(errors="replace")[-300:],
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values)}


WRAPPER = """
import json, os, sys
seen = []
def hook(event, args):
    if event == "http.client.send" and not seen:
        seen.append(sorted(sys.modules))
        with open(os.environ["STARTUP_BENCH_MODULES"], "w") as fh:
            json.dump(seen[0], fh)
sys.addaudithook(hook)
import runpy
sys.argv = ["falcoir", *sys.argv[1:]]
runpy.run_module("falcoir", run_name="__main__", alter_sys=True)
"""
"""Runs falcoir and writes the names of the modules loaded when the first HTTP request
is sent (an audit hook on ``http.client.send``)."""


CPU_WRAPPER = """
import os, sys, time
done = []
def hook(event, args):
    if event == "http.client.send" and not done:
        done.append(time.process_time())
        with open(os.environ["STARTUP_BENCH_CPU"], "w") as fh:
            fh.write(repr(done[0]))
sys.addaudithook(hook)
import runpy
sys.argv = ["falcoir", *sys.argv[1:]]
runpy.run_module("falcoir", run_name="__main__", alter_sys=True)
"""
"""Runs falcoir and writes the process's CPU time (every thread's, from its start) when
the first HTTP request is sent: steadier than wall times on a busy machine."""


def cpu_to_first_request(argv: list[str], env: dict[str, str]) -> float | None:
    """CPU seconds the process used before its first request (:data:`CPU_WRAPPER`)."""
    out = Path(env["HOME"]) / "cpu.txt"
    out.unlink(missing_ok=True)
    subprocess.run(
        [argv[0], "-c", CPU_WRAPPER, *argv[3:]],
        env={**env, "STARTUP_BENCH_CPU": str(out)},
        capture_output=True,
        timeout=60,
        cwd=env["HOME"],
    )
    return float(out.read_text()) if out.exists() else None


def import_breakdown(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Import time per top-level package (``-X importtime``, self times summed), counting
    only the modules already loaded when the first request was sent (all of them for a
    command that sends none)."""
    listing = Path(env["HOME"]) / "modules.json"
    listing.unlink(missing_ok=True)
    proc = subprocess.run(
        [argv[0], "-X", "importtime", "-c", WRAPPER, *argv[3:]],
        env={**env, "STARTUP_BENCH_MODULES": str(listing)},
        capture_output=True,
        timeout=60,
        cwd=env["HOME"],
    )
    before_request = set(json.loads(listing.read_text())) if listing.exists() else None
    per_top: dict[str, float] = {}
    for line in proc.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        try:
            self_us = int(parts[0])
        except ValueError:
            continue
        name = parts[2].strip()
        if before_request is not None and name not in before_request:
            continue
        top = name.split(".")[0]
        # Imports in other threads make -X importtime report negative self times.
        per_top[top] = per_top.get(top, 0.0) + max(self_us, 0) / 1e6
    top = sorted(per_top.items(), key=lambda kv: -kv[1])
    return {
        "until": "first request" if before_request is not None else "exit",
        "total_s": sum(per_top.values()),
        "top": [(k, round(v, 4)) for k, v in top[:12]],
        "heavy_loaded": [h for h in HEAVY if h in per_top],
    }


def lab_runs(trees: dict[str, Path], runs: int, work: Path) -> dict[str, Any]:
    """respond's own timings on a lab, per tree (see the module docstring, 5.)."""
    from falcoir.lab.client import LabClient
    from falcoir.lab.scenario import play_cryptominer

    state = work / "lab"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(work)}
    env.pop("KUBECONFIG", None)
    up = subprocess.run(
        [sys.executable, "-m", "falcoir", "lab", "up", "--detach", "--state-dir", str(state),
         "--port", "0", "--latency-ms", "20"],
        capture_output=True, text=True, env=env, timeout=300, cwd=work,
    )  # fmt: skip
    if up.returncode != 0:
        raise RuntimeError(f"falcoir lab up failed: {up.stderr[-2000:]}")
    per_tree: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    try:
        client = LabClient.from_state_dir(state)
        for i in range(runs):
            for label, tree in trees.items():
                ns = f"su{i}{label[0]}{os.getpid() % 1000}"
                client.create("namespaces", {"metadata": {"name": ns}})
                scenario = play_cryptominer(client, state, namespace=ns)
                run_env = {
                    **os.environ,
                    "PYTHONPATH": str(tree),
                    "HOME": str(work),
                    "FALCOIR_HOME": str(work / f"home-{label}"),
                    "KUBECONFIG": str(state / "kubeconfig"),
                }
                run_env.pop(ENV_SWITCH, None)
                proc = subprocess.run(
                    [sys.executable, "-m", "falcoir", "respond", scenario.alert_text, "--yes",
                     "-o", "json", "--out", str(work / f"out-{label}")],
                    capture_output=True, text=True, env=run_env, timeout=300, cwd=work,
                )  # fmt: skip
                if proc.returncode != 0:
                    raise RuntimeError(f"respond ({label}) exited {proc.returncode}: "
                                       f"{proc.stderr[-1500:]}")  # fmt: skip
                doc = json.loads(proc.stdout)
                timings = doc["timings"]
                starts = {s["name"]: s.get("started_s") for s in doc.get("steps", [])}
                per_tree[label].append(
                    {
                        "alert_read_s": float(timings["alert_read_s"]),
                        "locate_started_s": float(starts["locate"]),
                        "containment_s": float(timings["containment_s"]),
                        "total_s": float(timings["total_s"]),
                    }
                )
    finally:
        subprocess.run(
            [sys.executable, "-m", "falcoir", "lab", "down", "--state-dir", str(state)],
            capture_output=True, env=env, timeout=120, cwd=work,
        )  # fmt: skip
    out: dict[str, Any] = {}
    for label, rows in per_tree.items():
        out[label] = {k: summary([r[k] for r in rows]) for k in rows[0]} if rows else {}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", default="merge-base", help="git ref to compare with ('none': skip)")
    ap.add_argument(
        "--bytecode", choices=("cached", "source", "both"), default="both", help="see above"
    )
    ap.add_argument("--only", nargs="*", help="commands to time (default: all)")
    ap.add_argument("--json", action="store_true", help="JSON on stdout")
    ap.add_argument("--lab", action="store_true", help="also respond's timings on a lab (root)")
    args = ap.parse_args()

    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="falcoir-startup-"))
    results: dict[str, Any] = {"runs": args.runs, "trees": {}}
    before = args.before
    try:
        server, recorder, kubeconfig = start_server(tmp / "api")
        # A copy without __pycache__: "source" must compile every module, as for "before".
        after = tmp / "after"
        shutil.copytree(
            ROOT / "falcoir", after / "falcoir", ignore=shutil.ignore_patterns("__pycache__")
        )
        trees = {"after": after}
        before = args.before
        if before == "merge-base":
            before = subprocess.run(
                ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()[:12]
        if before != "none":
            trees["before"] = extract_tree(before, tmp / "before")
        modes = ("cached", "source") if args.bytecode == "both" else (args.bytecode,)
        cmds = commands(tmp / "out")
        if args.only:
            cmds = {k: v for k, v in cmds.items() if k in args.only}
        baseline: dict[str, Any] = {}
        for mode in modes:
            env = env_for(ROOT, kubeconfig, mode, tmp / "pyc-base")
            passes = [run_once([py, "-c", "pass"], env, recorder) for _ in range(args.runs)]
            baseline[mode] = summary([r["wall_s"] for r in passes])
            baseline[mode]["cpu"] = summary([r["cpu_s"] for r in passes])
        results["python_c_pass"] = baseline
        for mode in modes:
            for name, cmd in cmds.items():
                key = "wall_s" if name == "parse" else "first_request_s"
                runs: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
                envs = {
                    label: env_for(tree, kubeconfig, mode, tmp / f"pyc-{label}")
                    for label, tree in trees.items()
                }
                argv = [py, "-m", "falcoir", *cmd]
                if mode == "cached":
                    for label in trees:
                        run_once(argv, envs[label], recorder)  # writes the bytecode
                for _ in range(args.runs):  # interleaved: the machine's load hits both
                    for label in trees:
                        row = run_once(argv, envs[label], recorder)
                        if name != "parse":
                            row["cpu_first_s"] = cpu_to_first_request(argv, envs[label])
                        runs[label].append(row)
                for label in trees:
                    done = runs[label]
                    values = [r[key] for r in done if r[key] is not None]
                    entry: dict[str, Any] = {
                        "measure": "exit" if name == "parse" else "first request",
                        "exit_codes": sorted({r["exit"] for r in done}),
                        "first_path": done[-1]["first_path"],
                    }
                    if values:
                        entry.update(summary(values))
                    else:
                        entry["error"] = done[-1]["stderr"]
                    entry["cpu"] = summary([r["cpu_s"] for r in done])
                    cpu_first = [r["cpu_first_s"] for r in done if r.get("cpu_first_s")]
                    if cpu_first:
                        entry["cpu_first"] = summary(cpu_first)
                    api_values = [r["first_api_request_s"] for r in done]
                    if name != "parse" and all(v is not None for v in api_values):
                        entry["first_api_request"] = summary([v for v in api_values if v])
                    if mode == "cached":
                        entry["imports"] = import_breakdown(argv, envs[label])
                    tree_res = results["trees"].setdefault(label, {})
                    tree_res.setdefault(mode, {})[name] = entry
        server.shutdown()
        if args.lab:
            results["lab"] = lab_runs(trees, args.runs, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    report(results, before)
    return 0


def report(results: dict[str, Any], before_ref: str) -> None:
    out = sys.stderr
    if "lab" in results:
        out.write("lab, respond --yes -o json (its own timings, from the process start):\n")
        for label, figures in results["lab"].items():
            name = before_ref if label == "before" else "this tree"
            cells = ", ".join(
                f"{k[:-2]} {v['median']:.3f} ({v['min']:.3f})" for k, v in figures.items()
            )
            out.write(f"  {name:>12}: {cells}\n")
        out.write("\n")
    base = results["python_c_pass"]
    out.write(f"median (min) of {results['runs']} runs, seconds from spawn\n")
    for mode, fig in base.items():
        cpu = fig["cpu"]
        out.write(
            f"  python -c pass [{mode}]: {fig['median']:.3f} ({fig['min']:.3f}), "
            f"process cpu {cpu['median']:.3f} ({cpu['min']:.3f})\n"
        )
    trees = results["trees"]
    labels = [k for k in ("before", "after") if k in trees]
    for mode in base:
        out.write(f"\nbytecode {mode}:\n")
        header = "  command  measure         " + "".join(
            f"{(before_ref if lb == 'before' else 'this tree'):>22}" for lb in labels
        )
        out.write(header + "\n")
        for name in trees[labels[-1]][mode]:
            cells = []
            for lb in labels:
                entry = trees[lb][mode].get(name, {})
                if "median" in entry:
                    cells.append(f"{entry['median']:.3f} ({entry['min']:.3f})")
                else:
                    cells.append("-")
            measure = trees[labels[-1]][mode][name]["measure"]
            out.write(f"  {name:<8} {measure:<15} " + "".join(f"{c:>22}" for c in cells) + "\n")
            cpus = [trees[lb][mode].get(name, {}).get("cpu") for lb in labels]
            cells = [f"{c['median']:.3f} ({c['min']:.3f})" if c else "-" for c in cpus]
            out.write(f"  {'':<8} {'process cpu':<15} " + "".join(f"{c:>22}" for c in cells) + "\n")
            firsts = [trees[lb][mode].get(name, {}).get("cpu_first") for lb in labels]
            if any(firsts):
                cells = [f"{c['median']:.3f} ({c['min']:.3f})" if c else "-" for c in firsts]
                out.write(
                    f"  {'':<8} {'cpu to 1st req':<15} " + "".join(f"{c:>22}" for c in cells) + "\n"
                )
    for lb in labels:
        cached = trees[lb].get("cached")
        if not cached:
            continue
        out.write(
            f"\nimports ({'before: ' + before_ref if lb == 'before' else 'this tree'}, "
            "bytecode cached; self time summed per top-level package):\n"
        )
        for name, entry in cached.items():
            imp = entry.get("imports")
            if not imp:
                continue
            tops = ", ".join(f"{k} {v * 1000:.0f}" for k, v in imp["top"][:8])
            out.write(f"  {name:<8} until {imp['until']}: {imp['total_s'] * 1000:.0f} ms: {tops}\n")
            out.write(f"  {'':<8} heavy imported: {', '.join(imp['heavy_loaded']) or 'none'}\n")


if __name__ == "__main__":
    raise SystemExit(main())
