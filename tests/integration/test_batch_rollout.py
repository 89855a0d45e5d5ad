"""ds_batch_rollout on the real cluster: 50 KWOK nodes of the test's own, a DaemonSet pinned to exactly them.

Every assertion reads the cluster back (pod UIDs and controller-revision-hash labels per node, the DaemonSet's
strategy, annotations and resourceVersion); nothing is mocked.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import signal
import subprocess
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


@pytest.mark.matrix
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


# --- canary rules ------------------------------------------------------------------------------
# The test cluster's KWOK stages (tests/cluster/kwok-stages.yaml.tmpl): `crashloop` never gets Ready and restarts
# every 9-14 s (exit 1, then a CrashLoopBackOff back-off); `restart-once:after-Ns` gets Ready and restarts once N
# seconds later; `oomkilled:after-Ns` gets Ready, is OOMKilled N seconds later and restarts.
CRASHLOOP = "example.invalid/crashloop:1"
ZONE = "topology.kubernetes.io/zone"


def restart_once(seconds: int) -> str:
    return f"example.invalid/restart-once:after-{seconds}s"


def canary_args(namespace: str, image: str, **extra: Any) -> dict[str, Any]:
    return {**args(namespace, images={CONTAINER: image}, batches=[1, "100%"], min_available_seconds=1), **extra}


def assert_rolled_back(kubectl, namespace: str, result: dict[str, Any], old_pods: dict, touched: list[str]) -> None:
    """RESULT rolled TOUCHED back (to the old revision, Ready) and left every other node's pod as it was."""
    assert result["failed"] is True, result
    assert result["outcome"] == "rolled_back", result["msg"]
    assert sorted(result["touched_nodes"]) == sorted(touched)
    assert result["rollback"]["complete"] is True
    after = pods_on_nodes(kubectl, namespace)
    old_hash = next(iter(old_pods.values()))[1]
    assert {rev for _uid, rev in after.values()} == {old_hash}
    untouched = [node for node in old_pods if node not in touched]
    assert {node: after[node] for node in untouched} == {node: old_pods[node] for node in untouched}
    live = daemonset(kubectl, namespace)
    assert live["spec"]["updateStrategy"] == STRATEGY
    assert STATE_ANNOTATION not in live["metadata"].get("annotations", {})


