# SPDX-License-Identifier: GPL-3.0-or-later
"""_diagnose on objects captured from the real cluster (tests/unit/fixtures/diagnose/capture.py makes them)."""

from __future__ import annotations

import copy
import datetime
from functools import cache
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _diagnose as d
from ansible_collections.kubeops.daemonset.plugins.module_utils import (
    _objects,
    _placement,
    _remediate,
    _rollout,
    _values,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SHARED = {"kwok-control-plane", "kwok-worker-1", "kwok-worker-2", "kwok-worker-3"}
SCENARIOS = (
    "healthy",
    "insufficient_cpu",
    "bad_image",
    "crashloop",
    "not_ready",
    "untolerated",
    "on_delete",
    "clock_skew",
)


@cache
def _load(name: str) -> dict:
    return yaml.safe_load((FIXTURES / "diagnose" / f"{name}.yaml").read_text())


def load(name: str) -> dict:
    return copy.deepcopy(_load(name))


def run(x: dict) -> list[dict]:
    return d.diagnose(x["daemonset"], x["nodes"], x["pods"], x["events"], x["revisions"], x["leases"], x["server_time"])


def by_cause(findings: list[dict]) -> dict[str, dict]:
    return {f["cause"]: f for f in findings}


def ds_pods(x: dict) -> list[dict]:
    return _objects.owned_by(x["daemonset"], x["pods"])


def test_every_finding_has_the_documented_shape():
    for name in SCENARIOS:
        for finding in run(load(name)):
            assert set(finding) == {"cause", "severity", "summary", "nodes", "pods", "evidence", "suggested_action"}
            assert finding["severity"] in ("error", "warning", "info")
            assert finding["summary"] and finding["suggested_action"]


def test_healthy_rollout_has_no_problem():
    x = load("healthy")
    findings = run(x)
    assert d.is_healthy(findings)
    # the seed's first version does not tolerate the control-plane taint: a note, not a problem
    assert [(f["cause"], f["severity"], f["nodes"]) for f in findings] == [
        ("untolerated_taint", "info", ["kwok-control-plane"])
    ]
    report = d.render_report(x["daemonset"], findings, d.counters(x["daemonset"], x["nodes"], x["pods"]))
    assert report.splitlines()[0].endswith(": no problem found")
    assert "SEVERITY" not in report


def test_insufficient_cpu_names_node_pod_resources_and_candidates():
    x = load("insufficient_cpu")
    tiny = next(n["metadata"]["name"] for n in x["nodes"] if n["status"]["allocatable"]["cpu"] == "1")
    pending = [p for p in ds_pods(x) if not p["spec"].get("nodeName")]
    finding = by_cause(run(x))["resource_exhaustion"]
    assert finding["severity"] == "error"
    assert finding["nodes"] == [tiny]
    assert finding["pods"] == [pending[0]["metadata"]["name"]]
    assert finding["evidence"]["scheduler_reasons"] == ["Insufficient cpu"]
    per_node = finding["evidence"]["per_node"][tiny]
    assert per_node["resources"]["cpu"] == {
        "allocatable": "1000m",
        "requested": "800m",
        "free": "200m",
        "daemon_pod_needs": "500m",
    }
    [candidate] = per_node["candidates"]
    assert candidate["pod"].split("/")[1].startswith("hog-") and candidate["owner"].startswith("ReplicaSet/hog-")
    assert "Insufficient cpu on 1 node" in finding["summary"]


def test_blocked_nodes_reads_the_scheduler():
    x = load("insufficient_cpu")
    blocked = d.blocked_nodes(x["daemonset"], x["nodes"], x["pods"], x["events"])
    assert [info["reasons"] for info in blocked.values()] == [["Insufficient cpu"]]


@pytest.mark.parametrize(
    ("message", "reasons"),
    [
        (
            "0/5 nodes are available: 1 Insufficient cpu, 4 node(s) didn't satisfy plugin(s) [NodeAffinity]. "
            "preemption: 0/5 nodes are available: 1 No preemption victims found for incoming pod.",
            ["Insufficient cpu"],
        ),
        (
            "0/4 nodes are available: 1 Insufficient memory, 1 Too many pods, "
            "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
            "2 node(s) didn't match Pod's node affinity/selector.",
            ["Insufficient memory", "Too many pods"],
        ),
        (
            "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, "
            "2 node(s) didn't match Pod's node affinity/selector.",
            ["node(s) didn't have free ports for the requested pod ports"],
        ),
        ("something else entirely", ["something else entirely"]),
    ],
)
def test_scheduler_reasons(message, reasons):
    assert d.scheduler_reasons(message) == reasons


@pytest.mark.parametrize(("scenario", "reason", "image"), [
    ("bad_image", {"ErrImagePull", "ImagePullBackOff"}, "example.invalid/does-not-exist:1"),
    ("crashloop", {"CrashLoopBackOff"}, "example.invalid/crashloop:1"),
])  # fmt: skip
def test_broken_template_groups_updated_pods_by_reason(scenario, reason, image):
    x = load(scenario)
    finding = by_cause(run(x))["broken_template"]
    assert finding["severity"] == "error"
    broken = [p for p in ds_pods(x) if p["spec"]["containers"][0]["image"] == image]
    assert finding["pods"] == sorted(p["metadata"]["name"] for p in broken)
    assert finding["nodes"] == sorted(p["spec"]["nodeName"] for p in broken)
    [group] = finding["evidence"]["groups"]
    assert group["reason"] in reason and group["count"] == len(broken) and group["images"] == [image]
    assert group["events"], "the pods' Warning events are attached"
    if scenario == "crashloop":
        assert group["restarts_max"] >= 1 and "restarts up to" in finding["summary"]
    assert "rollback" in finding["suggested_action"]


def test_nine_hundred_identical_failures_read_as_one_line():
    x = load("bad_image")
    template = next(p for p in ds_pods(x) if "does-not-exist" in p["spec"]["containers"][0]["image"])
    pods = []
    for i in range(900):
        pod = copy.deepcopy(template)
        pod["metadata"]["name"] = f"fluentd-{i:03d}"
        pod["spec"]["nodeName"] = f"node-{i:03d}"
        pods.append(pod)
    [group] = _rollout.group_pod_failures(pods)
    assert group["count"] == 900 and len(group["pods"]) == _rollout.SHOWN_NAMES
    assert _rollout.describe_failure_group(group).startswith(f"{group['reason']} x900 (image ")


def test_transient_states_are_not_failures():
    x = load("healthy")
    pod = copy.deepcopy(ds_pods(x)[0])
    pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"]
    pod["status"]["containerStatuses"][0].update(ready=False, state={"waiting": {"reason": "ContainerCreating"}})
    pod["status"]["startTime"] = x["server_time"]
    assert _rollout.pod_failure(pod, _values.parse_time(x["server_time"]))["transient"]
    assert _rollout.group_pod_failures([pod], now=_values.parse_time(x["server_time"])) == []


def test_not_ready_node_outside_desired_is_a_warning():
    x = load("not_ready")
    node = next(n["metadata"]["name"] for n in x["nodes"] if n["metadata"]["labels"].get("kubeops.test/not-ready"))
    findings = by_cause(run(x))
    finding = findings["node_not_ready"]
    assert finding["nodes"] == [node] and finding["severity"] == "warning"
    assert finding["pods"] == [p["metadata"]["name"] for p in ds_pods(x) if p["spec"]["nodeName"] == node]
    assert finding["evidence"]["per_node"][node]["ready"] == "False"
    assert "misscheduled" not in findings  # the NotReady node explains it


def test_not_ready_node_counted_in_desired_is_an_error():
    x = load("not_ready")
    node = next(n for n in x["nodes"] if n["metadata"]["labels"].get("kubeops.test/not-ready"))
    # a node whose not-ready NoSchedule taint has not been added yet still counts in desiredNumberScheduled
    node["spec"]["taints"] = [
        t for t in node["spec"]["taints"] if t["effect"] == "NoExecute" or "dedicated" in t["key"]
    ]
    assert by_cause(run(x))["node_not_ready"]["severity"] == "error"


def test_untolerated_taint_is_informational():
    x = load("untolerated")
    test_node = next(n["metadata"]["name"] for n in x["nodes"] if n["metadata"]["name"] not in SHARED)
    findings = run(x)
    assert d.is_healthy(findings)
    finding = by_cause(findings)["untolerated_taint"]
    assert finding["severity"] == "info"
    assert finding["nodes"] == sorted(["kwok-control-plane", test_node])
    assert finding["evidence"]["taints"]["kubeops.test/dedicated=true:NoSchedule"] == [test_node]


def test_on_delete_counts_outdated_pods():
    x = load("on_delete")
    finding = by_cause(run(x))["on_delete_pending"]
    assert finding["evidence"]["outdated"] == 3
    assert finding["pods"] == sorted(p["metadata"]["name"] for p in ds_pods(x))


def test_clock_skew_from_lease_and_ready_times():
    x = load("clock_skew")
    skewed = next(n["metadata"]["name"] for n in x["nodes"] if "kwok.x-k8s.io/node" not in n["metadata"]["annotations"])
    finding = by_cause(run(x))["clock_skew"]
    assert finding["severity"] == "error"  # minReadySeconds is set
    assert finding["nodes"] == [skewed]
    assert 89 <= finding["evidence"]["node_offsets_seconds"][skewed] <= 91
    [future] = finding["evidence"]["pods_ready_in_future"]
    assert future["node"] == skewed and future["ready_in_future_by"] > 30
    assert "+90s" in finding["summary"] or "+89s" in finding["summary"] or "+91s" in finding["summary"]


def test_lease_offsets_of_synchronised_nodes_are_below_a_second():
    x = load("healthy")
    offsets = d.lease_offsets(x["leases"], _values.parse_time(x["server_time"]))
    assert set(offsets) == {"kwok-control-plane", "kwok-worker-1", "kwok-worker-2", "kwok-worker-3"}
    assert all(0 <= offset < 1.5 for offset in offsets.values())


def test_clock_skew_without_min_ready_seconds_is_informational():
    x = load("clock_skew")
    x["daemonset"]["spec"]["minReadySeconds"] = 0
    assert by_cause(run(x))["clock_skew"]["severity"] == "info"


def test_budget_used_up_by_an_unavailable_old_pod():
    x = load("bad_image")
    old = [p for p in ds_pods(x) if "does-not-exist" not in p["spec"]["containers"][0]["image"]]
    for cond in old[0]["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond["status"] = "False"
    finding = by_cause(run(x))["budget_exhausted"]
    assert finding["pods"] == [old[0]["metadata"]["name"]]
    assert finding["nodes"] == [old[0]["spec"]["nodeName"]]
    assert finding["evidence"]["waiting_for_update"] == 1 and finding["evidence"]["max_unavailable"] == 1


def test_no_budget_finding_when_only_new_pods_are_broken():
    assert "budget_exhausted" not in by_cause(run(load("bad_image")))


def test_misscheduled_pod_on_a_node_with_a_new_taint():
    x = load("healthy")
    node = next(n for n in x["nodes"] if n["metadata"]["name"] == "kwok-worker-2")
    node["spec"]["taints"] = [{"key": "example.com/maintenance", "effect": "NoSchedule"}]
    finding = by_cause(run(x))["misscheduled"]
    assert finding["nodes"] == ["kwok-worker-2"]
    assert "example.com/maintenance:NoSchedule" in finding["evidence"]["why"]["kwok-worker-2"]


@pytest.mark.parametrize(("spec", "should_run"), [
    ({}, True),
    ({"nodeSelector": {"type": "kwok"}}, True),
    ({"nodeSelector": {"type": "other"}}, False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["kwok"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["kwok-worker-1"]}]}]}}}}, True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "type", "operator": "DoesNotExist"}]}]}}}}, False),
    ({"tolerations": [{"key": "x", "operator": "Equal", "value": "a", "effect": "NoSchedule"}]}, False),
    ({"tolerations": [{"operator": "Exists"}]}, True),
])  # fmt: skip
def test_node_placement(spec, should_run):
    x = load("healthy")
    node = next(n for n in x["nodes"] if n["metadata"]["name"] == "kwok-worker-1")
    if "tolerations" in spec:
        node["spec"]["taints"] = [{"key": "x", "value": "b", "effect": "NoSchedule"}]
    ds = x["daemonset"]
    ds["spec"]["template"]["spec"].update(spec)
    assert _placement.node_placement(ds, node)["should_run"] is should_run


