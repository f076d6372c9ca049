"""Sources the lab builds and runs: the xmrig stand-in, the idle entrypoint, the Falco
stand-in. C sources are compiled with the host's ``gcc`` (cached by source hash)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def asset(name: str) -> Path:
    return ASSETS / name


_LOCK = threading.Lock()


def compile_c(name: str, out_dir: Path) -> Path | None:
    """Compile ``<name>.c`` into ``out_dir/<name>``; ``None`` without a working gcc."""
    with _LOCK:
        return _compile_c(name, out_dir)


def _compile_c(name: str, out_dir: Path) -> Path | None:
    src = ASSETS / f"{name}.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    out = out_dir / name
    stamp = out_dir / f".{name}.{digest}"
    if out.exists() and stamp.exists():
        return out
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name}.{os.getpid()}.tmp"
    try:
        proc = subprocess.run(
            [cc, "-O2", "-o", str(tmp), str(src)], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, out)
    stamp.touch()
    return out
