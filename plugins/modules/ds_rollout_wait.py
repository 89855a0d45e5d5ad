#!/usr/bin/python
# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ds_rollout_wait
short_description: Wait for a DaemonSet rollout with the semantics of C(kubectl rollout status)
version_added: 0.1.0
description:
  - Waits until the rollout of a DaemonSet is complete, exactly when C(kubectl rollout status ds/NAME) says so
    (C(metadata.generation <= status.observedGeneration),
    C(status.updatedNumberScheduled >= status.desiredNumberScheduled) and
    C(status.numberAvailable >= status.desiredNumberScheduled), so C(minReadySeconds) counts), and returns
    the final status, the timeline of kubectl's messages and the elapsed time.
  - Watch-driven, not polling. It lists and watches the one DaemonSet (C(fieldSelector=metadata.name=NAME)),
    resumes the watch when the server ends it and re-lists after watch errors and C(410 Gone). It returns within
    a fraction of a second of completion, and its API requests do not grow with the number of nodes. Pods and
    events are listed only once a wait has failed, to report what blocks it.
  - "While the task runs, each new kubectl message is printed the moment it is observed (to standard error, so
    machine-readable output such as the C(json) callback stays intact), like C(kubectl rollout status) does. With a
    local connection (the usual one for Kubernetes modules) the wait runs in the controller process itself - one
    watch, no module process, no CPU while nothing happens. With another connection the module runs on that host and
    its lines are printed when it returns."
  - "Deliberate differences from kubectl: for the C(OnDelete) strategy kubectl fails with C(rollout status is only
    available for RollingUpdate strategy type); this module reports how many pods are outdated (O(on_delete=report))
    or waits until they have been deleted and replaced (O(on_delete=wait)). kubectl's C(--timeout=0) waits forever;
    here O(timeout=0) means C(--watch=false) (read the status once). The default timeout is 300 seconds, not forever.
    O(progress_deadline) and the RV(blockers) report have no kubectl equivalent."
  - "Unhealthy nodes (O(unhealthy_node_budget)): kubectl reports success when the controller has dropped a NotReady
    or unreachable node from C(desiredNumberScheduled) although the DaemonSet targets it and it runs no new pod;
    this module does not, unless the node fits the budget. So one compact table of the nodes is read when kubectl's
    rule is met (and, with a budget, when the pods still missing could all be on unhealthy nodes)."
  - "RBAC: C(list) and C(watch) on C(daemonsets) (API group C(apps)) in O(namespace) are required.
    Optional: C(list) on C(controllerrevisions) (group C(apps)) for RV(revision), C(list) on C(pods) and C(events)
    for RV(blockers), C(list) on C(nodes) for O(unhealthy_node_budget); without them the module still works and
    says what it could not read. A missing required verb
    fails with a C(forbidden) message naming the verb, the resource and the namespace."
