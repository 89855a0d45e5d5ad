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
  - While the task runs, the action plugin prints the plan and one line per batch (to standard error, so
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
        of waiting for O(batch_timeout). A container restart always fails the gate at once.
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
      - Seconds to wait after a passed batch before the next one (time for dashboards and alerts to react).
      - For a manual approval use O(max_batches) instead (see the notes).
    type: int
    default: 0
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
  return_after_batch:
    description:
      - Return after each batch with RV(outcome=in_progress) when more batches follow. The action plugin uses this
        to print each batch as it finishes; there is no need to set it in a playbook.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - kubeops.daemonset.daemonset
  - kubeops.daemonset.attributes
  - kubeops.daemonset.attributes.actiongroup
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
      continue); V(in_progress) (O(return_after_batch)); V(rolled_back) (a gate failed and the touched nodes were
      rolled back; the task fails); V(failed) (a gate failed, no rollback; the task fails).
  returned: always
  type: str
  sample: complete
msg:
  description: What happened, or why the rollout stopped.
  returned: always
  type: str
  sample: "daemon set fluentd-elasticsearch: 50 of 50 nodes updated in 4 batches; strategy RollingUpdate restored"
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
        - One entry per batch - C(batch) (number), C(spec) (as given), C(target) (nodes updated after it), C(nodes).
      type: list
      elements: dict
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
      description: Nodes whose pod was replaced.
      type: list
      elements: str
    gate:
      description: V(passed) or V(failed).
      type: str
    reasons:
      description: Why the gate failed (per node), empty when it passed.
      type: list
      elements: str
    elapsed:
      description: Seconds from deleting the old pods to the gate's verdict.
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
  description: The plan as the action plugin prints it, one line per batch.
  returned: always
  type: list
  elements: str
log:
  description: The progress lines the action plugin prints (one or two per batch, the rollback, the end).
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the run took.
  returned: always
  type: float
diff:
  description: The live and the new pod template as YAML.
  returned: in diff mode, when the template changes
  type: dict
