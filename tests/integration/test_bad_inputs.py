"""The bad-input matrix: every module, role and playbook refuses each bad input before it writes anything.

One row per case. Each row runs one task or playbook against a DaemonSet with two revisions (shared by the module's
rows: nothing may change it) and asserts three things: it fails; its message holds every fragment of the row
(the input it names and what to do); and the namespace's DaemonSets, ControllerRevisions and Deployments keep
their resourceVersions (nothing written). docs/bad-inputs.md is this table (`python
tests/integration/test_bad_inputs.py` writes it; a test keeps it in sync).

Placeholders in the rows: $ns (the namespace), $files (bad manifests and kubeconfigs), $server, $ca (the cluster's
CA certificate), $untrusted_ca (a CA bundle that did not sign the server's certificate), $read_only (a kubeconfig
of docs/rbac/read-only.yaml), $no_nodes (the same less its list on nodes), $sa_token (the read-only
ServiceAccount's token).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import string
import typing as t
from pathlib import Path

import certifi
import pytest
import yaml

NAME = "fluentd-elasticsearch"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"
DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: fluentd-elasticsearch}\nspec:\n" + (
    "  selector: {matchLabels: {name: x}}\n  template:\n    metadata: {labels: {name: x}}\n"
    "    spec: {containers: [{name: x, image: 'nginx:1'}]}\n"
)


def daemonset_text(name: str = "fresh", selector: str = "{matchLabels: {name: a}}", labels: str = "{name: a}",
                   api_version: str = "apps/v1", namespace: str = "") -> str:  # fmt: skip
    """A small DaemonSet manifest as YAML text, with the parts a row breaks."""
    where = f", namespace: {namespace}" if namespace else ""
    text = f"apiVersion: {api_version}\nkind: DaemonSet\nmetadata: {{name: {name}{where}}}\nspec:\n"
    text += f"  selector: {selector}\n" if selector else ""
    return (
        text
        + f"  template:\n    metadata: {{labels: {labels}}}\n    spec: {{containers: [{{name: a, image: 'x:1'}}]}}\n"
    )


# The files of the rows, in $files.
FILES = {
    "deployment.yaml": DEPLOYMENT,
    "invalid.yaml": "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a\n",
    "two.yaml": daemonset_text("fresh-a") + "---\n" + daemonset_text("fresh-b"),
    "no-selector.yaml": daemonset_text(selector=""),
    "mismatch.yaml": daemonset_text(labels="{name: b}"),
    "garbage.kubeconfig": "this is : not : a kubeconfig\n%$#@!\n",
    "binary.kubeconfig": "\x00\x01 binary",
    "list.kubeconfig": "- a\n- list\n",
}
DEPLOYMENT_DICT = yaml.safe_load(DEPLOYMENT)
BAD_TOKEN = {"host": "$server", "ca_cert": "$ca", "api_key": "not-a-valid-token"}
UNREACHABLE = {"host": "https://127.0.0.1:1", "api_key": "x"}
UNTRUSTED = {"host": "$server", "ca_cert": "$untrusted_ca", "api_key": "x"}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    task: str  # a module (ds_undo) or a playbook (playbook:update)
    args: dict[str, t.Any]  # module options, or the playbook's extra variables
    says: tuple[str, ...]  # fragments of the failure message


def module(case_id: str, task: str, says: tuple[str, ...] | str, /, **args: t.Any) -> Case:
    """A row for module TASK on the shared DaemonSet (ARGS may override name and namespace; None leaves one out)."""
    return Case(case_id, task, {"name": NAME, "namespace": "$ns", **args}, (says,) if isinstance(says, str) else says)


def playbook(case_id: str, task: str, says: tuple[str, ...] | str, /, **extra: t.Any) -> Case:
    """A row for playbook kubeops.daemonset.TASK on the shared DaemonSet's namespace."""
    return Case(case_id, f"playbook:{task}", {"daemonset_namespace": "$ns", **extra},
                (says,) if isinstance(says, str) else says)  # fmt: skip


NOT_A_NAME = "name 'fluentd-elasticsearch/status' is not a DaemonSet name: lowercase letters"
THERE = "DaemonSets there: fluentd-elasticsearch"
NO_NAMESPACE = ('there is no DaemonSet in namespace "no-such-namespace"', "check namespace")
NO_REVISION = ("revision 99", "available revisions: 1, 2")
UNAUTHORIZED = ("unauthorized: the API server at", "rejected the credentials", "check api_key")

