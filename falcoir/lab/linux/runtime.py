"""The Linux PodRuntime: pods of the lab's own node as real, isolated processes.

As root on Linux (``isolated``): each pod gets a network namespace (see
:mod:`falcoir.lab.linux.net`), each container a shim (:mod:`falcoir.lab.linux.shim`)
that starts it in its own pid, mount and uts namespaces, in kubelet-named cgroups
(:mod:`falcoir.lab.linux.cgroups`), on a root built from its image profile
(:mod:`falcoir.lab.images`). Otherwise containers are plain processes and a warning
says what is not isolated.

Exec joins the container's cgroups and namespaces (``nsenter``; with a TTY the small
:mod:`falcoir.lab.linux.enter` helper, so the command leads a session inside the pod's
pid namespace). ``shareProcessNamespace`` pods get a pause process as pid 1; ephemeral
containers join their target's pid namespace; ``hostPID`` pods keep the host's.

Departures from a kubelet, on purpose: at most 2 s between SIGTERM and SIGKILL
(:data:`MAX_GRACE_SECONDS`), crash-loop back-off from 1 s (not 10 s) up to 30 s, no
probes (a running container is ready), no configMap/secret/projected volumes (hostPath
and emptyDir only), named ports in NetworkPolicies match nothing.

Everything made is recorded under ``<state dir>/runtime`` first, so :func:`cleanup`
can undo it even after the lab was killed with SIGKILL. No container may outlive its lab:
a start that is cancelled (pod deleted, lab stopping) kills its shim's process group and
cgroups at once; ``kill_pod`` cancels and waits for every start of the pod first; and
:func:`cleanup` (the shutdown's last step and ``falcoir lab down``) sweeps what records
missed: shims of the lab (found in ``/proc`` by state dir and ``--falcoir-lab=<id>``)
and any process in the lab's cgroups (listed in ``cgroups-<id>.txt`` before any is made).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import struct
import sys
import termios
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from falcoir.lab import images
from falcoir.lab.assets import asset, compile_c
from falcoir.lab.linux import cgroups, net, policy, shim
from falcoir.lab.linux.pool import StratumPool
from falcoir.lab.runtime import JSON, ContainerNotRunning, ExecNotFound, RuntimeEvents

log = logging.getLogger("falcoir.lab.runtime")

SHIM = Path(__file__).resolve().parent / "shim.py"
SHIM_LAB_ARG = "--falcoir-lab="
"""The shim's last argument names its lab (``--falcoir-lab=<lab id>``; the shim ignores
it): :func:`cleanup` tells a lab's shims from any other lab's by it and the state dir."""
ENTER = Path(__file__).resolve().parent / "enter.py"
POOL_HOSTNAME = "pool.example.com"
FALCO_STANDIN = "/opt/falcoir/falco_standin.py"
"""Where the ``falco`` image profile has the lab's Falco stand-in."""
BACKOFF_MAX = 30.0
MAX_GRACE_SECONDS = 2.0
"""The lab waits at most this long after SIGTERM before SIGKILL, whatever the pod's
grace period: a shell as a container's pid 1 ignores SIGTERM (as on a real node, where
such pods take their full 30 s to die); the lab keeps deletions quick instead."""
NOT_ISOLATED_WARNING = (
    "falcoir lab: not running as root on Linux: pods are plain host processes with no "
    "pid/mount/network namespaces, no cgroups, no image profiles and no NetworkPolicy "
    "enforcement."
)


def now_rfc3339(ts: float | None = None) -> str:
    t = datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ledger(runtime_dir: Path, lab_id: str) -> Path:
    """The lab's cgroup ledger: every pod cgroup it ever planned, one path a line."""
    return runtime_dir / f"cgroups-{lab_id}.txt"


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Done callback: fetch the exception of a task nobody may await (no asyncio noise)."""
    if not task.cancelled():
        task.exception()


def _remove_made_cgroups(task: asyncio.Future[list[Path]]) -> None:
    """Done callback of a cancelled start's cgroup creation: remove what it made, and
    the pod's own cgroup when that leaves it empty (the pod's clean-up may have run
    before these existed, and could not remove a pod cgroup that still had them)."""
    if not task.cancelled() and task.exception() is None:
        cgroups.remove(task.result(), parents=1)


def _kill_now(c: Container) -> None:
    """SIGKILL a container now, without awaiting: its shim's process group (the shim is a
    session leader; its child stays in the group) and every process in its cgroups (one
    that left the group). Safe to call from a cancelled task's ``except`` clause."""
    proc = c.shim
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGKILL)
    if c.cgroup_dirs:
        cgroups.kill_now(c.cgroup_dirs)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def can_isolate() -> tuple[bool, str]:
    """Whether pods can be isolated here, and why not."""
    if not sys.platform.startswith("linux"):
        return False, f"not Linux ({sys.platform})"
    if os.geteuid() != 0:
        return False, "not root"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed"
    if not Path("/proc/self/ns/pid").exists():
        return False, "no namespaces"
    return True, ""


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (``$$`` escapes; unknown references stay)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


@dataclass
class Container:
    name: str
    spec: JSON
    kind: str  # "init", "regular", "ephemeral"
    profile: images.ImageProfile
    id: str = ""
    restart_count: int = 0
    host_pid: int = 0
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    signal: int = 0
    last_terminated: JSON | None = None
    logs: list[Path] = field(default_factory=list)
    cgroup_dirs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    shim: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def container_id(self) -> str:
        return f"containerd://{self.id}" if self.id else ""


@dataclass
class Pod:
    uid: str
    namespace: str
    name: str
    pod: JSON
    dir: Path
    index: int = 0
    ip: str = ""
    netns: str | None = None
    veth: str = ""
    qos: str = "BestEffort"
    cgroup_rel: str = ""
    containers: dict[str, Container] = field(default_factory=dict)
    init: list[Container] = field(default_factory=list)
    ephemeral: dict[str, Container] = field(default_factory=dict)
    start_time: float = 0.0
    host_ip: str = ""
    stopping: bool = False
    phase: str = "Pending"
    task: asyncio.Task[None] | None = None
    applied_rules: str | None = None
    """The nftables ruleset last loaded into the pod's netns (reloaded only when it
    changes)."""

    sandbox: Container | None = None
    """The pause process holding a shared pid namespace (``shareProcessNamespace``)."""
    setup: asyncio.Task[None] | None = None
    """The network set-up (awaited by :meth:`LinuxRuntime.kill_pod` before tear-down)."""
    starts: set[asyncio.Task[None]] = field(default_factory=set)
    """Ephemeral container starts in flight (cancelled by ``kill_pod``)."""
    gone: bool = False
    """``kill_pod`` released everything: nothing of the pod is recorded again."""
    making: set[asyncio.Future[list[Path]]] = field(default_factory=set)
    """Container cgroups being created (a thread each, not cancellable: awaited by
    ``kill_pod`` before it removes the pod's cgroup)."""

    def all_containers(self) -> list[Container]:
        sandbox = [self.sandbox] if self.sandbox is not None else []
        return [*sandbox, *self.init, *self.containers.values(), *self.ephemeral.values()]


class MountError(Exception):
    """A volume cannot be mounted (the container does not start)."""


