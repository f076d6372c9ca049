"""The quarantine NetworkPolicy and label: names, shape, validation, comparison."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from falcoir.core.gateway import JSON
from falcoir.core.names import validate_label_value as validate_label_value
from falcoir.core.names import validate_namespace as validate_namespace
from falcoir.core.names import validate_pod_name as validate_pod_name
from falcoir.errors import InputError

LABEL_KEY = "falcoir.io/quarantine"
"""The dedicated quarantine label; its value is the incident id."""
MANAGED_BY = ("app.kubernetes.io/managed-by", "falcoir")
POLICY_PREFIX = "falcoir-quarantine-"
ANN_INCIDENT = "falcoir.io/incident"
ANN_POD = "falcoir.io/pod"
ANN_POD_UID = "falcoir.io/pod-uid"
ANN_RULE = "falcoir.io/alert-rule"
ANN_ALERT_TIME = "falcoir.io/alert-time"
ANN_APPLIED_BY = "falcoir.io/applied-by"
ANN_APPLIED_AT = "falcoir.io/applied-at"
ANN_DETACHED = "falcoir.io/detached-labels"
"""On a pod detached from its owner: the workload labels it had, as JSON."""

DNS_NAMESPACE_LABEL = ("kubernetes.io/metadata.name", "kube-system")
DNS_POD_LABEL = ("k8s-app", "kube-dns")
"""CoreDNS and kube-dns both carry ``k8s-app=kube-dns`` in ``kube-system``."""

_MAX_ANNOTATION = 1024


def validate_cidr(text: str) -> str:
    """A CIDR (IPv4 or IPv6) in canonical form; a bare address becomes ``/32``/``/128``.
    Host bits set (``10.0.0.1/8``) are refused rather than silently widened."""
    raw = text.strip()
    try:
        net = ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise InputError(f"--allow-cidr: not an IP network: {text!r}") from exc
        raise InputError(
            f"--allow-cidr: {text!r} has host bits set",
            hint=f"did you mean {loose}? (that allows the whole network)",
        ) from exc
    if net.prefixlen == 0:
        raise InputError(
            f"--allow-cidr: {text!r} allows every address, which is no quarantine at all"
        )
    return str(net)


def validate_port(value: int | str) -> int:
    try:
        port = int(str(value), 10)
    except ValueError:
        raise InputError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise InputError(f"port out of range 1-65535: {port}")
    return port


def policy_name(incident_id: str) -> str:
    return POLICY_PREFIX + incident_id


def _annotation(value: str | None) -> str:
    """Alert data for an annotation: bounded, control characters dropped."""
    text = "" if value is None else str(value)
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:_MAX_ANNOTATION]


@dataclass(frozen=True)
class PolicySpecOptions:
    ingress: bool = False
    allow_dns: bool = False
    allow_cidrs: tuple[str, ...] = ()


def policy_spec(incident_id: str, opts: PolicySpecOptions) -> JSON:
    """The spec: select exactly the quarantine label; deny all egress (and ingress with
    ``ingress``) except the allow-lists."""
    egress: list[JSON] = []
    if opts.allow_dns:
        ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
        egress.append(
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": dict([DNS_NAMESPACE_LABEL])},
                        "podSelector": {"matchLabels": dict([DNS_POD_LABEL])},
                    }
                ],
                "ports": ports,
            }
        )
    if opts.allow_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in opts.allow_cidrs]})
    spec: JSON = {
        "podSelector": {"matchLabels": {LABEL_KEY: incident_id}},
        "policyTypes": ["Ingress", "Egress"] if opts.ingress else ["Egress"],
    }
    if egress:
        spec["egress"] = egress
    return spec


def build_policy(
    *,
    incident_id: str,
    namespace: str,
    pod: str,
    pod_uid: str | None,
    opts: PolicySpecOptions,
    rule: str | None,
    alert_time: str | None,
    applied_by: str,
    applied_at: str,
) -> JSON:
    """The whole NetworkPolicy object falcoir creates."""
    annotations = {
        ANN_INCIDENT: incident_id,
        ANN_POD: pod,
        ANN_APPLIED_BY: _annotation(applied_by),
        ANN_APPLIED_AT: applied_at,
    }
    if pod_uid:
        annotations[ANN_POD_UID] = pod_uid
    if rule:
        annotations[ANN_RULE] = _annotation(rule)
    if alert_time:
        annotations[ANN_ALERT_TIME] = _annotation(alert_time)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(incident_id),
            "namespace": namespace,
            "labels": {LABEL_KEY: incident_id, MANAGED_BY[0]: MANAGED_BY[1]},
            "annotations": annotations,
        },
        "spec": policy_spec(incident_id, opts),
    }


def _norm_port(p: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(p.get("protocol") or "TCP"), str(p.get("port", "")), str(p.get("endPort", "")))


def _norm_rule(rule: Mapping[str, Any], peer_key: str) -> tuple[Any, ...]:
    import json

    peers = sorted(json.dumps(x, sort_keys=True) for x in rule.get(peer_key) or [])
    ports = sorted(_norm_port(p) for p in rule.get("ports") or [])
    return (tuple(peers), tuple(ports))


def normalize_spec(spec: Mapping[str, Any]) -> JSON:
    """A spec in a form two equal policies share (defaults filled, lists sorted)."""
    import json

    types = spec.get("policyTypes") or (
        ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    )
    return {
        "podSelector": json.loads(json.dumps(spec.get("podSelector") or {}, sort_keys=True)),
        "policyTypes": sorted(types),
        "ingress": sorted(_norm_rule(r, "from") for r in spec.get("ingress") or []),
        "egress": sorted(_norm_rule(r, "to") for r in spec.get("egress") or []),
    }


def spec_differences(have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """Which parts of an existing policy's spec differ from what falcoir would apply."""
    a, b = normalize_spec(have), normalize_spec(want)
    return [k for k in ("podSelector", "policyTypes", "ingress", "egress") if a[k] != b[k]]


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Does a LabelSelector (matchLabels and matchExpressions) match ``labels``?
    An empty selector matches everything; ``None`` matches nothing."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def selector_keys_to_drop(selector: Mapping[str, Any] | None) -> list[str]:
    """Label keys whose removal makes a pod stop matching ``selector`` (matchLabels
    keys and ``In``/``Exists`` expressions)."""
    if not selector:
        return []
    keys = list((selector.get("matchLabels") or {}).keys())
    for expr in selector.get("matchExpressions") or []:
        if expr.get("operator") in ("In", "Exists") and expr.get("key") not in keys:
            keys.append(str(expr.get("key")))
    return keys


def pod_labels(pod: JSON) -> dict[str, str]:
    return dict((pod.get("metadata") or {}).get("labels") or {})


def is_falcoir_policy(policy: JSON) -> bool:
    meta = policy.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1] and LABEL_KEY in labels


def describe_rules(spec: Mapping[str, Any]) -> Sequence[str]:
    """Plain-language lines for the plan shown before asking."""
    types = spec.get("policyTypes") or []
    lines = []
    lines.append(
        "deny all egress" + (" and all ingress" if "Ingress" in types else "") + ", except:"
        if spec.get("egress")
        else "deny all egress" + (" and all ingress" if "Ingress" in types else "")
    )
    for rule in spec.get("egress") or []:
        for peer in rule.get("to") or []:
            if "ipBlock" in peer:
                lines.append(f"  allow to {peer['ipBlock']['cidr']}")
            else:
                ports = ", ".join(f"{p['port']}/{p['protocol']}" for p in rule.get("ports") or [])
                lines.append(f"  allow DNS to kube-system/k8s-app=kube-dns ({ports})")
    return lines
