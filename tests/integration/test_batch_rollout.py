"""ds_batch_rollout on the real cluster: 50 KWOK nodes of the test's own, a DaemonSet pinned to exactly them.

Every assertion reads the cluster back (pod UIDs and controller-revision-hash labels per node, the DaemonSet's
strategy, annotations and resourceVersion); nothing is mocked.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"
GOOD = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
MISSING = "example.invalid/does-not-exist:1"
NODES = 50
BATCHES = [1, "10%", "50%", "100%"]
STATE_ANNOTATION = "daemonset.kubeops.io/batch-rollout"
STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}


@pytest.fixture
def make_fleet(namespace, test_node, seed_daemonset, apply_manifest, wait_rollout):
    """make_fleet(count): COUNT nodes labelled for this test and the seed DaemonSet (v2.5.2) rolled out on exactly
    them (a nodeSelector on the label, a toleration for the test nodes' taint)."""

    def make(count: int) -> list[str]:
        label = {"kubeops.test/batch": namespace}
        nodes = test_node(count=count, labels=label)
        manifest = seed_daemonset(namespace, tolerate_test_nodes=True, strategy=STRATEGY, change_cause="seed v2.5.2")
        manifest["spec"]["template"]["spec"]["nodeSelector"] = label
        apply_manifest(manifest)
        wait_rollout(namespace, NAME, timeout=180)
        return nodes

    return make


@pytest.fixture
def fleet(make_fleet) -> list[str]:
    return make_fleet(NODES)


@pytest.fixture
def health_endpoint() -> Iterator[dict[str, Any]]:
    """A local HTTP endpoint answering ``state["status"]`` (503 until the test says otherwise)."""
    state: dict[str, Any] = {"status": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"])
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    yield state
    server.shutdown()


def daemonset(kubectl, namespace: str) -> dict[str, Any]:
    return json.loads(kubectl("get", "ds", NAME, "-o", "json", namespace=namespace).stdout)


def pods_on_nodes(kubectl, namespace: str) -> dict[str, tuple[str, str]]:
    """node -> (pod UID, controller-revision-hash) of the DaemonSet's live pods."""
    pods = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
    return {
        pod["spec"]["nodeName"]: (pod["metadata"]["uid"], pod["metadata"]["labels"]["controller-revision-hash"])
        for pod in pods
        if pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp")
    }


def args(namespace: str, **extra: Any) -> dict[str, Any]:
    base = {"name": NAME, "namespace": namespace, "batches": BATCHES, "min_available_seconds": 2, "batch_timeout": 120}
    return {**base, **extra}


def test_good_image_goes_through_all_batches(kubectl, namespace, fleet, run_module):
    before = daemonset(kubectl, namespace)
    old_pods = pods_on_nodes(kubectl, namespace)
    assert set(old_pods) == set(fleet)

    planned = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}), check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["outcome"] == "planned"
    assert [len(batch["nodes"]) for batch in planned["plan"]["batches"]] == [1, 4, 20, 25]
    assert planned["plan"]["batches"][0]["nodes"] == [fleet[0]]  # natural name order
    assert "fluentd:v2.6.0" in planned["diff"]["after"]
    assert any(line.startswith("batch 3/4 (50%): 20 nodes -> 25 of 50") for line in planned["plan_lines"])
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert pods_on_nodes(kubectl, namespace) == old_pods

    done = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}, change_cause="v2.6.0 in batches"))
    assert done.get("failed") is not True, done.get("msg")
    assert done["outcome"] == "complete"
    assert done["changed"] is True
    assert [len(batch["nodes"]) for batch in done["batches"]] == [1, 4, 20, 25]
    assert all(batch["gate"] == "passed" for batch in done["batches"])
    assert sorted(done["touched_nodes"]) == sorted(fleet)
    assert done["untouched_nodes"] == []
    target = done["revision"]["target"]["hash"]
    after = pods_on_nodes(kubectl, namespace)
    assert {node: rev for node, (_uid, rev) in after.items()} == dict.fromkeys(fleet, target)
    assert all(after[node][0] != old_pods[node][0] for node in fleet)  # every pod replaced once

    live = daemonset(kubectl, namespace)
    assert live["spec"]["updateStrategy"] == STRATEGY  # the original strategy is back
    assert STATE_ANNOTATION not in live["metadata"].get("annotations", {})
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD
    history = kubectl("rollout", "history", f"ds/{NAME}", namespace=namespace).stdout
    assert "v2.6.0 in batches" in history

    again = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}, change_cause="v2.6.0 in batches"))
    assert again["changed"] is False, again
    assert again["outcome"] == "unchanged"
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert pods_on_nodes(kubectl, namespace) == after


