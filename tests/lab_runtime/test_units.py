"""Pure parts: image profiles, NetworkPolicy to nftables, the Falco stand-in's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from falcoir.lab import images
from falcoir.lab.assets import falco_standin
from falcoir.lab.linux import cgroups, policy
from falcoir.lab.linux.runtime import expand


@pytest.mark.parametrize(
    ("image", "profile"),
    [
        ("ubuntu:latest", "ubuntu"),
        ("debian:12", "ubuntu"),
        ("docker.io/library/nginx:1.27", "ubuntu"),
        ("quay.io/some/unknown@sha256:" + "a" * 64, "ubuntu"),
        ("busybox", "busybox"),
        ("alpine:3.20", "busybox"),
        ("gcr.io/distroless/static-debian12:nonroot", "distroless"),
        ("registry.k8s.io/pause:3.9", "distroless"),
        ("falcosecurity/falco:0.39.2", "falco"),
        ("docker.io/falcosecurity/falco-no-driver", "falco"),
    ],
)
def test_profile_for_image(image: str, profile: str) -> None:
    assert images.profile_for_image(image).name == profile


def test_image_names_as_the_kubelet_reports_them() -> None:
    assert images.normalize_image("ubuntu") == "docker.io/library/ubuntu:latest"
    assert images.normalize_image("localhost:5000/app:v1") == "localhost:5000/app:v1"
    assert (
        images.normalize_image("falcosecurity/falco:0.39") == "docker.io/falcosecurity/falco:0.39"
    )
    iid = images.image_id("ubuntu:latest")
    assert iid.startswith("docker.io/library/ubuntu@sha256:") and len(iid.split(":")[-1]) == 64
    assert iid != images.image_id("ubuntu:22.04")


def test_build_profile_leaves_out_what_the_host_lacks(tmp_path: Path) -> None:
    prof = images.ImageProfile("t", tools=("sh", "definitely-not-a-tool"))
    bin_dir = images.build_profile(prof, tmp_path)
    assert bin_dir is not None
    assert sorted(p.name for p in bin_dir.iterdir()) == ["sh"]
    assert images.build_profile(images.FALCO, tmp_path) is None


def test_qos_and_cgroup_paths() -> None:
    def pod(res: dict) -> dict:
        return {"spec": {"containers": [{"name": "a", "resources": res}]}}

    assert cgroups.qos_class(pod({})) == "BestEffort"
    assert cgroups.qos_class(pod({"requests": {"cpu": "1"}})) == "Burstable"
    lim = {"cpu": "1", "memory": "1Gi"}
    assert cgroups.qos_class(pod({"limits": lim})) == "Guaranteed"
    assert cgroups.qos_class(pod({"limits": lim, "requests": {"cpu": "500m"}})) == "Burstable"
    assert cgroups.pod_path("Guaranteed", "u") == "kubepods/podu"
    assert cgroups.pod_path("BestEffort", "u") == "kubepods/besteffort/podu"


def test_env_expansion() -> None:
    env = {"A": "1", "B": "x"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-x-$(C)-$(A)"


POD = {
    "metadata": {"name": "m", "namespace": "default", "labels": {"app": "cryptominer"}},
    "status": {"podIP": "10.213.9.2"},
}
WEB = {
    "metadata": {"name": "w", "namespace": "default", "labels": {"app": "web"}},
    "status": {"podIP": "10.213.9.3"},
}


def pol(spec: dict, ns: str = "default") -> dict:
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


def chain(ruleset: str, name: str) -> list[str]:
    lines = ruleset.splitlines()
    if f"  chain {name} {{" not in lines:
        return []
    start = lines.index(f"  chain {name} {{") + 2
    end = lines.index("  }", start)
    return [x.strip() for x in lines[start:end]]


def test_deny_all_egress_drops_established_traffic_too() -> None:
    rs = policy.ruleset_for(POD, [POD], [pol({"podSelector": {}, "policyTypes": ["Egress"]})])
    assert rs.startswith("table inet falcoir\ndelete table inet falcoir\n")
    assert chain(rs, "egress") == [
        'oifname "lo" accept',
        "ct direction reply accept",
        "counter drop",
    ]
    assert "ct state established" not in rs
    assert chain(rs, "ingress") == []


def test_policy_types_default_and_selection() -> None:
    only_ingress = pol({"podSelector": {"matchLabels": {"app": "cryptominer"}}})
    rs = policy.ruleset_for(POD, [POD], [only_ingress])
    assert chain(rs, "egress") == [] and chain(rs, "ingress")[-1] == "counter drop"
    other_ns = pol({"podSelector": {}, "policyTypes": ["Egress"]}, ns="prod")
    assert "chain" not in policy.ruleset_for(POD, [POD], [other_ns])
    expr = {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["cryptominer"]}]}
    assert "chain" not in policy.ruleset_for(
        POD, [POD], [pol({"podSelector": expr, "policyTypes": ["Egress"]})]
    )


def test_allow_lists_cidrs_dns_and_pods() -> None:
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]},
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {
                "to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"port": 80, "endPort": 90}],
            },
            {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}], "ports": [{"port": "http"}]},
        ],
    }
    rs = policy.ruleset_for(POD, [POD, WEB], [pol(spec)])
    assert chain(rs, "egress") == [
        'oifname "lo" accept',
        "ct direction reply accept",
        "ip daddr 10.0.0.0/8 ip daddr != 10.1.0.0/16 accept",
        "meta l4proto udp th dport 53 accept",
        "meta l4proto tcp th dport 53 accept",
        "ip daddr 10.213.9.3/32 meta l4proto tcp th dport 80-90 accept",
        "counter drop",
    ]
    allow_all = pol({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    assert chain(policy.ruleset_for(POD, [POD], [allow_all]), "egress")[2] == "accept"


def test_hostile_policy_values_never_reach_nft() -> None:
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "1.2.3.4/32\nflush ruleset", "except": ["x; drop"]}}]},
            {"ports": [{"port": "53\naccept", "protocol": "TCP"}, {"port": 1, "protocol": "ICMP"}]},
        ],
    }
    rs = policy.ruleset_for(POD, [POD], [pol(spec)])
    assert "flush" not in rs and "x; drop" not in rs and "53\n" not in rs
    assert chain(rs, "egress")[-1] == "counter drop"


def test_falco_alert_text_and_json() -> None:
    proc = {
        "pid": 4242,
        "vpid": 2,
        "ppid": 4200,
        "name": "xmrig",
        "cmdline": "/tmp/xmrig -o pool.example.com:3333 -u wallet_address -p x",
        "exepath": "/tmp/xmrig",
        "cwd": "/",
        "start": "1",
        "container_id": "0123456789ab",
        "container_full_id": "0123456789ab" + "c" * 52,
        "container_name": "miner",
        "image_repository": "ubuntu",
        "image_tag": "latest",
        "pod_name": "cryptominer-demo-abc",
        "pod_ns": "default",
        "pod_uid": "uid-1",
    }
    text, doc = falco_standin.render(proc, "lab-node", 1_700_000_000.123456)
    assert text.endswith(
        " - Critical - Suspicious crypto miner process (name=xmrig, cmdline=/tmp/xmrig -o "
        "pool.example.com:3333 -u wallet_address -p x, pid=4242)"
    )
    assert len(text.split(" - ")[0]) == len("08:30:00.123")
    assert list(doc) == sorted(doc)
    assert doc["hostname"] == "lab-node" and doc["priority"] == "Critical"
    assert doc["rule"] == "Suspicious crypto miner process"
    f = doc["output_fields"]
    assert (f["proc.pid"], f["proc.vpid"], f["container.id"]) == (4242, 2, "0123456789ab")
    assert (f["k8s.ns.name"], f["k8s.pod.name"], f["k8s.pod.uid"]) == (
        "default",
        "cryptominer-demo-abc",
        "uid-1",
    )
    assert doc["time"].endswith("Z") and doc["output"].split(": ", 1)[1].startswith(
        "Critical Suspicious"
    )
    json.dumps(doc)


def test_falco_inspect_reads_a_proc_tree(tmp_path: Path) -> None:
    cid = "ab" * 32
    p = tmp_path / "proc" / "77"
    p.mkdir(parents=True)
    (p / "comm").write_text("xmrig\n")
    (p / "cmdline").write_bytes(b"/tmp/xmrig\0-o\0pool.example.com:3333\0")
    (p / "status").write_text("Name:\txmrig\nPPid:\t70\nNSpid:\t77\t3\n")
    (p / "cgroup").write_text(
        f"0::/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/{cid}\n"
    )
    (p / "stat").write_text("77 (xmrig) S " + " ".join(["1"] * 30))
    cri = tmp_path / "cri"
    cri.mkdir()
    (cri / f"{cid}.json").write_text(
        json.dumps(
            {
                "name": "miner",
                "image": "ubuntu:latest",
                "pod_name": "pm",
                "pod_namespace": "default",
            }
        )
    )
    got = falco_standin.inspect(tmp_path / "proc", 77, cri)
    assert got is not None
    assert (got["pid"], got["vpid"], got["ppid"], got["container_id"]) == (77, 3, 70, cid[:12])
    assert got["pod_uid"] == "11111111-2222-3333-4444-555555555555"
    assert (got["pod_name"], got["image_repository"], got["image_tag"]) == (
        "pm",
        "ubuntu",
        "latest",
    )
    assert got["cmdline"] == "/tmp/xmrig -o pool.example.com:3333"
    (cri / f"{cid}.json").unlink()  # another lab's container, or a host process
    assert falco_standin.inspect(tmp_path / "proc", 77, cri) is None
    (cri / f"{cid}.json").write_text("{}")
    (p / "comm").write_text("bash\n")
    assert falco_standin.inspect(tmp_path / "proc", 77, cri) is None


def test_scenario_refuses_a_lab_without_isolation(tmp_path: Path) -> None:
    from falcoir.errors import LabError
    from falcoir.lab.scenario import play_cryptominer

    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "lab-abcdef.json").write_text('{"lab_id": "abcdef", "pid": 1}')
    with pytest.raises(LabError, match="does not run isolated pods"):
        play_cryptominer(None, tmp_path)  # type: ignore[arg-type]


def test_namespace_selector_matches_namespace_labels() -> None:
    mon = {
        "metadata": {"name": "prom", "namespace": "monitoring", "labels": {"app": "prom"}},
        "status": {"podIP": "10.213.9.7"},
    }
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}],
    }
    allowed = "ip daddr 10.213.9.7/32 accept"
    pods = [POD, mon]
    labelled = {"monitoring": {"team": "obs"}, "default": {}}
    assert allowed in chain(policy.ruleset_for(POD, pods, [pol(spec)], labelled), "egress")
    # Without the namespaces' labels (or with other ones) the peer matches nothing.
    assert allowed not in chain(policy.ruleset_for(POD, pods, [pol(spec)]), "egress")
    other = {"monitoring": {"team": "web"}}
    assert allowed not in chain(policy.ruleset_for(POD, pods, [pol(spec)], other), "egress")
    # kubernetes.io/metadata.name is always there, whatever the labels passed.
    by_name = {
        **spec,
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    }
                ]
            }
        ],
    }
    assert allowed in chain(policy.ruleset_for(POD, pods, [pol(by_name)], labelled), "egress")


def test_cri_log_round_trip_is_byte_exact(tmp_path: Path) -> None:
    import os

    from falcoir.lab.linux.shim import MAX_LINE, CriLog
    from falcoir.lab.streams import LogParser, rfc3339nano

    path = tmp_path / "0.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    log = CriLog(fd)
    chunks = [
        ("stdout", b"one\ntw"),
        ("stdout", b"o\r\n"),
        ("stderr", b"err\n"),
        ("stdout", b"y" * (MAX_LINE * 2 + 5) + b"\n"),
        ("stdout", b"\n\xff\xfe raw\n"),
        ("stdout", b"no newline"),
    ]
    for stream, data in chunks:
        log.feed(stream, data)
    log.close()
    os.close(fd)
    records = path.read_bytes().split(b"\n")[:-1]
    assert records[0].split(b" ", 3)[1:] == [b"stdout", b"F", b"one"]
    assert [r.split(b" ")[2] for r in records[3:6]] == [b"P", b"P", b"F"]  # over 16 KiB
    assert records[-1].split(b" ", 3)[1:] == [b"stdout", b"P", b"no newline"]
    entries = LogParser().feed(path.read_bytes(), "unused", final=True)
    expected = b"one\ntwo\r\nerr\n" + b"y" * (MAX_LINE * 2 + 5) + b"\n\n\xff\xfe raw\nno newline"
    assert b"".join(e.text for e in entries) == expected
    assert entries[-1].ts != "unused" and not entries[-1].continued
    # Fed in pieces (kubectl logs -f), a partial line's rest carries no new timestamp.
    parser = LogParser()
    first = parser.feed(b"2026-01-01T00:00:00.100000000Z stdout P abc\n", "x", final=False)
    rest = parser.feed(b"2026-01-01T00:00:01.000000000Z stdout F def\n", "x", final=False)
    assert [(e.text, e.continued) for e in first + rest] == [(b"abc", False), (b"def\n", True)]
    assert rfc3339nano("2026-01-01T00:00:00.100000000Z") == "2026-01-01T00:00:00.1Z"
    assert rfc3339nano("2026-01-01T00:00:00.000000000Z") == "2026-01-01T00:00:00Z"
