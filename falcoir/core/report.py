"""The incident report: ``report.md`` and a self-contained ``report.html`` in the bundle.

Built from plain data (the alert, the target, the steps, the action log, and the
artifacts read back from the bundle): a timeline from the alert's event time to the
last action, the pod's process tree with the suspect highlighted, its connections, the
files in ``/tmp``, hashes, every action falcoir took, and tailored next steps.

Everything that came from an alert or a pod is hostile. In HTML it is escaped
(``html.escape`` after control characters are made visible), and the page carries a
Content-Security-Policy that forbids every fetch and every script: the report opens
offline and nothing in it can run. In Markdown it goes into code spans or fences
longer than any backtick run it contains, or is backslash-escaped.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from falcoir import __version__
from falcoir.core.alert import Alert
from falcoir.core.incident import ActionRecord
from falcoir.core.target import Target
from falcoir.core.text import decode_hostile, neutralize

MAX_ARTIFACT_BYTES = 256 * 1024
"""At most this much of one artifact is read back for the report."""
MAX_ROWS = 400

SUSPECT_COLOUR = "#d62839"
TREE_COLOUR = "#3465a4"


# -- reading the evidence back ------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRow:
    pid: int
    ppid: int | None
    user: str
    command: str
    suspect: bool = False


@dataclass(frozen=True)
class Evidence:
    """The artifacts the report shows, as text, by kind."""

    processes: tuple[str, str] | None = None
    """(artifact name, text)"""
    network: tuple[str, str] | None = None
    tmp: tuple[str, str] | None = None
    hashes: tuple[tuple[str, str], ...] = ()
    all: tuple[Mapping[str, Any], ...] = ()


def _kind(name: str) -> str | None:
    low = name.lower()
    base = low.rsplit("/", 1)[-1]
    if base.endswith((".meta.json", ".stderr")):
        return None
    if any(k in low for k in ("sha256", "hash")):
        return "hash"
    if any(k in base for k in ("ps", "process", "proc-list", "proc_list")) and "tmp" not in base:
        return "processes"
    if any(k in base for k in ("netstat", "network", "connections", "ss-", "ss.", "net-tcp")):
        return "network"
    if "tmp" in base and any(k in base for k in ("ls", "listing", "files", "tmp")):
        return "tmp"
    return None


def read_evidence(bundle_dir: Path | None, artifacts: Sequence[Mapping[str, Any]]) -> Evidence:
    """Pick the artifacts the report shows; later ones (full collection) win over the
    snapshot for /tmp, the snapshot (before containment) wins for processes and network."""
    found: dict[str, tuple[str, str]] = {}
    hashes: list[tuple[str, str]] = []
    for art in artifacts:
        name = str(art.get("name") or "")
        kind = _kind(name)
        if kind is None or bundle_dir is None or not art.get("path"):
            continue
        if str(art.get("status") or "ok") not in ("ok", "truncated"):
            continue
        text = _read(bundle_dir, str(art["path"]))
        if text is None or not text.strip():
            continue
        if kind == "hash":
            hashes.append((name, text))
        elif kind == "processes" and name.endswith(".json"):
            # /proc-derived, with parent pids: better than ps for the tree; the first
            # (the snapshot, before containment) wins.
            found.setdefault("processes-json", (name, text))
        elif kind == "network" and name.endswith(".json"):
            found.setdefault("network-json", (name, _connections_text(text)))
        elif kind == "tmp" or kind not in found:
            found[kind] = (name, text)
    if "processes-json" in found:
        found["processes"] = found["processes-json"]
    if "network" not in found and "network-json" in found:
        found["network"] = found["network-json"]
    return Evidence(
        processes=found.get("processes"),
        network=found.get("network"),
        tmp=found.get("tmp"),
        hashes=tuple(hashes),
        all=tuple(artifacts),
    )


def _connections_text(text: str) -> str:
    """``network/connections.json`` (sockets mapped to processes) as a table."""
    try:
        rows = json.loads(text)
    except ValueError:
        return text
    if not isinstance(rows, list):
        return text
    lines = ["PROTO  LOCAL                    REMOTE                   STATE        PID/PROCESS"]
    for r in rows[:MAX_ROWS]:
        if not isinstance(r, dict):
            continue
        procs = ",".join(
            f"{pid}/{name}"
            for pid, name in zip(r.get("pids") or [], r.get("processes") or [], strict=False)
        ) or ",".join(str(p) for p in r.get("pids") or [])
        lines.append(
            f"{r.get('proto', '')!s:<6} {r.get('local', '')!s:<24} {r.get('remote', '')!s:<24} "
            f"{r.get('state', '')!s:<12} {procs}"
        )
    return "\n".join(lines)


def _read(bundle_dir: Path, rel: str) -> str | None:
    root = bundle_dir.resolve()
    path = (bundle_dir / rel).resolve()
    if root not in path.parents or not path.is_file():
        return None
    with path.open("rb") as fh:
        return decode_hostile(fh.read(MAX_ARTIFACT_BYTES))


_HEADER_PID = ("PID",)
_HEADER_PPID = ("PPID",)
_HEADER_USER = ("USER", "UID", "RUSER")
_HEADER_CMD = ("COMMAND", "CMD", "ARGS")


def _processes_from_json(text: str) -> list[ProcessRow] | None:
    """``processes/processes.json``: ``[{pid, ppid, comm, cmdline[], uid...}]``."""
    try:
        rows = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rows, list):
        return None
    out = []
    for r in rows[:MAX_ROWS]:
        if not isinstance(r, dict) or not isinstance(r.get("pid"), int):
            continue
        cmd = r.get("cmdline")
        command = " ".join(str(c) for c in cmd) if isinstance(cmd, list) and cmd else ""
        if not command:
            command = f"[{r.get('comm') or '?'}]"
        ppid = r.get("ppid")
        uid = r.get("uid")
        out.append(
            ProcessRow(
                int(r["pid"]),
                ppid if isinstance(ppid, int) else None,
                "" if uid is None else f"uid={uid}",
                command,
            )
        )
    return out


def parse_processes(text: str) -> list[ProcessRow]:
    """Rows of a ``ps`` listing with a header line (``ps auxww``, ``ps -ef``,
    ``ps -eo pid,ppid,user,args``, busybox ``ps``); the command is the last column.
    A JSON list (falcoir's own ``/proc`` reading) is accepted too."""
    if text.lstrip().startswith("["):
        rows = _processes_from_json(text)
        if rows is not None:
            return rows
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = lines[0].split()
    upper = [h.upper() for h in header]
    try:
        pid_i = next(i for i, h in enumerate(upper) if h in _HEADER_PID)
    except StopIteration:
        return []
    ppid_i = next((i for i, h in enumerate(upper) if h in _HEADER_PPID), None)
    user_i = next((i for i, h in enumerate(upper) if h in _HEADER_USER), None)
    cmd_i = next((i for i, h in enumerate(upper) if h in _HEADER_CMD), len(header) - 1)
    rows = []
    for line in lines[1 : MAX_ROWS + 1]:
        parts = line.split(None, cmd_i)
        if len(parts) <= max(pid_i, cmd_i, ppid_i or 0):
            continue
        try:
            pid = int(parts[pid_i])
            ppid = int(parts[ppid_i]) if ppid_i is not None else None
        except ValueError:
            continue
        user = parts[user_i] if user_i is not None else ""
        rows.append(ProcessRow(pid, ppid, user, parts[cmd_i].strip()))
    return rows


def mark_suspect(
    rows: Sequence[ProcessRow], alert: Alert | None, target: Target | None
) -> list[ProcessRow]:
    """Flag the alert's process: by in-container pid, else by cmdline, else by name."""
    vpid = target.vpid if target else None
    cmdline = (alert.process.cmdline if alert else None) or ""
    name = (alert.process.name if alert else None) or ""

    def by_pid(r: ProcessRow) -> bool:
        return vpid is not None and r.pid == vpid

    def by_cmd(r: ProcessRow) -> bool:
        return bool(cmdline) and r.command.strip() == cmdline.strip()

    def by_name(r: ProcessRow) -> bool:
        first = r.command.split(" ", 1)[0] if r.command else ""
        return bool(name) and first.rsplit("/", 1)[-1].strip("[]") == name

    for test in (by_pid, by_cmd, by_name):
        hits = {r.pid for r in rows if test(r)}
        if hits:
            return [ProcessRow(r.pid, r.ppid, r.user, r.command, r.pid in hits) for r in rows]
    return list(rows)


@dataclass
class TreeNode:
    row: ProcessRow
    children: list[TreeNode] = field(default_factory=list)


def build_tree(rows: Sequence[ProcessRow]) -> list[TreeNode]:
    nodes = {r.pid: TreeNode(r) for r in rows}
    roots: list[TreeNode] = []
    for r in rows:
        parent = nodes.get(r.ppid) if r.ppid is not None and r.ppid != r.pid else None
        (parent.children if parent is not None else roots).append(nodes[r.pid])
    return roots


# -- next steps ---------------------------------------------------------------------------


def next_steps(
    alert: Alert | None,
    target: Target | None,
    quarantine: Mapping[str, Any] | None,
    delete: Mapping[str, Any] | None,
) -> list[tuple[str, str, str | None]]:
    """(title, explanation, command or manifest) tailored to this incident."""
    ns = target.namespace if target else "<namespace>"
    out: list[tuple[str, str, str | None]] = []
    verified = (quarantine or {}).get("verified") or {}
    deleted = bool(delete) and not (delete or {}).get("dry_run")
    top = target.top_owner if target else None
    if quarantine and verified.get("egress_blocked") is False:
        out.append(
            (
                "Containment was not verified",
                "A connection from inside the pod still succeeded after the quarantine "
                "policy was applied: the network plugin may not enforce NetworkPolicies "
                "(flannel alone does not) or keeps established connections. Delete the "
                "pod or cordon and drain its node.",
                f"kubectl get networkpolicy -n {_q(ns)}",
            )
        )
    if top is not None and top.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        res = top.kind.lower()
        out.append(
            (
                f"Review the {top.kind} {top.name}",
                f"Its template will start the same containers again"
                f"{' (a replacement was already created)' if deleted else ''}. If the "
                "template or the image is the backdoor, scale it to zero until it is "
                "fixed.",
                f"kubectl get {res} {_q(top.name)} -n {_q(ns)} -o yaml\n"
                + (
                    f"kubectl scale {res} {_q(top.name)} -n {_q(ns)} --replicas=0"
                    if top.kind != "DaemonSet"
                    else ""
                ),
            )
        )
    out.append(
        (
            f"Deny egress by default in namespace {ns}",
            "Mining needs outbound connections to a pool. Allow only what the workloads "
            "need (DNS here; add the rest explicitly).",
            _egress_policy(ns),
        )
    )
    out.append(
        (
            "Enforce Pod Security",
            "The restricted profile refuses root, privilege escalation and host access. "
            "Check what would break first with a dry run.",
            f"kubectl label --dry-run=server --overwrite ns {_q(ns)} "
            "pod-security.kubernetes.io/enforce=restricted\n"
            f"kubectl label --overwrite ns {_q(ns)} pod-security.kubernetes.io/enforce=restricted",
        )
    )
    exe = (alert.process.exepath or alert.process.cmdline or "") if alert else ""
    exe = exe.split(" ", 1)[0]
    writable = ("/tmp", "/dev/shm", "/var/tmp")  # noqa: S108 - names, not files we use
    where = next((d for d in writable if exe.startswith(d + "/")), writable[0])
    out.append(
        (
            f"Block execution from {where}",
            f"The suspect ran {exe or 'a binary'} from a writable directory. Make the "
            "root filesystem read-only (readOnlyRootFilesystem: true) with an emptyDir "
            f"for {where} if the app needs one, and alert on any execve from there.",
            "- rule: Execution from a writable temporary directory\n"
            "  desc: A process was started from /tmp, /dev/shm or /var/tmp in a container\n"
            "  condition: >\n"
            "    spawned_process and container and\n"
            "    (proc.exepath startswith /tmp/ or proc.exepath startswith /dev/shm/ or\n"
            "     proc.exepath startswith /var/tmp/)\n"
            "  output: Execution from a temporary directory (proc.exepath=%proc.exepath\n"
            "    cmdline=%proc.cmdline pid=%proc.pid container.id=%container.id\n"
            "    k8s.ns.name=%k8s.ns.name k8s.pod.name=%k8s.pod.name)\n"
            "  priority: CRITICAL\n"
            "  tags: [container, mitre_execution]",
        )
    )
    image = target.image if target and target.image else None
    out.append(
        (
            f"Rescan the image {image}" if image else "Rescan the image",
            "Scan the image the pod ran for known malware and vulnerabilities, and pin "
            "it by digest in the workload.",
            f"trivy image {_q(image)}" if image else None,
        )
    )
    out.append(
        (
            "Rotate what the pod could read",
            "Service account tokens, mounted secrets and any credentials in its "
            "environment should be treated as leaked.",
            f"kubectl get pod -n {_q(ns)} -o yaml  # see serviceAccountName, volumes, env",
        )
    )
    if quarantine and not deleted and target is not None:
        out.append(
            (
                "The pod is still running, quarantined",
                "It is kept for further investigation. Delete it when done, or release "
                "it if this was a false positive.",
                f"falcoir delete --pod {_q(target.namespace + '/' + target.pod)}\n"
                f"falcoir release --pod {_q(target.namespace + '/' + target.pod)}",
            )
        )
    return out


def _q(text: str) -> str:
    return shlex.quote(neutralize(text))


def _egress_policy(ns: str) -> str:
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        "  name: default-deny-egress\n"
        f"  namespace: {neutralize(ns)}\n"
        "spec:\n"
        "  podSelector: {}\n"
        "  policyTypes: [Egress]\n"
        "  egress:\n"
        "  - to:\n"
        "    - namespaceSelector: {}\n"
        "      podSelector:\n"
        "        matchLabels: {k8s-app: kube-dns}\n"
        "    ports:\n"
        "    - {protocol: UDP, port: 53}\n"
        "    - {protocol: TCP, port: 53}"
    )


