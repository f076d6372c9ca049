"""The alert model: what a Falco alert says, normalised, whatever shape it came in.

JSON keys (``Alert.to_dict``) are a stable contract (``docs/product.md``): add keys
freely, never rename.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar

PRIORITIES: tuple[str, ...] = (
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
)
"""Falco priorities, most severe first (syslog levels 0..7)."""


def priority_level(priority: str | None) -> int | None:
    """Syslog level of a priority word (0 Emergency .. 7 Debug), ``Info`` accepted."""
    if priority is None:
        return None
    word = priority.strip().capitalize()
    if word == "Info":
        word = "Informational"
    try:
        return PRIORITIES.index(word)
    except ValueError:
        return None


@dataclass(frozen=True)
class Process:
    name: str | None = None
    cmdline: str | None = None
    pid: int | None = None
    """Host pid namespace (Falco's ``proc.pid``)."""
    vpid: int | None = None
    """Pid as seen inside the container (Falco's ``proc.vpid``)."""
    exepath: str | None = None
    cwd: str | None = None
    user: str | None = None
    parent: str | None = None
    """Parent process name (``proc.pname``)."""
    ppid: int | None = None
    """Parent's host pid (``proc.ppid``)."""


@dataclass(frozen=True)
class Container:
    id: str | None = None
    """12 hex chars (Falco's ``container.id``), or ``host`` for host processes."""
    full_id: str | None = None
    """64 hex chars (``container.full_id``) when known."""
    name: str | None = None
    image: str | None = None
    """Image repository (``container.image.repository``), or the whole image reference
    when the alert printed only that."""
    image_tag: str | None = None
    """``container.image.tag`` when the alert carried it separately."""


@dataclass(frozen=True)
class K8s:
    namespace: str | None = None
    pod: str | None = None
    pod_uid: str | None = None


@dataclass(frozen=True)
class Connection:
    """A network endpoint pair from ``fd.name`` / ``fd.rip`` / ``fd.rport`` and friends."""

    raw: str | None = None
    client_ip: str | None = None
    client_port: int | None = None
    server_ip: str | None = None
    server_port: int | None = None
    remote_ip: str | None = None
    remote_port: int | None = None
    remote_name: str | None = None


@dataclass(frozen=True)
class Alert:
    """One Falco alert, normalised.

    ``fields`` keeps every key=value pair exactly as the alert carried it, in order,
    duplicates kept; the typed sub-records hold the canonical meaning of those fields.
    Absent values (``<NA>``, empty, null) are ``None``, never the string ``"<NA>"``.
    """

    raw: str
    """The alert exactly as received (one line, or one JSON document)."""
    source_format: str
    """``text``, ``json`` or ``sidekick``."""
    time: str | None = None
    """The time as Falco printed it (HMS local time, ISO-8601, or JSON UTC ``time``)."""
    priority: str | None = None
    rule: str | None = None
    message: str | None = None
    output: str | None = None
    """The full rule output line (JSON ``output``, or the text line without wrapper)."""
    output_style: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    process: Process = field(default_factory=Process)
    container: Container = field(default_factory=Container)
    k8s: K8s = field(default_factory=K8s)
    node: str | None = None
    """The node that raised the alert (JSON ``hostname``), when known."""
    connection: Connection | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    """Falco event source (``syscall``, ``k8s_audit``, ...)."""
    uuid: str | None = None
    """Falcosidekick event uuid."""
    event_time_ns: int | None = None
    """``evt.time`` in integer nanoseconds since the epoch, when the alert carried it."""
    line: int | None = None
    """1-based line number in the input where this alert started."""
    end_line: int | None = None
    """1-based line number where it ended (multi-line JSON documents)."""
    file: str | None = None
    """The file the event touched (``fd.name`` when not a connection, ``file=``)."""
    exec_command: str | None = None
    """k8s_audit alerts: the command requested through the API (``pods/exec``), not a
    process seen on a node."""
    output_fields: tuple[tuple[str, Any], ...] = ()
    """JSON ``output_fields`` as received (Falco field name -> JSON value), in order."""
    truncated: bool = False
    """The line was cut short (a pager's trailing ``>``, an unterminated JSON line)."""
    wrapper: tuple[tuple[str, str], ...] = ()
    """What was in front of the alert (``kind``: syslog, kubectl-prefix, stern, ...;
    ``host``, ``pod``, ``container``, ``ts``), as found."""

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``product.md``."""
        conn = self.connection
        return {
            "time": self.time,
            "priority": self.priority,
            "rule": self.rule,
            "message": self.message,
            "source_format": self.source_format,
            "output_style": self.output_style,
            "fields": [[k, v] for k, v in self.fields],
            "process": {
                "name": self.process.name,
                "cmdline": self.process.cmdline,
                "pid": self.process.pid,
                "vpid": self.process.vpid,
                "exepath": self.process.exepath,
                "cwd": self.process.cwd,
                "user": self.process.user,
                "parent": self.process.parent,
                "ppid": self.process.ppid,
            },
            "container": {
                "id": self.container.id,
                "full_id": self.container.full_id,
                "name": self.container.name,
                "image": self.container.image,
                "image_tag": self.container.image_tag,
            },
            "k8s": {
                "namespace": self.k8s.namespace,
                "pod": self.k8s.pod,
                "pod_uid": self.k8s.pod_uid,
            },
            "node": self.node,
            "connection": None
            if conn is None
            else {
                "raw": conn.raw,
                "client_ip": conn.client_ip,
                "client_port": conn.client_port,
                "server_ip": conn.server_ip,
                "server_port": conn.server_port,
                "remote_ip": conn.remote_ip,
                "remote_port": conn.remote_port,
                "remote_name": conn.remote_name,
            },
            "tags": list(self.tags),
            "source": self.source,
            "uuid": self.uuid,
            "event_time_ns": self.event_time_ns,
            "line": self.line,
            "end_line": self.end_line,
            "file": self.file,
            "exec_command": self.exec_command,
            "output_fields": dict(self.output_fields),
            "truncated": self.truncated,
            "wrapper": dict(self.wrapper),
            "output": self.output,
            "raw": self.raw,
        }


_T = TypeVar("_T")
_DEFAULTS: dict[type, dict[str, Any]] = {}


def fast_new(cls: type[_T], /, **values: Any) -> _T:
    """``cls(**values)`` for the parser's hot path, several times faster.

    The frozen dataclasses here have no ``__post_init__`` or validation, so filling the
    instance dictionary with the defaults and ``values`` gives an object equal to one
    built by the constructor (tests check this). Shared defaults are immutable.
    """
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.default is not MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not MISSING:
                defaults[f.name] = f.default_factory()
        _DEFAULTS[cls] = defaults
    obj = object.__new__(cls)
    d = obj.__dict__
    d.update(defaults)
    d.update(values)
    return obj
