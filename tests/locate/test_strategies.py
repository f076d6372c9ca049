"""Every locate strategy against a fake cluster shaped like the lab scenario."""

from __future__ import annotations

import pytest

from falcoir.core.gateway import PODS
from falcoir.core.locate import LocateOptions, PodReplaced, locate
from falcoir.core.target import LocateMethod, OwnerRef, PodRef
from falcoir.errors import (
    ClusterUnreachable,
    FalcoirError,
    Forbidden,
    InputError,
    TargetAmbiguous,
    TargetNotFound,
)
from tests.locate.world import XMRIG_ARGV, World, cid, json_alert, scenario, text_alert

POD = "cryptominer-demo-7d9f8b6c5-abc12"


def _owner_kinds(owner: tuple[OwnerRef, ...]) -> list[tuple[str, str]]:
    return [(o.kind, o.name) for o in owner]


def _assert_miner(t, method: LocateMethod) -> None:  # type: ignore[no-untyped-def]
    assert (t.namespace, t.pod, t.container) == ("default", POD, "miner")
    assert t.method is method
    assert t.node == "lab-node"
    assert t.vpid == 7
    assert t.container_id == cid("default" + POD + "miner")
    assert _owner_kinds(t.owner) == [
        ("ReplicaSet", "cryptominer-demo-7d9f8b6c5"),
        ("Deployment", "cryptominer-demo"),
    ]


# -- k8s fields ---------------------------------------------------------------------


def test_k8s_fields_one_get_then_owners() -> None:
    w, pod = scenario()
    steps: list[str] = []
    t = locate(w, alert=json_alert(ns="default", pod=POD, pid=None, vpid=7), on_step=steps.append)
    _assert_miner(t, LocateMethod.K8S_FIELDS)
    assert t.pod_uid == pod["metadata"]["uid"]
    assert steps[0] == f"k8s fields: default/{POD} — found"
    assert w.count("list") == 0  # no listing at all
    assert w.count("exec") == 0


def test_k8s_fields_vpid_from_nspid_through_falco() -> None:
    w, _ = scenario()
    t = locate(w, alert=json_alert(ns="default", pod=POD))
    _assert_miner(t, LocateMethod.K8S_FIELDS)
    assert t.host_pid == 12345
    assert (
        "falco",
        "falco-lab-node",
        "falco",
        "cat",
        "/host/proc/1/cgroup",
        "/host/proc/12345/status",
        "/host/proc/12345/cgroup",
    ) in [c[1:] for c in w.calls if c[0] == "exec"]


def test_k8s_fields_vpid_from_process_list_when_no_pid() -> None:
    w, _ = scenario()
    t = locate(w, alert=json_alert(ns="default", pod=POD, pid=None))
    assert t.vpid == 7
    assert any(a[:2] == ("sh", "-c") for a in w.exec_argvs())


def test_k8s_fields_uid_mismatch_is_a_replacement() -> None:
    w, _ = scenario()
    with pytest.raises(PodReplaced) as exc:
        locate(
            w,
            alert=json_alert(
                ns="default", pod=POD, pod_uid="0" * 8 + "-0000-0000-0000-" + "0" * 12
            ),
        )
    assert "same name" in exc.value.message


def test_gone_pod_reports_replacement() -> None:
    w, _ = scenario()
    rs = "cryptominer-demo-7d9f8b6c5"
    w.pod(
        "default",
        f"{rs}-zzz99",
        "lab-node",
        ("miner",),
        labels={"app": "cryptominer", "pod-template-hash": "7d9f8b6c5"},
        owner=("ReplicaSet", rs),
    )
    w.delete(PODS, POD, "default")
    with pytest.raises(PodReplaced) as exc:
        locate(w, alert=json_alert(ns="default", pod=POD))
    assert exc.value.replacements == (f"default/{rs}-zzz99",)
    assert (
        "ReplicaSet cryptominer-demo-7d9f8b6c5 (Deployment cryptominer-demo)" in exc.value.message
    )
    assert f"--pod default/{rs}-zzz99" in (exc.value.hint or "")


def test_gone_pod_without_replacement_is_not_found() -> None:
    w, _ = scenario()
    w.delete(PODS, POD, "default")
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=json_alert(ns="default", pod=POD))
    assert not isinstance(exc.value, PodReplaced)
    assert f"default/{POD}" in exc.value.message


