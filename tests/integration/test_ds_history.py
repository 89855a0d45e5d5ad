"""kubeops.daemonset.ds_history on the real cluster, differential against the real `kubectl rollout history`."""

from __future__ import annotations

import json

import pytest

NAME = "fluentd-elasticsearch"
V1_IMAGE = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"

HISTORY_RULES = [
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
]


def kubectl_table(kubectl, namespace: str, name: str = NAME) -> str:
    """`kubectl rollout history` without its first line (daemonset.apps/NAME)."""
    out = kubectl("rollout", "history", f"ds/{name}", namespace=namespace).stdout
    return out.split("\n", 1)[1].rstrip("\n") + "\n"


def resource_version(kubectl, namespace: str, name: str = NAME) -> str:
    return kubectl("get", "ds", name, "-o", "jsonpath={.metadata.resourceVersion}", namespace=namespace).stdout


def test_lists_revisions_like_kubectl(run_module, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    result = run_module("ds_history", {"name": NAME, "namespace": namespace})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["table"] == kubectl_table(kubectl, namespace)
    assert result["table"] == "REVISION  CHANGE-CAUSE\n1         seed version 1\n2         seed version 2\n"
    revisions = result["revisions"]
    assert [r["revision"] for r in revisions] == [1, 2]
    assert [r["current"] for r in revisions] == [False, True]
    assert result["current_revision"] == 2
    assert [r["pods"] for r in revisions] == [0, 4]  # version 2 also tolerates the control-plane node
    assert revisions[0]["images"] == [V1_IMAGE]

    listed = json.loads(kubectl("get", "controllerrevisions", "-o", "json", namespace=namespace).stdout)["items"]
    by_name = {item["metadata"]["name"]: item for item in listed}
    for entry in revisions:
        rev = by_name[entry["name"]]
        assert rev["revision"] == entry["revision"]
        assert rev["metadata"]["labels"]["controller-revision-hash"] == entry["hash"]
        assert rev["metadata"]["creationTimestamp"] == entry["created"]


@pytest.mark.parametrize("number", [1, 2])
def test_revision_template_is_kubectls(run_module, kubectl, namespace, two_revisions, number):
    two_revisions(namespace)
    result = run_module("ds_history", {"name": NAME, "namespace": namespace, "revision": number})
    assert not result.get("failed"), result
    shown = kubectl("rollout", "history", f"ds/{NAME}", f"--revision={number}", "-o", "json", namespace=namespace)
    assert result["template"] == json.loads(shown.stdout)["spec"]["template"]


def test_compare_two_revisions(run_module, namespace, two_revisions):
    two_revisions(namespace)
    result = run_module("ds_history", {"name": NAME, "namespace": namespace, "compare": [1, 2]})
    assert not result.get("failed"), result
    compare = result["compare"]
    assert (compare["from_revision"], compare["to_revision"]) == (1, 2)
    assert compare["diff"].startswith("--- revision 1\n+++ revision 2\n")
    assert "+    key: node-role.kubernetes.io/control-plane\n" in compare["diff"]
    assert "+        cpu: 100m\n" in compare["diff"]
    paths = {change["path"]: change for change in compare["changes"]}
    requests = "spec.containers[name=fluentd-elasticsearch].resources.requests.cpu"
    assert paths[requests] == {"path": requests, "before": None, "after": "100m"}
    same = run_module("ds_history", {"name": NAME, "namespace": namespace, "compare": [2, 2]})
    assert same["compare"]["diff"] == "" and same["compare"]["changes"] == []


def test_check_mode_reads_the_same_and_writes_nothing(run_module, kubectl, namespace, two_revisions):
    two_revisions(namespace)
    before = resource_version(kubectl, namespace)
    normal = run_module("ds_history", {"name": NAME, "namespace": namespace})
    checked = run_module("ds_history", {"name": NAME, "namespace": namespace, "compare": [1, 2]}, check=True)
    assert checked["changed"] is False
    assert checked["revisions"] == normal["revisions"]
    assert checked["compare"]["changes"]
    assert resource_version(kubectl, namespace) == before


def test_only_owned_revisions_of_an_overlapping_twin(run_module, kubectl, namespace, two_revisions):
    """A second DaemonSet with the same selector: its revisions match the selector but are not ours."""
    two_revisions(namespace)
    two_revisions(namespace, name="fluentd-twin")
    for name in (NAME, "fluentd-twin"):
        result = run_module("ds_history", {"name": name, "namespace": namespace})
        assert result["table"] == kubectl_table(kubectl, namespace, name)
        assert [r["revision"] for r in result["revisions"]] == [1, 2]
        assert all(r["name"].startswith(f"{name}-") for r in result["revisions"])
        assert [r["pods"] for r in result["revisions"]] == [0, 4]


def test_missing_daemonset_names_what_exists(run_module, namespace, two_revisions):
    two_revisions(namespace)
    result = run_module("ds_history", {"name": "nope", "namespace": namespace})
    assert result["failed"]
    assert result["msg"] == f"DaemonSet {namespace}/nope not found; DaemonSets there: {NAME}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"revision": 7}, "unable to find specified revision 7 in history; available revisions: 1, 2"),
        ({"compare": [1, 3]}, "unable to find specified revision 3 in history; available revisions: 1, 2"),
    ],
)
def test_missing_revision_lists_available(run_module, namespace, two_revisions, args, message):
    two_revisions(namespace)
    result = run_module("ds_history", {"name": NAME, "namespace": namespace, **args})
    assert result["failed"]
    assert result["msg"] == f"DaemonSet {namespace}/{NAME}: {message}"


def test_compare_needs_two_numbers(run_module, namespace):
    result = run_module("ds_history", {"name": NAME, "namespace": namespace, "compare": [1]})
    assert result["failed"]
    assert "compare needs exactly two revision numbers" in result["msg"]


def test_restricted_service_account(run_module, namespace, two_revisions, service_account_kubeconfig):
    """The documented RBAC is enough (pods optional: counts become null with a warning); without it, forbidden."""
    two_revisions(namespace)
    args = {"name": NAME, "namespace": namespace}
    enough = service_account_kubeconfig(HISTORY_RULES)
    result = run_module("ds_history", {**args, "kubeconfig": enough})
    assert not result.get("failed"), result
    assert [r["revision"] for r in result["revisions"]] == [1, 2]
    assert [r["pods"] for r in result["revisions"]] == [None, None]
    assert any("pod counts are unknown" in w for w in result["warnings"])

    with_pods = service_account_kubeconfig(
        [*HISTORY_RULES, {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    )
    assert [r["pods"] for r in run_module("ds_history", {**args, "kubeconfig": with_pods})["revisions"]] == [0, 4]

    no_list = service_account_kubeconfig(HISTORY_RULES[:1])
    result = run_module("ds_history", {**args, "kubeconfig": no_list})
    assert result["failed"]
    assert result["msg"].startswith(
        f'forbidden: cannot list apps/controllerrevisions in namespace "{namespace}": '
        "the credentials lack the 'list' verb on apps/controllerrevisions."
    )
    assert "get on apps/daemonsets; list on apps/controllerrevisions" in result["msg"]
