"""Pod networking: one network namespace per pod, a veth to the host, a per-lab subnet.

Layout for a lab whose subnet is ``10.213.N.0/24``:

- the lab's gateway ``10.213.N.1`` sits on a host-only veth pair ``fg<lab>a``/``fg<lab>b``
  (the node's address as pods see it; the lab's stratum pool listens there);
- a pod gets netns ``falcoir-<lab>-<n>`` with ``lo`` and ``eth0`` (``10.213.N.x/32``,
  default route via the gateway), peered with host veth ``fv<lab><n>``; the host routes
  the pod's /32 to that veth. No forwarding is turned on: pods reach the node only.

Every name carries the lab's 6-hex id, and subnets are taken under a lock file in
``/run/falcoir-lab``, so several labs run side by side and none removes another's.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

from falcoir.errors import FalcoirError

LOCK_DIR = Path("/run/falcoir-lab")
SUBNET_PREFIX = "10.213"
NETNS_DIR = Path("/run/netns")


class NetError(FalcoirError):
    """A network set-up command failed."""


def run(argv: list[str], *, input_: str | None = None, check: bool = True) -> str:
    """Run a network tool (bounded: 20 s)."""
    try:
        proc = subprocess.run(
            argv, input=input_, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetError(f"{argv[0]} failed: {e}") from e
    if check and proc.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


@dataclass
class Subnet:
    index: int
    lock_fd: int | None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{self.index}.0/24")

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.1"

    def pod_ip(self, n: int) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.{n}"


def _address_in_use(ip: str) -> bool:
    out = run(["ip", "-o", "-4", "addr", "show", "to", f"{ip}/32"], check=False)
    return bool(out.strip())


def take_subnet() -> Subnet:
    """Lock a free /24 for this lab (held while the process lives)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for idx in candidates:
        fd = os.open(LOCK_DIR / f"subnet-{idx}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if _address_in_use(f"{SUBNET_PREFIX}.{idx}.1"):  # a crashed lab's leftovers
            os.close(fd)
            continue
        return Subnet(idx, fd)
    raise NetError("no free lab subnet in 10.213.0.0/16")


def gateway_names(lab_id: str) -> tuple[str, str]:
    return f"fg{lab_id}a", f"fg{lab_id}b"


def setup_gateway(lab_id: str, subnet: Subnet) -> None:
    a, b = gateway_names(lab_id)
    if not link_exists(a):
        run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
    run(["ip", "addr", "replace", f"{subnet.gateway}/32", "dev", a])
    run(["ip", "link", "set", a, "up"])
    run(["ip", "link", "set", b, "up"])


def netns_name(lab_id: str, n: int) -> str:
    return f"falcoir-{lab_id}-{n}"


def host_veth(lab_id: str, n: int) -> str:
    return f"fv{lab_id}{n:05x}"[:15]


def setup_pod(lab_id: str, subnet: Subnet, n: int) -> tuple[str, str, str]:
    """Create the pod's netns and veth; return ``(netns path, host veth, pod ip)``."""
    ns = netns_name(lab_id, n)
    veth = host_veth(lab_id, n)
    ip = subnet.pod_ip(n)
    if (NETNS_DIR / ns).exists():
        teardown_pod(ns, veth)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "route", "replace", f"{ip}/32", "dev", veth, "src", subnet.gateway])
    batch = "\n".join(
        [
            "link set lo up",
            f"addr add {ip}/32 dev eth0",
            "link set eth0 up",
            f"route add {subnet.gateway}/32 dev eth0 scope link",
            f"route add default via {subnet.gateway} dev eth0",
        ]
    )
    run(["ip", "-n", ns, "-batch", "-"], input_=batch + "\n")
    return str(NETNS_DIR / ns), veth, ip


def teardown_pod(ns: str, veth: str) -> None:
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
    if (NETNS_DIR / ns).exists():
        run(["ip", "netns", "del", ns], check=False)


def teardown_gateway(lab_id: str) -> None:
    a, _ = gateway_names(lab_id)
    if link_exists(a):
        run(["ip", "link", "del", a], check=False)


def release_subnet(subnet: Subnet) -> None:
    if subnet.lock_fd is not None:
        with contextlib.suppress(OSError):
            os.close(subnet.lock_fd)
        subnet.lock_fd = None


def nft_apply(netns: str, ruleset: str) -> None:
    """Load ``ruleset`` (one atomic nft transaction) inside the pod's netns."""
    run(["nsenter", f"--net={netns}", "nft", "-f", "-"], input_=ruleset)
