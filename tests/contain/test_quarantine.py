from __future__ import annotations

import time
from pathlib import Path

import pytest

from falcoir.core.alert import Alert, Connection, Process
from falcoir.core.contain import (
    LABEL_KEY,
    QuarantineOptions,
    quarantine,
    release,
)
from falcoir.core.contain.common import Step
from falcoir.core.gateway import JSON, NETWORK_POLICIES, PODS, Resource
from falcoir.core.incident import IncidentStore, read_actions
from falcoir.core.target import PodRef
from falcoir.errors import ApiError, ClusterError, Forbidden, InputError
from tests.contain.cluster import (
    NS,
    OTHER,
    POD,
    POOL,
    RS,
    ContainCluster,
    make_cluster,
    policies,
    target,
)

FAST = {"verify_seconds": 0.2, "detach_wait_seconds": 1.0}


def miner_alert(*, connection: bool = True) -> Alert:
    return Alert(
        raw="08:30:00.123 - Critical - Suspicious crypto miner process (...)",
        source_format="text",
        time="2026-11-28T08:30:00.123Z",
        priority="Critical",
        rule="Detect crypto miners using the Stratum protocol",
        process=Process(name="xmrig", cmdline=f"/tmp/xmrig -o {POOL[0]}:{POOL[1]} -u w -p x"),
        connection=Connection(remote_ip=POOL[0], remote_port=POOL[1]) if connection else None,
    )


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    return IncidentStore(tmp_path / "home")


def run(cluster: ContainCluster, store: IncidentStore, **opts: object):  # type: ignore[no-untyped-def]
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    steps: list[Step] = []
    result = quarantine(
        cluster,
        t,
        alert=miner_alert(),
        options=QuarantineOptions(**{**FAST, **opts}),  # type: ignore[arg-type]
        incident=inc,
        log=inc.action_log("tester"),
        on_step=steps.append,
        store=store,
    )
    return result, inc, steps


def test_quarantine_blocks_egress_of_exactly_that_pod(store: IncidentStore) -> None:
    cluster = make_cluster()
    result, inc, steps = run(cluster, store)

    pols = policies(cluster)
    assert len(pols) == 1
    pol = pols[0]
    assert pol["metadata"]["name"] == f"falcoir-quarantine-{inc.id}"
    assert pol["spec"] == {
        "podSelector": {"matchLabels": {LABEL_KEY: inc.id}},
        "policyTypes": ["Egress"],
    }
    ann = pol["metadata"]["annotations"]
    assert ann["falcoir.io/incident"] == inc.id
    assert ann["falcoir.io/alert-rule"] == "Detect crypto miners using the Stratum protocol"
    assert ann["falcoir.io/alert-time"] == "2026-11-28T08:30:00.123Z"
    assert ann["falcoir.io/applied-by"] == "tester"
    # only the one pod carries the label
    assert cluster.get(PODS, POD, NS)["metadata"]["labels"][LABEL_KEY] == inc.id
    assert LABEL_KEY not in cluster.get(PODS, OTHER, NS)["metadata"]["labels"]
    # policy first, then label
    mutations = [c for c in cluster.calls if c[0] in ("create", "patch")]
    assert mutations == [
        ("create", "networkpolicies", NS, pol["metadata"]["name"]),
        ("patch", "pods", NS, POD),
    ]
    # verified from inside the pod: reachable before, not after
    doc = result.to_dict()
    assert doc["verified"]["egress_blocked"] is True
    assert doc["verified"]["probe"]["before"]["connected"] is True
    assert doc["verified"]["probe"]["after"]["connected"] is False
    assert doc["verified"]["selects_only_target"] is True
    assert doc["verified"]["labelled_pods"] == [POD]
    assert doc["policy"] == {
        "namespace": NS,
        "name": pol["metadata"]["name"],
        "status": "created",
        "differences": [],
        "object": doc["policy"]["object"],
    }
    assert doc["label"] == {"key": LABEL_KEY, "value": inc.id, "status": "applied"}
    assert doc["dry_run"] is False and doc["changed"] is True
    # argv only: host and port travel as separate arguments to a constant script
    probe_argv = doc["verified"]["probe"]["after"]["argv"]
    assert probe_argv[-2:] == [POOL[0], str(POOL[1])]
    assert all(POOL[0] not in a for a in probe_argv[:-2])
    # the action log holds both changes
    actions = [(a.action, a.kind, a.outcome) for a in read_actions(inc.actions_path)]
    assert actions == [("create", "NetworkPolicy", "ok"), ("patch", "Pod", "ok")]
    assert store.get(inc.id).policy == pol["metadata"]["name"]  # type: ignore[union-attr]
    assert [s.name for s in steps][:3] == ["probe", "policy", "label"]


