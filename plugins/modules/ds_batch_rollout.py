#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_batch_rollout
short_description: Roll out a DaemonSet node batch by node batch (canary), with health gates and automatic rollback
version_added: 0.1.0
author:
  - kubeops.daemonset contributors (@kubeops)
description:
  - Vanilla DaemonSets cannot pause, partition or canary a rollout. This module does it on any cluster, with no
    controller or CRD to install, the way openshift-ansible and Kruise Rollouts do it.
  - "It remembers the original update strategy and, in ONE write, switches the DaemonSet to C(OnDelete) (so the
    controller stops replacing pods) and applies the new template (O(template) or O(images)) with its
    change-cause. Then, batch by batch: it deletes the old pods on the batch's nodes, the controller recreates them
    from the new template, and every updated pod must pass the health gate before the next batch starts: Ready and
    available for O(min_available_seconds) (the Ready condition's C(lastTransitionTime)), no container restart,
    no waiting container, and the optional O(gate_url) answering 2xx."
  - "Canary rules, after Datadog's ExtendedDaemonSet: a restart budget (O(restart_budget)) and an OOMKilled check
    (O(fail_on_oom)) for the new pods, a bake time after each gate (O(bake_seconds), no restart for N seconds),
    canary nodes spread over a topology key (O(topology_key)), a cap on the pods replaced at once
    (O(max_in_flight)) and a watched wait between batches (O(pause_seconds)). Each of them stops a bad batch and
    rolls it back."
  - "On a failed gate it stops, rolls the touched nodes back to the revision that was live before (the
    revision's stored template, as M(kubeops.daemonset.ds_undo) applies it, then deleting the pods on those nodes
    only), restores the original strategy and fails naming the touched nodes and why it stopped. Nodes the rollout
    had not reached are never touched."
  - At the end it restores the original strategy (for example C(RollingUpdate) with its C(maxUnavailable) and
    C(maxSurge)); the template is already the new one, so nothing more rolls.
  - "Resumable: while it runs, the original strategy and the rollback revision are kept in the annotation
    C(daemonset.kubeops.io/batch-rollout) on the DaemonSet. If a run is interrupted, the next run (from any machine)
    finds it, counts the nodes whose pod already carries the new C(controller-revision-hash) as done, checks them
    and continues. A finished rollout run again changes nothing."
  - "One run at a time: the run claims the rollout in the state annotation and renews the claim while it works. A
    second run (from any machine) is refused while the claim lives; the claim of a run that was killed is free
    after 30 seconds, at once on the machine it ran on. A run stops at its next request when the C(ansible-playbook)
    that started it is gone."
  - While the task runs, the plan and one line per batch are printed as they happen (to standard error, so
    machine-readable output stays intact).
  - "RBAC: C(get), C(list), C(watch) and C(patch) on C(apps/daemonsets), C(list) on C(apps/controllerrevisions)
    and C(list), C(delete) on C(pods) in O(namespace); C(list) on C(nodes) (cluster-scoped: a ClusterRole)."