author:
  - kubeops.daemonset contributors (@kubeops)
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset._daemonset
  - kubeops.daemonset._wait.node_budget
  - kubeops.daemonset._attributes
  - kubeops.daemonset._attributes.actiongroup
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode waits and reports exactly as a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The module never changes anything.
options:
  timeout:
    description:
      - Seconds to wait for the rollout to complete; the task fails when they run out
        (C(timed out waiting for the condition)) and names what blocks the rollout in RV(blockers).
      - V(0) reads the status once and returns it without waiting, like C(kubectl rollout status --watch=false).
    type: int
    default: 300
  progress_deadline:
    description:
      - Fail early when none of the status counters (desired, current, updated, available, ready, unavailable,
        misscheduled) nor the observed generation has changed for this many seconds - the progress deadline
        that DaemonSets, unlike Deployments, do not have.
      - Unset, only O(timeout) applies.
    type: int
  on_delete:
    description:
      - What to do when the DaemonSet uses the C(OnDelete) update strategy, where a pod is updated only when
        someone deletes it.
      - V(report) returns at once (not an error) with the number of outdated pods in RV(status.outdated).
      - V(wait) waits until all pods are updated and available, as for C(RollingUpdate).
    type: str
    choices: [report, wait]
    default: report
  print_progress:
    description:
      - Print each new kubectl message while the task runs (standard error).
      - V(false) prints nothing; the result, timeline included, is the same.
    type: bool
    default: true
  bake:
    description:
      - Once the rollout is complete, seconds it must stay so with no pod restarted or replaced on its node (a bake
        time, as between the waves of a fleet update); a breach fails the task with RV(outcome=bake_failed) naming
        it. The state is read every 2 seconds.
      - V(0) ends the task when the rollout is complete.
    type: int
    default: 0
    version_added: 0.3.0
  template_generation:
    description:
      - The pod template this wait is for, as RV(kubeops.daemonset.ds_update#module:template_generation) returned it
        (the DaemonSet's C(deprecated.daemonset.template.generation) annotation, which counts template changes).
      - When another writer changes the template during the wait, the task fails with RV(outcome=superseded) naming
        the template now rolling out, instead of reporting someone else's rollout as this one's.
    type: int
notes:
  - The timeline has one entry per change of kubectl's message, as kubectl prints them; the counters in
    RV(status) also change without a new message (for example C(ready) during C(minReadySeconds)).
  - The DaemonSet controller reports no progress deadline and no failure condition; a rollout blocked by a bad
    image stays at C(N out of M new pods have been updated) forever. Use O(progress_deadline) to fail fast.
seealso:
  - name: kubectl rollout status
    description: The kubectl command whose semantics this module reproduces.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_status/
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
---
- name: Wait until the fluentd DaemonSet has rolled out (at most 10 minutes, fail after 2 minutes without progress)
  kubeops.daemonset.ds_rollout_wait:
    name: fluentd-elasticsearch
    namespace: kube-system
    timeout: 600
    progress_deadline: 120
  register: rollout

- name: Read the rollout status once, without waiting (kubectl rollout status --watch=false)
  kubeops.daemonset.ds_rollout_wait:
    name: fluentd-elasticsearch
    namespace: kube-system
    timeout: 0
  register: rollout_status

- name: Wait for an OnDelete DaemonSet until someone has deleted every outdated pod
  kubeops.daemonset.ds_rollout_wait:
    name: node-agent
    namespace: monitoring
    on_delete: wait
    timeout: 3600

- name: Wait for the CNI agent, letting the rollout leave up to 2% of the nodes behind when they are dead
  kubeops.daemonset.ds_rollout_wait:
    name: cilium
    namespace: kube-system
    unhealthy_node_budget: 2%
    progress_deadline: 300

- name: Set the connection once for every module of the collection
  module_defaults:
    group/kubeops.daemonset.all:
      kubeconfig: ~/.kube/prod
      context: prod-eu
  block:
    - name: Wait for the rollout
      kubeops.daemonset.ds_rollout_wait:
        name: fluentd-elasticsearch
        namespace: kube-system
"""

RETURN = r"""
rollout_complete:
  description:
    - Whether the rollout is complete by kubectl's rule - and on every node the DaemonSet targets, except the unhealthy
      ones O(unhealthy_node_budget) lets it leave behind (RV(skipped_nodes)).
  returned: always
  type: bool
  sample: true
outcome:
  description:
    - Why the module returned. V(complete); V(status) (O(timeout=0)); V(on_delete) (OnDelete strategy with
      O(on_delete=report)); V(timeout); V(progress_deadline);
      V(not_found); V(deleted) (the DaemonSet was deleted during the wait); V(superseded) (another writer changed the
      pod template, see O(template_generation)); V(bake_failed) (see O(bake)).
  returned: always
  type: str
  sample: complete
baked:
  description: The rollout stayed complete for O(bake) seconds with no pod restarted or replaced.
  returned: with O(bake) and a complete rollout
  type: bool
bake_breaches:
  description: What broke the bake (a pod restarted or replaced, a pod unavailable, another template).
  returned: when the bake failed
  type: list
  elements: str
message:
  description:
    - kubectl's last message; with RV(skipped_nodes), C(daemon set "NAME" successfully rolled out on every healthy
      node).
  returned: when the DaemonSet exists
  type: str
  sample: daemon set "fluentd-elasticsearch" successfully rolled out
status:
  description: The last status seen.
  returned: when the DaemonSet exists
  type: dict
  contains:
    message:
      description: kubectl's message for this status.
      type: str
    observed:
      description: Whether the controller has observed the latest spec (C(generation <= observedGeneration)).
      type: bool
    desired:
      description: C(status.desiredNumberScheduled), the nodes that should run a pod.
      type: int
    current:
      description: C(status.currentNumberScheduled).
      type: int
    updated:
      description: C(status.updatedNumberScheduled), the nodes running a pod of the current revision.
      type: int
    available:
      description: C(status.numberAvailable), pods ready for at least C(minReadySeconds).
      type: int
    ready:
      description: C(status.numberReady).
      type: int
    unavailable:
      description: C(status.numberUnavailable).
      type: int
    misscheduled:
      description: C(status.numberMisscheduled).
      type: int
    outdated:
      description: Pods still to be updated (C(desired - updated)); with C(OnDelete) they are updated only when deleted.
      type: int
    generation:
      description: C(metadata.generation).
      type: int
    observed_generation:
      description: C(status.observedGeneration).
      type: int
    strategy:
      description: The update strategy type, C(RollingUpdate) or C(OnDelete).
      type: str
  sample:
    message: daemon set "fluentd-elasticsearch" successfully rolled out
    observed: true
    desired: 3
    current: 3
    updated: 3
    available: 3
    ready: 3
    unavailable: 0
    misscheduled: 0
    outdated: 0
    generation: 2
    observed_generation: 2
    strategy: RollingUpdate
timeline:
  description: One entry per change of kubectl's message, with the time (UTC, ISO 8601) it was observed.
  returned: always
  type: list
  elements: dict
  sample:
    - time: "2026-01-05T10:00:00.120Z"
      message: >-
        Waiting for daemon set "fluentd-elasticsearch" rollout to finish: 0 out of 3 new pods have been updated...
    - time: "2026-01-05T10:00:04.530Z"
      message: daemon set "fluentd-elasticsearch" successfully rolled out
elapsed:
  description: Seconds the module waited.
  returned: always
  type: float
  sample: 4.41
revision:
  description:
    - The DaemonSet's current revision (the newest ControllerRevision holding the live template), or V(null) when
      it is not recorded yet or the credentials cannot list ControllerRevisions.
  returned: always
  type: dict
  contains:
    number:
      description: The revision number (C(.revision)), as C(kubectl rollout history) shows it.
      type: int
    name:
      description: The ControllerRevision's name.
      type: str
    hash:
      description: Its C(controller-revision-hash); pods with this label are updated.
      type: str
  sample: {number: 2, name: fluentd-elasticsearch-6b8f4c9d7, hash: 6b8f4c9d7}
skipped_nodes:
  description:
    - The unhealthy nodes the complete rollout left behind within O(unhealthy_node_budget) (a warning names them
      too), each with its C(node), its C(trouble) (V(NotReady), V(unreachable), V(cordoned)) and the state of its
      C(pod) (V(no pod), V(old pod terminating), V(old revision), V(new pod not available (REASON))).
  returned: always
  type: list
  elements: dict
  sample:
    - {node: kwok-worker-3, trouble: unreachable, pod: old pod terminating}
blockers:
  description: What keeps the rollout from finishing, read when the wait failed on O(timeout) or O(progress_deadline).
  returned: on failure by timeout or progress_deadline
  type: dict
  contains:
    summary:
      description: One line naming the causes.
      type: str
    missing_pods:
      description: Nodes that should run a pod but have none (C(desired - current)).
      type: int
    not_updated:
      description: Nodes running an outdated pod (C(count) and the first C(nodes)).
      type: dict
    not_available:
      description: Nodes whose updated pod is not available (C(count) and the first C(nodes)).
      type: dict
    pod_problems:
      description:
        - Why pods are not available, one entry per reason (container waiting reasons such as C(ErrImagePull),
          C(ImagePullBackOff), C(CrashLoopBackOff), C(Unschedulable), C(Terminating), C(MinReadySeconds)) with
          C(count), the first pod's C(message), the first C(pods) and C(nodes), C(images) and restart counts,
          most frequent first - the grouping M(kubeops.daemonset.ds_diagnose) uses.
      type: list
      elements: dict
    warning_events:
      description: Recent Warning events about the DaemonSet or its pods, grouped by reason and message, newest first.
      type: list
      elements: dict
    unhealthy_nodes:
      description:
        - Unhealthy nodes the DaemonSet targets that lack the new pod, as in RV(skipped_nodes), over
          O(unhealthy_node_budget); the summary names them first.
      type: list
      elements: dict
    unhealthy_nodes_only:
      description:
        - Set with RV(blockers.unhealthy_nodes) - V(true) when no pod problem holds the rollout, only those nodes.
          The new template is not at fault then, and rolling it back would not help.
      type: bool
    errors:
      description: Pods or events that could not be listed (for example forbidden by RBAC).
      type: list
      elements: str
  sample:
    summary: "2 nodes with an outdated pod; 1 node with an updated pod that is not available; pods: ImagePullBackOff x1"
    missing_pods: 0
    not_updated: {count: 2, nodes: [kwok-worker-2, kwok-worker-3]}
    not_available: {count: 1, nodes: [kwok-worker-1]}
    pod_problems:
      - reason: ImagePullBackOff
        message: Back-off pulling image "fluentd:does-not-exist"
        count: 1
        pods: [fluentd-elasticsearch-x7k2p]
        nodes: [kwok-worker-1]
    warning_events:
      - reason: Failed
        message: 'Failed to pull image "fluentd:does-not-exist"'
        count: 3
        objects: [Pod/fluentd-elasticsearch-x7k2p]
        last_seen: "2026-01-05T10:01:00Z"
"""

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.wait import RolloutWait, bake
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import (
    DAEMONSET_ARG_SPEC,
    NODE_BUDGET_ARG_SPEC,
    Request,
    at_least,
    check_node_budget,
    run_module,
)

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
    "timeout": {"type": "int", "default": 300},
    "progress_deadline": {"type": "int"},
    "on_delete": {"type": "str", "choices": ["report", "wait"], "default": "report"},
    "print_progress": {"type": "bool", "default": True},
    "template_generation": {"type": "int"},
    "bake": {"type": "int", "default": 0},
    **NODE_BUDGET_ARG_SPEC,
}


def check(params: dict[str, t.Any]) -> None:
    at_least(params, 0, "timeout", "bake")
    at_least(params, 1, "progress_deadline", "template_generation")
    check_node_budget(params)


def run(request: Request, api: Api) -> dict[str, t.Any]:
    params = request.params
    wait = RolloutWait(
        api,
        params["namespace"],
        params["name"],
        timeout=params["timeout"],
        progress_deadline=params["progress_deadline"],
        on_delete=params["on_delete"],
        template_generation=params["template_generation"],
        unhealthy_node_budget=params["unhealthy_node_budget"],
        on_message=(lambda status: request.say(status["message"])) if params["print_progress"] else None,
        on_note=request.say if params["print_progress"] else None,
    )
    result = wait.run()
    if params["bake"] and result["rollout_complete"]:
        result = bake(api, wait.daemonset, result, params["bake"], request.say if params["print_progress"] else None)
    return result


def main() -> None:
    run_module(ARGUMENT_SPEC, "ds_rollout_wait", run, check)


if __name__ == "__main__":
    main()
