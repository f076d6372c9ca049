"""The cgroup path parser on real-world shapes of each runtime, driver and version."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from falcoir.core.cgroup import normalize_pod_uid, parse_cgroup_path, parse_proc_cgroup

UID = "3a8f6c1e-1b2c-4d5e-8f9a-0b1c2d3e4f5a"
UID_ = UID.replace("-", "_")
CID = "4c7d0d2e9b3a1f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"
STATIC = "b5e9d3c1a2f34e6d8c7b9a0f1e2d3c4b"

CASES = [
    # (path, uid, cid, runtime, qos, driver)
    (f"/kubepods/besteffort/pod{UID}/{CID}", UID, CID, None, "besteffort", "cgroupfs"),
    (f"/kubepods/burstable/pod{UID}/{CID}", UID, CID, None, "burstable", "cgroupfs"),
    (f"/kubepods/pod{UID}/{CID}", UID, CID, None, "guaranteed", "cgroupfs"),
    (f"/kubepods/burstable/pod{UID}/crio-{CID}", UID, CID, "cri-o", "burstable", "cgroupfs"),
    (
        f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope",
        UID,
        CID,
        "containerd",
        "besteffort",
        "systemd",
    ),
    (
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"crio-{CID}.scope",
        UID,
        CID,
        "cri-o",
        "burstable",
        "systemd",
    ),
    (
        f"/kubepods.slice/kubepods-pod{UID_}.slice/docker-{CID}.scope",
        UID,
        CID,
        "docker",
        "guaranteed",
        "systemd",
    ),
    (  # CRI-O on cgroup v2 puts the process one level down
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"crio-{CID}.scope/container",
        UID,
        CID,
        "cri-o",
        "burstable",
        "systemd",
    ),
    (  # containerd, systemd driver under a cgroupfs parent (seen on EKS, k3s)
        f"/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{CID}",
        UID,
        CID,
        "containerd",
        "burstable",
        "systemd",
    ),
    (  # kind: nested under the node container's kubelet.slice
        f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
        f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
        UID,
        CID,
        "containerd",
        "besteffort",
        "systemd",
    ),
    (  # cgroup namespace of the reader: relative path with ..
        f"/../../kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope",
        UID,
        CID,
        "containerd",
        "besteffort",
        "systemd",
    ),
    (  # a static pod: the config hash instead of a dashed uid
        f"/kubepods/burstable/pod{STATIC}/{CID}",
        STATIC,
        CID,
        None,
        "burstable",
        "cgroupfs",
    ),
    (f"/docker/{CID}", None, CID, None, None, None),
    (f"/system.slice/docker-{CID}.scope", None, CID, "docker", None, "systemd"),
]


@pytest.mark.parametrize(("path", "uid", "cid", "runtime", "qos", "driver"), CASES)
def test_real_world_paths(
    path: str,
    uid: str | None,
    cid: str,
    runtime: str | None,
    qos: str | None,
    driver: str | None,
) -> None:
    info = parse_cgroup_path(path)
    assert info.pod_uid == uid
    assert info.container_id == cid
    assert info.runtime == runtime
    assert info.qos == qos
    assert info.driver == driver
    assert info.is_container


def test_pod_level_cgroup_has_uid_but_no_container() -> None:
    info = parse_cgroup_path(f"/kubepods/burstable/pod{UID}")
    assert info.pod_uid == UID
    assert info.container_id is None
    assert info.in_pod and not info.is_container


def test_crio_conmon_is_not_the_container() -> None:
    info = parse_cgroup_path(
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"crio-conmon-{CID}.scope"
    )
    assert info.container_id == CID
    assert info.conmon
    assert not info.is_container


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/init.scope",
        "/system.slice/sshd.service",
        "/user.slice/user-1000.slice/session-2.scope",
        "/kubepods.slice/kubepods-besteffort.slice",
        "/kubepods/podnot-a-uid/abc",
        f"/kubepods/burstable/pod{UID}/{CID[:-1]}",  # 63 hex is not an id
    ],
)
def test_non_container_paths(path: str) -> None:
    info = parse_cgroup_path(path)
    assert not info.is_container
    if "podnot" in path:
        assert info.pod_uid is None


def test_malformed_pod_segment_gives_no_uid() -> None:
    info = parse_cgroup_path(f"/kubepods/burstable/pod{UID}x/{CID}")
    assert info.pod_uid is None
    assert info.container_id == CID  # still a container, like /docker/<id>


def test_v1_file_picks_the_line_with_pod_and_container() -> None:
    text = (
        "12:pids:/kubepods/besteffort/pod" + UID + "/" + CID + "\n"
        "11:hugetlb:/kubepods/besteffort/pod" + UID + "/" + CID + "\n"
        "10:cpu,cpuacct:/kubepods/besteffort/pod" + UID + "/" + CID + "\n"
        "1:name=systemd:/kubepods/besteffort/pod" + UID + "/" + CID + "\n"
        "0::/\n"
    )
    cg = parse_proc_cgroup(text)
    assert cg.version == 1
    assert cg.pod_uid == UID and cg.container_id == CID
    assert len(cg.paths) == 5


def test_v1_systemd_lines_mixed_with_an_unhelpful_first_line() -> None:
    text = (
        "13:misc:/\n"
        f"4:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"
        f"/docker-{CID}.scope\n"
    )
    cg = parse_proc_cgroup(text)
    assert cg.best is not None and cg.best.runtime == "docker"
    assert cg.pod_uid == UID


def test_v2_file() -> None:
    cg = parse_proc_cgroup(
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope\n"
    )
    assert cg.version == 2
    assert cg.pod_uid == UID and cg.container_id == CID


def test_v2_host_process_and_garbage() -> None:
    cg = parse_proc_cgroup("0::/system.slice/containerd.service\nnot a line\n\x1b[31m\n")
    assert cg.best is None and cg.version == 2
    assert parse_proc_cgroup("").best is None


def test_uppercase_and_underscores_are_normalised() -> None:
    assert normalize_pod_uid(UID_.upper()) == UID
    info = parse_cgroup_path(f"/kubepods/besteffort/pod{UID.upper()}/{CID.upper()}")
    assert info.pod_uid == UID and info.container_id == CID


@given(st.text(max_size=300))
def test_never_crashes_on_hostile_text(text: str) -> None:
    cg = parse_proc_cgroup(text)
    for _, path in cg.paths:
        parse_cgroup_path(path)


@given(
    st.uuids(),
    st.sampled_from(["besteffort", "burstable"]),
    st.sampled_from(["cri-containerd", "crio", "docker"]),
    st.binary(min_size=32, max_size=32),
)
def test_systemd_roundtrip(uid: object, qos: str, prefix: str, raw: bytes) -> None:
    u = str(uid)
    c = raw.hex()
    info = parse_cgroup_path(
        f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u.replace('-', '_')}.slice/"
        f"{prefix}-{c}.scope"
    )
    assert (info.pod_uid, info.container_id, info.qos) == (u, c, qos)
