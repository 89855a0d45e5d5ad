"""ds_preflight on the real cluster: per-node fit and taints, the pre-pull, and that nothing is left behind.

Missing images come from the test cluster's KWOK stages (tests/cluster/kwok-stages.yaml.tmpl): an image with
``does-not-exist`` in its reference fails to pull (ErrImagePull, ImagePullBackOff), one with ``pull-hangs`` is never
pulled (its pod stays Pending) - how the test cluster simulates a registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
MISSING_IMAGE = "example.invalid/does-not-exist:1"
HANGING_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:pull-hangs"
PREPULL = f"{NAME}-prepull"
PREPULL_LABEL = "daemonset.kubeops.io/prepull"
ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / ".cache/collections/ansible_collections/kubeops/daemonset/plugins/modules/ds_preflight.py"


def get_ds(kubectl, namespace: str, name: str = NAME) -> dict[str, Any]:
    return json.loads(kubectl("get", "ds", name, "-o", "json", namespace=namespace).stdout)


def names(kubectl, kind: str, namespace: str) -> list[str]:
    out = kubectl("get", kind, "-o", "jsonpath={.items[*].metadata.name}", namespace=namespace).stdout
    return out.split()


def prepull_pods(kubectl, namespace: str) -> list[str]:
    out = kubectl("get", "pods", "-l", PREPULL_LABEL, "-o", "jsonpath={.items[*].metadata.name}", namespace=namespace)
    return out.stdout.split()


def daemon_pods(kubectl, namespace: str) -> list[str]:
    """The uids of the seed DaemonSet's pods."""
    out = kubectl("get", "pods", "-l", f"name={NAME}", "-o", "jsonpath={.items[*].metadata.uid}", namespace=namespace)
    return sorted(out.stdout.split())


def by_check(result: dict[str, Any], check: str) -> dict[str, dict[str, Any]]:
    return {f["node"]: f for f in result["findings"] if f["check"] == check}


