"""How long `falcoir lab up --detach` takes to answer, from a fresh state dir each time.

Usage: python benchmarks/lab_cold_start.py [RUNS] [--cold] [--runtime auto|virtual]
Prints min / median / max wall-clock seconds (goal: under 2 s on a cold machine).

``--cold`` evicts, before each run, the files a lab start reads (the Python standard
library, site-packages, this repository) from the page cache with
``posix_fadvise(DONTNEED)``: a cold machine's disk reads, without dropping every other
process's cache (pages mapped by running processes stay, as they would after boot).
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


def evict_page_cache() -> int:
    """Drop the lab's files from the page cache; the number of files evicted."""
    import site
    import sysconfig

    roots = {
        Path(sysconfig.get_paths()["stdlib"]),
        ROOT / "falcoir",
        *map(Path, site.getsitepackages()),
    }
    count = 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                try:
                    fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    count += 1
                except OSError:
                    pass
                finally:
                    os.close(fd)
    return count


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5
    extra = [a for a in sys.argv[1:] if not a.isdigit() and a != "--cold"]
    cold = "--cold" in sys.argv
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="falcoir-bench-") as sd:
            if cold:
                evict_page_cache()
            t0 = time.perf_counter()
            up = subprocess.run(
                [sys.executable, "-m", "falcoir", "lab", "up", "--detach", "--state-dir", sd,
                 *extra],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
            subprocess.run([sys.executable, "-m", "falcoir", "lab", "down", "--state-dir", sd],
                           capture_output=True, env=env, check=False)  # fmt: skip
            if up.returncode != 0:
                sys.exit(f"lab up failed: {up.stderr}")
    print(
        f"lab up --detach ({'cold' if cold else 'warm'} page cache) over {runs} runs: "
        f"min {min(times):.2f} s, "
        f"median {statistics.median(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
