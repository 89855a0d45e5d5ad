"""ds_diagnose against the REAL local cluster: one test per cause, the healthy case, and the remediations."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"
GOOD_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
TEST_TAINT = "kubeops.test/dedicated"
# get DaemonSet; list nodes, the DaemonSet's pods, Warning events, ControllerRevisions, node leases
BASE_CALLS = 6


def get(kubectl, *args, namespace=None) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json", namespace=namespace).stdout)


def ds_pods(kubectl, namespace: str) -> list[dict]:
    return get(kubectl, "pods", "-l", f"name={NAME}", namespace=namespace)["items"]


def running_on(kubectl, namespace: str, node: str) -> list[str]:
    """Names of the DaemonSet's pods Running on NODE."""
    pods = ds_pods(kubectl, namespace)
    return [
        p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node and p["status"]["phase"] == "Running"
    ]


@pytest.fixture
def diagnose(run_module, namespace, eventually):
    """diagnose(**args) -> module result; diagnose.until(cause, **args) polls until that cause is found."""

    def run(check: bool = False, diff: bool = False, **args) -> dict:
        result = run_module("ds_diagnose", {"name": NAME, "namespace": namespace, **args}, check=check, diff=diff)
        assert not result.get("failed"), result.get("msg")
        return result

    def until(cause: str, timeout: float = 60, **args) -> dict:
        found = {}

        def check():
            found["result"] = run(**args)
            return any(f["cause"] == cause for f in found["result"]["findings"])

        assert eventually(check, timeout), f"no {cause} finding; last report:\n{found['result']['report']}"
        return found["result"]

    run.until = until
    return run


def finding(result: dict, cause: str) -> dict:
    return next(f for f in result["findings"] if f["cause"] == cause)


def test_healthy_rollout_reports_no_problem(diagnose, namespace, seed_daemonset, apply_manifest, wait_rollout):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    result = diagnose(check=True)
    assert result["healthy"] is True and result["changed"] is False
    assert all(f["severity"] == "info" for f in result["findings"])
    assert result["report"].splitlines()[0].endswith(": no problem found")
    assert result["api_calls"] == BASE_CALLS
    assert result["counters"]["desired"] == result["counters"]["status"]["desiredNumberScheduled"] == 3


def test_tiny_node_insufficient_cpu(diagnose, namespace, seed_daemonset, apply_manifest, test_node, kubectl):
    tiny = test_node(cpu="100m", memory="1Gi", pods="10")
    manifest = seed_daemonset(namespace, tolerate_test_nodes=True)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}}
    apply_manifest(manifest)
    result = diagnose.until("resource_exhaustion")
    found = finding(result, "resource_exhaustion")
    pending = [p["metadata"]["name"] for p in ds_pods(kubectl, namespace) if not p["spec"].get("nodeName")]
    assert found["nodes"] == [tiny] and found["pods"] == pending
    assert found["evidence"]["scheduler_reasons"] == ["Insufficient cpu"]
    assert found["evidence"]["per_node"][tiny]["resources"]["cpu"]["allocatable"] == "100m"
    assert result["healthy"] is False
    assert result["api_calls"] == BASE_CALLS + 1  # one spec.nodeName-scoped pod list for the blocked node


@pytest.mark.parametrize(("image", "reasons"), [
    ("example.invalid/does-not-exist:1", {"ErrImagePull", "ImagePullBackOff"}),
    ("example.invalid/crashloop:1", {"CrashLoopBackOff", "Error"}),  # mostly terminated: Error, as a kubelet says
])  # fmt: skip
def test_broken_template(diagnose, namespace, seed_daemonset, apply_manifest, wait_rollout, kubectl, image, reasons):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={image}", namespace=namespace)
    result = diagnose.until("broken_template")
    found = finding(result, "broken_template")
    broken = [p for p in ds_pods(kubectl, namespace) if p["spec"]["containers"][0]["image"] == image]
    assert found["pods"] == sorted(p["metadata"]["name"] for p in broken)
    assert found["nodes"] == sorted(p["spec"]["nodeName"] for p in broken)
    assert {g["reason"] for g in found["evidence"]["groups"]} <= reasons
    assert found["evidence"]["groups"][0]["images"] == [image]


def test_not_ready_node(diagnose, namespace, seed_daemonset, apply_manifest, test_node, kubectl, eventually):
    node = test_node()
    apply_manifest(seed_daemonset(namespace, tolerate_test_nodes=True))
    running = eventually(lambda: running_on(kubectl, namespace, node))
    assert running, "no daemon pod started on the test node"
    kubectl("label", "node", node, "kubeops.test/not-ready=true")  # its simulated kubelet reports NotReady
    result = diagnose.until("node_not_ready")
    found = finding(result, "node_not_ready")
    assert found["nodes"] == [node] and found["pods"] == running
    assert found["evidence"]["per_node"][node]["ready"] == "False"
    assert found["evidence"]["per_node"][node]["pods"][0]["pod"] == running[0]


