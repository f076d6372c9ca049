"""Fixtures that start falcoir labs for end-to-end tests.

- ``lab`` (session): one lab for the whole session, in its own temp state dir on a free
  port, started with ``falcoir lab up --detach`` and stopped with ``falcoir lab down``.
- ``fresh_namespace`` (function): a unique namespace in that lab, deleted afterwards.
- :func:`start_lab`: a context manager for tests that need a lab of their own (another
  runtime, virtual nodes, faults that must not disturb other tests).

Every lab is scoped to its state dir and port, so parallel sessions do not collide.
Skips cleanly when the ``lab`` extra (aiohttp, cryptography) is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = "/usr/bin/kubectl"


def lab_available() -> str | None:
    """``None`` when a lab can run here, else the reason it cannot."""
    for mod in ("aiohttp", "cryptography"):
        if importlib.util.find_spec(mod) is None:
            return f"the lab extra is not installed ({mod} missing): pip install 'falcoir[lab]'"
    return None


def falcoir_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.update(extra)
    return env


def run_falcoir(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falcoir", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=falcoir_env(),
        check=False,
        **kw,
    )


@dataclass
class Lab:
    """A running lab: its state dir, kubeconfig, a raw-JSON client and kubectl."""

    state_dir: Path
    server: str = ""
    runtime: str = ""
    _client: Any = field(default=None, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def client(self) -> Any:
        """A :class:`falcoir.lab.client.LabClient` with the admin identity."""
        if self._client is None:
            from falcoir.lab.client import LabClient

            self._client = LabClient.from_state_dir(self.state_dir)
        return self._client

    def restricted_client(self) -> Any:
        from falcoir.lab.client import LabClient

        return LabClient.from_state_dir(self.state_dir, user="restricted")

    def kubectl(
        self,
        *args: str,
        context: str | None = None,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ``/usr/bin/kubectl`` against this lab (never raises on failure)."""
        argv = [KUBECTL, "--kubeconfig", str(self.kubeconfig)]
        if context:
            argv += ["--context", context]
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        env["KUBECACHEDIR"] = str(self.state_dir / "kube-cache")
        return subprocess.run(
            [*argv, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=env,
            check=False,
        )

    def set_faults(self, **values: float) -> None:
        """Change fault injection while the lab runs (``latency_ms``, ``rate_429``,
        ``rate_500``, ``rate_503``, ``rate_drop``, ``exec_drop``); unspecified values are zero."""
        from falcoir.lab.server import write_faults

        write_faults(self.state_dir, values)

    def clear_faults(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "faults.json").unlink()


@contextlib.contextmanager
def start_lab(*extra_args: str, state_dir: Path | None = None) -> Iterator[Lab]:
    """Start a lab of one's own (``extra_args`` go to ``falcoir lab up``), stop it after."""
    reason = lab_available()
    if reason:
        pytest.skip(reason)
    own_dir = state_dir is None
    sd = Path(tempfile.mkdtemp(prefix="falcoir-lab-")) if state_dir is None else state_dir
    up = run_falcoir("lab", "up", "--detach", "--state-dir", str(sd), "--port", "0",
                     "-o", "json", *extra_args, timeout=60)  # fmt: skip
    if up.returncode != 0:
        log = (sd / "lab.log").read_text(errors="replace") if (sd / "lab.log").exists() else ""
        raise RuntimeError(f"falcoir lab up failed ({up.returncode}): {up.stderr}\n{log[-3000:]}")
    import json

    info = json.loads(up.stdout)
    lab = Lab(state_dir=sd, server=str(info.get("server")), runtime=str(info.get("runtime")))
    try:
        yield lab
    finally:
        run_falcoir("lab", "down", "--state-dir", str(sd), timeout=120)
        if own_dir:
            shutil.rmtree(sd, ignore_errors=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """One lab for the whole test session."""
    with start_lab() as running:
        yield running


@pytest.fixture
def fresh_namespace(lab: Lab) -> Iterator[str]:
    """A unique namespace in the session lab, deleted after the test."""
    name = f"t-{secrets.token_hex(4)}"
    lab.client.create("namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            lab.client.delete("namespaces", name)
