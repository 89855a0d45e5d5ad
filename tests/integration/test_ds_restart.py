"""ds_restart on the real cluster, next to `kubectl rollout restart` of an identical DaemonSet."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CONFIG_HASH = "daemonset.kubeops.io/config-hash"


def daemonset(kubectl, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl("get", "ds", name, "-o", "json", namespace=namespace).stdout)


def revisions(kubectl, namespace: str, name: str) -> list[int]:
    out = kubectl("rollout", "history", f"ds/{name}", namespace=namespace).stdout
    return [int(line.split()[0]) for line in out.splitlines()[2:] if line.strip()]


def template_without_restart(ds: dict[str, Any]) -> dict[str, Any]:
    template = json.loads(json.dumps(ds["spec"]["template"]))
    template["metadata"].get("annotations", {}).pop(RESTARTED_AT, None)
    if not template["metadata"].get("annotations", True):
        del template["metadata"]["annotations"]
    return template


@pytest.mark.matrix
def test_restart_does_what_kubectl_rollout_restart_does(run_module, kubectl, namespace, seed_daemonset, apply_manifest,
                                                        wait_rollout):  # fmt: skip
    for name in ("by-kubectl", "by-module"):
        apply_manifest(seed_daemonset(namespace, name=name))
        wait_rollout(namespace, name)
    before = {name: daemonset(kubectl, namespace, name) for name in ("by-kubectl", "by-module")}

    checked = run_module("ds_restart", {"name": "by-module", "namespace": namespace}, check=True, diff=True)
    assert checked["changed"] and RESTARTED_AT in checked["diff"]["after"]
    assert (
        daemonset(kubectl, namespace, "by-module")["metadata"]["resourceVersion"]
        == (before["by-module"]["metadata"]["resourceVersion"])
    )

    kubectl("rollout", "restart", "ds/by-kubectl", namespace=namespace)
    result = run_module("ds_restart", {"name": "by-module", "namespace": namespace, "wait": True})
    assert result["changed"] and not result.get("failed"), result.get("msg")
    assert result["msg"] == "daemonset.apps/by-module restarted"
    assert result["rollout"]["rollout_complete"]
    wait_rollout(namespace, "by-kubectl")
    for name in ("by-kubectl", "by-module"):
        after = daemonset(kubectl, namespace, name)
        stamp = after["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        assert datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # RFC 3339, as kubectl writes it
        assert template_without_restart(after) == template_without_restart(before[name])  # nothing else changed
        assert after["metadata"]["generation"] == before[name]["metadata"]["generation"] + 1
        assert revisions(kubectl, namespace, name) == [1, 2]  # one new revision each
    assert [c["path"] for c in result["changes"]] == [f"metadata.annotations.{RESTARTED_AT}"]


def test_restart_when_the_configuration_changed_is_idempotent(
    run_module, kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout
):
    kubectl("create", "configmap", "fluentd-config", "--from-literal=level=info", namespace=namespace)
    kubectl("create", "secret", "generic", "fluentd-credentials", "--from-literal=token=s3cret", namespace=namespace)
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    args = {"name": "fluentd-elasticsearch", "namespace": namespace,
            "when_changed": ["configmap/fluentd-config", "secret/fluentd-credentials"], "wait": True}  # fmt: skip

    first = run_module("ds_restart", args)
    assert first["changed"] and first["config_hash"]
    assert "s3cret" not in json.dumps(first)  # the hash shows no value
    live = daemonset(kubectl, namespace, "fluentd-elasticsearch")
    assert live["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH] == first["config_hash"]

    again = run_module("ds_restart", args)
    assert again["changed"] is False and again["config_hash"] == first["config_hash"]
    assert (
        daemonset(kubectl, namespace, "fluentd-elasticsearch")["metadata"]["resourceVersion"]
        == (live["metadata"]["resourceVersion"])
    )
    assert "not restarted: its configuration is unchanged" in again["msg"]

    kubectl("patch", "configmap", "fluentd-config", "-p", '{"data": {"level": "debug"}}', namespace=namespace)
    changed = run_module("ds_restart", args)
    assert changed["changed"] and changed["config_hash"] != first["config_hash"]
    assert revisions(kubectl, namespace, "fluentd-elasticsearch") == [1, 2, 3]


def test_a_missing_configmap_changes_nothing(run_module, kubectl, namespace, seed_daemonset, apply_manifest,
                                             wait_rollout):  # fmt: skip
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    version = daemonset(kubectl, namespace, "fluentd-elasticsearch")["metadata"]["resourceVersion"]
    result = run_module("ds_restart", {"name": "fluentd-elasticsearch", "namespace": namespace,
                                       "when_changed": ["configmap/nope"]})  # fmt: skip
    assert result["failed"] and f"configmap/nope not found in namespace {namespace}" in result["msg"]
    bad = run_module("ds_restart", {"name": "fluentd-elasticsearch", "namespace": namespace,
                                    "when_changed": ["deployment/x"]})  # fmt: skip
    assert bad["failed"] and "is not configmap/NAME or secret/NAME" in bad["msg"]
    assert daemonset(kubectl, namespace, "fluentd-elasticsearch")["metadata"]["resourceVersion"] == version


def test_restart_playbook_restarts_once_per_configuration(run_playbook, kubectl, namespace, seed_daemonset,
                                                          apply_manifest, wait_rollout):  # fmt: skip
    kubectl("create", "configmap", "fluentd-config", "--from-literal=level=info", namespace=namespace)
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    extra = {"daemonset_namespace": namespace, "update_restart_when_changed": ["configmap/fluentd-config"]}
    first = run_playbook("kubeops.daemonset.restart", extra)
    assert first.returncode == 0, first.stdout[-3000:]
    assert "daemonset.apps/fluentd-elasticsearch restarted: revision 1 -> 2" in first.stdout
    again = run_playbook("kubeops.daemonset.restart", extra)
    assert again.returncode == 0 and "changed=0" in again.stdout
    assert revisions(kubectl, namespace, "fluentd-elasticsearch") == [1, 2]
