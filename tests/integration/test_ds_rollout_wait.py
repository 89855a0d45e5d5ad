"""kubeops.daemonset.ds_rollout_wait on the real cluster, differential against the real `kubectl rollout status`."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

NAME = "fluentd-elasticsearch"
BAD_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
KUBECTL_MESSAGES = [
    re.compile(r"Waiting for daemon set spec update to be observed\.\.\."),
    re.compile(rf'Waiting for daemon set "{NAME}" rollout to finish: \d+ out of \d+ new pods have been updated\.\.\.'),
    re.compile(rf'Waiting for daemon set "{NAME}" rollout to finish: \d+ of \d+ updated pods are available\.\.\.'),
    re.compile(rf'daemon set "{NAME}" successfully rolled out'),
]
DONE = f'daemon set "{NAME}" successfully rolled out'
WATCH_RULE = {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list", "watch"]}


@pytest.fixture
def rolled_out(seed_daemonset, apply_manifest, wait_rollout):
    """make(namespace, **seed overrides): the seed DaemonSet applied and rolled out (kubectl rollout status)."""

    def make(namespace: str, **overrides) -> None:
        apply_manifest(seed_daemonset(namespace, **overrides))
        wait_rollout(namespace)

    return make


def set_image(kubectl, namespace: str, image: str) -> None:
    kubectl("set", "image", f"ds/{NAME}", f"{NAME}={image}", namespace=namespace)


def kubectl_status(kubectl, namespace: str) -> tuple[int, str]:
    proc = kubectl("rollout", "status", f"ds/{NAME}", "--watch=false", check=False, namespace=namespace)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def wait_then(start_module, args: dict, action, after: str = "Waiting for daemon set") -> dict:
    """Run the module (through `ansible`, with its action plugin) and call ACTION() once it has printed a
    progress line containing AFTER (by default its first: the wait has seen the DaemonSet); return its result."""
    run = start_module("ds_rollout_wait", args)
    run.wait_for(after)
    action()
    return run.result()


def resource_version(kubectl, namespace: str) -> str:
    return kubectl("get", "ds", NAME, "-o", "jsonpath={.metadata.resourceVersion}", namespace=namespace).stdout


@pytest.mark.matrix
def test_rollout_completes_with_kubectl_messages(run_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    set_image(kubectl, namespace, V2_IMAGE)

    result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": 120})

    assert not result.get("failed"), result.get("msg")
    assert (result["rollout_complete"], result["outcome"], result["changed"]) == (True, "complete", False)
    assert result["message"] == DONE and result["timeline"][-1]["message"] == DONE
    for entry in result["timeline"]:
        assert any(p.fullmatch(entry["message"]) for p in KUBECTL_MESSAGES), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    messages = [entry["message"] for entry in result["timeline"]]
    assert all(a != b for a, b in zip(messages, messages[1:])), "one entry per message change"
    status = result["status"]
    assert (status["desired"], status["updated"], status["available"], status["outdated"]) == (3, 3, 3, 0)
    assert kubectl_status(kubectl, namespace) == (0, DONE)
    # the revision is the one kubectl lists last, and the pods carry its hash
    history = kubectl("rollout", "history", f"ds/{NAME}", namespace=namespace).stdout.split()
    assert result["revision"]["number"] == int(history[-2]) == 2
    pod_hashes = kubectl(
        "get", "pods", "-l", f"name={NAME}", "-o", "jsonpath={.items[*].metadata.labels.controller-revision-hash}",
        namespace=namespace,
    ).stdout.split()  # fmt: skip
    assert set(pod_hashes) == {result["revision"]["hash"]}


def test_done_exactly_when_kubectl_says_so(run_module, kubectl, namespace, rolled_out):
    """Sample the same rollout with both; compare whenever kubectl saw the same state before and after the module.
    minReadySeconds keeps each state (1 out of 3 updated, 2 out of 3, 2 of 3 available) for 10s."""
    rolled_out(namespace, min_ready_seconds=10)
    set_image(kubectl, namespace, V2_IMAGE)
    compared: set[str] = set()
    for _attempt in range(100):
        before = kubectl_status(kubectl, namespace)
        result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": 0})
        after = kubectl_status(kubectl, namespace)
        assert not result.get("failed") and result["outcome"] in ("status", "complete")
        if before == after:
            assert (result["message"], result["rollout_complete"]) == (before[1], before[1] == DONE)
            assert before[0] == 0
            compared.add(before[1])
        if after[1] == DONE and DONE in compared:
            break
    assert DONE in compared and len(compared) >= 3, compared


def test_timeout_zero_is_status_only(run_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    set_image(kubectl, namespace, BAD_IMAGE)

    result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": 0})

    assert not result.get("failed")
    assert (result["rollout_complete"], result["outcome"]) == (False, "status")
    assert len(result["timeline"]) == 1 and "blockers" not in result
    assert result["message"] == result["timeline"][0]["message"]


def assert_blocked_by_bad_image(result: dict, kubectl, namespace: str) -> None:
    blockers = result["blockers"]
    reasons = {problem["reason"] for problem in blockers["pod_problems"]}
    assert reasons and reasons <= {"ErrImagePull", "ImagePullBackOff"}, blockers
    pods = json.loads(kubectl("get", "pods", "-l", f"name={NAME}", "-o", "json", namespace=namespace).stdout)["items"]
    bad_nodes = sorted(p["spec"]["nodeName"] for p in pods if p["spec"]["containers"][0]["image"] == BAD_IMAGE)
    old_nodes = sorted(p["spec"]["nodeName"] for p in pods if p["spec"]["containers"][0]["image"] != BAD_IMAGE)
    assert blockers["not_available"]["nodes"] == bad_nodes
    assert blockers["not_updated"]["nodes"] == old_nodes
    assert sorted({n for problem in blockers["pod_problems"] for n in problem["nodes"]}) == bad_nodes
    assert any("does-not-exist" in problem["message"] for problem in blockers["pod_problems"])
    assert blockers["warning_events"] and "errors" not in blockers
    assert result["status"]["updated"] < result["status"]["desired"]


def test_bad_image_fails_at_progress_deadline_with_blockers(run_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    set_image(kubectl, namespace, BAD_IMAGE)

    args = {"name": NAME, "namespace": namespace, "timeout": 120, "progress_deadline": 6}
    result = run_module("ds_rollout_wait", args)

    assert result["failed"] and result["outcome"] == "progress_deadline"
    assert result["msg"].startswith(f"DaemonSet {namespace}/{NAME}: the rollout made no progress for 6s")
    assert "Blockers: " in result["msg"] and "ImagePull" in result["msg"]
    assert_blocked_by_bad_image(result, kubectl, namespace)
    assert kubectl_status(kubectl, namespace)[1] == result["message"]


def test_bad_image_fails_at_timeout_with_blockers(run_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    set_image(kubectl, namespace, BAD_IMAGE)

    # print_progress false: one module run, one watch (the progress_deadline test covers the stepped run)
    args = {"name": NAME, "namespace": namespace, "timeout": 8, "print_progress": False}
    result = run_module("ds_rollout_wait", args)

    assert result["failed"] and result["outcome"] == "timeout" and not result["rollout_complete"]
    assert "timed out waiting for the condition: the rollout did not finish within 8s" in result["msg"]
    assert_blocked_by_bad_image(result, kubectl, namespace)


def switch_to_on_delete(kubectl, namespace: str) -> None:
    """kubectl rollout status refuses OnDelete DaemonSets, so the seed rolls out first and switches after."""
    patch = {"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}
    kubectl("patch", "ds", NAME, "--type=merge", "-p", json.dumps(patch), namespace=namespace)


def test_on_delete_report(run_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    switch_to_on_delete(kubectl, namespace)
    set_image(kubectl, namespace, V2_IMAGE)

    result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": 60})

    assert not result.get("failed")
    assert (result["outcome"], result["rollout_complete"]) == ("on_delete", False)
    assert (result["status"]["strategy"], result["status"]["outdated"]) == ("OnDelete", 3)
    assert "3 of 3 pods are outdated and are replaced only when deleted" in result["msg"]
    # kubectl refuses where the module reports
    code, output = kubectl_status(kubectl, namespace)
    assert code != 0 and "rollout status is only available for RollingUpdate strategy type" in output


def test_on_delete_wait_until_pods_are_deleted(start_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    switch_to_on_delete(kubectl, namespace)
    set_image(kubectl, namespace, V2_IMAGE)
    args = {"name": NAME, "namespace": namespace, "timeout": 120, "on_delete": "wait"}

    outdated = "OnDelete: 3 outdated pods are replaced only when deleted"

    def delete_pods():
        kubectl("delete", "pods", "-l", f"name={NAME}", "--wait=false", namespace=namespace)

    result = wait_then(start_module, args, delete_pods, after=outdated)

    assert not result.get("failed"), result.get("msg")
    assert (result["outcome"], result["rollout_complete"], result["status"]["outdated"]) == ("complete", True, 0)
    assert any(outdated in entry["message"] for entry in result["timeline"])
    assert result["timeline"][-1]["message"] == DONE


def test_missing_daemonset(run_module, namespace):
    result = run_module("ds_rollout_wait", {"name": "does-not-exist", "namespace": namespace})
    assert result["failed"] and result["outcome"] == "not_found"
    assert result["msg"] == (
        f'DaemonSet {namespace}/does-not-exist not found; there is no DaemonSet in namespace "{namespace}" (check '
        "namespace: does it exist?)"
    )


def test_deleted_during_the_wait(start_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    set_image(kubectl, namespace, BAD_IMAGE)
    args = {"name": NAME, "namespace": namespace, "timeout": 120}

    result = wait_then(start_module, args, lambda: kubectl("delete", "ds", NAME, "--wait=false", namespace=namespace))

    assert result["failed"] and result["outcome"] == "deleted"
    assert result["msg"] == (
        f"DaemonSet {namespace}/{NAME} was deleted while waiting for its rollout (object has been deleted)"
    )


def test_check_mode_reads_only(run_module, kubectl, namespace, rolled_out):
    rolled_out(namespace)
    before = resource_version(kubectl, namespace)
    result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace}, check=True)
    assert not result.get("failed") and result["rollout_complete"] and result["changed"] is False
    assert resource_version(kubectl, namespace) == before


def test_progress_lines_are_printed_while_waiting(ansible_env, kubectl, namespace, rolled_out):
    """The action plugin prints kubectl's lines on standard error; standard output stays the task result."""
    rolled_out(namespace)
    set_image(kubectl, namespace, V2_IMAGE)
    args = json.dumps({"name": NAME, "namespace": namespace, "timeout": 120})
    cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "kubeops.daemonset.ds_rollout_wait"]
    proc = subprocess.run([*cmd, "-a", args], env=ansible_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if any(p.fullmatch(line) for p in KUBECTL_MESSAGES)]
    assert lines and lines[-1] == DONE
    assert proc.stdout.startswith("localhost | SUCCESS") and "successfully rolled out" in proc.stdout

    quiet = json.dumps({"name": NAME, "namespace": namespace, "print_progress": False})
    proc = subprocess.run([*cmd, "-a", quiet], env=ansible_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and DONE not in proc.stderr


def test_restricted_service_account_with_the_documented_verbs(
    run_module, kubectl, namespace, rolled_out, service_account_kubeconfig
):
    rolled_out(namespace)
    config = service_account_kubeconfig([WATCH_RULE])
    set_image(kubectl, namespace, V2_IMAGE)

    result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "kubeconfig": config})

    assert not result.get("failed"), result.get("msg")
    assert result["rollout_complete"] and result["revision"] is None
    assert any(
        "revision not reported: forbidden: cannot list apps/controllerrevisions" in w for w in result["warnings"]
    )