"""

import copy
import datetime
import time
import typing as t

from ansible.module_utils.urls import open_url
from ansible_collections.kubeops.daemonset.plugins.module_utils import _batch, _history
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import (
    DAEMONSET_ARG_SPEC,
    Api,
    K8sError,
    build_module,
    run_module,
    selector_string,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import watch_until

ARGUMENT_SPEC = {
    **DAEMONSET_ARG_SPEC,
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
    "return_after_batch": {"type": "bool", "default": False},
}

Obj = dict[str, t.Any]
POLL_SECONDS = 0.5
OBSERVE_SECONDS = 60


class GateFailed(Exception):
    """A batch failed its health gate; ``reasons`` per node."""

    def __init__(self, batch: Obj, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.batch, self.reasons = batch, reasons


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class BatchRollout:
    """One run: read, plan, start (one write), batches with gates, then finish or roll back."""

    def __init__(self, module, api: Api) -> None:
        self.module, self.api = module, api
        self.params = module.params
        self.namespace, self.name = self.params["namespace"], self.params["name"]
        self.start = time.monotonic()
        self.plan_lines: list[str] = []
        self.log: list[str] = []
        self.changed = False
        self.executed: list[Obj] = []
        self.touched: list[str] = []

    # --- reading -------------------------------------------------------------------------------

    def read(self) -> tuple[Obj, list[Obj]]:
        daemonset = self.api.require_daemonset(self.namespace, self.name)
        return daemonset, self.api.owned_revisions(daemonset)

    def pods(self, daemonset: Obj) -> dict[str, Obj]:
        pods = self.api.list_pods(self.namespace, selector_string(daemonset["spec"]["selector"]))
        return _batch.pods_by_node(daemonset, pods)

    def say(self, line: str) -> None:
        self.log.append(line)

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> Obj:
        specs = _batch.parse_batches(self.params["batches"])
        daemonset, revisions = self.read()
        state = _batch.read_state(daemonset)
        live = daemonset["spec"]["template"]
        patch = _batch.template_patch(live, self.params["template"], self.params["images"])
        desired = live
        if patch is not None:  # the server applies (and defaults) it: compared with the live one semantically
            desired = self.api.patch_daemonset(self.namespace, self.name, {"spec": {"template": patch}}, dry_run=True)
            desired = desired["spec"]["template"]
        template_changes = not _history.templates_equal(live, desired)
        if state is None:
            previous = _history.current_revision(daemonset, revisions) if template_changes else _previous(revisions)
            state = _batch.new_state(daemonset, previous, _utcnow().isoformat(timespec="seconds"))
            in_progress = False
        else:
            in_progress = True
        planned = copy.deepcopy(daemonset)
        planned["spec"]["template"] = desired
        target = _history.current_revision(planned, revisions)  # None: the controller will create it
        nodes = _batch.eligible_nodes(planned, self.api.list_nodes())
        plan = _batch.plan_batches(specs, nodes, self.pods(daemonset), target and _history.revision_hash(target))
        self.say_plan(plan, state, target, in_progress)
        result = self.result("planned", plan, state, target)
        if self.module._diff and template_changes:
            result["diff"] = {"before": _history.to_yaml(live), "after": _history.to_yaml(desired)}
        if not template_changes and not in_progress and not plan["pending"]:
            return dict(result, outcome="unchanged", msg=f"{self.what()}: every eligible node runs the live template")
        if self.module.check_mode:
            would = f"would update {plan['pending']} of {plan['total']} nodes"
            if not plan["pending"]:
                would = "would check the updated pods and restore the original update strategy"
            return dict(result, changed=True, msg=f"{self.what()}: {would}")
        daemonset, target = self.begin(daemonset, patch if template_changes else None, state, in_progress)
        plan = _batch.plan_batches(specs, nodes, self.pods(daemonset), _history.revision_hash(target))
        result.update(plan=plan, revision=_revisions(state, target))
        return self.batches(result, daemonset, plan, state, target)

    def what(self) -> str:
        return f"daemon set {self.namespace}/{self.name}"

    def say_plan(self, plan: Obj, state: Obj, target: Obj | None, in_progress: bool) -> None:
        if in_progress:
            self.plan_lines.append(f"{self.what()}: continuing the batch rollout started {state['started']}")
        revision = f"revision {target['revision']}" if target is not None else "a new revision"
        self.plan_lines.append(f"{self.what()}: plan to {revision} over {plan['total']} eligible nodes")
        self.plan_lines.extend(_batch.plan_lines(plan))

    def begin(self, daemonset: Obj, patch: Obj | None, state: Obj, in_progress: bool) -> tuple[Obj, Obj]:
        """The one write (new template, OnDelete, state) unless this continues a rollout; then the target revision."""
        if patch is not None or not in_progress:
            body = _batch.start_patch(
                patch, state, daemonset["metadata"]["resourceVersion"], self.params["change_cause"]
            )
            try:
                self.api.patch_daemonset(self.namespace, self.name, body)
            except K8sError as exc:
                if exc.status == 409:
                    raise K8sError(
                        "it changed while the batch rollout was starting (409 Conflict); nothing was "
                        "overwritten, run again",
                        409,
                    ) from exc
                raise
            self.changed = True
            self.say(f"{self.what()}: switched to OnDelete and applied the new template")
        daemonset = self.wait_observed()
        revisions = self.read()[1]
        target = _history.current_revision(daemonset, revisions)
        if target is None:
            raise K8sError("the controller did not record a revision for the new template")
        return daemonset, target

    def wait_observed(self) -> Obj:
        seen: Obj = {}

        def handle(daemonset: Obj | None) -> bool:
            if daemonset is None:
                raise K8sError("it was deleted during the batch rollout", 404)
            seen["daemonset"] = daemonset
            status = daemonset.get("status") or {}
            return int(daemonset["metadata"]["generation"]) <= int(status.get("observedGeneration") or 0)

        deadline = time.monotonic() + OBSERVE_SECONDS
        if not watch_until(self.api, "daemonsets", self.namespace, self.name, handle, lambda: deadline):
            raise K8sError(f"the controller did not observe the change within {OBSERVE_SECONDS}s")
        return seen["daemonset"]

    # --- batches ---------------------------------------------------------------------------------

    def batches(self, result: Obj, daemonset: Obj, plan: Obj, state: Obj, target: Obj) -> Obj:
        target_hash = _history.revision_hash(target)
        updated = list(plan["done"])
        todo = [batch for batch in plan["batches"] if batch["nodes"]]
        limit = self.params["max_batches"]
        try:
            if not todo:  # an interrupted run may have stopped during the last gate: check before finishing
                self.gate(daemonset, {"batch": 0, "spec": "check", "nodes": []}, updated, target_hash, time.monotonic())
            for position, batch in enumerate(todo, start=1):
                self.run_batch(daemonset, batch, updated, target_hash, len(plan["batches"]))
                updated.extend(batch["nodes"])
                if position == len(todo):
                    break
                if limit is not None and position >= limit:
                    left = sum(len(each["nodes"]) for each in todo[position:])
                    return self.stop(
                        result, "paused", f"paused after {limit} batches (max_batches), {left} nodes left; run again"
                    )
                if self.params["pause_seconds"]:
                    self.say(f"pausing {self.params['pause_seconds']}s before the next batch")
                    time.sleep(self.params["pause_seconds"])
                if self.params["return_after_batch"]:
                    return self.stop(result, "in_progress", f"batch {batch['batch']} passed")
        except GateFailed as failure:
            return self.failed(result, failure, state, target_hash)
        self.finish(state)
        strategy = state["strategy"].get("type", "RollingUpdate")
        return self.stop(
            result,
            "complete",
            f"{plan['total']} of {plan['total']} nodes on revision {target['revision']}; strategy {strategy} restored",
        )

    def run_batch(self, daemonset: Obj, batch: Obj, updated: list[str], target_hash: str, count: int) -> None:
        head = f"batch {batch['batch']}/{count} ({batch['spec']})"
        started = time.monotonic()
        by_node = self.pods(daemonset)
        deleted = 0
        for node in batch["nodes"]:
            pod = by_node.get(node)
            if pod is not None and _batch.pod_hash(pod) != target_hash:
                deleted += self.api.delete_pod(self.namespace, pod["metadata"]["name"], pod["metadata"]["uid"])
        self.touched.extend(batch["nodes"])
        self.changed = True
        self.say(f"{head}: {_batch.plural(deleted, 'old pod')} deleted on {_batch.node_list(batch['nodes'])}")
        self.gate(daemonset, batch, updated + batch["nodes"], target_hash, started, head)

    def gate(
        self, daemonset: Obj, batch: Obj, nodes: list[str], target_hash: str, started: float, head: str = "check"
    ) -> None:
        """Wait until the updated pods on NODES pass the gate (then the URL); raise GateFailed."""
        baseline: dict[str, int] = {}
        deadline = started + self.params["batch_timeout"]
        probe_error = None
        while True:
            by_node = self.pods(daemonset)
            baseline = _batch.record_baseline(baseline, by_node, nodes)
            verdict = _batch.evaluate_gate(
                by_node,
                nodes,
                target_hash,
                self.params["min_available_seconds"],
                _utcnow(),
                baseline,
                self.params["fail_fast"],
            )
            if verdict["state"] == _batch.PASSED:
                probe_error = self.probe()
                if probe_error is None:
                    break
            elapsed = round(time.monotonic() - started, 1)
            if verdict["state"] == _batch.FAILED:
                self.record(batch, "failed", verdict["reasons"], elapsed)
                self.say(f"{head}: gate FAILED after {elapsed}s: {'; '.join(verdict['reasons'][:3])}")
                raise GateFailed(batch, verdict["reasons"])
            if time.monotonic() >= deadline:
                reasons = verdict["waiting"] or [f"gate_url: {probe_error}"]
                reasons = [f"not healthy within batch_timeout={self.params['batch_timeout']}s: {r}" for r in reasons]
                self.record(batch, "failed", reasons, elapsed)
                self.say(f"{head}: gate FAILED after {elapsed}s: {'; '.join(reasons[:3])}")
                raise GateFailed(batch, reasons)
            time.sleep(min(max(verdict["wait"], POLL_SECONDS), 2.0) if verdict["state"] == _batch.WAITING else 1.0)
        elapsed = round(time.monotonic() - started, 1)
        self.record(batch, "passed", [], elapsed)
        self.say(
            f"{head}: gate passed after {elapsed}s ({_batch.plural(len(nodes), 'updated pod')} Ready for "
            f">= {self.params['min_available_seconds']}s)"
        )

    def probe(self) -> str | None:
        """None when O(gate_url) is unset or answers 2xx, else what went wrong."""
        url = self.params["gate_url"]
        if not url:
            return None
        try:
            response = open_url(url, timeout=10)
            status = response.getcode()
        except Exception as exc:  # HTTPError (non-2xx), URLError, timeouts: all mean "not healthy yet"
            return f"{url}: {exc}"
        return None if 200 <= status < 300 else f"{url} answered {status}"

    def record(self, batch: Obj, gate: str, reasons: list[str], elapsed: float) -> None:
        if batch["batch"]:
            self.executed.append(
                {"batch": batch["batch"], "spec": batch["spec"], "nodes": batch["nodes"], "gate": gate,
                 "reasons": reasons, "elapsed": elapsed}
            )  # fmt: skip

    # --- the end -------------------------------------------------------------------------------

    def outcome(self) -> Obj:
        """The run's result with its elapsed time; ``failed`` when a gate failed (rolled back or left as it was)."""
        result = self.run()
        result["elapsed"] = round(time.monotonic() - self.start, 3)
        return dict(result, failed=result["outcome"] in ("rolled_back", "failed"))

    def progress(self) -> Obj:
        """How far the run got, for the report of an error that ended it."""
        return {"plan_lines": self.plan_lines, "log": self.log, "touched_nodes": self.touched, "changed": self.changed}

    def finish(self, state: Obj) -> None:
        """Restore the original strategy and drop the state (one write, conditioned on what was read)."""
        daemonset = self.api.require_daemonset(self.namespace, self.name)
        self.api.patch_daemonset(
            self.namespace, self.name, _batch.finish_patch(state, daemonset["metadata"]["resourceVersion"])
        )
        self.changed = True

    def failed(self, result: Obj, failure: GateFailed, state: Obj, target_hash: str) -> Obj:
        why = f"batch {failure.batch['batch']} ({failure.batch['spec']}) failed its gate: {failure}"
        if not self.params["rollback_on_failure"]:
            return self.stop(result, "failed", f"{why}; left as it is (rollback_on_failure=false), OnDelete kept")
        rollback = self.roll_back(state, target_hash, failure.batch["nodes"])
        self.finish(state)
        result["rollback"] = rollback
        done = "rolled back" if rollback["complete"] else "rollback NOT complete (see rollback.waiting)"
        nodes = _batch.node_list(rollback["nodes"])
        strategy = state["strategy"].get("type", "RollingUpdate")
        return self.stop(
            result,
            "rolled_back",
            f"{why}; {done} {nodes} to revision {rollback['revision']}; strategy {strategy} restored",
        )

    def roll_back(self, state: Obj, target_hash: str, batch_nodes: list[str]) -> Obj:
        """The previous template back (its revision's stored patch), then the pods of the touched nodes only."""
        previous = state.get("previous")
        daemonset, revisions = self.read()
        stored = [rev for rev in revisions if previous and rev["metadata"]["name"] == previous["name"]]
        if not stored:
            gone = f"revision {previous['revision']} ({previous['name']}) is gone" if previous else "there is none"
            raise K8sError(
                f"a gate failed and there is no previous revision to roll back to ({gone}; "
                f"{_history.describe_available(revisions)}); the DaemonSet is left on OnDelete"
            )
        self.api.patch_daemonset(
            self.namespace, self.name, _history.undo_patch(stored[0], daemonset["metadata"]["resourceVersion"])
        )
        daemonset = self.wait_observed()
        by_node = self.pods(daemonset)
        touched = _batch.touched_nodes(by_node, target_hash, batch_nodes)
        for node in touched:
            pod = by_node.get(node)
            if pod is not None and _batch.pod_hash(pod) != previous["hash"]:
                self.api.delete_pod(self.namespace, pod["metadata"]["name"], pod["metadata"]["uid"])
        self.touched = sorted(set(self.touched) | set(touched), key=_batch.natural_key)
        self.say(f"rolling back {_batch.node_list(touched)} to revision {previous['revision']}")
        deadline = time.monotonic() + self.params["batch_timeout"]
        waiting = touched
        while waiting and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            waiting = _batch.rollback_ready(self.pods(daemonset), touched, previous["hash"])
        return {"nodes": touched, "revision": previous["revision"], "complete": not waiting, "waiting": waiting}

    def stop(self, result: Obj, outcome: str, msg: str) -> Obj:
        planned = [node for batch in result["plan"]["batches"] for node in batch["nodes"]]
        if outcome != "in_progress":
            self.say(f"{self.what()}: {msg}")
        result.update(
            outcome=outcome,
            msg=f"{self.what()}: {msg}",
            changed=self.changed,
            batches=self.executed,
            touched_nodes=self.touched,
            untouched_nodes=[node for node in planned if node not in self.touched],
        )
        return result

    def result(self, outcome: str, plan: Obj, state: Obj, target: Obj | None) -> Obj:
        return {
            "changed": False,
            "outcome": outcome,
            "msg": "",
            "plan": plan,
            "batches": [],
            "touched_nodes": [],
            "untouched_nodes": [n for batch in plan["batches"] for n in batch["nodes"]],
            "revision": _revisions(state, target),
            "strategy": state["strategy"],
            "plan_lines": self.plan_lines,
            "log": self.log,
        }


