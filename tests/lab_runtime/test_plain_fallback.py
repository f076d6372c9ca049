"""Without root (forced here): pods are plain processes, with a warning, and still work."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab_runtime.conftest import Harness, log_text


class PlainHarness(Harness):
    def __init__(self, state_dir: Path) -> None:
        import falcoir.lab.linux.runtime as rtmod

        original = rtmod.can_isolate
        rtmod.can_isolate = lambda: (False, "forced by the test")
        try:
            super().__init__(state_dir)
        finally:
            rtmod.can_isolate = original


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


WARNINGS = ListHandler()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[PlainHarness]:
    logger = logging.getLogger("falcoir.lab.runtime")
    logger.addHandler(WARNINGS)
    try:
        h = PlainHarness(tmp_path)
    finally:
        logger.removeHandler(WARNINGS)
    try:
        yield h
    finally:
        h.close()


def test_plain_processes_with_a_clear_warning(
    plain: PlainHarness, caplog: pytest.LogCaptureFixture
) -> None:
    assert plain.rt.isolated is False
    assert any("plain host processes" in m and "forced by the test" in m for m in WARNINGS.messages)
    pod = plain.pod(
        "plain", [{"name": "c", "image": "ubuntu", "command": ["sh", "-c", "echo up; sleep 1000"]}]
    )
    st = plain.status(pod)
    assert st["phase"] == "Running" and st["podIP"] == "127.0.0.1"
    assert st["containerStatuses"][0]["containerID"].startswith("containerd://")
    rc, out, _ = plain.exec(pod, "c", ["sh", "-c", "echo $HOSTNAME"])
    assert (rc, out) == (0, b"plain\n")
    assert plain.exec(pod, "c", ["false"])[0] == 1
    from falcoir.lab.runtime import ExecNotFound

    with pytest.raises(ExecNotFound):
        plain.run(plain.rt.exec(pod, "c", ["no-such-binary-here"], stdin=False, tty=False))
    plain.wait_for(
        lambda: log_text(plain.rt.log_path(pod, "c", previous=False)) == "up\n",
        what="the log",
    )
    pid = plain.rt.host_pid(pod, "c")
    plain.run(plain.rt.kill_pod(pod, 1))
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_cleanup_kills_plain_processes_from_the_records(plain: PlainHarness) -> None:
    from falcoir.lab.linux import cleanup

    pod = plain.pod("leftover", [{"name": "c", "image": "ubuntu", "command": ["sleep", "1000"]}])
    pid = plain.rt.host_pid(pod, "c")
    assert Path(f"/proc/{pid}").exists()
    removed = cleanup(plain.state_dir, lab_id=plain.rt.lab_id)
    assert removed == ["pod default/leftover (None)"]
    plain.wait_for(
        lambda: (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        ),
        what="the process to die",
    )
