"""Options, events and results of an evidence collection."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from falcoir.core.bundle import Artifact, BundleResult
from falcoir.core.target import Target

MiB = 1024 * 1024


@dataclass(frozen=True)
class CollectOptions:
    timeout: float = 30.0
    """Per command (and per API call) timeout, seconds."""
    deadline: float | None = None
    """The whole collection; default ``4 * timeout + binary_timeout``."""
    max_bytes: int = 32 * MiB
    """Cap on each command's stdout (and stderr); the rest is counted and dropped."""
    max_binary_bytes: int = 512 * MiB
    binary_timeout: float = 120.0
    log_bytes: int = 8 * MiB
    """Cap on each container log (current and previous)."""
    concurrency: int = 16
    """Calls to the cluster in flight at once: enough for every collector's at once
    (about 8 execs and 7 API reads), so that no read waits behind another."""
    vpid: int | None = None
    """The suspect process's pid inside the container (overrides the target's)."""
    ephemeral_debug: bool = False
    debug_image: str = "busybox:1.36"
    debug_wait: float = 60.0
    retries: int = 1
    """Retries of a command whose exec stream was dropped."""
    extra_dirs: tuple[str, ...] = ()
    volatile: bool = True
    """Collect processes and network (``respond`` may have done it already)."""

    @property
    def total_deadline(self) -> float:
        if self.deadline is not None:
            return self.deadline
        return (
            4 * self.timeout
            + self.binary_timeout
            + (self.debug_wait if self.ephemeral_debug else 0)
        )


class CollectorStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    PARTIAL = "partial"
    """Some of it was captured, not all (cut short, one source missing)."""
    SKIPPED = "skipped"
    """Nothing to do (no suspect process named, nothing to read)."""
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"

    @property
    def good(self) -> bool:
        return self in (CollectorStatus.OK, CollectorStatus.SKIPPED)


@dataclass(frozen=True)
class CollectorEvent:
    """Progress of one collector, for a live display."""

    collector: str
    state: str
    """``start``, ``run`` (a command started; ``detail`` is its argv), ``bytes``,
    ``done``."""
    status: CollectorStatus | None = None
    bytes: int = 0
    detail: str | None = None


@dataclass(frozen=True)
class CollectorOutcome:
    name: str
    status: CollectorStatus
    note: str | None = None
    artifacts: tuple[str, ...] = ()
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "note": self.note,
            "artifacts": list(self.artifacts),
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class BinaryEvidence:
    """The suspect executable: where it was, its hashes, whether it was deleted."""

    vpid: int | None
    path: str | None
    deleted: bool
    sha256: str | None
    """Of the bytes copied into the bundle."""
    in_pod_sha256: str | None
    """What ``sha256sum`` printed inside the container."""
    artifact: str | None
    bytes: int = 0
    path_sha256: str | None = None
    """``sha256sum`` of the path named by the alert (may differ: replaced, deleted)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "vpid": self.vpid,
            "path": self.path,
            "deleted": self.deleted,
            "sha256": self.sha256,
            "in_pod_sha256": self.in_pod_sha256,
            "path_sha256": self.path_sha256,
            "artifact": self.artifact,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class CollectResult:
    """JSON keys ``incident bundle archive complete artifacts[]{name path sha256 bytes
    exit_code status}`` are a stable contract (``product.md``)."""

    target: Target
    artifacts: tuple[Artifact, ...]
    collectors: tuple[CollectorOutcome, ...]
    complete: bool
    notes: tuple[str, ...] = ()
    incident: str | None = None
    bundle: BundleResult | None = None
    binary: BinaryEvidence | None = None
    debug_container: str | None = None
    interrupted: bool = False
    connections: tuple[dict[str, Any], ...] = field(default=())
    elapsed_s: float = 0.0

    def sealed(self, bundle: BundleResult, incident: str) -> CollectResult:
        return replace(self, bundle=bundle, incident=incident)

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "bundle": str(self.bundle.dir) if self.bundle else None,
            "archive": str(self.bundle.archive) if self.bundle else None,
            "archive_sha256": self.bundle.archive_sha256 if self.bundle else None,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "target": self.target.to_dict(),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "collectors": [c.to_dict() for c in self.collectors],
            "binary": self.binary.to_dict() if self.binary else None,
            "connections": list(self.connections),
            "debug_container": self.debug_container,
            "notes": list(self.notes),
            "elapsed_s": round(self.elapsed_s, 3),
        }
