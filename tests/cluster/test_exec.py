"""Exec over the v5 WebSocket channel protocol against the fake API server."""

from __future__ import annotations

import hashlib
import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from falcoir.cluster import KubeGateway
from falcoir.errors import ApiNotFound, ClusterUnreachable, Forbidden, InputError
from tests.cluster.fakeapi import FakeApi, status_body

EXEC = "/api/v1/namespaces/prod/pods/web-1/exec"


@pytest.fixture(autouse=True)
def _pod(api: FakeApi) -> None:
    api.add_pod("prod", "web-1")


def pattern(n: int, chunk: int = 65536) -> bytes:
    """What the fake's ``big N CHUNK`` program writes."""
    out = bytearray()
    sent = 0
    while sent < n:
        k = min(chunk, n - sent)
        out += bytes((sent + i) % 251 for i in range(k))
        sent += k
    return bytes(out)


def test_success_and_the_request_it_sends(api: FakeApi, gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", "app", ["echo", "hello", "$(reboot);", "a b"])
    assert r.ok and r.ran and r.exit_code == 0
    assert r.stdout == b"hello $(reboot); a b\n" and r.stderr == b""
    assert r.argv == ("echo", "hello", "$(reboot);", "a b") and r.container == "app"
    assert r.stdout_bytes == len(r.stdout) and not r.stdout_truncated and not r.timed_out
    assert r.started <= r.ended and r.started.tzinfo is not None
    req = api.requests_to("GET", EXEC)[0]
    assert req.q("command") == ["echo", "hello", "$(reboot);", "a b"]
    assert req.q("container") == ["app"]
    assert (req.q("stdin"), req.q("stdout"), req.q("stderr"), req.q("tty")) == (
        ["false"],
        ["true"],
        ["true"],
        ["false"],
    )
    assert "v5.channel.k8s.io" in req.headers["Sec-WebSocket-Protocol"]
    assert req.headers["Authorization"] == "Bearer t0k3n"


def test_non_zero_exit_code_from_the_cause(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["fail", "42"])
    assert r.exit_code == 42 and r.ran and not r.ok
    assert r.error is None and r.stderr == b"failing\n"


def test_missing_binary_is_not_found(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["ps", "auxww"])
    assert r.exit_code is None and not r.ran
    assert r.error_reason == "NotFound"
    assert r.error is not None and "executable file not found" in r.error


def test_channels_kept_apart_and_raw(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["binary"])
    assert r.stdout == b"\xff\xfe\x00out"
    assert r.stderr == b"\xc3(err"


def test_timeout_is_bounded_and_reported(gw: KubeGateway) -> None:
    t0 = time.monotonic()
    r = gw.exec("prod", "web-1", None, ["sleep", "30"], timeout=0.5)
    took = time.monotonic() - t0
    assert r.timed_out and r.error_reason == "Timeout" and r.exit_code is None
    assert 0.4 < took < 3


def test_endless_output_timeout_and_cap(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["chatty"], timeout=0.7, max_bytes=10_000)
    assert r.timed_out
    assert len(r.stdout) == 10_000 and r.stdout_truncated
    assert r.stdout_bytes > 10_000


def test_large_output_over_a_mebibyte(gw: KubeGateway) -> None:
    n = 3 * 1024 * 1024 + 17
    r = gw.exec("prod", "web-1", None, ["big", str(n)], timeout=20)
    assert r.ok and len(r.stdout) == n and r.stdout == pattern(n)
    assert r.stdout_bytes == n and not r.stdout_truncated


def test_byte_caps_per_stream(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["big", "300000", "7000"], max_bytes=100_000)
    assert r.ok  # the command finished; only our copy is cut
    assert r.stdout == pattern(300_000, 7000)[:100_000]
    assert r.stdout_truncated and r.stdout_bytes == 300_000
    r = gw.exec("prod", "web-1", None, ["bigerr", "5000"], max_bytes=1000)
    assert r.stderr == pattern(5000)[:1000] and r.stderr_truncated
    assert not r.stdout_truncated


def test_stdout_streams_to_sink(gw: KubeGateway) -> None:
    n = 2 * 1024 * 1024
    sink = io.BytesIO()
    r = gw.exec("prod", "web-1", None, ["big", str(n)], stdout_sink=sink)
    assert r.ok and r.stdout == b"" and r.stdout_bytes == n
    assert hashlib.sha256(sink.getvalue()).digest() == hashlib.sha256(pattern(n)).digest()
    capped = io.BytesIO()
    r = gw.exec("prod", "web-1", None, ["big", str(n)], stdout_sink=capped, max_bytes=4096)
    assert capped.getvalue() == pattern(n)[:4096] and r.stdout_truncated


def test_sink_failure_is_reported(gw: KubeGateway) -> None:
    class Full(io.RawIOBase):
        def write(self, b: object) -> int:
            raise OSError(28, "No space left on device")

    r = gw.exec("prod", "web-1", None, ["big", "100000"], stdout_sink=Full())  # type: ignore[arg-type]
    assert r.error_reason == "SinkError" and r.error is not None and "space" in r.error


def test_stdin_then_close_signal(api: FakeApi, gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["cat"], stdin=b"secret\x00bytes\n")
    assert r.ok and r.stdout == b"secret\x00bytes\n"
    assert api.requests_to("GET", EXEC)[0].q("stdin") == ["true"]
    empty = gw.exec("prod", "web-1", None, ["cat"], stdin=b"")
    assert empty.ok and empty.stdout == b""


def test_large_stdin_round_trip(gw: KubeGateway) -> None:
    data = pattern(1_500_000)
    r = gw.exec("prod", "web-1", None, ["cat"], stdin=data, timeout=20)
    assert r.ok and r.stdout == data


def test_many_threads_at_once(api: FakeApi, gw: KubeGateway) -> None:
    def one(i: int) -> tuple[int, bytes, int | None]:
        r = gw.exec("prod", "web-1", None, ["echo", f"n{i}"] if i % 3 else ["fail", str(i)])
        return i, r.stdout, r.exit_code

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    for i, out, code in results:
        if i % 3:
            assert (out, code) == (f"n{i}\n".encode(), 0)
        else:
            assert (out, code) == (b"", i)
    assert api.exec_sessions == 64 and api.exec_max_active > 1


def test_stream_dropped_before_status(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["drop"], timeout=5)
    assert r.error_reason == "StreamDropped" and r.exit_code is None and not r.timed_out
    assert r.stdout == b"partial"


def test_handshake_403_is_forbidden(api: FakeApi, gw: KubeGateway) -> None:
    msg = 'pods "web-1" is forbidden: User "bob" cannot get resource "pods/exec"'
    api.script("GET", EXEC, 403, status_body(403, "Forbidden", msg))
    with pytest.raises(Forbidden) as info:
        gw.exec("prod", "web-1", None, ["echo"])
    assert "create pods/exec -n prod" in info.value.missing
    assert "get pods/exec -n prod" in info.value.missing
    assert 'User "bob"' in info.value.message


def test_handshake_404_is_not_found(gw: KubeGateway) -> None:
    with pytest.raises(ApiNotFound, match="gone"):
        gw.exec("prod", "gone", None, ["echo"])


def test_handshake_401_is_unreachable(api: FakeApi, gw: KubeGateway) -> None:
    api.token = "rotated"
    with pytest.raises(ClusterUnreachable, match="not authenticated"):
        gw.exec("prod", "web-1", None, ["echo"])


def test_handshake_400_is_a_result(api: FakeApi, gw: KubeGateway) -> None:
    msg = "container nope is not valid for pod web-1"
    api.script("GET", EXEC, 400, status_body(400, "BadRequest", msg))
    r = gw.exec("prod", "web-1", "nope", ["echo"])
    assert r.error_reason == "BadRequest" and r.error is not None and msg in r.error


def test_handshake_retried_on_429_and_5xx(api: FakeApi, gw: KubeGateway) -> None:
    api.script("GET", EXEC, 429, {}, headers={"Retry-After": "0"})
    api.script("GET", EXEC, 503, {})
    r = gw.exec("prod", "web-1", None, ["echo", "third"])
    assert r.ok and r.stdout == b"third\n"
    assert len(api.requests_to("GET", EXEC)) == 3
    assert gw.stats.snapshot()["by_verb"]["exec"] == 3


def test_handshake_gives_up(api: FakeApi, gw: KubeGateway) -> None:
    api.script("GET", EXEC, 500, status_body(500, "InternalError", "kubelet down"), times=3)
    r = gw.exec("prod", "web-1", None, ["echo"])
    assert r.error_reason == "InternalError" and r.error is not None and "kubelet" in r.error


def test_handshake_drop_retried(api: FakeApi, gw: KubeGateway) -> None:
    api.script("GET", EXEC, drop=True)
    r = gw.exec("prod", "web-1", None, ["echo", "ok"])
    assert r.ok and len(api.requests_to("GET", EXEC)) == 2


def test_bad_arguments(gw: KubeGateway) -> None:
    with pytest.raises(InputError):
        gw.exec("prod", "web-1", None, [])
    with pytest.raises(InputError):
        gw.exec("prod", "web-1", None, ["echo"], timeout=0)


def test_exec_counts_bytes(gw: KubeGateway) -> None:
    gw.exec("prod", "web-1", None, ["big", "50000"])
    assert gw.stats.snapshot()["bytes_received"] >= 50_000


def test_hundred_mebibytes_hold_the_cap(gw: KubeGateway) -> None:
    n = 100 * 1024 * 1024
    t0 = time.monotonic()
    r = gw.exec("prod", "web-1", None, ["zeros", str(n)], timeout=60, max_bytes=1024 * 1024)
    assert r.ok and r.stdout_bytes == n and r.stdout_truncated
    assert len(r.stdout) == 1024 * 1024 and r.stdout == bytes(1024 * 1024)
    assert time.monotonic() - t0 < 30


def test_stdin_to_a_command_that_does_not_read_it(gw: KubeGateway) -> None:
    r = gw.exec("prod", "web-1", None, ["echo", "early"], stdin=bytes(8 * 1024 * 1024))
    assert r.ok and r.stdout == b"early\n"


def test_v4_server(api: FakeApi, gw: KubeGateway) -> None:
    """An API server older than 1.30 speaks v4: same frames, no stdin close signal."""
    api.ws_protocols = ("v4.channel.k8s.io",)
    assert gw.exec("prod", "web-1", None, ["echo", "v4"]).stdout == b"v4\n"
    assert gw.exec("prod", "web-1", None, ["fail", "3"]).exit_code == 3
    # Without the close signal a stdin reader never sees EOF: the timeout still holds.
    r = gw.exec("prod", "web-1", None, ["cat"], stdin=b"abc", timeout=0.5)
    assert r.timed_out and r.exit_code is None
