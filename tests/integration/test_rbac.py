"""Least privilege: every role and module works under exactly the shipped RBAC of its use (docs/rbac/USE.yaml, bound
to a fresh ServiceAccount whose token is all the task has), and without one verb of it fails with the forbidden
error that names the verb.
"""

from __future__ import annotations

import json
import typing as t

import pytest

pytestmark = pytest.mark.slow

NAME = "fluentd-elasticsearch"
V2_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.6.0"
BROKEN_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:does-not-exist"


def succeeded(proc) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def image(kubectl, namespace: str, name: str = NAME) -> str:
    ds = json.loads(kubectl("get", "ds", name, "-o", "json", namespace=namespace).stdout)
    return ds["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.fixture
def seeded(namespace, two_revisions) -> str:
    """The test's namespace with the seed DaemonSet at revisions 1 and 2."""
    two_revisions(namespace)
    return namespace


def test_read_only(run_module, run_playbook, seeded, service_accounts):
    config = service_accounts.for_use("read-only")
    waited = run_module("ds_rollout_wait", {"name": NAME, "namespace": seeded, "timeout": 60, "kubeconfig": config})
    assert waited["rollout_complete"] and waited["revision"]["number"] == 2 and not waited.get("warnings"), waited
    history = run_module("ds_history", {"name": NAME, "namespace": seeded, "revision": 1, "kubeconfig": config})
    assert not history.get("failed") and history["current_revision"] == 2 and not history.get("warnings"), history
    extra = {"daemonset_namespace": seeded, "rollback_undo": False, "k8s_auth_kubeconfig": config}
    assert "seed version 1" in succeeded(run_playbook("kubeops.daemonset.rollback", extra))


def test_update_deploy_and_update_roles(run_playbook, kubectl, namespace, service_accounts):
    base = {"daemonset_namespace": namespace, "k8s_auth_kubeconfig": service_accounts.for_use("update")}
    assert "successfully rolled out" in succeeded(run_playbook("kubeops.daemonset.deploy", base))
    succeeded(run_playbook("kubeops.daemonset.update", {**base, "update_images": {NAME: V2_IMAGE}}))
    assert image(kubectl, namespace) == V2_IMAGE
    broken = {**base, "update_images": {NAME: BROKEN_IMAGE}, "update_progress_deadline": 8,
              "update_rollback_on_failure": True}  # fmt: skip
    failed = run_playbook("kubeops.daemonset.update", broken)
    assert failed.returncode != 0 and "Rolled back from revision 3" in failed.stdout, failed.stdout[-4000:]
    succeeded(run_playbook("kubeops.daemonset.deploy", {**base, "deploy_state": "absent"}))
    assert kubectl("get", "ds", "-o", "name", namespace=namespace).stdout == ""


def test_rollback(run_playbook, kubectl, seeded, service_accounts):
    extra = {"daemonset_namespace": seeded, "rollback_to_revision": 1,
             "k8s_auth_kubeconfig": service_accounts.for_use("rollback")}  # fmt: skip
    assert "revision 1 is now revision 3" in succeeded(run_playbook("kubeops.daemonset.rollback", extra))


def test_troubleshoot_with_remediation(run_playbook, kubectl, seeded, service_accounts, wait_rollout):
    kubectl("set", "image", f"ds/{NAME}", f"{NAME}={BROKEN_IMAGE}", namespace=seeded)
    extra = {"daemonset_namespace": seeded, "troubleshoot_remediate": "rollback",
             "k8s_auth_kubeconfig": service_accounts.for_use("troubleshoot")}  # fmt: skip
    output = succeeded(run_playbook("kubeops.daemonset.troubleshoot", extra))
    assert "broken" in output.lower() and "warnings" not in output.lower(), output[-4000:]
    wait_rollout(seeded)
    assert image(kubectl, seeded) != BROKEN_IMAGE


def test_batch_rollout(run_module, kubectl, seeded, service_accounts):
    args = {"name": NAME, "namespace": seeded, "images": {NAME: V2_IMAGE}, "batches": [1, "100%"],
            "min_available_seconds": 0, "kubeconfig": service_accounts.for_use("batch-rollout")}  # fmt: skip
    result = run_module("ds_batch_rollout", args)
    assert result["outcome"] == "complete", result.get("msg")
    assert image(kubectl, seeded) == V2_IMAGE


def test_update_role_with_prepull(run_playbook, kubectl, seeded, service_accounts):
    """The update role's pre-pull under the update and preflight uses together, as docs/rbac/preflight.yaml says."""
    extra = {"daemonset_namespace": seeded, "update_images": {NAME: V2_IMAGE}, "update_prepull": True,
             "k8s_auth_kubeconfig": service_accounts.for_use("update", "preflight")}  # fmt: skip
    succeeded(run_playbook("kubeops.daemonset.update", extra))
    assert image(kubectl, seeded) == V2_IMAGE
    assert kubectl("get", "ds,jobs", "-o", "name", namespace=seeded).stdout.split() == [f"daemonset.apps/{NAME}"]


# --- one verb less: the forbidden error names it -------------------------------------------------

# (use, the verb taken away, its resource, the task: a module with its options or a playbook with its variables);
# all but the last (a deploy that creates a DaemonSet, then waits) fail before they write anything.
WITHOUT: list[tuple[str, str, str, str, dict[str, t.Any]]] = [
    ("read-only", "list", "daemonsets", "ds_rollout_wait", {"timeout": 0}),
    ("read-only", "get", "daemonsets", "ds_history", {}),
    ("read-only", "list", "controllerrevisions", "ds_history", {}),
    ("update", "create", "daemonsets", "playbook:deploy", {"daemonset_name": "fresh"}),
    ("update", "update", "daemonsets", "playbook:deploy", {}),
    ("update", "delete", "daemonsets", "playbook:deploy", {"deploy_state": "absent"}),
    ("update", "patch", "daemonsets", "playbook:update", {"update_images": {NAME: V2_IMAGE}}),
    ("rollback", "patch", "daemonsets", "playbook:rollback", {"rollback_to_revision": 1}),
    ("rollback", "list", "controllerrevisions", "playbook:rollback", {}),
    ("troubleshoot", "list", "nodes", "playbook:troubleshoot", {}),
    ("troubleshoot", "get", "daemonsets", "ds_diagnose", {}),
    ("batch-rollout", "list", "nodes", "ds_batch_rollout", {"images": {NAME: V2_IMAGE}}),
    ("batch-rollout", "list", "pods", "ds_batch_rollout", {"images": {NAME: V2_IMAGE}}),
    ("batch-rollout", "delete", "pods", "ds_batch_rollout", {"images": {NAME: V2_IMAGE}}),
    ("preflight", "list", "nodes", "ds_preflight", {"images": {NAME: V2_IMAGE}}),
    ("preflight", "create", "daemonsets", "ds_preflight", {"images": {NAME: V2_IMAGE}, "prepull": True}),
    ("update", "watch", "daemonsets", "playbook:deploy", {"daemonset_name": "fresh"}),  # last: it writes
]
WRITES_FIRST = ("update", "watch", "daemonsets")


@pytest.fixture(scope="module")
def shared(new_namespace, new_service_accounts, two_revisions, tmp_path_factory, core_v1):
    """One namespace with the seed DaemonSet at revisions 1 and 2 for the rows below, and its ServiceAccounts."""
    namespace = new_namespace("rbac-without")
    two_revisions(namespace)
    accounts = new_service_accounts(namespace, tmp_path_factory.mktemp("rbac"))
    yield namespace, accounts
    accounts.cleanup()
    core_v1.delete_namespace(namespace)


@pytest.mark.parametrize(("use", "verb", "resource", "task", "args"), WITHOUT,
                         ids=[f"{row[0]}-without-{row[1]}-{row[2]}" for row in WITHOUT])  # fmt: skip
def test_a_missing_verb_is_named(use, verb, resource, task, args, shared, run_module, run_playbook, written_objects):
    namespace, accounts = shared
    config = accounts.for_use(use, without=(resource, verb))
    before = written_objects(namespace)
    if task.startswith("playbook:"):
        proc = run_playbook(f"kubeops.daemonset.{task.split(':')[1]}",
                            {"daemonset_namespace": namespace, "k8s_auth_kubeconfig": config, **args})  # fmt: skip
        failed, said = proc.returncode != 0, proc.stdout
    else:
        result = run_module(task, {"name": NAME, "namespace": namespace, "kubeconfig": config, **args})
        failed, said = bool(result.get("failed")), str(result.get("msg"))
    group = "apps/" if resource in ("daemonsets", "controllerrevisions") else ""
    assert failed, said[-3000:]
    assert f"forbidden: cannot {verb} {group}{resource}" in said, said[-3000:]
    assert f"the credentials lack the '{verb}' verb on {group}{resource}" in said, said[-3000:]
    if (use, verb, resource) != WRITES_FIRST:
        assert written_objects(namespace) == before
