# SPDX-License-Identifier: GPL-3.0-or-later
"""_preflight on objects captured from the real cluster (tests/unit/fixtures/preflight/capture.py makes them)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
import yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils import _preflight as p
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import pod_requests

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "preflight"


@cache
def _load(name: str) -> dict:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())


def load(name: str) -> dict:
    return copy.deepcopy(_load(name))


def node_named(x: dict, suffix: str) -> dict:
    return next(n for n in x["nodes"] if n["metadata"]["name"].endswith(suffix))


def by_node(findings: list[dict], check: str) -> dict[str, dict]:
    return {f["node"]: f for f in findings if f["check"] == check}


# --- fit and taints ---------------------------------------------------------------------------


def test_targets_are_the_controllers_and_each_finding_names_its_node():
    x = load("nodes")
    checked = p.check_nodes(x["desired"], x["daemonset"], x["nodes"], x["pods"])
    names = {n["metadata"]["name"] for n in x["nodes"]}
    roomy, tiny, extra, never, not_ready = (node_named(x, f"-{n}")["metadata"]["name"] for n in range(1, 6))
    assert set(checked["targets"]) == {roomy, tiny, "kwok-worker-1", "kwok-worker-2", "kwok-worker-3"}
    assert set(checked["nodes"]) == set(checked["targets"])
    assert all(f["node"] in names for f in checked["findings"])
    assert set(by_node(checked["findings"], "fit")) == {tiny}
    assert set(by_node(checked["findings"], "taint")) == {extra, never, not_ready, "kwok-control-plane"}
    assert checked["summary"] == {"nodes": 9, "targets": 5, "not_selected": 0, "untolerated": 4, "fit": 4, "no_fit": 1,
                                  "not_ready": 0, "surge": False}  # fmt: skip


def test_fit_counts_what_is_requested_and_names_the_shortfall():
    x = load("nodes")
    tiny = node_named(x, "-2")["metadata"]["name"]
    finding = by_node(p.check_nodes(x["desired"], x["daemonset"], x["nodes"], x["pods"])["findings"], "fit")[tiny]
    assert finding["severity"] == "error" and finding["reason"] == "Insufficient cpu"
    assert finding["short"] == {"cpu": "500m"}
    assert "needs 600m, 100m free of 100m allocatable" in finding["message"]


def test_without_surge_the_old_pod_frees_its_requests_with_surge_both_must_fit():
    """roomy: 4 cpu, a 3300m pod and the live 500m daemon pod. 600m fits only if the old pod goes first."""
    x = load("nodes")
    roomy = node_named(x, "-1")["metadata"]["name"]
    assert p.check_nodes(x["desired"], x["daemonset"], x["nodes"], x["pods"])["nodes"][roomy]["fits"]
    surging = copy.deepcopy(x["desired"])
    surging["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    checked = p.check_nodes(surging, x["daemonset"], x["nodes"], x["pods"])
    assert checked["summary"]["surge"] is True
    finding = by_node(checked["findings"], "fit")[roomy]
    assert "beside the old one" in finding["message"] and finding["short"] == {"cpu": "400m"}
    # a percentage surge resolves against the target count, rounded up: 1% of 5 is 1
    surging["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = "1%"
    assert p.surges(surging, 5)


def test_a_deploy_has_no_old_pod_to_free():
    x = load("nodes")
    roomy = node_named(x, "-1")["metadata"]["name"]
    others = [pod for pod in x["pods"] if pod["metadata"]["name"] == "hog"]
    assert p.check_nodes(x["desired"], None, x["nodes"], others)["nodes"][roomy]["fits"]  # 3300m + 600m of 4
    live_pod = next(
        pod for pod in x["pods"] if pod["spec"].get("nodeName") == roomy and pod["metadata"]["name"] != "hog"
    )
    checked = p.check_nodes(x["desired"], None, x["nodes"], [*others, live_pod])  # someone else's 500m pod
    assert not checked["nodes"][roomy]["fits"]


def test_finished_pods_hold_nothing_and_pods_count_against_the_pod_limit():
    x = load("nodes")
    roomy = node_named(x, "-1")
    pods = [pod for pod in x["pods"] if pod["spec"].get("nodeName") == roomy["metadata"]["name"]]
    needs = pod_requests(x["desired"]["spec"]["template"])
    hog = next(pod for pod in pods if pod["metadata"]["name"] == "hog")
    finished = copy.deepcopy(hog)
    finished["status"]["phase"] = "Succeeded"
    assert p.pod_fit(needs, roomy, [finished], None)["fits"]
    full = copy.deepcopy(roomy)
    full["status"]["allocatable"]["pods"] = "1"
    fit = p.pod_fit(needs, full, [hog], None)
    assert not fit["fits"] and fit["reason"] == "Too many pods" and "1 of 1 in use" in fit["message"]


def test_an_untolerated_taint_is_an_error_only_where_the_live_daemonset_runs():
    x = load("nodes")
    extra, never = node_named(x, "-3")["metadata"]["name"], node_named(x, "-4")["metadata"]["name"]
    taints = by_node(p.check_nodes(x["desired"], x["daemonset"], x["nodes"], x["pods"])["findings"], "taint")
    assert taints[extra]["severity"] == "error" and taints[extra]["taints"] == ["kubeops.test/extra=x:NoExecute"]
    assert "left without its pod" in taints[extra]["message"]
    assert taints[never]["severity"] == "warning" and taints[never]["taints"] == ["kubeops.test/never=x:NoSchedule"]
    deploy = by_node(p.check_nodes(x["desired"], None, x["nodes"], x["pods"])["findings"], "taint")
    assert {f["severity"] for f in deploy.values()} == {"warning"}


def test_nodes_the_selector_does_not_pick_are_only_counted():
    x = load("nodes")
    desired = copy.deepcopy(x["desired"])
    desired["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "kwok-worker-1"}
    checked = p.check_nodes(desired, x["daemonset"], x["nodes"], x["pods"])
    assert checked["targets"] == ["kwok-worker-1"]
    assert checked["summary"]["not_selected"] == 8 and not checked["findings"]


def test_a_not_ready_target_is_a_warning():
    x = load("nodes")
    desired = copy.deepcopy(x["desired"])
    desired["spec"]["template"]["spec"]["tolerations"].append({"operator": "Exists"})  # everything, not-ready too
    not_ready = node_named(x, "-5")["metadata"]["name"]
    checked = p.check_nodes(desired, x["daemonset"], x["nodes"], x["pods"])
    assert not checked["nodes"][not_ready]["ready"] and checked["summary"]["not_ready"] == 1
    assert by_node(checked["findings"], "node")[not_ready]["severity"] == "warning"


# --- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    ["nginx", "nginx:1.27", "quay.io/fluentd_elasticsearch/fluentd:v2.6.0", "localhost:5000/a/b_c__d-e.f:latest",
     "registry.k8s.io/pause:3.10", "Registry.Example.COM/app@sha256:" + "a" * 64, "[::1]:5000/x:1",
     "example.invalid/does-not-exist:1"],
)  # fmt: skip
def test_image_references_the_kubelet_accepts(image):
    assert p.image_problem(image) is None


@pytest.mark.parametrize(
    ("image", "why"),
    [("", "empty"), (" nginx", "spaces"), ("Nginx:1", "lowercase"), ("quay.io/Org/app:1", "lowercase"),
     ("quay.io/app:-x", "tag"), ("quay.io/app@sha256:123", "digest"), ("quay.io//app", "repository name"),
     ("quay.io/app:" + "t" * 129, "tag"), ("bad_host.io:x/app", "registry host")],
)  # fmt: skip
def test_image_references_the_kubelet_refuses_name_why(image, why):
    assert why in p.image_problem(image)


def test_invalid_images_are_errors_without_a_node():
    (finding,) = p.image_findings(["quay.io/app:1", "Quay.io/App:1"])
    assert finding["node"] is None and finding["severity"] == "error" and finding["reason"] == "InvalidImageName"


def test_images_to_pull_are_the_ones_the_live_template_lacks():
    x = load("nodes")
    desired = copy.deepcopy(x["desired"])
    containers = desired["spec"]["template"]["spec"]["containers"]
    assert p.images_to_pull(desired, x["daemonset"]) == {}
    containers[0]["image"] = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
    containers.append({"name": "sidecar", "image": "busybox", "imagePullPolicy": "Never"})
    assert p.images_to_pull(desired, x["daemonset"]) == {
        "quay.io/fluentd_elasticsearch/fluentd:v2.6.0": "IfNotPresent",
        "busybox": "Never",
    }
    assert len(p.images_to_pull(desired, x["daemonset"], every=True)) == 2
    assert p.images_to_pull(desired, None) == p.images_to_pull(desired, x["daemonset"], every=True)
    assert p.default_pull_policy("busybox") == "Always" and p.default_pull_policy("busybox:latest") == "Always"
    assert p.default_pull_policy("busybox@sha256:" + "a" * 64) == "IfNotPresent"


# --- the pre-pull DaemonSet -------------------------------------------------------------------


def test_the_prepull_daemonset_copies_placement_and_pull_credentials_only():
    x = load("nodes")
    desired = copy.deepcopy(x["desired"])
    spec = desired["spec"]["template"]["spec"]
    spec.update(nodeSelector={"kubernetes.io/os": "linux"}, hostNetwork=True, serviceAccountName="agent",
                imagePullSecrets=[{"name": "registry"}], priorityClassName="system-node-critical",
                affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "type", "operator": "In", "values": ["kwok"]}]}]}},
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}})  # fmt: skip
    meta = p.prepull_metadata("fluentd-prepull", "ns", "run1", "ns/fluentd", datetime(2026, 1, 1, tzinfo=timezone.utc),
                              "host/1")  # fmt: skip
    owner = {"metadata": {"name": "fluentd-prepull", "uid": "u-1"}}
    ds = p.prepull_daemonset(desired, meta, {"a:1": "IfNotPresent", "b:2": "Always"}, ["/true"], p.PAUSE_IMAGE, owner)
    pod = ds["spec"]["template"]["spec"]
    assert ds["spec"]["selector"] == {"matchLabels": {p.PREPULL_LABEL: "run1"}}
    assert ds["spec"]["template"]["metadata"]["labels"] == {p.PREPULL_LABEL: "run1"}  # not the real pods' labels
    assert ds["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "fluentd-prepull",
                                                  "uid": "u-1"}]  # fmt: skip
    assert ds["metadata"]["annotations"][p.PREPULL_EXPIRES] == "2026-01-01T00:00:00Z"
    assert pod["nodeSelector"] == spec["nodeSelector"] and pod["affinity"] == {
        "nodeAffinity": spec["affinity"]["nodeAffinity"]
    }
    assert pod["tolerations"][: len(spec["tolerations"])] == spec["tolerations"]
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["imagePullSecrets"] == [{"name": "registry"}] and pod["serviceAccountName"] == "agent"
    assert pod["automountServiceAccountToken"] is False and "priorityClassName" not in pod and "volumes" not in pod
    assert [(c["name"], c["image"], c["imagePullPolicy"], c["command"]) for c in pod["initContainers"]] == [
        ("pull-1", "a:1", "IfNotPresent", ["/true"]), ("pull-2", "b:2", "Always", ["/true"])]  # fmt: skip
    assert [c["image"] for c in pod["containers"]] == [p.PAUSE_IMAGE]


def test_the_prepull_daemonset_is_what_the_server_stored():
    """capture.py created it with prepull_daemonset: the server kept its placement, selector and containers."""
    x = load("prepull")
    stored = next(d for d in x["daemonsets"] if d["metadata"]["name"] == "missing-prepull")
    pod = stored["spec"]["template"]["spec"]
    assert stored["spec"]["selector"] == {"matchLabels": {p.PREPULL_LABEL: "runmissing"}}
    assert [c["image"] for c in pod["initContainers"]] == ["quay.io/fluentd_elasticsearch/fluentd:v2.6.0",
                                                           "example.invalid/does-not-exist:1",
                                                           "quay.io/prometheus/node-exporter:v1.8.2"]  # fmt: skip
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["terminationGracePeriodSeconds"] == 1
    assert {"key": "kubeops.test/dedicated", "operator": "Exists"} in pod["tolerations"]


def test_the_owner_job_runs_no_pod_and_ends_at_its_deadline():
    meta = p.prepull_metadata("x-prepull", "ns", "run1", "ns/x", datetime(2026, 1, 1, tzinfo=timezone.utc), "h/1")
    job = p.prepull_owner(meta, 330, p.PAUSE_IMAGE)["spec"]
    assert (job["parallelism"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (0, 330, 0)


def test_expiry():
    x = load("prepull")
    stored = x["daemonsets"][0]
    expires = p.expires_at(stored)
    assert not p.expired(stored, expires - timedelta(seconds=1)) and p.expired(stored, expires)
    del stored["metadata"]["annotations"][p.PREPULL_EXPIRES]
    assert p.expired(stored, expires)  # no expiry: whatever made it is not coming back for it
    assert p.prepull_name("a" * 253) == "a" * 245 + "-prepull"


# --- the pre-pull's verdict -------------------------------------------------------------------


def pods_of(x: dict, run: str) -> list[dict]:
    return [pod for pod in x["pods"] if pod["metadata"]["name"].startswith(f"{run}-prepull-")]


def test_ready_pods_pulled_every_image():
    x = load("prepull")
    states = p.pull_states([n["metadata"]["name"] for n in x["nodes"]], pods_of(x, "good"))
    assert {s["state"] for s in states.values()} == {"pulled"}


def test_a_missing_image_fails_with_the_kubelets_reason_and_the_image():
    x = load("prepull")
    states = p.pull_states([n["metadata"]["name"] for n in x["nodes"]], pods_of(x, "missing"))
    assert {s["state"] for s in states.values()} == {"failed"}
    assert {s["image"] for s in states.values()} == {"example.invalid/does-not-exist:1"}
    assert {s["reason"] for s in states.values()} <= {"ErrImagePull", "ImagePullBackOff"}
    findings = p.pull_findings(states, timed_out=False)
    assert {f["node"] for f in findings} == set(states) and {f["severity"] for f in findings} == {"error"}


def test_a_pull_that_never_comes_is_pending_then_an_error_when_time_is_up():
    x = load("prepull")
    states = p.pull_states([n["metadata"]["name"] for n in x["nodes"]], pods_of(x, "hangs"))
    assert {(s["state"], s["image"]) for s in states.values()} == {("pending", "quay.io/example/agent:pull-hangs")}
    assert p.pull_findings(states, timed_out=False) == []
    assert {f["reason"] for f in p.pull_findings(states, timed_out=True)} == {"PullTimeout"}
    missing_node = p.pull_states(["elsewhere"], pods_of(x, "hangs"))["elsewhere"]
    assert (missing_node["state"], missing_node["reason"]) == ("pending", "NoPod")


def test_a_command_the_image_lacks_blocks_the_images_after_it():
    """What a kubelet reports when the image has no sh: the image was pulled (a container was made from it), the
    start failed (StartError, exit 128), then CrashLoopBackOff - derived from the captured failing pod."""
    x = load("prepull")
    pod = copy.deepcopy(pods_of(x, "missing")[0])
    statuses = pod["status"]["initContainerStatuses"]
    statuses[1]["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed "
                                        "container=pull-2"}}  # fmt: skip
    statuses[1]["lastState"] = {"terminated": {"exitCode": 128, "reason": "StartError", "message": 'exec: "sh": '
                                               "executable file not found in $PATH"}}  # fmt: skip
    state = p.pull_state(pod)
    assert state["state"] == "blocked" and state["image"] == "example.invalid/does-not-exist:1"
    assert "prepull_command" in state["message"]
    (finding,) = p.pull_findings({"n": state}, timed_out=False)
    assert finding["severity"] == "warning"


def test_progress_lines_count_and_name():
    x = load("prepull")
    nodes = sorted(n["metadata"]["name"] for n in x["nodes"])
    states = p.pull_states(nodes, pods_of(x, "good")[:1] + pods_of(x, "missing")[1:2])
    line = p.progress_line("pre-pull daemonset ns/x-prepull", states, 3.2)
    assert line.startswith("pre-pull daemonset ns/x-prepull: 1 of 3 nodes pulled")
    assert "1 failed (" in line and "1 pending (" in line and line.endswith("(3s)")
    assert p.pull_counts(states) == {"pulled": 1, "failed": 1, "blocked": 0, "pending": 1, "skipped": 0}


def test_verdict_groups_findings_and_only_errors_fail():
    x = load("nodes")
    checked = p.check_nodes(x["desired"], x["daemonset"], x["nodes"], x["pods"])
    ok, msg = p.verdict(checked["findings"], "pre-flight")
    assert not ok and msg.startswith(
        "pre-flight: 2 problems that would fail the rollout; error: pod does not fit on 1 node"
    )
    assert "warning: untolerated taint on 3 nodes" in msg and "kubeops.test/never=x:NoSchedule" in msg
    warnings_only = [f for f in checked["findings"] if f["severity"] == "warning"]
    assert p.verdict(warnings_only, "pre-flight")[0] is True
    assert p.verdict([], "pre-flight") == (True, "pre-flight: no problem found")
