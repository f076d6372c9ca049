"""Image profiles: what a lab container sees in place of a real image.

The lab pulls no images. A container's image name picks a profile, and the profile
decides which of the host's tools the container finds in its ``/bin``, ``/usr/bin``,
``/sbin``, ``/usr/sbin`` (and an empty ``/usr/local/bin``), and what runs when the pod
gives no ``command``:

===============  ==========================================================  ===============
profile          images                                                      tools
===============  ==========================================================  ===============
``ubuntu``       ``ubuntu``, ``debian`` and **every unknown image**          sh, bash, ps,
                 (the documented default: most images are Debian-based)      netstat, ss,
                                                                             sha256sum, ls,
                                                                             tar, cat, ...
``busybox``      ``busybox``, ``alpine``                                     busybox applets
                                                                             (no bash, no ss)
``distroless``   ``gcr.io/distroless/*``, ``cgr.dev/chainguard/static``,     nothing but the
                 ``registry.k8s.io/pause``, anything with ``distroless``     entrypoint
``falco``        ``falcosecurity/falco*``                                    the host's own
                                                                             (runs the lab's
                                                                             Falco stand-in)
===============  ==========================================================  ===============

Without ``command`` and ``args``, ``ubuntu`` and ``busybox`` containers run
``sleep infinity`` (a real image would run ``bash`` or ``sh`` and exit at once);
``distroless`` ones run ``/app``, a small idle program the lab provides. A distroless
container's ``command[0]`` always exists (the host's binary of that name, or the idle
program) and nothing else does, so ``kubectl exec ... -- sh`` fails as on a real node.

Tools are hard links (or copies) of the host's binaries, made once per lab under
``<state dir>/runtime/images/<profile>/bin``. Libraries come from the host's ``/usr``,
mounted read-only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

UBUNTU_TOOLS = (
    "sh", "bash", "dash", "ls", "cat", "ps", "netstat", "ss", "sha256sum", "sha1sum",
    "md5sum", "tar", "timeout", "sleep", "cp", "mv", "rm", "mkdir", "rmdir", "chmod",
    "chown", "ln", "echo", "env", "id", "head", "tail", "grep", "find", "xargs", "stat",
    "readlink", "realpath", "wc", "uname", "hostname", "date", "kill", "true", "false",
    "gzip", "gunzip", "zcat", "base64", "dd", "od", "touch", "sed", "awk", "sort", "uniq",
    "cut", "tr", "du", "df", "mount", "umount", "which", "test", "[", "printf", "pwd",
    "basename", "dirname", "tee", "nproc", "whoami", "top", "free", "pgrep", "pkill",
    "pidof", "uptime", "hexdump", "xxd", "strings", "less", "more", "lsof", "tty", "stty",
    "seq", "yes", "nohup", "mkfifo", "mktemp", "sync", "truncate", "tac", "nl", "getent",
    "nice", "sha512sum", "cmp", "diff", "file", "clear", "ldd",
)  # fmt: skip
BUSYBOX_APPLETS = (
    "sh", "ash", "ls", "cat", "ps", "netstat", "sha256sum", "md5sum", "tar", "timeout",
    "sleep", "cp", "mv", "rm", "mkdir", "chmod", "ln", "echo", "env", "id", "head", "tail",
    "grep", "find", "stat", "readlink", "wc", "uname", "hostname", "date", "kill", "true",
    "false", "gzip", "base64", "dd", "od", "touch", "sed", "awk", "sort", "uniq", "cut",
    "tr", "du", "df", "which", "test", "[", "printf", "pwd", "tee", "top", "free", "pidof",
    "xargs", "vi", "tty", "stty", "seq", "nohup", "mktemp", "sha512sum", "diff", "clear",
    "nc", "wget", "nslookup", "ip", "ifconfig", "route", "hostid", "id",
)  # fmt: skip


@dataclass(frozen=True)
class ImageProfile:
    name: str
    tools: tuple[str, ...] = ()
    busybox: bool = False
    overlay: bool = True
    """False: the container sees the host's own bin dirs (read-only)."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    lenient_entrypoint: bool = False
    """distroless: command[0] is made to exist (host binary of that name or the idle
    program); nothing else does."""


