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
    unavailable old pods), C(on_delete_pending), C(misscheduled), C(spec_not_observed) (the controller has not
    observed the latest spec: is kube-controller-manager running?), C(rollout_in_progress) (pods being replaced,
    nothing wrong yet), C(unexplained) (the rest of the gap, with the pods, the counts and what to look at), and,
    informational only, C(untolerated_taint) (nodes skipped on purpose)."
  - "The findings account for the whole gap to C(kubectl rollout status)'s \"successfully rolled out\": every node
    that should run an updated, available pod and does not is named (outdated pods that a problem holds back by
    using up the rolling budget in that finding's C(evidence.holds_back)), and so is every count of the
    controller's status that the nodes and pods do not show (a controller that stopped writing its status).
    RV(healthy) is true only when kubectl would call the rollout complete."
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
  - kubeops.daemonset._daemonset
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
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

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.diagnose import diagnose
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import DAEMONSET_ARG_SPEC, at_least, run_module

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
SPEC_RULES = {
    "mutually_exclusive": [("images", "template")],
    "required_if": [("remediate", "fixed_template", ("images", "template"), True)],
}


def check(params: dict[str, t.Any]) -> None:
    at_least(params, 0, "clock_skew_tolerance")


run = diagnose  # what main() and the action (plugins/action/ds_diagnose.py) call


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_diagnose", run, check, **SPEC_RULES)


if __name__ == "__main__":
    main()
