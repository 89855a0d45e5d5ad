"""kubeops.daemonset.ds_undo on the real cluster, differential against the real `kubectl rollout undo`."""

from __future__ import annotations

import json

import pytest

NAME = "fluentd-elasticsearch"
TWIN = "fluentd-twin"
V1_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
V3_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.7.0"

UNDO_RULES = [
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "patch"]},
    {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
]


def get_ds(kubectl, namespace: str, name: str = NAME) -> dict:
    return json.loads(kubectl("get", "ds", name, "-o", "json", namespace=namespace).stdout)


def revisions(kubectl, namespace: str, name: str = NAME) -> dict[str, dict]:
    """{ControllerRevision name: object} of those the DaemonSet controls."""
    uid = get_ds(kubectl, namespace, name)["metadata"]["uid"]
    listed = json.loads(kubectl("get", "controllerrevisions", "-o", "json", namespace=namespace).stdout)["items"]
    return {
        r["metadata"]["name"]: r
        for r in listed
        if any(ref["uid"] == uid and ref.get("controller") for ref in r["metadata"]["ownerReferences"])
    }


def history_numbers(kubectl, namespace: str, name: str = NAME) -> list[int]:
    out = kubectl("rollout", "history", f"ds/{name}", namespace=namespace).stdout
    return [int(line.split()[0]) for line in out.splitlines()[2:] if line.strip()]


@pytest.fixture
def three_revisions(two_revisions, seed_daemonset, apply_manifest, wait_rollout):
    """Revisions 1 (v2.5.2), 2 (v2.5.2 + resources and tolerations), 3 (2 with image v2.7.0), 3 live."""

    def make(namespace: str, name: str = NAME) -> None:
        two_revisions(namespace, name)
        manifest = seed_daemonset(namespace, version=2, name=name, image=V3_IMAGE, change_cause="seed version 3")
        apply_manifest(manifest)
        wait_rollout(namespace, name)

    return make


def test_check_mode_then_undo_then_idempotent(run_module, kubectl, namespace, two_revisions, wait_rollout):
    two_revisions(namespace)
    args = {"name": NAME, "namespace": namespace}
    before = get_ds(kubectl, namespace)

    checked = run_module("ds_undo", args, check=True)
    assert checked["changed"] is True
    assert (checked["rolled_back_from"], checked["to_revision"], checked["predicted_revision"]) == (2, 1, 3)
    assert checked["new_revision"] is None
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert history_numbers(kubectl, namespace) == [1, 2]

    result = run_module("ds_undo", args)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["msg"] == f"daemonset.apps/{NAME} rolled back to revision 1"
    assert (result["rolled_back_from"], result["to_revision"], result["new_revision"]) == (2, 1, 3)
    assert history_numbers(kubectl, namespace) == [2, 3]  # revision 1 rolled forward to 3
    wait_rollout(namespace)  # status updates change the resourceVersion until the rollout is over
    after = get_ds(kubectl, namespace)
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == V1_IMAGE
    assert {"path": "spec.containers[name=fluentd-elasticsearch].resources.requests.cpu", "before": "100m",
            "after": None} in result["changes"]  # fmt: skip
    stored = kubectl("rollout", "history", f"ds/{NAME}", "--revision=3", "-o", "json", namespace=namespace).stdout
    assert after["spec"]["template"] == json.loads(stored)["spec"]["template"]  # live equals stored, exactly

    checked_again = run_module("ds_undo", {**args, "to_revision": 3}, check=True)
    assert (checked_again["changed"], checked_again["new_revision"]) == (False, 3)
    again = run_module("ds_undo", {**args, "to_revision": 3})
    assert again["changed"] is False
    assert again["msg"] == "skipped rollback (current template already matches revision 3)"
    assert (again["rolled_back_from"], again["to_revision"], again["new_revision"]) == (3, 3, 3)
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    skipped = kubectl("rollout", "undo", f"ds/{NAME}", "--to-revision=3", namespace=namespace).stdout
    assert again["msg"] in skipped  # kubectl: daemonset.apps/NAME skipped rollback (current template ...)


