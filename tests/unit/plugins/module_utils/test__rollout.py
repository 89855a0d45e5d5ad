# SPDX-License-Identifier: GPL-3.0-or-later
"""_rollout on real objects captured from the local cluster (tests/unit/fixtures/rollout/*.yaml, see capture.sh).

Each fixture is one namespace at one moment of a rollout of the seed's fluentd-elasticsearch DaemonSet over
three KWOK nodes: complete; a does-not-exist image (1 new pod stuck in ErrImagePull/ImagePullBackOff, 2 old
pods); a crashloop image; minReadySeconds 600 (all updated and ready, none available); OnDelete after a
template change (no pod deleted / one deleted); a node selector no node matches (desired 0).
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _history, _objects, _rollout

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rollout"
NAME = "fluentd-elasticsearch"
UPDATING = f'Waiting for daemon set "{NAME}" rollout to finish: '


def load(stage: str) -> dict:
    """{"ds": DaemonSet, "pods": [...], "events": [...], "hash": current revision hash}"""
    items = yaml.safe_load((FIXTURES / f"{stage}.yaml").read_text())["items"]
    kinds: dict[str, list[dict]] = {}
    for item in items:
        kinds.setdefault(item["kind"], []).append(item)
    (ds,) = kinds["DaemonSet"]
    revisions = _history.owned_revisions(ds, kinds.get("ControllerRevision", []))
    current = _history.current_revision(ds, revisions)
    return {
        "ds": ds,
        "pods": kinds.get("Pod", []),
        "events": kinds.get("Event", []),
        "hash": _history.revision_hash(current) if current else None,
    }


def ready_since(pods: list[dict]) -> datetime.datetime:
    """The latest Ready transition among PODS (a stable "now" for availability checks)."""
    times = [c["lastTransitionTime"] for p in pods for c in p["status"].get("conditions", []) if c["type"] == "Ready"]
    return datetime.datetime.fromisoformat(max(times).replace("Z", "+00:00"))


# --- rollout_status: kubectl's rule and messages ----------------------------------------------


@pytest.mark.parametrize(
    ("stage", "done", "message"),
    [
        ("complete", True, f'daemon set "{NAME}" successfully rolled out'),
        ("bad-image", False, f"{UPDATING}1 out of 3 new pods have been updated..."),
        ("crashloop", False, f"{UPDATING}1 out of 3 new pods have been updated..."),
        ("min-ready-seconds", False, f"{UPDATING}0 of 3 updated pods are available..."),
        ("no-matching-node", True, f'daemon set "{NAME}" successfully rolled out'),
    ],
)
def test_status_matches_kubectl(stage: str, done: bool, message: str) -> None:
    status = _rollout.rollout_status(load(stage)["ds"])
    assert (status["done"], status["message"]) == (done, message)


def test_counters_come_from_the_status() -> None:
    status = _rollout.rollout_status(load("bad-image")["ds"])
    counters = {key: status[key] for key in (*_rollout.COUNTERS, "outdated")}
    assert counters == {
        "desired": 3,
        "current": 3,
        "updated": 1,
        "available": 2,
        "ready": 2,
        "unavailable": 1,
        "misscheduled": 0,
        "outdated": 2,
    }
    assert status["observed"] and status["strategy"] == "RollingUpdate"


def test_unobserved_generation_waits_whatever_the_counters() -> None:
    ds = copy.deepcopy(load("complete")["ds"])
    ds["metadata"]["generation"] = ds["status"]["observedGeneration"] + 1
    status = _rollout.rollout_status(ds)
    assert not status["done"] and not status["observed"]
    assert status["message"] == "Waiting for daemon set spec update to be observed..."


def test_done_needs_available_not_ready() -> None:
    """minReadySeconds: all pods updated and ready but not available is not done (kubectl checks numberAvailable)."""
    status = _rollout.rollout_status(load("min-ready-seconds")["ds"])
    assert (status["updated"], status["ready"], status["available"]) == (3, 3, 0)
    assert not status["done"]


def test_done_ignores_unavailable_and_misscheduled() -> None:
    ds = copy.deepcopy(load("complete")["ds"])
    ds["status"].update(numberUnavailable=1, numberMisscheduled=2, numberReady=1)
    assert _rollout.rollout_status(ds)["done"]


def test_status_without_status_block_waits_for_observation() -> None:
    ds = copy.deepcopy(load("complete")["ds"])
    del ds["status"]
    assert _rollout.rollout_status(ds)["message"] == _rollout.OBSERVE_MESSAGE


@pytest.mark.parametrize(
    ("stage", "updated", "outdated"), [("on-delete-outdated", 0, 3), ("on-delete-one-replaced", 1, 2)]
)
def test_on_delete_counts_outdated_pods(stage: str, updated: int, outdated: int) -> None:
    status = _rollout.rollout_status(load(stage)["ds"])
    assert status["strategy"] == "OnDelete" and not status["done"]
    assert (status["updated"], status["outdated"]) == (updated, outdated)
    assert status["message"] == (
        f"{UPDATING}{updated} out of 3 new pods have been updated "
        f"(OnDelete: {outdated} outdated pods are replaced only when deleted)..."
    )


def test_progress_key_moves_without_a_new_message() -> None:
    """minReadySeconds: numberReady grows while kubectl's message stays; that is progress."""
    before = load("min-ready-seconds")["ds"]
    after = copy.deepcopy(before)
    after["status"]["numberReady"] -= 1
    first, second = _rollout.rollout_status(before), _rollout.rollout_status(after)
    assert first["message"] == second["message"]
    assert _rollout.progress_key(first) != _rollout.progress_key(second)
    assert _rollout.progress_key(first) == _rollout.progress_key(_rollout.rollout_status(copy.deepcopy(before)))


