"""Proving the cut from inside the pod: a connection attempt to the alert's endpoint.

Every probe is an argv list; host and port travel as positional arguments to a
constant script, never pasted into one. The pod is hostile: its tools may lie, so a
probe is evidence, not proof, and the report says which tool answered.
"""

from __future__ import annotations

import ipaddress
import math
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from falcoir.core.alert import Alert
from falcoir.core.gateway import ClusterGateway, ExecResult
from falcoir.errors import InputError

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)"
    r"(\.[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_ENDPOINT_FLAGS = ("-o", "--url", "--pool", "-url", "--server", "-s", "--host")
_ENDPOINT_TOKEN = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]+@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})(?:/.*)?$"
)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    source: str
    """``--probe``, ``alert.connection`` or ``alert.cmdline``."""

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "source": self.source}


def valid_host(host: str) -> bool:
    """A hostname, an IPv4 or an IPv6 address (no brackets), nothing that could be an
    option or carry shell syntax."""
    if not host or host.startswith("-"):
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def parse_host_port(text: str, *, what: str = "--probe") -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT``, strictly. Raises :class:`InputError`."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port = raw[1:].partition("]:")
    else:
        host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(f"{what}: expected HOST:PORT, got {text!r}")
    if not valid_host(host):
        raise InputError(f"{what}: not a host name or IP address: {host!r}")
    number = int(port)
    if not 1 <= number <= 65535:
        raise InputError(f"{what}: port out of range 1-65535: {number}")
    return host, number


def _from_token(token: str) -> tuple[str, int] | None:
    m = _ENDPOINT_TOKEN.match(token)
    if not m:
        return None
    host = m.group(1).strip("[]")
    port = int(m.group(2))
    if not valid_host(host) or not 1 <= port <= 65535:
        return None
    return host, port


def endpoint_from_cmdline(cmdline: str) -> tuple[str, int] | None:
    """The remote endpoint a miner-like command line names: the value of ``-o``,
    ``--url``, ``--pool`` (``HOST:PORT``, ``stratum+tcp://HOST:PORT``), else the first
    ``HOST:PORT`` token."""
    try:
        tokens = shlex.split(cmdline)
    except ValueError:
        tokens = cmdline.split()
    tokens = tokens[:256]
    for i, tok in enumerate(tokens):
        flag, eq, value = tok.partition("=")
        if eq and flag in _ENDPOINT_FLAGS:
            found = _from_token(value)
        elif tok in _ENDPOINT_FLAGS and i + 1 < len(tokens):
            found = _from_token(tokens[i + 1])
        else:
            continue
        if found:
            return found
    for tok in tokens[1:]:
        found = _from_token(tok)
        if found:
            return found
    return None


def probe_endpoint(alert: Alert | None, override: tuple[str, int] | None) -> Endpoint | None:
    """Where to probe: ``--probe``, else the alert's remote endpoint, else one named
    on the alert's command line."""
    if override is not None:
        return Endpoint(override[0], override[1], "--probe")
    if alert is None:
        return None
    conn = alert.connection
    if conn is not None:
        for host, port in (
            (conn.remote_ip, conn.remote_port),
            (conn.remote_name, conn.remote_port),
            (conn.server_ip, conn.server_port),
        ):
            if host and port and valid_host(host) and 1 <= port <= 65535:
                return Endpoint(host, port, "alert.connection")
    if alert.process.cmdline:
        found = endpoint_from_cmdline(alert.process.cmdline)
        if found:
            return Endpoint(found[0], found[1], "alert.cmdline")
    return None


# Constant scripts: the endpoint is $0/$1 (bash) or sys.argv (python), never code.
BASH_SCRIPT = 'exec 3<>"/dev/tcp/$0/$1"'
PYTHON_SCRIPT = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), float(sys.argv[3])).close()\n"
    "except OSError as e:\n"
    "    print(e, file=sys.stderr); sys.exit(1)\n"
)


def probe_commands(host: str, port: int, timeout: float) -> list[tuple[str, list[str]]]:
    """Candidate probes, best first: (tool name, argv). ``timeout`` may be a fraction
    of a second: ``timeout`` and python take it as it is, ``nc -w`` (whole seconds
    only) gets it rounded up."""
    p = str(port)
    t = f"{timeout:g}"
    whole = str(max(1, math.ceil(timeout)))
    return [
        ("bash", ["timeout", t, "bash", "-c", BASH_SCRIPT, host, p]),
        ("nc", ["nc", "-z", "-w", whole, host, p]),
        ("busybox-nc", ["nc", "-w", whole, host, p, "-e", "true"]),
        ("busybox-nc", ["busybox", "nc", "-w", whole, host, p, "-e", "true"]),
        ("python3", ["python3", "-c", PYTHON_SCRIPT, host, p, t]),
        ("bash", ["bash", "-c", BASH_SCRIPT, host, p]),
    ]


