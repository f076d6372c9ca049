"""The benchmark still runs (small): generation, parsing every line, the report keys."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from falcoir.core.parse import parse_text

REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "parse_bench", REPO / "benchmarks" / "parse_bench.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_log_parses_without_problems(tmp_path: Path) -> None:
    bench = _bench()
    bench.generate(tmp_path / "all.log", tmp_path / "t.log", tmp_path / "j.log", 1000, seed=7)
    report = parse_text((tmp_path / "all.log").read_text())
    assert report.problems == ()
    assert report.skipped == 20  # every 50th line is Falco's own log
    assert len(report.alerts) == 980
    assert all(a.process.cmdline for a in report.alerts)
    assert all(a.container.id or a.process.pid for a in report.alerts)


def test_benchmark_main_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    assert bench.main(["--lines", "400", "--runs", "1", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["text"]["alerts"] + results["json"]["alerts"] == results["mixed"]["alerts"]
    assert results["mixed"]["lines"] == 400
    assert set(results["cold_start_s"]) == {
        "falcoir parse",
        "python -c pass",
        "kubectl version --client",
    }
    assert results["cold_start_s"]["falcoir parse"] is not None
    assert "goals" in results
