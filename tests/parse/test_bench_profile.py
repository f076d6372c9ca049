"""``parse_bench.py --profile`` names where the parser spends its time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _main() -> object:
    spec = importlib.util.spec_from_file_location(
        "parse_bench", REPO / "benchmarks" / "parse_bench.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_profile_lists_the_parser_functions(capsys: pytest.CaptureFixture[str]) -> None:
    main = _main()
    assert callable(main)
    assert main(["--lines", "300", "--profile", "--pure"]) == 0
    out = capsys.readouterr().out
    assert "parser path: pure" in out
    assert "Ordered by: internal time" in out
    assert "split_pairs" in out
    assert "normalize" in out


def test_profile_of_the_accelerated_path_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    from falcoir.core.parse import accel

    if accel.TEXT_ALERT is None:
        pytest.skip("the C accelerator is not built here (tests/parse/test_accel.py builds it)")
    main = _main()
    assert callable(main)
    assert main(["--lines", "300", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "parser path: accelerated" in out
    assert "_speedups.text_alert" in out
    assert "split_pairs" not in out  # no text line fell back to the pure path


def test_cold_start_ratios_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    main = _main()
    assert callable(main)
    assert main(["--lines", "200", "--runs", "1", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["cold_start_ratio"]) == {"python -c pass", "kubectl version --client"}
    ratio = results["cold_start_ratio"]["python -c pass"]
    assert ratio is not None and ratio > 1  # falcoir parse does more than `pass`
