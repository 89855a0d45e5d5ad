"""_canary on real objects captured from the local cluster (tests/unit/fixtures/canary/*.yaml, capture.py there).

The seed DaemonSet on 5 nodes of its own (topology.kubernetes.io/zone: zone-a x2, zone-b x2, one without):
01 image restart-once (hash RESTARTED): every pod restarted once (lastState Error) and Ready again;
02 image oomkilled (hash OOM): three pods restarted after an OOM kill, one terminated OOMKilled now, one not
   killed yet;
03 the same a second later: all five restarted (restartCount 1, lastState OOMKilled) and Ready.
"""

from __future__ import annotations

import collections
import copy
import datetime
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _batch as b
from ansible_collections.kubeops.daemonset.plugins.module_utils import _canary as c
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "canary"
RESTARTED, OOM = "684ff55c85", "fc44669f8"
ZONE = "topology.kubernetes.io/zone"
T0 = datetime.datetime(2026, 12, 1, 11, 0, 0, tzinfo=datetime.timezone.utc)


def load(stage: str) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for item in yaml.safe_load((FIXTURES / f"{stage}.yaml").read_text())["items"]:
        kinds.setdefault(item["kind"], []).append(item)
    return kinds


def by_node(stage: dict[str, list[dict]]) -> dict[str, dict]:
    return b.pods_by_node(stage["DaemonSet"][0], stage["Pod"])


def terminated_now(pod: dict) -> bool:
    return any("terminated" in status["state"] for status in pod["status"]["containerStatuses"])


def captured(stage: dict[str, list[dict]]) -> datetime.datetime:
    """A minute after the last Ready transition of the stage's pods."""
    times = [cond["lastTransitionTime"] for pod in stage["Pod"] for cond in pod["status"]["conditions"]]
    return datetime.datetime.fromisoformat(max(times).replace("Z", "+00:00")) + datetime.timedelta(seconds=60)


