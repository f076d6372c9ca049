"""Constant shell scripts run in the container as ``sh -c SCRIPT sh [ARG]``.

Nothing from an alert or a pod is ever pasted into these texts: the only inputs are
positional arguments chosen by falcoir and, for the dumps, a random section marker read
from stdin (one line), so that it is in no command line a process in the pod can
read while the dump runs. They need only ``sh``, ``cat`` and ``readlink`` (busybox or
coreutils), and read ``/proc`` when ``ps``/``netstat``/``ss`` are missing.
"""

from __future__ import annotations

import secrets

PROC_DUMP = r"""IFS= read -r m; [ -n "$m" ] || exit 2
for p in /proc/[0-9]*; do
  [ -d "$p" ] || continue
  printf '\n%s pid %s\n' "$m" "${p#/proc/}"
  printf '\n%s stat\n' "$m"; cat "$p/stat" 2>/dev/null
  printf '\n%s status\n' "$m"; cat "$p/status" 2>/dev/null
  printf '\n%s cmdline\n' "$m"; cat "$p/cmdline" 2>/dev/null
  printf '\n%s exe\n' "$m"; readlink "$p/exe" 2>/dev/null
  printf '\n%s cwd\n' "$m"; readlink "$p/cwd" 2>/dev/null
  printf '\n%s fd\n' "$m"
  readlink "$p"/fd/* 2>/dev/null || for f in "$p"/fd/*; do readlink "$f" 2>/dev/null; done
done
printf '\n%s end\n' "$m"
"""
"""Every process's stat, status, cmdline, exe, cwd and fd links, framed by the marker."""

NET_DUMP = r"""IFS= read -r m; [ -n "$m" ] || exit 2
for t in tcp tcp6 udp udp6; do
  if [ -r "/proc/net/$t" ]; then
    printf '\n%s %s\n' "$m" "$t"; cat "/proc/net/$t"
  fi
done
printf '\n%s end\n' "$m"
"""
"""The pod network namespace's socket tables, framed by the marker."""

CAT_EXECUTABLE = r"""[ -f "$1" ] && [ -x "$1" ] || { echo "not an executable file" >&2; exit 3; }
exec cat "$1"
"""
"""``$1``'s bytes when it is an executable regular file (a path only an alert named: not
a secret, a token or a config file the alert's author would like copied)."""

DIR_LIST = r"""d="$1"
for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  printf '%s\0' "$f"
done
"""
"""File names in ``$1`` (NUL-separated) for images with a shell but no ``ls``."""


def new_marker() -> str:
    """A section marker a process in the pod cannot predict."""
    return "@@falcoir-" + secrets.token_hex(12)