# -- container id -------------------------------------------------------------------


@pytest.mark.parametrize("length", [12, 64])
def test_container_id_on_the_alerts_node_only(length: int) -> None:
    w, _ = scenario(nodes=5)
    full = cid("default" + POD + "miner")
    t = locate(w, alert=json_alert(container_id=full[:length], vpid=7))
    _assert_miner(t, LocateMethod.CONTAINER_ID)
    lists = [c for c in w.calls if c[0] == "list"]
    assert lists == [("list", "pods", "", "", "spec.nodeName=lab-node")]


def test_container_id_with_scheme_and_cri_o() -> None:
    w = World()
    w.pod("ns1", "p", "n1", ("a", "b"), scheme="cri-o")
    t = locate(w, alert=json_alert(container_id="cri-o://" + cid("ns1pb"), node="n1", pid=None))
    assert (t.pod, t.container, t.container_runtime) == ("p", "b", "cri-o")


def test_container_id_finds_init_containers() -> None:
    w = World()
    w.pod("ns1", "p", "n1", ("app",), init=("setup",))
    t = locate(w, alert=json_alert(container_id=cid("ns1psetup")[:12], node="n1", pid=None))
    assert t.container == "setup"


def test_container_id_unknown_node_searches_whole_cluster() -> None:
    w, _ = scenario()
    t = locate(
        w, alert=json_alert(container_id=cid("default" + POD + "miner")[:12], node=None, vpid=7)
    )
    assert t.method is LocateMethod.CONTAINER_ID
    assert ("list", "pods", "", "", "") in w.calls


def test_host_container_id_is_not_a_pod() -> None:
    w, _ = scenario()
    w.host_process("lab-node", 999, XMRIG_ARGV, "0::/system.slice/evil.service\n")
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=json_alert(container_id="host", pid=999))
    assert "not in a pod" in exc.value.message
    assert "/system.slice/evil.service" in exc.value.message


# -- host pid -----------------------------------------------------------------------


def test_host_pid_with_node_known() -> None:
    w, _ = scenario()
    steps: list[str] = []
    t = locate(w, alert=text_alert(), options=LocateOptions(node="lab-node"), on_step=steps.append)
    _assert_miner(t, LocateMethod.HOST_PID)
    assert t.host_pid == 12345
    assert t.container_runtime == "containerd"
    # only the lab-node Falco pod was asked
    assert {c[2] for c in w.calls if c[0] == "exec"} == {"falco-lab-node"}
    assert any("Falco pod falco/falco-lab-node" in s for s in steps)


def test_host_pid_asks_every_node_and_keeps_the_matching_one() -> None:
    w, _ = scenario(nodes=6)
    steps: list[str] = []
    t = locate(w, alert=text_alert(), on_step=steps.append)
    _assert_miner(t, LocateMethod.HOST_PID)
    asked = {c[2] for c in w.calls if c[0] == "exec"}
    assert asked == {"falco-lab-node"} | {f"falco-node-{i}" for i in range(2, 7)}
    assert "asking 6 Falco pods" in " ".join(steps)
    # a node whose pid has another name is ruled out by its status alone
    cmdline_reads = [a for a in w.exec_argvs() if a[-1].endswith("/cmdline")]
    assert len(cmdline_reads) == 1 and w.count("exec") == 6 + 1


def test_host_pid_argv_only_and_pid_validated() -> None:
    w, _ = scenario()
    locate(w, alert=text_alert(), options=LocateOptions(node="lab-node"))
    for argv in w.exec_argvs():
        assert argv[0] in ("cat", "sh")
        if argv[0] == "cat":
            assert all(a.startswith("/host/proc/") for a in argv[1:])
    w2, _ = scenario()
    with pytest.raises(TargetNotFound) as exc:
        locate(w2, alert=text_alert(pid=-5))
    assert "invalid pid" in exc.value.message
    assert w2.count("exec") == 0


def test_pid_alone_never_decides_across_nodes() -> None:
    w, _ = scenario()
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=text_alert(name=None, cmdline=None))
    assert "names no process" in exc.value.message
    assert w.count("exec") == 0