def test_node_not_ready_before_the_daemonset_has_no_pod(
    diagnose, namespace, seed_daemonset, apply_manifest, test_node, kubectl, eventually
):
    node = test_node(not_ready=True)

    def tainted_not_ready() -> bool:
        # DaemonSet pods tolerate not-ready:NoExecute but not not-ready:NoSchedule: only the latter keeps them off
        taints = json.loads(kubectl("get", "node", node, "-o", "json").stdout)["spec"].get("taints", [])
        return {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in [
            {"key": taint["key"], "effect": taint["effect"]} for taint in taints
        ]

    assert eventually(tainted_not_ready)
    apply_manifest(seed_daemonset(namespace, tolerate_test_nodes=True))
    found = finding(diagnose.until("node_not_ready"), "node_not_ready")
    assert found["nodes"] == [node] and found["severity"] == "warning"
    # The DaemonSet controller may still create a pod for the node (its node cache can lag the taint);
    # the finding then lists that pod too, and no other.
    pods_there = [p["metadata"]["name"] for p in ds_pods(kubectl, namespace) if node in json.dumps(p["spec"])]
    assert set(found["pods"]) <= set(pods_there)


def test_untolerated_taint_is_a_note(diagnose, namespace, seed_daemonset, apply_manifest, wait_rollout, test_node):
    node = test_node()
    apply_manifest(seed_daemonset(namespace))  # does not tolerate the test node's taint
    wait_rollout(namespace)
    result = diagnose.until("untolerated_taint")
    found = finding(result, "untolerated_taint")
    assert found["severity"] == "info" and node in found["nodes"]
    assert f"{TEST_TAINT}=true:NoSchedule" in found["evidence"]["taints"]
    assert result["healthy"] is True and "no problem found" in result["report"]


def test_on_delete_waits_for_manual_deletes(
    diagnose, namespace, seed_daemonset, apply_manifest, wait_rollout, kubectl, eventually
):
    apply_manifest(seed_daemonset(namespace, strategy={"type": "OnDelete"}))
    eventually(lambda: len([p for p in ds_pods(kubectl, namespace) if p["status"].get("phase") == "Running"]) == 3)
    kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={GOOD_IMAGE}", namespace=namespace)
    result = diagnose.until("on_delete_pending")
    found = finding(result, "on_delete_pending")
    assert found["evidence"]["outdated"] == 3
    assert found["pods"] == sorted(p["metadata"]["name"] for p in ds_pods(kubectl, namespace))


def test_clock_skew_on_a_node_we_play_the_kubelet_of(
    diagnose, namespace, seed_daemonset, apply_manifest, kubectl, eventually
):
    """A node kwok does not manage (no kwok annotation): this test writes its status, its lease and its pod's
    status with a clock 90 s ahead of the API server's, as a kubelet on a skewed node would."""
    node = f"skewed-{namespace[-6:]}"
    ahead = datetime.now(timezone.utc) + timedelta(seconds=90)
    stamp, micro = ahead.strftime("%Y-%m-%dT%H:%M:%SZ"), ahead.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"}},
        "spec": {"taints": [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }))  # fmt: skip
    try:
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is ready",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}  # fmt: skip
        kubectl("patch", "node", node, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"conditions": [ready]}}))  # fmt: skip
        kubectl("create", "-f", "-", namespace="kube-node-lease", input=json.dumps({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": node},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro},
        }))  # fmt: skip
        apply_manifest(seed_daemonset(namespace, tolerate_test_nodes=True, min_ready_seconds=10))
        pod = eventually(
            lambda: next((p for p in ds_pods(kubectl, namespace) if p["spec"].get("nodeName") == node), None)
        )
        conditions = [{"type": t, "status": "True", "lastTransitionTime": stamp}
                      for t in ("Initialized", "ContainersReady", "Ready", "PodScheduled")]  # fmt: skip
        status = {"phase": "Running", "conditions": conditions, "startTime": stamp, "containerStatuses": [
            {"name": CONTAINER, "image": pod["spec"]["containers"][0]["image"], "imageID": "kwok", "ready": True,
             "started": True, "restartCount": 0, "state": {"running": {"startedAt": stamp}}}]}  # fmt: skip
        kubectl("patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": status}), namespace=namespace)  # fmt: skip
        result = diagnose.until("clock_skew")
        found = finding(result, "clock_skew")
        assert found["severity"] == "error" and found["nodes"] == [node]
        assert 85 <= found["evidence"]["node_offsets_seconds"][node] <= 95
        assert found["pods"] == [pod["metadata"]["name"]]
    finally:
        kubectl("delete", "lease", node, "--wait=false", namespace="kube-node-lease", check=False)
        kubectl("delete", "node", node, "--wait=false", check=False)