# --- pods: updated / available ----------------------------------------------------------------


@pytest.mark.parametrize("stage", ["bad-image", "crashloop", "min-ready-seconds", "on-delete-one-replaced", "complete"])
def test_updated_by_hash_agrees_with_template_generation(stage: str) -> None:
    fixture = load(stage)
    by_hash = [_rollout.pod_is_updated(p, fixture["ds"], fixture["hash"]) for p in fixture["pods"]]
    by_generation = [_rollout.pod_is_updated(p, fixture["ds"], None) for p in fixture["pods"]]
    assert by_hash == by_generation
    assert sum(by_hash) == _rollout.rollout_status(fixture["ds"])["updated"]


def test_available_counts_min_ready_seconds() -> None:
    fixture = load("min-ready-seconds")
    since = ready_since(fixture["pods"])
    assert not any(_objects.pod_available(p, 600, since) for p in fixture["pods"])
    later = since + datetime.timedelta(seconds=601)
    assert all(_objects.pod_available(p, 600, later) for p in fixture["pods"])
    assert all(_objects.pod_available(p, 0, since) for p in fixture["pods"])


# --- blockers -----------------------------------------------------------------------------------


def blockers(stage: str, **kwargs) -> dict:
    fixture = load(stage)
    now = kwargs.pop("now", ready_since(fixture["pods"]) if fixture["pods"] else None)
    return _rollout.rollout_blockers(fixture["ds"], fixture["pods"], fixture["events"], fixture["hash"], now, **kwargs)