def test_same_process_on_two_nodes_is_ambiguous() -> None:
    w, _ = scenario()
    other = w.pod("default", "twin", "node-2", ("miner",))
    w.run_process("node-2", 12345, other, "miner", 3, XMRIG_ARGV)
    with pytest.raises(TargetAmbiguous) as exc:
        locate(w, alert=text_alert())
    assert sorted(exc.value.candidates)[0].startswith("node lab-node: xmrig")
    assert "--node" in (exc.value.hint or "")


def test_name_only_match_across_nodes_needs_yes() -> None:
    w, _ = scenario()
    with pytest.raises(TargetAmbiguous) as exc:
        locate(w, alert=text_alert(cmdline=None))
    assert "--yes" in (exc.value.hint or "")
    t = locate(w, alert=text_alert(cmdline=None), options=LocateOptions(yes=True))
    assert t.pod == POD and any("weak match" in n for n in t.notes)


def test_pid_reused_by_another_process() -> None:
    w, _ = scenario()
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=text_alert(), options=LocateOptions(node="node-2"))
    assert "nginx" in exc.value.message and "exited" in exc.value.message


def test_process_exited() -> None:
    w, _ = scenario()
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=json_alert(pid=4242))
    assert "no pid 4242 on node lab-node" in exc.value.message
    # with --node the last-resort scan of that node finds the process by name/cmdline
    t = locate(w, alert=text_alert(pid=4242), options=LocateOptions(node="lab-node"))
    assert t.method is LocateMethod.SCAN and t.vpid == 7


def test_custom_falco_selector_namespace_and_host_proc() -> None:
    w, _ = scenario(nodes=1)
    w.objects.pop(("pods", "falco", "falco-lab-node"))
    w.falco("lab-node", "sensor-1", host_proc="/hostfs/proc", labels={"team": "sec"}, ns="sec")
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=text_alert())
    assert "--falco-selector" in (exc.value.hint or "")
    t = locate(
        w,
        alert=text_alert(),
        options=LocateOptions(
            falco_selector="team=sec", falco_namespace="sec", host_proc="/hostfs/proc"
        ),
    )
    assert t.method is LocateMethod.HOST_PID and t.vpid == 7


def test_wrong_host_proc_is_reported() -> None:
    w, _ = scenario(nodes=1)
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=json_alert(), options=LocateOptions(host_proc="/nope"))
    assert "/nope is not readable" in exc.value.message


def test_bad_host_proc_option() -> None:
    w, _ = scenario(nodes=1)
    with pytest.raises(InputError):
        locate(w, alert=text_alert(), options=LocateOptions(host_proc="/x/../etc;rm"))


def test_host_process_on_node() -> None:
    w, _ = scenario(nodes=1)
    w.host_process("lab-node", 777, ("xmrig", "-o", "p"), "0::/system.slice/x.service\n")
    with pytest.raises(TargetNotFound) as exc:
        locate(
            w,
            alert=text_alert(pid=777, cmdline="xmrig -o p"),
            options=LocateOptions(node="lab-node"),
        )
    assert "not in a pod" in exc.value.message


# -- node debug pod -----------------------------------------------------------------


class DebugWorld(World):
    """Debug pods start Running and answer like a host /proc mount."""

    def create(self, resource, body, *, dry_run=False):  # type: ignore[no-untyped-def]
        out = super().create(resource, body, dry_run=dry_run)
        if resource is PODS and body["metadata"]["name"].startswith("falcoir-node-debug-"):
            key = ("pods", "default", body["metadata"]["name"])
            self.objects[key]["status"] = {"phase": "Running"}
            node = body["spec"]["nodeName"]
            procs = self.host_procs[node]

            def handler(argv, stdin):  # type: ignore[no-untyped-def]
                out, err, code = b"", b"", 0
                for path in argv[1:]:
                    data = self._host_file(procs, "/host/proc", path)
                    if data is None:
                        err, code = err + b"no such file\n", 1
                    else:
                        out += data
                return out, err, code

            self.on_exec("default", body["metadata"]["name"], "debug", handler)
        return out


def _debug_world() -> World:
    w = DebugWorld()
    rs = w.deployment("default", "cryptominer-demo", "7d9f8b6c5", {"app": "cryptominer"})
    pod = w.pod("default", f"{rs}-abc12", "lab-node", ("miner",), owner=("ReplicaSet", rs))
    w.run_process("lab-node", 12345, pod, "miner", 7, XMRIG_ARGV)
    return w


