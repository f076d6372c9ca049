"""Round trips on locate's critical path: independent reads go out together (every
call to the fake cluster takes a while: see :mod:`tests.locate.slow`)."""

from __future__ import annotations

import pytest

from falcoir.core.gateway import CRON_JOBS, DEPLOYMENTS, JOBS, JSON, PODS, REPLICA_SETS
from falcoir.core.locate import LocateOptions, locate
from falcoir.core.target import PodRef
from tests.locate.slow import Slow
from tests.locate.world import World, cid, json_alert, scenario, text_alert


def _full_cid(world: World, pod: JSON) -> str:
    meta = pod["metadata"]
    return cid(meta["namespace"] + meta["name"] + "miner")


@pytest.mark.parametrize(
    ("case", "round_trips", "requests"),
    [
        # get pod + its node's Falco pods | NSpid through Falco + ReplicaSet + Deployment
        ("k8s-fields", 2, 5),
        # the node's pods + its Falco pods | NSpid + ReplicaSet + Deployment
        ("container-id", 2, 5),
        # every pod + every Falco pod | NSpid + ReplicaSet + Deployment
        ("container-id (no node)", 2, 5),
        # the node's Falco pods + its pods | status + cmdline | ReplicaSet + Deployment
        ("host-pid", 3, 6),
        # every Falco pod | status + cmdline + the node's pods | ReplicaSet + Deployment
        ("host-pid (no node)", 3, 6),
        # get pod | ReplicaSet + Deployment
        ("pod-flag", 2, 3),
    ],
)
def test_round_trips_per_strategy(case: str, round_trips: int, requests: int) -> None:
    world, pod = scenario(nodes=1)
    meta = pod["metadata"]
    full = _full_cid(world, pod)
    alerts = {
        "k8s-fields": json_alert(ns=meta["namespace"], pod=meta["name"]),
        "container-id": json_alert(container_id=full[:12]),
        "container-id (no node)": json_alert(container_id=full[:12], node=None),
        "host-pid": json_alert(),
        "host-pid (no node)": text_alert(),
    }
    gw = Slow(world)
    if case == "pod-flag":
        target = locate(gw, pod=PodRef(meta["namespace"], meta["name"]))  # type: ignore[arg-type]
    else:
        target = locate(gw, alert=alerts[case])  # type: ignore[arg-type]
    assert (target.namespace, target.pod, target.container) == (
        meta["namespace"],
        meta["name"],
        "miner",
    )
    assert [(o.kind, o.name) for o in target.owner] == [
        ("ReplicaSet", "cryptominer-demo-7d9f8b6c5"),
        ("Deployment", "cryptominer-demo"),
    ]
    if case != "pod-flag":
        assert target.vpid == 7
    assert len(gw.spans) == requests, [c[:4] for c in world.calls]
    assert gw.round_trips == round_trips, sorted((s.start, s.verb) for s in gw.spans)


def test_many_nodes_are_asked_in_one_wave() -> None:
    world, pod = scenario(nodes=20)
    gw = Slow(world)
    target = locate(gw, alert=text_alert())  # type: ignore[arg-type]
    assert target.pod == pod["metadata"]["name"] and target.vpid == 7
    # every Falco pod | 20 status reads | the matching node's cmdline + its pods | owners
    assert gw.round_trips == 4
    assert world.count("exec") == 20 + 1  # the nginx processes: no cmdline read


def test_a_wrong_owner_guess_costs_one_read_and_changes_nothing() -> None:
    """A ReplicaSet whose name looks like a Deployment's, owned by nothing."""
    world = World()
    world.add(
        DEPLOYMENTS,
        {"metadata": {"name": "shop", "namespace": "default"}, "spec": {"selector": {}}},
    )
    world.add(REPLICA_SETS, {"metadata": {"name": "shop-abc12", "namespace": "default"}})
    pod = world.pod(
        "default",
        "shop-abc12-x",
        "lab-node",
        ("app",),
        labels={"pod-template-hash": "abc12"},
        owner=("ReplicaSet", "shop-abc12"),
    )
    target = locate(world, pod=PodRef("default", pod["metadata"]["name"]))
    assert [(o.kind, o.name) for o in target.owner] == [("ReplicaSet", "shop-abc12")]
    gets = sorted(c[1] for c in world.calls if c[0] == "get")
    assert gets == ["deployments", "pods", "replicasets"]  # the guess: read, not used