# -- the model both formats render --------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    time: str
    what: str
    detail: str = ""
    outcome: str = ""


def _alert_time(alert: Alert | None) -> str | None:
    if alert is None:
        return None
    if alert.event_time_ns:
        ts = datetime.fromtimestamp(alert.event_time_ns / 1e9, UTC)
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return alert.time


def timeline(
    alert: Alert | None, steps: Sequence[Mapping[str, Any]], actions: Sequence[ActionRecord]
) -> list[TimelineEntry]:
    out = []
    when = _alert_time(alert)
    if alert is not None:
        out.append(
            TimelineEntry(
                when or "?",
                f"Falco alert: {alert.rule or alert.message or 'alert'}",
                alert.priority or "",
            )
        )
    for s in steps:
        if s.get("ended_at"):
            dur = s.get("duration_s")
            took = f" in {dur:.2f} s" if isinstance(dur, int | float) else ""
            out.append(
                TimelineEntry(
                    s["ended_at"], f"step {s['name']}{took}", s.get("detail") or "", s["status"]
                )
            )
    for a in actions:
        obj = f"{a.kind} {a.namespace + '/' if a.namespace else ''}{a.name}"
        out.append(
            TimelineEntry(
                a.time,
                f"{a.action} {obj}" + (" (dry run)" if a.dry_run else ""),
                a.detail,
                a.outcome,
            )
        )
    head, rest = out[:1], out[1:]
    if alert is None:
        head, rest = [], out
    rest.sort(key=lambda e: e.time)
    # An alert time without a date (Falco's text output) stays first: it is when it began.
    return head + rest