def test_no_falco_pod_without_node_debug_says_so() -> None:
    w = _debug_world()
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=json_alert())
    assert "no running Falco pod on node lab-node" in exc.value.message
    assert "--node-debug" in (exc.value.hint or "")
    assert w.count("create") == 0


def test_node_debug_pod_created_used_deleted_recorded() -> None:
    w = _debug_world()
    t = locate(w, alert=text_alert(), options=LocateOptions(node="lab-node", node_debug=True))
    _assert_miner(t, LocateMethod.HOST_PID)
    creates = [c for c in w.calls if c[0] == "create"]
    deletes = [c for c in w.calls if c[0] == "delete"]
    assert len(creates) == 1 and len(deletes) == 1 and creates[0][3] == deletes[0][3]
    assert not [k for k in w.objects if k[2].startswith("falcoir-node-debug")]
    assert any("created node debug pod" in n for n in t.notes)
    assert any("deleted node debug pod" in n for n in t.notes)


# -- scan ---------------------------------------------------------------------------


def test_scan_only_within_given_scope() -> None:
    w, _ = scenario(nodes=1, falco_everywhere=False)
    w.objects.pop(("pods", "falco", "falco-lab-node"))
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=text_alert())
    assert "-n NAMESPACE or -l SELECTOR" in (exc.value.hint or "")
    assert not any(a[:2] == ("sh", "-c") for a in w.exec_argvs())
    t = locate(w, alert=text_alert(), options=LocateOptions(namespace="default"))
    assert t.method is LocateMethod.SCAN
    assert (t.pod, t.container, t.vpid) == (POD, "miner", 7)


def test_scan_ambiguous_lists_candidates() -> None:
    w, _ = scenario(nodes=1)
    w.objects.pop(("pods", "falco", "falco-lab-node"))
    twin = w.pod("default", "twin", "lab-node", ("c",), labels={"app": "cryptominer"})
    w.run_process("lab-node", 555, twin, "c", 9, XMRIG_ARGV)
    with pytest.raises(TargetAmbiguous) as exc:
        locate(w, alert=text_alert(), options=LocateOptions(selector="app=cryptominer"))
    assert len(exc.value.candidates) == 2
    assert any(c.startswith("default/twin/c pid 9") for c in exc.value.candidates)


def test_scan_weak_match_needs_yes() -> None:
    w, _ = scenario(nodes=1)
    w.objects.pop(("pods", "falco", "falco-lab-node"))
    alert = text_alert(cmdline=None)
    with pytest.raises(TargetAmbiguous) as exc:
        locate(w, alert=alert, options=LocateOptions(namespace="default"))
    assert "--yes" in (exc.value.hint or "")
    t = locate(w, alert=alert, options=LocateOptions(namespace="default", yes=True))
    assert t.method is LocateMethod.SCAN and t.container == "miner"


# -- --pod --------------------------------------------------------------------------


def test_pod_flag() -> None:
    w, pod = scenario(nodes=1)
    t = locate(w, pod=PodRef("default", POD))
    assert t.method is LocateMethod.POD_FLAG
    assert (t.container, t.node, t.pod_uid) == ("miner", "lab-node", pod["metadata"]["uid"])
    assert t.container_id == cid("default" + POD + "miner")
    assert len(t.owner) == 2


def test_pod_flag_container_choice() -> None:
    w = World()
    w.pod("ns", "multi", "n1", ("web", "sidecar"))
    assert locate(w, pod=PodRef("ns", "multi")).container == "web"
    t = locate(w, pod=PodRef("ns", "multi"), options=LocateOptions(container="sidecar"))
    assert t.container == "sidecar" and t.container_id == cid("nsmultisidecar")
    with pytest.raises(TargetNotFound) as exc:
        locate(w, pod=PodRef("ns", "multi"), options=LocateOptions(container="nope"))
    assert "web, sidecar" in exc.value.message


def test_pod_flag_missing() -> None:
    w = World()
    with pytest.raises(TargetNotFound):
        locate(w, pod=PodRef("ns", "nope"))


def test_nothing_to_locate() -> None:
    with pytest.raises(InputError):
        locate(World())


# -- not found, forbidden, unreachable ----------------------------------------------


