"""Server-side ``meta.k8s.io/v1`` Tables, the way ``kubectl get`` asks for them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from falcoir.lab.store import ResourceType

JSON = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority (1 = only with -o wide)


def human_duration(seconds: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60 * 2:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 60 * 3:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        return f"{h // 24 // 365}y{h // 24 % 365}d"
    return f"{h // 24 // 365}y"


def age(obj: JSON) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    try:
        then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _selector_text(sel: JSON | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op in ("In", "NotIn"):
            parts.append(f"{e.get('key')} {op.lower()} ({','.join(e.get('values') or [])})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        else:
            parts.append(f"!{e.get('key')}")
    return ",".join(parts) or "<none>"


def _pod_row(p: JSON) -> list[Any]:
    spec, st = p.get("spec", {}), p.get("status", {})
    statuses = st.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = st.get("reason") or st.get("phase") or "Pending"
    for c in statuses:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if p.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        p["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        str(restarts),
        age(p),
        st.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        st.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


def _images(tmpl: JSON) -> tuple[str, str]:
    cs = tmpl.get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _deploy_row(d: JSON) -> list[Any]:
    st, spec = d.get("status", {}), d.get("spec", {})
    names, images = _images(spec.get("template", {}))
    return [
        d["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        age(d),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _rs_row(r: JSON) -> list[Any]:
    st, spec = r.get("status", {}), r.get("spec", {})
    names, images = _images(spec.get("template", {}))
    return [
        r["metadata"]["name"],
        spec.get("replicas", 1),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        age(r),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _ds_row(d: JSON) -> list[Any]:
    st, spec = d.get("status", {}), d.get("spec", {})
    names, images = _images(spec.get("template", {}))
    node_sel = spec.get("template", {}).get("spec", {}).get("nodeSelector") or {}
    return [
        d["metadata"]["name"],
        st.get("desiredNumberScheduled", 0),
        st.get("currentNumberScheduled", 0),
        st.get("numberReady", 0),
        st.get("updatedNumberScheduled", 0),
        st.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in node_sel.items()) or "<none>",
        age(d),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _node_row(n: JSON) -> list[Any]:
    st = n.get("status", {})
    ready: JSON = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    roles = sorted(
        k.split("/", 1)[1]
        for k in (n["metadata"].get("labels") or {})
        if k.startswith("node-role.kubernetes.io/")
    )
    info = st.get("nodeInfo", {})
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    return [
        n["metadata"]["name"],
        "Ready" if ready.get("status") == "True" else "NotReady",
        ",".join(roles) or "<none>",
        age(n),
        info.get("kubeletVersion", ""),
        addrs.get("InternalIP", "<none>"),
        addrs.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _ns_row(n: JSON) -> list[Any]:
    return [n["metadata"]["name"], n.get("status", {}).get("phase", "Active"), age(n)]


def _netpol_row(p: JSON) -> list[Any]:
    return [p["metadata"]["name"], _selector_text(p.get("spec", {}).get("podSelector")), age(p)]


def _event_row(e: JSON) -> list[Any]:
    io = e.get("involvedObject", {})
    last = e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp")
    when = "<unknown>"
    if isinstance(last, str) and last:
        try:
            then = datetime.strptime(last[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            when = human_duration((datetime.now(UTC) - then).total_seconds())
        except ValueError:
            pass
    return [
        when,
        e.get("type", ""),
        e.get("reason", ""),
        f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}",
        e.get("message", ""),
    ]


TABLES: dict[str, tuple[list[Column], Callable[[JSON], list[Any]]]] = {
    "pods": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    "deployments": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deploy_row,
    ),
    "replicasets": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _rs_row,
    ),
    "daemonsets": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _ds_row,
    ),
    "nodes": (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node_row,
    ),
    "namespaces": ([("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)], _ns_row),
    "networkpolicies": (
        [("Name", "string", 0), ("Pod-Selector", "string", 0), ("Age", "string", 0)],
        _netpol_row,
    ),
    "events": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event_row,
    ),
}


def _default_row(o: JSON) -> list[Any]:
    return [o["metadata"]["name"], age(o)]


def _partial(o: JSON) -> JSON:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": o.get("metadata", {}),
    }


def to_table(
    rtype: ResourceType,
    objs: list[JSON],
    *,
    include_object: str,
    list_meta: JSON | None = None,
    with_columns: bool = True,
) -> JSON:
    columns, row = TABLES.get(
        rtype.plural, ([("Name", "string", 0), ("Age", "string", 0)], _default_row)
    )
    rows = []
    for o in objs:
        obj: JSON | None
        if include_object == "None":
            obj = None
        elif include_object == "Object":
            obj = {"kind": rtype.kind, "apiVersion": rtype.api_version, **o}
        else:
            obj = _partial(o)
        entry: JSON = {"cells": row(o)}
        if obj is not None:
            entry["object"] = obj
        rows.append(entry)
    table: JSON = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": p,
            }
            for n, t, p in columns
        ]
        if with_columns
        else [],
        "rows": rows,
    }
    return table
