"""Evidence bundles: a BagIt bag (RFC 8493) written as evidence arrives, and its checks.

Layout of a bundle directory (and of the ``.tar.gz`` made from it)::

    <incident>-<UTC time>/
      bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
      data/
        alert.txt              the alert exactly as received (when there was one)
        target.json            the located target
        <artifact>             raw bytes of each artifact (command stdout, API object...)
        <artifact>.stderr      raw stderr of a command, when it wrote any
        <artifact>.meta.json   argv, container, UTC start/end, exit code, stderr, byte
                               count, truncation flag, status, sha256
        index.json             every artifact's metadata in one list (at sealing)
        actions.jsonl          the incident's append-only action log (at sealing)

Artifacts are written to ``data/`` as they arrive and their sidecar as each one ends,
so a crash keeps what was captured. Every file is hashed as it is written;
:meth:`BundleWriter.finalize` seals the bag (manifests, tag manifest, ``bag-info.txt``,
written here in the ``bagit`` library's own format) from those hashes (a file changed
after it was captured fails verification), reading back only files it did not write,
and writes the archive, hashing it as it goes; :meth:`BundleWriter.reopen` lets a later
step add files and seal it again. The ``bagit`` library reads and validates bags
(:func:`verify`); writing one does not need it, so ``falcoir collect`` never imports it.

:func:`verify` checks a directory or an archive; archives are never extracted blindly:
every member is checked (no absolute paths, no ``..``, no links or devices, one top
directory, bounded sizes) and copied out by hand into a private temporary directory.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from falcoir import __version__
from falcoir.core.incident import Incident, iso, utc_now
from falcoir.core.target import Target
from falcoir.core.text import decode_hostile, neutralize
from falcoir.errors import FalcoirError, InputError

BAGIT_VERSION = "1.0"
ALGORITHM = "sha256"
META_SUFFIX = ".meta.json"
STDERR_SUFFIX = ".stderr"
INDEX_NAME = "index.json"
ACTIONS_NAME = "actions.jsonl"
ALERT_NAME = "alert.txt"
TARGET_NAME = "target.json"
RESERVED_NAMES = frozenset({INDEX_NAME, ACTIONS_NAME, ALERT_NAME, TARGET_NAME})

# bag-info.txt keys (stable: scripts and auditors read them).
INFO_INCIDENT = "Falcoir-Incident"
INFO_ALERT = "Falcoir-Alert"
INFO_TARGET = "Falcoir-Target"
INFO_CONTEXT = "Falcoir-Context"
INFO_VERSION = "Falcoir-Version"
INFO_OPERATOR = "Falcoir-Operator"
INFO_COMPLETE = "Falcoir-Complete"
INFO_STARTED = "Falcoir-Started"
INFO_SEALED = "Falcoir-Sealed"
INFO_INCOMPLETE_REASON = "Falcoir-Incomplete-Reason"
"""Why a bundle was sealed incomplete, when falcoir knows more than "a collector did not
succeed": sealed after the fact (``falcoir bundle seal``), or abandoned because locate
failed or was interrupted after the collection had begun."""
INFO_TARGET_STATUS = "Falcoir-Target-Status"
"""``partial`` (``target.json`` holds what was known: pod, container, pids, not the owner
chain) or ``unknown`` (no target was located: the bundle cannot say which pod it is
about); absent when ``target.json`` is the located target."""
TARGET_PARTIAL = "partial"
TARGET_UNKNOWN = "unknown"
UNSEALED_MARKER = "falcoir-unsealed.json"
"""In the bundle's root while a writer has it open (who, since when); removed when it
is sealed. Found later, it means the writer died (SIGKILL, power loss) unsealed."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_STDERR_KEEP_IN_META = 64 * 1024
PROGRESS_STEP = 256 * 1024
_ARCHIVE_MAX_MEMBERS = 100_000
# A bundle holds at most a few capped artifacts (32 MiB each, 512 MiB for a binary):
# 4 GiB is far above a real one, and an archive is never expanded past the free disk
# (less a margin) nor more than _ARCHIVE_MAX_RATIO times its own size (a gzip bomb).
_ARCHIVE_MAX_BYTES = 4 * 1024**3
_ARCHIVE_MAX_RATIO = 500
_ARCHIVE_SMALL = 64 * 1024**2
_DISK_MARGIN = 256 * 1024**2
ARCHIVE_LEVEL = 1
"""gzip level of the archive: the fastest (a level 9 archive of a large binary takes
several times as long to write, for a few per cent less)."""
MANIFEST = f"manifest-{ALGORITHM}.txt"
TAGMANIFEST = f"tagmanifest-{ALGORITHM}.txt"
_TMP_SUFFIX = ".falcoir-tmp"
"""A tag file (or the archive's ``.sha256``) being written, renamed over the real one
once it is on disk."""
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

# bagit's writer changes the process's working directory while it works: one at a time.
_BAGIT_LOCK = threading.Lock()


def _bagit() -> Any:
    """The ``bagit`` module, with its logger kept off the terminal (it prints file
    names from the bag, which may be hostile); falcoir reports problems itself."""
    import logging

    import bagit

    logger = logging.getLogger("bagit")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return bagit


class BundleError(FalcoirError):
    """A bundle could not be written or read."""


class ArtifactStatus(StrEnum):
    """What became of one artifact (stable JSON values)."""

    OK = "ok"
    FAILED = "failed"
    """Ran but failed (non-zero exit), or the API refused."""
    NOT_FOUND = "not-found"
    """The tool does not exist in the image."""
    TIMEOUT = "timeout"
    TRUNCATED = "truncated"
    """Complete up to the byte limit, the rest dropped."""
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class ArtifactMeta:
    """How an artifact was obtained. Everything is optional but ``status``."""

    status: ArtifactStatus = ArtifactStatus.OK
    collector: str | None = None
    source: str = "exec"
    """``exec`` (a command in a container), ``api`` (the API server), ``falcoir``
    (derived by falcoir from other artifacts), ``input`` (given to falcoir)."""
    argv: tuple[str, ...] | None = None
    container: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    exit_code: int | None = None
    stderr: bytes = b""
    truncated: bool = False
    error: str | None = None
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    """One file of evidence in ``data/``, with how it was obtained.

    ``to_dict`` keys ``name path sha256 bytes exit_code status`` are a stable contract.
    """

    name: str
    path: str
    """Relative to the bundle directory (``data/...``)."""
    sha256: str
    bytes: int
    status: ArtifactStatus
    exit_code: int | None = None
    collector: str | None = None
    source: str = "exec"
    argv: tuple[str, ...] | None = None
    container: str | None = None
    started: str | None = None
    ended: str | None = None
    truncated: bool = False
    error: str | None = None
    note: str | None = None
    stderr_path: str | None = None
    stderr_bytes: int = 0
    mode: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is ArtifactStatus.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "exit_code": self.exit_code,
            "status": self.status.value,
            "collector": self.collector,
            "source": self.source,
            "argv": list(self.argv) if self.argv is not None else None,
            "container": self.container,
            "started": self.started,
            "ended": self.ended,
            "truncated": self.truncated,
            "error": self.error,
            "note": self.note,
            "stderr_path": self.stderr_path,
            "stderr_bytes": self.stderr_bytes,
            "mode": self.mode,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Artifact:
        argv = doc.get("argv")
        return cls(
            name=str(doc["name"]),
            path=str(doc["path"]),
            sha256=str(doc.get("sha256") or ""),
            bytes=_count(doc.get("bytes")),
            status=ArtifactStatus(doc.get("status", "ok")),
            exit_code=_exit_code(doc.get("exit_code")),
            collector=doc.get("collector"),
            source=str(doc.get("source") or "exec"),
            argv=tuple(str(a) for a in argv) if isinstance(argv, list) else None,
            container=doc.get("container"),
            started=doc.get("started"),
            ended=doc.get("ended"),
            truncated=bool(doc.get("truncated")),
            error=doc.get("error"),
            note=doc.get("note"),
            stderr_path=doc.get("stderr_path"),
            stderr_bytes=_count(doc.get("stderr_bytes")),
            mode=doc.get("mode"),
            extra=dict(doc.get("extra") or {}),
        )


