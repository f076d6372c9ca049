"""NetworkPolicy semantics, turned into an nftables ruleset for one pod's netns.

What is enforced (in the pod's own network namespace, table ``inet falcoir``):

- A pod selected by a policy whose ``policyTypes`` holds ``Egress`` is egress-isolated:
  only what some selecting policy's egress rules allow may leave it. Everything else is
  dropped, **including packets of connections established before the policy** (a miner
  already talking to its pool goes silent), except replies of connections that came in.
- ``Ingress`` likewise for what enters the pod (replies to its own allowed connections
  still come back).
- ``policyTypes`` missing: ``Ingress``, plus ``Egress`` when the policy has egress rules.
- A rule allows traffic matching any of its peers and any of its ports; a rule with no
  peers matches every address, with no ports every port; ``[{}]`` allows all.
- Peers: ``ipBlock`` (``cidr`` minus ``except``, IPv4 and IPv6), ``podSelector`` (same
  namespace), ``namespaceSelector`` (+ ``podSelector``) over the namespaces' labels
  (the server passes them, and calls again when they change; a namespace it did not
  pass has only ``kubernetes.io/metadata.name``), resolved to the pod IPs known now.
  Ports: numbers, ``endPort`` ranges, protocols TCP/UDP/SCTP;
  named ports match nothing.
- Loopback traffic is never filtered.
"""

from __future__ import annotations

import ipaddress
from typing import Any

JSON = dict[str, Any]
TABLE = "falcoir"


def _labels(obj: JSON) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def selector_matches(selector: JSON | None, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (an empty selector matches everything)."""
    if selector is None:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(str(k)) != str(v):
            return False
    for expr in selector.get("matchExpressions") or []:
        key = str(expr.get("key", ""))
        op = expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def policy_types(policy: JSON) -> list[str]:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return [str(t) for t in types]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def selects(policy: JSON, pod: JSON) -> bool:
    meta = policy.get("metadata") or {}
    pod_meta = pod.get("metadata") or {}
    if meta.get("namespace", "default") != pod_meta.get("namespace", "default"):
        return False
    return selector_matches((policy.get("spec") or {}).get("podSelector") or {}, _labels(pod))


def _pod_ips(pod: JSON) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def namespace_labels(ns: str, namespaces: dict[str, dict[str, str]] | None) -> dict[str, str]:
    """A namespace's labels; ``kubernetes.io/metadata.name`` is always there (the API
    server sets it and refuses to change it)."""
    labels = dict((namespaces or {}).get(ns) or {})
    labels["kubernetes.io/metadata.name"] = ns
    return labels


def _peer_addrs(
    peer: JSON,
    policy_ns: str,
    pods: list[JSON],
    namespaces: dict[str, dict[str, str]] | None = None,
) -> list[tuple[str, list[str]]]:
    """``(cidr, excepts)`` pairs a peer stands for."""
    block = peer.get("ipBlock")
    if block:
        cidr = _cidr(block.get("cidr"))
        if cidr is None:
            return []
        excepts = [c for c in (_cidr(x) for x in block.get("except") or []) if c]
        return [(cidr, excepts)]
    pod_sel = peer.get("podSelector")
    ns_sel = peer.get("namespaceSelector")
    out: list[tuple[str, list[str]]] = []
    for p in pods:
        ns = (p.get("metadata") or {}).get("namespace", "default")
        if ns_sel is None:
            if ns != policy_ns:
                continue
        elif not selector_matches(ns_sel, namespace_labels(ns, namespaces)):
            continue
        if not selector_matches(pod_sel or {}, _labels(p)):
            continue
        for ip in _pod_ips(p):
            cidr = _cidr(ip)
            if cidr is not None:
                out.append((cidr, []))
    return out


def _cidr(value: object) -> str | None:
    """The network in canonical form, or ``None`` if it is not one (never trusted raw)."""
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError:
        return None


def _family(cidr: str) -> str:
    return "ip6" if ipaddress.ip_network(cidr, strict=False).version == 6 else "ip"


def _port_matches(ports: list[JSON] | None) -> list[str] | None:
    """nft fragments for the ports (``None``: every port; ``[]``: nothing matches)."""
    if not ports:
        return None
    out = []
    for p in ports:
        proto = str(p.get("protocol") or "TCP").lower()
        if proto not in ("tcp", "udp", "sctp"):
            continue
        port = p.get("port")
        if port is None:
            out.append(f"meta l4proto {proto}")
            continue
        if isinstance(port, str) and not port.isdigit():
            continue  # named port: unresolvable here
        end = p.get("endPort")
        try:
            rng = f"{int(port)}-{int(end)}" if end else f"{int(port)}"
        except (TypeError, ValueError):
            continue
        out.append(f"meta l4proto {proto} th dport {rng}")
    return out


def _rule_lines(
    rules: list[JSON],
    direction: str,
    policy_ns: str,
    pods: list[JSON],
    namespaces: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    addr_key = "daddr" if direction == "egress" else "saddr"
    peers_key = "to" if direction == "egress" else "from"
    lines = []
    for rule in rules:
        rule = rule or {}
        ports = _port_matches(rule.get("ports"))
        port_frags: list[str] = [""] if ports is None else ports
        peers = rule.get(peers_key)
        if peers:
            addr_frags = []
            for peer in peers:
                for cidr, excepts in _peer_addrs(peer, policy_ns, pods, namespaces):
                    fam = _family(cidr)
                    frag = f"{fam} {addr_key} {cidr}"
                    for ex in excepts:
                        frag += f" {fam} {addr_key} != {ex}"
                    addr_frags.append(frag)
        else:
            addr_frags = [""]
        for a in addr_frags:
            for p in port_frags:
                lines.append(" ".join(x for x in (a, p, "accept") if x))
    return lines


def ruleset_for(
    pod: JSON,
    pods: list[JSON],
    policies: list[JSON],
    namespaces: dict[str, dict[str, str]] | None = None,
) -> str:
    """The nft script (one atomic transaction) that enforces ``policies`` on ``pod``."""
    egress: list[str] | None = None
    ingress: list[str] | None = None
    for pol in policies:
        if not selects(pol, pod):
            continue
        spec = pol.get("spec") or {}
        ns = (pol.get("metadata") or {}).get("namespace", "default")
        types = policy_types(pol)
        if "Egress" in types:
            egress = (egress or []) + _rule_lines(
                spec.get("egress") or [], "egress", ns, pods, namespaces
            )
        if "Ingress" in types:
            ingress = (ingress or []) + _rule_lines(
                spec.get("ingress") or [], "ingress", ns, pods, namespaces
            )
    chains = []
    if egress is not None:
        body = ['oifname "lo" accept', "ct direction reply accept", *egress, "counter drop"]
        chains.append(("egress", "output", body))
    if ingress is not None:
        body = ['iifname "lo" accept', "ct direction reply accept", *ingress, "counter drop"]
        chains.append(("ingress", "input", body))
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    lines.append(f"table inet {TABLE} {{")
    for name, hook, body in chains:
        lines.append(f"  chain {name} {{")
        lines.append(f"    type filter hook {hook} priority 0; policy accept;")
        lines.extend(f"    {b}" for b in body)
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