def test_second_run_changes_nothing(store: IncidentStore) -> None:
    cluster = make_cluster()
    _, inc, _ = run(cluster, store)
    cluster.calls.clear()
    second, inc2, _ = run(cluster, store)
    assert inc2.id == inc.id
    assert second.policy_status == "unchanged"
    assert second.label_status == "unchanged"
    assert second.changed is False
    assert second.egress_blocked is True
    assert not [c for c in cluster.calls if c[0] in ("create", "patch", "delete")]
    assert len(policies(cluster)) == 1


def test_enforcement_off_is_reported_loudly(store: IncidentStore) -> None:
    cluster = make_cluster(enforce=False)
    result, _, _ = run(cluster, store)
    assert result.egress_blocked is False
    assert result.verified["probe"]["after"]["connected"] is True
    assert any("does not enforce" in w for w in result.warnings)
    assert any("NOT contained" in w for w in result.warnings)


def test_allow_lists_and_ingress_shape(store: IncidentStore) -> None:
    cluster = make_cluster()
    result, _, _ = run(
        cluster,
        store,
        ingress=True,
        allow_dns=True,
        allow_cidrs=("192.168.10.0/24", "2001:db8::/32", "192.168.10.0/24"),
    )
    spec = policies(cluster)[0]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec
    assert spec["egress"] == [
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                    },
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [{"ipBlock": {"cidr": "192.168.10.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/32"}}]},
    ]
    assert result.verified["ingress_denied"] is True


def test_existing_different_policy_is_reported_not_overwritten(store: IncidentStore) -> None:
    cluster = make_cluster()
    run(cluster, store)
    before = policies(cluster)[0]
    result, _, _ = run(cluster, store, allow_dns=True)
    assert result.policy_status == "differs"
    assert result.policy_differences == ("egress",)
    assert policies(cluster)[0] == before
    assert any("differs" in w for w in result.warnings)
    doc = result.to_dict()["policy"]
    assert doc["object"] == before  # what is in the cluster
    assert doc["wanted"]["spec"]["egress"][0]["ports"][0]["port"] == 53  # what was asked


@pytest.mark.parametrize(
    ("tools", "tool"),
    [
        (("timeout", "bash"), "bash"),
        (("bash",), "bash"),
        (("nc",), "nc"),
        (("busybox",), "busybox-nc"),
        (("python3",), "python3"),
    ],
)
def test_probe_uses_the_best_tool_the_image_has(
    store: IncidentStore, tools: tuple[str, ...], tool: str
) -> None:
    cluster = make_cluster(tools=tools)
    result, _, _ = run(cluster, store)
    assert result.verified["probe"]["after"]["tool"] == tool
    assert result.egress_blocked is True


def test_no_tool_is_reported_as_unverified(store: IncidentStore) -> None:
    cluster = make_cluster(tools=())
    result, _, _ = run(cluster, store)
    assert result.egress_blocked is None
    assert "no tool to probe with" in result.verified["reason"]
    assert result.policy_status == "created"  # containment still applied


def test_unreachable_endpoint_proves_nothing(store: IncidentStore) -> None:
    cluster = make_cluster()
    cluster.reachable.clear()
    result, _, _ = run(cluster, store)
    assert result.egress_blocked is None
    assert "before the quarantine either" in result.verified["reason"]


