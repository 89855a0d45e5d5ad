"""The diagnosis invariant on the real cluster: ds_diagnose says "no problem found" only when `kubectl rollout
status` says the rollout is complete; every node that should run an updated, available pod and does not is named
by a finding (or the controller has not observed the spec at all, which explains every node); and a count of the
controller's status that the nodes and pods do not show is named too.

The stuck states are built on the dedicated cluster (several stop the controller-manager, so that its counts and
the nodes disagree): each is read back independently of the diagnosis (pods, hashes, Ready times) and the
verdict is checked against it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
BAD_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"
WORKERS = ["kwok-worker-1", "kwok-worker-2", "kwok-worker-3", "kwok-worker-4"]  # the dedicated cluster's
# kubectl's counters beside the diagnosis's (counters.status) and what it saw (counters)
# nodes a state adds (removed after the test)
ADDED = "kubeops.test/invariant"
SEEN = {"desiredNumberScheduled": "desired", "updatedNumberScheduled": "updated", "numberAvailable": "available"}

pytestmark = pytest.mark.slow


def get(faults, *args: str, namespace: str | None = None) -> dict[str, Any]:
    return json.loads(faults.kubectl("get", *args, "-o", "json", namespace=namespace).stdout)


def current_hash(faults, namespace: str) -> str:
    """The hash of the newest revision the DaemonSet owns (what kubectl rollout history lists last)."""
    uid = get(faults, "ds", NAME, namespace=namespace)["metadata"]["uid"]
    owned = [r for r in get(faults, "controllerrevisions", namespace=namespace)["items"]
             if any(ref["uid"] == uid for ref in r["metadata"].get("ownerReferences", []))]  # fmt: skip
    return max(owned, key=lambda r: r["revision"])["metadata"]["labels"]["controller-revision-hash"]


def lacking(faults, namespace: str, nodes: list[str]) -> set[str]:
    """NODES without an updated pod Ready for minReadySeconds (read from the pods, not from the status)."""
    daemonset = get(faults, "ds", NAME, namespace=namespace)
    min_ready = daemonset["spec"].get("minReadySeconds", 0)
    target = current_hash(faults, namespace)
    now = datetime.now(timezone.utc)
    good = set()
    for pod in get(faults, "pods", namespace=namespace)["items"]:
        ready = next((c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"), {})
        since = ready.get("lastTransitionTime")
        if (
            pod["metadata"]["labels"].get("controller-revision-hash") == target
            and not pod["metadata"].get("deletionTimestamp")
            and ready.get("status") == "True"
            and (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds() >= min_ready
        ):
            good.add(pod["spec"]["nodeName"])
    return set(nodes) - good


def kubectl_complete(faults, namespace: str) -> bool:
    status = faults.kubectl("rollout", "status", f"ds/{NAME}", "--watch=false", namespace=namespace, check=False)
    return "successfully rolled out" in status.stdout


def assert_accounts_for_the_gap(result: dict[str, Any], complete: bool, stuck: set[str]) -> None:
    report = result["report"]
    problems = [f for f in result["findings"] if f["severity"] != "info"]
    assert result["healthy"] is (not problems), report
    if result["healthy"]:
        assert complete, f"no problem found, but kubectl says the rollout is not complete:\n{report}"
    if not any(f["cause"] == "spec_not_observed" for f in problems):
        # a finding names the nodes of its problem, and the outdated ones it holds back (the rolling budget)
        named = {
            node for f in problems for node in [*f["nodes"], *f["evidence"].get("holds_back", {}).get("nodes", [])]
        }
        assert stuck <= named, f"nodes without a cause: {sorted(stuck - named)}\n{report}"
    counters = result["counters"]
    differ = {field for field, seen in SEEN.items() if counters[seen] is not None
              and counters["status"][field] != counters[seen]}  # fmt: skip
    if differ:
        assert problems, f"the controller's {sorted(differ)} differ from the nodes and pods, unnamed:\n{report}"


# --- the stuck states: each builds one on a rolled-out DaemonSet and returns the nodes that should run it ---------


def complete(faults, namespace: str) -> list[str]:
    return WORKERS


def waiting_for_min_ready_seconds(faults, namespace: str) -> list[str]:
    patch = {"spec": {"minReadySeconds": 600, "template": {"spec": {"containers": [{"name": CONTAINER,
                                                                                    "image": V2_IMAGE}]}}}}  # fmt: skip
    faults.kubectl("patch", "ds", NAME, "-p", json.dumps(patch), namespace=namespace)
    wait_for(lambda: get(faults, "ds", NAME, namespace=namespace)["status"].get("numberReady") == len(WORKERS)
             and not lacking_ready(faults, namespace))  # fmt: skip
    return WORKERS


def broken_image(faults, namespace: str) -> list[str]:
    faults.kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={BAD_IMAGE}", namespace=namespace)
    wait_for(lambda: "ImagePull" in faults.kubectl("get", "pods", namespace=namespace).stdout)
    return WORKERS


def controller_down_before_a_change(faults, namespace: str) -> list[str]:
    faults.stop("kube-controller-manager")
    faults.kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={V2_IMAGE}", namespace=namespace)
    return WORKERS


def controller_down_mid_rollout(faults, namespace: str) -> list[str]:
    faults.kubectl("patch", "ds", NAME, "--type=merge", "-p", '{"spec": {"minReadySeconds": 2}}', namespace=namespace)
    faults.wait_rollout(namespace)
    faults.kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={V2_IMAGE}", namespace=namespace)
    wait_for(lambda: get(faults, "ds", NAME, namespace=namespace)["status"].get("updatedNumberScheduled", 0) >= 1)
    faults.stop("kube-controller-manager")
    # its last status stays: the new pod becomes available, nobody counts it or replaces the next one
    wait_for(lambda: len(lacking(faults, namespace, WORKERS)) < len(WORKERS))
    return WORKERS


def pod_deleted_while_the_controller_is_down(faults, namespace: str) -> list[str]:
    faults.stop("kube-controller-manager")
    faults.kubectl("delete", "pod", "--wait=true", pods_on(faults, namespace)["kwok-worker-2"], namespace=namespace)
    return WORKERS


def node_added_while_the_controller_is_down(faults, namespace: str) -> list[str]:
    """Admission taints a new node not-ready; only the controller-manager takes the taint off: the DaemonSet
    should not run there yet, and the diagnosis names the node."""
    node = f"{namespace[-6:]}-new"
    faults.stop("kube-controller-manager")
    faults.add_nodes([node], {ADDED: "true"})
    ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
    wait_for(lambda: faults.kubectl("get", "node", node, "-o", ready).stdout == "True")
    return WORKERS


def node_added_and_untainted_while_the_controller_is_down(faults, namespace: str) -> list[str]:
    """The same node with the taint taken off by hand: it should run the DaemonSet, the controller counts 4."""
    node = f"{namespace[-6:]}-new"
    node_added_while_the_controller_is_down(faults, namespace)
    faults.kubectl("taint", "node", node, "node.kubernetes.io/not-ready:NoSchedule-")
    return [*WORKERS, node]


def pods_on(faults, namespace: str) -> dict[str, str]:
    return {p["spec"]["nodeName"]: p["metadata"]["name"] for p in get(faults, "pods", namespace=namespace)["items"]}


def lacking_ready(faults, namespace: str) -> set[str]:
    pods = get(faults, "pods", namespace=namespace)["items"]
    return {p["metadata"]["name"] for p in pods if not any(c["type"] == "Ready" and c["status"] == "True"
                                                           for c in p["status"].get("conditions", []))}  # fmt: skip


def wait_for(check: Callable[[], Any], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{check} did not hold within {timeout}s"
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("build", "causes"),
    [
        (complete, set()),
        (waiting_for_min_ready_seconds, {"rollout_in_progress"}),
        (broken_image, {"broken_template"}),
        (controller_down_before_a_change, {"spec_not_observed"}),
        (controller_down_mid_rollout, {"unexplained"}),
        (pod_deleted_while_the_controller_is_down, {"pod_missing"}),
        (node_added_while_the_controller_is_down, {"node_not_ready"}),
        (node_added_and_untainted_while_the_controller_is_down, {"pod_missing"}),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_diagnosis_accounts_for_the_whole_gap(faults, fault_namespace, seed_daemonset, build, causes):
    faults.apply(seed_daemonset(fault_namespace, tolerate_test_nodes=True))
    faults.wait_rollout(fault_namespace)
    try:
        result = check_state(faults, fault_namespace, build)
        assert {f["cause"] for f in result["findings"] if f["severity"] != "info"} == causes, result["report"]
    finally:
        faults.kubectl("delete", "node", "-l", ADDED, "--wait=false")


def check_state(faults, namespace: str, build: Callable[..., list[str]]) -> dict[str, Any]:
    """Build the state, read it back, diagnose it, check the invariant; the diagnosis."""
    nodes = build(faults, namespace)
    stuck = lacking(faults, namespace, nodes)
    complete_now = kubectl_complete(faults, namespace)
    result = faults.run_module("ds_diagnose", {"name": NAME, "namespace": namespace})
    assert not result.get("failed"), result.get("msg")
    assert_accounts_for_the_gap(result, complete_now, stuck)
    return result