# -- Markdown -----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>~])")


def md_text(value: object) -> str:
    """Hostile text as inert Markdown inline text (one line)."""
    text = neutralize("" if value is None else str(value))
    return _MD_SPECIAL.sub(r"\\\1", text).replace("&", "&amp;")


def md_code(value: object) -> str:
    """Hostile text in a code span."""
    text = neutralize("" if value is None else str(value))
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_block(text: str, lang: str = "") -> str:
    body = neutralize(text, keep_newlines=True).rstrip("\n")
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{body}\n{fence}"


def _tree_lines(nodes: Iterable[TreeNode], prefix: str = "") -> list[str]:
    out = []
    nodes = list(nodes)
    for i, n in enumerate(nodes):
        last = i == len(nodes) - 1
        mark = "└─ " if last else "├─ "
        flag = "  <== SUSPECT" if n.row.suspect else ""
        out.append(f"{prefix}{mark}{n.row.pid} {n.row.user} {n.row.command}{flag}")
        out.extend(_tree_lines(n.children, prefix + ("   " if last else "│  ")))
    return out


def render_markdown(doc: Report) -> str:
    L: list[str] = []
    add = L.append
    add(f"# Incident {md_text(doc.incident or 'report')}")
    add("")
    add(f"*{md_text(doc.headline)}*")
    add("")
    add("**" + " · ".join(md_text(t) for t, _ in doc.badges) + "**")
    add("")
    for k, v in doc.facts:
        add(f"- **{md_text(k)}**: {md_code(v)}")
    add("")
    add("## Timeline")
    add("")
    add("| time (UTC) | what | outcome | detail |")
    add("|---|---|---|---|")
    for e in doc.timeline:
        add(
            f"| {md_code(e.time)} | {md_text(e.what)} | "
            f"{md_text(e.outcome)} | {md_text(e.detail)} |"
        )
    add("")
    add("## Process tree")
    add("")
    if doc.tree:
        add(f"From `{md_text(doc.processes_from)}`; the suspect is marked `<== SUSPECT`.")
        add("")
        add(md_block("\n".join(_tree_lines(doc.tree))))
    else:
        add("No process listing was captured.")
    for title, section in (("Connections", doc.network), ("Files in /tmp", doc.tmp)):
        add("")
        add(f"## {title}")
        add("")
        if section is None:
            add("Not captured.")
        else:
            add(f"From `{md_text(section[0])}`:")
            add("")
            add(md_block(section[1]))
    add("")
    add("## Hashes")
    add("")
    for name, text in doc.hashes:
        add(f"From `{md_text(name)}`:")
        add("")
        add(md_block(text))
        add("")
    add("| artifact | status | bytes | sha256 |")
    add("|---|---|---|---|")
    for a in doc.artifacts:
        add(
            f"| {md_code(a.get('name'))} | {md_text(a.get('status'))} | "
            f"{md_text(a.get('bytes'))} | {md_code(a.get('sha256'))} |"
        )
    add("")
    add("## Actions falcoir took")
    add("")
    if doc.actions:
        add("| time (UTC) | action | object | outcome | detail |")
        add("|---|---|---|---|---|")
        for rec in doc.actions:
            obj = f"{rec.kind} {rec.namespace + '/' if rec.namespace else ''}{rec.name}"
            act = rec.action + (" (dry run)" if rec.dry_run else "")
            add(
                f"| {md_code(rec.time)} | {md_text(act)} | {md_code(obj)} | "
                f"{md_text(rec.outcome)} | {md_text(rec.detail)} |"
            )
    else:
        add("falcoir changed nothing in the cluster.")
    add("")
    add("## Steps")
    add("")
    add("| step | status | seconds | detail |")
    add("|---|---|---|---|")
    for s in doc.steps:
        dur = s.get("duration_s")
        add(
            f"| {md_text(s.get('name'))} | {md_text(s.get('status'))} | "
            f"{'' if dur is None else f'{dur:.2f}'} | {md_text(s.get('detail'))} |"
        )
    add("")
    add("## What to do next")
    add("")
    for i, (title, text, cmd) in enumerate(doc.next_steps, 1):
        add(f"{i}. **{md_text(title)}**: {md_text(text)}")
        if cmd:
            add("")
            add("\n".join("   " + ln for ln in md_block(cmd).splitlines()))
        add("")
    add(f"---\nWritten by falcoir {md_text(__version__)} at {md_text(doc.written)}.")
    return "\n".join(L) + "\n"


