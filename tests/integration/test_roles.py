"""The roles and playbooks end to end on the REAL cluster, each test in its own namespace.

Playbooks run as users run them (`ansible-playbook kubeops.daemonset.NAME`) from the installed collection; the
cluster is then read back with the kubectl built with it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

V1_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"

pytestmark = pytest.mark.slow


def recap(stdout: str) -> dict[str, int]:
    """The PLAY RECAP counters of localhost (summed over plays)."""
    totals: dict[str, int] = {}
    for line in re.findall(r"^localhost\s*:(.*)$", stdout, re.MULTILINE):
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            totals[key] = totals.get(key, 0) + int(value)
    assert totals, f"no PLAY RECAP in:\n{stdout}"
    return totals


def ok(proc) -> dict[str, int]:
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return recap(proc.stdout)


def get_ds(kubectl, namespace: str) -> dict[str, Any]:
    return json.loads(kubectl("get", "ds", NAME, "-o", "json", namespace=namespace).stdout)


def history(kubectl, namespace: str) -> dict[int, str]:
    """revision -> change-cause, from kubectl rollout history."""
    out = kubectl("rollout", "history", f"ds/{NAME}", namespace=namespace).stdout
    return {int(m[0]): m[1].strip() for m in re.findall(r"^(\d+)\s+(.*)$", out, re.MULTILINE)}


def image(ds: dict[str, Any]) -> str:
    return ds["spec"]["template"]["spec"]["containers"][0]["image"]


# Published values that are numbers, booleans, null or lists (the rest is text anyway).
TYPED_UPDATE = ("changed", "revision_before", "revision_after", "rolled_back", "blockers", "preflight",
                "rollback_revision", "failed_revision", "skipped_nodes")  # fmt: skip
TYPED_ROLLBACK = ("changed", "current_revision_before", "rolled_back_from", "to_revision", "new_revision",
                  "rollout_complete")  # fmt: skip


def test_deploy_playbook_check_mode_apply_idempotent(run_playbook, kubectl, namespace):
    base = {"daemonset_namespace": namespace, "deploy_change_cause": "deploy v2.5.2", "deploy_min_ready_seconds": 1}

    checked = ok(run_playbook("kubeops.daemonset.deploy", base, check=True))
    assert checked["changed"] >= 1
    assert kubectl("get", "ds", "-o", "name", namespace=namespace).stdout == ""  # check mode created nothing

    first = run_playbook("kubeops.daemonset.deploy", base)
    assert ok(first)["changed"] >= 1
    assert "successfully rolled out" in first.stdout + first.stderr
    assert "definition to apply: RollingUpdate (maxUnavailable=1, maxSurge=0, minReadySeconds=1)" in first.stdout
    ds = get_ds(kubectl, namespace)
    assert image(ds) == V1_IMAGE
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert ds["spec"]["minReadySeconds"] == 1
    assert history(kubectl, namespace) == {1: "deploy v2.5.2"}
    assert ds["status"]["numberAvailable"] == ds["status"]["desiredNumberScheduled"] > 0

    assert ok(run_playbook("kubeops.daemonset.deploy", base))["changed"] == 0

    version = ds["metadata"]["resourceVersion"]
    changed = ok(run_playbook("kubeops.daemonset.deploy", {**base, "deploy_max_unavailable": 2}, check=True))
    assert changed["changed"] >= 1
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == version

    checked = run_playbook("kubeops.daemonset.deploy", {**base, "deploy_state": "absent"}, check=True)
    assert ok(checked)["changed"] == 1
    assert "deletionTimestamp" not in get_ds(kubectl, namespace)["metadata"]  # a dry run: still there

    gone = run_playbook("kubeops.daemonset.deploy", {**base, "deploy_state": "absent"})
    assert ok(gone)["changed"] == 1
    assert kubectl("get", "ds,pods", "-o", "name", namespace=namespace).stdout == ""
    assert ok(run_playbook("kubeops.daemonset.deploy", {**base, "deploy_state": "absent"}))["changed"] == 0


@pytest.mark.matrix
def test_deploy_from_role_variables(run_playbook, run_playbook_json, kubectl, namespace, eventually):
    extra = {
        "daemonset_namespace": namespace,
        "daemonset_name": "node-agent",
        "deploy_image": "registry.example/agent:1.0",
        "deploy_resources": {"requests": {"cpu": "10m"}},
        "deploy_labels": {"team": "sre"},
        "deploy_strategy_type": "OnDelete",
    }
    ok(run_playbook("kubeops.daemonset.deploy", extra))
    ds = json.loads(kubectl("get", "ds", "node-agent", "-o", "json", namespace=namespace).stdout)
    assert ds["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "node-agent"}
    assert ds["spec"]["template"]["metadata"]["labels"] == {"app.kubernetes.io/name": "node-agent", "team": "sre"}
    container = ds["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("node-agent", "registry.example/agent:1.0")
    assert container["resources"] == {"requests": {"cpu": "10m"}}
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}

    def available() -> bool:  # OnDelete: the first run reported at once, maybe before its new pods were available
        status = json.loads(kubectl("get", "ds", "node-agent", "-o", "json", namespace=namespace).stdout)["status"]
        return status.get("numberAvailable", 0) == status["desiredNumberScheduled"] > 0

    assert eventually(available, 60)
    again = run_playbook_json("kubeops.daemonset.deploy", extra)
    assert again["stats"]["localhost"]["changed"] == 0
    # what AWX gets, numbers and nulls as such (also on ansible-core < 2.19, where a value templated alone is text)
    published = again["global_custom_stats"]["kubeops_deploy"]["localhost"]
    assert (published["changed"], published["revision"], published["rollout_complete"]) == (False, 1, True)
    assert published["strategy"] == {"type": "OnDelete", "maxUnavailable": None, "maxSurge": None, "minReadySeconds": 0}


@pytest.mark.matrix
def test_update_images_idempotent_and_check_mode(run_playbook, run_playbook_json, kubectl, namespace, seed_daemonset,
                                                 apply_manifest, wait_rollout):  # fmt: skip
    apply_manifest(seed_daemonset(namespace, change_cause="seed v1"))
    wait_rollout(namespace)
    extra = {
        "daemonset_namespace": namespace,
        "update_images": {CONTAINER: V2_IMAGE},
        "update_change_cause": "set image v2.6.0",
    }
    version = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]
    assert ok(run_playbook("kubeops.daemonset.update", extra, check=True, diff=True))["changed"] >= 1
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == version

    run = run_playbook("kubeops.daemonset.update", extra)
    assert ok(run)["changed"] == 1
    assert "new pods have been updated" in run.stderr + run.stdout  # kubectl's progress lines while waiting
    assert "revision 1 -> 2" in run.stdout
    ds = get_ds(kubectl, namespace)
    assert image(ds) == V2_IMAGE
    assert len(ds["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]) == 2  # only the image changed
    assert history(kubectl, namespace) == {1: "seed v1", 2: "set image v2.6.0"}

    version = ds["metadata"]["resourceVersion"]
    again = run_playbook_json("kubeops.daemonset.update", extra)
    assert again["stats"]["localhost"]["changed"] == 0
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == version  # no write at all
    published = again["global_custom_stats"]["kubeops_update"]["localhost"]
    assert {key: published[key] for key in TYPED_UPDATE} == {
        "changed": False, "revision_before": 2, "revision_after": 2, "rolled_back": False, "blockers": None,
        "preflight": None, "rollback_revision": None, "failed_revision": None, "skipped_nodes": [],
    }  # fmt: skip


def test_update_from_manifest_then_resources(run_playbook, kubectl, namespace, seed_daemonset, apply_manifest,
                                             wait_rollout):  # fmt: skip
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    manifest = {
        "daemonset_namespace": namespace,
        "update_manifest_file": "{{ playbook_dir }}/files/fluentd-daemonset-update.yaml",
    }
    ok(run_playbook("kubeops.daemonset.update", {**manifest, "update_change_cause": "v2 manifest"}))
    spec = get_ds(kubectl, namespace)["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"memory": "200Mi"}
    assert {t["key"] for t in spec["tolerations"]} == {
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    }
    assert ok(run_playbook("kubeops.daemonset.update", manifest))["changed"] == 0

    resources = {"daemonset_namespace": namespace, "update_resources": {CONTAINER: {"requests": {"cpu": "50m"}}}}
    ok(run_playbook("kubeops.daemonset.update", resources))
    container = get_ds(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "50m"}}  # replaced as a whole
    assert container["image"] == V1_IMAGE
    assert ok(run_playbook("kubeops.daemonset.update", resources))["changed"] == 0


def test_update_rollback_on_failure(run_playbook, kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout):
    apply_manifest(seed_daemonset(namespace, change_cause="seed v1"))
    wait_rollout(namespace)
    extra = {
        "daemonset_namespace": namespace,
        "update_images": {CONTAINER: "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"},
        "update_change_cause": "broken image",
        "update_progress_deadline": 10,
        "update_rollback_on_failure": True,
    }
    run = run_playbook("kubeops.daemonset.update", extra)
    assert run.returncode != 0
    assert recap(run.stdout)["failed"] == 1
    assert "Rolled back from revision 2 to the revision that was live before (1), now revision 3" in run.stdout
    assert "ImagePullBackOff" in run.stdout or "ErrImagePull" in run.stdout  # why it failed
    wait_rollout(namespace)
    ds = get_ds(kubectl, namespace)
    assert image(ds) == V1_IMAGE
    assert history(kubectl, namespace) == {2: "broken image", 3: "seed v1"}


def test_update_leaves_a_dead_node_behind_only_within_its_budget(
    run_playbook, kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout, test_node, eventually
):
    """A NotReady node holds the update: not rolled back (the new template is not at fault), the node named; with
    update_unhealthy_node_budget the same update is done everywhere else."""
    label = {"kubeops.test/roles": namespace}
    nodes = test_node(count=3, labels=label)
    manifest = seed_daemonset(namespace, tolerate_test_nodes=True, change_cause="seed v1")
    manifest["spec"]["template"]["spec"]["nodeSelector"] = label
    apply_manifest(manifest)
    wait_rollout(namespace)
    kubectl("label", "node", nodes[-1], "kubeops.test/not-ready=true")
    assert eventually(lambda: "node.kubernetes.io/not-ready" in kubectl("get", "node", nodes[-1], "-o", "json").stdout)
    extra = {"daemonset_namespace": namespace, "update_images": {CONTAINER: V2_IMAGE}, "update_timeout": 20,
             "update_rollback_on_failure": True}  # fmt: skip
    held = run_playbook("kubeops.daemonset.update", extra)
    assert held.returncode != 0 and "Not rolled back: only unhealthy nodes hold the rollout" in held.stdout
    assert nodes[-1] in held.stdout and image(get_ds(kubectl, namespace)) == V2_IMAGE

    done = run_playbook("kubeops.daemonset.update", {**extra, "update_unhealthy_node_budget": 1})
    assert ok(done)["changed"] == 0  # the template is live; the wait now leaves the dead node behind
    assert f"{nodes[-1]} (NotReady" in done.stdout + done.stderr


@pytest.mark.matrix
def test_rollback_playbook(run_playbook, run_playbook_json, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    extra = {"daemonset_namespace": namespace, "rollback_to_revision": 1, "rollback_show_revision": 1}
    version = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]
    assert ok(run_playbook("kubeops.daemonset.rollback", extra, check=True))["changed"] == 1
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == version

    run = run_playbook("kubeops.daemonset.rollback", extra)
    assert ok(run)["changed"] == 1
    assert "daemonset.apps/fluentd-elasticsearch with revision #1" in run.stdout
    assert "revision 1 is now revision 3 (revisions only roll forward); revision 2 was live before." in run.stdout
    assert image(get_ds(kubectl, namespace)) == V1_IMAGE
    assert history(kubectl, namespace) == {2: "seed version 2", 3: "seed version 1"}

    # The target now has number 3: rolling back to it again is kubectl's "skipped rollback", changed=0.
    again = run_playbook_json(
        "kubeops.daemonset.rollback", {**extra, "rollback_to_revision": 3, "rollback_show_revision": 0}
    )
    assert again["stats"]["localhost"]["changed"] == 0
    assert "skipped rollback" in json.dumps(again["plays"])
    published = again["global_custom_stats"]["kubeops_rollback"]["localhost"]
    assert {key: published[key] for key in TYPED_ROLLBACK} == {
        "changed": False, "current_revision_before": 3, "rolled_back_from": 3, "to_revision": 3, "new_revision": 3,
        "rollout_complete": None,
    }  # fmt: skip
    assert [revision["revision"] for revision in published["revisions"]] == [2, 3]


def test_lifecycle_playbook(run_playbook, kubectl, namespace):
    run = run_playbook("kubeops.daemonset.lifecycle", {"daemonset_namespace": namespace, "lifecycle_cleanup": True})
    ok(run)
    output = run.stdout + run.stderr
    assert f"live DaemonSet {namespace}/fluentd-elasticsearch: not deployed yet" in output
    assert "definition to apply: RollingUpdate (maxUnavailable=1, maxSurge=0, minReadySeconds=0)" in output
    assert "out of 4 new pods have been updated" in output  # the v2 manifest also tolerates the control plane
    assert "daemonset.apps/fluentd-elasticsearch with revision #1" in output
    assert "revision 2 is now revision 4 (revisions only roll forward); revision 3 was live before." in output
    # the history after the rollback, with the change causes set by each step
    table = re.search(r'"REVISION  CHANGE-CAUSE",\s*"1\s+apply fluentd-daemonset.yaml",\s*"3\s+set image (.*)",'
                      r'\s*"4\s+apply fluentd-daemonset-update.yaml"', output)  # fmt: skip
    assert table, output[-5000:]
    assert table[1] == f"{CONTAINER}={V2_IMAGE}"
    assert kubectl("get", "ds,pods", "-o", "name", namespace=namespace).stdout == ""  # lifecycle_cleanup=true


@pytest.mark.parametrize(
    ("playbook", "extra", "error"),
    [
        ("deploy", {"deploy_strategy_type": "Rolling"}, "deploy_strategy_type"),
        ("deploy", {"deploy_timeout": "soon"}, "deploy_timeout"),
        ("update", {"update_images": ["not", "a", "dict"]}, "update_images"),
        ("rollback", {"rollback_to_revision": "latest"}, "rollback_to_revision"),
    ],
)
def test_wrong_variables_fail_before_touching_the_cluster(run_playbook, kubectl, namespace, playbook, extra, error):
    run = run_playbook(f"kubeops.daemonset.{playbook}", {"daemonset_namespace": namespace, **extra})
    assert run.returncode != 0
    assert "Validation of arguments failed" in run.stdout
    assert error in run.stdout
    counts = recap(run.stdout)
    assert counts["failed"] == 1
    assert counts["changed"] == 0
    assert kubectl("get", "ds", "-o", "name", namespace=namespace).stdout == ""


def test_a_relative_manifest_file_is_found_like_the_file_lookup_finds_it(run_playbook, kubectl, namespace):
    extra = {"daemonset_namespace": namespace, "deploy_manifest_file": "fluentd-daemonset.yaml"}  # playbooks/files/
    checked = run_playbook("kubeops.daemonset.deploy", extra, check=True)
    assert ok(checked)["changed"] == 1
    assert "daemonset.apps/fluentd-elasticsearch created (check mode)" in checked.stdout


def test_deploy_sources_are_exclusive(run_playbook, kubectl, namespace):
    run = run_playbook(
        "kubeops.daemonset.deploy",
        {"daemonset_namespace": namespace, "deploy_image": "x:1", "deploy_manifest_file": "/nonexistent.yaml"},
    )
    assert run.returncode != 0
    assert "give exactly one of deploy_manifest_file, deploy_definition or deploy_image" in run.stdout
    assert kubectl("get", "ds", "-o", "name", namespace=namespace).stdout == ""