UBUNTU = ImageProfile("ubuntu", tools=UBUNTU_TOOLS, cmd=("sleep", "infinity"))
BUSYBOX = ImageProfile("busybox", tools=BUSYBOX_APPLETS, busybox=True, cmd=("sleep", "infinity"))
DISTROLESS = ImageProfile("distroless", cmd=("/app",), lenient_entrypoint=True)
FALCO = ImageProfile("falco", overlay=False)
PROFILES = {p.name: p for p in (UBUNTU, BUSYBOX, DISTROLESS, FALCO)}


def split_image(image: str) -> tuple[str, str, str]:
    """``(registry, repository, tag-or-digest)`` of an image reference, Docker-style."""
    ref = image.strip()
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = ""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, repo = parts[0], "/".join(parts[1:])
    else:
        registry, repo = "docker.io", ref
        if "/" not in repo:
            repo = "library/" + repo
    return registry, repo, ("@" + digest) if digest else (tag or "latest")


def normalize_image(image: str) -> str:
    """The image as the kubelet reports it in ``containerStatuses[].image``."""
    registry, repo, tag = split_image(image)
    return f"{registry}/{repo}{tag if tag.startswith('@') else ':' + tag}"


def image_id(image: str) -> str:
    """A stable, made-up ``imageID`` (``<repo>@sha256:<hex>``) for the image name."""
    registry, repo, _ = split_image(image)
    digest = hashlib.sha256(normalize_image(image).encode()).hexdigest()
    return f"{registry}/{repo}@sha256:{digest}"


def profile_for_image(image: str) -> ImageProfile:
    """The profile for an image name; unknown images get ``ubuntu``."""
    registry, repo, _ = split_image(image)
    full = f"{registry}/{repo}".lower()
    base = repo.rsplit("/", 1)[-1].lower()
    if "distroless" in full or full.startswith(("cgr.dev/chainguard/static",)) or base == "pause":
        return DISTROLESS
    if "falcosecurity/falco" in full:
        return FALCO
    if base in ("busybox", "alpine"):
        return BUSYBOX
    return UBUNTU


def _link_or_copy(src: str, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


_BUILD_LOCK = threading.Lock()


def build_profile(profile: ImageProfile, images_dir: Path) -> Path | None:
    """Make (once) the bin dir the profile's containers see; ``None`` when the profile
    uses the host's own bin dirs. Tools the host lacks are left out. Thread-safe: pods
    that start together build it once."""
    if not profile.overlay:
        return None
    with _BUILD_LOCK:
        return _build_profile(profile, images_dir)


def _build_profile(profile: ImageProfile, images_dir: Path) -> Path:
    bin_dir = images_dir / profile.name / "bin"
    done = images_dir / profile.name / ".complete"
    stamp = hashlib.sha256(repr(profile).encode()).hexdigest()
    if done.exists() and done.read_text() == stamp:
        return bin_dir
    if bin_dir.exists():
        shutil.rmtree(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    if profile.busybox:
        box = shutil.which("busybox", path=HOST_PATH)
        if box is not None:
            target = bin_dir / "busybox"
            if not target.exists():
                _link_or_copy(os.path.realpath(box), target)
            for applet in profile.tools:
                link = bin_dir / applet
                if not link.is_symlink():
                    link.symlink_to("busybox")
    else:
        for tool in profile.tools:
            src = shutil.which(tool, path=HOST_PATH)
            target = bin_dir / tool
            if src is None or target.exists():
                continue
            _link_or_copy(os.path.realpath(src), target)
    done.write_text(stamp)
    return bin_dir


def empty_dir(images_dir: Path) -> Path:
    """An empty, read-only-mounted directory for bin dirs a profile leaves empty."""
    d = images_dir / "empty"
    d.mkdir(parents=True, exist_ok=True)
    return d