# --- remediation -----------------------------------------------------------------------------


@pytest.fixture
def hogged_node(test_node, kubectl, namespace, apply_manifest, seed_daemonset, eventually):
    """A 1-cpu node filled by a Deployment's 800m pod, then the DaemonSet (500m) that cannot fit there.
    The node label the Deployment selects is removed once its pod runs, so an evicted pod's replacement
    cannot take the room back. Returns (node, hog pod name)."""
    node = test_node(cpu="1", memory="2Gi", pods="10")
    kubectl("label", "node", node, "kubeops.test/hog=true")
    apply_manifest({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hog", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hog"}}, "template": {
            "metadata": {"labels": {"app": "hog"}},
            "spec": {"nodeSelector": {"kubeops.test/hog": "true"},
                     "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                     "containers": [{"name": "hog", "image": "registry.example/hog:1",
                                     "resources": {"requests": {"cpu": "800m"}}}]}}},
    })  # fmt: skip

    def hog_running():
        pods = get(kubectl, "pods", "-l", "app=hog", namespace=namespace)["items"]
        return next((p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"), None)

    hog = eventually(hog_running)
    assert hog, "the hog pod did not start"
    kubectl("label", "node", node, "kubeops.test/hog-")
    manifest = seed_daemonset(namespace, tolerate_test_nodes=True)
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}}
    apply_manifest(manifest)
    return node, hog


def test_evict_blockers_frees_room(diagnose, namespace, hogged_node, kubectl, eventually):
    node, hog = hogged_node
    before = diagnose.until("resource_exhaustion")
    candidates = finding(before, "resource_exhaustion")["evidence"]["per_node"][node]["candidates"]
    assert [c["pod"] for c in candidates] == [f"{namespace}/{hog}"]

    checked = diagnose(check=True, diff=True, remediate="evict_blockers")
    assert checked["changed"] is True and checked["remediation"]["evicted"] == [f"{namespace}/{hog}"]
    assert checked["diff"]["before"][node] == [f"{namespace}/{hog}"] and checked["diff"]["after"][node] == []
    assert get(kubectl, "pod", hog, namespace=namespace)["metadata"].get("deletionTimestamp") is None

    done = diagnose(remediate="evict_blockers")
    assert done["changed"] is True and done["remediation"]["evicted"] == [f"{namespace}/{hog}"]
    assert done["remediation"]["plans"][0]["fits_after"] is True

    assert eventually(lambda: running_on(kubectl, namespace, node), 90)
    again = diagnose.until("untolerated_taint", remediate="evict_blockers")  # converged: nothing left to evict
    assert again["changed"] is False and again["remediation"]["evicted"] == []


def test_pod_disruption_budget_refuses_the_eviction(diagnose, namespace, hogged_node, kubectl):
    hog = hogged_node[1]
    kubectl("create", "poddisruptionbudget", "hog", "--selector=app=hog", "--min-available=1", namespace=namespace)
    diagnose.until("resource_exhaustion")
    result = diagnose(remediate="evict_blockers")
    assert result["changed"] is False and result["remediation"]["evicted"] == []
    [refused] = result["remediation"]["refused"]
    assert refused["pod"] == f"{namespace}/{hog}" and refused["status"] == 429
    assert "disruption budget" in refused["message"]
    assert get(kubectl, "pod", hog, namespace=namespace)["metadata"].get("deletionTimestamp") is None


def test_rollback_remediation(diagnose, namespace, seed_daemonset, apply_manifest, wait_rollout, kubectl):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    v1_image = get(kubectl, "ds", NAME, namespace=namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
    kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}=example.invalid/does-not-exist:1", namespace=namespace)
    diagnose.until("broken_template")
    version = get(kubectl, "ds", NAME, namespace=namespace)["metadata"]["resourceVersion"]

    checked = diagnose(check=True, diff=True, remediate="rollback")
    assert checked["changed"] is True and checked["remediation"]["rolled_back_to"] == 1
    assert checked["diff"]["after"]["spec"]["containers"][0]["image"] == v1_image
    assert get(kubectl, "ds", NAME, namespace=namespace)["metadata"]["resourceVersion"] == version

    done = diagnose(remediate="rollback")
    assert done["changed"] is True and done["remediation"]["rolled_back_to"] == 1
    wait_rollout(namespace)
    assert (
        get(kubectl, "ds", NAME, namespace=namespace)["spec"]["template"]["spec"]["containers"][0]["image"] == v1_image
    )
    again = diagnose(remediate="rollback")
    assert again["changed"] is False and again["healthy"] is True