CASES = [
    # --- ds_rollout_wait
    module("wait-timeout-type", "ds_rollout_wait", ("'timeout'", "convert to int"), timeout="soon"),
    module("wait-timeout-negative", "ds_rollout_wait", "timeout must be at least 0 (got -1)", timeout=-1),
    module("wait-progress-deadline-zero", "ds_rollout_wait", "progress_deadline must be at least 1",
           progress_deadline=0),
    module("wait-on-delete-choice", "ds_rollout_wait", ("on_delete", "report, wait"), on_delete="sometimes"),
    module("wait-unknown-option", "ds_rollout_wait", ("Unsupported parameters", "timeot"), timeot=3),
    module("wait-node-budget-text", "ds_rollout_wait", ("unhealthy_node_budget must be a number or a percentage",
           "(got 'a few')"), unhealthy_node_budget="a few"),
    module("wait-node-budget-over-100", "ds_rollout_wait", "unhealthy_node_budget must be a number or a percentage",
           unhealthy_node_budget="150%"),
    # --- ds_restart
    module("restart-when-changed-kind", "ds_restart", "deployment/x", when_changed=["deployment/x"]),
    module("restart-wait-timeout-negative", "ds_restart", "wait_timeout must be at least 0 (got -1)", wait=True,
           wait_timeout=-1),
    module("restart-owner-policy-choice", "ds_restart", ("on_foreign_owner", "warn, refuse, proceed"),
           on_foreign_owner="sometimes"),
    module("restart-node-budget-negative", "ds_restart", "unhealthy_node_budget must be a number or a percentage",
           wait=True, unhealthy_node_budget=-1),
    module("wait-missing-daemonset", "ds_rollout_wait", ("DaemonSet $ns/nope not found", THERE), name="nope"),
    module("wait-missing-namespace", "ds_rollout_wait", NO_NAMESPACE, namespace="no-such-namespace"),
    module("wait-subresource-name", "ds_rollout_wait", NOT_A_NAME, name="fluentd-elasticsearch/status"),
    module("wait-unreachable-server", "ds_rollout_wait",
           ("cannot reach the Kubernetes API at https://127.0.0.1:1", "check host"), timeout=3, **UNREACHABLE),
    module("wait-untrusted-certificate", "ds_rollout_wait", ("certificate is not trusted", "check ca_cert"),
           **UNTRUSTED),
    # --- ds_history
    module("history-missing-revision", "ds_history", NO_REVISION, revision=99),
    module("history-revision-type", "ds_history", ("'revision'", "convert to int"), revision="two"),
    module("history-compare-one", "ds_history", "compare needs exactly two revision numbers", compare=[1]),
    module("history-compare-missing", "ds_history", NO_REVISION, compare=[1, 99]),
    module("history-namespace-name", "ds_history", "namespace 'Bad_NS' is not a namespace name", namespace="Bad_NS"),
    module("history-kubeconfig-missing", "ds_history", ("cannot read the kubeconfig $files/nope", "No such file"),
           kubeconfig="$files/nope"),
    module("history-kubeconfig-garbage", "ds_history", ("the kubeconfig $files/garbage.kubeconfig", "not valid YAML"),
           kubeconfig="$files/garbage.kubeconfig"),
    module("history-kubeconfig-binary", "ds_history", ("the kubeconfig $files/binary.kubeconfig", "not valid YAML"),
           kubeconfig="$files/binary.kubeconfig"),
    module("history-kubeconfig-not-a-config", "ds_history", ("$files/list.kubeconfig", "holds no kubeconfig"),
           kubeconfig="$files/list.kubeconfig"),
    module("history-wrong-context", "ds_history", ("no context named 'nope'", "it has: "), context="nope"),
    module("history-ca-cert-missing", "ds_history", "cannot load the CA certificate $files/nope.pem",
           ca_cert="$files/nope.pem"),
    module("history-ca-cert-garbage", "ds_history", "cannot load the CA certificate $files/garbage.kubeconfig",
           ca_cert="$files/garbage.kubeconfig"),
    module("history-host-not-a-url", "ds_history", "'not a url' is not an http(s) URL", host="not a url", api_key="x"),
    module("history-validate-certs-type", "ds_history", ("validate_certs", "not a valid boolean"),
           validate_certs="maybe"),
    module("history-invalid-token", "ds_history", UNAUTHORIZED, **BAD_TOKEN),
    # --- ds_undo
    module("undo-missing-revision", "ds_undo", NO_REVISION, to_revision=99),
    module("undo-revision-negative", "ds_undo", ("unable to find specified revision -1", "available revisions: 1, 2"),
           to_revision=-1),
    module("undo-wait-timeout-negative", "ds_undo", "wait_timeout must be at least 0 (got -1)", wait=True,
           wait_timeout=-1),
    module("undo-progress-deadline-zero", "ds_undo", "wait_progress_deadline must be at least 1", wait=True,
           wait_progress_deadline=0),
    module("undo-template-generation-zero", "ds_undo", "from_template_generation must be at least 1",
           from_template_generation=0),
    module("undo-template-changed-since", "ds_undo", ("changed by another writer", "expected 1"),
           from_template_generation=1),
    module("undo-wait-type", "ds_undo", ("'wait'", "not a valid boolean"), wait="maybe"),
    module("undo-subresource-name", "ds_undo", NOT_A_NAME, name="fluentd-elasticsearch/status"),
    module("undo-missing-daemonset", "ds_undo", ("DaemonSet $ns/nope not found", THERE), name="nope"),
    module("undo-missing-namespace", "ds_undo", NO_NAMESPACE, namespace="no-such-namespace"),
    module("undo-forbidden-patch", "ds_undo",
           ("forbidden: cannot patch apps/daemonsets", "lack the 'patch' verb", "ds_undo needs: get, patch"),
           kubeconfig="$read_only"),
    module("undo-invalid-token", "ds_undo", UNAUTHORIZED, **BAD_TOKEN),
    # --- ds_diagnose
    module("diagnose-clock-skew-negative", "ds_diagnose", "clock_skew_tolerance must be at least 0 (got -1)",
           clock_skew_tolerance=-1),
    module("diagnose-clock-skew-type", "ds_diagnose", ("clock_skew_tolerance", "float"), clock_skew_tolerance="abc"),
    module("diagnose-remediate-choice", "ds_diagnose", ("remediate", "evict_blockers"), remediate="fix"),
    module("diagnose-fixed-template-missing", "ds_diagnose", ("remediate is fixed_template", "images, template"),
           remediate="fixed_template"),
    module("diagnose-images-and-template", "ds_diagnose", ("mutually exclusive", "images|template"),
           remediate="fixed_template", images={NAME: "x:1"}, template={"spec": {}}),
    module("diagnose-fixed-template-deployment", "ds_diagnose", "template is a Deployment, not a DaemonSet",
           remediate="fixed_template", template=DEPLOYMENT_DICT),
    module("diagnose-fixed-unknown-container", "ds_diagnose", ("no container named nosuch", f"containers: {NAME}"),
           remediate="fixed_template", images={"nosuch": "x:1"}),
    module("diagnose-missing-daemonset", "ds_diagnose", ("DaemonSet $ns/nope not found", THERE), name="nope"),
    module("diagnose-forbidden-nodes", "ds_diagnose", ("forbidden: cannot list nodes", "ds_diagnose needs"),
           kubeconfig="$no_nodes"),
    # --- ds_batch_rollout
    module("batch-decreasing-percentages", "ds_batch_rollout", ("batch 10% comes after batch 50%", "at least"),
           images={NAME: "x:1"}, batches=["50%", "10%"]),
    module("batch-decreasing-counts", "ds_batch_rollout", "batch 1 comes after batch 3", images={NAME: "x:1"},
           batches=[3, 1]),
    module("batch-empty", "ds_batch_rollout", "batches is empty", images={NAME: "x:1"}, batches=[]),
    module("batch-count-zero", "ds_batch_rollout", "batch 1 (0): a node count must be at least 1",
           images={NAME: "x:1"}, batches=[0]),
    module("batch-percentage-range", "ds_batch_rollout", "a percentage must be a whole number from 1% to 100%",
           images={NAME: "x:1"}, batches=["150%"]),
    module("batch-empty-selector", "ds_batch_rollout", "an empty selector would match every node",
           images={NAME: "x:1"}, batches=[{"selector": {}}]),
    module("batch-gate-url-not-a-url", "ds_batch_rollout", "gate_url must be an http:// or https:// URL",
           images={NAME: "x:1"}, gate_url="not a url"),
    module("batch-gate-url-ftp", "ds_batch_rollout", "gate_url must be an http:// or https:// URL (got 'ftp:",
           images={NAME: "x:1"}, gate_url="ftp://example.com/health"),
    module("batch-timeout-negative", "ds_batch_rollout", "batch_timeout must be at least 0", images={NAME: "x:1"},
           batch_timeout=-1),
    module("batch-node-budget-text", "ds_batch_rollout", "unhealthy_node_budget must be a number or a percentage",
           images={NAME: "x:1"}, unhealthy_node_budget="all"),
    module("batch-max-batches-zero", "ds_batch_rollout", "max_batches must be at least 1", images={NAME: "x:1"},
           max_batches=0),
    module("batch-template-and-images", "ds_batch_rollout", ("mutually exclusive", "template|images"),
           images={NAME: "x:1"}, template={"spec": {}}),
    module("batch-unknown-container", "ds_batch_rollout", ("no container named nosuch", f"containers: {NAME}"),
           images={"nosuch": "x:1"}),
    module("batch-deployment-template", "ds_batch_rollout", "template is a Deployment, not a DaemonSet",
           template=DEPLOYMENT_DICT),
    module("batch-subresource-name", "ds_batch_rollout", NOT_A_NAME, name="fluentd-elasticsearch/status",
           images={NAME: "x:1"}),
    module("batch-forbidden-patch", "ds_batch_rollout", ("forbidden: cannot patch apps/daemonsets",
                                                         "ds_batch_rollout needs"), images={NAME: "x:1"},
           kubeconfig="$read_only"),
    # --- ds_update
    module("update-unknown-container", "ds_update", ("no container named nosuch", f"containers: {NAME}"),
           images={"nosuch": "x:1"}),
    module("update-empty-image", "ds_update", f"images: container {NAME} needs an image reference", images={NAME: ""}),
    module("update-image-with-space", "ds_update", "needs an image reference (got 'x: 1')", images={NAME: "x: 1"}),
    module("update-resources-not-a-mapping", "ds_update", "needs a resources mapping (got '100m')",
           resources={NAME: "100m"}),
    module("update-deployment-template", "ds_update", "template is a Deployment, not a DaemonSet",
           template=DEPLOYMENT_DICT),
    module("update-invalid-yaml-text", "ds_update", "template is not valid YAML", template="a: [b"),
    module("update-two-documents-text", "ds_update", "template holds 2 YAML documents; give one",
           template=FILES["two.yaml"]),
    module("update-template-without-containers", "ds_update", "template: a pod template needs spec.containers",
           template={"metadata": {}, "spec": {}}),
    module("update-selector-mismatch", "ds_update", ("422", "`selector` does not match template `labels`"),
           template={"metadata": {"labels": {"x": "y"}}, "spec": {"containers": [{"name": "a", "image": "b"}]}}),
    module("update-wait-timeout-negative", "ds_update", "wait_timeout must be at least 0", images={NAME: "x:1"},
           wait=True, wait_timeout=-5),
    module("update-nothing-asked", "ds_update", ("one of the following is required", "template, src, images")),
    module("update-template-and-images", "ds_update", ("mutually exclusive", "template|src|images"),
           images={NAME: "x:1"}, template={"spec": {}}),
    module("update-src-missing", "ds_update", "cannot read the manifest file $files/missing.yaml (src)",
           src="$files/missing.yaml"),
    module("update-forbidden-patch", "ds_update", ("forbidden: cannot patch apps/daemonsets", "ds_update needs"),
           images={NAME: "x:1"}, kubeconfig="$read_only"),
    # --- ds_apply
    module("apply-deployment", "ds_apply", ("$files/deployment.yaml (src) holds 0 DaemonSets (Deployment)",
                                            "it needs exactly one"), src="$files/deployment.yaml"),
    module("apply-deployment-dict", "ds_apply", "the definition holds 0 DaemonSets (Deployment)",
           definition=DEPLOYMENT_DICT),
    module("apply-no-selector", "ds_apply", "has no spec.selector (give matchLabels", src="$files/no-selector.yaml"),
    module("apply-selector-mismatch", "ds_apply", "does not match the pod template's labels",
           src="$files/mismatch.yaml"),
    module("apply-two-daemonsets", "ds_apply", "$files/two.yaml (src) holds 2 DaemonSets", src="$files/two.yaml"),
    module("apply-invalid-yaml", "ds_apply", "$files/invalid.yaml (src) is not valid YAML", src="$files/invalid.yaml"),
    module("apply-old-api-version", "ds_apply", "a DaemonSet is apiVersion apps/v1 (got 'extensions/v1beta1')",
           definition=daemonset_text(api_version="extensions/v1beta1")),
    module("apply-manifest-subresource-name", "ds_apply", "the DaemonSet's name 'fluentd-elasticsearch/status'",
           name=None, definition=daemonset_text("fluentd-elasticsearch/status")),
    module("apply-manifest-namespace-name", "ds_apply", "the DaemonSet's namespace 'Bad_NS' is not a namespace",
           name=None, namespace=None, definition=daemonset_text(namespace="Bad_NS")),
    module("apply-max-unavailable-word", "ds_apply", "max_unavailable must be a number or a percentage",
           src="$files/mismatch.yaml", strategy={"max_unavailable": "ten"}),
    module("apply-budgets-zero", "ds_apply", "max_unavailable and max_surge cannot both be 0",
           definition=daemonset_text(), strategy={"max_unavailable": 0, "max_surge": 0}),
    module("apply-min-ready-negative", "ds_apply", "min_ready_seconds must not be negative",
           definition=daemonset_text(), strategy={"min_ready_seconds": -1}),
    module("apply-wait-timeout-negative", "ds_apply", "wait_timeout must be at least 0 (got -5)",
           definition=daemonset_text(), wait=True, wait_timeout=-5),
    module("apply-no-definition", "ds_apply", ("state is present but any of the following are missing",
                                               "definition, src")),
    module("apply-absent-without-name", "ds_apply", "state=absent needs name", name=None, state="absent"),
    module("apply-forbidden-create", "ds_apply", ("forbidden: cannot create apps/daemonsets", "ds_apply needs"),
           definition=daemonset_text(), name=None, kubeconfig="$read_only"),
    # --- playbooks and their roles
    playbook("deploy-timeout-negative", "deploy", "deploy: deploy_timeout must not be negative (got -5)",
             daemonset_name="fresh", deploy_timeout=-5),
    playbook("deploy-strategy-choice", "deploy", ("deploy_strategy_type", "RollingUpdate, OnDelete"),
             deploy_strategy_type="Rolling"),
    playbook("deploy-budget-word", "deploy", "deploy: deploy_max_unavailable must be a number or a percentage",
             deploy_max_unavailable="ten"),
    playbook("deploy-budgets-zero", "deploy", "deploy_max_unavailable and deploy_max_surge cannot both be 0",
             deploy_max_unavailable=0, deploy_max_surge="0%"),
    playbook("deploy-two-sources", "deploy", "give exactly one of deploy_manifest_file, deploy_definition or",
             deploy_image="x:1", deploy_manifest_file="$files/two.yaml"),
    playbook("deploy-deployment-manifest", "deploy", "$files/deployment.yaml (src) holds 0 DaemonSets (Deployment)",
             deploy_manifest_file="$files/deployment.yaml"),
    playbook("deploy-invalid-yaml", "deploy", "$files/invalid.yaml (src) is not valid YAML",
             deploy_manifest_file="$files/invalid.yaml"),
    playbook("deploy-two-daemonsets", "deploy", "$files/two.yaml (src) holds 2 DaemonSets",
             deploy_manifest_file="$files/two.yaml"),
    playbook("deploy-no-selector", "deploy", "$files/no-selector.yaml (src): the DaemonSet has no spec.selector",
             daemonset_name="fresh", deploy_manifest_file="$files/no-selector.yaml"),
    playbook("deploy-selector-mismatch", "deploy", "does not match the pod template's labels",
             daemonset_name="fresh", deploy_manifest_file="$files/mismatch.yaml"),
    playbook("deploy-manifest-missing", "deploy", "cannot read the manifest file $files/missing.yaml",
             deploy_manifest_file="$files/missing.yaml"),
    playbook("deploy-kubeconfig-garbage", "deploy", "the kubeconfig $files/garbage.kubeconfig (kubeconfig option)",
             k8s_auth_kubeconfig="$files/garbage.kubeconfig"),
    playbook("deploy-wrong-context", "deploy", "no context named 'nope'", k8s_auth_context="nope"),
    playbook("deploy-forbidden-create", "deploy", ("forbidden: cannot create apps/daemonsets", "'create' verb"),
             daemonset_name="fresh", k8s_auth_kubeconfig="$read_only"),
    playbook("update-timeout-negative", "update", "update: update_timeout must not be negative (got -5)",
             update_timeout=-5, update_images={NAME: "x:1"}),
    playbook("update-deployment-manifest", "update", "$files/deployment.yaml (src) is a Deployment, not a DaemonSet",
             update_manifest_file="$files/deployment.yaml"),
    playbook("update-two-documents", "update", "$files/two.yaml (src) holds 2 YAML documents; give one",
             update_manifest_file="$files/two.yaml"),
    playbook("update-invalid-yaml", "update", "$files/invalid.yaml (src) is not valid YAML",
             update_manifest_file="$files/invalid.yaml"),
    playbook("update-unknown-container", "update", ("no container named nosuch", f"containers: {NAME}"),
             update_images={"nosuch": "x:1"}),
    playbook("update-two-kinds-of-change", "update", "update: set exactly one of update_template",
             update_images={NAME: "x:1"}, update_manifest_file="$files/two.yaml"),
    playbook("update-images-type", "update", ("update_images", "dict"), update_images=["not", "a", "dict"]),
    playbook("update-subresource-name", "update", NOT_A_NAME, daemonset_name="fluentd-elasticsearch/status",
             update_images={NAME: "x:1"}),
    playbook("update-missing-daemonset", "update", ("DaemonSet $ns/nope not found", THERE), daemonset_name="nope",
             update_images={NAME: "x:1"}),
    playbook("update-invalid-token", "update", UNAUTHORIZED, update_images={NAME: "x:1"}, k8s_auth_host="$server",
             k8s_auth_ca_cert="$ca", k8s_auth_api_key="not-a-valid-token"),
    playbook("rollback-timeout-negative", "rollback", "rollback: rollback_timeout must not be negative (got -5)",
             rollback_timeout=-5),
    playbook("rollback-missing-revision", "rollback", NO_REVISION, rollback_to_revision=99),
    playbook("rollback-missing-shown-revision", "rollback", NO_REVISION, rollback_show_revision=99),
    playbook("rollback-revision-type", "rollback", ("rollback_to_revision", "int"), rollback_to_revision="latest"),
    playbook("rollback-missing-namespace", "rollback", NO_NAMESPACE, daemonset_namespace="no-such-namespace"),
    playbook("rollback-forbidden-patch", "rollback", ("forbidden: cannot patch apps/daemonsets", "'patch' verb"),
             k8s_auth_kubeconfig="$read_only"),
    playbook("troubleshoot-clock-skew-negative", "troubleshoot",
             "troubleshoot: troubleshoot_clock_skew_tolerance must not be negative",
             troubleshoot_clock_skew_tolerance=-1),
    playbook("troubleshoot-fixed-template-missing", "troubleshoot",
             "troubleshoot_remediate=fixed_template needs exactly one of troubleshoot_images",
             troubleshoot_remediate="fixed_template"),
    playbook("troubleshoot-remediate-choice", "troubleshoot", ("troubleshoot_remediate", "evict_blockers"),
             troubleshoot_remediate="fix"),
    playbook("troubleshoot-missing-daemonset", "troubleshoot", ("DaemonSet $ns/nope not found", THERE),
             daemonset_name="nope"),
    playbook("lifecycle-timeout-negative", "lifecycle", "lifecycle: lifecycle_timeout must be a whole number",
             lifecycle_timeout=-5),
    playbook("lifecycle-namespace-name", "lifecycle", "namespace 'Bad_NS' is not a namespace name",
             daemonset_namespace="Bad_NS"),
]  # fmt: skip