def test_no_endpoint_is_unverified_and_probe_override_works(store: IncidentStore) -> None:
    cluster = make_cluster()
    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    result = quarantine(
        cluster,
        t,
        alert=None,
        options=QuarantineOptions(**FAST),  # type: ignore[arg-type]
        incident=inc,
        log=inc.action_log(),
    )
    assert result.egress_blocked is None
    assert "--probe" in result.verified["reason"]
    cluster2 = make_cluster()
    t2 = target(cluster2)
    result2 = quarantine(
        cluster2,
        t2,
        alert=None,
        options=QuarantineOptions(probe=POOL, **FAST),  # type: ignore[arg-type]
        incident=inc,
        log=inc.action_log(),
    )
    assert result2.egress_blocked is True
    assert result2.verified["probe"]["endpoint"]["source"] == "--probe"


def test_missing_permissions_are_all_named_and_nothing_changes(store: IncidentStore) -> None:
    cluster = make_cluster()
    cluster.denied |= {
        ("create", "networkpolicies", NS),
        ("patch", "pods", NS),
        ("create", "pods/exec", None),
    }
    with pytest.raises(Forbidden) as err:
        run(cluster, store)
    assert set(err.value.missing) == {
        "create networkpolicies.networking.k8s.io -n shop",
        "patch pods -n shop",
        "create pods/exec -n shop",
    }
    assert not [c for c in cluster.calls if c[0] in ("create", "patch", "delete", "exec")]
    assert policies(cluster) == []


def test_dry_run_changes_nothing_and_logs_dry_run(store: IncidentStore) -> None:
    cluster = make_cluster()
    result, inc, _ = run(cluster, store, dry_run=True)
    assert result.dry_run is True
    assert result.policy_status == "dry-run"
    assert result.label_status == "dry-run"
    assert result.policy_object["spec"]["policyTypes"] == ["Egress"]
    assert policies(cluster) == []
    assert LABEL_KEY not in cluster.get(PODS, POD, NS)["metadata"]["labels"]
    assert {a.outcome for a in read_actions(inc.actions_path)} == {"dry-run"}
    assert not [c for c in cluster.calls if c[0] == "exec"]


def test_pod_already_quarantined_by_another_incident(store: IncidentStore) -> None:
    cluster = make_cluster()
    cluster.objects[("pods", NS, POD)]["metadata"]["labels"][LABEL_KEY] = (
        "inc-20260101-000000-abcdef"
    )
    # the label counts only with falcoir's policy of that incident behind it
    earlier = store.open(NS, OTHER, None, incident_id="inc-20260101-000000-abcdef")
    store.set_policy(earlier, "falcoir-quarantine-inc-20260101-000000-abcdef")
    with pytest.raises(InputError, match="already quarantined"):
        run(cluster, store)
    assert policies(cluster) == []


def test_detach_from_owner_keeps_pod_and_starts_replacement(store: IncidentStore) -> None:
    cluster = make_cluster()
    result, inc, _ = run(cluster, store, detach_from_owner=True)
    pod = cluster.get(PODS, POD, NS)
    assert not pod["metadata"].get("ownerReferences")
    assert pod["metadata"]["labels"] == {LABEL_KEY: inc.id}
    assert result.detach is not None and result.detach["released"] is True
    assert result.detach["removed_labels"] == {
        "app": "cryptominer-demo",
        "pod-template-hash": "7d9f8c6b5",
    }
    assert cluster.replacements == 1
    replacement = cluster.get(PODS, f"{RS}-new1", NS)
    assert LABEL_KEY not in replacement["metadata"]["labels"]
    labelled = cluster.list(PODS, NS, label_selector=f"{LABEL_KEY}={inc.id}")
    assert [p["metadata"]["name"] for p in labelled] == [POD]
    assert result.egress_blocked is True
    # the policy came before the detach
    kinds = [(c[0], c[1]) for c in cluster.calls if c[0] in ("create", "patch")]
    assert kinds[0] == ("create", "networkpolicies")


