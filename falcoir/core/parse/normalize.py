"""From whatever labels a rule used to the canonical process / container / k8s fields.

Two sources of names meet here: JSON ``output_fields`` keys, which are real Falco field
names (``proc.pid``), and the labels of a text output (``pid``, ``proc_pid``,
``k8s_pod_name``...). Each canonical value takes the first present value from its list
of names, in order. ``<NA>``, empty and null are absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from falcoir.core.alert import Connection, Container, K8s, Process

ABSENT = frozenset({"", "<NA>"})

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


# name -> (slot, rank): one dict lookup per field instead of a search per canonical.
_SLOTS: dict[str, tuple[str, int, bool]] = {}
for _slot, _names in (
    ("name", PROC_NAME),
    ("cmdline", CMDLINE),
    ("pid", PID),
    ("vpid", VPID),
    ("ppid", PPID),
    ("exepath", EXEPATH),
    ("cwd", CWD),
    ("user", USER),
    ("parent", PARENT),
    ("cid", CONTAINER_ID),
    ("full_id", CONTAINER_FULL_ID),
    ("cname", CONTAINER_NAME),
    ("image", IMAGE),
    ("image_tag", IMAGE_TAG),
    ("ns", K8S_NS),
    ("pod", K8S_POD),
    ("pod_uid", K8S_POD_UID),
    ("exec_command", EXEC_COMMAND),
):
    for _rank, _name in enumerate(_names):
        _SLOTS.setdefault(_name, (_slot, _rank, False))
# Names that need a look at the value (files vs connections, container forms, audit).
_SPECIAL = frozenset(
    {
        "fd.name",
        "fd_name",
        "file",
        "filename",
        "connection",
        "fd.rip",
        "fd.rport",
        "fd.rip.name",
        "fd.sip.name",
        "container",
        "%container.info",
        "ka.target.name",
        "ka.target.resource",
        "ka.user.name",
        "command",
        "user",
        "pid",
        "proc.pid",
        "proc_pid",
        "proc.cmdline",
    }
)


for _name in _SPECIAL:
    _s = _SLOTS.get(_name)
    _SLOTS[_name] = (_s[0], _s[1], True) if _s is not None else ("", 0, True)


def present(value: object) -> str | None:
    """``value`` as text, or ``None`` when Falco meant "no value"."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if text in ABSENT or text.strip() in ABSENT:
        return None
    return text


def to_int(value: str | None) -> int | None:
    if value is None or not _INT.match(value):
        return None
    return int(value)


class Normalized(NamedTuple):
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


def _connection(
    raw: str | None, rip: str | None, rport: str | None, rname: str | None
) -> Connection | None:
    port = to_int(rport)
    if raw is None and rip is None and port is None and rname is None:
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
        remote_port=port,
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
        cls = raw.__class__
        if cls is str:
            text = str(raw)
            if text in ABSENT or text.isspace():
                continue
            d[key] = text
        elif cls is int:
            d[key] = str(raw)
        elif raw is None:
            continue
        else:
            v = present(raw)
            if v is not None:
                d[key] = v
    return d


_Plan = tuple[
    tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]
]
_PLANS: dict[tuple[str, ...], _Plan] = {}
_PLANS_MAX = 4096
_PLAN_KEYS_MAX_CHARS = 4096


def _plan(keys: tuple[str, ...]) -> _Plan:
    """For one set of field names (alerts of one rule share it): each canonical slot's
    candidate names present, best first, and the special names present."""
    plan = _PLANS.get(keys)
    if plan is not None:
        return plan
    cands: dict[str, list[tuple[int, str]]] = {}
    specials: list[str] = []
    for key in keys:
        slot = _SLOTS.get(key)
        if slot is None:
            continue
        name, rank, is_special = slot
        if name:
            cands.setdefault(name, []).append((rank, key))
        if is_special:
            specials.append(key)
    slot_cands = tuple((name, tuple(k for _, k in sorted(c))) for name, c in cands.items())
    plan = (
        slot_cands,
        tuple(specials),
        tuple(name for name, _ in slot_cands),
        tuple(keys[0] for _, keys in slot_cands),
    )
    if sum(map(len, keys)) > _PLAN_KEYS_MAX_CHARS:
        return plan  # not kept: a hostile line's names can be a megabyte long
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[keys] = plan
    return plan