def _previous(revisions: list[Obj]) -> Obj | None:
    """Without a template change: the revision before the newest (kubectl's undo target)."""
    return revisions[-2] if len(revisions) >= 2 else None


def _revisions(state: Obj, target: Obj | None) -> Obj:
    previous = state.get("previous")
    return {
        "previous": {"number": previous["revision"], "hash": previous["hash"]} if previous else None,
        "target": {"number": int(target["revision"]), "hash": _history.revision_hash(target)} if target else None,
    }


def main() -> None:
    module = build_module(ARGUMENT_SPEC, mutually_exclusive=[("template", "images")])
    for option in ("min_available_seconds", "batch_timeout", "pause_seconds"):
        if module.params[option] < 0:
            module.fail_json(msg=f"{option} must be >= 0")
    if module.params["max_batches"] is not None and module.params["max_batches"] < 1:
        module.fail_json(msg="max_batches must be at least 1")
    rollouts: list[BatchRollout] = []  # the run once connected: a failure reports how far it got

    def run(module, api: Api) -> Obj:
        rollouts.append(BatchRollout(module, api))
        return rollouts[0].outcome()

    def failure(exc: Exception) -> Obj:
        progress = rollouts[0].progress() if rollouts else {}
        return {"msg": f"daemon set {module.params['namespace']}/{module.params['name']}: {exc}", **progress}

    run_module(module, "ds_batch_rollout", run, errors=(_batch.BatchError,), failure=failure)


if __name__ == "__main__":
    main()