def later(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


# --- restarts and OOM kills ------------------------------------------------------------------


def test_restart_baseline_keeps_the_restarts_older_than_the_rollout():
    pods = by_node(load("01-restarted-once"))
    baseline = c.restart_baseline(pods, RESTARTED)
    assert baseline == {pod["metadata"]["uid"]: 1 for pod in pods.values()}
    assert c.restart_baseline(pods, OOM) == {}  # no pod on that revision yet
    assert c.restart_baseline(pods, None) == {}


def test_restarts_count_from_creation_or_the_baseline():
    pod = sorted(by_node(load("01-restarted-once")).items())[0][1]
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    assert c.rule_breach(pod, c.Rules(), {}) == f"pod {name} restarted 1 time (restart_budget 0)"
    assert c.rule_breach(pod, c.Rules(restart_budget=1), {}) is None
    assert c.rule_breach(pod, c.Rules(), {uid: 1}) is None  # restarted before the rollout started
    assert c.oom_killed(pod, {}) == []  # an Error restart is no OOM kill


def test_oom_kill_now_and_last_time():
    pods = by_node(load("02-oom-killed")).values()
    now = next(pod for pod in pods if terminated_now(pod))
    last = next(pod for pod in pods if pod["status"]["containerStatuses"][0]["restartCount"])
    calm = next(pod for pod in pods if not terminated_now(pod) and pod is not last and not c.new_restarts(pod, {}))
    assert now["status"]["containerStatuses"][0]["restartCount"] == 0
    assert c.oom_killed(now, {}) == ["fluentd-elasticsearch"]  # state.terminated.reason
    assert c.oom_killed(last, {}) == ["fluentd-elasticsearch"]  # lastState.terminated.reason, restarted since
    assert c.oom_killed(last, {last["metadata"]["uid"]: 1}) == []  # that OOM kill is older than the rollout
    assert c.oom_killed(calm, {}) == []  # Ready, not killed (yet)
    generous = c.Rules(restart_budget=5)
    assert (
        c.rule_breach(last, generous, {})
        == f"pod {last['metadata']['name']}: container fluentd-elasticsearch OOMKilled"
    )
    assert c.rule_breach(last, c.Rules(restart_budget=1, fail_on_oom=False), {}) is None  # a restart like any other
    assert "restarted 1 time" in c.rule_breach(last, c.Rules(fail_on_oom=False), {})


def test_gate_fails_on_oom_kills_whatever_the_budget_naming_nodes_and_pods():
    stage = load("03-oom-restarted")
    pods = by_node(stage)
    nodes = sorted(pods)
    ready = b.evaluate_gate(
        pods, nodes, OOM, 10, captured(stage), {}, rules=c.Rules(restart_budget=5, fail_on_oom=False)
    )
    assert ready["state"] == "passed"  # every pod is Ready again and within the budget
    verdict = b.evaluate_gate(pods, nodes, OOM, 10, captured(stage), {}, rules=c.Rules(restart_budget=5))
    assert verdict["state"] == "failed"
    assert verdict["reasons"] == [
        f"{name}: pod {pods[name]['metadata']['name']}: container fluentd-elasticsearch OOMKilled" for name in nodes
    ]


def test_restart_sum():
    pods = by_node(load("01-restarted-once"))
    assert c.restart_sum(pods, list(pods)) == 5
    assert c.restart_sum(pods, ["no-such-node"]) == 0


# --- the bake clock --------------------------------------------------------------------------


def test_bake_passes_after_its_seconds_without_a_restart():
    bake = c.start_bake({"batch": 2, "spec": "10%"}, 5, T0)
    assert bake == {"phase": "bake", "batch": 2, "spec": "10%", "updated": 5, "started": "2026-12-01T11:00:00Z",
                    "since": "2026-12-01T11:00:00Z", "restarts": None}  # fmt: skip
    first = c.bake_step(bake, [], [], 3, later(1), 30, 300)
    assert (first["done"], first["reset"], first["left"]) == (False, None, 29)
    assert first["bake"]["restarts"] == 3  # the restarts seen when it first looked
    done = c.bake_step(first["bake"], [], [], 3, later(30), 30, 300)
    assert done["done"] is True
    assert done["left"] == 0


def test_bake_clock_starts_again_on_a_restart_or_an_unready_pod():
    bake = c.bake_step(c.start_bake({"batch": 1, "spec": "1"}, 1, T0), [], [], 0, T0, 30, 300)["bake"]
    restarted = c.bake_step(bake, [], [], 1, later(20), 30, 300)
    assert restarted["reset"] == "1 restart within the restart budget"
    assert restarted["bake"]["since"] == "2026-12-01T11:00:20Z"
    assert restarted["bake"]["started"] == "2026-12-01T11:00:00Z"  # the deadline still counts from the start
    assert restarted["left"] == 30
    unready = c.bake_step(restarted["bake"], [], ["node-1: pod p is not Ready: NotReady"], 1, later(40), 30, 300)
    assert unready["reset"] == "node-1: pod p is not Ready: NotReady"
    assert c.bake_step(unready["bake"], [], [], 1, later(70), 30, 300)["done"] is True


def test_bake_fails_on_a_breach_or_when_its_clock_keeps_starting_again():
    bake = c.bake_step(c.start_bake({"batch": 1, "spec": "1"}, 1, T0), [], [], 0, T0, 30, 60)["bake"]
    breach = c.bake_step(bake, ["node-1: pod p restarted 2 times (restart_budget 1)"], [], 2, later(5), 30, 60)
    assert breach["failed"] == ["node-1: pod p restarted 2 times (restart_budget 1)"]
    late = c.bake_step(bake, [], [], 1, later(61), 30, 60)
    assert late["failed"] == [
        "not 30s without a restart or an unready pod within batch_timeout=60s: 1 restart within the restart budget"
    ]


def test_resume_phase_and_pause_left():
    bake = c.start_bake({"batch": 2, "spec": "10%"}, 5, T0)
    assert c.resume_phase(bake, 5) == c.BAKE
    assert c.resume_phase(bake, 7) == c.CHECK  # more nodes updated since: check them all again
    passed = c.passed_record({"batch": 2, "spec": "10%"}, 5, T0)
    assert passed == {"phase": "pause", "batch": 2, "spec": "10%", "updated": 5, "at": "2026-12-01T11:00:00Z"}
    assert c.resume_phase(passed, 5) == c.PAUSE
    assert c.resume_phase(passed, 6) == c.CHECK  # the next batch had started
    assert c.resume_phase(None, 0) == c.CHECK
    assert c.pause_left(passed, 60, later(45)) == 15
    assert c.pause_left(passed, 60, later(3600)) == 0  # an approval that took an hour


# --- slow start within a batch ---------------------------------------------------------------


def test_next_wave_keeps_at_most_max_in_flight_unhealthy():
    queue = ["n3", "n4", "n5"]
    assert c.next_wave(queue, [], [], None) == queue
    assert c.next_wave(queue, [], [], 2) == ["n3", "n4"]
    assert c.next_wave(queue, ["n1", "n2"], [], 2) == []
    assert c.next_wave(queue, ["n1", "n2"], ["n1"], 2) == ["n3"]
    assert c.next_wave(queue, ["n1", "n2"], ["n1", "n2", "n0"], 2) == ["n3", "n4"]


# --- topology spread -------------------------------------------------------------------------


def zoned_nodes(template: dict, zones: dict[str, int | None]) -> list[dict]:
    """A captured node copied COUNT times per zone (None: without the label), named node-1.. in zone order."""
    nodes = []
    for zone, count in zones.items():
        for _copy in range(count or 0):
            copied = copy.deepcopy(template)
            copied["metadata"]["name"] = f"node-{len(nodes) + 1}"
            copied["metadata"]["labels"] = {k: v for k, v in copied["metadata"]["labels"].items() if k != ZONE}
            if zone != "-":
                copied["metadata"]["labels"][ZONE] = zone
            nodes.append(copied)
    return nodes


def test_topology_groups_of_captured_nodes():
    stage = load("01-restarted-once")
    groups = c.topology_groups(stage["Node"], ZONE)
    assert {zone: len(members) for zone, members in groups.items()} == {"zone-a": 2, "zone-b": 2, "(none)": 1}


def test_spread_first_batch_covers_each_zone_then_proportional():
    template = load("01-restarted-once")["Node"][0]
    nodes = zoned_nodes(template, {"zone-a": 20, "zone-b": 20, "zone-c": 8, "-": 2})
    specs, ordered = c.spread(b.parse_batches([1, "10%", "50%", "100%"]), nodes, ZONE)
    assert specs[0]["at_least"] == 4
    plan = c.annotate_spread(b.plan_batches(specs, ordered, {}, None), ordered, ZONE)
    assert plan["topology"] == {"key": ZONE, "groups": {"zone-a": 20, "zone-b": 20, "zone-c": 8, "(none)": 2}}
    spreads = [batch["spread"] for batch in plan["batches"]]
    assert spreads[0] == {"zone-a": 1, "zone-b": 1, "zone-c": 1, "(none)": 1}  # 1 became one node per group
    assert [batch["target"] for batch in plan["batches"]] == [4, 5, 25, 50]
    assert spreads[1] == {"zone-a": 1}
    halfway = collections.Counter(n["metadata"]["labels"].get(ZONE, "(none)") for n in ordered[:25])
    assert halfway == {"zone-a": 10, "zone-b": 10, "zone-c": 4, "(none)": 1}  # 25 of 50 updated: half of each zone
    assert sum(spreads[2].values()) == 20
    assert sorted(n for batch in plan["batches"] for n in batch["nodes"]) == sorted(
        n["metadata"]["name"] for n in nodes
    )
    lines = b.plan_lines(plan)
    assert lines[1] == (
        f"spread over {ZONE} (zone-a 20, zone-b 20, zone-c 8, (none) 2): batch 1 takes at least one node of each "
        "of the 4 groups"
    )
    assert lines[2] == "batch 1/4 (1): 4 nodes -> 4 of 50: node-1, node-21, node-41, node-49 [zone-a 1, zone-b 1, " \
        "zone-c 1, (none) 1]"  # fmt: skip


def test_spread_resumes_with_the_zones_not_yet_covered():
    template = load("01-restarted-once")["Node"][0]
    nodes = zoned_nodes(template, {"zone-a": 3, "zone-b": 3, "zone-c": 3})
    specs, ordered = c.spread(b.parse_batches([1, "100%"]), nodes, ZONE)
    pod = copy.deepcopy(load("01-restarted-once")["Pod"][0])
    pod["spec"]["nodeName"] = "node-1"  # zone-a's first node is done already
    plan = b.plan_batches(specs, ordered, {"node-1": pod}, RESTARTED)
    assert plan["done"] == ["node-1"]
    assert plan["batches"][0]["nodes"] == ["node-4", "node-7"]  # one of zone-b and one of zone-c make 3


def test_spread_without_a_key_changes_nothing():
    nodes = load("01-restarted-once")["Node"]
    specs = b.parse_batches([1])
    assert c.spread(specs, nodes, None) == (specs, nodes)
    assert c.spread(specs, [], ZONE) == (specs, [])


def test_spread_rejects_a_key_no_node_has_and_a_selector_first():
    nodes = load("01-restarted-once")["Node"]
    with pytest.raises(RequestError) as missing:
        c.spread(b.parse_batches([1]), nodes, "topology.kubernetes.io/zones")
    assert str(missing.value).startswith(
        "topology_key 'topology.kubernetes.io/zones': none of the 5 eligible nodes has this label (their labels: "
    )
    assert "topology.kubernetes.io/zone," in str(missing.value)  # what the user probably meant
    with pytest.raises(RequestError, match="batch 1 is a selector pool=canary: give a count or a percentage first"):
        c.spread(b.parse_batches([{"selector": {"pool": "canary"}}]), nodes, ZONE)


@pytest.mark.parametrize("key", ["zone name", "", "a/b/c", "-zone", "Example.com/zone", "x" * 64])
def test_check_topology_rejects_what_is_no_label_key(key):
    with pytest.raises(RequestError, match="is not a label key"):
        c.check_topology(key, b.parse_batches([1]))


@pytest.mark.parametrize("key", [ZONE, "zone", "example.com/rack_1", "a.b-c/Z.z_9"])
def test_check_topology_accepts_label_keys(key):
    c.check_topology(key, b.parse_batches(["10%"]))