def test_fixed_image_remediation(diagnose, namespace, seed_daemonset, apply_manifest, wait_rollout, kubectl):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}=example.invalid/crashloop:1", namespace=namespace)
    diagnose.until("broken_template")
    args = {"remediate": "fixed_template", "images": {CONTAINER: GOOD_IMAGE}}
    assert diagnose(check=True, **args)["changed"] is True
    assert diagnose(**args)["changed"] is True
    wait_rollout(namespace)
    again = diagnose(**args)
    assert again["changed"] is False and again["healthy"] is True


# --- the troubleshoot role through playbooks/troubleshoot.yml ----------------------------------

PLAYBOOK = "kubeops.daemonset.troubleshoot"


def recap_changed(stdout: str) -> int:
    return int(stdout.rsplit("changed=", 1)[1].split()[0])


@pytest.mark.matrix
def test_playbook_reports_healthy_and_changes_nothing(run_playbook, run_playbook_json, namespace, seed_daemonset,
                                                      apply_manifest, wait_rollout):  # fmt: skip
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    proc = run_playbook(PLAYBOOK, {"daemonset_namespace": namespace}, check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no problem found" in proc.stdout and recap_changed(proc.stdout) == 0
    run = run_playbook_json(PLAYBOOK, {"daemonset_namespace": namespace})
    assert "no problem found" in json.dumps(run["plays"]) and run["stats"]["localhost"]["changed"] == 0
    # what AWX gets, numbers and nulls as such (also on ansible-core < 2.19, where a value templated alone is text)
    published = run["global_custom_stats"]["kubeops_troubleshoot"]["localhost"]
    assert (published["changed"], published["healthy"], published["remediation"]) == (False, True, None)
    assert published["counters"]["desired"] == published["counters"]["available"] == 3


def test_playbook_fails_only_when_asked_and_rolls_back(run_playbook, namespace, seed_daemonset, apply_manifest,
                                                       wait_rollout, kubectl, diagnose):  # fmt: skip
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}=example.invalid/does-not-exist:1", namespace=namespace)
    diagnose.until("broken_template")
    proc = run_playbook(PLAYBOOK, {"daemonset_namespace": namespace})
    assert proc.returncode == 0 and "broken_template" in proc.stdout
    proc = run_playbook(PLAYBOOK, {"daemonset_namespace": namespace, "troubleshoot_fail_on_findings": True})
    assert proc.returncode != 0 and "updated pod not Ready" in proc.stdout

    args = {"daemonset_namespace": namespace, "troubleshoot_remediate": "rollback"}
    checked = run_playbook(PLAYBOOK, args, check=True, diff=True)
    assert checked.returncode == 0 and recap_changed(checked.stdout) == 1, checked.stdout
    proc = run_playbook(PLAYBOOK, args)
    assert proc.returncode == 0 and recap_changed(proc.stdout) == 1, proc.stdout
    wait_rollout(namespace)
    again = run_playbook(PLAYBOOK, args)
    assert again.returncode == 0 and recap_changed(again.stdout) == 0 and "no problem found" in again.stdout


# --- RBAC: a ClusterRole with only the documented verbs ------------------------------------------


@pytest.fixture
def cluster_role_kubeconfig(service_accounts):
    """make(rules) -> kubeconfig of a fresh ServiceAccount bound to a ClusterRole with exactly RULES
    (ds_diagnose lists nodes, which are cluster-scoped)."""
    return lambda rules: service_accounts.kubeconfig([], rules)


REQUIRED = [
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]},
]


def test_required_verbs_are_enough_and_a_missing_one_is_named(run_module, namespace, seed_daemonset, apply_manifest,
                                                              wait_rollout, cluster_role_kubeconfig):  # fmt: skip
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    args = {"name": NAME, "namespace": namespace}
    result = run_module("ds_diagnose", dict(args, kubeconfig=cluster_role_kubeconfig(REQUIRED)))
    assert not result.get("failed"), result.get("msg")
    assert result["healthy"] is True
    warned = " ".join(result.get("warnings", []))
    assert "events not checked" in warned and "node leases" in warned and "revisions not checked" in warned

    without_nodes = [REQUIRED[0], {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    result = run_module("ds_diagnose", dict(args, kubeconfig=cluster_role_kubeconfig(without_nodes)))
    assert result["failed"] and "forbidden: cannot list nodes" in result["msg"]
    assert "ds_diagnose needs: get on apps/daemonsets; list on nodes, pods" in result["msg"]
