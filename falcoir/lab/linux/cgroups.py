"""Kubelet-style cgroups (cgroupfs driver) in every hierarchy this machine mounts.

A container's cgroup is ``<base>/kubepods/<qos>/pod<uid>/<64 hex id>`` (Guaranteed pods
have no qos level: ``<base>/kubepods/pod<uid>/<id>``), created in each cgroup v1
hierarchy and in the unified (v2) one, so that ``/proc/<pid>/cgroup`` reads as on a
node. ``<base>`` is the cgroup this process is in for that hierarchy (``/`` on a plain
machine): the lab nests inside whatever confines it instead of escaping it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Hierarchy:
    mount: Path
    """Where it is mounted (``/sys/fs/cgroup/cpu`` or ``/sys/fs/cgroup/unified``)."""
    base: str
    """This process's cgroup in it (``/`` usually)."""
    unified: bool
    cpuset: bool


def _mounts() -> list[tuple[str, str, str]]:
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                rfields = right.split()
                if len(fields) < 5 or len(rfields) < 3:
                    continue
                fstype = rfields[0]
                if fstype in ("cgroup", "cgroup2"):
                    out.append((fields[4], fstype, rfields[2]))
    except OSError:
        return []
    return out


def hierarchies() -> list[Hierarchy]:
    """The writable cgroup hierarchies of this machine, with our base cgroup in each."""
    own: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            num, ctrls, path = line.split(":", 2)
            own["" if num == "0" else ctrls] = path
    except OSError:
        return []
    result = []
    seen: set[str] = set()
    for mountpoint, fstype, opts in _mounts():
        if fstype == "cgroup2":
            key = ""
        else:
            options = set(opts.split(","))
            key = next((k for k in own if k and set(k.split(",")) <= options), "")
            if not key:
                continue
        if key in seen or key not in own:
            continue
        seen.add(key)
        result.append(
            Hierarchy(
                mount=Path(mountpoint),
                base=own[key],
                unified=fstype == "cgroup2",
                cpuset="cpuset" in key.split(","),
            )
        )
    return result


def qos_class(pod: dict[str, object]) -> str:
    """Guaranteed, Burstable or BestEffort, as the API server computes ``qosClass``."""
    spec = pod.get("spec")
    containers = spec.get("containers", []) if isinstance(spec, dict) else []
    any_set = False
    guaranteed = True
    for c in containers if isinstance(containers, list) else []:
        res = c.get("resources") or {}
        req = res.get("requests") or {}
        lim = res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_path(qos: str, uid: str) -> str:
    """``kubepods/besteffort/pod<uid>`` (relative to each hierarchy's base)."""
    if qos == "Guaranteed":
        return f"kubepods/pod{uid}"
    return f"kubepods/{qos.lower()}/pod{uid}"


def _dir(h: Hierarchy, rel: str) -> Path:
    return h.mount / h.base.lstrip("/") / rel


def planned(rel: str) -> list[Path]:
    """Where :func:`create` makes ``rel`` (in every hierarchy; nothing is made)."""
    return [_dir(h, rel) for h in hierarchies()]


def create(rel: str) -> list[Path]:
    """Create ``rel`` in every hierarchy; return the directories made (record them:
    another process may sit in another base cgroup, so never recompute them)."""
    made = []
    for h in hierarchies():
        d = _dir(h, rel)
        try:
            for attempt in range(3):
                try:
                    d.mkdir(parents=True, exist_ok=True)
                    break
                except FileNotFoundError:  # a parent removed under us by another lab
                    if attempt == 2:
                        raise
                    time.sleep(0.01)
            if h.cpuset:
                _fill_cpuset(h.mount / h.base.lstrip("/"), rel)
        except OSError:
            continue
        made.append(d)
    return made


def _fill_cpuset(parent: Path, rel: str) -> None:
    for part in Path(rel).parts:
        child = parent / part
        for f in ("cpuset.cpus", "cpuset.mems"):
            cur = child / f
            with contextlib.suppress(OSError):
                if not cur.read_text().strip():
                    cur.write_text((parent / f).read_text().strip() or "0")
        parent = child


def pids(dirs: list[Path]) -> set[int]:
    """Every process in these cgroups and their children."""
    found: set[int] = set()
    for d in dirs:
        if not d.is_dir():
            continue
        for procs in d.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in procs.read_text().split())
    return found


def kill_now(dirs: list[Path]) -> int:
    """SIGKILL every process in these cgroups (and below) once, without waiting; return
    how many there were (for a caller that must not block, such as a cancelled start)."""
    for d in dirs:
        kill = d / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
    left = pids(dirs)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(left)


def kill_all(dirs: list[Path], timeout: float = 5.0) -> None:
    """SIGKILL every process in these cgroups (and below) and wait until they are gone."""
    deadline = time.monotonic() + timeout
    for d in dirs:
        kill = d / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                kill.write_text("1")
    while True:
        left = pids(dirs)
        if not left or time.monotonic() > deadline:
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def remove(dirs: list[Path], *, parents: int = 0) -> None:
    """rmdir these cgroups (deepest first), then up to ``parents`` levels of their
    parents while empty (a parent another lab still uses stays: rmdir fails)."""
    for d in dirs:
        if d.is_dir():
            # Deepest first, each retried while busy (its last process being reaped): a
            # child left behind would keep its parent from going, for good.
            subs = sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True)
            deadline = time.monotonic() + 2.0
            for one in (*subs, d):
                while True:
                    try:
                        one.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:  # EBUSY while the last process is being reaped
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.02)
        up = d.parent
        for _ in range(parents):
            try:
                up.rmdir()
            except OSError:
                break
            up = up.parent