options:
  template:
    description:
      - The new pod template (C(metadata) and C(spec)), replacing the live one.
      - Without O(template) and O(images) the live template is the target - this continues (resumes) a rollout in
        progress, or rolls out a template already applied to an C(OnDelete) DaemonSet.
    type: dict
  images:
    description:
      - Only new images, container name -> image (containers and init containers), like C(kubectl set image).
      - An unknown container name fails before anything is written, listing the containers there are.
    type: dict
  change_cause:
    description:
      - The C(kubernetes.io/change-cause) annotation, set in the same write as the new template, so
        C(kubectl rollout history) shows it for the new revision.
    type: str
  batches:
    description:
      - "The batches, in order. Each is a cumulative target like a Kruise partition - a node count (V(1)), a
        percentage of the eligible nodes rounded up (V(10%)) - or C({selector: {LABEL: VALUE}}) (or a full
        LabelSelector with C(matchLabels)/C(matchExpressions)) for every eligible node of a pool, a canary pool first."
      - Nodes already on the new revision count towards the targets, so a batch whose target is reached is skipped.
        When the list does not reach every node, a final V(100%) batch is added.
      - "Eligible nodes are those that should run the DaemonSet: node selector, required node affinity, taints
        against tolerations (as the controller decides; resources are not considered). They are taken in natural
        name order."
    type: list
    elements: raw
    default: [1, "10%", "50%", "100%"]
  min_available_seconds:
    description:
      - How long every updated pod must have been Ready (without restarting) before a batch passes its gate.
      - The time is measured from the pod's Ready condition C(lastTransitionTime) (whole seconds, written by the
        kubelet), against this machine's clock.
    type: int
    default: 10
  batch_timeout:
    description:
      - Seconds a batch may take from deleting its old pods to passing the gate; when they run out the gate fails
        with what it was still waiting for. Also bounds the rollback's wait.
    type: int
    default: 300
  fail_fast:
    description:
      - Fail the gate at once when an updated pod waits with a reason that does not heal by waiting
        (C(ErrImagePull), C(ImagePullBackOff), C(CrashLoopBackOff), C(CreateContainerConfigError) ...), instead
        of waiting for O(batch_timeout). A restart over O(restart_budget) or an OOM kill always fails the gate at
        once; within a budget above 0 a C(CrashLoopBackOff) waits (the budget decides).
      - Set V(false) when image pulls may fail transiently (a flaky registry).
    type: bool
    default: true
  gate_url:
    description:
      - An extra check after the pods of a batch are healthy, for example a service's health endpoint or a
        monitoring query. It must answer a 2xx status; the gate keeps asking (once a second) until it does or
        O(batch_timeout) runs out. It is requested from the host the module runs on.
    type: str
  pause_seconds:
    description:
      - Seconds to wait after a passed batch (its gate and bake) before the next one (slow start, time for
        dashboards and alerts to react).
      - The updated pods are watched meanwhile - a restart over O(restart_budget) or an OOM kill fails the batch
        that passed last, and it is rolled back. The time it passed is kept in the state annotation, so a resumed
        run waits only the rest.
      - For a manual approval use O(max_batches) instead (see the notes).
    type: int
    default: 0
  restart_budget:
    description:
      - Container restarts a new pod may have (all its containers together, like ExtendedDaemonSet's
        C(maxRestarts)) while its batch rolls out, bakes and pauses, and during every later batch. One more
        stops the rollout and rolls the batch back, naming the pods and nodes.
      - Restarts count from the pod's creation; for a pod already on the new revision when the rollout starts,
        from then (that count is kept in the state annotation, so a resumed run counts the same).
      - V(0) fails a batch at its first restart.
    type: int
    default: 0
  fail_on_oom:
    description:
      - Stop and roll back at the first OOMKilled termination of a new pod's container (its C(state) or its
        C(lastState) C(terminated.reason)), whatever O(restart_budget) allows.
      - V(false) counts an OOM kill as a restart like any other.
    type: bool
    default: true
  bake_seconds:
    description:
      - After a batch passes its gate, its updated pods (and the earlier batches') must stay Ready with no
        container restart for this many seconds before the batch passes (ExtendedDaemonSet's
        C(noRestartsDuration)).
      - A restart within O(restart_budget), or a pod that is not Ready, starts the clock again; a restart over the
        budget or an OOM kill fails the batch at once; a bake whose clock keeps starting again fails
        O(batch_timeout) seconds after it was due.
      - The clock is the API server's (whole seconds), kept in the state annotation, so a resumed run goes on
        with the bake where it stopped. V(0) - no bake.
    type: int
    default: 0
  topology_key:
    description:
      - A node label, for example V(topology.kubernetes.io/zone), to spread the batches over. The first batch
        takes at least one node of each value (V(1) with 3 zones becomes 3 nodes); every count or percentage batch
        takes nodes of each value in proportion to their number. Nodes without the label form one group of their
        own, shown as C((none)).
      - Fails before anything is written when no eligible node has the label (a misspelt key), or when the first
        batch is a selector.
    type: str
  max_in_flight:
    description:
      - Within a batch, replace at most this many pods at a time (slow start). The next old pod is deleted only
        when fewer than this many replaced pods are still on their way to healthy (Ready for
        O(min_available_seconds)); a gate failure stops the batch before its remaining old pods are deleted, and
        those nodes stay untouched. O(batch_timeout) then counts from the last deletion.
      - Unset, all old pods of a batch are deleted at once.
    type: int
  rollback_on_failure:
    description:
      - Roll the touched nodes back when a gate fails (see the description).
      - V(false) leaves the DaemonSet as the failed batch left it (C(OnDelete), the new template on the touched
        nodes, the state annotation kept) for investigation; run again to continue after a fix, or roll back with
        M(kubeops.daemonset.ds_undo).
    type: bool
    default: true
  max_batches:
    description:
      - Run at most this many (non-empty) batches, then stop with RV(outcome=paused), leaving the DaemonSet on
        C(OnDelete) with the state annotation. The next run continues with the following batches.
      - This is the manual approval point (see the notes). Unset, the rollout runs to the end.
    type: int
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset._daemonset
  - kubeops.daemonset._owner
  - kubeops.daemonset._wait.node_budget
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written. The template change is sent with C(dryRun=All) (the API server validates it) and the
        batch plan - which nodes in which batch - is returned in RV(plan) and printed.
  diff_mode:
    support: full
    details: The live pod template before and the new one after, as YAML.
  idempotent:
    support: full
    details:
      - A finished rollout run again with the same arguments reports V(changed=false); an interrupted one continues.
notes:
  - "Manual approval in AWX / Automation Controller: C(ansible.builtin.pause) needs an interactive terminal. Use a
    workflow instead: a job template running this module with O(max_batches=1) (the canary), an approval node,
    then a job template running it without O(max_batches) - it resumes after the canary. The DaemonSet stays on
    C(OnDelete) in between, so nothing rolls while the approval waits."
  - For a custom check between batches (a smoke test playbook, a query), run the module with O(max_batches=1) in
    a loop of your own and put your tasks between the runs; each run continues where the previous one stopped.
  - Pods of nodes the DaemonSet starts or stops running on during the rollout are created or deleted by the
    controller as usual (C(OnDelete) does not stop that); a node added during the rollout gets the new template.
seealso:
  - module: kubeops.daemonset.ds_rollout_wait
  - module: kubeops.daemonset.ds_undo
  - name: OpenKruise Advanced DaemonSet
    description: The controller-based alternative (partition, rolling by node selector); needs its CRD and controller.
    link: https://openkruise.io/docs/user-manuals/advanceddaemonset
"""

EXAMPLES = r"""
---
- name: Update fluentd on one node, then 10%, 50% and all nodes, each batch healthy for 30 seconds
  kubeops.daemonset.ds_batch_rollout:
    name: fluentd-elasticsearch
    namespace: kube-system
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
    change_cause: fluentd v2.6.0 in batches
    batches: [1, "10%", "50%", "100%"]
    min_available_seconds: 30
  register: rollout

- name: Canary pool first, then half of the nodes, then the rest; check the service between batches
  kubeops.daemonset.ds_batch_rollout:
    name: node-agent
    namespace: monitoring
    template: "{{ lookup('file', 'node-agent-template.yaml') | from_yaml }}"
    batches:
      - selector: {node-pool: canary}
      - "50%"
    gate_url: https://agent-health.example.com/healthz
    pause_seconds: 60

- name: Canary rules - one node per zone first, a 60s bake per batch, 2 restarts allowed, 5 pods at a time
  kubeops.daemonset.ds_batch_rollout:
    name: node-agent
    namespace: monitoring
    images:
      agent: registry.example.com/node-agent:2.4.0
    batches: [1, "25%", "100%"]
    topology_key: topology.kubernetes.io/zone
    bake_seconds: 60
    restart_budget: 2
    max_in_flight: 5
    pause_seconds: 120

- name: Show only the plan (which nodes in which batch); nothing is changed
  kubeops.daemonset.ds_batch_rollout:
    name: fluentd-elasticsearch
    namespace: kube-system
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
  check_mode: true

- name: Canary only (the first job template of an AWX workflow; an approval node follows)
  kubeops.daemonset.ds_batch_rollout:
    name: fluentd-elasticsearch
    namespace: kube-system
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
    max_batches: 1

- name: After the approval, the rest (the second job template; continues after the canary)
  kubeops.daemonset.ds_batch_rollout:
    name: fluentd-elasticsearch
    namespace: kube-system
    images:
      fluentd-elasticsearch: quay.io/fluentd_elasticsearch/fluentd:v2.6.0
"""

RETURN = r"""
outcome:
  description:
    - V(complete) (every eligible node runs the new revision, the original strategy is restored);
      V(unchanged) (nothing to do); V(planned) (check mode); V(paused) (O(max_batches) reached, run again to
      continue); V(rolled_back) (a gate failed and the touched nodes were rolled back; the task fails); V(failed)
      (a gate failed, no rollback; the task fails).
  returned: always
  type: str
  sample: complete
msg:
  description: What happened, or why the rollout stopped.
  returned: always
  type: str
  sample: "DaemonSet kube-system/fluentd-elasticsearch: 50 of 50 nodes on revision 2; strategy RollingUpdate restored"
plan:
  description: The batch plan at the start of this run.
  returned: always
  type: dict
  contains:
    total:
      description: Eligible nodes.
      type: int
    done:
      description: Nodes already on the new revision when the run started.
      type: list
      elements: str
    pending:
      description: Nodes the plan still has to update.
      type: int
    batches:
      description:
        - One entry per batch - C(batch) (number), C(spec) (as given), C(target) (nodes updated after it), C(nodes),
          and with O(topology_key) C(spread) (nodes per label value).
      type: list
      elements: dict
    topology:
      description:
        - With O(topology_key) - C(key) and C(groups), the eligible nodes per label value (C((none)) for nodes
          without the label).
      type: dict
      returned: when O(topology_key) is set
  sample:
    total: 50
    done: []
    pending: 50
    batches:
      - {batch: 1, spec: "1", target: 1, nodes: [node-1]}
      - {batch: 2, spec: "10%", target: 5, nodes: [node-2, node-3, node-4, node-5]}
batches:
  description: The batches this run executed, in order, with their gate results.
  returned: always
  type: list
  elements: dict
  contains:
    batch:
      description: Batch number in the plan.
      type: int
    spec:
      description: The batch as given.
      type: str
    nodes:
      description:
        - Nodes whose pod this run replaced (empty for a batch an earlier run started and this one finished).
      type: list
      elements: str
    gate:
      description: V(passed) (gate and bake) or V(failed).
      type: str
    phase:
      description: Where it failed - V(gate), V(bake) or V(pause) (the pause after it); null when it passed.
      type: str
    reasons:
      description: Why it failed (per node, naming the pod), empty when it passed.
      type: list
      elements: str
    elapsed:
      description: Seconds from deleting the old pods to the verdict.
      type: float
touched_nodes:
  description: Nodes this run replaced a pod on (and rolled back, after a failed gate).
  returned: always
  type: list
  elements: str
untouched_nodes:
  description:
    - Nodes of the plan this run did not reach (never touched); empty when the rollout is complete. After a paused
      run these are the nodes the next run continues with.
  returned: always
  type: list
  elements: str
revision:
  description: The revisions involved - C(previous) (rolled back to on failure) and C(target), each C({number, hash}).
  returned: always
  type: dict
  sample: {previous: {number: 1, hash: 84fc888bb7}, target: {number: 2, hash: 7d8889d976}}
strategy:
  description: The original update strategy, restored at the end.
  returned: always
  type: dict
  sample: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}