def test_not_found_names_what_would_help() -> None:
    w = World()
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=text_alert())
    hint = exc.value.hint or ""
    for tip in ("--pod NS/NAME", "container.id", "--node NODE", "--falco-selector", "-n NAMESPACE"):
        assert tip in hint
    assert "no k8s.ns.name" in exc.value.message


def test_forbidden_exec_names_the_permission() -> None:
    w, _ = scenario()
    w.denied.add(("create", "pods/exec", "falco"))
    with pytest.raises(Forbidden) as exc:
        locate(w, alert=text_alert(), options=LocateOptions(node="lab-node"))
    assert exc.value.missing == ("create pods/exec -n falco",)


def test_forbidden_list_names_the_permission() -> None:
    w, _ = scenario()
    w.denied.add(("list", "pods", None))
    with pytest.raises(Forbidden) as exc:
        locate(w, alert=json_alert(container_id=cid("default" + POD + "miner")))
    assert exc.value.missing == ("list pods",)


def test_owner_chain_cut_short_is_noted_not_fatal() -> None:
    w, _ = scenario()
    w.denied.add(("get", "replicasets", None))
    t = locate(w, alert=json_alert(ns="default", pod=POD, vpid=7))
    assert _owner_kinds(t.owner) == [("ReplicaSet", "cryptominer-demo-7d9f8b6c5")]
    assert any("cannot get replicasets" in n for n in t.notes)


class DownCluster(World):
    def get(self, *a, **k):  # type: ignore[no-untyped-def]
        raise ClusterUnreachable("connection refused")

    def list(self, *a, **k):  # type: ignore[no-untyped-def]
        raise ClusterUnreachable("connection refused")


def test_unreachable_propagates() -> None:
    with pytest.raises(ClusterUnreachable):
        locate(DownCluster(), alert=json_alert(ns="default", pod=POD))
    with pytest.raises(ClusterUnreachable):
        locate(DownCluster(), alert=text_alert())


def test_alert_hostname_that_is_not_a_node_name_falls_back_to_all_nodes() -> None:
    w, _ = scenario()
    steps: list[str] = []
    t = locate(w, alert=json_alert(node="ip-10-0-0-7.internal"), on_step=steps.append)
    _assert_miner(t, LocateMethod.HOST_PID)
    assert any("no Falco pod on a node named ip-10-0-0-7.internal" in x for x in steps)


def test_forbidden_exec_after_the_pod_is_found_only_costs_the_vpid() -> None:
    w, _ = scenario()
    w.denied.add(("create", "pods/exec", None))
    t = locate(w, alert=json_alert(ns="default", pod=POD))
    assert t.pod == POD and t.vpid is None
    assert any("create pods/exec -n falco" in n for n in t.notes)
    assert any("create pods/exec -n default" in n for n in t.notes)


def test_crash_looping_falco_pod_is_not_used_and_unreadable_nodes_are_named() -> None:
    w, _ = scenario(nodes=2)
    falco = w.objects[("pods", "falco", "falco-node-2")]
    falco["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    w.objects[("pods", "falco", "falco-lab-node")]["spec"]["containers"][0]["name"] = "x"
    w.objects[("pods", "falco", "falco-lab-node")]["status"]["containerStatuses"][0]["name"] = "x"
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=text_alert())
    assert "could not read 1: lab-node: cannot run cat" in exc.value.message
    assert not any(c[2] == "falco-node-2" for c in w.calls if c[0] == "exec")


def test_gone_pod_when_owners_are_unreadable_is_still_not_found() -> None:
    w, _ = scenario()
    w.delete(PODS, POD, "default")
    w.denied.add(("get", "replicasets", None))
    with pytest.raises(TargetNotFound) as exc:
        locate(w, alert=json_alert(ns="default", pod=POD))
    assert not isinstance(exc.value, PodReplaced)


class FailingDebugWorld(DebugWorld):
    def create(self, resource, body, *, dry_run=False):  # type: ignore[no-untyped-def]
        out = super().create(resource, body, dry_run=dry_run)
        key = ("pods", "default", body["metadata"]["name"])
        if key in self.objects:
            self.objects[key]["status"] = {"phase": "Failed"}
        return out