_UNUSABLE = re.compile(
    rb"usage:|invalid option|unrecognized option|illegal option|unknown option|"
    rb"applet not found|not found|no such file|invalid time interval|invalid number",
    re.IGNORECASE,
)
_RESOLVE = re.compile(
    rb"name or service not known|temporary failure in name resolution|bad address|"
    rb"could not resolve|nodename nor servname|name resolution|getaddrinfo",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe run: ``connected`` True (reached the endpoint), False (could not),
    None (no usable tool, or the answer was unclear)."""

    tool: str | None
    argv: tuple[str, ...]
    connected: bool | None
    detail: str
    tried: tuple[str, ...] = ()
    seconds: float = 0.0
    resolve_failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "argv": list(self.argv),
            "connected": self.connected,
            "detail": self.detail,
            "tried": list(self.tried),
            "seconds": round(self.seconds, 3),
            "resolve_failed": self.resolve_failed,
        }


def _classify(res: ExecResult) -> tuple[str, bool | None, str]:
    """("unusable"|"answer", connected, detail)."""
    err = res.stderr[:2000]
    if res.exit_code is None:
        if res.timed_out or res.error_reason == "Timeout":
            return "answer", False, "the connection attempt hung until the timeout (dropped)"
        return "unusable", None, res.error or "could not run"
    if res.exit_code == 0:
        return "answer", True, "connected"
    if res.exit_code in (126, 127):
        return "unusable", None, f"exit {res.exit_code} (command not found)"
    if res.exit_code == 125:  # timeout(1) itself failed (a duration it does not take)
        return "unusable", None, "exit 125 (timeout could not run the probe)"
    if res.exit_code == 124:
        return "answer", False, "the connection attempt timed out (dropped)"
    if _UNUSABLE.search(err) and not _RESOLVE.search(err):
        return "unusable", None, f"exit {res.exit_code} (tool does not take these options)"
    text = err.decode("utf-8", "backslashreplace").strip().splitlines()
    last = text[-1][:200] if text else f"exit {res.exit_code}"
    return "answer", False, f"could not connect: {last}"


UNTRUSTED_NOTE = (
    "the probe ran the suspect container's own tools: a replaced binary can fake the "
    "answer, so this is evidence, not proof"
)


def probe_trust(outcome: ProbeOutcome | None) -> dict[str, Any]:
    """How a probe's answer was obtained, for ``verified``: ``method`` names the tool
    (``pod-exec:<tool>``, ``None`` when no probe answered) and ``trusted`` is False for
    the pod's own tools, which is every probe falcoir runs today."""
    tool = outcome.tool if outcome is not None else None
    return {
        "method": f"pod-exec:{tool}" if tool else None,
        "trusted": False,
        **({"trust_note": UNTRUSTED_NOTE} if tool else {}),
    }


def _shape(argv: Sequence[str]) -> tuple[str, int]:
    """Which candidate probe an argv is, whatever its timeout: the program and the
    number of arguments tell the candidates of :func:`probe_commands` apart."""
    return (argv[0] if argv else "", len(argv))


def run_probe(
    gateway: ClusterGateway,
    namespace: str,
    pod: str,
    container: str | None,
    endpoint: Endpoint,
    *,
    timeout: float = 3,
    preferred: Sequence[str] | None = None,
) -> ProbeOutcome:
    """Try the probes in order until one answers. ``preferred`` puts the probe of an
    argv that answered before first (so the after-probe uses the same tool as the
    baseline, whatever timeout each was given)."""
    started = time.monotonic()
    candidates = probe_commands(endpoint.host, endpoint.port, timeout)
    if preferred:
        shape = _shape(preferred)
        candidates.sort(key=lambda c: _shape(c[1]) != shape)
    tried: list[str] = []
    other_errors: list[str] = []
    for tool, argv in candidates:
        res = gateway.exec(namespace, pod, container, argv, timeout=timeout + 7, max_bytes=65536)
        kind, connected, detail = _classify(res)
        tried.append(f"{tool}: {detail}")
        if kind == "unusable":
            if res.exit_code is None and res.error_reason not in (None, "NotFound"):
                other_errors.append(detail)
            continue
        resolve_failed = connected is False and bool(_RESOLVE.search(res.stderr[:2000]))
        return ProbeOutcome(
            tool=tool,
            argv=tuple(argv),
            connected=connected,
            detail=detail,
            tried=tuple(tried),
            seconds=time.monotonic() - started,
            resolve_failed=resolve_failed,
        )
    if other_errors and len(other_errors) == len(candidates):
        detail = f"could not run a probe in the container: {other_errors[0]}"
    else:
        detail = "no tool to probe with in this image (tried bash, nc, busybox nc, python3)"
    return ProbeOutcome(
        tool=None,
        argv=(),
        connected=None,
        detail=detail,
        tried=tuple(tried),
        seconds=time.monotonic() - started,
    )
