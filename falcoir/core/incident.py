"""Incidents: one id, one record, one append-only action log per responded-to pod.

Separate commands (``collect``, then ``quarantine``, then ``delete``) that act on the
same pod share one incident, found by the pod's uid, so that its action log and its
evidence bundles stay together and ``delete`` can tell whether evidence was saved.

The store lives under ``$FALCOIR_HOME`` (default ``$XDG_STATE_HOME/falcoir``, else
``~/.local/state/falcoir``)::

    incidents/<id>/incident.json   what the incident is about, and its bundles
    incidents/<id>/actions.jsonl   every change falcoir made, one JSON object a line
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from falcoir.errors import FalcoirError

_ID_RE = re.compile(r"^inc-\d{8}-\d{6}-[0-9a-f]{6}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """UTC time as ``2026-11-28T14:31:02.123456Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_incident_id(now: datetime | None = None) -> str:
    """``inc-YYYYMMDD-HHMMSS-xxxxxx``: sortable, unique, a valid label value."""
    ts = (now or utc_now()).astimezone(UTC)
    # os.urandom(n).hex() is secrets.token_hex(n), without importing secrets (hmac,
    # hashlib, random) on respond's way to its first request.
    return f"inc-{ts:%Y%m%d-%H%M%S}-{os.urandom(3).hex()}"


def is_incident_id(text: str) -> bool:
    return bool(_ID_RE.fullmatch(text))


def default_home() -> Path:
    env = os.environ.get("FALCOIR_HOME")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "falcoir"


def _restrict(path: Path | int, mode: int) -> None:
    """Tighten an existing path (written 0644/0755 by earlier versions) when we own it."""
    with contextlib.suppress(OSError):
        if isinstance(path, int):
            os.fchmod(path, mode)
        else:
            os.chmod(path, mode)


def _private_file(path: Path, flag: int) -> TextIO:
    """``path`` opened for writing (``flag``: ``os.O_APPEND`` or ``os.O_TRUNC``), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    _restrict(fd, 0o600)
    return os.fdopen(fd, "a" if flag == os.O_APPEND else "w", encoding="utf-8")


@dataclass(frozen=True)
class ActionRecord:
    """One change falcoir made (or would have made, with ``dry_run``) in the cluster."""

    time: str
    incident: str
    action: str
    """``create``, ``patch``, ``delete``, ``scale``, ``exec``, ``ephemeral-container``..."""
    kind: str
    namespace: str | None
    name: str
    outcome: str
    """``ok``, ``unchanged``, ``failed``, ``dry-run``."""
    detail: str = ""
    actor: str | None = None
    dry_run: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    """Machine-readable extras (the object applied, the API error...)."""


class ActionLog:
    """Append-only JSONL log; each record is flushed and fsynced as it is written."""

    def __init__(self, path: Path, incident: str, actor: str | None = None) -> None:
        self.path = path
        self.incident = incident
        self.actor = actor
        self._lock = threading.Lock()

    def append(
        self,
        action: str,
        kind: str,
        namespace: str | None,
        name: str,
        outcome: str,
        detail: str = "",
        *,
        dry_run: bool = False,
        data: Mapping[str, Any] | None = None,
    ) -> ActionRecord:
        record = ActionRecord(
            time=iso(utc_now()),
            incident=self.incident,
            action=action,
            kind=kind,
            namespace=namespace,
            name=name,
            outcome=outcome,
            detail=detail,
            actor=self.actor,
            dry_run=dry_run,
            data=dict(data or {}),
        )
        line = json.dumps(asdict(record), ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with _private_file(self.path, os.O_APPEND) as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        return record

    def records(self) -> list[ActionRecord]:
        return list(read_actions(self.path))


_ACTION_KEYS = frozenset(f.name for f in fields(ActionRecord))


def read_actions(path: Path) -> Iterator[ActionRecord]:
    """The log's records. A line that is not a record (torn by a crash or a full disk,
    or edited) is skipped rather than stopping every reader; keys a later falcoir
    added are ignored. The file itself is kept as it is, as evidence."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if not isinstance(doc, dict):
                continue
            try:
                yield ActionRecord(**{k: v for k, v in doc.items() if k in _ACTION_KEYS})
            except TypeError:
                continue


