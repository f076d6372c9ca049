"""Fixtures of the parser's tests: the C accelerator, built when it is not installed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

from falcoir.core.parse import accel

REPO = Path(__file__).resolve().parents[2]


def _build_into(tmp: Path) -> ModuleType | None:
    """Compile the extension with setup.py into ``tmp`` and load it (not into sys.modules)."""
    cc = str(sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return None
    out = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "build_ext",
            "--build-lib",
            str(tmp / "lib"),
            "--build-temp",
            str(tmp / "tmp"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = list((tmp / "lib").rglob("_speedups*.so")) if out.returncode == 0 else []
    if not found:
        pytest.fail(f"a C compiler is here but _speedups did not build:\n{out.stderr[-3000:]}")
    spec = importlib.util.spec_from_file_location("falcoir.core.parse._speedups", found[0])
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def speedups(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The C module: the installed one when it is in use, else one built from source."""
    if accel.TEXT_ALERT is not None:
        from falcoir.core.parse import _speedups

        return _speedups
    if os.environ.get("FALCOIR_PURE_PARSER", "") not in ("", "0"):
        pytest.skip("FALCOIR_PURE_PARSER is set: only the pure path runs")
    mod = _build_into(tmp_path_factory.mktemp("speedups"))
    if mod is None:
        pytest.skip("no C compiler: falcoir runs its pure-Python parser only")
    assert accel.configure(mod) is not None, "the built _speedups does not match accel.py"
    return mod


@pytest.fixture(scope="session")
def fast(speedups: ModuleType) -> accel.TextAlert:
    fn: accel.TextAlert = speedups.text_alert
    return fn
