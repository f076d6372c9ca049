"""A Falco stand-in for the lab's ``falco`` DaemonSet pod (standard library only).

Real Falco sees execve in the kernel; this stand-in polls the host's ``/proc`` (mounted
at ``/host/proc`` in a ``hostPID`` pod, as the official chart does) every 0.2 s and fires
the walkthrough's rule, "Suspicious crypto miner process", for every new process whose
name (``comm``) is a known miner: ``xmrig``, ``cpuminer``, ``ethminer``, ``minerd``,
``xmr-stak``. For each it writes

- the walkthrough's text alert, with the real host pid, to stdout (the pod's log) and
  appends it to ``<out>/alerts.txt``::

    08:30:00.123 - Critical - Suspicious crypto miner process (name=xmrig, \
cmdline=/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x, pid=12345)

- the same event as Falco JSON (``json_output: true``, 0.39+ key order) to
  ``<out>/alerts.jsonl``, with ``hostname``, ``proc.pid``, ``proc.vpid``,
  ``container.id`` and ``k8s.*`` fields; the container and pod come from the process's
  cgroup and what the lab's runtime records about its containers (the CRI's part).

Only processes in containers of this lab's node are reported: the host's ``/proc`` of a
machine several labs share also shows other labs' pods and unrelated host processes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MINERS = ("xmrig", "cpuminer", "ethminer", "minerd", "xmr-stak")
RULE = "Suspicious crypto miner process"
TAGS = ["container", "crypto-mining", "cryptojacking"]
CGROUP_RE = re.compile(r"[/-]pod([0-9a-zA-Z_-]+?)(?:\.slice)?/(?:[a-z-]+-)?([0-9a-f]{64})")
stop = False


def _read(path: Path, limit: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _status_field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def _cri(cri_dir: Path, cid: str) -> dict[str, Any]:
    try:
        data = json.loads((cri_dir / f"{cid}.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _split_image(image: str) -> tuple[str, str]:
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def inspect(proc: Path, pid: int, cri_dir: Path) -> dict[str, Any] | None:
    base = proc / str(pid)
    try:
        comm = _read(base / "comm").decode(errors="replace").strip()
        if comm not in MINERS:
            return None
        argv = [a.decode(errors="replace") for a in _read(base / "cmdline").split(b"\0") if a]
        status = _read(base / "status").decode(errors="replace")
        cgroup = _read(base / "cgroup").decode(errors="replace")
        stat = _read(base / "stat").decode(errors="replace")
    except OSError:
        return None
    try:
        exepath = os.readlink(base / "exe")
    except OSError:
        exepath = argv[0] if argv else ""
    try:
        cwd = os.readlink(base / "cwd")
    except OSError:
        cwd = ""
    nspid = _status_field(status, "NSpid").split()
    ppid = _status_field(status, "PPid")
    m = CGROUP_RE.search(cgroup)
    full_id = m.group(2) if m else ""
    cri = _cri(cri_dir, full_id) if full_id else {}
    if not cri:
        # Not a container of this lab's node: on a machine that several labs share, the
        # host's /proc also shows other labs' pods (other "nodes") and host processes.
        return None
    image = str(cri.get("image", ""))
    repo, tag = _split_image(image) if image else ("", "")
    start_ticks = stat.rsplit(")", 1)[-1].split()[19] if ")" in stat else "0"
    return {
        "pid": pid,
        "vpid": int(nspid[-1]) if nspid else pid,
        "ppid": int(ppid) if ppid.isdigit() else 0,
        "name": comm,
        "cmdline": " ".join(argv),
        "exepath": exepath,
        "cwd": cwd,
        "start": start_ticks,
        "container_id": full_id[:12] if full_id else "host",
        "container_full_id": full_id,
        "container_name": cri.get("name"),
        "image_repository": repo or None,
        "image_tag": tag or None,
        "pod_name": cri.get("pod_name"),
        "pod_ns": cri.get("pod_namespace"),
        "pod_uid": cri.get("pod_uid") or (m.group(1).replace("_", "-") if m else None),
    }


def render(p: dict[str, Any], hostname: str, now: float) -> tuple[str, dict[str, Any]]:
    msg = f"{RULE} (name={p['name']}, cmdline={p['cmdline']}, pid={p['pid']})"
    local = datetime.fromtimestamp(now)
    ns = int(now * 1e9)
    text = f"{local.strftime('%H:%M:%S')}.{ns // 1_000_000 % 1000:03d} - Critical - {msg}"
    utc = datetime.fromtimestamp(now, UTC)
    fields = {
        "container.id": p["container_id"],
        "container.full_id": p["container_full_id"] or None,
        "container.image.repository": p["image_repository"],
        "container.image.tag": p["image_tag"],
        "container.name": p["container_name"],
        "evt.time": ns,
        "k8s.ns.name": p["pod_ns"],
        "k8s.pod.name": p["pod_name"],
        "k8s.pod.uid": p["pod_uid"],
        "proc.cmdline": p["cmdline"],
        "proc.cwd": p["cwd"],
        "proc.exepath": p["exepath"],
        "proc.name": p["name"],
        "proc.pid": p["pid"],
        "proc.ppid": p["ppid"],
        "proc.vpid": p["vpid"],
        "user.name": "root",
    }
    doc = {
        "hostname": hostname,
        "output": f"{local.strftime('%H:%M:%S')}.{ns % 1_000_000_000:09d}: Critical {msg}",
        "output_fields": fields,
        "priority": "Critical",
        "rule": RULE,
        "source": "syscall",
        "tags": TAGS,
        "time": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 1_000_000_000:09d}Z",
    }
    return text, doc


def _on_term(signum: int, frame: object) -> None:
    global stop
    stop = True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--proc", default="/host/proc")
    ap.add_argument("--cri", default="/host/run/falcoir/containers")
    ap.add_argument("--out", default=os.environ.get("FALCOIR_ALERTS_DIR", ""))
    ap.add_argument("--interval", type=float, default=0.2)
    args, _unknown = ap.parse_known_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    hostname = os.environ.get("FALCO_HOSTNAME") or socket.gethostname()
    proc, cri = Path(args.proc), Path(args.cri)
    out = Path(args.out) if args.out else None
    stamp = time.strftime("%a %b %d %H:%M:%S %Y")
    print(f"{stamp}: Falco version: 0.39.2 (falcoir lab stand-in)", flush=True)
    print(f"{stamp}: Loading rules from: /etc/falco/falco_rules.yaml", flush=True)
    print(f"{stamp}: Watching {proc} for: {', '.join(MINERS)}", flush=True)
    seen: set[tuple[int, str]] = set()
    while not stop:
        try:
            pids = [int(d) for d in os.listdir(proc) if d.isdigit()]
        except OSError:
            pids = []
        for pid in pids:
            found = inspect(proc, pid, cri)
            if found is None or (pid, found["start"]) in seen:
                continue
            seen.add((pid, found["start"]))
            text, doc = render(found, hostname, time.time())
            print(text, flush=True)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "alerts.txt", "a") as f:
                    f.write(text + "\n")
                with open(out / "alerts.jsonl", "a") as f:
                    f.write(json.dumps(doc) + "\n")
        time.sleep(args.interval)
    print(time.strftime("%a %b %d %H:%M:%S %Y") + ": SIGTERM received, exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