@pytest.mark.parametrize("to_revision", [0, 1, 2])
def test_same_result_as_kubectl_undo_on_a_twin(run_module, kubectl, namespace, three_revisions, to_revision):
    """Twin DaemonSets with identical histories: ds_undo on one, kubectl rollout undo on the other."""
    three_revisions(namespace)
    three_revisions(namespace, TWIN)
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "to_revision": to_revision})
    assert not result.get("failed"), result
    kubectl("rollout", "undo", f"ds/{TWIN}", f"--to-revision={to_revision}", namespace=namespace)

    ours, theirs = get_ds(kubectl, namespace), get_ds(kubectl, namespace, TWIN)
    assert ours["spec"]["template"] == theirs["spec"]["template"]
    assert (
        history_numbers(kubectl, namespace)
        == history_numbers(kubectl, namespace, TWIN)
        == [n for n in (1, 2, 3, 4) if n != (to_revision or 2)]
    )
    assert (result["rolled_back_from"], result["to_revision"]) == (3, to_revision or 2)
    # the number the module read back is the one the controller gave the target, here and on the twin
    ours_by_hash = {n.rsplit("-", 1)[1]: r["revision"] for n, r in revisions(kubectl, namespace).items()}
    theirs_by_hash = {n.rsplit("-", 1)[1]: r["revision"] for n, r in revisions(kubectl, namespace, TWIN).items()}
    assert ours_by_hash == theirs_by_hash
    assert result["new_revision"] == result["predicted_revision"] == 4 == max(ours_by_hash.values())


def test_diff_mode_shows_templates(run_module, namespace, two_revisions):
    two_revisions(namespace)
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "to_revision": 1}, check=True, diff=True)
    assert "cpu: 100m" in result["diff"]["before"]
    assert "cpu: 100m" not in result["diff"]["after"]
    assert result["diff"]["after_header"].endswith("(revision 1)")
    paths = [change["path"] for change in result["changes"]]
    assert "spec.containers[name=fluentd-elasticsearch].resources.requests.cpu" in paths


def test_change_cause_goes_on_the_daemonset_not_the_reused_revision(run_module, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    cause = "roll back: memory regression"
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "change_cause": cause})
    assert result["new_revision"] == 3
    assert get_ds(kubectl, namespace)["metadata"]["annotations"]["kubernetes.io/change-cause"] == cause
    # the controller reused revision 1's ControllerRevision and did not refresh its annotations (documented)
    history = run_module("ds_history", {"name": NAME, "namespace": namespace})
    assert [(r["revision"], r["change_cause"]) for r in history["revisions"]] == [
        (2, "seed version 2"),
        (3, "seed version 1"),
    ]


def test_wait_reuses_the_rollout_wait(run_module, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "wait": True, "wait_timeout": 120})
    assert not result.get("failed"), result
    assert result["rollout"]["rollout_complete"] is True
    assert result["rollout"]["message"] == f'daemon set "{NAME}" successfully rolled out'
    assert result["rollout"]["revision"]["number"] == result["new_revision"] == 3
    status = kubectl("rollout", "status", f"ds/{NAME}", "--watch=false", namespace=namespace).stdout
    assert "successfully rolled out" in status


def test_wait_reports_a_rollback_that_does_not_roll_out(run_module, namespace, seed_daemonset, apply_manifest,
                                                        wait_rollout):  # fmt: skip
    """Rolling back onto a broken revision: the undo happened (changed), the wait fails and says why."""
    apply_manifest(seed_daemonset(namespace, image="example.invalid/does-not-exist:1"))  # revision 1 never rolls out
    apply_manifest(seed_daemonset(namespace, version=2))
    wait_rollout(namespace)
    args = {"name": NAME, "namespace": namespace, "to_revision": 1, "wait": True, "wait_timeout": 15}
    result = run_module("ds_undo", args)
    assert result["failed"] and result["changed"]
    assert result["msg"].startswith(
        f"daemonset.apps/{NAME} rolled back to revision 1, but the rollout did not complete"
    )
    assert (result["to_revision"], result["new_revision"]) == (1, 3)
    assert result["rollout"]["outcome"] == "timeout"
    assert result["rollout"]["blockers"]


@pytest.mark.parametrize(
    ("to_revision", "kubectl_error"),
    [
        (-1, "unable to find specified revision -1 in history"),
        (7, "unable to find specified revision 7 in history"),
    ],
)
def test_bad_revision_changes_nothing(run_module, kubectl, namespace, two_revisions, to_revision, kubectl_error):
    two_revisions(namespace)
    before = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace, "to_revision": to_revision})
    assert result["failed"]
    assert result["msg"] == f"DaemonSet {namespace}/{NAME}: {kubectl_error}; available revisions: 1, 2"
    theirs = kubectl("rollout", "undo", f"ds/{NAME}", f"--to-revision={to_revision}", namespace=namespace, check=False)
    assert theirs.returncode == 1 and f"error: {kubectl_error}\n" in theirs.stderr
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == before


