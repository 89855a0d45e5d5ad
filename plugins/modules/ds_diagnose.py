#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_diagnose
short_description: Name the causes of a stuck DaemonSet rollout, with the nodes and pods involved; optionally fix them
version_added: 0.1.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Reads a DaemonSet, the nodes, its pods, the Warning events of its namespace, its revisions and the node leases,
    and names every cause that keeps its rollout from finishing, the way the troubleshooting section of the
    DaemonSet rolling-update guide describes them, with evidence and a suggested action for each.
  - "Causes (RV(findings[].cause)): C(resource_exhaustion) (the scheduler's C(Insufficient cpu), C(Insufficient
    memory), C(Too many pods) on nodes that should run the DaemonSet, with requested vs allocatable resources and the
    largest other pods there as candidates to move), C(unschedulable) (any other scheduler reason), C(pod_missing),
    C(broken_template) (updated pods not Ready grouped by reason - C(ErrImagePull), C(CrashLoopBackOff),
    C(CreateContainerConfigError) ... - with counts, restarts, images and the last Warning events),
    C(node_not_ready) (NotReady or unreachable nodes and their pods stuck C(Unknown) or C(Terminating)),
    C(clock_skew) (node clocks measured against the API server's through lease renewals; pods Ready longer than
    C(minReadySeconds) yet not counted available), C(budget_exhausted) (maxUnavailable/maxSurge used up by
    unavailable old pods), C(on_delete_pending), C(misscheduled), and, informational only, C(untolerated_taint)
    (nodes skipped on purpose)."
  - "A constant number of API calls whatever the size of the cluster (RV(api_calls)): get the DaemonSet; list nodes;
    list the DaemonSet's pods (its label selector, its namespace); list the namespace's Warning events
    (C(fieldSelector=type=Warning)); list its ControllerRevisions; list the leases in C(kube-node-lease); and, only
    when the scheduler reports a resource shortage, the other pods on the blocked nodes - one C(spec.nodeName)
    field-selected list per blocked node when there are at most three (cheap, served from the API server's cache),
    else one list of the pods of all namespaces. At most 9 calls before any remediation."
  - "Remediation is opt-in (O(remediate)); nothing is changed by default. V(evict_blockers) evicts pods through the
    Eviction API (C(policy/v1), which honours PodDisruptionBudgets, unlike the plain C(kubectl delete pod) the guide
    suggests), only on nodes where the scheduler reports a resource shortage for the DaemonSet's pod, never
    DaemonSet pods nor mirror pods, and pods without a controller only with O(force=true); it picks the fewest,
    largest pods whose requests make the DaemonSet's pod fit. V(rollback) rolls a C(broken_template) back to the
    newest revision whose pods are all Ready (the revision selection and undo patch of
    M(kubeops.daemonset.ds_undo)). V(fixed_template) applies O(template) or O(images); a new rollout is not blocked
    by the broken one."
  - "RBAC (a ClusterRole: nodes are cluster-scoped): required C(get) on C(apps/daemonsets) and C(list) on C(nodes)
    and C(pods). Optional: C(list) on C(events), C(apps/controllerrevisions) and C(coordination.k8s.io/leases)
    (without them the causes that need them are not checked and the module warns); C(create) on C(pods/eviction)
    for V(evict_blockers); C(patch) on C(apps/daemonsets) for V(rollback) and V(fixed_template)."
options:
  clock_skew_tolerance:
    description:
      - Seconds a node's clock may differ from the API server's before it is reported (C(clock_skew)).
    type: float
    default: 5
  remediate:
    description:
      - V(none) only diagnoses.
      - V(evict_blockers) evicts pods from the nodes where a C(resource_exhaustion) finding blocks the DaemonSet.
      - V(rollback) rolls back a C(broken_template) to the newest revision whose pods are all Ready; nothing is done
        without a C(broken_template) finding.
      - V(fixed_template) applies O(template) or O(images) when they differ from the live template.
    type: str
    choices: [none, evict_blockers, rollback, fixed_template]
    default: none
  force:
    description:
      - With O(remediate=evict_blockers), also evict pods that no controller owns (nothing recreates them).
    type: bool
    default: false
  images:
    description:
      - "With O(remediate=fixed_template), new images by container name, for example
        V({fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0})."
    type: dict
  template:
    description:
      - With O(remediate=fixed_template), a whole pod template (C(metadata) and C(spec)) replacing the live one.
        Its labels must still match the DaemonSet's selector.
    type: dict
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset.daemonset
  - kubeops.daemonset.attributes
  - kubeops.daemonset.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - The diagnosis only reads. Remediation in check mode writes nothing; evictions and patches are sent with
        C(dryRun=All), so the API server checks permissions and PodDisruptionBudgets and the result says what a real
        run would evict, refuse or patch.
  diff_mode:
    support: full
    details: The pods on each node before and after the evictions, or the pod template before and after the patch.
  idempotent:
    support: full
    details:
      - A remediation is done only while its cause is found (or while O(template)/O(images) differ from the live
        template), so a second run reports V(changed=false).
notes:
  - "Clock skew is measured per node as the lease's C(renewTime) (written with the node's clock) minus the time the
    API server recorded that write (the lease's managed-fields time, whole seconds); the API server's clock is the
    C(Date) header of its responses. Pods' Ready times count from the node's clock, which is why skew breaks
    C(minReadySeconds)."
  - "C(healthy) ignores informational findings: nodes the DaemonSet skips because of taints it does not tolerate
    are by design, and reported only as a note."
seealso:
  - module: kubeops.daemonset.ds_rollout_wait
  - module: kubeops.daemonset.ds_undo
  - name: Troubleshooting DaemonSet rolling updates
    description: The guide section whose causes this module names.
    link: https://kubernetes.io/docs/tasks/manage-daemon/update-daemon-set/#troubleshooting
"""

EXAMPLES = r"""
---
- name: Why is the fluentd rollout stuck?
  kubeops.daemonset.ds_diagnose:
    name: fluentd-elasticsearch
    namespace: kube-system
  register: diagnosis

- name: Print the report
  ansible.builtin.debug:
    msg: "{{ diagnosis.report.splitlines() }}"

- name: Free room for fluentd on the blocked nodes (PodDisruptionBudgets are honoured)
  kubeops.daemonset.ds_diagnose:
    name: fluentd-elasticsearch
    namespace: kube-system
    remediate: evict_blockers

- name: Roll a broken template back to the last revision whose pods were all Ready
  kubeops.daemonset.ds_diagnose:
    name: fluentd-elasticsearch
    namespace: kube-system
    remediate: rollback

- name: Or fix the image
  kubeops.daemonset.ds_diagnose:
    name: fluentd-elasticsearch
    namespace: kube-system
    remediate: fixed_template
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
"""

RETURN = r"""
healthy:
  description: True when no finding is more than informational.
  returned: success
  type: bool
  sample: false
findings:
  description: The causes found, errors first.
  returned: success
  type: list
  elements: dict
  contains:
    cause:
      description: Name of the cause (see the description).
      type: str
      sample: resource_exhaustion
    severity:
      description: V(error) (blocks the rollout), V(warning) or V(info).
      type: str
      sample: error
    summary:
      description: One line for people.
      type: str
      sample: Insufficient cpu on 1 node (worker-7)
    nodes:
      description: All nodes involved.
      type: list
      elements: str
    pods:
      description: All pods involved (names in the DaemonSet's namespace; other namespaces as C(namespace/name)).
      type: list
      elements: str
    evidence:
      description: What the cause was read from (scheduler messages, resources, reason groups, offsets ...).
      type: dict
    suggested_action:
      description: What to do about it.
      type: str
report:
  description: The findings as a short table, C(no problem found) when healthy.
  returned: success
  type: str
  sample: |-
    DaemonSet kube-system/fluentd-elasticsearch (desired 4, updated 3, available 3): 1 problem found
    SEVERITY CAUSE                NODES  PODS  SUMMARY
    error    resource_exhaustion      1     1  Insufficient cpu on 1 node (worker-7)
counters:
  description: The rollout as this diagnosis counts it (C(desired), C(pods), C(updated), C(ready), C(available))
    next to the controller's C(status) fields.
  returned: success
  type: dict
api_calls:
  description: API requests made (constant in the number of nodes and pods), remediation included.
  returned: success
  type: int
  sample: 7
server_time:
  description: The API server's clock (RFC 3339) the diagnosis measured against.
  returned: success
  type: str
remediation:
  description: What O(remediate) did (or would do in check mode).
  returned: when O(remediate) is not V(none)
  type: dict
  contains:
    action:
      description: The O(remediate) value.
      type: str
    evicted:
      description: Pods evicted (C(namespace/name)).
      type: list
      elements: str
    refused:
      description: Evictions the API server refused (C(429), a PodDisruptionBudget), with its message.
      type: list
      elements: dict
    gone:
      description: Pods chosen for eviction that no longer existed.
      type: list
      elements: str
    plans:
      description: Per blocked node, the pods chosen, skipped pods and whether the DaemonSet's pod fits afterwards.
      type: list
      elements: dict
    rolled_back_to:
      description: Revision number rolled back to (V(rollback)).
      type: int
    patched:
      description: Whether the DaemonSet's template was (or would be) patched.
      type: bool
"""

import copy
import email.utils
import typing as t
from datetime import datetime, timezone

from ansible_collections.kubeops.daemonset.plugins.module_utils import _diagnose, _history
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import (
    DAEMONSET_ARG_SPEC,
    K8sError,
    build_module,
    run_module,
    selector_string,
)

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    "clock_skew_tolerance": {"type": "float", "default": 5.0},
    "remediate": {
        "type": "str",
        "choices": ["none", "evict_blockers", "rollback", "fixed_template"],
        "default": "none",
    },
    "force": {"type": "bool", "default": False},
    "images": {"type": "dict"},
    "template": {"type": "dict"},
}
# Up to this many blocked nodes, one spec.nodeName-filtered pod list each; beyond, one list of all pods.
NODE_SCOPED_LISTS = 3
Obj = dict[str, t.Any]


def _optional(module, what: str, call: t.Callable[[], list[Obj]]) -> list[Obj] | None:
    """Lists that only add detail: without permission the diagnosis goes on and says what it skipped."""
    try:
        return call()
    except K8sError as exc:
        if exc.status != 403:
            raise
        module.warn(f"{what} not checked: {exc}")
        return None


def read_cluster(module, api) -> Obj:
    """The objects of the diagnosis, in a constant number of list calls."""
    namespace, name = module.params["namespace"], module.params["name"]
    daemonset = api.require_daemonset(namespace, name)
    server_time = api.server_date
    selector = selector_string(daemonset["spec"]["selector"])
    state = {
        "daemonset": daemonset,
        "nodes": api.list_nodes(),
        "pods": api.list_pods(namespace, selector),
        "events": _optional(module, "events", lambda: api.list_events(namespace, "type=Warning")) or [],
        "revisions": _optional(module, "revisions", lambda: api.list_controller_revisions(namespace, selector)),
        "leases": _optional(module, "node leases (clock skew)", api.list_leases) or [],
    }
    state["server_time"] = _rfc3339(server_time)
    blocked = _diagnose.blocked_nodes(daemonset, state["nodes"], state["pods"], state["events"])
    short = sorted(node for node, info in blocked.items() if any(map(_diagnose.is_resource_reason, info["reasons"])))
    state["other_pods"] = list_pods_on(api, short)
    return state


def list_pods_on(api, nodes: list[str]) -> list[Obj]:
    """Pods of every namespace on NODES (bound pods only; finished ones do not hold resources)."""
    if not nodes:
        return []
    if len(nodes) <= NODE_SCOPED_LISTS:
        return [pod for node in nodes for pod in api.list_pods(None, field_selector=f"spec.nodeName={node}")]
    wanted = set(nodes)
    return [p for p in api.list_pods(None) if (p.get("spec") or {}).get("nodeName") in wanted]


def _rfc3339(http_date: str | None) -> str:
    when = email.utils.parsedate_to_datetime(http_date) if http_date else datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merged_pods(state: Obj) -> list[Obj]:
    seen = {p["metadata"]["uid"] for p in state["pods"]}
    return state["pods"] + [p for p in state["other_pods"] if p["metadata"]["uid"] not in seen]


# --- remediation -----------------------------------------------------------------------------


def evict_blockers(module, api, state: Obj, findings: list[Obj]) -> tuple[Obj, Obj | None]:
    nodes = {n["metadata"]["name"]: n for n in state["nodes"]}
    blocked = sorted({n for f in findings if f["cause"] == "resource_exhaustion" for n in f["nodes"]})
    pods = _merged_pods(state)
    plans = [_diagnose.plan_evictions(state["daemonset"], nodes[n], pods, module.params["force"]) for n in blocked]
    evicted, refused, gone = [], [], []
    for plan in plans:
        for ref in plan["evict"]:
            namespace, name = ref.split("/", 1)
            try:
                api.evict_pod(namespace, name, dry_run=module.check_mode)
                evicted.append(ref)
            except K8sError as exc:
                if exc.status == 404:  # deleted since it was listed: the room is free anyway
                    gone.append(ref)
                elif exc.status == 429:  # a PodDisruptionBudget does not allow it now
                    refused.append({"pod": ref, "status": exc.status, "message": str(exc)})
                else:
                    raise
    diff = None
    if module._diff:
        before = {p["node"]: sorted(_pods_on(pods, p["node"])) for p in plans}
        diff = {
            "before": before,
            "after": {node: [p for p in refs if p not in evicted] for node, refs in before.items()},
        }
    return {"action": "evict_blockers", "evicted": evicted, "refused": refused, "gone": gone, "plans": plans}, diff


def _pods_on(pods: list[Obj], node: str) -> list[str]:
    return [_diagnose.pod_ref(p) for p in pods if (p.get("spec") or {}).get("nodeName") == node]


def _patch_template(module, api, daemonset: Obj, patch: Obj, dry_run: bool) -> Obj:
    """Conditioned on the resourceVersion read: a concurrent change fails (409) instead of being overwritten."""
    patch = copy.deepcopy(patch)
    patch.setdefault("metadata", {})["resourceVersion"] = daemonset["metadata"]["resourceVersion"]
    meta = daemonset["metadata"]
    return api.patch_daemonset(meta["namespace"], meta["name"], patch, dry_run=dry_run)


def rollback(module, api, state: Obj, findings: list[Obj]) -> tuple[Obj, Obj | None]:
    result: Obj = {"action": "rollback", "patched": False, "rolled_back_to": None}
    if not any(f["cause"] == "broken_template" for f in findings):
        result["skipped"] = "no broken_template finding"
        return result, None
    daemonset = state["daemonset"]
    if state["revisions"] is None:
        raise K8sError("rollback needs list on apps/controllerrevisions")
    target = _diagnose.last_available_revision(daemonset, state["revisions"], state["pods"])
    if target is None:
        result["skipped"] = "no earlier revision whose pods are all Ready"
        return result, None
    plan = _history.plan_undo(daemonset, state["revisions"], int(target["revision"]))
    result.update(rolled_back_to=plan["to_revision"], rolled_back_from=plan["rolled_back_from"], msg=plan["message"])
    if plan["changed"]:
        _patch_template(module, api, daemonset, _history.undo_patch(plan["target"]), dry_run=module.check_mode)
        result.update(patched=True, predicted_revision=plan["predicted_revision"])
    return result, {"before": plan["before"], "after": plan["after"]} if plan["changed"] else None


def fixed_template(module, api, state: Obj) -> tuple[Obj, Obj | None]:
    """Patch the template; a server dry run first gives the template as the server would store it (defaults
    filled in), so an already applied fix compares equal and nothing is written."""
    daemonset = state["daemonset"]
    before = daemonset["spec"]["template"]
    if module.params["template"]:
        patch = {"spec": {"template": dict(module.params["template"], **{"$patch": "replace"})}}
    else:
        names = {c["name"] for c in before["spec"]["containers"]}
        unknown = sorted(set(module.params["images"]) - names)
        if unknown:
            raise K8sError(f"images: no container named {', '.join(unknown)}; containers: {', '.join(sorted(names))}")
        containers = [{"name": name, "image": image} for name, image in module.params["images"].items()]
        patch = {"spec": {"template": {"spec": {"containers": containers}}}}
    after = _patch_template(module, api, daemonset, patch, dry_run=True)["spec"]["template"]
    changed = not _history.templates_equal(before, after)
    if changed and not module.check_mode:
        _patch_template(module, api, daemonset, patch, dry_run=False)
    result = {"action": "fixed_template", "patched": changed, "changes": _history.template_changes(before, after)}
    return result, {"before": before, "after": after} if changed else None


def run(module, api) -> Obj:
    state = read_cluster(module, api)
    pods = _merged_pods(state)
    daemonset = state["daemonset"]
    findings = _diagnose.diagnose(
        daemonset, state["nodes"], pods, state["events"], state["revisions"], state["leases"],
        state["server_time"], module.params["clock_skew_tolerance"],
    )  # fmt: skip
    counters = _diagnose.counters(daemonset, state["nodes"], state["pods"], state["revisions"], state["server_time"])
    result: Obj = {
        "changed": False,
        "healthy": _diagnose.is_healthy(findings),
        "findings": findings,
        "report": _diagnose.render_report(daemonset, findings, counters),
        "counters": counters,
        "server_time": state["server_time"],
    }
    action = module.params["remediate"]
    if action != "none":
        if action == "evict_blockers":
            remediation, diff = evict_blockers(module, api, state, findings)
            result["changed"] = bool(remediation["evicted"])
        elif action == "rollback":
            remediation, diff = rollback(module, api, state, findings)
            result["changed"] = remediation["patched"]
        else:
            remediation, diff = fixed_template(module, api, state)
            result["changed"] = remediation["patched"]
        result["remediation"] = remediation
        if diff and module._diff:
            result["diff"] = diff
    result["api_calls"] = api.calls
    return result


def main() -> None:
    module = build_module(
        ARGUMENT_SPEC,
        mutually_exclusive=[("images", "template")],
        required_if=[("remediate", "fixed_template", ("images", "template"), True)],
    )
    run_module(module, "ds_diagnose", run, errors=(_history.HistoryError,))


if __name__ == "__main__":
    main()