@dataclass(frozen=True)
class Incident:
    id: str
    created: str
    namespace: str
    pod: str
    pod_uid: str | None
    dir: Path
    bundles: tuple[str, ...] = ()
    """Paths of evidence bundles (directories) written for this incident."""
    policy: str | None = None
    """Name of the quarantine NetworkPolicy, when one was applied."""
    alert_raw: str | None = None

    @property
    def actions_path(self) -> Path:
        return self.dir / "actions.jsonl"

    def action_log(self, actor: str | None = None) -> ActionLog:
        return ActionLog(self.actions_path, self.id, actor)


class IncidentStore:
    """Incidents on the local disk."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or default_home()
        self.root = self.home / "incidents"
        self._lock = threading.Lock()

    def _load(self, path: Path) -> Incident:
        # Every contain/respond command reads all records (for_pod): one damaged file
        # must be a clear error naming it, not a traceback.
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return Incident(
                id=raw["id"],
                created=raw["created"],
                namespace=raw["namespace"],
                pod=raw["pod"],
                pod_uid=raw.get("pod_uid"),
                dir=path.parent,
                bundles=tuple(raw.get("bundles", ())),
                policy=raw.get("policy"),
                alert_raw=raw.get("alert_raw"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FalcoirError(
                f"incident record {path} is unreadable ({type(exc).__name__}: {exc})",
                hint=f"move {path.parent} out of {self.root} to go on without it",
            ) from exc

    def _save(self, inc: Incident) -> None:
        # The record holds the alert and the log what was done: readable by the owner only.
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        inc.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _restrict(inc.dir, 0o700)
        doc = {
            "id": inc.id,
            "created": inc.created,
            "namespace": inc.namespace,
            "pod": inc.pod,
            "pod_uid": inc.pod_uid,
            "bundles": list(inc.bundles),
            "policy": inc.policy,
            "alert_raw": inc.alert_raw,
        }
        tmp = inc.dir / "incident.json.tmp"
        with _private_file(tmp, os.O_TRUNC) as fh:
            fh.write(json.dumps(doc, indent=2, ensure_ascii=False))
        tmp.replace(inc.dir / "incident.json")

    def all(self) -> list[Incident]:
        if not self.root.is_dir():
            return []
        found = [self._load(p) for p in self.root.glob("*/incident.json")]
        return sorted(found, key=lambda i: i.id)

    def get(self, incident_id: str) -> Incident | None:
        path = self.root / incident_id / "incident.json"
        if not is_incident_id(incident_id) or not path.exists():
            return None
        return self._load(path)

    def for_pod(self, namespace: str, pod: str, pod_uid: str | None) -> Incident | None:
        """The newest incident about this pod (matched by uid when known)."""
        matches = [
            i
            for i in self.all()
            if i.namespace == namespace
            and i.pod == pod
            and (pod_uid is None or i.pod_uid is None or i.pod_uid == pod_uid)
        ]
        return matches[-1] if matches else None

    def open(
        self,
        namespace: str,
        pod: str,
        pod_uid: str | None,
        *,
        alert_raw: str | None = None,
        incident_id: str | None = None,
    ) -> Incident:
        """The pod's existing incident, or a new one."""
        with self._lock:
            if incident_id is not None:
                existing = self.get(incident_id)
                if existing is not None:
                    return existing
            else:
                existing = self.for_pod(namespace, pod, pod_uid)
                if existing is not None:
                    return existing
            new_id = incident_id or new_incident_id()
            if not is_incident_id(new_id):
                raise ValueError(f"not an incident id: {new_id!r}")
            inc = Incident(
                id=new_id,
                created=iso(utc_now()),
                namespace=namespace,
                pod=pod,
                pod_uid=pod_uid,
                dir=self.root / new_id,
                alert_raw=alert_raw,
            )
            self._save(inc)
            return inc

    def add_bundle(self, incident: Incident, bundle_dir: Path) -> Incident:
        with self._lock:
            current = self.get(incident.id) or incident
            path = str(bundle_dir.resolve())
            bundles = current.bundles if path in current.bundles else (*current.bundles, path)
            updated = Incident(**{**current.__dict__, "bundles": bundles})
            self._save(updated)
            return updated

    def set_policy(self, incident: Incident, policy: str | None) -> Incident:
        with self._lock:
            current = self.get(incident.id) or incident
            updated = Incident(**{**current.__dict__, "policy": policy})
            self._save(updated)
            return updated