def test_missing_image_stops_after_the_first_batch_and_rolls_back(kubectl, namespace, fleet, run_module):
    old_pods = pods_on_nodes(kubectl, namespace)
    old_hash = old_pods[fleet[0]][1]

    failed = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: MISSING}))
    assert failed["failed"] is True
    assert failed["outcome"] == "rolled_back"
    assert "batch 1 (1) failed its gate" in failed["msg"]
    assert "ErrImagePull" in failed["msg"] or "ImagePullBackOff" in failed["msg"]
    assert [batch["gate"] for batch in failed["batches"]] == ["failed"]
    assert failed["touched_nodes"] == [fleet[0]]
    assert failed["untouched_nodes"] == fleet[1:]
    assert failed["rollback"]["nodes"] == [fleet[0]]
    assert failed["rollback"]["complete"] is True
    assert failed["revision"]["previous"]["hash"] == old_hash

    after = pods_on_nodes(kubectl, namespace)
    assert {node: rev for node, (_uid, rev) in after.items()} == dict.fromkeys(fleet, old_hash)
    untouched = fleet[1:]
    assert {node: after[node] for node in untouched} == {node: old_pods[node] for node in untouched}
    assert after[fleet[0]][0] != old_pods[fleet[0]][0]  # the canary's pod was replaced, then rolled back

    live = daemonset(kubectl, namespace)
    assert live["spec"]["updateStrategy"] == STRATEGY
    assert STATE_ANNOTATION not in live["metadata"].get("annotations", {})
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] != MISSING


def test_interrupted_rollout_resumes_without_touching_done_nodes(kubectl, namespace, fleet, run_module):
    paused = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}, max_batches=2))
    assert paused.get("failed") is not True, paused.get("msg")
    assert paused["outcome"] == "paused"
    assert [len(batch["nodes"]) for batch in paused["batches"]] == [1, 4]
    assert paused["untouched_nodes"] == fleet[5:]
    target = paused["revision"]["target"]["hash"]
    middle = pods_on_nodes(kubectl, namespace)
    done_nodes = [node for node, (_uid, rev) in middle.items() if rev == target]
    assert sorted(done_nodes) == sorted(fleet[:5])
    live = daemonset(kubectl, namespace)
    assert live["spec"]["updateStrategy"]["type"] == "OnDelete"  # nothing rolls while paused
    assert json.loads(live["metadata"]["annotations"][STATE_ANNOTATION])["strategy"] == STRATEGY

    # a check-mode run shows the rest of the plan and changes nothing
    planned = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}), check=True)
    assert planned["plan"]["done"] == fleet[:5]
    assert [len(batch["nodes"]) for batch in planned["plan"]["batches"]] == [0, 0, 20, 25]
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]

    resumed = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}))
    assert resumed.get("failed") is not True, resumed.get("msg")
    assert resumed["outcome"] == "complete"
    assert [(batch["batch"], len(batch["nodes"])) for batch in resumed["batches"]] == [(3, 20), (4, 25)]
    assert not set(resumed["touched_nodes"]) & set(done_nodes)
    after = pods_on_nodes(kubectl, namespace)
    assert {node: after[node] for node in done_nodes} == {node: middle[node] for node in done_nodes}
    assert {rev for _uid, rev in after.values()} == {target}
    assert daemonset(kubectl, namespace)["spec"]["updateStrategy"] == STRATEGY


def test_bad_arguments_fail_before_anything_is_written(
    kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout, run_module
):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace, NAME)
    before = daemonset(kubectl, namespace)["metadata"]["resourceVersion"]
    unknown = run_module("ds_batch_rollout", args(namespace, images={"nope": GOOD}))
    assert unknown["failed"] is True
    assert "no container named nope" in unknown["msg"]
    bad = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}, batches=["150%"]))
    assert bad["failed"] is True
    assert "1% to 100%" in bad["msg"]
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == before


