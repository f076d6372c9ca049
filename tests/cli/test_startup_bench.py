"""benchmarks/startup_bench.py runs and measures what it says (one quick run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_startup_bench_one_run() -> None:
    pytest.importorskip("cryptography")  # the fake API server's certificate
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "startup_bench.py"),
            "--runs",
            "1",
            "--before",
            "none",
            "--bytecode",
            "cached",
            "--only",
            "locate",
            "parse",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["python_c_pass"]["cached"]["median"] > 0
    after = doc["trees"]["after"]["cached"]
    locate = after["locate"]
    assert locate["measure"] == "first request"
    assert locate["exit_codes"] == [5]  # the fake API answers 404: pod not found
    assert locate["first_path"].startswith("/api")
    assert 0 < locate["median"] < 30  # one run on a busy machine: no ordering claims
    assert locate["imports"]["until"] == "first request"
    assert "urllib3" in locate["imports"]["heavy_loaded"]
    assert "pydantic" not in locate["imports"]["heavy_loaded"]
    parse = after["parse"]
    assert parse["measure"] == "exit" and parse["exit_codes"] == [0]
    assert parse["imports"]["until"] == "exit"
    assert "first request" in proc.stderr and "python -c pass" in proc.stderr
