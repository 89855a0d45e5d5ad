"""Races on the real cluster: the update role and ds_undo while a rollout runs (the controller's status writes move
the resourceVersion many times a second), two plays updating one DaemonSet at once, and another writer changing
the template while a role or ds_undo waits for its own.

No change may be lost: each run either does what it was asked on top of what it found, or fails naming the
other writer's change - and never rolls that change back as if it were its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

NAME = "fluentd-elasticsearch"
CONTAINER = "fluentd-elasticsearch"
V1_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
V3_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.7.0"
OTHER_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist-other-writer"
SUPERSEDED = "the pod template was changed by another writer during the wait"

pytestmark = pytest.mark.slow


def get_ds(kubectl, namespace: str) -> dict[str, Any]:
    return json.loads(kubectl("get", "ds", NAME, "-o", "json", namespace=namespace).stdout)


def container(daemonset: dict[str, Any]) -> dict[str, Any]:
    return daemonset["spec"]["template"]["spec"]["containers"][0]


def set_image(kubectl, namespace: str, image: str) -> None:
    kubectl("set", "image", f"ds/{NAME}", f"{CONTAINER}={image}", namespace=namespace)


def history(kubectl, namespace: str) -> dict[int, str]:
    """revision -> change-cause, from kubectl rollout history."""
    out = kubectl("rollout", "history", f"ds/{NAME}", namespace=namespace).stdout
    return {int(m[0]): m[1].strip() for m in re.findall(r"^(\d+)\s+(.*)$", out, re.MULTILINE)}


def rolled_out(kubectl, namespace: str) -> bool:
    status = kubectl("rollout", "status", f"ds/{NAME}", "--watch=false", namespace=namespace, check=False)
    return "successfully rolled out" in status.stdout


@pytest.fixture
def rolling(namespace, seed_daemonset, apply_manifest, wait_rollout, kubectl):
    """The seed DaemonSet (minReadySeconds 3: a rollout takes some seconds per node) rolled out with
    change-cause "v1", then `kubectl set image` to v2.6.0 started and left running."""
    apply_manifest(seed_daemonset(namespace, min_ready_seconds=3, change_cause="v1"))
    wait_rollout(namespace)
    set_image(kubectl, namespace, V2_IMAGE)
    return namespace


def test_update_role_during_a_running_rollout(run_playbook, kubectl, rolling):
    namespace = rolling
    extra = {"daemonset_namespace": namespace, "update_images": {CONTAINER: V3_IMAGE},
             "update_change_cause": "v3 during a rollout"}  # fmt: skip
    run = run_playbook("kubeops.daemonset.update", extra)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "409" not in run.stdout and "Conflict" not in run.stdout
    assert container(get_ds(kubectl, namespace))["image"] == V3_IMAGE
    assert rolled_out(kubectl, namespace)
    assert history(kubectl, namespace)[3] == "v3 during a rollout"


def test_undo_during_a_running_rollout(run_module, kubectl, rolling):
    namespace = rolling
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "to_revision": 1, "wait": True})
    assert not result.get("failed"), result.get("msg")
    assert (result["changed"], result["rolled_back_from"], result["new_revision"]) == (True, 2, 3)
    assert result["rollout"]["rollout_complete"] is True
    assert container(get_ds(kubectl, namespace))["image"] == V1_IMAGE
    assert rolled_out(kubectl, namespace)


CPU = {"requests": {"cpu": "50m"}}


@pytest.mark.parametrize(
    "second",
    [{"update_resources": {CONTAINER: CPU}}, {"update_images": {CONTAINER: V3_IMAGE}}],
    ids=["different-fields", "same-field"],
)
def test_two_plays_updating_at_once_lose_no_change(start_playbook, kubectl, namespace, seed_daemonset,
                                                   apply_manifest, wait_rollout, second):  # fmt: skip
    apply_manifest(seed_daemonset(namespace, min_ready_seconds=2, change_cause="v1"))
    wait_rollout(namespace)
    first = {"update_images": {CONTAINER: V2_IMAGE}}
    plays = [start_playbook("kubeops.daemonset.update", {"daemonset_namespace": namespace, **extra})
             for extra in (first, second)]  # fmt: skip
    for play in plays:
        play.finish()

    live = container(get_ds(kubectl, namespace))
    if "update_resources" in second:  # different fields: each write went on top of the other, both are kept
        assert (live["image"], live["resources"]) == (V2_IMAGE, CPU)
    else:  # the same field: whichever wrote last is live, and its play saw its own rollout through
        assert live["image"] in (V2_IMAGE, V3_IMAGE)
        last = plays[0] if live["image"] == V2_IMAGE else plays[1]
        assert last.proc.returncode == 0, last.stdout[-4000:]
    for play in plays:  # each play did its change on top of what it found, or says another writer came after
        assert play.proc.returncode == 0 or SUPERSEDED in play.stdout, play.stdout[-4000:]
    assert any(play.proc.returncode == 0 for play in plays)
    wait_rollout(namespace)


def test_another_writer_during_the_update_roles_wait_is_not_rolled_back(
    start_playbook, kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout
):
    apply_manifest(seed_daemonset(namespace, min_ready_seconds=3, change_cause="v1"))
    wait_rollout(namespace)
    extra = {"daemonset_namespace": namespace, "update_images": {CONTAINER: V3_IMAGE}, "update_change_cause": "v3",
             "update_rollback_on_failure": True, "update_progress_deadline": 60}  # fmt: skip
    play = start_playbook("kubeops.daemonset.update", extra)
    play.wait_for("new pods have been updated")  # the role waits for its rollout
    set_image(kubectl, namespace, OTHER_IMAGE)  # someone else's (broken) change
    play.finish()

    assert play.proc.returncode != 0
    assert "failed (superseded)" in play.stdout and SUPERSEDED in play.stdout, play.stdout[-4000:]
    assert OTHER_IMAGE in play.stdout  # the template rolling out now is named
    assert "Not rolled back: the template was changed by another writer during the wait." in play.stdout
    assert container(get_ds(kubectl, namespace))["image"] == OTHER_IMAGE  # their change stays
    assert history(kubectl, namespace) == {1: "v1", 2: "v3", 3: "v3"}  # kubectl copies the annotation; no undo


def test_undo_wait_is_superseded_by_another_writer(start_module, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    kubectl("patch", "ds", NAME, "--type=merge", "-p", json.dumps({"spec": {"minReadySeconds": 3}}),
            namespace=namespace)  # fmt: skip
    run = start_module("ds_undo", {"name": NAME, "namespace": namespace, "wait": True, "wait_timeout": 120})
    run.wait_for("new pods have been updated")
    set_image(kubectl, namespace, OTHER_IMAGE)
    result = run.result()

    assert result["failed"] and result["changed"]
    assert result["rollout"]["outcome"] == "superseded"
    assert SUPERSEDED in result["msg"] and OTHER_IMAGE in result["msg"]
    assert container(get_ds(kubectl, namespace))["image"] == OTHER_IMAGE


def test_undo_refuses_to_roll_back_another_writers_template(run_module, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    mine = int(get_ds(kubectl, namespace)["metadata"]["annotations"]["deprecated.daemonset.template.generation"])
    set_image(kubectl, namespace, OTHER_IMAGE)
    before = get_ds(kubectl, namespace)["metadata"]["generation"]  # the status moves on with their rollout
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "from_template_generation": mine})
    assert result["failed"] and not result["changed"]
    assert "not rolled back: the pod template was changed by another writer" in result["msg"]
    after = get_ds(kubectl, namespace)
    assert after["metadata"]["generation"] == before
    assert container(after)["image"] == OTHER_IMAGE