def test_restricted_service_account_failure_report_says_what_it_cannot_read(
    run_module, kubectl, namespace, rolled_out, service_account_kubeconfig
):
    rolled_out(namespace)
    config = service_account_kubeconfig([WATCH_RULE])
    set_image(kubectl, namespace, BAD_IMAGE)

    args = {"name": NAME, "namespace": namespace, "kubeconfig": config, "timeout": 30, "progress_deadline": 4}
    result = run_module("ds_rollout_wait", args)

    assert result["failed"] and result["outcome"] == "progress_deadline"
    errors = result["blockers"]["errors"]
    assert any(e.startswith("forbidden: cannot list pods") for e in errors)
    assert any(e.startswith("forbidden: cannot list events") for e in errors)


def test_missing_watch_verb_is_a_clear_forbidden_error(
    run_module, kubectl, namespace, rolled_out, service_account_kubeconfig, tmp_path: Path
):
    """Connection by host + api_key + ca_cert this time (the same ServiceAccount token as the kubeconfig)."""
    rolled_out(namespace)
    config = yaml.safe_load(Path(service_account_kubeconfig([{**WATCH_RULE, "verbs": ["get", "list"]}])).read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ca_cert = tmp_path / "ca.crt"
    ca_cert.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    auth = {"host": cluster["server"], "api_key": user["token"], "ca_cert": str(ca_cert)}
    set_image(kubectl, namespace, BAD_IMAGE)  # never completes: the wait must watch

    result = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": 60, **auth})
    assert result["failed"]
    assert result["msg"].startswith(f'forbidden: cannot watch apps/daemonsets in namespace "{namespace}"')
    assert "ds_rollout_wait needs: list, watch on apps/daemonsets." in result["msg"]

    # reading the status once needs no watch
    status_only = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "timeout": 0, **auth})
    assert not status_only.get("failed") and status_only["outcome"] in ("status", "complete")


@pytest.mark.parametrize("budget", ["abc", -1, "150%", "1.5", True, "10 %"])
def test_bad_unhealthy_node_budget_fails_before_any_request(run_module, kubectl, namespace, rolled_out, budget):
    rolled_out(namespace)
    before = json.loads(kubectl("get", "ds", NAME, "-o", "json", namespace=namespace).stdout)["metadata"]
    waited = run_module("ds_rollout_wait", {"name": NAME, "namespace": namespace, "unhealthy_node_budget": budget})
    assert waited["failed"] and "unhealthy_node_budget must be a number or a percentage" in waited["msg"]
    update = {"name": NAME, "namespace": namespace, "images": {NAME: "fluentd:v9"}, "wait": True,
              "unhealthy_node_budget": budget}  # fmt: skip
    assert "unhealthy_node_budget" in run_module("ds_update", update)["msg"]
    after = json.loads(kubectl("get", "ds", NAME, "-o", "json", namespace=namespace).stdout)["metadata"]
    assert after["resourceVersion"] == before["resourceVersion"]
