"""The locate benchmark runs, and node-scoped strategies cost the same whatever the size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "locate_bench", ROOT / "benchmarks" / "locate_bench.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["locate_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_requests_do_not_grow_with_the_cluster() -> None:
    bench = _bench()
    small = bench.run_offline(100, 10)
    big = bench.run_offline(1000, 10)
    for label in (
        "k8s-fields",
        "container-id (node known)",
        "host-pid (node known)",
        "pod-flag",
        "scan (-n default)",
    ):
        assert small["strategies"][label]["requests"] == big["strategies"][label]["requests"]
        assert big["strategies"][label]["requests"] <= 6
        assert big["strategies"][label]["bytes"] < big["baseline_list_all"]["bytes"] / 5
    for label, r in big["strategies"].items():
        assert r["vpid"] == (None if label == "pod-flag" else 7), label