def test_blockers_of_a_bad_image() -> None:
    fixture = load("bad-image")
    result = blockers("bad-image")
    new_pod = next(p for p in fixture["pods"] if p["metadata"]["labels"]["controller-revision-hash"] == fixture["hash"])
    old_nodes = sorted(p["spec"]["nodeName"] for p in fixture["pods"] if p is not new_pod)
    assert result["not_updated"] == {"count": 2, "nodes": old_nodes}
    assert result["not_available"] == {"count": 1, "nodes": [new_pod["spec"]["nodeName"]]}
    (problem,) = result["pod_problems"]
    assert problem["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "does-not-exist" in problem["message"]
    assert (problem["count"], problem["pods"], problem["nodes"]) == (
        1,
        [new_pod["metadata"]["name"]],
        [new_pod["spec"]["nodeName"]],
    )
    assert {e["reason"] for e in result["warning_events"]} == {"Failed"}
    assert all(e["objects"] == [f"Pod/{new_pod['metadata']['name']}"] for e in result["warning_events"])
    assert result["summary"] == (
        f"2 nodes with an outdated pod; 1 node with an updated pod that is not available; pods: {problem['reason']} x1"
    )


def test_blockers_of_a_crashloop() -> None:
    result = blockers("crashloop")
    assert [p["reason"] for p in result["pod_problems"]] == ["CrashLoopBackOff"]
    assert [e["reason"] for e in result["warning_events"]] == ["BackOff"]


def test_blockers_of_min_ready_seconds() -> None:
    result = blockers("min-ready-seconds")
    assert result["not_updated"]["count"] == 0
    assert result["not_available"]["count"] == 3
    (problem,) = result["pod_problems"]
    assert (problem["reason"], problem["count"]) == ("MinReadySeconds", 3)
    assert "600s" in problem["message"]


def test_blockers_of_on_delete_name_the_outdated_nodes() -> None:
    fixture = load("on-delete-one-replaced")
    result = blockers("on-delete-one-replaced")
    old = sorted(
        p["spec"]["nodeName"]
        for p in fixture["pods"]
        if p["metadata"]["labels"]["controller-revision-hash"] != fixture["hash"]
    )
    assert result["not_updated"] == {"count": 2, "nodes": old}
    assert result["pod_problems"] == [] and result["warning_events"] == []


def test_blockers_cut_lists_but_keep_counts() -> None:
    fixture = load("bad-image")
    (new_pod,) = [p for p in fixture["pods"] if p["metadata"]["labels"]["controller-revision-hash"] == fixture["hash"]]
    clones = []
    for index in range(7):
        clone = copy.deepcopy(new_pod)
        clone["metadata"]["name"] = f"pod-{index}"
        clone["spec"]["nodeName"] = f"node-{index}"
        clones.append(clone)
    result = _rollout.rollout_blockers(fixture["ds"], clones, [], fixture["hash"], limit=3)
    assert result["not_available"] == {"count": 7, "nodes": ["node-0", "node-1", "node-2"]}
    assert result["pod_problems"][0]["count"] == 7
    assert result["pod_problems"][0]["pods"] == ["pod-0", "pod-1", "pod-2"]


def test_blockers_ignore_foreign_pods_and_events() -> None:
    fixture = load("bad-image")
    stranger = copy.deepcopy(fixture["pods"][0])
    stranger["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    event = copy.deepcopy(next(e for e in fixture["events"] if e["type"] == "Warning"))
    event["involvedObject"]["name"] = "unrelated-pod"
    result = _rollout.rollout_blockers(fixture["ds"], [stranger], [event], fixture["hash"])
    assert result["not_updated"]["count"] == 0 and result["not_available"]["count"] == 0
    assert result["warning_events"] == []


def test_blockers_missing_pods() -> None:
    ds = copy.deepcopy(load("complete")["ds"])
    ds["status"]["currentNumberScheduled"] = 1
    result = _rollout.rollout_blockers(ds, None, [])  # the pods could not be read: the status counts
    assert result["missing_pods"] == 2
    assert result["summary"] == "2 nodes of 3 without a pod yet"
    assert result["controller_idle"] is False


# --- a controller that does not act ------------------------------------------------------------------------------


def long_after(fixture: dict) -> datetime.datetime:
    """Well after every pod turned Ready: a running controller would have acted by then."""
    return ready_since(fixture["pods"]) + datetime.timedelta(seconds=_rollout.AVAILABILITY_SLACK_SECONDS + 1)


def test_outdated_pods_with_room_in_the_budget_name_an_idle_controller() -> None:
    """Every pod available and outdated (the template changed, the status observed it): maxUnavailable=1 lets the
    controller replace one at once; that it has not means it is not acting."""
    fixture = load("complete")
    result = _rollout.rollout_blockers(fixture["ds"], fixture["pods"], [], "another-hash", long_after(fixture))
    assert result["controller_idle"] is True
    assert result["summary"].startswith(
        "the DaemonSet controller is not acting (3 outdated pods not replaced although maxUnavailable=1 leaves room): "
        "is kube-controller-manager running?; 3 nodes with an outdated pod"
    )
    # just after a pod turned Ready the controller may still be about to act
    now = ready_since(fixture["pods"])
    assert (
        _rollout.rollout_blockers(fixture["ds"], fixture["pods"], [], "another-hash", now)["controller_idle"] is False
    )


def test_no_room_in_the_budget_is_not_an_idle_controller() -> None:
    fixture = load("bad-image")  # the new pod is unavailable: maxUnavailable=1 is used up
    result = _rollout.rollout_blockers(fixture["ds"], fixture["pods"], [], fixture["hash"], long_after(fixture))
    assert result["controller_idle"] is False
    assert not result["summary"].startswith("the DaemonSet controller")


def test_a_stale_status_does_not_hide_a_missing_pod() -> None:
    """The status still counts 3 pods; one is gone and none is being created."""
    fixture = load("complete")
    pods = fixture["pods"][1:]
    result = _rollout.rollout_blockers(fixture["ds"], pods, [], fixture["hash"], long_after(fixture))
    assert result["missing_pods"] == 1
    assert result["summary"] == (
        "the DaemonSet controller is not acting (1 node without a pod, none being created): is "
        "kube-controller-manager running?; 1 node of 3 without a pod yet"
    )
    # a Warning event of the DaemonSet (FailedCreate: quota, admission) says why instead
    involved = {"kind": "DaemonSet", "name": NAME, "namespace": fixture["ds"]["metadata"]["namespace"]}
    event = {"type": "Warning", "reason": "FailedCreate", "message": "exceeded quota", "involvedObject": involved,
             "metadata": {"name": "e1"}, "lastTimestamp": "2026-11-27T07:50:00Z"}  # fmt: skip
    result = _rollout.rollout_blockers(fixture["ds"], pods, [event], fixture["hash"], long_after(fixture))
    assert result["controller_idle"] is False
    assert result["summary"] == "1 node of 3 without a pod yet"


def test_failure_messages() -> None:
    assert _rollout.failure_message("ns", "ds", "timeout", 300, None, "last.", "cause") == (
        "DaemonSet ns/ds: timed out waiting for the condition: the rollout did not finish within 300s. "
        "Last status: last. Blockers: cause"
    )
    assert "made no progress for 30s (progress_deadline)" in _rollout.failure_message(
        "ns", "ds", "progress_deadline", 300, 30, "last.", "cause"
    )


# --- the bake after a rollout


def test_a_bake_of_a_complete_rollout_finds_nothing() -> None:
    stage = load("complete")
    generation = int(stage["ds"]["metadata"]["annotations"]["deprecated.daemonset.template.generation"])
    baseline = _rollout.bake_baseline(stage["pods"])
    assert _rollout.bake_breaches(baseline, stage["ds"], stage["pods"], generation) == []


def test_a_bake_names_a_restart_a_replaced_pod_and_another_template() -> None:
    stage = load("complete")
    baseline = _rollout.bake_baseline(stage["pods"])
    pods = copy.deepcopy(stage["pods"])
    pods[0]["status"]["containerStatuses"][0]["restartCount"] += 2
    pods[1]["metadata"]["uid"] = "another-uid"
    found = _rollout.bake_breaches(baseline, stage["ds"], pods, 99)
    assert found[0].startswith("the pod template was changed by another writer (template generation ")
    assert found[1:] == [
        f"pod {pods[0]['metadata']['name']} on {pods[0]['spec']['nodeName']}: 2 restarts",
        f"pod {pods[1]['metadata']['name']} replaced the one on {pods[1]['spec']['nodeName']}",
    ]


def test_a_bake_fails_when_the_rollout_is_no_longer_complete() -> None:
    stage = load("crashloop")
    found = _rollout.bake_breaches(_rollout.bake_baseline(stage["pods"]), stage["ds"], stage["pods"], None)
    assert found and found[0].startswith(UPDATING)
