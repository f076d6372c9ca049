"""The lab's Linux runtime, driven directly: pod start, exec and kill latencies.

Usage: python benchmarks/lab_runtime.py [PODS]   (as root on Linux)
Prints min / median / max seconds for run_pod (ubuntu profile, netns + veth + cgroups
+ shim), exec of `true` (non-TTY and TTY), kill_pod with grace 0, and shutdown.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from falcoir.lab.linux import LinuxRuntime, can_isolate  # noqa: E402


class _Events:
    def pod_status(self, *args: Any) -> None:
        pass

    def pod_event(self, *args: Any) -> None:
        pass


def _line(what: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (
        f"{what:<24} n={len(ms):<3} min {min(ms):7.1f} ms  "
        f"median {statistics.median(ms):7.1f} ms  max {max(ms):7.1f} ms"
    )


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="falcoir-bench-rt-") as sd:
        rt = LinuxRuntime(Path(sd), "lab-node")
        t0 = time.perf_counter()
        await rt.start(_Events())
        print(_line("start", [time.perf_counter() - t0]))
        pods, starts = [], []
        for i in range(n):
            pod = {
                "metadata": {"name": f"b{i}", "namespace": "default", "uid": f"bench-{i}"},
                "spec": {
                    "containers": [{"name": "c", "image": "ubuntu", "command": ["sleep", "1000"]}]
                },
            }
            t0 = time.perf_counter()
            await rt.run_pod(pod)
            starts.append(time.perf_counter() - t0)
            pods.append(pod)
        print(_line("run_pod", starts))
        for tty in (False, True):
            execs = []
            for _ in range(20):
                t0 = time.perf_counter()
                proc = await rt.exec(pods[0], "c", ["true"], stdin=False, tty=tty)
                await proc.stdout.read()
                await proc.wait()
                execs.append(time.perf_counter() - t0)
            print(_line(f"exec true (tty={tty})", execs))
        kills = []
        for pod in pods[: n // 2]:
            t0 = time.perf_counter()
            await rt.kill_pod(pod, 0)
            kills.append(time.perf_counter() - t0)
        if kills:
            print(_line("kill_pod (grace 0)", kills))
        t0 = time.perf_counter()
        await rt.shutdown()
        print(_line(f"shutdown ({n - len(kills)} pods)", [time.perf_counter() - t0]))


if __name__ == "__main__":
    ok, why = can_isolate()
    if not ok:
        sys.exit(f"needs an isolating runtime: {why}")
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