@pytest.fixture
def rolled_out(namespace, seed_daemonset, apply_manifest, wait_rollout, kubectl):
    """deploy(**seed overrides): the seed DaemonSet applied and rolled out; returns it as the server has it."""

    def deploy(manifest: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
        apply_manifest(manifest or seed_daemonset(namespace, **overrides))
        wait_rollout(namespace)
        return get_ds(kubectl, namespace)

    return deploy


def test_names_the_node_without_room_and_the_untolerated_taints_and_writes_nothing(
    run_module, kubectl, namespace, seed_daemonset, rolled_out, test_node
):
    tiny = test_node(cpu="100m", memory="1Gi")
    loses, never = test_node(), test_node()
    kubectl("taint", "node", loses, "kubeops.test/extra=x:NoSchedule")
    kubectl("taint", "node", never, "kubeops.test/never=x:NoSchedule")
    manifest = seed_daemonset(namespace, tolerate_test_nodes=True)
    manifest["spec"]["template"]["spec"]["tolerations"].append({"key": "kubeops.test/extra", "operator": "Exists"})
    live = rolled_out(manifest)
    template = json.loads(json.dumps(manifest["spec"]["template"]))
    template["spec"]["tolerations"] = [t for t in template["spec"]["tolerations"] if t["key"] != "kubeops.test/extra"]
    template["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}}

    result = run_module("ds_preflight", {"name": NAME, "namespace": namespace, "template": template})

    assert result["failed"] and result["ok"] is False
    assert set(by_check(result, "fit")) == {tiny}
    fit = by_check(result, "fit")[tiny]
    assert fit["severity"] == "error" and fit["reason"] == "Insufficient cpu" and "needs 500m" in fit["message"]
    taints = by_check(result, "taint")
    assert taints[loses]["severity"] == "error" and taints[loses]["taints"] == ["kubeops.test/extra=x:NoSchedule"]
    assert taints[never]["severity"] == "warning" and taints[never]["taints"] == ["kubeops.test/never=x:NoSchedule"]
    assert tiny in result["msg"] and loses in result["msg"]
    assert result["nodes"][tiny]["fits"] is False and loses not in result["nodes"]
    assert result["summary"]["targets"] == len(result["nodes"]) and result["summary"]["no_fit"] == 1
    assert result["api_calls"] <= 5  # get, dry-run patch, nodes, pods (+ none per node)
    after = get_ds(kubectl, namespace)
    assert after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert names(kubectl, "ds", namespace) == [NAME]


def test_check_mode_checks_but_does_not_prepull(run_module, kubectl, namespace, rolled_out):
    live = rolled_out()
    args = {"name": NAME, "namespace": namespace, "images": {CONTAINER: MISSING_IMAGE}, "prepull": True}
    result = run_module("ds_preflight", args, check=True)
    assert result["ok"] and not result.get("failed") and result["changed"] is False
    assert result["prepull"]["state"] == "skipped" and "check mode" in result["prepull"]["reason"]
    assert "check mode: no pre-pull" in result["msg"]
    assert result["images"] == [MISSING_IMAGE] and result["summary"]["targets"] == 3
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert names(kubectl, "ds", namespace) == [NAME]


def test_prepull_finds_a_missing_image_before_the_daemonset_is_touched(run_module, kubectl, namespace, rolled_out,
                                                                       eventually):  # fmt: skip
    live = rolled_out()
    pods = daemon_pods(kubectl, namespace)
    args = {"name": NAME, "namespace": namespace, "images": {CONTAINER: MISSING_IMAGE}, "prepull": True,
            "prepull_timeout": 60}  # fmt: skip
    result = run_module("ds_preflight", args)
    assert result["failed"] and result["prepull"]["state"] == "done"
    pulls = by_check(result, "pull")
    assert set(pulls) == set(result["nodes"]) and len(pulls) == 3
    assert {f["reason"] for f in pulls.values()} <= {"ErrImagePull", "ImagePullBackOff"}
    assert {f["image"] for f in pulls.values()} == {MISSING_IMAGE}
    assert result["summary"]["pull"]["failed"] == 3 and MISSING_IMAGE in result["msg"]
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert daemon_pods(kubectl, namespace) == pods  # the same pods: none replaced
    assert names(kubectl, "ds", namespace) == [NAME] and names(kubectl, "jobs", namespace) == []
    assert eventually(lambda: not prepull_pods(kubectl, namespace), timeout=30)


@pytest.mark.matrix
def test_prepull_of_good_images_reports_every_node_pulled(run_module, kubectl, namespace, rolled_out, eventually):
    live = rolled_out()
    args = {"name": NAME, "namespace": namespace, "images": {CONTAINER: V2_IMAGE}, "prepull": True}
    result = run_module("ds_preflight", args)
    assert result["ok"], result["msg"]
    assert {node["pull"] for node in result["nodes"].values()} == {"pulled"}
    assert result["prepull"]["counts"]["pulled"] == 3 and result["prepull"]["left_behind"] == []
    assert result["elapsed"] >= result["prepull"]["elapsed"] > 0
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert names(kubectl, "ds", namespace) == [NAME] and names(kubectl, "jobs", namespace) == []
    assert eventually(lambda: not prepull_pods(kubectl, namespace), timeout=30)
    again = run_module("ds_preflight", dict(args, images={CONTAINER: live["spec"]["template"]["spec"]["containers"][0]
                                                          ["image"]}))  # fmt: skip
    assert again["prepull"]["state"] == "skipped" and "no new image" in again["prepull"]["reason"]


def test_a_definition_not_deployed_yet_is_checked_and_pulled_without_creating_it(run_module, kubectl, namespace,
                                                                                 seed_daemonset):  # fmt: skip
    manifest = seed_daemonset(namespace, image=V2_IMAGE)
    result = run_module("ds_preflight", {"definition": yaml.safe_dump(manifest), "prepull": True})
    assert result["ok"], result["msg"]
    assert result["images"] == [V2_IMAGE] and result["prepull"]["counts"]["pulled"] == result["summary"]["targets"]
    assert names(kubectl, "ds", namespace) == []


def test_an_expired_leftover_is_deleted_by_the_next_run(run_module, kubectl, namespace, rolled_out):
    rolled_out()
    leftover = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "other-prepull", "labels": {PREPULL_LABEL: "killed"},
                     "annotations": {"daemonset.kubeops.io/prepull-expires": "2026-01-01T00:00:00Z"}},
        "spec": {"selector": {"matchLabels": {PREPULL_LABEL: "killed"}},
                 "template": {"metadata": {"labels": {PREPULL_LABEL: "killed"}},
                              "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}}},
    }  # fmt: skip
    kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(leftover))
    result = run_module("ds_preflight", {"name": NAME, "namespace": namespace, "images": {CONTAINER: V2_IMAGE},
                                         "prepull": True})  # fmt: skip
    assert result["ok"], result["msg"]
    assert names(kubectl, "ds", namespace) == [NAME]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"images": {"nope": V2_IMAGE}}, "no container named nope in the pod template; containers: fluentd-"),
        ({"images": {CONTAINER: ""}}, "images: container fluentd-elasticsearch needs an image reference"),
        ({"prepull": True, "prepull_command": []}, "prepull_command must not be empty"),
        ({"prepull": True, "prepull_pause_image": "Pause:1"}, "prepull_pause_image 'Pause:1' is not an image"),
        ({"prepull_timeout": 0}, "prepull_timeout must be at least 1"),
        ({"name": "missing"}, "DaemonSet {ns}/missing not found; DaemonSets there: fluentd-elasticsearch; to check a "
                              "DaemonSet before it is deployed, give its definition"),
        ({"name": None, "definition": {"kind": "Deployment"}}, "the definition holds 0 DaemonSets (Deployment)"),
        ({"definition": {"kind": "DaemonSet"}, "images": {CONTAINER: V2_IMAGE}}, "mutually exclusive"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error_and_changes_nothing(run_module, kubectl, namespace, rolled_out, args, message):
    live = rolled_out()
    result = run_module("ds_preflight", {"name": NAME, "namespace": namespace, **args})
    assert result["failed"] and message.format(ns=namespace) in result["msg"], result["msg"]
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert names(kubectl, "ds", namespace) == [NAME]


# --- interrupted pre-pulls leave nothing behind ----------------------------------------------------


def start(kind: str, namespace: str, ansible_env: dict[str, str], tmp_path: Path, timeout: int) -> subprocess.Popen:
    """A pre-pull that waits (its image never comes), as ansible-playbook runs it (in the controller process) or as
    the module process itself."""
    args = {"name": NAME, "namespace": namespace, "images": {CONTAINER: HANGING_IMAGE}, "prepull": True,
            "prepull_timeout": timeout}  # fmt: skip
    if kind == "playbook":
        playbook = tmp_path / "prepull.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                             "tasks": [{"kubeops.daemonset.ds_preflight": args}]}]))  # fmt: skip
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
        env = ansible_env
    else:
        (tmp_path / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        cmd = [sys.executable, str(MODULE), str(tmp_path / "args.json")]
        env = dict(ansible_env, PYTHONPATH=str(ROOT / ".cache/collections"))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize(
    ("kind", "sig", "within"),
    [
        ("playbook", signal.SIGINT, 10),  # Ctrl-C: ansible-playbook passes it to its worker
        ("playbook", signal.SIGTERM, 10),
        ("playbook", signal.SIGKILL, 20),  # the worker notices its controller is gone (within a watch window)
        ("module", signal.SIGINT, 10),
        ("module", signal.SIGTERM, 10),
        ("module", signal.SIGKILL, 150),  # nothing of it runs: the owner Job's deadline (20 + 30 s) and the GC
    ],
    ids=lambda value: value if isinstance(value, str) else getattr(value, "name", str(value)),
)  # fmt: skip
def test_an_interrupted_prepull_leaves_no_daemonset_behind(
    kubectl, namespace, rolled_out, ansible_env, installed_collection, tmp_path, eventually, kind, sig, within
):
    live = rolled_out()
    proc = start(kind, namespace, ansible_env, tmp_path, 20 if sig == signal.SIGKILL else 120)
    try:
        created = eventually(lambda: PREPULL in names(kubectl, "ds", namespace) or proc.poll() is not None, 60, 0.2)
        assert created and proc.poll() is None, proc.communicate()[0] if proc.poll() is not None else "not created"
        assert eventually(lambda: len(prepull_pods(kubectl, namespace)) == 3, 30, 0.2)  # it is waiting
        os.kill(proc.pid, sig)
        output = proc.communicate(timeout=60)[0]
        if (kind, sig) == ("module", signal.SIGKILL):
            assert PREPULL in names(kubectl, "ds", namespace)  # no clean-up ran: what follows is the cluster's doing
    finally:
        if proc.poll() is None:
            proc.kill()
    began = time.monotonic()
    gone = eventually(lambda: names(kubectl, "ds", namespace) == [NAME], within, 0.5)
    assert gone, f"{names(kubectl, 'ds', namespace)} after {time.monotonic() - began:.0f}s; output:\n{output}"
    assert eventually(lambda: names(kubectl, "jobs", namespace) == [], 30, 0.5)
    assert eventually(lambda: not prepull_pods(kubectl, namespace), 60, 0.5)
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]


def test_a_second_prepull_of_the_same_daemonset_is_refused_while_the_first_runs(run_module, kubectl, namespace,
                                                                                rolled_out, ansible_env,
                                                                                installed_collection, tmp_path,
                                                                                eventually):  # fmt: skip
    rolled_out()
    first = start("module", namespace, ansible_env, tmp_path, 120)
    try:
        assert eventually(lambda: PREPULL in names(kubectl, "ds", namespace), 60, 0.2)
        second = run_module("ds_preflight", {"name": NAME, "namespace": namespace, "images": {CONTAINER: V2_IMAGE},
                                             "prepull": True})  # fmt: skip
        assert second["failed"] and "another pre-pull for DaemonSet" in second["msg"], second["msg"]
        assert second["status_code"] == 409
        assert PREPULL in names(kubectl, "ds", namespace)  # the first run's, untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert eventually(lambda: names(kubectl, "ds", namespace) == [NAME], 10, 0.5)


# --- the update role --------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["images", "manifest_file"])
def test_update_role_stops_before_the_change_when_a_node_cannot_pull(change, run_playbook, kubectl, namespace,
                                                                     rolled_out, seed_daemonset, tmp_path):  # fmt: skip
    """The pre-flight checks the change the role is asked for, whichever way it is given."""
    live = rolled_out()
    extra = {"daemonset_namespace": namespace, "update_prepull": True, "update_timeout": 60}
    if change == "images":
        extra["update_images"] = {CONTAINER: MISSING_IMAGE}
    else:
        manifest = tmp_path / "fluentd-missing-image.yaml"
        manifest.write_text(yaml.safe_dump(seed_daemonset(namespace, image=MISSING_IMAGE)))
        extra["update_manifest_file"] = str(manifest)
    run = run_playbook("kubeops.daemonset.update", extra)
    assert run.returncode != 0
    assert "Pre-flight the change" in run.stdout and "ErrImagePull" in run.stdout + run.stderr
    assert "Change the pod template" not in run.stdout  # stopped before the write
    after = get_ds(kubectl, namespace)
    assert after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
    assert names(kubectl, "ds", namespace) == [NAME]


def test_update_role_with_preflight_goes_ahead_when_everything_fits(run_playbook, kubectl, namespace, rolled_out):
    rolled_out()
    extra = {"daemonset_namespace": namespace, "update_images": {CONTAINER: V2_IMAGE}, "update_preflight": True,
             "update_prepull": True}  # fmt: skip
    run = run_playbook("kubeops.daemonset.update", extra)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "pre-pull daemonset" in run.stderr and "3 of 3 nodes pulled" in run.stderr
    assert get_ds(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0]["image"] == V2_IMAGE
    assert names(kubectl, "ds", namespace) == [NAME]
