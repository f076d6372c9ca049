"""The per-container shim: what containerd-shim + runc do for one container, in small.

Run by :class:`falcoir.lab.linux.LinuxRuntime` as ``python -I -S shim.py SPEC.json
--falcoir-lab=<lab id>`` (standard library only, so it starts fast and imports nothing
of falcoir; the last argument is ignored here: it tells the lab's clean-up which lab a
shim belongs to). It

1. joins the pod's network namespace,
2. unshares mount + uts (+ pid, or joins another container's pid namespace),
3. forks the container's first process, which moves itself into the container's
   cgroups, builds a root (a tmpfs with read-only binds of the host's /usr, /etc, /var,
   the image profile's bin dirs, a private /tmp, /etc/hosts, volumes), pivots into it
   and execs the entrypoint,
4. prints ``ok <host pid>`` (or ``err <host pid> <message>``) on stdout, copies the
   container's stdout and stderr to its log in the kubelet's CRI format
   (``<RFC3339Nano> stdout|stderr F|P <text>``, one record per line, stamped when the
   line was read, as containerd does), waits, and writes the exit status to ``exitfile``.

The runtime talks to the container's process directly (signals, /proc/<pid>/ns/*): the
shim is only a waiter, like containerd's.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import select
import signal
import sys
import time
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]


MAX_LINE = 16 * 1024
"""A line longer than this is written in ``P`` (partial) records, as containerd does."""
DRAIN_AFTER_EXIT = 1.0
"""How long output still left in the pipes is copied after the container's process
exited (its children may hold them open; the runtime kills them next)."""


def cri_timestamp(ns: int | None = None) -> str:
    """RFC3339 with 9 fraction digits, UTC (containerd's log timestamp)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class CriLog:
    """Writes a container's output to its log file in the CRI format.

    ``feed`` takes raw bytes of one stream; every complete line becomes an ``F`` record,
    over-long ones ``P`` records; ``close`` writes what is left without a newline as a
    ``P`` record (so a reader reproduces the bytes exactly: no newline is added)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _write(self, stream: str, tag: str, text: bytes) -> None:
        record = f"{cri_timestamp()} {stream} {tag} ".encode() + text + b"\n"
        view = memoryview(record)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except InterruptedError:
                continue

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.pending[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl > MAX_LINE:
                break
            self._write(stream, "F", buf[:nl])
            buf = buf[nl + 1 :]
        while len(buf) > MAX_LINE and buf.find(b"\n", 0, MAX_LINE + 1) < 0:
            self._write(stream, "P", buf[:MAX_LINE])
            buf = buf[MAX_LINE:]
        if b"\n" in buf:
            self.pending[stream] = b""
            self.feed(stream, buf)
            return
        self.pending[stream] = buf

    def close(self, stream: str | None = None) -> None:
        for name in [stream] if stream else list(self.pending):
            if self.pending[name]:
                self._write(name, "P", self.pending[name])
                self.pending[name] = b""


def copy_output(log: CriLog, pipes: dict[int, str], pid: int) -> int:
    """Copy the container's pipes into ``log`` until it exits and the pipes are drained
    (or ``DRAIN_AFTER_EXIT`` passed); return its wait status."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    status: int | None = None
    deadline = 0.0
    try:
        while True:
            if status is None:
                try:
                    done, st = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, st = pid, 0
                if done == pid:
                    status, deadline = st, time.monotonic() + DRAIN_AFTER_EXIT
            if status is not None and (not pipes or time.monotonic() >= deadline):
                break
            wait = 1.0 if status is None else max(0.0, deadline - time.monotonic())
            try:
                ready, _, _ = select.select([*pipes, wake_r], [], [], wait)
            except InterruptedError:
                continue
            if wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(wake_r, 4096)
            for fd in ready:
                if fd not in pipes:
                    continue
                try:
                    data = os.read(fd, 65536)
                except InterruptedError:
                    continue
                if data:
                    log.feed(pipes[fd], data)
                else:
                    log.close(pipes.pop(fd))
                    os.close(fd)
    finally:
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    log.close()
    assert status is not None
    return status


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {source} on {target}",
    )


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def pivot_root(new_root: str, put_old: str) -> None:
    nr = SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(f"pivot_root: unknown architecture {platform.machine()}")
    _check(_libc.syscall(nr, new_root.encode(), put_old.encode()), "pivot_root")


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _make_target(target: str, is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if is_dir:
        os.mkdir(target)
    else:
        with open(target, "wb"):
            pass


def build_root(spec: dict[str, Any]) -> None:
    """Mount the container's filesystem at spec['rootfs'] (in our private mount ns)."""
    root: str = spec["rootfs"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64m")
    for op in spec["mounts"]:
        kind = op["type"]
        target = _inside(root, op["target"])
        if kind == "symlink":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(op["source"], target)
        elif kind == "mkdir":
            os.makedirs(target, mode=op.get("mode", 0o755), exist_ok=True)
        elif kind == "tmpfs":
            _make_target(target, True)
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, op.get("data", "mode=1777"))
        elif kind == "proc":
            _make_target(target, True)
            mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        elif kind == "bind":
            source = op["source"]
            _make_target(target, os.path.isdir(source))
            flags = MS_BIND | (MS_REC if op.get("rec") else 0)
            mount(source, target, None, flags, None)
            if op.get("ro"):
                mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
        else:
            raise ValueError(f"unknown mount type {kind!r}")


def child(spec: dict[str, Any], errw: int) -> None:
    """The container's first process: never returns."""
    try:
        for procs in spec.get("cgroups", []):
            try:
                with open(procs, "w") as f:
                    f.write("0")
            except OSError as e:
                sys.stderr.write(f"shim: cgroup {procs}: {e}\n")
        if spec.get("rootfs"):
            # The mount and uts namespaces are the child's alone: pivot_root moves the
            # root of every process in the namespace, and the shim must keep the host's.
            unshare(CLONE_NEWNS | CLONE_NEWUTS)
            mount(None, "/", None, MS_REC | MS_PRIVATE, None)
            build_root(spec)
            if spec.get("hostname"):
                import socket

                socket.sethostname(spec["hostname"])
            root = spec["rootfs"]
            old = os.path.join(root, ".oldroot")
            os.mkdir(old)
            pivot_root(root, old)
            os.chdir("/")
            _check(_libc.umount2(b"/.oldroot", MNT_DETACH), "umount old root")
            os.rmdir("/.oldroot")
        gid = spec.get("gid")
        uid = spec.get("uid")
        if gid is not None:
            os.setgroups([])
            os.setgid(int(gid))
        if uid is not None:
            os.setuid(int(uid))
        os.chdir(spec.get("cwd") or "/")
        argv: list[str] = spec["argv"]
        env: dict[str, str] = spec["env"]
        for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.execvpe(argv[0], argv, env)  # noqa: S606 - argv from the pod spec, no shell
    except BaseException as e:
        msg = f"{type(e).__name__}: {e}"
        if isinstance(e, FileNotFoundError) and "argv" in locals():
            msg = f'exec: "{spec["argv"][0]}": executable file not found in $PATH'
        try:
            os.write(errw, msg.encode(errors="replace")[:4000])
        finally:
            os._exit(128)


def main() -> int:
    with open(sys.argv[1]) as f:
        spec: dict[str, Any] = json.load(f)
    out = sys.stdout
    log_fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    null_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if spec.get("netns"):
            setns(spec["netns"], CLONE_NEWNET)
        pid_mode = spec.get("pid", "host")
        if pid_mode == "new":
            unshare(CLONE_NEWPID)
        if pid_mode not in ("new", "host"):
            setns(pid_mode, CLONE_NEWPID)
    except OSError as e:
        out.write(f"err 0 {e}\n")
        out.flush()
        return 128
    errr, errw = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(errr)
        os.dup2(null_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        child(spec, errw)
    os.close(errw)
    os.close(out_w)
    os.close(err_w)
    chunks = []
    while True:
        data = os.read(errr, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(errr)
    err = b"".join(chunks).decode(errors="replace").replace("\n", " ")
    out.write(f"err {pid} {err}\n" if err else f"ok {pid}\n")
    out.flush()
    os.close(1)
    status = copy_output(CriLog(log_fd), {out_r: "stdout", err_r: "stderr"}, pid)
    if os.WIFSIGNALED(status):
        code, sig = 128 + os.WTERMSIG(status), os.WTERMSIG(status)
    else:
        code, sig = os.WEXITSTATUS(status), 0
    record = {"exitCode": code, "signal": sig, "finishedAt": time.time(), "startError": err}
    tmp = spec["exitfile"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, spec["exitfile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
