"""_batch on real objects captured from the local cluster (tests/unit/fixtures/batch/*.yaml).

The fixtures follow one DaemonSet (the seed's fluentd) driven by hand the way ds_batch_rollout drives it:
01 switched to OnDelete with image v2.6.0 (hash 7d8889d976) and the pods of kwok-worker-2 and -3 replaced;
02 then a does-not-exist image (6fcb6d8cb8) on worker-2 and -3 (ErrImagePull / ImagePullBackOff);
03 then a crashloop image (6588d5449b) on worker-1 (CrashLoopBackOff, 6 restarts);
04 the pods right after worker-3's old pod was deleted (its replacement Pending).
Each also holds the cluster's nodes: 3 workers, the tainted control plane, and a test node tainted
kubeops.test/dedicated (which the seed does not tolerate).
"""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _batch as b
from ansible_collections.kubeops.daemonset.plugins.module_utils import _canary, _objects, _placement, _template, _values

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "batch"
WORKERS = ["kwok-worker-1", "kwok-worker-2", "kwok-worker-3"]
OLD, NEW, BAD, CRASH = "84fc888bb7", "7d8889d976", "6fcb6d8cb8", "6588d5449b"


def load(stage: str) -> dict[str, list[dict]]:
    items = yaml.safe_load((FIXTURES / f"{stage}.yaml").read_text())["items"]
    kinds: dict[str, list[dict]] = {}
    for item in items:
        kinds.setdefault(item["kind"], []).append(item)
    return kinds


def at(text: str, seconds: float = 0) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) + datetime.timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def mixed() -> dict[str, list[dict]]:
    return load("01-on-delete-mixed")


def by_node(stage: dict[str, list[dict]], daemonset: dict | None = None) -> dict[str, dict]:
    return b.pods_by_node(daemonset or stage["DaemonSet"][0], stage["Pod"])


def many_nodes(template: dict, count: int, labels: dict[int, dict] | None = None) -> list[dict]:
    """COUNT copies of a captured worker node named node-1..node-COUNT (extra LABELS by number)."""
    nodes = []
    for number in range(1, count + 1):
        node = copy.deepcopy(template)
        node["metadata"]["name"] = f"node-{number}"
        node["metadata"]["labels"] = dict(node["metadata"]["labels"], **(labels or {}).get(number, {}))
        nodes.append(node)
    return nodes


# --- batch specifications ------------------------------------------------------------------


def test_parse_batches_counts_percentages_selectors():
    specs = b.parse_batches([1, "2", "10%", {"selector": {"pool": "canary"}}, "100%"])
    assert [(s["kind"], s["label"]) for s in specs] == [
        ("count", "1"),
        ("count", "2"),
        ("percent", "10%"),
        ("selector", "selector pool=canary"),
        ("percent", "100%"),
    ]
    assert specs[3]["value"] == {"matchLabels": {"pool": "canary"}}
    full = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
    assert b.parse_batches([{"selector": full}])[0]["value"] == full


@pytest.mark.parametrize(
    ("batches", "message"),
    [
        ([], "batches is empty"),
        ([0], "at least 1"),
        (["0%"], "1% to 100%"),
        (["150%"], "1% to 100%"),
        (["ten%"], "1% to 100%"),
        ([True], "a batch is"),
        (["canary"], "a batch is"),
        ([{"selector": {}}], "empty selector"),
        ([{"pool": "canary"}], "a batch is"),
    ],
)
def test_parse_batches_rejects(batches, message):
    with pytest.raises(b.BatchError, match=message):
        b.parse_batches(batches)


# --- nodes and pods ------------------------------------------------------------------------