rollback:
  description: What the rollback did - C(nodes) rolled back, C(revision), C(complete) (all back and Ready).
  returned: when a gate failed and O(rollback_on_failure=true)
  type: dict
plan_lines:
  description: The plan as it is printed, one line per batch.
  returned: always
  type: list
  elements: str
log:
  description: The progress lines printed while it ran (one or two per batch, the rollback, the end).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the run took.
  returned: always
  type: float
owners:
  description: Who else manages the DaemonSet and would revert the change (see O(on_foreign_owner)).
  returned: success
  type: list
  elements: dict
skipped_nodes:
  description:
    - The NotReady and unreachable nodes the DaemonSet targets that the plan leaves out, within
      O(unhealthy_node_budget) (over it the module fails before writing anything, naming them); each with its
      C(node) and C(trouble). Cordoned nodes are planned like the others (daemon pods tolerate them).
  returned: success
  type: list
  elements: dict
  sample:
    - {node: kwok-worker-9, trouble: unreachable, pod: left out of the plan}
diff:
  description: The live and the new pod template as YAML.
  returned: in diff mode, when the template changes
  type: dict
"""

import typing as t
import urllib.parse

from ansible_collections.kubeops.daemonset.plugins.module_utils._batch import parse_batches
from ansible_collections.kubeops.daemonset.plugins.module_utils._canary import check_topology
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import RequestError
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.batch import batch_rollout
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import (
    DAEMONSET_ARG_SPEC,
    NODE_BUDGET_ARG_SPEC,
    OWNER_ARG_SPEC,
    at_least,
    check_node_budget,
    run_module,
)

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    **OWNER_ARG_SPEC,
    "template": {"type": "dict"},
    "images": {"type": "dict"},
    "change_cause": {"type": "str"},
    "batches": {"type": "list", "elements": "raw", "default": [1, "10%", "50%", "100%"]},
    "min_available_seconds": {"type": "int", "default": 10},
    "batch_timeout": {"type": "int", "default": 300},
    "fail_fast": {"type": "bool", "default": True},
    "gate_url": {"type": "str"},
    "pause_seconds": {"type": "int", "default": 0},
    "rollback_on_failure": {"type": "bool", "default": True},
    "max_batches": {"type": "int"},
    **NODE_BUDGET_ARG_SPEC,
    "restart_budget": {"type": "int", "default": 0},
    "fail_on_oom": {"type": "bool", "default": True},
    "bake_seconds": {"type": "int", "default": 0},
    "topology_key": {"type": "str", "no_log": False},
    "max_in_flight": {"type": "int"},
}
SPEC_RULES = {"mutually_exclusive": [("template", "images")]}


def check(params: dict[str, t.Any]) -> None:
    at_least(params, 0, "min_available_seconds", "batch_timeout", "pause_seconds", "restart_budget", "bake_seconds")
    at_least(params, 1, "max_batches", "max_in_flight")
    specs = parse_batches(params["batches"])
    if params["topology_key"] is not None:
        check_topology(params["topology_key"], specs)
    check_node_budget(params)
    url = urllib.parse.urlsplit(params["gate_url"] or "")
    if params["gate_url"] is not None and (url.scheme not in ("http", "https") or not url.netloc):
        raise RequestError(f"gate_url must be an http:// or https:// URL (got {params['gate_url']!r})")


run = batch_rollout  # what main() and the action (plugins/action/ds_batch_rollout.py) call


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_batch_rollout", run, check, **SPEC_RULES)


if __name__ == "__main__":
    main()