class Flaky(ContainCluster):
    """Answers 429 to the first create, and fails every pod patch with a 500."""

    fail_patch: bool = False
    creates: int = 0

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        self.creates += 1
        if self.creates == 1:
            raise ApiError("Too many requests", status=429, reason="TooManyRequests")
        return super().create(resource, body, dry_run=dry_run)

    def patch(self, resource, name, patch, namespace=None, **kw):  # type: ignore[no-untyped-def]
        if self.fail_patch and resource is PODS:
            raise ApiError("internal error", status=500, reason="InternalError")
        return super().patch(resource, name, patch, namespace, **kw)


def test_an_error_the_gateway_gave_up_on_is_not_retried_again(store: IncidentStore) -> None:
    # The gateway retries 429/5xx/drops itself where that is safe; what reaches
    # containment is final: one create, the error reported, nothing half-applied.
    cluster = Flaky()
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    t0 = time.monotonic()
    with pytest.raises(ApiError, match="Too many requests"):
        run(cluster, store)
    assert time.monotonic() - t0 < 1.0
    assert cluster.creates == 1
    assert policies(cluster) == []
    assert LABEL_KEY not in cluster.get(PODS, POD, NS)["metadata"]["labels"]


def test_half_applied_state_is_reported(store: IncidentStore) -> None:
    cluster = Flaky()
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    cluster.fail_patch = True
    cluster.creates = 1  # the create goes through
    with pytest.raises(ClusterError, match="half-applied") as err:
        run(cluster, store)
    assert "falcoir release --incident" in (err.value.hint or "")
    assert len(policies(cluster)) == 1
    inc = store.for_pod(NS, POD, None)
    assert inc is not None
    outcomes = [(a.kind, a.outcome) for a in read_actions(inc.actions_path)]
    assert outcomes == [("NetworkPolicy", "ok"), ("Pod", "failed")]