def test_gate_url_must_answer_2xx(kubectl, namespace, make_fleet, run_module, health_endpoint):
    nodes = make_fleet(3)
    old_pods = pods_on_nodes(kubectl, namespace)
    url_args = args(namespace, images={CONTAINER: GOOD}, gate_url=health_endpoint["url"], batch_timeout=8)

    failed = run_module("ds_batch_rollout", url_args)
    assert failed["outcome"] == "rolled_back", failed.get("msg")
    assert "503" in failed["msg"]
    assert failed["touched_nodes"] == nodes[:1]
    after = pods_on_nodes(kubectl, namespace)
    assert {rev for _uid, rev in after.values()} == {old_pods[nodes[0]][1]}
    assert {node: after[node] for node in nodes[1:]} == {node: old_pods[node] for node in nodes[1:]}

    health_endpoint["status"] = 200
    done = run_module("ds_batch_rollout", url_args)
    assert done["outcome"] == "complete", done.get("msg")
    assert [len(batch["nodes"]) for batch in done["batches"]] == [1, 1, 1]  # targets 1, 1 (10% of 3: nothing), 2, 3


def test_full_template_with_a_canary_pool_is_idempotent(kubectl, namespace, make_fleet, run_module, seed_daemonset):
    nodes = make_fleet(4)
    kubectl("label", "node", nodes[2], "pool=canary")  # the test's own node
    template = seed_daemonset(namespace, version=2, tolerate_test_nodes=True)["spec"]["template"]
    template["spec"]["nodeSelector"] = {"kubeops.test/batch": namespace}
    template_args = args(namespace, template=template, batches=[{"selector": {"pool": "canary"}}, "50%"])

    done = run_module("ds_batch_rollout", template_args, diff=True)
    assert done["outcome"] == "complete", done.get("msg")
    assert [batch["nodes"] for batch in done["batches"]] == [[nodes[2]], [nodes[0]], [nodes[1], nodes[3]]]
    assert done["batches"][2]["spec"] == "100%, added"
    assert "memory: 200Mi" in done["diff"]["after"]
    live = daemonset(kubectl, namespace)
    assert live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"

    # the server defaults the given template; compared semantically, it is what runs: nothing to do
    again = run_module("ds_batch_rollout", template_args)
    assert again["changed"] is False, again
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]


def test_dead_nodes_are_left_out_within_the_budget_and_refused_over_it(
    kubectl, namespace, make_fleet, run_module, eventually
):
    """A NotReady node the DaemonSet targets: over unhealthy_node_budget nothing is written and the node is named;
    within it the plan leaves the node out, names it, and every other node is updated."""
    nodes = make_fleet(4)
    dead = nodes[-1]
    kubectl("label", "node", dead, "kubeops.test/not-ready=true")  # its simulated kubelet reports NotReady

    def not_ready_taint() -> bool:
        taints = json.loads(kubectl("get", "node", dead, "-o", "json").stdout)["spec"].get("taints") or []
        return any(taint["key"] == "node.kubernetes.io/not-ready" for taint in taints)

    assert eventually(not_ready_taint, 60)
    before = daemonset(kubectl, namespace)["metadata"]["resourceVersion"]
    refused = run_module("ds_batch_rollout", args(namespace, images={CONTAINER: GOOD}, batches=["100%"]))
    assert refused["failed"] and dead in refused["msg"] and "over unhealthy_node_budget=0" in refused["msg"]
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == before

    within = args(namespace, images={CONTAINER: GOOD}, batches=["100%"], unhealthy_node_budget="25%")
    done = run_module("ds_batch_rollout", within)
    assert done["outcome"] == "complete", done.get("msg")
    assert [(s["node"], s["trouble"]) for s in done["skipped_nodes"]] == [(dead, "NotReady")]
    assert any(dead in warning for warning in done["warnings"])
    assert sorted(done["touched_nodes"]) == sorted(nodes[:-1])