def test_node_debug_pod_that_fails_is_still_deleted() -> None:
    w = FailingDebugWorld()
    rs = w.deployment("default", "cryptominer-demo", "7d9f8b6c5", {"app": "cryptominer"})
    pod = w.pod("default", f"{rs}-abc12", "lab-node", ("miner",), owner=("ReplicaSet", rs))
    w.run_process("lab-node", 12345, pod, "miner", 7, XMRIG_ARGV)
    with pytest.raises(FalcoirError) as exc:
        locate(w, alert=json_alert(), options=LocateOptions(node_debug=True))
    assert "did not start (phase Failed)" in exc.value.message
    assert w.count("delete") == 1
    assert not [k for k in w.objects if k[2].startswith("falcoir-node-debug")]


def test_static_pod_found_by_its_config_hash() -> None:
    w = World()
    falco = w.falco("cp-1")
    assert falco
    h = "b5e9d3c1a2f34e6d8c7b9a0f1e2d3c4b"
    pod = w.pod("kube-system", "etcd-cp-1", "cp-1", ("etcd",))
    pod["metadata"].setdefault("annotations", {})["kubernetes.io/config.hash"] = h
    w.objects[("pods", "kube-system", "etcd-cp-1")]["metadata"]["annotations"] = {
        "kubernetes.io/config.hash": h
    }
    w.host_process(
        "cp-1",
        4321,
        ("etcd", "--data-dir=/var/lib/etcd"),
        f"0::/kubepods/burstable/pod{h}/{cid('kube-system' + 'etcd-cp-1' + 'etcd')}\n",
    )
    t = locate(w, alert=text_alert(name="etcd", cmdline="etcd --data-dir=/var/lib/etcd", pid=4321))
    assert (t.namespace, t.pod, t.container, t.method) == (
        "kube-system",
        "etcd-cp-1",
        "etcd",
        LocateMethod.HOST_PID,
    )


class NamespacedOnly(World):
    """RBAC with Roles only: pods may be listed per namespace, not cluster-wide."""

    def list(self, resource, namespace=None, **kw):  # type: ignore[no-untyped-def]
        if namespace is None:
            self.calls.append(("list", resource.plural, "", "", ""))
            raise Forbidden("cannot list pods at the cluster scope", missing=["list pods"])
        return super().list(resource, namespace, **kw)


def test_forbidden_cluster_wide_falco_listing_suggests_falco_namespace() -> None:
    base, _ = scenario()
    w = NamespacedOnly(objects=base.objects, exec_handlers=base.exec_handlers)
    with pytest.raises(Forbidden) as exc:
        locate(w, alert=text_alert())
    assert "--falco-namespace" in (exc.value.hint or "")
    assert exc.value.missing == ("list pods",)
    # with the Falco namespace given, the pid is read; mapping it to a pod needs the
    # node's pods: a cluster-scope list, unless -n says where to look
    with pytest.raises(Forbidden):
        locate(w, alert=text_alert(), options=LocateOptions(falco_namespace="falco"))
    assert any(c[0] == "exec" for c in w.calls)
    t = locate(
        w, alert=text_alert(), options=LocateOptions(falco_namespace="falco", namespace="default")
    )
    assert (t.pod, t.method) == (POD, LocateMethod.HOST_PID)


class _Overlap(World):
    """Counts how many execs and lists are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self._lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def _enter(self) -> None:
        import time

        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(0.05)  # long enough for whatever runs alongside to start

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def exec(self, *a, **kw):  # type: ignore[no-untyped-def]
        self._enter()
        try:
            return super().exec(*a, **kw)
        finally:
            self._leave()


@pytest.mark.parametrize("node", [None, "lab-node"])
def test_one_node_reads_status_and_cmdline_at_once(node: str | None) -> None:
    w = _Overlap()
    base, _ = scenario(nodes=1)
    w.objects, w.exec_handlers = base.objects, base.exec_handlers
    t = locate(w, alert=text_alert(), options=LocateOptions(node=node))
    _assert_miner(t, LocateMethod.HOST_PID)
    cmdline_reads = [a for a in w.exec_argvs() if a[-1].endswith("/cmdline")]
    assert len(cmdline_reads) == 1
    assert w.most == 2  # the status read and the cmdline read overlapped
    # the node's pods were listed once, alongside the /proc reads
    node_lists = [c for c in w.calls if c[:4] == ("list", "pods", "", "")]
    assert [c[4] for c in node_lists] == ["spec.nodeName=lab-node"]