def test_an_owner_guess_that_is_another_object_is_not_taken() -> None:
    """The guessed Deployment exists but the ReplicaSet's owner has another uid."""
    world, pod = scenario(nodes=1)
    dep = world.objects[(DEPLOYMENTS.plural, "default", "cryptominer-demo")]
    dep["metadata"]["uid"] = "someone-else"  # recreated since the ReplicaSet was made
    target = locate(world, pod=PodRef("default", pod["metadata"]["name"]))
    assert [(o.kind, o.name) for o in target.owner] == [
        ("ReplicaSet", "cryptominer-demo-7d9f8b6c5"),
        ("Deployment", "cryptominer-demo"),
    ]
    assert target.owner[1].uid != "someone-else"


def test_a_forbidden_guess_is_reported_only_when_the_chain_needs_it() -> None:
    world, pod = scenario(nodes=1)
    world.denied.add(("get", "deployments", None))
    target = locate(world, pod=PodRef("default", pod["metadata"]["name"]))
    assert [o.kind for o in target.owner] == ["ReplicaSet", "Deployment"]
    assert any("cannot get deployments" in n for n in target.notes)
    # A bare pod: the chain is empty and no guess is made.
    bare = world.pod("default", "bare", "lab-node", ("app",))
    world.calls.clear()
    target = locate(world, pod=PodRef("default", bare["metadata"]["name"]))
    assert target.owner == () and target.notes == ()
    assert [c[1] for c in world.calls] == ["pods"]


def test_a_cronjob_is_read_with_its_job() -> None:
    world = World()
    cj = world.add(CRON_JOBS, {"metadata": {"name": "nightly", "namespace": "default"}})
    job = world.add(
        JOBS,
        {
            "metadata": {
                "name": "nightly-29012345",
                "namespace": "default",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "nightly",
                        "uid": cj["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            }
        },
    )
    pod = world.add(
        PODS,
        {
            "metadata": {
                "name": "nightly-29012345-abcde",
                "namespace": "default",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": "nightly-29012345",
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {"nodeName": "lab-node", "containers": [{"name": "app"}]},
            "status": {"phase": "Running"},
        },
    )
    gw = Slow(world)
    target = locate(gw, pod=PodRef("default", pod["metadata"]["name"]))  # type: ignore[arg-type]
    assert [(o.kind, o.name) for o in target.owner] == [
        ("Job", "nightly-29012345"),
        ("CronJob", "nightly"),
    ]
    assert gw.round_trips == 2 and len(gw.spans) == 3


def test_locate_options_still_scope_the_pid_read() -> None:
    """--falco-namespace narrows the Falco pods read ahead too."""
    world, pod = scenario(nodes=1)
    target = locate(
        world,
        alert=json_alert(ns="default", pod=pod["metadata"]["name"]),
        options=LocateOptions(falco_namespace="falco"),
    )
    assert target.vpid == 7
    lists = [c for c in world.calls if c[0] == "list"]
    assert lists and all(c[2] == "falco" for c in lists), lists


def test_on_found_comes_a_round_trip_before_the_owner_chain() -> None:
    import time

    from falcoir.core.target import Target

    world, _ = scenario(nodes=1)
    gw = Slow(world)
    seen: list[tuple[float, Target]] = []
    t0 = time.monotonic()
    target = locate(
        gw,  # type: ignore[arg-type]
        alert=text_alert(),
        on_found=lambda t: seen.append((time.monotonic() - t0, t)),
    )
    done = time.monotonic() - t0
    assert len(seen) == 1
    at, early = seen[0]
    assert early.owner == () and target.owner  # the chain came after
    assert (early.pod, early.container, early.vpid, early.host_pid) == (
        target.pod,
        target.container,
        7,
        12345,
    )
    assert done - at >= 0.9 * gw.latency  # one round trip (the owners) earlier


def test_on_found_is_not_called_when_nothing_is_found() -> None:
    from falcoir.errors import TargetNotFound

    world, _ = scenario(nodes=1)
    seen: list[object] = []
    with pytest.raises(TargetNotFound):
        locate(world, alert=text_alert(pid=999), on_found=seen.append)
    assert seen == []


def test_a_node_whose_falco_pod_has_the_older_labels_is_still_read() -> None:
    """Every Falco pod is looked for ahead (no node known) by the chart's labels; the
    pod's node has the older chart's: its own lookup finds it."""
    world, pod = scenario(nodes=2)
    falco = world.objects[(PODS.plural, "falco", "falco-lab-node")]
    falco["metadata"]["labels"] = {"app": "falco"}
    full = _full_cid(world, pod)
    target = locate(world, alert=json_alert(container_id=full[:12], node=None))
    assert target.vpid == 7 and target.host_pid == 12345
    reads = [c for c in world.calls if c[0] == "exec" and c[2] == "falco-lab-node"]
    assert reads and reads[0][4] == "cat"  # NSpid read through that Falco pod