def substituted(value: t.Any, context: dict[str, str]) -> t.Any:
    """VALUE with the $placeholders of CONTEXT filled in (keys whose value is None are left out)."""
    if isinstance(value, str):
        return string.Template(value).safe_substitute(context)
    if isinstance(value, dict):
        return {key: substituted(item, context) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [substituted(item, context) for item in value]
    return value


def failure_messages(output: dict[str, t.Any]) -> list[str]:
    """The messages of the failed task results in a json callback's output, with those of their loop items (the
    callback drops the items' ``failed``: the passed ones say so)."""
    messages = []
    for play in output["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if result.get("failed"):
                    items = [result, *(result.get("results") or [])]
                    messages += [str(item["msg"]) for item in items if "msg" in item]
    return messages


# --- the shared DaemonSet ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def context(core_v1, kubeconfig, tmp_path_factory, two_revisions, wait_rollout, new_namespace,
            new_service_accounts) -> t.Iterator[dict[str, str]]:  # fmt: skip
    """The rows' placeholders: a namespace with the seed DaemonSet at revisions 1 and 2, the files, credentials."""
    namespace = new_namespace("bad-inputs")
    files = tmp_path_factory.mktemp("bad-inputs")
    for name, text in FILES.items():
        (files / name).write_text(text)
    cluster = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    (files / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    accounts = new_service_accounts(namespace, files)
    read_only = accounts.for_use("read-only")
    no_nodes = accounts.for_use("read-only", without=("nodes", "list"))
    two_revisions(namespace)
    wait_rollout(namespace)
    yield {"ns": namespace, "files": str(files), "server": cluster["server"], "ca": str(files / "ca.crt"),
           "untrusted_ca": certifi.where(), "read_only": read_only, "no_nodes": no_nodes,
           "sa_token": accounts.token(read_only)}  # fmt: skip
    accounts.cleanup()
    core_v1.delete_namespace(namespace)


def outcome(case: Case, context: dict[str, str], run_module, run_playbook) -> tuple[bool, list[str]]:
    """(whether CASE failed, its failure messages)."""
    args = substituted(case.args, context)
    if not case.task.startswith("playbook:"):
        result = run_module(case.task, args)
        return bool(result.get("failed")), [str(result.get("msg"))]
    proc = run_playbook(f"kubeops.daemonset.{case.task.split(':')[1]}", args, env={"ANSIBLE_STDOUT_CALLBACK": "json"})
    try:
        messages = failure_messages(json.loads(proc.stdout))
    except json.JSONDecodeError:  # errors before the first play (a variable file ...) are plain text
        messages = [proc.stdout + proc.stderr]
    return proc.returncode != 0, messages


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_clearly_and_writes_nothing(case, context, run_module, run_playbook, written_objects):
    before = written_objects(context["ns"])
    failed, messages = outcome(case, context, run_module, run_playbook)
    assert failed, f"{case.id} did not fail: {messages}"
    said = "\n".join(messages)
    for fragment in substituted(list(case.says), context):
        assert fragment in said, f"{case.id}: {fragment!r} is not in the message:\n{said}"
    assert written_objects(context["ns"]) == before, f"{case.id} wrote to the cluster: {said}"


# --- the table in the docs -----------------------------------------------------------------------

SHARED = (("name", NAME), ("namespace", "$ns"), ("daemonset_namespace", "$ns"))  # left out of the table


def render_docs() -> str:
    """docs/bad-inputs.md: the rows as a table."""
    lines = [
        "# Bad inputs: refused before anything is written",
        "",
        "Every row is a test (`tests/integration/test_bad_inputs.py`, run by `make integration`): the task or",
        "playbook fails, its message contains every fragment shown (the input it names and what to do), and the",
        "DaemonSet's resourceVersion, its ControllerRevisions and the namespace's Deployments are unchanged. The",
        "rows run against the seed DaemonSet at revisions 1 and 2. `$ns` is its namespace, `$files` a folder of bad",
        "manifests and kubeconfigs, `$read_only` a ServiceAccount with exactly `docs/rbac/read-only.yaml`, `$server`",
        "and `$ca` the cluster's API server and CA. Regenerate this file with `python",
        "tests/integration/test_bad_inputs.py` after changing the table.",
        "",
        f"{len(CASES)} cases.",
        "",
        "| case | task | input | the message says |",
        "| --- | --- | --- | --- |",
    ]
    for case in CASES:
        shown = {key: value for key, value in case.args.items() if value is not None and (key, value) not in SHARED}
        given = json.dumps(shown, ensure_ascii=False).replace("|", "\\|")
        given = given if len(given) <= 160 else given[:157] + "..."
        says = " ... ".join(f"`{fragment}`" for fragment in case.says).replace("|", "\\|")
        lines.append(f"| {case.id} | {case.task} | `{given}` | {says} |")
    return "\n".join(lines) + "\n"


def test_the_docs_table_is_the_test_table():
    assert DOCS.read_text() == render_docs(), "run: python tests/integration/test_bad_inputs.py"


if __name__ == "__main__":
    DOCS.write_text(render_docs())
