"""How long `falcoir lab up --detach` takes to answer, from a fresh state dir each time.

Usage: python benchmarks/lab_cold_start.py [RUNS] [--runtime auto|virtual]
Prints min / median / max wall-clock seconds (goal: under 2 s).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5
    extra = sys.argv[2:] if len(sys.argv) > 2 else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="falcoir-bench-") as sd:
            t0 = time.perf_counter()
            up = subprocess.run(
                [sys.executable, "-m", "falcoir", "lab", "up", "--detach", "--state-dir", sd,
                 *[a for a in extra if not a.isdigit()]],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
            subprocess.run([sys.executable, "-m", "falcoir", "lab", "down", "--state-dir", sd],
                           capture_output=True, env=env, check=False)  # fmt: skip
            if up.returncode != 0:
                sys.exit(f"lab up failed: {up.stderr}")
    print(
        f"lab up --detach over {runs} runs: min {min(times):.2f} s, "
        f"median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