def test_canary_restart_budget_stops_a_crash_loop_over_it(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(3)
    old_pods = pods_on_nodes(kubectl, namespace)
    failed = run_module("ds_batch_rollout", canary_args(namespace, CRASHLOOP, restart_budget=1, batch_timeout=90))
    assert_rolled_back(kubectl, namespace, failed, old_pods, nodes[:1])
    assert "batch 1 (1) failed its gate" in failed["msg"]
    assert f"{nodes[0]}: pod {NAME}-" in failed["msg"]  # the node and the pod are named
    assert "restarted 2 times (restart_budget 1)" in failed["msg"]  # CrashLoopBackOff waited for the budget
    assert failed["batches"][0]["phase"] == "gate"


def test_canary_bake_catches_a_restart_after_the_gate(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(3)
    old_pods = pods_on_nodes(kubectl, namespace)
    failed = run_module("ds_batch_rollout", canary_args(namespace, restart_once(4), bake_seconds=12))
    assert_rolled_back(kubectl, namespace, failed, old_pods, nodes[:1])
    assert "batch 1 (1) failed its bake" in failed["msg"]
    assert "restarted 1 time (restart_budget 0)" in failed["msg"]
    assert [(batch["gate"], batch["phase"]) for batch in failed["batches"]] == [("failed", "bake")]
    assert any("gate passed" in line for line in failed["log"])  # the gate alone would have let it through
    assert any(line.endswith("baking 12s: no restart and no unready pod allowed (restart_budget 0)")
               for line in failed["log"])  # fmt: skip


def test_canary_restart_within_budget_starts_the_bake_clock_again(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(2)
    done = run_module("ds_batch_rollout", canary_args(namespace, restart_once(4), bake_seconds=8, restart_budget=1))
    assert done.get("failed") is not True, done.get("msg")
    assert done["outcome"] == "complete"
    assert [batch["gate"] for batch in done["batches"]] == ["passed", "passed"]
    resets = [
        line for line in done["log"] if "the bake clock starts again (1 restart within the restart budget)" in line
    ]
    assert len(resets) == 2  # one per batch: each new pod restarted once, 4s after it was Ready
    assert all(batch["elapsed"] >= 12 for batch in done["batches"])  # 4s to the restart, then 8s without one
    pods = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
    assert sorted(pod["status"]["containerStatuses"][0]["restartCount"] for pod in pods) == [1] * len(nodes)


def test_canary_oom_kill_fails_whatever_the_budget(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(3)
    old_pods = pods_on_nodes(kubectl, namespace)
    oom = "example.invalid/oomkilled:after-2s"
    failed = run_module(
        "ds_batch_rollout", dict(canary_args(namespace, oom, restart_budget=5), min_available_seconds=8)
    )
    assert_rolled_back(kubectl, namespace, failed, old_pods, nodes[:1])
    assert "batch 1 (1) failed its gate" in failed["msg"]
    assert f"{nodes[0]}: pod {NAME}-" in failed["msg"]
    assert f"container {CONTAINER} OOMKilled" in failed["msg"]


def test_canary_pause_watches_the_updated_pods(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(3)
    old_pods = pods_on_nodes(kubectl, namespace)
    failed = run_module("ds_batch_rollout", canary_args(namespace, restart_once(5), pause_seconds=15))
    assert_rolled_back(kubectl, namespace, failed, old_pods, nodes[:1])  # batch 2 never started
    assert "batch 1 (1) failed during the pause after it" in failed["msg"]
    assert "restarted 1 time (restart_budget 0)" in failed["msg"]
    assert [(batch["batch"], batch["phase"]) for batch in failed["batches"]] == [(1, "pause")]
    assert any(line.startswith("pausing 15s before batch 2/2 (100%)") for line in failed["log"])


def test_canary_topology_spread_first_batch_covers_each_zone(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(7)
    zones = {
        nodes[0]: "zone-a",
        nodes[1]: "zone-a",
        nodes[2]: "zone-a",
        nodes[3]: "zone-b",
        nodes[4]: "zone-b",
        nodes[5]: "zone-c",
    }  # fmt: skip  (nodes[6] has no zone: a group of its own)
    for node, zone in zones.items():
        kubectl("label", "node", node, f"{ZONE}={zone}")
    before = daemonset(kubectl, namespace)["metadata"]["resourceVersion"]
    old_pods = pods_on_nodes(kubectl, namespace)
    spread = dict(canary_args(namespace, CRASHLOOP), batches=[1, "50%", "100%"], topology_key=ZONE)

    planned = run_module("ds_batch_rollout", spread, check=True)
    assert planned["outcome"] == "planned", planned.get("msg")
    first = planned["plan"]["batches"][0]
    assert first["nodes"] == [nodes[0], nodes[3], nodes[5], nodes[6]]  # one node of each zone, and the unlabelled
    assert first["spread"] == {"zone-a": 1, "zone-b": 1, "zone-c": 1, "(none)": 1}
    assert planned["plan"]["topology"] == {"key": ZONE, "groups": {"zone-a": 3, "zone-b": 2, "zone-c": 1, "(none)": 1}}
    assert any("[zone-a 1, zone-b 1, zone-c 1, (none) 1]" in line for line in planned["plan_lines"])
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == before
    assert pods_on_nodes(kubectl, namespace) == old_pods

    failed = run_module("ds_batch_rollout", spread)
    assert_rolled_back(kubectl, namespace, failed, old_pods, first["nodes"])
    assert failed["untouched_nodes"] == [nodes[1], nodes[4], nodes[2]]  # the plan's order: zones in proportion


def test_canary_max_in_flight_replaces_a_few_pods_at_a_time(kubectl, namespace, make_fleet, run_module):
    nodes = make_fleet(5)
    old_pods = pods_on_nodes(kubectl, namespace)
    one_at_a_time = dict(args(namespace, images={CONTAINER: MISSING}), batches=[4, "100%"], max_in_flight=1)
    failed = run_module("ds_batch_rollout", one_at_a_time)
    assert_rolled_back(kubectl, namespace, failed, old_pods, nodes[:1])  # the other 3 of the batch kept their pods
    assert failed["batches"][0]["nodes"] == nodes[:1]

    done = run_module("ds_batch_rollout", canary_args(namespace, GOOD, batches=[4, "100%"], max_in_flight=2))
    assert done.get("failed") is not True, done.get("msg")
    assert any(line.endswith("2 of 4 replaced (max_in_flight 2)") for line in done["log"])
    listed = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
    pods = {pod["spec"]["nodeName"]: pod for pod in listed}
    ready = sorted(next(c["lastTransitionTime"] for c in pods[node]["status"]["conditions"] if c["type"] == "Ready")
                   for node in nodes[:2])  # fmt: skip
    # the third and fourth pods were created only once a pod of the first two was healthy (and the batch's fifth
    # node, in batch 2, after the whole batch)
    assert all(pods[node]["metadata"]["creationTimestamp"] >= ready[0] for node in nodes[2:4])


def start_module(ansible_env: dict[str, str], module_args: dict[str, Any]) -> subprocess.Popen:
    """ds_batch_rollout in the background, in a session of its own (so it can be killed with all its processes)."""
    cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "kubeops.daemonset.ds_batch_rollout",
           "-a", json.dumps(module_args)]  # fmt: skip
    return subprocess.Popen(cmd, env=ansible_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def kill_when_baking(kubectl, namespace: str, proc: subprocess.Popen, eventually, running,
                     baked: float = 0) -> dict:  # fmt: skip
    """Kill PROC (its session, like a lost AWX job) once its bake has run BAKED seconds; the state it left. The
    task's worker is in a session of its own (ansible-core 2.21) and stops at its next request, as a lost job's
    would have gone with it: what comes next starts once it has."""
    state: dict[str, Any] = {}

    def baking() -> dict | None:
        annotations = daemonset(kubectl, namespace)["metadata"].get("annotations", {})
        state.update(json.loads(annotations.get(STATE_ANNOTATION, "{}")))
        progress = state.get("progress") or {}
        since = progress.get("since")
        if progress.get("phase") != "bake" or since is None:
            return None
        started = datetime.datetime.fromisoformat(since.replace("Z", "+00:00"))
        return progress if (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() >= baked else None

    progress = eventually(baking, timeout=90)
    assert progress, "the rollout never reached its bake"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    worker = state["owner"]["pid"]
    assert eventually(lambda: not running(worker), 15, 0.2), f"worker {worker} still runs"
    return progress


def test_canary_bake_and_restart_baseline_survive_an_interrupted_run(
    kubectl, namespace, make_fleet, run_module, ansible_env, eventually, running
):
    nodes = make_fleet(2)
    old_pods = pods_on_nodes(kubectl, namespace)
    late = canary_args(namespace, restart_once(10), bake_seconds=40)
    kill_when_baking(kubectl, namespace, start_module(ansible_env, late), eventually, running)

    # the restart comes while no run watches: the resumed run still counts it (new pods count from 0)
    def restarted() -> bool:
        pods = json.loads(kubectl("get", "pods", "-o", "json", namespace=namespace).stdout)["items"]
        return any(status["restartCount"] for pod in pods for status in pod["status"].get("containerStatuses", []))

    assert eventually(restarted, timeout=30)
    failed = run_module("ds_batch_rollout", late)
    assert any(line.startswith("continuing the bake of batch 1 (1) started") for line in failed["log"])
    assert_rolled_back(kubectl, namespace, failed, old_pods, nodes[:1])
    assert "batch 1 (1) failed its bake" in failed["msg"]
    assert "restarted 1 time (restart_budget 0)" in failed["msg"]


def test_canary_resumed_bake_goes_on_with_its_clock(
    kubectl, namespace, make_fleet, run_module, ansible_env, eventually, running
):
    make_fleet(2)
    good = canary_args(namespace, GOOD, bake_seconds=20)
    progress = kill_when_baking(kubectl, namespace, start_module(ansible_env, good), eventually, running, baked=6)
    resumed = run_module("ds_batch_rollout", good)
    assert resumed.get("failed") is not True, resumed.get("msg")
    assert resumed["outcome"] == "complete"
    assert f"continuing the bake of batch 1 (1) started {progress['started']}" in resumed["log"]
    first = resumed["batches"][0]
    assert (first["batch"], first["nodes"], first["gate"]) == (1, [], "passed")  # finished here, replaced earlier
    assert first["elapsed"] < 20  # the rest of the 20 s: a new bake could not end sooner than 20 s
    assert resumed["batches"][1]["elapsed"] >= 20


BAD_CANARY_INPUTS = [
    ({"bake_seconds": -1}, "bake_seconds must be at least 0 (got -1)"),
    ({"restart_budget": -2}, "restart_budget must be at least 0 (got -2)"),
    ({"max_in_flight": 0}, "max_in_flight must be at least 1 (got 0)"),
    ({"topology_key": "zone name"}, "topology_key 'zone name' is not a label key"),
    ({"topology_key": "example.com/no-such-zone"}, "topology_key 'example.com/no-such-zone': none of the 2 eligible"),
    (
        {"topology_key": ZONE, "batches": [{"selector": {"pool": "canary"}}, "100%"]},
        "batch 1 is a selector pool=canary",
    ),
]


def test_canary_bad_inputs_change_nothing(kubectl, namespace, make_fleet, run_module):
    make_fleet(2)
    before = daemonset(kubectl, namespace)["metadata"]["resourceVersion"]
    old_pods = pods_on_nodes(kubectl, namespace)
    for extra, message in BAD_CANARY_INPUTS:
        for check in (True, False):
            result = run_module("ds_batch_rollout", dict(canary_args(namespace, GOOD), **extra), check=check)
            assert result["failed"] is True, result
            assert message in result["msg"], (extra, result["msg"])
            assert result["msg"].startswith(f"DaemonSet {namespace}/{NAME}: ")
    assert daemonset(kubectl, namespace)["metadata"]["resourceVersion"] == before
    assert pods_on_nodes(kubectl, namespace) == old_pods