# -- HTML ---------------------------------------------------------------------------------


def h(value: object) -> str:
    """Hostile text as inert HTML."""
    return html.escape(neutralize("" if value is None else str(value)), quote=True)


def hblock(value: str) -> str:
    return html.escape(neutralize(value, keep_newlines=True), quote=True)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2129;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dce2;padding-bottom:4px}
.headline{color:#444;margin:0 0 12px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.ok{background:#d9f2dd;color:#17622a}
.bad{background:#fbd9dc;color:#8a1420}
.warn{background:#fff0c2;color:#6b5200}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e1e4e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.mono,code{font-family:ui-monospace,monospace;word-break:break-all}
td.time{font-family:ui-monospace,monospace;white-space:nowrap}
pre{background:#fff;border:1px solid #e1e4e8;padding:8px;overflow:auto;font-size:12px}
pre .hit{background:#ffdede;color:#8a1420;font-weight:600}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:22px}
ul.tree{padding:8px;background:#fff;border:1px solid #e1e4e8}
ul.tree li{margin:3px 0}
.proc{display:inline-block;font-family:ui-monospace,monospace;font-size:13px;
  padding:2px 8px;border-left:6px solid TREE_COLOUR;background:#eef3fb}
.proc .pid{font-weight:700;margin-right:8px}
.proc .user{color:#555;margin-right:8px}
.proc.suspect{border-left:14px solid SUSPECT_COLOUR;background:#ffdede;color:#5c0b14;
  font-weight:700}
.proc.suspect::after{content:'suspect';margin-left:10px;font-size:11px;
  background:SUSPECT_COLOUR;color:#fff;padding:1px 6px;border-radius:8px}
ol.next li{margin-bottom:12px}
footer{color:#777;font-size:12px;margin-top:32px}
""".replace("SUSPECT_COLOUR", SUSPECT_COLOUR).replace("TREE_COLOUR", TREE_COLOUR)

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def _html_tree(nodes: Sequence[TreeNode]) -> str:
    parts = []
    for n in nodes:
        cls = "proc suspect" if n.row.suspect else "proc"
        parts.append(
            f'<li><span class="{cls}"><span class="pid">{n.row.pid}</span>'
            f'<span class="user">{h(n.row.user)}</span>{h(n.row.command)}</span>'
        )
        if n.children:
            parts.append(f"<ul>{_html_tree(n.children)}</ul>")
        parts.append("</li>")
    return "".join(parts)


def _pre(text: str, hits: Sequence[str]) -> str:
    lines = []
    for line in text.splitlines()[:MAX_ROWS]:
        esc = hblock(line)
        if any(x and x in line for x in hits):
            esc = f'<span class="hit">{esc}</span>'
        lines.append(esc)
    return "<pre>" + "\n".join(lines) + "</pre>"


def render_html(doc: Report) -> str:
    P: list[str] = []
    add = P.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    add(f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">')
    add('<meta name="referrer" content="no-referrer">')
    add(f"<title>falcoir incident {h(doc.incident or '')}</title>")
    add(f"<style>{_CSS}</style></head><body><main>")
    add(f"<h1>Incident {h(doc.incident or '')}</h1>")
    add(f'<p class="headline">{h(doc.headline)}</p>')
    add("<p>" + " ".join(f'<span class="badge {c}">{h(t)}</span>' for t, c in doc.badges) + "</p>")
    add('<dl class="facts">')
    for k, v in doc.facts:
        add(f"<dt>{h(k)}</dt><dd>{h(v)}</dd>")
    add("</dl>")
    add(
        '<h2 id="timeline">Timeline</h2><table><tr><th>time (UTC)</th><th>what</th>'
        "<th>outcome</th><th>detail</th></tr>"
    )
    for e in doc.timeline:
        add(
            f'<tr><td class="time">{h(e.time)}</td><td>{h(e.what)}</td>'
            f"<td>{h(e.outcome)}</td><td>{h(e.detail)}</td></tr>"
        )
    add("</table>")
    add('<h2 id="processes">Process tree</h2>')
    if doc.tree:
        add(f"<p>From <code>{h(doc.processes_from)}</code>; the suspect is highlighted.</p>")
        add(f'<ul class="tree">{_html_tree(doc.tree)}</ul>')
    else:
        add("<p>No process listing was captured.</p>")
    for anchor, title, section in (
        ("connections", "Connections", doc.network),
        ("tmp", "Files in /tmp", doc.tmp),
    ):
        add(f'<h2 id="{anchor}">{title}</h2>')
        if section is None:
            add("<p>Not captured.</p>")
        else:
            add(f"<p>From <code>{h(section[0])}</code>:</p>")
            add(_pre(section[1], doc.hits))
    add('<h2 id="hashes">Hashes</h2>')
    for name, text in doc.hashes:
        add(f"<p>From <code>{h(name)}</code>:</p>" + _pre(text, ()))
    add("<table><tr><th>artifact</th><th>status</th><th>bytes</th><th>sha256</th></tr>")
    for a in doc.artifacts:
        add(
            f'<tr><td class="mono">{h(a.get("name"))}</td><td>{h(a.get("status"))}</td>'
            f'<td>{h(a.get("bytes"))}</td><td class="mono">{h(a.get("sha256"))}</td></tr>'
        )
    add("</table>")
    add('<h2 id="actions">Actions falcoir took</h2>')
    if doc.actions:
        add(
            "<table><tr><th>time (UTC)</th><th>action</th><th>object</th><th>outcome</th>"
            "<th>detail</th></tr>"
        )
        for rec in doc.actions:
            obj = f"{rec.kind} {rec.namespace + '/' if rec.namespace else ''}{rec.name}"
            act = rec.action + (" (dry run)" if rec.dry_run else "")
            add(
                f'<tr><td class="time">{h(rec.time)}</td><td>{h(act)}</td>'
                f'<td class="mono">{h(obj)}</td><td>{h(rec.outcome)}</td>'
                f"<td>{h(rec.detail)}</td></tr>"
            )
        add("</table>")
    else:
        add("<p>falcoir changed nothing in the cluster.</p>")
    add(
        '<h2 id="steps">Steps</h2><table><tr><th>step</th><th>status</th><th>seconds</th>'
        "<th>detail</th></tr>"
    )
    for s in doc.steps:
        dur = s.get("duration_s")
        add(
            f"<tr><td>{h(s.get('name'))}</td><td>{h(s.get('status'))}</td>"
            f"<td>{'' if dur is None else f'{dur:.2f}'}</td><td>{h(s.get('detail'))}</td></tr>"
        )
    add("</table>")
    add('<h2 id="next">What to do next</h2><ol class="next">')
    for title, text, cmd in doc.next_steps:
        add(f"<li><strong>{h(title)}</strong>: {h(text)}")
        if cmd:
            add(f"<pre>{hblock(cmd)}</pre>")
        add("</li>")
    add("</ol>")
    add(
        f"<footer>Written by falcoir {h(__version__)} at {h(doc.written)}. "
        "This page loads nothing from the network and runs no scripts.</footer>"
    )
    add("</main></body></html>")
    return "\n".join(P) + "\n"


# -- assembling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    incident: str | None
    headline: str
    badges: tuple[tuple[str, str], ...]
    facts: tuple[tuple[str, str], ...]
    timeline: tuple[TimelineEntry, ...]
    tree: tuple[TreeNode, ...]
    processes_from: str
    network: tuple[str, str] | None
    tmp: tuple[str, str] | None
    hashes: tuple[tuple[str, str], ...]
    artifacts: tuple[Mapping[str, Any], ...]
    actions: tuple[ActionRecord, ...]
    steps: tuple[Mapping[str, Any], ...]
    next_steps: tuple[tuple[str, str, str | None], ...]
    hits: tuple[str, ...]
    written: str


def build(data: Mapping[str, Any]) -> Report:
    """The report model from the orchestrator's plain data (see ``respond``)."""
    alert: Alert | None = data.get("alert")
    target: Target | None = data.get("target")
    quarantine = data.get("quarantine")
    delete = data.get("delete")
    artifacts = list(data.get("artifacts") or [])
    ev = read_evidence(data.get("bundle_dir"), artifacts)
    rows = mark_suspect(parse_processes(ev.processes[1]), alert, target) if ev.processes else []
    tree = build_tree(rows)
    verified = ((quarantine or {}).get("verified") or {}).get("egress_blocked")
    badges: list[tuple[str, str]] = []
    if quarantine:
        if verified and ((quarantine or {}).get("verified") or {}).get("trusted") is True:
            badges.append(("egress verified blocked", "ok"))
        elif verified:
            badges.append(("egress blocked (in-pod probe, untrusted)", "ok"))
        elif quarantine.get("dry_run"):
            badges.append(("quarantine: dry run", "warn"))
        else:
            badges.append(("egress NOT verified blocked", "bad"))
    else:
        badges.append(("not quarantined", "warn"))
    if delete and not delete.get("dry_run"):
        badges.append(("pod deleted", "ok"))
    else:
        badges.append(("pod kept", "warn"))
    if data.get("interrupted"):
        badges.append(("interrupted (Ctrl-C)", "bad"))
    failed = [s for s in data.get("steps") or [] if s.get("status") == "failed"]
    for s in failed:
        badges.append((f"{s.get('name')} failed", "bad"))
    facts: list[tuple[str, str]] = []
    if alert is not None:
        facts += [
            ("rule", alert.rule or f"{alert.message or '?'} (text alert: its message)"),
            ("priority", alert.priority or ""),
            ("alert time", _alert_time(alert) or ""),
            ("process", alert.process.cmdline or alert.process.name or ""),
            ("host pid", "" if alert.process.pid is None else str(alert.process.pid)),
        ]
    if target is not None:
        facts += [
            ("pod", f"{target.namespace}/{target.pod}"),
            ("container", target.container or ""),
            ("node", target.node or ""),
            ("pod uid", target.pod_uid or ""),
            ("container id", target.container_id or ""),
            ("pid in container", "" if target.vpid is None else str(target.vpid)),
            ("owner", " -> ".join(f"{o.kind} {o.name}" for o in target.owner) or "none"),
            ("image", target.image or ""),
            ("located by", target.method.value),
        ]
    if quarantine and quarantine.get("policy"):
        pol = quarantine["policy"]
        facts.append(("quarantine policy", f"{pol.get('namespace')}/{pol.get('name')}"))
    if delete:
        facts.append(("deletion", str(delete.get("owner_effect") or delete.get("message") or "")))
    facts += [
        ("operator", str(data.get("operator") or "")),
        ("cluster context", str(data.get("context") or "")),
    ]
    if data.get("bundle_dir"):
        facts.append(("bundle", str(data["bundle_dir"])))
    hits: list[str] = []
    if target is not None and target.vpid is not None:
        hits.append(f" {target.vpid}/")
    if alert is not None and alert.process.name:
        hits.append(alert.process.name)
    port = re.search(r":(\d{2,5})\b", (alert.process.cmdline or "") if alert else "")
    if port:
        hits.append(f":{port.group(1)} ")
    where = f"{target.namespace}/{target.pod}" if target else "an unknown pod"
    what = (alert.rule or alert.message) if alert else None
    headline = f"{what or 'Falco alert'} in {where}"
    return Report(
        incident=data.get("incident"),
        headline=headline,
        badges=tuple(badges),
        facts=tuple(facts),
        timeline=tuple(timeline(alert, data.get("steps") or [], data.get("actions") or [])),
        tree=tuple(tree),
        processes_from=ev.processes[0] if ev.processes else "",
        network=ev.network,
        tmp=ev.tmp,
        hashes=ev.hashes,
        artifacts=tuple(artifacts),
        actions=tuple(data.get("actions") or ()),
        steps=tuple(data.get("steps") or ()),
        next_steps=tuple(next_steps(alert, target, quarantine, delete)),
        hits=tuple(hits),
        written=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def render(data: Mapping[str, Any]) -> dict[str, bytes]:
    """``{"report.md": ..., "report.html": ...}`` for the bundle."""
    doc = build(data)
    return {
        "report.md": render_markdown(doc).encode("utf-8"),
        "report.html": render_html(doc).encode("utf-8"),
    }