class _NoEvents:
    def pod_status(self, namespace: str, name: str, uid: str, status: JSON) -> None:
        pass

    def pod_event(
        self, namespace: str, name: str, uid: str, reason: str, message: str, type_: str
    ) -> None:
        pass


class LinuxRuntime:
    """A :class:`~falcoir.lab.runtime.PodRuntime` for the machine the lab runs on."""

    def __init__(
        self, state_dir: Path, node_name: str, *, enforce_network_policy: bool = True
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.node_name = node_name
        self.enforce_network_policy = enforce_network_policy
        ok, why = can_isolate()
        self.isolated = ok
        self.not_isolated_reason = why
        self.lab_id = secrets.token_hex(3)
        self.dir = self.state_dir / "runtime"
        self.images_dir = self.dir / "images"
        self._events: RuntimeEvents = _NoEvents()
        self._pods: dict[str, Pod] = {}
        self._subnet: net.Subnet | None = None
        self._free_ips: list[int] = list(range(2, 255))
        self._pool: StratumPool | None = None
        self._idle: Path | None = None
        self._policies: list[JSON] = []
        self._all_pods: list[JSON] = []
        self._namespaces: dict[str, dict[str, str]] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_nft = False
        self._closing = False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- lifecycle

    @property
    def gateway(self) -> str:
        return self._subnet.gateway if self._subnet else "127.0.0.1"

    def _lab_record(self) -> Path:
        return self.dir / f"lab-{self.lab_id}.json"

    def _ledger_cgroups(self, p: Pod) -> None:
        """Append the pod's cgroups (every hierarchy) to the lab's ledger before any is
        made: :func:`cleanup` sweeps whatever is still in them, whatever else was lost."""
        dirs = cgroups.planned(p.cgroup_rel)
        if dirs:
            with open(_ledger(self.dir, self.lab_id), "a") as f:
                f.write("".join(f"{d}\n" for d in dirs))

    async def start(self, events: RuntimeEvents) -> None:
        self._events = events
        self.dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(cleanup, self.state_dir, only_dead=True)
        if not self.isolated:
            log.warning("%s (%s)", NOT_ISOLATED_WARNING, self.not_isolated_reason)
            _write_json(self._lab_record(), {"lab_id": self.lab_id, "pid": os.getpid()})
            return
        self._subnet = await asyncio.to_thread(net.take_subnet)
        _write_json(
            self._lab_record(),
            {
                "lab_id": self.lab_id,
                "pid": os.getpid(),
                "subnet": self._subnet.index,
                "gateway": list(net.gateway_names(self.lab_id)),
            },
        )
        await asyncio.to_thread(net.setup_gateway, self.lab_id, self._subnet)
        self._pool = StratumPool(self._subnet.gateway, self.state_dir / "pool")
        try:
            await self._pool.start()
        except OSError as e:
            log.warning("falcoir lab: the stratum pool could not start: %s", e)
            self._pool = None

    async def shutdown(self) -> None:
        self._closing = True  # no pod or container starts from now on
        try:
            await asyncio.gather(
                *(self.kill_pod(p.pod, 0) for p in list(self._pods.values())),
                return_exceptions=True,
            )
            if self._pool is not None:
                await self._pool.stop()
                self._pool = None
        finally:
            # Also when the shutdown ran out of time (cancelled): the sweep of whatever
            # is left, any process in this lab's cgroups, any shim of this lab.
            for line in await asyncio.to_thread(cleanup, self.state_dir, lab_id=self.lab_id):
                if line.startswith("killed"):
                    log.warning("falcoir lab: shutdown %s", line)
                else:
                    log.info("falcoir lab: shutdown removed %s", line)
        if self._subnet is not None:
            net.release_subnet(self._subnet)
            self._subnet = None

    # ----------------------------------------------------------------- pods

    async def run_pod(self, pod: JSON) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta["uid"])
        if uid in self._pods or self._closing:
            return
        p = Pod(
            uid=uid,
            namespace=str(meta.get("namespace", "default")),
            name=str(meta["name"]),
            pod=pod,
            dir=self.dir / "pods" / uid,
        )
        spec = pod.get("spec") or {}
        p.qos = cgroups.qos_class(pod)
        p.cgroup_rel = cgroups.pod_path(p.qos, uid)
        p.start_time = time.time()
        p.host_ip = str((pod.get("status") or {}).get("hostIP") or "")
        for c in spec.get("initContainers") or []:
            p.init.append(self._container(c, "init"))
        for c in spec.get("containers") or []:
            p.containers[str(c["name"])] = self._container(c, "regular")
        self._pods[uid] = p
        p.dir.mkdir(parents=True, exist_ok=True)
        if self.isolated:
            self._ledger_cgroups(p)
        self._record_pod(p)
        # Its own task, run to the end even if this call is cancelled: kill_pod waits for
        # it, so a namespace being made is never torn down half-way (and then leaked).
        p.setup = asyncio.ensure_future(self._setup_network(p))
        p.setup.add_done_callback(_retrieve)
        try:
            await asyncio.shield(p.setup)
        except net.NetError as e:
            for c in p.all_containers():
                c.reason, c.message = "CreateContainerError", str(e)
            self._event(p, "FailedCreatePodSandBox", str(e), "Warning")
            self._publish(p)
            return
        if p.stopping or self._closing:
            return  # deleted (or the lab stopped) meanwhile: kill_pod releases the rest
        self._record_pod(p)
        self._publish(p)
        p.task = asyncio.create_task(self._run(p))
        # Return once the containers have started (or failed to): the first init
        # container while init runs, else every regular one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not p.stopping and not p.task.done():
            if self._started(p):
                break
            await asyncio.sleep(0.02)

    @staticmethod
    def _started(p: Pod) -> bool:
        if p.init and not all(c.state == "terminated" and c.exit_code == 0 for c in p.init):
            return any(c.state != "waiting" or c.restart_count > 0 for c in p.init)
        return all(c.state != "waiting" or c.restart_count > 0 for c in p.containers.values())

    def _container(self, spec: JSON, kind: str) -> Container:
        return Container(
            name=str(spec["name"]),
            spec=spec,
            kind=kind,
            profile=images.profile_for_image(str(spec.get("image", ""))),
        )

    async def _setup_network(self, p: Pod) -> None:
        spec = p.pod.get("spec") or {}
        if not self.isolated or spec.get("hostNetwork"):
            p.ip = p.host_ip or (self.gateway if self.isolated else "127.0.0.1")
            return
        if not self._free_ips or self._subnet is None:
            raise net.NetError("the lab's pod subnet is full")
        p.index = self._free_ips.pop(0)
        p.netns = str(net.NETNS_DIR / net.netns_name(self.lab_id, p.index))
        p.veth = net.host_veth(self.lab_id, p.index)
        p.ip = self._subnet.pod_ip(p.index)
        self._record_pod(p)
        await asyncio.to_thread(net.setup_pod, self.lab_id, self._subnet, p.index)
        if self.enforce_network_policy and self._policies and shutil.which("nft"):
            await self._enforce(p)

    async def _run(self, p: Pod) -> None:
        restart = str((p.pod.get("spec") or {}).get("restartPolicy") or "Always")
        spec = p.pod.get("spec") or {}
        if self.isolated and spec.get("shareProcessNamespace") and not spec.get("hostPID"):
            # As with a real sandbox: a pause process is pid 1 of the pod's pid namespace
            # and every container joins it.
            pause = {"name": "POD", "image": "registry.k8s.io/pause:3.9", "command": ["/pause"]}
            p.sandbox = self._container(pause, "sandbox")
            await self._start(p, p.sandbox)
        for c in p.init:
            while not p.stopping:
                await self._start(p, c)
                await c.done.wait()
                if p.stopping or (c.exit_code == 0 and c.reason != "StartError"):
                    break
                if restart == "Never":
                    p.phase = "Failed"
                    self._publish(p)
                    return
                await self._backoff(p, c)
            if p.stopping:
                return
        for c in p.containers.values():
            c.task = asyncio.create_task(self._supervise(p, c, restart))
        await asyncio.gather(*(c.task for c in p.containers.values() if c.task))

    async def _supervise(self, p: Pod, c: Container, restart: str) -> None:
        while not p.stopping:
            await self._start(p, c)
            await c.done.wait()
            if p.stopping:
                return
            failed = c.exit_code != 0 or c.reason == "StartError"
            if restart == "Never" or (restart == "OnFailure" and not failed):
                self._publish(p)
                return
            await self._backoff(p, c)

    async def _backoff(self, p: Pod, c: Container) -> None:
        delay = min(BACKOFF_MAX, 1.0 * (2 ** min(c.restart_count, 6)))
        c.last_terminated = self._terminated_state(c)
        c.state, c.reason = "waiting", "CrashLoopBackOff"
        c.message = f"back-off {int(delay)}s restarting failed container={c.name} pod={p.name}"
        c.restart_count += 1
        self._event(p, "BackOff", "Back-off restarting failed container", "Warning")
        self._publish(p)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_stopping(p), delay)

    async def _wait_stopping(self, p: Pod) -> None:
        while not p.stopping:
            await asyncio.sleep(0.1)

    # ----------------------------------------------------------------- containers

    def _env(self, p: Pod, c: Container) -> dict[str, str]:
        env = {
            "PATH": images.DEFAULT_PATH,
            "HOSTNAME": p.name,
            "HOME": "/root",
        }
        for e in c.spec.get("env") or []:
            name = str(e.get("name", ""))
            if not name:
                continue
            if "value" in e:
                env[name] = expand(str(e.get("value") or ""), env)
            elif e.get("valueFrom", {}).get("fieldRef"):
                env[name] = self._field_ref(p, str(e["valueFrom"]["fieldRef"].get("fieldPath", "")))
        return env

    def _field_ref(self, p: Pod, path: str) -> str:
        meta = p.pod.get("metadata") or {}
        values = {
            "metadata.name": p.name,
            "metadata.namespace": p.namespace,
            "metadata.uid": p.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": str(
                (p.pod.get("spec") or {}).get("serviceAccountName", "default")
            ),
            "status.podIP": p.ip,
            "status.hostIP": p.host_ip or self.gateway,
        }
        if path in values:
            return values[path]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        return ""

    def _argv(self, c: Container, env: dict[str, str]) -> list[str]:
        command = [str(x) for x in c.spec.get("command") or []]
        args = [str(x) for x in c.spec.get("args") or []]
        prof = c.profile
        entry = list(prof.entrypoint)
        if prof.name == "falco":
            entry = [sys.executable, "-I", "-S", FALCO_STANDIN]
        if command:
            argv = command + args
        elif args:
            argv = entry + args if entry else args
        else:
            argv = entry + list(prof.cmd)
        return [expand(a, env) for a in argv]

    def _hosts(self, p: Pod) -> str:
        lines = [
            "# Kubernetes-managed hosts file (falcoir lab).",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
            f"{p.ip}\t{p.name}",
        ]
        if self.isolated:
            lines.append(f"\n# The lab's stratum pool (see falcoir lab scenario).\n"
                         f"{self.gateway}\t{POOL_HOSTNAME}")  # fmt: skip
        aliases = (p.pod.get("spec") or {}).get("hostAliases") or []
        if aliases:
            lines.append("\n# Entries added by HostAliases.")
            for a in aliases:
                ip = str(a.get("ip", ""))
                names = [str(h) for h in a.get("hostnames") or []]
                if re.fullmatch(r"[0-9a-fA-F.:]+", ip) and all(
                    re.fullmatch(r"[A-Za-z0-9.-]+", h) for h in names
                ):
                    lines.append(ip + "\t" + "\t".join(names))
        return "\n".join(lines) + "\n"

    def _mounts(self, p: Pod, c: Container, bin_dir: Path | None, argv: list[str]) -> list[JSON]:
        """The container's filesystem, in mount order (see the shim)."""
        m: list[JSON] = []
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                m.append({"type": "symlink", "source": os.readlink(host), "target": f"/{top}"})
            elif host.is_dir():
                m.append({"type": "bind", "source": str(host), "target": f"/{top}", "ro": True})
        m.append({"type": "bind", "source": "/usr", "target": "/usr", "ro": True, "rec": True})
        m.append({"type": "bind", "source": "/etc", "target": "/etc", "ro": True})
        m.append({"type": "bind", "source": "/dev", "target": "/dev", "rec": True})
        m.append({"type": "bind", "source": "/sys", "target": "/sys", "rec": True, "ro": True})
        host_pid = bool((p.pod.get("spec") or {}).get("hostPID"))
        if host_pid and c.kind != "ephemeral":
            m.append({"type": "bind", "source": "/proc", "target": "/proc", "rec": True})
        else:
            m.append({"type": "proc", "target": "/proc"})
        # The container's private /tmp (not the host's).
        m.append({"type": "tmpfs", "target": "/tmp", "data": "mode=1777,size=256m"})  # noqa: S108
        m.append({"type": "tmpfs", "target": "/run", "data": "mode=755,size=16m"})
        m.append({"type": "tmpfs", "target": "/var", "data": "mode=755,size=64m"})
        for d in ("var/tmp", "var/log", "home", "mnt", "opt", "srv", "media"):
            m.append({"type": "mkdir", "target": f"/{d}"})
        if c.profile.overlay:
            m.append({"type": "tmpfs", "target": "/root", "data": "mode=700,size=16m"})
        else:
            m.append({"type": "bind", "source": "/root", "target": "/root", "ro": True})
        m.append({"type": "bind", "source": str(p.dir / "hosts"), "target": "/etc/hosts"})
        m.append({"type": "bind", "source": str(p.dir / "hostname"), "target": "/etc/hostname"})
        bin_dirs = ["/usr/bin", "/usr/sbin"]
        bin_dirs += [f"/{t}" for t in ("bin", "sbin") if not Path("/", t).is_symlink()]
        local_dirs = ["/usr/local/bin", "/usr/local/sbin"]
        if c.profile.lenient_entrypoint:
            for d in bin_dirs + local_dirs:
                if Path(d).is_dir():
                    m.append({"type": "tmpfs", "target": d, "data": "mode=755,size=1m"})
            entry = argv[0] if argv else "/app"
            host_bin = (
                entry if entry.startswith("/") else shutil.which(entry, path=images.HOST_PATH)
            )
            if not entry.startswith("/"):
                entry = f"/usr/bin/{entry}"
            source = host_bin if host_bin and os.path.isfile(host_bin) else None
            if source is None:
                source = str(self._idle) if self._idle else shutil.which("sleep") or "sleep"
            m.append({"type": "bind", "source": source, "target": entry, "ro": True})
        elif bin_dir is not None:
            empty = images.empty_dir(self.images_dir)
            for d in bin_dirs:
                m.append({"type": "bind", "source": str(bin_dir), "target": d, "ro": True})
            for d in local_dirs:
                if Path(d).is_dir():
                    m.append({"type": "bind", "source": str(empty), "target": d, "ro": True})
        if c.profile.name == "falco":
            m.append(
                {"type": "bind", "source": str(asset("falco_standin.py")), "target": FALCO_STANDIN,
                 "ro": True}
            )  # fmt: skip
            for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
                top = Path(prefix).parts[1] if len(Path(prefix).parts) > 1 else ""
                if top and top not in ("usr", "etc", "root", "bin", "sbin", "lib", "lib64"):
                    m.append({"type": "bind", "source": prefix, "target": prefix, "ro": True})
        m.extend(self._volume_mounts(p, c))
        return m

    def _volume_mounts(self, p: Pod, c: Container) -> list[JSON]:
        volumes = {str(v.get("name")): v for v in (p.pod.get("spec") or {}).get("volumes") or []}
        out = []
        for vm in c.spec.get("volumeMounts") or []:
            vol = volumes.get(str(vm.get("name")))
            target = str(vm.get("mountPath", ""))
            if vol is None or not target.startswith("/") or ".." in Path(target).parts:
                continue
            if vol.get("hostPath"):
                source = str(vol["hostPath"].get("path", ""))
                kind = str(vol["hostPath"].get("type") or "")
                if not os.path.exists(source):
                    if kind in ("DirectoryOrCreate", ""):  # "": created, as containerd does
                        os.makedirs(source, exist_ok=True)
                    elif kind == "FileOrCreate":
                        os.makedirs(os.path.dirname(source) or "/", exist_ok=True)
                        Path(source).touch()
                    else:
                        raise MountError(
                            f'MountVolume.SetUp failed for volume "{vol.get("name")}" : '
                            f"hostPath type check failed: {source} does not exist"
                        )
                elif kind == "Directory" and not os.path.isdir(source):
                    raise MountError(
                        f'MountVolume.SetUp failed for volume "{vol.get("name")}" : '
                        f"hostPath type check failed: {source} is not a directory"
                    )
            elif "emptyDir" in vol:
                d = p.dir / "volumes" / str(vol["name"])
                d.mkdir(parents=True, exist_ok=True)
                source = str(d)
            else:
                continue  # configMap, secret, projected: not provided by the lab
            out.append(
                {
                    "type": "bind",
                    "source": source,
                    "target": target,
                    "rec": True,
                    "ro": bool(vm.get("readOnly")),
                }
            )
        out.sort(key=lambda x: len(Path(str(x["target"])).parts))
        return out

    async def _start(self, p: Pod, c: Container) -> None:
        c.done.clear()
        c.id = secrets.token_hex(32)
        cdir = p.dir / c.name
        cdir.mkdir(parents=True, exist_ok=True)
        logf = cdir / f"{c.restart_count}.log"
        logf.touch()
        c.logs.append(logf)
        env = self._env(p, c)
        c.env = env
        argv = self._argv(c, env)
        (p.dir / "hosts").write_text(self._hosts(p))
        (p.dir / "hostname").write_text(p.name + "\n")
        if self.isolated:
            c.cgroup_dirs = []
            if p.stopping or p.gone:
                # kill_pod is releasing the pod (or has): a start that got this far
                # anyway must not make cgroups after it removed the pod's.
                raise asyncio.CancelledError
            made = asyncio.ensure_future(
                asyncio.to_thread(cgroups.create, f"{p.cgroup_rel}/{c.id}")
            )
            p.making.add(made)
            made.add_done_callback(p.making.discard)
            try:
                c.cgroup_dirs = await asyncio.shield(made)
            except asyncio.CancelledError:
                # The thread goes on making them: remove them once made (empty: no
                # process was started for them).
                made.add_done_callback(_remove_made_cgroups)
                raise
            if p.stopping or p.gone:
                made_dirs, c.cgroup_dirs = c.cgroup_dirs, []
                await asyncio.to_thread(cgroups.remove, made_dirs, parents=1)
                raise asyncio.CancelledError
        self._record_pod(p)
        if c.kind != "sandbox":
            image = c.spec.get("image", "")
            self._event(p, "Pulled", f'Container image "{image}" already present on machine')
            self._event(p, "Created", f"Created container {c.name}")
        exitfile = cdir / f"{c.id}.exit"
        if self.isolated:
            try:
                pid, err = await self._start_isolated(p, c, argv, env, logf, exitfile)
            except MountError as e:
                self._event(p, "FailedMount", str(e), "Warning")
                pid, err = 0, str(e)
        else:
            pid, err = await self._start_plain(c, argv, env, logf, exitfile)
        c.host_pid = pid
        if not err and (p.stopping or self._closing):
            # The pod was deleted (or the lab stops) while this container started: nothing
            # else would stop it (kill_pod took its list of running containers before).
            _kill_now(c)
            c.state, c.reason, c.exit_code = "terminated", "Error", 137
            c.started_at = c.finished_at = time.time()
        elif err:
            c.state, c.reason, c.message = "terminated", "StartError", err
            c.exit_code, c.started_at, c.finished_at = 128, 0.0, time.time()
            self._event(p, "Failed", f"Error: {err}", "Warning")
        else:
            c.state, c.reason, c.message = "running", "", ""
            c.started_at = time.time()
            if c.kind != "sandbox":
                self._event(p, "Started", f"Started container {c.name}")
        self._record_pod(p)
        self._publish(p)
        self._spawn(self._reap(p, c, exitfile))

    async def _start_isolated(
        self, p: Pod, c: Container, argv: list[str], env: dict[str, str], logf: Path, exitfile: Path
    ) -> tuple[int, str]:
        bin_dir = await asyncio.to_thread(images.build_profile, c.profile, self.images_dir)
        if c.profile.lenient_entrypoint and self._idle is None:
            self._idle = await asyncio.to_thread(compile_c, "idle", self.images_dir)
        rootfs = self.dir / "rootfs" / c.id
        rootfs.mkdir(parents=True, exist_ok=True)
        spec = p.pod.get("spec") or {}
        if c.kind == "ephemeral":
            target = p.containers.get(str(c.spec.get("targetContainerName", "")))
            if target is not None and target.state == "running" and target.host_pid:
                pid_mode = f"/proc/{target.host_pid}/ns/pid"
            else:
                pid_mode = "new"
        elif p.sandbox is not None and c is not p.sandbox and p.sandbox.host_pid:
            pid_mode = f"/proc/{p.sandbox.host_pid}/ns/pid"
        else:
            pid_mode = "host" if spec.get("hostPID") else "new"
        sc = c.spec.get("securityContext") or {}
        psc = spec.get("securityContext") or {}
        shim_spec = {
            "netns": p.netns,
            "pid": pid_mode,
            "cgroups": [str(d / "cgroup.procs") for d in c.cgroup_dirs],
            "rootfs": str(rootfs),
            "hostname": p.name,
            "mounts": self._mounts(p, c, bin_dir, argv),
            "argv": argv,
            "env": env,
            "cwd": str(c.spec.get("workingDir") or "/"),
            "uid": sc.get("runAsUser", psc.get("runAsUser")),
            "gid": sc.get("runAsGroup", psc.get("runAsGroup")),
            "log": str(logf),
            "exitfile": str(exitfile),
        }
        spec_path = p.dir / c.name / f"{c.id}.json"
        _write_json(spec_path, shim_spec)
        with open(p.dir / c.name / "shim.log", "ab") as shim_log:
            c.shim = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                str(SHIM),
                str(spec_path),
                f"{SHIM_LAB_ARG}{self.lab_id}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=shim_log,
                start_new_session=True,
            )
        # Its pid on record at once: cleanup() finds it even if the lab is killed now.
        self._record_pod(p)
        assert c.shim.stdout is not None
        try:
            line = (await asyncio.wait_for(c.shim.stdout.readline(), 30)).decode(errors="replace")
        except TimeoutError:
            line = "err 0 the container did not start within 30 s"
            _kill_now(c)
        except BaseException:
            # Cancelled (pod deleted, lab stopping) before the shim answered: nothing knows
            # the container's pid yet, so kill the shim's process group (the shim and its
            # child) and its cgroups now, before anything else runs.
            _kill_now(c)
            raise
        parts = line.strip().split(" ", 2)
        if len(parts) < 2 or parts[0] not in ("ok", "err"):
            _kill_now(c)
            return 0, f"shim failed: {line.strip() or 'no answer'}"
        pid = int(parts[1]) if parts[1].isdigit() else 0
        return pid, (parts[2] if parts[0] == "err" and len(parts) > 2 else "")

    async def _start_plain(
        self, c: Container, argv: list[str], env: dict[str, str], logf: Path, exitfile: Path
    ) -> tuple[int, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **env, "PATH": os.environ.get("PATH", images.DEFAULT_PATH)},
                start_new_session=True,
            )
        except OSError as e:
            return 0, f'exec: "{argv[0] if argv else ""}": {e.strerror}'
        c.shim = proc
        # The same CRI-format log as the shim writes (per-line timestamps).
        log_fd = os.open(logf, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        cri = shim.CriLog(log_fd)

        async def copy(reader: asyncio.StreamReader | None, stream: str) -> None:
            if reader is None:
                return
            while data := await reader.read(65536):
                cri.feed(stream, data)
            cri.close(stream)

        copying = asyncio.gather(copy(proc.stdout, "stdout"), copy(proc.stderr, "stderr"))

        async def waiter() -> None:
            rc = await proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(copying), 0.5)
            cri.close()
            os.close(log_fd)
            code = 128 - rc if rc < 0 else rc
            _write_json(exitfile, {"exitCode": code, "signal": -rc if rc < 0 else 0})

        self._spawn(waiter())
        return proc.pid, ""

    async def _reap(self, p: Pod, c: Container, exitfile: Path) -> None:
        if c.shim is not None:
            await c.shim.wait()
        for _ in range(100):
            if exitfile.exists():
                break
            await asyncio.sleep(0.02)
        rec = _read_json(exitfile) or {}
        if c.state == "running":
            c.exit_code = int(rec.get("exitCode", 137))
            c.signal = int(rec.get("signal", 0))
            c.finished_at = float(rec.get("finishedAt", time.time()))
            c.state = "terminated"
            c.reason = "Completed" if c.exit_code == 0 else "Error"
        if c.cgroup_dirs:
            await asyncio.to_thread(cgroups.kill_all, c.cgroup_dirs, 2.0)
            await asyncio.to_thread(cgroups.remove, c.cgroup_dirs)
        with contextlib.suppress(OSError):
            (self.dir / "rootfs" / c.id).rmdir()
        c.host_pid = 0
        if not p.stopping:
            self._publish(p)
        c.done.set()

    def _terminated_state(self, c: Container) -> JSON:
        t: JSON = {
            "exitCode": c.exit_code,
            "reason": c.reason,
            "startedAt": now_rfc3339(c.started_at) if c.started_at else None,
            "finishedAt": now_rfc3339(c.finished_at or time.time()),
            "containerID": c.container_id,
        }
        if c.signal:
            t["signal"] = c.signal
        if c.message:
            t["message"] = c.message
        return t

    # ----------------------------------------------------------------- status

    def _container_status(self, c: Container) -> JSON:
        if c.state == "running":
            state: JSON = {"running": {"startedAt": now_rfc3339(c.started_at)}}
        elif c.state == "terminated":
            state = {"terminated": self._terminated_state(c)}
        else:
            w: JSON = {"reason": c.reason}
            if c.message:
                w["message"] = c.message
            state = {"waiting": w}
        s: JSON = {
            "name": c.name,
            "state": state,
            "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
            "ready": c.state == "running" and c.kind == "regular",
            "restartCount": c.restart_count,
            "image": images.normalize_image(str(c.spec.get("image", ""))),
            "imageID": images.image_id(str(c.spec.get("image", ""))),
        }
        if c.id and c.state != "waiting":
            s["containerID"] = c.container_id
        elif c.id and c.last_terminated:
            s["containerID"] = c.last_terminated.get("containerID", "")
        if c.kind == "regular":
            s["started"] = c.state == "running"
        if c.kind == "init":
            s["ready"] = c.state == "terminated" and c.exit_code == 0
        return s

    def _status(self, p: Pod) -> JSON:
        regular = list(p.containers.values())
        init_done = all(c.state == "terminated" and c.exit_code == 0 for c in p.init)
        restart = str((p.pod.get("spec") or {}).get("restartPolicy") or "Always")
        if p.phase == "Failed":
            phase = "Failed"
        elif any(c.state == "running" for c in regular):
            phase = "Running"
        elif regular and all(c.state == "terminated" for c in regular) and restart != "Always":
            ok = all(c.exit_code == 0 for c in regular)
            phase = "Succeeded" if ok else "Failed"
        elif regular and any(c.restart_count > 0 or c.state == "terminated" for c in regular):
            phase = "Running"
        else:
            phase = "Pending"
        p.phase = phase
        ready = bool(regular) and all(c.state == "running" for c in regular)
        ts = now_rfc3339(p.start_time)

        def cond(kind: str, ok: bool) -> JSON:
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": ts,
            }

        status: JSON = {
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", bool(p.ip)),
                cond("Initialized", init_done),
                cond("Ready", ready),
                cond("ContainersReady", ready),
                cond("PodScheduled", True),
            ],
            "hostIP": p.host_ip or self.gateway,
            "hostIPs": [{"ip": p.host_ip or self.gateway}],
            "podIP": p.ip,
            "podIPs": [{"ip": p.ip}] if p.ip else [],
            "startTime": ts,
            "qosClass": p.qos,
            "containerStatuses": [self._container_status(c) for c in regular],
        }
        if p.init:
            status["initContainerStatuses"] = [self._container_status(c) for c in p.init]
        if p.ephemeral:
            status["ephemeralContainerStatuses"] = [
                self._container_status(c) for c in p.ephemeral.values()
            ]
        return status

    def _publish(self, p: Pod) -> None:
        try:
            self._events.pod_status(p.namespace, p.name, p.uid, self._status(p))
        except Exception:  # the server's bug must not kill the pod's supervisor
            log.exception("pod_status callback failed")

    def _event(self, p: Pod, reason: str, message: str, type_: str = "Normal") -> None:
        try:
            self._events.pod_event(p.namespace, p.name, p.uid, reason, message, type_)
        except Exception:
            log.exception("pod_event callback failed")

    def status(self, pod: JSON) -> JSON | None:
        """The pod's current status as the runtime sees it (``None``: not ours)."""
        p = self._pods.get(str((pod.get("metadata") or {}).get("uid", "")))
        return self._status(p) if p else None

    # ----------------------------------------------------------------- kill

    async def kill_pod(self, pod: JSON, grace_seconds: int) -> None:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        p = self._pods.get(uid)
        if p is None:
            return
        p.stopping = True
        running = [c for c in p.all_containers() if c.state == "running" and c.host_pid]
        for c in running:  # (the server records the Killing event)
            with contextlib.suppress(OSError):
                os.kill(c.host_pid, signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, min(float(grace_seconds), MAX_GRACE_SECONDS))
        while time.monotonic() < deadline and any(not c.done.is_set() for c in running):
            await asyncio.sleep(0.05)
        # Starts in flight are cancelled (each kills its shim and cgroups as it unwinds)
        # and waited for, so every container is known before the kill below; the network
        # set-up is waited for, so its namespace is made before it is torn down.
        starts = [t for t in (p.task, *p.starts) if t is not None and not t.done()]
        starts += [c.task for c in p.containers.values() if c.task and not c.task.done()]
        for t in starts:
            t.cancel()
        pending: list[asyncio.Future[Any]] = [
            t for t in (*starts, p.setup) if t is not None and not t.done()
        ]
        pending += [f for f in p.making if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=20)
        for c in p.all_containers():
            _kill_now(c)  # its shim's process group, at once
            if c.cgroup_dirs:
                await asyncio.to_thread(cgroups.kill_all, c.cgroup_dirs, 5.0)
        for c in running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.done.wait(), 10)
        for c in running:
            if c.state == "running":
                c.state, c.reason, c.exit_code = "terminated", "Error", 137
                c.finished_at = time.time()
        self._publish(p)
        await asyncio.to_thread(_remove_pod_resources, _read_json(self._pod_record(p)) or {})
        if p.cgroup_rel and self.isolated:
            # Whatever the record missed (a container whose start was cancelled while
            # its cgroups were being made): the pod's own cgroup, in every hierarchy.
            await asyncio.to_thread(_remove_pod_cgroup, p.cgroup_rel)
        if p.index:
            self._free_ips.append(p.index)
        p.gone = True
        self._pods.pop(uid, None)
        self._pod_record(p).unlink(missing_ok=True)
        shutil.rmtree(p.dir, ignore_errors=True)
        for c in p.all_containers():
            if c.id:
                (self.dir / "containers" / f"{c.id}.json").unlink(missing_ok=True)

    # ----------------------------------------------------------------- records

    def _pod_record(self, p: Pod) -> Path:
        return self.dir / "pods" / f"{p.uid}.json"

    def _record_pod(self, p: Pod) -> None:
        if p.gone:
            return
        containers = {}
        for c in p.all_containers():
            if c.id:
                containers[c.id] = {
                    "name": c.name,
                    "kind": c.kind,
                    "host_pid": c.host_pid,
                    "start_ticks": _start_ticks(c.host_pid),
                    "isolated": self.isolated,
                    "shim_pid": c.shim.pid if c.shim else 0,
                    "cgroups": [str(d) for d in c.cgroup_dirs],
                    "image": str(c.spec.get("image", "")),
                }
        _write_json(
            self._pod_record(p),
            {
                "lab_id": self.lab_id,
                "uid": p.uid,
                "namespace": p.namespace,
                "name": p.name,
                "netns": p.netns,
                "veth": p.veth,
                "containers": containers,
                "rootfs": str(self.dir / "rootfs"),
            },
        )
        self._write_cri(p)

    def _write_cri(self, p: Pod) -> None:
        """What a CRI would tell Falco about each container (read by the Falco stand-in)."""
        d = self.dir / "containers"
        d.mkdir(parents=True, exist_ok=True)
        for c in p.all_containers():
            if not c.id:
                continue
            _write_json(
                d / f"{c.id}.json",
                {
                    "id": c.id,
                    "name": c.name,
                    "image": str(c.spec.get("image", "")),
                    "pod_name": p.name,
                    "pod_namespace": p.namespace,
                    "pod_uid": p.uid,
                    "pod_ip": p.ip,
                    "labels": (p.pod.get("metadata") or {}).get("labels") or {},
                },
            )

    # ----------------------------------------------------------------- logs

    def log_path(self, pod: JSON, container: str, *, previous: bool) -> Path | None:
        p = self._pods.get(str((pod.get("metadata") or {}).get("uid", "")))
        if p is None:
            return None
        c = next((c for c in p.all_containers() if c.name == container), None)
        if c is None or not c.logs:
            return None
        if previous:
            return c.logs[-2] if len(c.logs) >= 2 else None
        return c.logs[-1]

    # ----------------------------------------------------------------- exec

    def _find(self, pod: JSON, container: str) -> tuple[Pod, Container]:
        p = self._pods.get(str((pod.get("metadata") or {}).get("uid", "")))
        if p is None:
            raise ContainerNotRunning("the pod does not run on this node")
        c = next(
            (c for c in p.all_containers() if c.name == container and c.kind != "sandbox"), None
        )
        if c is None:
            raise ContainerNotRunning(f"container {container} not found")
        if c.state != "running" or not c.host_pid:
            raise ContainerNotRunning(f"container {container} is not running")
        return p, c

    def _resolve_in_container(self, c: Container, name: str) -> bool:
        if self.isolated:
            root = f"/proc/{c.host_pid}/root"
        else:
            return (shutil.which(name) if "/" not in name else name) is not None and (
                "/" not in name or os.access(name, os.X_OK)
            )
        if "/" in name:
            candidates = [name if name.startswith("/") else "/" + name]
        else:
            path = c.env.get("PATH", images.DEFAULT_PATH)
            candidates = [f"{d}/{name}" for d in path.split(":") if d]
        for cand in candidates:
            full = root + os.path.normpath(cand)
            try:
                if os.path.isfile(full) and os.access(full, os.X_OK):
                    return True
            except OSError:
                continue
        return False

    async def exec(
        self, pod: JSON, container: str, argv: list[str], *, stdin: bool, tty: bool
    ) -> Exec:
        p, c = self._find(pod, container)
        if not argv:
            raise ExecNotFound('exec: "": executable file not found in $PATH: unknown')
        if not self._resolve_in_container(c, argv[0]):
            raise ExecNotFound(
                "failed to exec in container: failed to start exec: OCI runtime exec failed: "
                f'exec failed: unable to start container process: exec: "{argv[0]}": '
                "executable file not found in $PATH: unknown"
            )
        if self.isolated and tty:
            procs = [str(d / "cgroup.procs") for d in c.cgroup_dirs]
            full = [sys.executable, "-I", "-S", str(ENTER), str(c.host_pid),
                    "1" if p.netns else "0", str(len(procs)), *procs, "--", *argv]  # fmt: skip
            return await Exec.start(full, env=dict(c.env), stdin=stdin, tty=True, helper=True)
        if self.isolated:
            enter = [
                "nsenter",
                "-t",
                str(c.host_pid),
                "-m",
                "-u",
                "-p",
                "-w",
                *(["-n"] if p.netns else []),
                "--",
                *argv,
            ]
            procs = [str(d / "cgroup.procs") for d in c.cgroup_dirs]
            # Join the container's cgroups, then enter its namespaces (data as argv only).
            full = [
                "/bin/sh",
                "-c",
                'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" 2>/dev/null; shift; '
                'n=$((n-1)); done; exec "$@"',
                "sh",
                str(len(procs)),
                *procs,
                *enter,
            ]
            env = dict(c.env)
        else:
            full = list(argv)
            env = {**os.environ, **c.env, "PATH": os.environ.get("PATH", images.DEFAULT_PATH)}
        return await Exec.start(full, env=env, stdin=stdin, tty=tty)

    # ----------------------------------------------------------------- ephemeral

    async def add_ephemeral_container(self, pod: JSON, container: JSON) -> None:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        p = self._pods.get(uid)
        if p is None:
            raise ContainerNotRunning("the pod does not run on this node")
        if p.stopping or self._closing:
            raise ContainerNotRunning("the pod is being deleted")
        name = str(container["name"])
        if name in p.ephemeral:
            return
        p.pod = pod
        c = self._container(container, "ephemeral")
        p.ephemeral[name] = c
        # A task of the pod's, not of the caller (an API request that may be cancelled):
        # kill_pod cancels it and waits for it like the pod's other starts.
        task = asyncio.ensure_future(self._start(p, c))
        p.starts.add(task)
        task.add_done_callback(p.starts.discard)
        task.add_done_callback(_retrieve)
        await asyncio.shield(task)

    # ----------------------------------------------------------------- policies

    async def apply_network_policies(
        self,
        pods: list[JSON],
        policies: list[JSON],
        namespaces: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self._policies = list(policies)
        self._namespaces = dict(namespaces or {})
        self._all_pods = list(pods)
        # Pods the server no longer lists and that run nothing (Succeeded/Failed pods are
        # deleted without kill_pod): release their netns and records.
        listed = {str((x.get("metadata") or {}).get("uid", "")) for x in pods}
        for p in list(self._pods.values()):
            idle = all(c.state != "running" for c in p.all_containers())
            if p.uid not in listed and idle and p.phase in ("Succeeded", "Failed"):
                await self.kill_pod(p.pod, 0)
        if not self.enforce_network_policy or not self.isolated:
            return
        if shutil.which("nft") is None:
            if policies and not self._warned_nft:
                log.warning("falcoir lab: nft (nftables) is not installed: NetworkPolicies are "
                            "not enforced")  # fmt: skip
                self._warned_nft = True
            return
        async with self._lock:
            # Every pod's rules are worked out again (a label or namespace change moves
            # peers too), but only the pods whose rules changed are reloaded, at once:
            # a new policy reaches its pod in one nft load, however many pods run.
            await asyncio.gather(*(self._enforce(p) for p in list(self._pods.values()) if p.netns))

    async def _enforce(self, p: Pod) -> None:
        current = next(
            (x for x in self._all_pods if (x.get("metadata") or {}).get("uid") == p.uid), None
        )
        if current is not None:
            p.pod = {**current, "status": {**(current.get("status") or {}), "podIP": p.ip}}
        pods = self._all_pods or [p.pod]
        ruleset = policy.ruleset_for(p.pod, pods, self._policies, self._namespaces)
        if ruleset == p.applied_rules:
            return
        if p.netns and Path(p.netns).exists():
            try:
                await asyncio.to_thread(net.nft_apply, p.netns, ruleset)
            except net.NetError as e:
                p.applied_rules = None
                log.error("NetworkPolicy for %s/%s not applied: %s", p.namespace, p.name, e)
            else:
                p.applied_rules = ruleset

    # ----------------------------------------------------------------- helpers for tests

    def host_pid(self, pod: JSON, container: str) -> int:
        """The host pid of the container's first process (0 if not running)."""
        p = self._pods.get(str((pod.get("metadata") or {}).get("uid", "")))
        if p is None:
            return 0
        c = next((c for c in p.all_containers() if c.name == container), None)
        return c.host_pid if c else 0


class Exec:
    """A running exec (:class:`~falcoir.lab.runtime.ExecProcess`)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader | None,
        master: int | None,
        helper: bool = False,
    ) -> None:
        self._helper = helper
        self._proc = proc
        self.stdout = stdout
        self.stderr = stderr
        self._master = master

    @classmethod
    async def start(
        cls, argv: list[str], *, env: dict[str, str], stdin: bool, tty: bool, helper: bool = False
    ) -> Exec:
        """``helper``: ``argv`` is :mod:`falcoir.lab.linux.enter`, which makes the command
        a session leader on the terminal itself (inside the container's pid namespace)."""
        loop = asyncio.get_running_loop()
        if not tty:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
                limit=1 << 20,
            )
            assert proc.stdout is not None
            return cls(proc, proc.stdout, proc.stderr, None)
        master, slave = os.openpty()
        os.set_blocking(master, False)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**env, "TERM": env.get("TERM", "xterm")},
                start_new_session=helper,
                preexec_fn=None if helper else _make_controlling_tty,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        reader = asyncio.StreamReader(limit=1 << 20, loop=loop)

        def readable() -> None:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                reader.feed_data(data)
            else:
                loop.remove_reader(master)
                reader.feed_eof()

        loop.add_reader(master, readable)
        return cls(proc, reader, None, master, helper)

    async def write_stdin(self, data: bytes) -> None:
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                    view = view[n:]
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                except OSError:
                    return
            return
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self._master is not None:
            await self.write_stdin(b"\x04")
            return
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(
                    self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0)
                )

    async def wait(self) -> int:
        rc = await self._proc.wait()
        if self._master is not None:
            # Let the reader see the end of the output, then close the pty.
            for _ in range(200):
                if self.stdout.at_eof():
                    break
                await asyncio.sleep(0.01)
            self.close()
        return 128 - rc if rc < 0 else rc

    def kill(self) -> None:
        if self._helper and self._proc.returncode is None:
            with contextlib.suppress(OSError):
                os.kill(self._proc.pid, signal.SIGTERM)  # the helper kills the command
            return
        with contextlib.suppress(OSError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self._proc.kill()

    def close(self) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            if not self.stdout.at_eof():
                self.stdout.feed_eof()
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None


def _make_controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


# --------------------------------------------------------------------- cleanup


def _remove_pod_resources(rec: JSON) -> None:
    for cid, c in (rec.get("containers") or {}).items():
        dirs = [Path(d) for d in c.get("cgroups") or []]
        if dirs:
            cgroups.kill_all(dirs, 5.0)
            cgroups.remove(dirs, parents=1)
        _kill_shim(int(c.get("shim_pid") or 0))
        if not dirs and not c.get("isolated", True):
            _kill_plain(int(c.get("host_pid") or 0), str(c.get("start_ticks") or ""))
        if rec.get("rootfs"):
            with contextlib.suppress(OSError):
                (Path(rec["rootfs"]) / cid).rmdir()
    if rec.get("netns") or rec.get("veth"):
        net.teardown_pod(Path(rec.get("netns") or "x").name, str(rec.get("veth") or "none"))
    for d in _pod_parent_cgroups(rec):
        cgroups.remove([d], parents=2)


def _remove_pod_cgroup(rel: str) -> None:
    """The pod's cgroup and everything below it, in every hierarchy (processes killed
    first); its QoS parent stays."""
    dirs = [d for d in cgroups.planned(rel) if d.is_dir()]
    if dirs:
        cgroups.kill_all(dirs, 5.0)
        cgroups.remove(dirs)


def _pod_parent_cgroups(rec: JSON) -> list[Path]:
    out = set()
    for c in (rec.get("containers") or {}).values():
        for d in c.get("cgroups") or []:
            out.add(Path(d).parent)
    return sorted(out)


def _start_ticks(pid: int) -> str:
    """The process's start time (clock ticks since boot): tells a pid from its reuse."""
    if pid <= 0:
        return ""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _kill_plain(pid: int, start_ticks: str) -> None:
    """Kill a non-isolated container's process group if that pid is still it."""
    if pid > 0 and start_ticks and _start_ticks(pid) == start_ticks:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _kill_shim(pid: int) -> None:
    """Kill a leftover shim only if that pid is still one of our shims."""
    if pid <= 0:
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if any(arg.endswith(b"/falcoir/lab/linux/shim.py") for arg in cmdline):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup(state_dir: Path, *, lab_id: str | None = None, only_dead: bool = False) -> list[str]:
    """Remove every process, cgroup, netns, veth and nft rule that a lab using
    ``state_dir`` left (even after ``kill -9``), from the records it keeps there.

    ``lab_id``: only that lab's; ``only_dead``: only labs whose server process is gone.
    Returns what was removed, one line each. Never touches another state dir's labs.
    """
    rt = Path(state_dir).resolve() / "runtime"
    removed: list[str] = []
    labs: dict[str, JSON] = {}
    for f in sorted(rt.glob("lab-*.json")):
        rec = _read_json(f) or {}
        lid = str(rec.get("lab_id", ""))
        if not lid or (lab_id is not None and lid != lab_id):
            continue
        if only_dead and _pid_alive(int(rec.get("pid") or 0)):
            continue
        labs[lid] = rec
        rec["_file"] = str(f)
    for f in sorted((rt / "pods").glob("*.json")):
        rec = _read_json(f) or {}
        if str(rec.get("lab_id", "")) not in labs:
            continue
        _remove_pod_resources(rec)
        removed.append(f"pod {rec.get('namespace')}/{rec.get('name')} ({rec.get('netns')})")
        f.unlink(missing_ok=True)
        shutil.rmtree(rt / "pods" / str(rec.get("uid", "_")), ignore_errors=True)
    removed += _sweep(rt, labs, lab_id=lab_id)
    for lid, rec in labs.items():
        if rec.get("gateway"):
            a = str(rec["gateway"][0])
            if net.link_exists(a):
                net.teardown_gateway(lid)
                removed.append(f"link {a}")
        Path(str(rec["_file"])).unlink(missing_ok=True)
    if labs and not any(rt.glob("lab-*.json")) and not any(rt.glob("cgroups-*.txt")):
        shutil.rmtree(rt / "rootfs", ignore_errors=True)
        shutil.rmtree(rt / "containers", ignore_errors=True)
    return removed


def _lab_shims(rt: Path) -> list[tuple[int, str, str]]:
    """``(pid, lab id or "", spec path)`` of every live shim whose spec is under ``rt``
    (so of a lab using this state dir), from ``/proc``."""
    prefix = str(rt / "pods") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = [
                a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")
            ]
        except OSError:
            continue
        at = next((i for i, a in enumerate(args) if a.endswith("/falcoir/lab/linux/shim.py")), -1)
        if at < 0 or at + 1 >= len(args) or not args[at + 1].startswith(prefix):
            continue
        lab = next((a[len(SHIM_LAB_ARG) :] for a in args if a.startswith(SHIM_LAB_ARG)), "")
        found.append((int(entry.name), lab, args[at + 1]))
    return found


def _sweep(rt: Path, labs: dict[str, JSON], *, lab_id: str | None) -> list[str]:
    """Kill what the records did not account for: shims of the labs being cleaned up
    (``labs``) or of no live lab, and every process still in their cgroups (the ledger).

    With ``lab_id``, only that lab's; else any lab of this state dir whose server is gone
    (a lab that has no record left is gone too)."""
    live = set()
    for f in rt.glob("lab-*.json"):
        rec = _read_json(f) or {}
        lid = str(rec.get("lab_id", ""))
        if lid and lid not in labs and _pid_alive(int(rec.get("pid") or 0)):
            live.add(lid)

    def ours(lid: str) -> bool:
        if lab_id is not None:
            return lid == lab_id
        return lid in labs or (lid not in live and (bool(lid) or not live))

    out = []
    for pid, lid, spec in _lab_shims(rt):
        if not ours(lid):
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        where = f"pod {Path(spec).parent.parent.name} container {Path(spec).parent.name}"
        out.append(f"killed leftover shim pid {pid} ({where})")
    for ledger in sorted(rt.glob("cgroups-*.txt")):
        lid = ledger.name[len("cgroups-") : -len(".txt")]
        if not ours(lid) or not lid:
            continue
        try:
            dirs = sorted({Path(x) for x in ledger.read_text().split("\n") if x.strip()})
        except OSError:
            continue
        dirs = [d for d in dirs if d.is_dir()]
        for d in dirs:
            n = len(cgroups.pids([d]))
            if n:
                cgroups.kill_all([d], 5.0)
                out.append(f"killed {n} process(es) left in cgroup {d}")
        for d in dirs:
            cgroups.remove([d])
            up = d.parent  # kubepods/<qos>/pod<uid>: the qos level and kubepods, if empty
            while up.name in ("besteffort", "burstable", "kubepods"):
                try:
                    up.rmdir()
                except OSError:
                    break
                if up.name == "kubepods":
                    break
                up = up.parent
        # A cgroup that could not be removed (a process that would not die) stays in the
        # ledger, for the next sweep; the ledger goes once nothing of it is left.
        stuck = [d for d in dirs if d.is_dir()]
        if stuck:
            out.append(f"{len(stuck)} cgroup(s) of lab {lid} could not be removed (kept listed)")
            with contextlib.suppress(OSError):
                ledger.write_text("".join(f"{d}\n" for d in stuck))
        else:
            ledger.unlink(missing_ok=True)
    return out