def test_only_one_revision(run_module, kubectl, namespace, seed_daemonset, apply_manifest, wait_rollout):
    apply_manifest(seed_daemonset(namespace))
    wait_rollout(namespace)
    before = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace})
    assert result["failed"]
    assert result["msg"] == f"DaemonSet {namespace}/{NAME}: no last revision to roll back to; available revisions: 1"
    theirs = kubectl("rollout", "undo", f"ds/{NAME}", namespace=namespace, check=False)
    assert "error: no last revision to roll back to\n" in theirs.stderr
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == before


def test_missing_daemonset(run_module, namespace):
    result = run_module("ds_undo", {"name": NAME, "namespace": namespace})
    assert result["failed"]
    assert result["msg"] == (
        f'DaemonSet {namespace}/{NAME} not found; there is no DaemonSet in namespace "{namespace}" (check namespace: '
        "does it exist?)"
    )


def test_stale_resource_version_is_a_conflict(kubectl, namespace, two_revisions):
    """The precondition ds_undo sends (revision data + metadata.resourceVersion): the real API server refuses
    the strategic-merge undo patch once the DaemonSet has moved on."""
    two_revisions(namespace)
    stale_version = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]
    (first,) = [r for r in revisions(kubectl, namespace).values() if r["revision"] == 1]
    kubectl("annotate", "ds", NAME, "concurrent=change", namespace=namespace)
    stale = {**first["data"], "metadata": {"resourceVersion": stale_version}}
    proc = kubectl("patch", "ds", NAME, "--type=strategic", "-p", json.dumps(stale), namespace=namespace, check=False)
    assert proc.returncode == 1 and "Conflict" in proc.stderr
    assert get_ds(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0].get("resources")


def test_restricted_service_account(run_module, kubectl, namespace, two_revisions, service_account_kubeconfig):
    two_revisions(namespace)
    args = {"name": NAME, "namespace": namespace, "to_revision": 1}
    before = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]

    read_only = service_account_kubeconfig([{**UNDO_RULES[0], "verbs": ["get"]}, UNDO_RULES[1]])
    for check in (True, False):  # the server-side dry run needs the patch verb too
        result = run_module("ds_undo", {**args, "kubeconfig": read_only}, check=check)
        assert result["failed"]
        assert result["msg"].startswith(
            f'forbidden: cannot patch apps/daemonsets in namespace "{namespace}": '
            "the credentials lack the 'patch' verb on apps/daemonsets."
        )
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == before

    enough = service_account_kubeconfig(UNDO_RULES)
    result = run_module("ds_undo", {**args, "kubeconfig": enough})
    assert not result.get("failed"), result
    assert (result["to_revision"], result["new_revision"]) == (1, 3)


def test_foreign_owner_warns_or_refuses(run_module, kubectl, namespace, two_revisions):
    """A DaemonSet an Argo CD Application tracks: its next sync reverts a rollback, so ds_undo says so (warn), stops
    before any write (refuse) or goes ahead quietly (proceed); ds_update follows the same policy."""
    two_revisions(namespace)
    kubectl("annotate", "ds", NAME, "argocd.argoproj.io/tracking-id=logging:apps/DaemonSet:x/y", namespace=namespace)
    before = get_ds(kubectl, namespace)["metadata"]["resourceVersion"]
    args = {"name": NAME, "namespace": namespace}

    refused = run_module("ds_undo", dict(args, on_foreign_owner="refuse"))
    assert refused["failed"] and "managed by Argo CD logging" in refused["msg"]
    assert "on_foreign_owner=proceed" in refused["msg"]
    update = {"images": {"fluentd-elasticsearch": V3_IMAGE}, "on_foreign_owner": "refuse"}
    assert run_module("ds_update", dict(args, **update))["failed"]
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] == before

    warned = run_module("ds_undo", args, check=True)
    assert warned["changed"] and [o["kind"] for o in warned["owners"]] == ["Argo CD", "kubectl apply"]
    assert any("Argo CD logging" in w and "its next sync" in w for w in warned["warnings"])

    done = run_module("ds_undo", dict(args, on_foreign_owner="proceed"))
    assert done["changed"] and not done.get("warnings")
    assert get_ds(kubectl, namespace)["metadata"]["resourceVersion"] != before