def test_unschedulable_cordon_is_tolerated_like_the_controller_does():
    x = load("healthy")
    node = next(n for n in x["nodes"] if n["metadata"]["name"] == "kwok-worker-1")
    node["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    assert _placement.node_placement(x["daemonset"], node)["should_run"]


@pytest.mark.parametrize(("value", "expected"), [
    ("100m", 0.1), ("4", 4.0), ("200Mi", 200 * 2**20), ("1Gi", 2**30), ("1e3", 1000.0), ("1k", 1000.0),
    ("0.5", 0.5), ("110", 110.0), (2, 2.0),
])  # fmt: skip
def test_parse_quantity(value, expected):
    assert _values.parse_quantity(value) == pytest.approx(expected)


def test_plan_evictions_picks_the_hog():
    x = load("insufficient_cpu")
    tiny = next(n for n in x["nodes"] if n["status"]["allocatable"]["cpu"] == "1")
    plan = _remediate.plan_evictions(x["daemonset"], tiny, x["pods"])
    assert [ref.split("/")[1][:4] for ref in plan["evict"]] == ["hog-"]
    assert plan["fits_after"] and not plan["fits_now"]
    assert plan["need"]["cpu"] == "500m" and plan["free"]["cpu"] == "200m"


def test_plan_evictions_needs_force_for_bare_pods_and_never_takes_daemon_or_mirror_pods():
    x = load("insufficient_cpu")
    tiny = next(n for n in x["nodes"] if n["status"]["allocatable"]["cpu"] == "1")
    hog = next(p for p in x["pods"] if p["metadata"]["name"].startswith("hog-"))
    hog["metadata"]["ownerReferences"] = []
    plan = _remediate.plan_evictions(x["daemonset"], tiny, x["pods"])
    assert plan["evict"] == [] and not plan["fits_after"]
    assert plan["skipped"][0]["pod"].endswith(hog["metadata"]["name"])
    assert _remediate.plan_evictions(x["daemonset"], tiny, x["pods"], force=True)["evict"] == [_objects.ref(hog)]
    hog["metadata"]["annotations"] = {_objects.MIRROR_ANNOTATION: "x"}
    assert _remediate.plan_evictions(x["daemonset"], tiny, x["pods"], force=True)["evict"] == []


def test_plan_evictions_prefers_one_large_pod_over_many_small_ones():
    x = load("insufficient_cpu")
    tiny = next(n for n in x["nodes"] if n["status"]["allocatable"]["cpu"] == "1")
    hog = next(p for p in x["pods"] if p["metadata"]["name"].startswith("hog-"))
    hog["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "400m"
    small = []
    for i in range(4):
        pod = copy.deepcopy(hog)
        pod["metadata"].update(name=f"small-{i}", uid=f"small-{i}")
        pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "100m"
        small.append(pod)
    plan = _remediate.plan_evictions(x["daemonset"], tiny, x["pods"] + small)
    assert len(plan["evict"]) == 1 and plan["evict"][0].endswith(hog["metadata"]["name"])


def test_rollback_target_is_the_last_revision_whose_pods_are_ready():
    x = load("bad_image")
    target = _remediate.last_available_revision(x["daemonset"], x["revisions"], x["pods"])
    assert target["revision"] == 1
    x = load("healthy")
    assert _remediate.last_available_revision(x["daemonset"], x["revisions"], x["pods"]) is None  # one revision only


def test_rollback_target_skips_an_intermediate_revision_without_pods():
    """1 (Ready pods) -> 2 (broken, its pod already replaced) -> 3 (live, broken): back to 1, not 2."""
    x = load("bad_image")
    live = next(r for r in x["revisions"] if r["revision"] == 2)
    newer = copy.deepcopy(live)
    newer["revision"] = 3  # the live template's newest revision; 2 keeps the same template but no pod
    live["metadata"]["name"] += "x"
    live["metadata"]["labels"]["controller-revision-hash"] += "x"
    target = _remediate.last_available_revision(x["daemonset"], [*x["revisions"], newer], x["pods"])
    assert target["revision"] == 1
    # once every pod runs the live revision, the newest other revision is the best guess
    pods = [p for p in x["pods"] if "does-not-exist" in p["spec"]["containers"][0]["image"]]
    assert _remediate.last_available_revision(x["daemonset"], [*x["revisions"], newer], pods)["revision"] == 2


def test_report_is_a_short_table():
    x = load("bad_image")
    findings = run(x)
    report = d.render_report(x["daemonset"], findings, d.counters(x["daemonset"], x["nodes"], x["pods"]))
    lines = report.splitlines()
    assert lines[0].endswith("1 problem found") and lines[1].split() == [
        "SEVERITY",
        "CAUSE",
        "NODES",
        "PODS",
        "SUMMARY",
    ]
    assert lines[2].split()[:4] == ["error", "broken_template", "1", "1"]
    assert lines[-1].startswith("note: 1 node skipped")
    assert len(lines) <= 6 and all(len(line) <= 240 for line in lines)


def test_counters_match_the_controller_on_a_healthy_rollout():
    x = load("healthy")
    counts = d.counters(x["daemonset"], x["nodes"], x["pods"], x["revisions"], x["server_time"])
    status = x["daemonset"]["status"]
    assert counts["desired"] == status["desiredNumberScheduled"]
    assert counts["updated"] == status["updatedNumberScheduled"]
    assert counts["available"] == status["numberAvailable"]


# --- the whole gap: every node without an updated, available pod and every count the pods do not show -----------


def test_outdated_pods_held_back_by_a_broken_pod_are_named_by_it():
    x = load("bad_image")
    old = sorted(
        p["spec"]["nodeName"] for p in ds_pods(x) if "does-not-exist" not in p["spec"]["containers"][0]["image"]
    )
    findings = run(x)
    broken = by_cause(findings)["broken_template"]
    assert broken["evidence"]["holds_back"] == {"outdated": 2, "maxUnavailable": 1, "nodes": old}
    assert "it holds back 2 outdated pods (maxUnavailable=1 used up)" in broken["summary"]
    assert set(old).isdisjoint(broken["nodes"])  # nodes stay where the problem is (what a remediation acts on)
    assert "unexplained" not in by_cause(findings)


def test_a_count_the_pods_do_not_show_is_named():
    """The controller's status says fewer pods are available than the pods show: kubectl would not call the rollout
    complete, so neither may the diagnosis. Moments after the pods turned Ready the controller is about to count
    them; long after, its status is stale (a controller that stopped writing it)."""
    x = load("healthy")
    x["daemonset"]["status"]["numberAvailable"] = 1
    findings = run(x)
    assert [f["cause"] for f in findings if f["severity"] != "info"] == ["rollout_in_progress"]
    assert (
        "the controller counts 1 available pods, the pods show 3"
        in by_cause(findings)["rollout_in_progress"]["summary"]
    )

    x["server_time"] = _values.rfc3339(_values.parse_time(x["server_time"]) + datetime.timedelta(minutes=10))
    findings = run(x)
    assert not d.is_healthy(findings)
    finding = by_cause(findings)["unexplained"]
    assert "numberAvailable is 1 but the nodes and pods show 3" in finding["summary"]
    assert finding["evidence"]["status_differences"] == {"numberAvailable": {"controller": 1, "seen": 3}}
    assert "kube-controller-manager" in finding["suggested_action"]


def test_without_revisions_an_incomplete_rollout_is_never_healthy():
    """The revisions could not be read: updated pods cannot be told apart, yet the status says 1 of 3 updated."""
    x = load("healthy")
    x["daemonset"]["status"]["updatedNumberScheduled"] = 1
    x["revisions"] = None
    findings = run(x)
    assert not d.is_healthy(findings)
    assert (
        "without the revisions, updated pods cannot be told from outdated ones"
        in (by_cause(findings)["unexplained"]["summary"])
    )


def test_a_spec_not_observed_explains_every_node():
    x = load("healthy")
    x["daemonset"]["metadata"]["generation"] += 1
    findings = run(x)
    assert [f["cause"] for f in findings if f["severity"] != "info"] == ["spec_not_observed"]


def test_a_missing_pod_no_event_explains_points_at_the_controller():
    x = load("healthy")
    gone = ds_pods(x)[0]
    x["pods"] = [p for p in x["pods"] if p is not gone]
    finding = by_cause(run(x))["pod_missing"]
    assert finding["nodes"] == [gone["spec"]["nodeName"]]
    assert finding["summary"].endswith(", and no event of the DaemonSet says why")
    assert "kube-controller-manager" in finding["suggested_action"]


def test_a_ready_node_still_tainted_not_ready_points_at_the_controller():
    """A node added while kube-controller-manager is down keeps the not-ready taint admission gave it."""
    x = load("healthy")
    node = next(n for n in x["nodes"] if n["metadata"]["name"] == "kwok-worker-2")
    node.setdefault("spec", {})["taints"] = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    finding = by_cause(run(x))["node_not_ready"]
    assert finding["nodes"] == ["kwok-worker-2"]
    assert (
        "1 of them Ready but still tainted not-ready/unreachable (is kube-controller-manager running?"
        in (finding["summary"])
    )
