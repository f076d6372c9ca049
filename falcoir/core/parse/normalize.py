"""From whatever labels a rule used to the canonical process / container / k8s fields.

Two sources of names meet here: JSON ``output_fields`` keys, which are real Falco field
names (``proc.pid``), and the labels of a text output (``pid``, ``proc_pid``,
``k8s_pod_name``...). Each canonical value takes the first present value from its list
of names, in order. ``<NA>``, empty and null are absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from falcoir.core.alert import Connection, Container, K8s, Process

ABSENT = frozenset({"", "<NA>", "<na>", "null", "None", "(null)"})

# Canonical value -> names to take it from, best first (Falco field names, then labels).
PROC_NAME = ("proc.name", "process", "proc_name", "proc", "name", "program", "shell")
CMDLINE = ("proc.cmdline", "command", "cmdline", "proc_cmdline", "proc.args")
PID = ("proc.pid", "proc_pid", "pid", "process_pid")
VPID = ("proc.vpid", "proc_vpid", "vpid")
PPID = ("proc.ppid", "proc_ppid", "ppid")
EXEPATH = ("proc.exepath", "proc_exepath", "exepath", "exe_path")
CWD = ("proc.cwd", "proc_cwd", "cwd")
USER = ("user.name", "user", "user_name", "username")
PARENT = ("proc.pname", "parent", "proc_pname", "pname", "parent_process", "parent_name")
PPID_NAMES = PPID
CONTAINER_ID = ("container.id", "container_id", "containerid")
CONTAINER_FULL_ID = ("container.full_id", "container_full_id")
CONTAINER_NAME = ("container.name", "container_name")
IMAGE = (
    "container.image.repository",
    "container_image_repository",
    "container.image",
    "container_image",
    "image",
)
IMAGE_TAG = ("container.image.tag", "container_image_tag", "image_tag")
K8S_NS = (
    "k8s.ns.name",
    "k8s_ns_name",
    "k8s.ns",
    "k8s_ns",
    "k8s_namespace",
    "namespace_name",
    "ka.target.namespace",
    "ns",
    "namespace",
)
K8S_POD = ("k8s.pod.name", "k8s_pod_name", "k8s.pod", "k8s_pod", "pod_name", "pod")
K8S_POD_UID = ("k8s.pod.uid", "k8s_pod_uid", "pod_uid")
FILE = ("fd.name", "file", "fd_name", "filename")
CONNECTION = ("fd.name", "connection", "fd_name")
EXEC_COMMAND = ("ka.uri.param[command]",)

_HEX12 = re.compile(r"^(?:[0-9a-f]{12}|host)$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_INT = re.compile(r"^-?\d{1,19}$")
_INFO = re.compile(r"^(\S+) \(id=([0-9a-f]{12}|[0-9a-f]{64}|host)\)$")


def present(value: object) -> str | None:
    """``value`` as text, or ``None`` when Falco meant "no value"."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if text.strip() in ABSENT:
        return None
    return text


def to_int(value: str | None) -> int | None:
    if value is None or not _INT.match(value):
        return None
    return int(value)


def _first(d: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        v = d.get(name)
        if v is not None:
            return v
    return None


@dataclass(frozen=True)
class Normalized:
    process: Process
    container: Container
    k8s: K8s
    connection: Connection | None
    file: str | None
    exec_command: str | None


def _split_endpoint(text: str) -> tuple[str | None, int | None]:
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        return (text.strip() or None), None
    host = host.strip("[]")
    return (host or None), to_int(port)


def _connection(d: Mapping[str, str]) -> Connection | None:
    raw = None
    for name in CONNECTION:
        v = d.get(name)
        if v is not None and "->" in v:
            raw = v
            break
    rip = d.get("fd.rip")
    rport = to_int(d.get("fd.rport"))
    rname = d.get("fd.rip.name") or d.get("fd.sip.name")
    if raw is None and rip is None and rport is None and rname is None:
        return None
    cip = cport = sip = sport = None
    if raw is not None:
        client, _, server = raw.partition("->")
        cip, cport = _split_endpoint(client)
        sip, sport = _split_endpoint(server)
    return Connection(
        raw=raw,
        client_ip=cip,
        client_port=cport,
        server_ip=sip,
        server_port=sport,
        remote_ip=rip,
        remote_port=rport,
        remote_name=rname,
    )


def collect(
    pairs: Iterable[tuple[str, object]],
    into: dict[str, str] | None = None,
) -> dict[str, str]:
    """The first present value of each name (later duplicates fill only gaps)."""
    d: dict[str, str] = {} if into is None else into
    for key, raw in pairs:
        if key in d:
            continue
        v = present(raw)
        if v is not None:
            d[key] = v
    return d


def normalize(
    d: Mapping[str, str],
    *,
    source: str | None = None,
    vpid_from_pid: bool = False,
) -> Normalized:
    """Canonical records from ``d`` (see :func:`collect`).

    ``vpid_from_pid``: the text's ``pid`` label is the in-container pid (gVisor's
    appended ``container=... pid=%proc.vpid tid=%thread.vtid``).
    """
    audit = source == "k8s_audit"
    exec_command = _first(d, EXEC_COMMAND)
    if audit:
        cmdline = d.get("proc.cmdline")
        if exec_command is None:
            exec_command = d.get("command")
        pod = _first(d, K8S_POD)
        if pod is None and d.get("ka.target.resource") == "pods":
            pod = d.get("ka.target.name")
        user = d.get("ka.user.name") or d.get("user")
    else:
        cmdline = _first(d, CMDLINE)
        pod = _first(d, K8S_POD)
        user = _first(d, USER)

    if vpid_from_pid:
        pid = to_int(_first(d, ("proc.pid", "proc_pid")))
        vpid = to_int(_first(d, VPID)) or to_int(d.get("pid"))
    else:
        pid = to_int(_first(d, PID))
        vpid = to_int(_first(d, VPID))

    cid = _first(d, CONTAINER_ID)
    full_id = _first(d, CONTAINER_FULL_ID)
    cname = _first(d, CONTAINER_NAME)
    info = d.get("%container.info")
    if info is not None:
        m = _INFO.match(info)
        if m is not None:
            cname = cname or m.group(1)
            cid = cid or m.group(2)
    bare = d.get("container")
    if bare is not None:
        if _HEX12.match(bare) or _HEX64.match(bare):
            cid = cid or bare
        else:
            m = _INFO.match(bare)
            if m is not None:
                cname = cname or m.group(1)
                cid = cid or m.group(2)
            elif " " not in bare and "=" not in bare:
                cname = cname or bare
    if cid is not None and _HEX64.match(cid):
        full_id = full_id or cid
        cid = cid[:12]
    if full_id is not None and cid is None and _HEX64.match(full_id):
        cid = full_id[:12]

    file = None
    for name in FILE:
        v = d.get(name)
        if v is not None and "->" not in v:
            file = v
            break

    return Normalized(
        process=Process(
            name=_first(d, PROC_NAME),
            cmdline=cmdline,
            pid=pid,
            vpid=vpid,
            exepath=_first(d, EXEPATH),
            cwd=_first(d, CWD),
            user=user,
            parent=_first(d, PARENT),
            ppid=to_int(_first(d, PPID)),
        ),
        container=Container(
            id=cid,
            full_id=full_id,
            name=cname,
            image=_first(d, IMAGE),
            image_tag=_first(d, IMAGE_TAG),
        ),
        k8s=K8s(
            namespace=_first(d, K8S_NS),
            pod=pod,
            pod_uid=_first(d, K8S_POD_UID),
        ),
        connection=_connection(d),
        file=file,
        exec_command=exec_command,
    )