def test_release_by_pod_and_by_incident(store: IncidentStore) -> None:
    cluster = make_cluster()
    _, inc, _ = run(cluster, store)
    foreign = {
        "metadata": {"name": "keep-me", "namespace": NS, "labels": {LABEL_KEY: inc.id}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    cluster.add(NETWORK_POLICIES, foreign)
    original = cluster.get(PODS, OTHER, NS)
    res = release(cluster, pod=PodRef(NS, POD), incident_id=None, store=store)
    assert res.incident == inc.id
    assert res.unlabelled == (POD,)
    assert res.deleted_policies == (f"falcoir-quarantine-{inc.id}",)
    assert [p["metadata"]["name"] for p in policies(cluster)] == ["keep-me"]
    assert LABEL_KEY not in cluster.get(PODS, POD, NS)["metadata"]["labels"]
    assert cluster.get(PODS, POD, NS)["metadata"]["labels"] == {
        "app": "cryptominer-demo",
        "pod-template-hash": "7d9f8c6b5",
    }
    assert cluster.get(PODS, OTHER, NS) == original
    actions = [(a.action, a.kind) for a in read_actions(inc.actions_path)]
    assert actions[-2:] == [("patch", "Pod"), ("delete", "NetworkPolicy")]
    assert store.get(inc.id).policy is None  # type: ignore[union-attr]
    again = release(cluster, pod=None, incident_id=inc.id, store=store)
    assert again.changed is False


def test_release_validates_input(store: IncidentStore) -> None:
    cluster = make_cluster()
    with pytest.raises(InputError):
        release(cluster, pod=None, incident_id="../../etc", store=store)
    with pytest.raises(InputError):
        release(cluster, pod=PodRef(NS, POD), incident_id="inc-20260101-000000-abcdef")
    with pytest.raises(InputError):
        release(cluster, pod=PodRef("Bad_NS", POD), incident_id=None)
    res = release(cluster, pod=PodRef(NS, POD), incident_id=None, store=store)
    assert res.incident is None and not res.changed


class DropsExec(ContainCluster):
    """The exec stream dies after the baseline probe (a dropped connection)."""

    execs: int = 0

    def exec(self, namespace, pod, container, argv, **kw):  # type: ignore[no-untyped-def]
        self.execs += 1
        if self.execs > 1:
            from falcoir.errors import ClusterUnreachable

            raise ClusterUnreachable("connection reset by peer")
        return super().exec(namespace, pod, container, argv, **kw)


def test_failed_verification_keeps_the_applied_quarantine_visible(store: IncidentStore) -> None:
    cluster = DropsExec()
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    result, inc, _ = run(cluster, store)
    assert result.policy_status == "created" and result.label_status == "applied"
    assert result.egress_blocked is None
    assert "verification failed" in result.verified["reason"]
    assert [a.outcome for a in read_actions(inc.actions_path)] == ["ok", "ok"]


def test_probe_inside_an_allowed_network_is_not_a_proof(store: IncidentStore) -> None:
    cluster = make_cluster()
    result, _, _ = run(cluster, store, allow_cidrs=("10.96.0.0/16",))
    assert result.egress_blocked is None
    assert "inside --allow-cidr 10.96.0.0/16" in result.verified["reason"]
    assert not any("does not enforce" in w for w in result.warnings)


class Racy(ContainCluster):
    """The policy appears between our read and our create (another responder, or our own
    earlier attempt whose answer was lost)."""

    hidden_once: bool = True

    def get(self, resource, name, namespace=None):  # type: ignore[no-untyped-def]
        if resource is NETWORK_POLICIES and self.hidden_once:
            self.hidden_once = False
            from falcoir.errors import ApiNotFound

            raise ApiNotFound("not found", status=404, reason="NotFound")
        return super().get(resource, name, namespace)


def test_policy_created_meanwhile_is_compared_not_duplicated(store: IncidentStore) -> None:
    first = make_cluster()
    _, inc, _ = run(first, store)
    cluster = Racy()
    cluster.objects = first.objects
    cluster.install_miner(NS, POD)
    # drop the label so the second run has something to do
    del cluster.objects[("pods", NS, POD)]["metadata"]["labels"][LABEL_KEY]
    result, inc2, _ = run(cluster, store)
    assert inc2.id == inc.id
    assert result.policy_status == "unchanged"
    assert result.label_status == "applied"
    assert len(policies(cluster)) == 1
    assert ("create", "networkpolicies", NS, f"falcoir-quarantine-{inc.id}") in cluster.calls


class Slow(ContainCluster):
    """Each create and pod patch takes ``delay`` seconds; records when each ran."""

    delay: float = 0.3
    timed: list[tuple[str, float, float]]

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        if resource is not NETWORK_POLICIES:
            return super().create(resource, body, dry_run=dry_run)
        t = time.monotonic()
        time.sleep(self.delay)
        out = super().create(resource, body, dry_run=dry_run)
        self.timed.append(("create", t, time.monotonic()))
        return out

    def patch(self, resource, name, patch, namespace=None, **kw):  # type: ignore[no-untyped-def]
        t = time.monotonic()
        if resource is PODS:
            time.sleep(self.delay)
        out = super().patch(resource, name, patch, namespace, **kw)
        if resource is PODS:
            self.timed.append(("patch", t, time.monotonic()))
        return out


def test_policy_and_label_go_out_together(
    store: IncidentStore,
) -> None:
    # Containment is one round trip: the label is sent while the policy is still being
    # created, not after it.
    cluster = Slow()
    cluster.timed = []
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    result, inc, steps = run(cluster, store)
    creates = [c for c in cluster.timed if c[0] == "create"]
    assert len(creates) == 1, cluster.timed
    create = creates[0]
    label = next(c for c in cluster.timed if c[0] == "patch")
    assert label[1] < create[2], "the label waited for the policy to be created"
    assert result.policy_status == "created" and result.label_status == "applied"
    # Told and logged in the order they mean: policy, then label.
    names = [s.name for s in steps if s.name in ("policy", "label")]
    assert names == ["policy", "label"]
    outcomes = [(a.kind, a.outcome) for a in read_actions(inc.actions_path)]
    assert outcomes[:2] == [("NetworkPolicy", "ok"), ("Pod", "ok")]


class PolicyRefused(ContainCluster):
    """Every NetworkPolicy create fails with a 500 (after the label went out)."""

    fail_undo: bool = False
    pod_patches: int = 0

    def create(self, resource: Resource, body: JSON, *, dry_run: bool = False) -> JSON:
        if resource is NETWORK_POLICIES:
            time.sleep(0.1)  # the label goes out meanwhile
            raise ApiError("internal error", status=500, reason="InternalError")
        return super().create(resource, body, dry_run=dry_run)

    def patch(self, resource, name, patch, namespace=None, **kw):  # type: ignore[no-untyped-def]
        if resource is PODS:
            self.pod_patches += 1
            if self.fail_undo and self.pod_patches > 1:
                raise ApiError("internal error", status=500, reason="InternalError")
        return super().patch(resource, name, patch, namespace, **kw)


def test_a_failed_policy_takes_the_early_label_back(store: IncidentStore) -> None:
    cluster = PolicyRefused()
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    with pytest.raises(ApiError, match="internal error"):
        run(cluster, store)
    assert cluster.pod_patches == 2  # the label, then taking it back
    assert policies(cluster) == []
    assert LABEL_KEY not in cluster.get(PODS, POD, NS)["metadata"]["labels"]
    inc = store.for_pod(NS, POD, None)
    assert inc is not None
    acts = [(a.kind, a.outcome, a.detail) for a in read_actions(inc.actions_path)]
    assert [(k, o) for k, o, _ in acts] == [
        ("NetworkPolicy", "failed"),
        ("Pod", "ok"),
        ("Pod", "ok"),
    ]
    assert "taken back" in acts[2][2]


def test_a_label_that_cannot_be_taken_back_is_reported_half_applied(
    store: IncidentStore,
) -> None:
    cluster = PolicyRefused()
    cluster.fail_undo = True
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    with pytest.raises(ClusterError, match="half-applied") as err:
        run(cluster, store)
    assert "NOT isolated" in str(err.value)
    assert "falcoir release --incident" in (err.value.hint or "")
    assert cluster.get(PODS, POD, NS)["metadata"]["labels"].get(LABEL_KEY)


def test_detaching_refuses_a_forged_owner_of_another_api_group(store: IncidentStore) -> None:
    # A pod claiming a "ReplicaSet" controller of a made-up API group must not get the real
    # ReplicaSet of that name read, nor anything changed.
    cluster = make_cluster()
    pod = cluster.objects[("pods", NS, POD)]
    pod["metadata"]["ownerReferences"][0]["apiVersion"] = "evil.example.com/v1"
    with pytest.raises(InputError, match="not one falcoir reads"):
        run(cluster, store, detach_from_owner=True)
    assert not [c for c in cluster.calls if c[0] == "get" and c[1] == "replicasets"]
    assert policies(cluster) == []


class SlowFirstProbe(ContainCluster):
    """The first probe (the baseline) answers late; ``decide_first``: whether it made its
    connection at once (then waited) or only tried once the wait was over."""

    delay: float = 0.4
    decide_first: bool = True
    first_answer_at: float = 0.0
    labelled_at: float = 0.0

    def patch(self, resource, name, patch, namespace=None, **kw):  # type: ignore[no-untyped-def]
        if resource is PODS and not self.labelled_at:
            self.labelled_at = time.monotonic()
        return super().patch(resource, name, patch, namespace, **kw)

    def install_miner(self, namespace: str, pod: str) -> None:
        super().install_miner(namespace, pod)
        inner = self.exec_handlers[(namespace, pod, None)]
        probes: list[float] = []

        def handler(argv, stdin):  # type: ignore[no-untyped-def]
            first = not probes
            probes.append(time.monotonic())
            if first and not self.decide_first:
                time.sleep(self.delay)
                out = inner(argv, stdin)
            else:
                out = inner(argv, stdin)
                if first:
                    time.sleep(self.delay)
            if first:
                self.first_answer_at = time.monotonic()
            return out

        self.exec_handlers[(namespace, pod, None)] = handler


def _run_prepared(  # type: ignore[no-untyped-def]
    cluster: ContainCluster, store: IncidentStore, opts: QuarantineOptions | None = None
):
    """As respond does it: the reads and the baseline probe started ahead (prepare)."""
    from falcoir.core.contain.isolation import prepare

    t = target(cluster)
    inc = store.open(NS, POD, t.pod_uid)
    opts = opts or QuarantineOptions(**FAST)  # type: ignore[arg-type]
    ready = prepare(cluster, t, alert=miner_alert(), incident_id=inc.id, options=opts)
    steps: list[Step] = []
    result = quarantine(
        cluster,
        t,
        alert=miner_alert(),
        options=opts,
        incident=inc,
        log=inc.action_log("tester"),
        on_step=steps.append,
        store=store,
        prepared=ready,
    )
    return result, inc, steps


@pytest.mark.parametrize("decide_first", [True, False])
def test_the_label_does_not_wait_for_a_baseline_probe_started_ahead(
    store: IncidentStore, decide_first: bool
) -> None:
    cluster = SlowFirstProbe()
    cluster.decide_first = decide_first
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    t0 = time.monotonic()
    result, _, steps = _run_prepared(cluster, store)
    assert 0 < cluster.labelled_at < cluster.first_answer_at, "the label waited for the probe"
    assert result.label_status == "applied" and result.policy_status == "created"
    before = result.verified["probe"]["before"]
    if decide_first:
        # It connected before the policy was in force: a baseline, as ever.
        assert before is not None and before["connected"] is True
        assert result.verified["egress_blocked"] is True
    else:
        # It tried only once the pod was labelled and the policy in place: its failure
        # proves nothing about before, so it is not used; the proof runs without it.
        assert before is None
        assert any("not used as a baseline" in s.detail for s in steps if s.name == "probe")
        assert any("without a baseline" in w for w in result.warnings)
        assert result.verified["egress_blocked"] is True
    assert time.monotonic() - t0 < 5


def test_a_baseline_probe_started_with_the_quarantine_is_waited_for(
    store: IncidentStore,
) -> None:
    # `falcoir quarantine` starts the probe at the same moment: its exec could connect
    # only after the policy is enforced, so the label waits for its answer.
    cluster = SlowFirstProbe()
    cluster.decide_first = False
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    result, _, _ = run(cluster, store)
    assert cluster.first_answer_at <= cluster.labelled_at
    before = result.verified["probe"]["before"]
    assert before is not None and before["connected"] is True
    assert result.verified["egress_blocked"] is True


def test_changes_are_logged_before_a_slow_probe_read_ahead_answers(
    store: IncidentStore,
) -> None:
    # The policy and the label are live once sent: the action log must say so at once,
    # not after a probe that may take its whole timeout (a Ctrl-C meanwhile would lose it).
    import threading

    cluster = SlowFirstProbe()
    cluster.delay = 1.0
    cluster.objects = make_cluster().objects
    cluster.install_miner(NS, POD)
    out: list[object] = []
    runner = threading.Thread(target=lambda: out.append(_run_prepared(cluster, store)))
    runner.start()
    deadline = time.monotonic() + 0.8
    logged: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        inc = store.for_pod(NS, POD, None)
        if inc is not None and inc.actions_path.exists():
            logged = [(a.kind, a.outcome) for a in read_actions(inc.actions_path)]
            if len(logged) >= 2:
                break
        time.sleep(0.02)
    assert cluster.first_answer_at == 0.0, "the probe answered already: the test proves nothing"
    assert logged[:2] == [("NetworkPolicy", "ok"), ("Pod", "ok")]
    runner.join(10)
    assert out, "quarantine did not finish"
