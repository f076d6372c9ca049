"""Enter a container and run a command on a terminal (the lab's ``runc exec -t``).

``python -I -S enter.py PID WITH_NET N CGROUP_PROCS... -- ARGV...`` (standard library
only). Joins the container's cgroups and its pid, uts, net and mount namespaces (those
of host pid ``PID``), forks, and the child becomes a session leader with the terminal
on its stdin as controlling terminal before exec'ing ``ARGV``: so an interactive shell's
job control sees a session and process groups inside its own pid namespace (with
``nsenter`` the session would be the host's and ``sh`` fails on exit). Exits as the
command did; SIGTERM or SIGHUP to this process kills the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import signal
import sys
import termios

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int, nstype: int, what: str) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns {what}: {os.strerror(err)}")


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    target, with_net, n = argv[0], argv[1] == "1", int(argv[2])
    procs = argv[3 : 3 + n]
    command = argv[sep + 1 :]
    base = f"/proc/{int(target)}"
    kinds = [("pid", CLONE_NEWPID), ("uts", CLONE_NEWUTS)]
    if with_net:
        kinds.append(("net", CLONE_NEWNET))
    kinds.append(("mnt", CLONE_NEWNS))
    fds = [(os.open(f"{base}/ns/{k}", os.O_RDONLY | os.O_CLOEXEC), t, k) for k, t in kinds]
    cwd = os.open(f"{base}/cwd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for path in procs:
        try:
            with open(path, "w") as f:
                f.write("0")
        except OSError:
            pass
    for fd, nstype, kind in fds:
        _setns(fd, nstype, kind)
        os.close(fd)
    os.fchdir(cwd)
    os.close(cwd)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.isatty(0):
                fcntl.ioctl(0, termios.TIOCSCTTY, 1)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            os.execvpe(command[0], command, dict(os.environ))  # noqa: S606 - argv, no shell
        except OSError as e:
            os.write(2, f"exec {command[0]}: {e.strerror}\n".encode())
        os._exit(127)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, forward)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        died = os.WTERMSIG(status)
        signal.signal(died, signal.SIG_DFL)
        os.kill(os.getpid(), died)
        return 128 + died
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
