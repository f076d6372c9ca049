"""The CLI shell: version, help, and the exit-code contract."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from falcoir import __version__
from falcoir.cli.app import app
from falcoir.errors import (
    ApiNotFound,
    ClusterUnreachable,
    EvidenceIncomplete,
    ExitCode,
    FalcoirError,
    Forbidden,
    InputError,
    TargetAmbiguous,
    TargetNotFound,
    exit_code_for,
)

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"falcoir {__version__}"


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "falcoir", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"falcoir {__version__}"


def test_exit_codes_match_product_contract() -> None:
    assert [int(c) for c in ExitCode] == list(range(8))
    assert exit_code_for(InputError("x")) == 2
    assert exit_code_for(ClusterUnreachable("x")) == 3
    assert exit_code_for(Forbidden("x")) == 4
    assert exit_code_for(ApiNotFound("x")) == 5
    assert exit_code_for(TargetNotFound("x")) == 5
    assert exit_code_for(TargetAmbiguous("x")) == 6
    assert exit_code_for(EvidenceIncomplete("x")) == 7
    assert exit_code_for(FalcoirError("x")) == 1
    assert exit_code_for(RuntimeError("x")) == 1


def test_exit_codes_documented_in_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in readme