def _valid(value: object) -> str | None:
    if value.__class__ is str:
        text = str(value)
        if text in ABSENT or text.isspace():
            return None
        return text
    if value.__class__ is int:
        return str(value)
    return present(value)


def normalize(
    d: Mapping[str, object],
    *,
    source: str | None = None,
    vpid_from_pid: bool = False,
    clean: bool = False,
) -> Normalized:
    """Canonical records from ``d``: Falco field names or labels to raw values (absent
    ones are skipped here).

    ``vpid_from_pid``: the text's ``pid`` label is the in-container pid (gVisor's
    appended ``container=... pid=%proc.vpid tid=%thread.vtid``).
    ``clean``: every value of ``d`` is already a present ``str`` (what :func:`collect`
    returns), so each slot takes its best name's value without checks.
    """
    slot_cands, special_keys, slot_names, slot_firsts = _plan(tuple(d))
    special: Mapping[str, object]
    if clean:
        vals = dict(zip(slot_names, map(d.__getitem__, slot_firsts), strict=True))
        special = d  # every name looked up below is a special name
    else:
        vals = {}
        for name, keys in slot_cands:
            for key in keys:
                raw = d[key]
                if raw.__class__ is str:
                    if raw in ABSENT or raw.isspace():
                        continue
                    vals[name] = raw
                    break
                v = _valid(raw)
                if v is not None:
                    vals[name] = v
                    break
        special = {}
        for key in special_keys:
            v = _valid(d[key])
            if v is not None:
                special[key] = v
    return _finish(vals, special, source, vpid_from_pid)


def _finish(
    vals: Mapping[str, object],
    special: Mapping[str, object],
    source: str | None,
    vpid_from_pid: bool,
) -> Normalized:
    get: Any = vals.get
    sget: Any = special.get

    exec_command = get("exec_command")
    cmdline = get("cmdline")
    pod = get("pod")
    user = get("user")
    if source == "k8s_audit":
        cmdline = sget("proc.cmdline")
        if exec_command is None:
            exec_command = sget("command")
        if pod is None and sget("ka.target.resource") == "pods":
            pod = sget("ka.target.name")
        user = sget("ka.user.name") or sget("user")

    if vpid_from_pid:
        pid = to_int(sget("proc.pid") or sget("proc_pid"))
        vpid = to_int(get("vpid")) or to_int(sget("pid"))
    else:
        pid = to_int(get("pid"))
        vpid = to_int(get("vpid"))

    cid = get("cid")
    full_id = get("full_id")
    cname = get("cname")
    info = sget("%container.info")
    if info is not None:
        m = _INFO.match(info)
        if m is not None:
            cname = cname or m.group(1)
            cid = cid or m.group(2)
    bare = sget("container")
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
    conn_raw = None
    for name in FILE:
        v = sget(name)
        if v is not None and "->" not in v:
            file = v
            break
    for name in CONNECTION:
        v = sget(name)
        if v is not None and "->" in v:
            conn_raw = v
            break
    connection = None
    if conn_raw is not None or "fd.rip" in special or "fd.rport" in special:
        connection = _connection(
            conn_raw,
            sget("fd.rip"),
            sget("fd.rport"),
            sget("fd.rip.name") or sget("fd.sip.name"),
        )

    process = _new(Process)
    _setattr(
        process,
        "__dict__",
        {
            "name": get("name"),
            "cmdline": cmdline,
            "pid": pid,
            "vpid": vpid,
            "exepath": get("exepath"),
            "cwd": get("cwd"),
            "user": user,
            "parent": get("parent"),
            "ppid": to_int(get("ppid")),
        },
    )
    container = _new(Container)
    _setattr(
        container,
        "__dict__",
        {
            "id": cid,
            "full_id": full_id,
            "name": cname,
            "image": get("image"),
            "image_tag": get("image_tag"),
        },
    )
    k8s = _new(K8s)
    _setattr(k8s, "__dict__", {"namespace": get("ns"), "pod": pod, "pod_uid": get("pod_uid")})
    return Normalized(process, container, k8s, connection, file, exec_command)


# Building the frozen records by giving each its whole instance dictionary (every field,
# so no defaults are needed): equal to the constructor's result (tests check), cheaper.
_new = object.__new__
_setattr = object.__setattr__