def _exit_code(value: object) -> int | None:
    """An exit code read back from a bundle: an int, or nothing (the file may be forged)."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**32:
        return value
    return None


def _count(value: object) -> int:
    """A byte count read back from a bundle: a non-negative int that fits 63 bits, else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return 0


@dataclass(frozen=True)
class BundleResult:
    dir: Path
    archive: Path
    archive_sha256: str
    complete: bool
    artifacts: tuple[Artifact, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.dir),
            "archive": str(self.archive),
            "archive_sha256": self.archive_sha256,
            "complete": self.complete,
        }


def _check_name(name: str) -> str:
    if (
        not _NAME_RE.fullmatch(name)
        or any(part in {".", ".."} for part in name.split("/"))
        or name.endswith((META_SUFFIX, STDERR_SUFFIX))
        or name in RESERVED_NAMES
    ):
        raise BundleError(f"not a valid artifact name: {name!r}")
    return name


def safe_component(text: str, *, fallback: str = "x", max_len: int = 60) -> str:
    """A file-name component made from untrusted text (container names, paths)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return (cleaned or fallback)[:max_len]


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    """Make ``path``'s entries durable: a file created, renamed or removed in it survives
    a power loss only once its directory is fsynced. A no-op where directories cannot
    be opened or fsynced (some network and FUSE filesystems, other systems)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_all(files: Sequence[Path], dirs: Sequence[Path] = ()) -> None:
    """fsync ``files`` and ``dirs`` at once, each in its own thread: on a journalling
    filesystem (ext4, xfs) fsyncs that wait together share one journal commit, where
    one after the other each waits for its own (a few ms each on a busy disk)."""
    jobs: list[tuple[Callable[[Path], None], Path]] = [(_fsync_file, f) for f in files]
    jobs += [(_fsync_dir, d) for d in dirs]
    errors: list[OSError] = []

    def run(job: tuple[Callable[[Path], None], Path]) -> None:
        try:
            job[0](job[1])
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs[1:]]
    for t in threads:
        t.start()
    if jobs:
        run(jobs[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _write_synced(path: Path, data: bytes) -> None:
    """``data`` into ``path`` (created or truncated), fsynced before returning."""
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _bundle_relative(rel: str) -> bool:
    """``rel`` names a payload file inside the bundle (``data/...``, nothing that climbs
    out): a path read back from a manifest or a sidecar, which may be forged."""
    parts = rel.split("/")
    return (
        len(parts) >= 2
        and parts[0] == "data"
        and not any(p in {"", ".", ".."} for p in parts)
        and "\x00" not in rel
        and "\\" not in rel
    )


def _meta_doc(art: Artifact, stderr: bytes) -> dict[str, Any]:
    doc = art.to_dict()
    shown = stderr[:_STDERR_KEEP_IN_META]
    doc["stderr"] = decode_hostile(shown)
    doc["stderr_in_meta_truncated"] = len(stderr) > len(shown)
    return doc


class ArtifactStream(io.RawIOBase):
    """A binary file for one streamed artifact: hashes and counts as it writes, keeps
    at most ``max_bytes`` (the rest is counted and dropped). :meth:`commit` records it."""

    def __init__(self, writer: BundleWriter, name: str, path: Path, max_bytes: int | None) -> None:
        super().__init__()
        self._writer = writer
        self.name_ = name
        self.path = path
        self._fh: BinaryIO | None = path.open("xb")
        self._digest = hashlib.sha256()
        self.max_bytes = max_bytes
        self.kept = 0
        self.seen = 0
        self.committed: Artifact | None = None
        self.on_progress: Callable[[int], None] | None = None
        """Called with the bytes seen so far, at most every ``PROGRESS_STEP`` bytes."""
        self._next_progress = PROGRESS_STEP
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        with self._lock:
            self.seen += len(chunk)
            room = len(chunk) if self.max_bytes is None else max(0, self.max_bytes - self.kept)
            part = chunk[:room]
            if part and self._fh is not None and not self._writer.closed:
                self._fh.write(part)
                self._digest.update(part)
                self.kept += len(part)
            report = self.on_progress is not None and self.seen >= self._next_progress
            if report:
                self._next_progress = self.seen + PROGRESS_STEP
        if report and self.on_progress is not None:
            self.on_progress(self.seen)
        return len(chunk)

    @property
    def truncated(self) -> bool:
        return self.seen > self.kept

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()

    def commit(self, meta: ArtifactMeta, *, mode: int | None = None) -> Artifact:
        """Close the file and record the artifact (``truncated`` is set from what this
        stream dropped as well as from ``meta``)."""
        with self._commit_lock:  # the owner and a sealing writer may both try
            if self.committed is not None:
                return self.committed
            with self._lock:
                if self._fh is not None:
                    self._fh.flush()
                    os.fsync(self._fh.fileno())
                    self._fh.close()
                    self._fh = None
            truncated = meta.truncated or self.truncated
            status = meta.status
            if truncated and status is ArtifactStatus.OK:
                status = ArtifactStatus.TRUNCATED
            meta = replace(meta, truncated=truncated, status=status)
            art = self._writer._record(
                self.name_, self.path, self._digest.hexdigest(), self.kept, meta, mode=mode
            )
            self.committed = art
            self._writer._stream_done(self)
            return art

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.committed is None:
            why = "interrupted" if exc_type is not None else "not committed"
            self.commit(
                ArtifactMeta(
                    status=ArtifactStatus.INTERRUPTED,
                    error=f"{why}: {exc_type.__name__ if exc_type else 'no result'}",
                )
            )
        self.close()


class BundleWriter:
    """Writes one evidence bundle for an incident. Thread-safe for adding artifacts."""

    def __init__(self, directory: Path, incident_id: str, info: dict[str, str]) -> None:
        self.dir = directory
        self.data = directory / "data"
        self.incident_id = incident_id
        self.info = info
        self.actions_path: Path | None = None
        self._artifacts: dict[str, Artifact] = {}
        self._lock = threading.Lock()
        self.sealed: BundleResult | None = None
        self.previous_complete: bool | None = None
        self.closed = False
        """Set when sealing: late writes from abandoned threads are dropped."""
        self._streams: set[ArtifactStream] = set()
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        self._hashes: dict[str, tuple[str, int]] = {}
        """Bundle-relative path -> (sha256, size) of each file as this writer wrote it, or
        as recorded before (``reopen``): sealing reads back only the other files."""
        self._info_lists: dict[str, list[str]] = {}
        self._algorithms: tuple[str, ...] = (ALGORITHM,)
        """The bag's manifest algorithms (a reopened bag made elsewhere may have others)."""
        """``bag-info.txt`` tags given more than once (kept as they are when resealing)."""
        self.default_mode: int | None = 0o444
        """Payload files are read-only once recorded (evidence is not edited)."""
        self._new_parents: list[Path] = []
        """Directories in which ``create`` made the output directory or its parents: fsynced
        when sealing, so that the bundle's path survives a power cut as well."""

    # -- creation ------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        out_dir: Path,
        incident: Incident,
        *,
        alert_raw: str | None,
        target: Target | None,
        context: str,
        operator: str,
        target_file: bool = True,
    ) -> BundleWriter:
        """A new bundle directory ``out_dir/<incident>-<UTC time>`` (``-2``, ``-3``...
        when it exists), already a valid (empty) BagIt bag. ``target_file=False``:
        ``target.json`` is written later (:meth:`add_target`), e.g. once locate has
        read the owner chain."""
        started = utc_now()
        out_dir = out_dir.expanduser().resolve()
        made = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
        out_dir.mkdir(parents=True, exist_ok=True)
        base = f"{incident.id}-{started:%Y%m%dT%H%M%SZ}"
        directory = out_dir / base
        n = 1
        while True:
            try:
                directory.mkdir(mode=0o700)
                break
            except FileExistsError:
                n += 1
                directory = out_dir / f"{base}-{n}"
        os.chmod(directory, 0o700)
        target_text = ""
        if target is not None:
            target_text = f"{target.namespace}/{target.pod}"
            if target.container:
                target_text += f" container={target.container}"
        info = {
            "External-Identifier": incident.id,
            INFO_INCIDENT: incident.id,
            INFO_ALERT: neutralize(alert_raw or "")[:8192],
            INFO_TARGET: neutralize(target_text),
            INFO_CONTEXT: neutralize(context),
            INFO_VERSION: __version__,
            INFO_OPERATOR: neutralize(operator),
            INFO_STARTED: iso(started),
            INFO_COMPLETE: "false",
            "Bag-Software-Agent": f"falcoir {__version__}",
            "Bagging-Date": f"{started:%Y-%m-%d}",
        }
        # An empty bag (data/ plus tag files), then the marker: the unsealed marker is
        # what says "still being written", as the bag-info has no Falcoir-Sealed yet.
        (directory / "data").mkdir(mode=0o700)
        _write_tags(directory, info, {}, [], durable=False)
        writer = cls(directory, incident.id, info)
        writer._new_parents = [p.parent for p in made]
        writer._mark_unsealed()
        writer.actions_path = incident.actions_path
        if alert_raw is not None:
            writer.add_bytes(
                ALERT_NAME,
                alert_raw.encode("utf-8", errors="surrogateescape"),
                ArtifactMeta(source="input", collector="alert"),
                _reserved=True,
            )
        if target is not None and target_file:
            writer.add_target(target)
        return writer

    def add_target(self, target: Target, *, partial: str | None = None) -> Artifact:
        """``target.json``: the located target.

        ``partial``: why ``target`` is only what was known when the collection began
        (pod, container, pids: locate had not read the owner chain). Said in the file
        (``"partial": true``, ``"not_read": ["owner"]``, ``"partial_reason"``), by the
        artifact's status (interrupted) and in ``bag-info.txt``
        (``Falcoir-Target-Status: partial``)."""
        doc = target.to_dict()
        meta = ArtifactMeta(source="falcoir", collector="target")
        if partial is not None:
            why = neutralize(partial)[:1000]
            doc.update(partial=True, not_read=["owner"], partial_reason=why)
            meta = replace(
                meta,
                status=ArtifactStatus.INTERRUPTED,
                error=f"partial target, the owner chain was not read: {why}",
            )
            self.info[INFO_TARGET_STATUS] = TARGET_PARTIAL
        return self.add_bytes(
            TARGET_NAME,
            (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(),
            meta,
            _reserved=True,
        )

    def has(self, name: str) -> bool:
        """An artifact ``name`` was recorded (``target.json``...)."""
        with self._lock:
            art = self._artifacts.get(name)
            return art is not None and bool(art.path)

    @classmethod
    def reopen(cls, directory: Path, *, actions_path: Path | None = None) -> BundleWriter:
        """An existing bundle, to add files and seal again (``finalize``).

        The hashes already recorded are kept, not taken again from the files: those of
        its manifest (the last seal), then those its artifacts' sidecars recorded as
        each was written (a writer that died before sealing). Sealing again is then
        quick (a large binary copy is not read back) and never launders a change: a
        file altered or removed since it was recorded still fails ``verify`` (which
        hashes every file) after the new seal. Files with no recorded hash (left by a
        writer that died while writing them) are hashed as they are."""
        bagit = _bagit()

        directory = directory.expanduser().resolve()
        try:
            bag = bagit.Bag(str(directory))
        except bagit.BagError as exc:
            raise BundleError(f"{directory} is not a bundle: {exc}") from exc
        info = {str(k): str(v) for k, v in bag.info.items() if not isinstance(v, list)}
        incident_id = info.get(INFO_INCIDENT, "")
        writer = cls(directory, incident_id, info)
        writer._info_lists = {
            str(k): [str(x) for x in v] for k, v in bag.info.items() if isinstance(v, list)
        }
        writer._algorithms = tuple(bag.algorithms)
        writer.previous_complete = info.get(INFO_COMPLETE) == "true"
        writer.actions_path = actions_path
        # The recorded hashes are kept only when the bag vouches for them: its tag
        # manifest for its manifest, its manifest for the sidecars read here. Otherwise
        # a file changed together with its manifest line (or its sidecar) would be
        # sealed anew as if it were what was captured.
        problem = _unvouched(directory, bag.entries)
        interrupted = (directory / UNSEALED_MARKER).exists()
        if problem is not None and not interrupted:
            raise BundleError(
                f"{directory}: {problem}: it changed since it was sealed; not sealed again "
                "(falcoir bundle verify says what differs)"
            )
        trust = problem is None  # (a reseal cut short: every file hashed as it is now)
        recorded: dict[str, tuple[str, int]] = {}
        for art in _load_index(directory):
            writer._artifacts[art.name] = art
            if trust and _HEX64.fullmatch(art.sha256) and _bundle_relative(art.path):
                recorded[art.path] = (art.sha256.lower(), art.bytes)
        for rel, hashes in bag.entries.items() if trust else ():
            digest = hashes.get(ALGORITHM)
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
                continue
            if not _bundle_relative(rel):
                continue  # a tag file, or a forged path (verify reports it)
            digest = digest.lower()
            known = recorded.get(rel)
            if known is not None and known[0] == digest:
                size = known[1]
            else:
                try:
                    size = (directory / rel).lstat().st_size
                except OSError:
                    size = 0  # removed since: listed still, verify says it is missing
            recorded[rel] = (digest, size)
        writer._hashes.update(recorded)
        # Durably marked before anything changes: its bag-info says it was sealed, and
        # the marker is what tells a reseal cut short by a crash from a tampered bag.
        writer._mark_unsealed(durable=True)
        return writer

    def _mark_unsealed(self, *, durable: bool = False) -> None:
        """The marker that says "being written". ``durable`` (a reopened bundle, whose
        bag-info already says sealed): fsynced and its directory too before returning.
        A new bundle's marker is not (the collection's critical path): until it is
        sealed its bag-info has no ``Falcoir-Sealed``, which says "unsealed" as well,
        and :meth:`finalize` fsyncs the directory before it writes a tag file."""
        doc = {"pid": os.getpid(), "host": socket.gethostname(), "since": iso(utc_now())}
        tmp = self.dir / (UNSEALED_MARKER + ".tmp")
        body = (json.dumps(doc) + "\n").encode("utf-8")
        if durable:
            _write_synced(tmp, body)
        else:
            tmp.write_bytes(body)
        os.replace(tmp, self.dir / UNSEALED_MARKER)
        if durable:
            _fsync_dir(self.dir)

    # -- adding artifacts ----------------------------------------------------------
    def _path_for(self, name: str) -> Path:
        path = self.data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _unique(self, name: str) -> str:
        with self._lock:
            if name not in self._artifacts and not (self.data / name).exists():
                self._artifacts[name] = Artifact(name, "", "", 0, ArtifactStatus.INTERRUPTED)
                return name
            stem, dot, ext = name.rpartition(".")
            if not dot or "/" in ext:
                stem, ext = name, ""
            for n in range(2, 10_000):
                cand = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
                if cand not in self._artifacts and not (self.data / cand).exists():
                    self._artifacts[cand] = Artifact(cand, "", "", 0, ArtifactStatus.INTERRUPTED)
                    return cand
        raise BundleError(f"too many artifacts named {name!r}")

    def add_bytes(
        self,
        name: str,
        data: bytes,
        meta: ArtifactMeta | None = None,
        *,
        mode: int | None = None,
        _reserved: bool = False,
    ) -> Artifact:
        """Write one artifact (``name`` is a relative path of ``[A-Za-z0-9._-]``
        components; a suffix is added if taken). Returns what was recorded."""
        if not _reserved:
            _check_name(name)
        with self._lock:
            self._check_open()
            self._inflight += 1
        try:
            name = self._unique(name)
            path = self._path_for(name)
            with path.open("xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            digest = hashlib.sha256(data).hexdigest()
            return self._record(name, path, digest, len(data), meta or ArtifactMeta(), mode=mode)
        finally:
            with self._lock:
                self._inflight -= 1
                self._idle.notify_all()

    def open_stream(self, name: str, *, max_bytes: int | None = None) -> ArtifactStream:
        """A binary file to stream one artifact into; use as a context manager and call
        ``commit(meta)`` (an uncommitted stream is recorded as interrupted)."""
        _check_name(name)
        with self._lock:
            self._check_open()
            self._inflight += 1
        try:
            name = self._unique(name)
            stream = ArtifactStream(self, name, self._path_for(name), max_bytes)
            with self._lock:
                self._streams.add(stream)
            return stream
        finally:
            with self._lock:
                self._inflight -= 1
                self._idle.notify_all()

    def _stream_done(self, stream: ArtifactStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def _check_open(self) -> None:
        if self.closed:
            raise BundleError(
                "the bundle is sealed; reopen it (BundleWriter.reopen) to add artifacts"
            )

    def _record(
        self, name: str, path: Path, digest: str, size: int, meta: ArtifactMeta, *, mode: int | None
    ) -> Artifact:
        stderr_path = None
        if meta.stderr:
            err_file = path.with_name(path.name + STDERR_SUFFIX)
            with err_file.open("xb") as fh:
                fh.write(meta.stderr)
            if self.default_mode is not None:
                os.chmod(err_file, self.default_mode)
            stderr_path = str(err_file.relative_to(self.dir))
            self._remember(stderr_path, meta.stderr)
        mode = self.default_mode if mode is None else mode
        if mode is not None:
            os.chmod(path, mode)
        art = Artifact(
            name=name,
            path=str(path.relative_to(self.dir)),
            sha256=digest,
            bytes=size,
            status=meta.status,
            exit_code=meta.exit_code,
            collector=meta.collector,
            source=meta.source,
            argv=tuple(meta.argv) if meta.argv is not None else None,
            container=meta.container,
            started=iso(meta.started) if meta.started else None,
            ended=iso(meta.ended) if meta.ended else None,
            truncated=meta.truncated,
            error=meta.error,
            note=meta.note,
            stderr_path=stderr_path,
            stderr_bytes=len(meta.stderr),
            mode=f"{stat.S_IMODE(path.stat().st_mode):04o}",
            extra=dict(meta.extra),
        )
        # Renamed into place, not fsynced: one fsync per artifact (its data, by the
        # caller) is the budget. A sidecar a power cut empties is skipped when read
        # back (its file is sealed as interrupted), or reported by verify once sealed;
        # index.json, fsynced when sealing, holds the same record.
        sidecar = path.with_name(path.name + META_SUFFIX)
        tmp = sidecar.with_name(sidecar.name + ".tmp")
        doc = json.dumps(_meta_doc(art, meta.stderr), indent=2, ensure_ascii=False) + "\n"
        body = doc.encode("utf-8")
        tmp.write_bytes(body)
        tmp.replace(sidecar)
        self._remember(str(sidecar.relative_to(self.dir)), body)
        with self._lock:
            self._hashes[art.path] = (digest, size)
            self._artifacts[name] = art
        return art

    def _remember(self, rel: str, data: bytes) -> None:
        """``data`` is what the file at bundle-relative ``rel`` now holds."""
        entry = (hashlib.sha256(data).hexdigest(), len(data))
        with self._lock:
            self._hashes[rel] = entry

    @property
    def artifacts(self) -> list[Artifact]:
        with self._lock:
            return [a for a in self._artifacts.values() if a.path]

    # -- sealing -------------------------------------------------------------------
    def finalize(self, complete: bool) -> BundleResult:
        """Copy the action log in, write ``index.json``, seal the bag (manifests,
        tag manifest, ``bag-info.txt``) and write ``<dir>.tar.gz``.

        Durable when it returns, in an order a crash cannot turn into a lie: the index
        and action log fsynced and every directory of the bag fsynced (the payload
        files were fsynced as they were written), then each tag file fsynced and renamed
        into place and the directory fsynced, then the unsealed marker removed and that
        made durable, then the archive and its ``.sha256`` fsynced, renamed, and their
        directory fsynced. The sidecars (``.meta.json``) and ``.stderr`` files are not
        fsynced one by one (their content is in ``index.json`` too)."""
        # No new artifacts from here; wait for the ones being written (quick, bounded
        # writes), then record what still-open streams hold (a collector that did not
        # finish): their later writes are dropped.
        with self._lock:
            self.closed = True
            self._idle.wait_for(lambda: self._inflight == 0, timeout=60)
            pending = list(self._streams)
        for stream in pending:
            stream.commit(
                ArtifactMeta(
                    status=ArtifactStatus.INTERRUPTED,
                    error="still running when the bundle was sealed",
                )
            )
        arts = sorted(self.artifacts, key=lambda a: a.name)
        # The action log is replaced by the incident's, when there is one to copy; a
        # bundle resealed without it (on another machine) keeps the one it has.
        if self.actions_path is not None and self.actions_path.exists():
            log = self.actions_path.read_bytes()
            self._rewrite(self.data / ACTIONS_NAME, log)
            self._remember(f"data/{ACTIONS_NAME}", log)
        index = {
            "incident": self.incident_id,
            "complete": complete,
            "artifacts": [a.to_dict() for a in arts],
        }
        body = (json.dumps(index, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        self._rewrite(self.data / INDEX_NAME, body)
        self._remember(f"data/{INDEX_NAME}", body)
        # A leftover half-written sidecar would make the bag lie: drop it.
        for tmp in self.data.rglob("*" + META_SUFFIX + ".tmp"):
            tmp.unlink()
        # On disk before a tag file says "sealed" (fsynced with the tag files): the
        # index and action log, every file's name (the payload's data were fsynced as
        # they were written) and the unsealed marker's.
        before = [self.data / INDEX_NAME]
        if (self.data / ACTIONS_NAME).is_file():
            before.append(self.data / ACTIONS_NAME)
        dirs = [Path(dirpath) for dirpath, _, _ in os.walk(self.data)] + [self.dir]
        dirs += self._new_parents
        now = utc_now()
        self.info[INFO_COMPLETE] = "true" if complete else "false"
        self.info[INFO_SEALED] = iso(now)
        self.info["Bagging-Date"] = f"{now:%Y-%m-%d}"
        if self._algorithms == (ALGORITHM,):
            with self._lock:
                known = dict(self._hashes)
            _write_tags(
                self.dir,
                self.info,
                self._info_lists,
                _payload(self.dir, known),
                sync_files=before,
                sync_dirs=dirs,
            )
        else:
            _fsync_all(before, dirs)
            self._remove_marker()  # bagit would list it in the tag manifest
            self._save_with_bagit()
        # Sealed once the tag files are: only then is the marker removed (a writer
        # killed before this point leaves a bundle that says it was never sealed),
        # durably before the archive says "sealed" as well (fsynced with it).
        self._remove_marker()
        archive = self.dir.with_name(self.dir.name + ".tar.gz")
        archive_sha = _write_archive(self.dir, archive, sync_dirs=[self.dir])
        # Sealed: late writes (a collector thread that outlived its deadline) are
        # refused; add more with ``BundleWriter.reopen(dir)`` and seal again.
        self.sealed = BundleResult(self.dir, archive, archive_sha, complete, tuple(arts))
        return self.sealed

    @staticmethod
    def _rewrite(path: Path, body: bytes) -> None:
        """A file ``finalize`` writes anew each time (the index, the action log); fsynced
        with the tag files."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # it may be read-only
        path.write_bytes(body)

    def _remove_marker(self) -> None:
        for marker in (UNSEALED_MARKER, UNSEALED_MARKER + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / marker).unlink()

    def _save_with_bagit(self) -> None:
        """Seal a reopened bag that has manifests in other algorithms than ours (one
        made by another tool): ``bagit`` rewrites all of them."""
        bagit = _bagit()
        with _BAGIT_LOCK, _restore_cwd():
            bag = bagit.Bag(str(self.dir))
            bag.info.update(self.info)
            bag.save(manifests=True)
            self.info = {str(k): str(v) for k, v in bag.info.items() if not isinstance(v, list)}
        # bagit writes its tag files in place without fsync: on disk before "sealed".
        _fsync_all(
            [e for e in sorted(self.dir.iterdir()) if e.is_file() and not e.is_symlink()],
            [self.dir],
        )


_NEWLINES = re.compile(r"\n|\r|(\r\n)")


def _tag_line(key: str, value: str) -> str:
    # as bagit writes them: CR and LF dropped so a value stays on its line
    return f"{key}: {_NEWLINES.sub('', value)}\n"


def _encode_filename(name: str) -> str:
    return name.replace("\r", "%0D").replace("\n", "%0A")


def _payload(directory: Path, known: Mapping[str, tuple[str, int]]) -> list[tuple[str, str, int]]:
    """``(bundle-relative path, sha256, size)`` of every file under ``data/``, in the
    order bagit lists them. A file this writer wrote keeps the hash it had when it was
    written (a file changed between its capture and the seal then fails verification
    instead of being sealed as changed); any other file is hashed as it is now. A file
    with a recorded hash that is no longer there stays listed, after the others (so
    ``verify`` says it is missing instead of the seal forgetting it)."""
    out: list[tuple[str, str, int]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(directory / "data"):
        dirnames.sort()
        filenames.sort()
        for fn in filenames:
            path = Path(dirpath, fn)
            rel = path.relative_to(directory).as_posix()
            entry = known.get(rel)
            if entry is None:
                entry = _sha256_file(path)
            out.append((rel, entry[0], entry[1]))
            seen.add(rel)
    for rel in sorted(set(known) - seen):
        if not os.path.lexists(directory / rel):
            out.append((rel, known[rel][0], known[rel][1]))
    return out


def _write_tags(
    directory: Path,
    info: Mapping[str, str],
    info_lists: Mapping[str, Sequence[str]],
    payload: Sequence[tuple[str, str, int]],
    *,
    durable: bool = True,
    sync_files: Sequence[Path] = (),
    sync_dirs: Sequence[Path] = (),
) -> None:
    """Write a bag's tag files as ``bagit`` would (``bagit.txt``, the manifest,
    ``bag-info.txt`` with its ``Payload-Oxum``, the tag manifest), each one's hash
    taken from the bytes written.

    ``durable``: each file is written beside its final name, the lot fsynced at once
    (with ``sync_files`` and ``sync_dirs``: what must be on disk before the bag says
    it holds it), then renamed over the old ones, the tag manifest last (a crash leaves
    every tag file whole, old or new), then the directory is fsynced: the bag is on
    disk when this returns. Without it (the empty bag of a new bundle, still marked
    unsealed) they are plainly written."""
    for leftover in directory.glob("*" + _TMP_SUFFIX):  # from a writer that died here
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    tags: dict[str, bytes] = {
        "bagit.txt": (
            f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n"
        ).encode(),
        MANIFEST: "".join(
            f"{digest}  {_encode_filename(rel)}\n" for rel, digest, _ in payload
        ).encode("utf-8"),
    }
    fields: dict[str, list[str]] = {k: list(v) for k, v in info_lists.items()}
    for key, value in info.items():
        fields[key] = [value]
    fields["Payload-Oxum"] = [f"{sum(size for _, _, size in payload)}.{len(payload)}"]
    tags["bag-info.txt"] = "".join(
        _tag_line(key, value) for key in sorted(fields) for value in fields[key]
    ).encode("utf-8")
    # Every other tag file (none that falcoir writes; one a later tool added) too.
    listed = [(hashlib.sha256(body).hexdigest(), name) for name, body in tags.items()]
    for entry in sorted(os.listdir(directory)):
        if entry in tags or entry == "data" or entry.startswith("tagmanifest-"):
            continue
        if entry in (UNSEALED_MARKER, UNSEALED_MARKER + ".tmp") or entry.endswith(_TMP_SUFFIX):
            continue
        path = directory / entry
        if path.is_symlink():
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if f.is_symlink() or f.name.startswith("tagmanifest-"):
                continue
            digest, _ = _sha256_file(f)
            listed.append((digest, f.relative_to(directory).as_posix()))
    tags[TAGMANIFEST] = "".join(f"{digest} {name}\n" for digest, name in listed).encode()
    if not durable:
        for name, body in tags.items():
            (directory / name).write_bytes(body)
        return
    tmps = {name: directory / (name + _TMP_SUFFIX) for name in tags}
    for name, body in tags.items():
        tmps[name].write_bytes(body)
    _fsync_all([*tmps.values(), *sync_files], sync_dirs)
    for name, tmp in tmps.items():  # the tag manifest last
        os.replace(tmp, directory / name)
    _fsync_dir(directory)


@contextlib.contextmanager
def _restore_cwd() -> Iterator[None]:
    old = os.getcwd()
    try:
        yield
    finally:
        os.chdir(old)


class _HashingFile(io.RawIOBase):
    """A file that hashes what is written to it (the archive's SHA-256 without
    reading it back)."""

    def __init__(self, fh: BinaryIO) -> None:
        super().__init__()
        self._fh = fh
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self._fh.write(view)
        return len(view)

    def flush(self) -> None:
        self._fh.flush()


def _write_archive(
    directory: Path,
    archive: Path,
    *,
    level: int = ARCHIVE_LEVEL,
    sync_dirs: Sequence[Path] = (),
) -> str:
    """``directory`` as a gzip'd tar (regular files and directories only, owner
    numeric 0, modes as on disk), hashed as it is written; returns its SHA-256.

    Durable and atomic: the archive and its ``.sha256`` are written beside their
    names, fsynced at once (with ``sync_dirs``: what must be on disk before the archive
    is), renamed into place, and their directory fsynced (which makes the bundle
    directory's own name durable too)."""
    tmp = archive.with_name(archive.name + ".part")

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    # evidence (pod specs, logs) is for the responders only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as raw:
        os.chmod(tmp, 0o600)
        sink = _HashingFile(raw)
        gz = gzip.GzipFile(filename=archive.name, mode="wb", fileobj=sink, compresslevel=level)
        with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            root = directory.name
            tar.add(directory, arcname=root, recursive=False, filter=clean)
            for path in sorted(directory.rglob("*")):
                if path.is_symlink() or not (path.is_file() or path.is_dir()):
                    continue
                rel = f"{root}/{path.relative_to(directory)}"
                tar.add(path, arcname=rel, recursive=False, filter=clean)
        raw.flush()
    digest = sink.digest.hexdigest()
    sidecar = archive.with_name(archive.name + ".sha256")
    sidecar_tmp = sidecar.with_name(sidecar.name + _TMP_SUFFIX)
    sidecar_tmp.write_text(f"{digest}  {archive.name}\n", encoding="utf-8")
    _fsync_all([tmp, sidecar_tmp], sync_dirs)
    os.replace(tmp, archive)
    os.replace(sidecar_tmp, sidecar)
    _fsync_dir(archive.parent)
    return digest


def _unvouched(directory: Path, entries: Mapping[str, Mapping[str, str]]) -> str | None:
    """What of the bag's own records its manifests do not vouch for (``None``: all of
    it): the manifest against the tag manifest, each artifact sidecar the manifest lists
    against its line. A bag never sealed (no manifest lines) vouches for nothing to
    check."""
    manifest = directory / MANIFEST
    listed = entries.get(MANIFEST, {}).get(ALGORITHM)
    if listed is not None or manifest.exists():
        try:
            actual = _sha256_file(manifest)[0]
        except OSError:
            return f"{MANIFEST} cannot be read"
        if not isinstance(listed, str) or listed.lower() != actual:
            return f"{MANIFEST} does not match {TAGMANIFEST}"
    for rel, hashes in entries.items():
        if not rel.endswith(META_SUFFIX) or not _bundle_relative(rel):
            continue
        digest = hashes.get(ALGORITHM)
        try:
            actual = _sha256_file(directory / rel)[0]
        except OSError:
            continue  # gone: its artifact is loaded without it, verify says it is missing
        if not isinstance(digest, str) or digest.lower() != actual:
            return f"{rel} does not match {MANIFEST}"
    return None


def _load_index(directory: Path) -> list[Artifact]:
    """Artifacts of a bundle: from its sidecars (they are written as artifacts end, so
    they survive a crash before ``index.json``)."""
    data = directory / "data"
    found: list[Artifact] = []
    for sidecar in sorted(data.rglob("*" + META_SUFFIX)):
        try:
            doc = json.loads(sidecar.read_text(encoding="utf-8"))
            found.append(Artifact.from_dict(doc))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue
    return found


# -- reading and verifying -------------------------------------------------------------


@dataclass(frozen=True)
class VerifyProblem:
    path: str
    kind: str
    """``checksum-mismatch``, ``missing``, ``unexpected``, ``structure``, ``unsafe-path``,
    ``archive``, ``oxum``, ``unsealed``."""
    message: str
    expected: str | None = None
    found: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "message": self.message,
            "expected": self.expected,
            "found": self.found,
        }


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    ok: bool
    problems: tuple[VerifyProblem, ...] = ()
    files_checked: int = 0
    info: Mapping[str, str] = field(default_factory=dict)
    archive_sha256: str | None = None
    archive_sha256_expected: str | None = None
    sealed: bool = True
    """False when the writer stopped before sealing it (see :func:`unsealed_state`)."""

    @property
    def incident(self) -> str | None:
        return self.info.get(INFO_INCIDENT)

    @property
    def complete(self) -> bool | None:
        value = self.info.get(INFO_COMPLETE)
        return None if value is None else value == "true"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "incident": self.incident,
            "complete": self.complete,
            "sealed": self.sealed,
            "files_checked": self.files_checked,
            "problems": [p.to_dict() for p in self.problems],
            "bag_info": dict(self.info),
            "archive_sha256": self.archive_sha256,
        }


def verify(path: Path) -> VerifyReport:
    """Check every hash of a bundle (directory or ``.tar.gz``) and say what is wrong."""
    path = path.expanduser()
    if path.is_dir():
        return _verify_dir(path, path)
    if path.is_file():
        return _verify_archive(path)
    raise InputError(f"no such bundle: {path}")


@dataclass(frozen=True)
class UnsealedState:
    """A bundle directory its writer never sealed."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None

    @property
    def writer_alive(self) -> bool:
        """The writing process still runs (same host, pid alive): do not seal it."""
        if self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        who = f" (pid {self.pid}" + (f", since {self.since}" if self.since else "") + ")"
        who = who if self.pid is not None else ""
        if self.writer_alive:
            return f"not sealed yet: falcoir{who} is still writing it"
        return (
            f"never sealed: the falcoir process writing it{who} stopped before sealing it "
            "(killed?); no manifest covers its files, so nothing can be verified"
        )


def unsealed_state(directory: Path, info: Mapping[str, str] | None = None) -> UnsealedState | None:
    """``None`` when ``directory`` was sealed; else what is known of its writer. A bundle
    is unsealed when its marker is there, or (bundles older than the marker) when its
    ``bag-info.txt`` has no ``Falcoir-Sealed``."""
    marker = directory / UNSEALED_MARKER
    if marker.is_file():
        try:
            doc = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return UnsealedState()
        if not isinstance(doc, dict):
            return UnsealedState()
        pid = doc.get("pid")
        return UnsealedState(
            pid if isinstance(pid, int) else None,
            str(doc.get("host") or "") or None,
            str(doc.get("since") or "") or None,
        )
    if info is not None and INFO_INCIDENT in info and INFO_SEALED not in info:
        return UnsealedState()
    return None


def _verify_dir(directory: Path, shown: Path) -> VerifyReport:
    bagit = _bagit()

    problems: list[VerifyProblem] = []
    try:
        bag = bagit.Bag(str(directory))
        info = {str(k): str(v) for k, v in bag.info.items() if not isinstance(v, list)}
    except bagit.BagError as exc:
        state = unsealed_state(directory)
        if state is not None:
            return VerifyReport(
                shown, False, (VerifyProblem(".", "unsealed", state.describe()),), sealed=False
            )
        return VerifyReport(shown, False, (VerifyProblem(".", "structure", str(exc)),))
    except (OSError, UnicodeError, LookupError, TypeError, ValueError) as exc:
        # A tag file cut short or garbled (the writer died while writing it), or one
        # naming a bad encoding (LookupError: unknown; TypeError: not a text codec).
        return VerifyReport(
            shown,
            False,
            (VerifyProblem(".", "structure", f"unreadable tag file: {exc}"),),
            sealed=unsealed_state(directory) is None,
        )
    state = unsealed_state(directory, info)
    if state is not None:
        return VerifyReport(
            shown,
            False,
            (VerifyProblem(".", "unsealed", state.describe()),),
            info=info,
            sealed=False,
        )
    entries = bag.entries
    try:
        bag.validate()
    except bagit.BagValidationError as exc:
        problems.extend(_problems_from(exc))
        if not exc.details:
            # Oxum or structure failures stop bagit early; look at every file anyway.
            problems.extend(_hash_everything(directory, entries))
    except bagit.BagError as exc:
        problems.append(VerifyProblem(".", "structure", str(exc)))
    except (OSError, UnicodeError, LookupError, TypeError, ValueError) as exc:
        problems.append(VerifyProblem(".", "structure", f"unreadable file: {exc}"))
    for required in ("manifest-sha256.txt", "tagmanifest-sha256.txt", "bag-info.txt"):
        if not (directory / required).is_file():
            problems.append(VerifyProblem(required, "missing", f"{required} is missing"))
    unique = list(dict.fromkeys(problems))
    return VerifyReport(shown, not unique, tuple(unique), files_checked=len(entries), info=info)


def _problems_from(exc: Any) -> list[VerifyProblem]:
    bagit = _bagit()

    out: list[VerifyProblem] = []
    for d in exc.details or ():
        if isinstance(d, bagit.ChecksumMismatch):
            out.append(
                VerifyProblem(d.path, "checksum-mismatch", "content changed", d.expected, d.found)
            )
        elif isinstance(d, bagit.FileMissing):
            out.append(VerifyProblem(d.path, "missing", "listed in a manifest but missing"))
        elif isinstance(d, bagit.UnexpectedFile):
            out.append(VerifyProblem(d.path, "unexpected", "present but in no manifest"))
        else:
            out.append(VerifyProblem(getattr(d, "path", "."), "structure", str(d)))
    if not out:
        kind = "oxum" if "Oxum" in str(exc.message) else "structure"
        out.append(VerifyProblem(".", kind, str(exc.message)))
    return out


def _hash_everything(
    directory: Path, entries: Mapping[str, Mapping[str, str]]
) -> list[VerifyProblem]:
    out: list[VerifyProblem] = []
    root = directory.resolve()
    for rel, hashes in sorted(entries.items()):
        expected = hashes.get(ALGORITHM)
        if expected is None:
            continue
        full = (directory / rel).resolve()
        if root not in full.parents:
            out.append(VerifyProblem(rel, "unsafe-path", "outside the bundle"))
            continue
        if not full.is_file():
            out.append(VerifyProblem(rel, "missing", "listed in a manifest but missing"))
            continue
        found, _ = _sha256_file(full)
        if found != expected.lower():
            out.append(VerifyProblem(rel, "checksum-mismatch", "content changed", expected, found))
    return out


def _verify_archive(archive: Path, *, extracted: VerifyReport | None = None) -> VerifyReport:
    problems: list[VerifyProblem] = []
    actual, _ = _sha256_file(archive)
    expected = None
    sidecar = archive.with_name(archive.name + ".sha256")
    if sidecar.is_file():
        expected = sidecar.read_text(encoding="utf-8", errors="replace").split(" ", 1)[0].strip()
        if expected and expected.lower() != actual:
            problems.append(
                VerifyProblem(
                    archive.name,
                    "checksum-mismatch",
                    "archive differs from its .sha256",
                    expected,
                    actual,
                )
            )
    report = extracted
    if report is None:
        with tempfile.TemporaryDirectory(prefix="falcoir-verify-") as tmp:
            try:
                top = safe_extract(archive, Path(tmp))
            except BundleError as exc:
                problems.append(VerifyProblem(archive.name, "archive", exc.message))
                return VerifyReport(archive, False, tuple(problems), archive_sha256=actual)
            report = _verify_dir(Path(tmp) / top, archive)
    all_problems = tuple(problems) + report.problems
    return replace(
        report,
        ok=not all_problems,
        problems=all_problems,
        archive_sha256=actual,
        archive_sha256_expected=expected,
    )


def _member_parts(name: str) -> list[str]:
    """The components of an archive member's path; ``BundleError`` when it is absolute,
    climbs out (``..``), has empty or ``.`` parts, backslashes or NUL."""
    parts = name.split("/")
    if (
        name.startswith("/")
        or "\\" in name
        or any(p in {"", ".", ".."} for p in parts)
        or "\x00" in name
    ):
        raise BundleError(f"unsafe member path {name!r}")
    return parts


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    max_members: int = _ARCHIVE_MAX_MEMBERS,
    max_bytes: int = _ARCHIVE_MAX_BYTES,
) -> str:
    """Copy a bundle archive's regular files into ``dest`` after checking every member:
    one top directory, relative paths without ``..``, no links, devices or fifos,
    bounded count and size. Returns the top directory's name. Raises ``BundleError``."""
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 (closed by "with tar" below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"not a readable .tar.gz: {exc}") from exc
    top: str | None = None
    total = 0
    count = 0
    why = "the size cap"
    with contextlib.suppress(OSError):
        room = shutil.disk_usage(dest).free - _DISK_MARGIN
        if room < max_bytes:
            max_bytes, why = max(0, room), "free disk space, less 256 MiB"
    ratio_cap = max(_ARCHIVE_SMALL, archive.stat().st_size * _ARCHIVE_MAX_RATIO)
    with tar:
        try:
            for member in tar:
                count += 1
                if count > max_members:
                    raise BundleError(f"more than {max_members} members")
                name = member.name
                parts = _member_parts(name)
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise BundleError(f"member {name!r} outside the top directory {top!r}")
                target = dest.joinpath(*parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise BundleError(f"member {name!r} is not a regular file or directory")
                total += member.size
                if total > max_bytes:
                    raise BundleError(f"more than {max_bytes} bytes ({why})")
                if total > ratio_cap:
                    raise BundleError(
                        f"expands to more than {_ARCHIVE_MAX_RATIO} times its size (a gzip bomb?)"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise BundleError(f"cannot read member {name!r}")
                with src, target.open("xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BundleError(f"archive is damaged: {exc}") from exc
    if top is None:
        raise BundleError("empty archive")
    return top


@dataclass(frozen=True)
class BundleSummary:
    """What ``bundle show`` prints: the bag's info and each artifact."""

    path: Path
    info: Mapping[str, str]
    artifacts: tuple[Artifact, ...]
    actions: tuple[Mapping[str, Any], ...]
    verify: VerifyReport
    reports: Mapping[str, str] = field(default_factory=dict)
    """The incident report ``respond`` wrote, by format (``markdown``, ``html``): its
    path inside the bundle (``data/report.md``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "incident": self.info.get(INFO_INCIDENT),
            "complete": self.info.get(INFO_COMPLETE) == "true",
            "bag_info": dict(self.info),
            "verified": self.verify.ok,
            "problems": [p.to_dict() for p in self.verify.problems],
            "artifacts": [a.to_dict() for a in self.artifacts],
            "actions": [dict(a) for a in self.actions],
            "report": {fmt: self.reports.get(fmt) for fmt in REPORT_FORMATS},
        }


def summarize(path: Path) -> BundleSummary:
    """Read a bundle (directory or archive, the latter copied out with checks)."""
    path = path.expanduser()
    if path.is_dir():
        return _summarize_dir(path, path)
    if not path.is_file():
        raise InputError(f"no such bundle: {path}")
    with tempfile.TemporaryDirectory(prefix="falcoir-show-") as tmp:
        top = safe_extract(path, Path(tmp))
        summary = _summarize_dir(Path(tmp) / top, path)
        # the archive's own checks on the copy just made (not a second extraction)
        report = _verify_archive(path, extracted=summary.verify)
        return replace(summary, verify=report)


def _summarize_dir(directory: Path, shown: Path) -> BundleSummary:
    report = _verify_dir(directory, shown)
    arts: list[Artifact] = []
    index = directory / "data" / INDEX_NAME
    if index.is_file():
        try:
            doc = json.loads(index.read_text(encoding="utf-8"))
            arts = [Artifact.from_dict(a) for a in doc.get("artifacts", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            arts = []
    if not arts:
        arts = _load_index(directory)
    actions: list[Mapping[str, Any]] = []
    log = directory / "data" / ACTIONS_NAME
    if log.is_file():
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError, RecursionError):
                if line.strip() and isinstance(act := json.loads(line), dict):
                    actions.append(act)
    names = [str(p.relative_to(directory)) for p in (directory / "data").glob("report*")]
    return BundleSummary(
        shown, dict(report.info), tuple(arts), tuple(actions), report, find_reports(names)
    )


# -- sealing what a dead writer left ---------------------------------------------------

DEFAULT_SEAL_REASON = "the collecting process stopped before sealing the bundle (killed?)"


def seal_unsealed(
    directory: Path,
    *,
    reason: str = DEFAULT_SEAL_REASON,
    actions_path: Path | None = None,
    force: bool = False,
) -> BundleResult:
    """Seal, as incomplete, a bundle directory whose writer died before sealing it: each
    artifact keeps the hash its sidecar recorded when it was written (one changed since
    then fails ``verify``), every other file it holds is hashed as it is now, files cut
    short (no sidecar) are recorded as interrupted, and ``bag-info.txt`` says why
    (``Falcoir-Incomplete-Reason``).

    Refuses an archive, a bundle that was sealed (sealing again would hide any change
    made since: that is for ``verify`` to report), and one whose writer still runs on
    this host (unless ``force``)."""
    directory = directory.expanduser()
    if not directory.is_dir():
        if directory.exists():
            raise InputError(
                f"{directory} is not a directory: only a bundle directory can be unsealed "
                "(an archive is written when a bundle is sealed)"
            )
        raise InputError(f"no such bundle: {directory}")
    info: dict[str, str] | None = None
    with contextlib.suppress(Exception):
        info = {
            str(k): str(v)
            for k, v in _bagit().Bag(str(directory)).info.items()
            if not isinstance(v, list)
        }
    state = unsealed_state(directory, info)
    if state is None:
        raise BundleError(
            f"{directory} is already sealed",
            hint=f"check it with: falcoir bundle verify {directory}",
        )
    if state.writer_alive and not force:
        raise BundleError(
            f"{directory} is still being written by pid {state.pid}",
            hint="wait for it to finish; pass --force only if that process is not falcoir",
        )
    writer = BundleWriter.reopen(directory, actions_path=actions_path)
    known: set[str] = set()
    for art in writer.artifacts:
        known.add(art.path)
        if art.stderr_path:
            known.add(art.stderr_path)
    for path in sorted(writer.data.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = str(path.relative_to(directory))
        name = str(path.relative_to(writer.data))
        if (
            rel in known
            or name.endswith((META_SUFFIX, META_SUFFIX + ".tmp"))
            or name in (INDEX_NAME, ACTIONS_NAME)
            or (name.endswith(STDERR_SUFFIX) and path.with_suffix("").exists())
        ):
            continue
        digest, size = _sha256_file(path)
        with writer._lock:
            writer._artifacts.pop(name, None)
        writer._record(
            name,
            path,
            digest,
            size,
            ArtifactMeta(
                status=ArtifactStatus.INTERRUPTED,
                error="the writer stopped while writing it: it may be cut short",
            ),
            mode=None,
        )
    writer.info[INFO_INCOMPLETE_REASON] = neutralize(reason)[:2000]
    return writer.finalize(False)


# -- the incident report -----------------------------------------------------------------

REPORT_FORMATS = {"markdown": "md", "html": "html"}
"""What ``respond`` adds to the bundle: ``data/report.md`` and ``data/report.html``
(``report-2.md``... when a bundle was sealed again with a newer report)."""
REPORT_MAX_BYTES = 64 * 1024**2
_REPORT_RE = re.compile(r"^data/report(?:-([0-9]{1,4}))?\.(md|html)$")


def find_reports(names: Iterable[str]) -> dict[str, str]:
    """The latest report of each format among bundle-relative ``names``."""
    best: dict[str, tuple[int, str]] = {}
    for name in names:
        m = _REPORT_RE.fullmatch(name)
        if m is None:
            continue
        n = int(m.group(1) or 1)
        fmt = "markdown" if m.group(2) == "md" else "html"
        if fmt not in best or n > best[fmt][0]:
            best[fmt] = (n, name)
    return {fmt: name for fmt, (_, name) in best.items()}


def read_report(path: Path, fmt: str, *, max_bytes: int = REPORT_MAX_BYTES) -> bytes | None:
    """The bytes of a bundle's incident report in ``fmt`` (``markdown`` or ``html``),
    ``None`` when the bundle has none. Reads a directory's file (a regular file inside
    the bundle, no link) or one archive member (every member's path checked on the way,
    nothing extracted). ``BundleError`` when it is unsafe or larger than ``max_bytes``."""
    if fmt not in REPORT_FORMATS:
        raise InputError(f"unknown report format {fmt!r}")
    path = path.expanduser()
    if path.is_dir():
        root = path.resolve()
        names = [str(p.relative_to(path)) for p in (path / "data").glob("report*")]
        rel = find_reports(names).get(fmt)
        if rel is None:
            return None
        file = path / rel
        if file.is_symlink() or not file.is_file() or root not in file.resolve().parents:
            raise BundleError(f"{rel} is not a regular file inside the bundle")
        with file.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BundleError(f"{rel} is larger than {max_bytes} bytes")
        return data
    if not path.is_file():
        raise InputError(f"no such bundle: {path}")
    return _read_report_member(path, fmt, max_bytes)


def _read_report_member(archive: Path, fmt: str, max_bytes: int) -> bytes | None:
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 (closed by "with tar" below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"not a readable .tar.gz: {exc}") from exc
    members: dict[str, tarfile.TarInfo] = {}
    top: str | None = None
    with tar:
        try:
            for count, member in enumerate(tar, 1):
                if count > _ARCHIVE_MAX_MEMBERS:
                    raise BundleError(f"more than {_ARCHIVE_MAX_MEMBERS} members")
                parts = _member_parts(member.name)
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise BundleError(f"member {member.name!r} outside the top directory")
                if len(parts) == 3 and parts[1] == "data":
                    members["/".join(parts[1:])] = member
            rel = find_reports(members).get(fmt)
            if rel is None:
                return None
            member = members[rel]
            if not member.isreg():
                raise BundleError(f"{rel} is not a regular file in the archive")
            if member.size > max_bytes:
                raise BundleError(f"{rel} is larger than {max_bytes} bytes")
            src = tar.extractfile(member)
            if src is None:
                raise BundleError(f"cannot read {rel}")
            with src:
                return src.read(max_bytes)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BundleError(f"archive is damaged: {exc}") from exc


def artifact_names(arts: Sequence[Artifact]) -> list[str]:
    return [a.name for a in arts]
