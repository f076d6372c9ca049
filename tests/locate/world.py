"""A fake cluster shaped like the lab scenario, for the locate tests.

``World`` extends ``FakeCluster`` with builders for Deployments, ReplicaSets and pods,
Falco DaemonSet pods that answer ``cat /host/proc/<pid>/...`` from a per-node process
table (as a real Falco pod with the host's /proc mounted would), and containers that
answer the process-listing script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from falcoir.core.alert import Alert, Container, K8s, Process
from falcoir.core.gateway import DEPLOYMENTS, PODS, REPLICA_SETS
from falcoir.core.locate.scan import PS_SCRIPT
from tests.fakes import FakeCluster

XMRIG_ARGV = ("/tmp/xmrig", "-o", "pool.example.com:3333", "-u", "wallet_address", "-p", "x")
XMRIG_CMDLINE = " ".join(XMRIG_ARGV)


def cid(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


@dataclass
class HostProc:
    name: str
    argv: tuple[str, ...]
    cgroup: str
    nspid: tuple[int, ...]

    def status(self, pid: int) -> str:
        return (
            f"Name:\t{self.name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\n"
            f"Ngid:\t0\nPid:\t{pid}\nPPid:\t1\nTracerPid:\t0\n"
            f"NSpid:\t{chr(9).join(str(x) for x in self.nspid)}\n"
            "Threads:\t1\nnonvoluntary_ctxt_switches:\t3\n"
        )


def systemd_cgroup(pod_uid: str, container_id: str, qos: str = "besteffort") -> str:
    u = pod_uid.replace("-", "_")
    return (
        f"0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/"
        f"cri-containerd-{container_id}.scope\n"
    )


@dataclass
class World(FakeCluster):
    host_procs: dict[str, dict[int, HostProc]] = field(default_factory=dict)
    container_procs: dict[tuple[str, str, str], list[tuple[int, str, tuple[str, ...]]]] = field(
        default_factory=dict
    )

    # -- builders --------------------------------------------------------------------
    def deployment(self, ns: str, name: str, rs_hash: str, labels: dict[str, str]) -> str:
        d = self.add(
            DEPLOYMENTS,
            {
                "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"matchLabels": labels}},
            },
        )
        rs_name = f"{name}-{rs_hash}"
        self.add(
            REPLICA_SETS,
            {
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": d["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {"selector": {"matchLabels": {**labels, "pod-template-hash": rs_hash}}},
            },
        )
        return rs_name

    def pod(
        self,
        ns: str,
        name: str,
        node: str,
        containers: Sequence[str] = ("app",),
        *,
        labels: dict[str, str] | None = None,
        owner: tuple[str, str] | None = None,
        phase: str = "Running",
        uid: str | None = None,
        init: Sequence[str] = (),
        scheme: str = "containerd",
    ) -> dict:
        meta: dict = {"name": name, "namespace": ns, "labels": dict(labels or {})}
        if uid:
            meta["uid"] = uid
        if owner:
            kind, oname = owner
            res = REPLICA_SETS if kind == "ReplicaSet" else None
            ouid = (
                self.objects[(res.plural, ns, oname)]["metadata"]["uid"]
                if res and (res.plural, ns, oname) in self.objects
                else f"uid-{oname}"
            )
            meta["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "name": oname,
                    "uid": ouid,
                    "controller": True,
                }
            ]

        def st(c: str) -> dict:
            return {
                "name": c,
                "containerID": f"{scheme}://{cid(ns + name + c)}",
                "image": f"img/{c}:1",
                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
                if phase == "Running"
                else {"terminated": {"exitCode": 0}},
            }

        return self.add(
            PODS,
            {
                "metadata": meta,
                "spec": {
                    "nodeName": node,
                    "initContainers": [{"name": c, "image": f"img/{c}:1"} for c in init],
                    "containers": [{"name": c, "image": f"img/{c}:1"} for c in containers],
                },
                "status": {
                    "phase": phase,
                    "initContainerStatuses": [st(c) for c in init],
                    "containerStatuses": [st(c) for c in containers],
                },
            },
        )

    def falco(
        self,
        node: str,
        name: str | None = None,
        *,
        host_proc: str = "/host/proc",
        labels: dict[str, str] | None = None,
        ns: str = "falco",
    ) -> str:
        name = name or f"falco-{node}"
        self.pod(
            ns,
            name,
            node,
            ("falco",),
            labels=labels
            or {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": "falco"},
        )
        self.host_procs.setdefault(node, {})
        procs = self.host_procs[node]

        def handler(argv: Sequence[str], stdin: bytes | None) -> tuple[bytes, bytes, int | None]:
            if not argv or argv[0] != "cat":
                return b"", b"", None
            out, err, code = b"", b"", 0
            for path in argv[1:]:
                data = self._host_file(procs, host_proc, path)
                if data is None:
                    err += f"cat: {path}: No such file or directory\n".encode()
                    code = 1
                else:
                    out += data
            return out, err, code

        self.on_exec(ns, name, "falco", handler)
        return name

    @staticmethod
    def _host_file(procs: dict[int, HostProc], host_proc: str, path: str) -> bytes | None:
        prefix = host_proc.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        parts = path[len(prefix) :].split("/")
        if len(parts) != 2 or not parts[0].isdigit():
            return None
        pid, file = int(parts[0]), parts[1]
        if pid == 1:
            p = HostProc("systemd", ("/sbin/init",), "0::/init.scope\n", (1,))
        elif pid in procs:
            p = procs[pid]
        else:
            return None
        if file == "status":
            return p.status(pid).encode()
        if file == "cgroup":
            return p.cgroup.encode()
        if file == "cmdline":
            return b"\0".join(a.encode() for a in p.argv) + b"\0"
        return None

    def run_process(
        self,
        node: str,
        host_pid: int,
        pod: dict,
        container: str,
        vpid: int,
        argv: tuple[str, ...],
        name: str | None = None,
    ) -> None:
        """A process in a pod's container: visible in the node's /proc and inside."""
        meta = pod["metadata"]
        c = cid(meta["namespace"] + meta["name"] + container)
        self.host_procs.setdefault(node, {})[host_pid] = HostProc(
            name or argv[0].rsplit("/", 1)[-1][:15],
            argv,
            systemd_cgroup(meta["uid"], c),
            (host_pid, vpid),
        )
        key = (meta["namespace"], meta["name"], container)
        first = key not in self.container_procs
        self.container_procs.setdefault(key, []).append(
            (vpid, name or argv[0].rsplit("/", 1)[-1][:15], argv)
        )
        if first:
            self.on_exec(key[0], key[1], container, self._ps_handler(key))

    def host_process(self, node: str, host_pid: int, argv: tuple[str, ...], cgroup: str) -> None:
        self.host_procs.setdefault(node, {})[host_pid] = HostProc(
            argv[0].rsplit("/", 1)[-1][:15], argv, cgroup, (host_pid,)
        )

    def _ps_handler(self, key: tuple[str, str, str]):  # type: ignore[no-untyped-def]
        def handler(argv: Sequence[str], stdin: bytes | None) -> tuple[bytes, bytes, int | None]:
            if list(argv[:3]) == ["sh", "-c", PS_SCRIPT]:
                lines = [
                    f"{pid}\t{name}\t" + "\x1f".join(a) + "\x1f"
                    for pid, name, a in self.container_procs.get(key, [])
                ]
                lines.append("99\tsh\tsh\x1f-c\x1fscript\x1ffalcoir-ps\x1f")
                return ("\n".join(lines) + "\n").encode(), b"", 0
            return b"", b"", None

        return handler

    def exec_argvs(self) -> list[tuple[str, ...]]:
        return [c[4:] for c in self.calls if c[0] == "exec"]

    def count(self, kind: str) -> int:
        return sum(1 for c in self.calls if c[0] == kind)


def scenario(nodes: int = 3, *, falco_everywhere: bool = True) -> tuple[World, dict]:
    """The cryptominer scenario on ``lab-node`` plus ``nodes - 1`` other nodes; pid
    12345 also exists on node-2 (as nginx), as pids repeat across nodes."""
    w = World()
    rs = w.deployment("default", "cryptominer-demo", "7d9f8b6c5", {"app": "cryptominer"})
    pod = w.pod(
        "default",
        f"{rs}-abc12",
        "lab-node",
        ("miner",),
        labels={"app": "cryptominer", "pod-template-hash": "7d9f8b6c5"},
        owner=("ReplicaSet", rs),
    )
    w.run_process("lab-node", 12345, pod, "miner", 7, XMRIG_ARGV)
    w.falco("lab-node")
    for i in range(2, nodes + 1):
        node = f"node-{i}"
        web = w.pod("web", f"web-{i}", node, ("nginx",), labels={"app": "web"})
        if falco_everywhere:
            w.falco(node)
        w.run_process(node, 12345, web, "nginx", 1, ("nginx", "-g", "daemon off;"))
    return w, pod


def text_alert(**proc: object) -> Alert:
    defaults: dict = {"name": "xmrig", "cmdline": XMRIG_CMDLINE, "pid": 12345}
    defaults.update(proc)
    return Alert(
        raw="08:30:00.123 - Critical - ...", source_format="text", process=Process(**defaults)
    )


def json_alert(
    *,
    container_id: str | None = None,
    ns: str | None = None,
    pod: str | None = None,
    pod_uid: str | None = None,
    node: str | None = "lab-node",
    pid: int | None = 12345,
    container_name: str | None = None,
    vpid: int | None = None,
) -> Alert:
    return Alert(
        raw="{}",
        source_format="json",
        process=Process(name="xmrig", cmdline=XMRIG_CMDLINE, pid=pid, vpid=vpid),
        container=Container(id=container_id, name=container_name),
        k8s=K8s(namespace=ns, pod=pod, pod_uid=pod_uid),
        node=node,
    )