def test_eligible_nodes_follow_taints_and_tolerations(mixed):
    daemonset = mixed["DaemonSet"][0]
    # the control plane's taint and the test node's kubeops.test/dedicated taint are not tolerated
    assert [n["metadata"]["name"] for n in _placement.eligible_nodes(daemonset, mixed["Node"])] == WORKERS
    tolerant = copy.deepcopy(daemonset)
    tolerant["spec"]["template"]["spec"]["tolerations"].append({"operator": "Exists"})
    assert len(_placement.eligible_nodes(tolerant, mixed["Node"])) == 5
    pinned = copy.deepcopy(daemonset)
    pinned["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "kwok-worker-2"}
    assert [n["metadata"]["name"] for n in _placement.eligible_nodes(pinned, mixed["Node"])] == ["kwok-worker-2"]


def test_natural_order():
    assert sorted(["n-10", "n-2", "n-1"], key=_values.natural_key) == ["n-1", "n-2", "n-10"]


def test_pods_by_node_and_hashes(mixed):
    pods = by_node(mixed)
    assert {node: _objects.pod_hash(pod) for node, pod in pods.items()} == {
        "kwok-worker-1": OLD,
        "kwok-worker-2": NEW,
        "kwok-worker-3": NEW,
    }


def test_pods_being_deleted_or_of_other_owners_are_ignored(mixed):
    pods = copy.deepcopy(mixed["Pod"])
    pods[0]["metadata"]["deletionTimestamp"] = "2026-11-27T07:46:00Z"
    pods[1]["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    assert len(b.pods_by_node(mixed["DaemonSet"][0], pods)) == 1


# --- the plan ------------------------------------------------------------------------------


def test_plan_new_template_all_pending(mixed):
    nodes = _placement.eligible_nodes(mixed["DaemonSet"][0], mixed["Node"])
    plan = b.plan_batches(b.parse_batches([1, "50%", "100%"]), nodes, by_node(mixed), None)
    assert plan["done"] == []
    assert [batch["nodes"] for batch in plan["batches"]] == [[WORKERS[0]], [WORKERS[1]], [WORKERS[2]]]
    assert [batch["target"] for batch in plan["batches"]] == [1, 2, 3]  # 50% of 3 rounds up to 2
    assert plan["pending"] == 3


def test_plan_resumes_skipping_nodes_on_the_target_revision(mixed):
    nodes = _placement.eligible_nodes(mixed["DaemonSet"][0], mixed["Node"])
    plan = b.plan_batches(b.parse_batches([1, "50%", "100%"]), nodes, by_node(mixed), NEW)
    assert plan["done"] == ["kwok-worker-2", "kwok-worker-3"]
    assert [batch["nodes"] for batch in plan["batches"]] == [[], [], ["kwok-worker-1"]]
    lines = b.plan_lines(plan)
    assert lines[0] == "2 of 3 eligible nodes already run the target revision"
    assert lines[1] == "batch 1/3 (1): nothing to do (2 of 3 already updated)"
    assert lines[3] == "batch 3/3 (100%): 1 node -> 3 of 3: kwok-worker-1"


def test_plan_finished_rollout_is_empty(mixed):
    pods = copy.deepcopy(mixed["Pod"])
    for pod in pods:
        pod["metadata"]["labels"]["controller-revision-hash"] = NEW
    nodes = _placement.eligible_nodes(mixed["DaemonSet"][0], mixed["Node"])
    plan = b.plan_batches(b.parse_batches([1, "100%"]), nodes, b.pods_by_node(mixed["DaemonSet"][0], pods), NEW)
    assert plan["pending"] == 0
    assert len(plan["done"]) == 3


def test_plan_fifty_nodes_cumulative_percentages_round_up(mixed):
    nodes = many_nodes(mixed["Node"][1], 50)
    plan = b.plan_batches(b.parse_batches([1, "10%", "50%", "100%"]), nodes, {}, None)
    assert [len(batch["nodes"]) for batch in plan["batches"]] == [1, 4, 20, 25]
    assert [batch["target"] for batch in plan["batches"]] == [1, 5, 25, 50]
    assert plan["batches"][0]["nodes"] == ["node-1"]
    assert plan["batches"][1]["nodes"] == ["node-2", "node-3", "node-4", "node-5"]  # natural order
    assert [node for batch in plan["batches"] for node in batch["nodes"]] == [f"node-{i}" for i in range(1, 51)]
    # 7% of 50 = 3.5 -> 4 nodes
    assert len(b.plan_batches(b.parse_batches(["7%"]), nodes, {}, None)["batches"][0]["nodes"]) == 4


def test_plan_fifty_nodes_resume_after_two_batches(mixed):
    nodes = many_nodes(mixed["Node"][1], 50)
    template = mixed["Pod"][0]
    done = {}
    for number in range(1, 6):
        pod = copy.deepcopy(template)
        pod["spec"]["nodeName"] = f"node-{number}"
        done[f"node-{number}"] = pod  # controller-revision-hash NEW
    plan = b.plan_batches(b.parse_batches([1, "10%", "50%", "100%"]), nodes, done, NEW)
    assert [len(batch["nodes"]) for batch in plan["batches"]] == [0, 0, 20, 25]
    assert plan["batches"][2]["nodes"][0] == "node-6"


def test_plan_canary_pool_first_then_percentages(mixed):
    nodes = many_nodes(mixed["Node"][1], 10, labels={7: {"pool": "canary"}, 9: {"pool": "canary"}})
    specs = b.parse_batches([{"selector": {"pool": "canary"}}, "50%"])
    plan = b.plan_batches(specs, nodes, {}, None)
    assert plan["batches"][0]["nodes"] == ["node-7", "node-9"]
    assert plan["batches"][1]["nodes"] == ["node-1", "node-2", "node-3"]  # 5 in all, 2 already in the canary
    # the list stops at 50%: a final 100% batch takes the rest
    assert plan["batches"][2]["spec"] == "100%, added"
    assert plan["batches"][2]["nodes"] == ["node-4", "node-5", "node-6", "node-8", "node-10"]


def test_plan_count_larger_than_the_cluster(mixed):
    nodes = many_nodes(mixed["Node"][1], 3)
    plan = b.plan_batches(b.parse_batches([10]), nodes, {}, None)
    assert [len(batch["nodes"]) for batch in plan["batches"]] == [3]


# --- the health gate -----------------------------------------------------------------------


def test_gate_passes_when_ready_long_enough(mixed):
    pods = by_node(mixed)
    verdict = b.evaluate_gate(pods, ["kwok-worker-2", "kwok-worker-3"], NEW, 10, at("2026-11-27T07:45:16Z"), {})
    assert verdict == {
        "state": "passed",
        "reasons": [],
        "waiting": [],
        "healthy": ["kwok-worker-2", "kwok-worker-3"],
        "wait": 0.0,
    }


def test_gate_waits_for_min_available_seconds(mixed):
    pods = by_node(mixed)  # worker-3 Ready since 07:45:06
    verdict = b.evaluate_gate(pods, ["kwok-worker-3"], NEW, 10, at("2026-11-27T07:45:09Z"), {})
    assert verdict["state"] == "waiting"
    assert verdict["waiting"] == ["kwok-worker-3: pod fluentd-elasticsearch-np7nl Ready for 3s of 10s"]
    assert verdict["wait"] == pytest.approx(7)


def test_gate_waits_while_the_old_pod_is_there(mixed):
    verdict = b.evaluate_gate(by_node(mixed), ["kwok-worker-1"], NEW, 0, at("2026-11-27T07:46:00Z"), {})
    assert verdict["state"] == "waiting"
    assert verdict["waiting"] == [f"kwok-worker-1: pod fluentd-elasticsearch-vdvvt still runs revision {OLD}"]
    assert b.evaluate_gate({}, ["kwok-worker-1"], NEW, 0, at("2026-11-27T07:46:00Z"), {})["waiting"][0].startswith(
        "kwok-worker-1: no pod yet"
    )


def test_gate_waits_for_a_pending_replacement(mixed):
    pending = load("04-replacement-pending")
    pods = b.pods_by_node(mixed["DaemonSet"][0], pending["Pod"])
    verdict = b.evaluate_gate(pods, ["kwok-worker-2", "kwok-worker-3"], NEW, 0, at("2026-11-27T07:45:06Z"), {})
    assert verdict["state"] == "waiting"
    assert [reason.split(":")[0] for reason in verdict["waiting"]] == ["kwok-worker-3"]


def test_gate_fails_fast_on_a_missing_image():
    bad = load("02-bad-image")
    pods = by_node(bad)
    now = at("2026-11-27T07:45:20Z")
    verdict = b.evaluate_gate(pods, ["kwok-worker-2", "kwok-worker-3"], BAD, 10, now, {})
    assert verdict["state"] == "failed"
    assert verdict["reasons"][0].startswith("kwok-worker-2: pod fluentd-elasticsearch-n9chq is not Ready: ErrImagePull")
    assert verdict["reasons"][1].startswith("kwok-worker-3: pod fluentd-elasticsearch-r6tvb is not Ready: ErrImagePull")
    patient = b.evaluate_gate(pods, ["kwok-worker-2", "kwok-worker-3"], BAD, 10, now, {}, fail_fast=False)
    assert patient["state"] == "waiting"
    assert len(patient["waiting"]) == 2


def test_gate_counts_restarts_from_the_baseline():
    crash = load("03-crashloop")
    pods = by_node(crash)
    now = at("2026-11-27T07:45:40Z")
    uid = pods["kwok-worker-1"]["metadata"]["uid"]
    # a pod the rollout created counts from 0: its 6 restarts break the default budget of 0
    verdict = b.evaluate_gate(pods, ["kwok-worker-1"], CRASH, 0, now, {}, fail_fast=False)
    assert verdict["reasons"] == ["kwok-worker-1: pod fluentd-elasticsearch-56m9q restarted 6 times (restart_budget 0)"]
    # restarts older than the rollout (the baseline) do not count: the crash loop itself fails it (fail fast)
    older = b.evaluate_gate(pods, ["kwok-worker-1"], CRASH, 0, now, {uid: 6})
    assert "CrashLoopBackOff" in older["reasons"][0]
    assert b.evaluate_gate(pods, ["kwok-worker-1"], CRASH, 0, now, {uid: 6}, fail_fast=False)["state"] == "waiting"


def test_gate_restart_budget():
    pods = by_node(load("03-crashloop"))
    now = at("2026-11-27T07:45:40Z")
    over = b.evaluate_gate(pods, ["kwok-worker-1"], CRASH, 0, now, {}, rules=_canary.Rules(restart_budget=5))
    assert over["reasons"] == ["kwok-worker-1: pod fluentd-elasticsearch-56m9q restarted 6 times (restart_budget 5)"]
    # within the budget a crash loop keeps the gate waiting (fail_fast or not): the budget decides
    within = b.evaluate_gate(pods, ["kwok-worker-1"], CRASH, 0, now, {}, rules=_canary.Rules(restart_budget=6))
    assert within["state"] == "waiting"
    assert within["waiting"][0].startswith(
        "kwok-worker-1: pod fluentd-elasticsearch-56m9q is not Ready: CrashLoopBackOff"
    )


# --- rollback ------------------------------------------------------------------------------


def test_touched_nodes_are_the_target_ones_plus_the_failed_batch():
    pods = by_node(load("02-bad-image"))
    assert b.touched_nodes(pods, BAD, ["kwok-worker-3", "node-x"]) == ["kwok-worker-2", "kwok-worker-3", "node-x"]


def test_rollback_ready(mixed):
    pods = by_node(mixed)
    assert b.rollback_ready(pods, WORKERS, OLD) == ["kwok-worker-2", "kwok-worker-3"]
    assert b.rollback_ready(pods, ["kwok-worker-1"], OLD) == []
    assert b.rollback_ready(by_node(load("02-bad-image")), ["kwok-worker-2"], BAD) == ["kwok-worker-2"]  # not Ready


# --- state and patches -----------------------------------------------------------------------


def test_state_round_trip_and_patches(mixed):
    daemonset = copy.deepcopy(mixed["DaemonSet"][0])
    daemonset["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
    previous = next(rev for rev in mixed["ControllerRevision"] if rev["revision"] == 1)
    state = b.new_state(daemonset, previous, "2026-11-27T07:45:00+00:00")
    assert state["previous"] == {"name": "fluentd-elasticsearch-84fc888bb7", "hash": OLD, "revision": 1}
    assert state["baseline"] == {}
    assert b.read_state(daemonset) is None

    patch = b.start_patch({"spec": {"containers": [{"name": "c", "image": "i"}]}}, state, "42", "canary")
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["metadata"]["annotations"]["kubernetes.io/change-cause"] == "canary"
    assert patch["spec"]["updateStrategy"] == {"type": "OnDelete", "rollingUpdate": None}
    daemonset["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])
    assert b.read_state(daemonset) == state

    finish = b.finish_patch(state, "43")
    assert finish["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
    assert finish["metadata"]["annotations"] == {b.STATE_ANNOTATION: None}
    on_delete = b.finish_patch(dict(state, strategy={"type": "OnDelete"}), "43")
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete", "rollingUpdate": None}


def test_read_state_ignores_garbage(mixed):
    daemonset = copy.deepcopy(mixed["DaemonSet"][0])
    daemonset["metadata"]["annotations"] = {b.STATE_ANNOTATION: "not json"}
    assert b.read_state(daemonset) is None
    daemonset["metadata"]["annotations"] = {b.STATE_ANNOTATION: json.dumps({"other": 1})}
    assert b.read_state(daemonset) is None


def test_template_patch(mixed):
    live = copy.deepcopy(mixed["DaemonSet"][0]["spec"]["template"])
    live["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1"}]
    patch = _template.template_patch(live, images={"fluentd-elasticsearch": "f:2", "setup": "busybox:2"})
    assert patch == {
        "spec": {
            "containers": [{"name": "fluentd-elasticsearch", "image": "f:2"}],
            "initContainers": [{"name": "setup", "image": "busybox:2"}],
        }
    }
    assert _template.template_patch(live) is None
    assert _template.template_patch(live, template={"spec": {"containers": []}}) == {
        "$patch": "replace",
        "spec": {"containers": []},
    }
    with pytest.raises(_template.TemplateError, match=r"no container named nope .*containers: fluentd-elasticsearch"):
        _template.template_patch(live, images={"nope": "x"})
