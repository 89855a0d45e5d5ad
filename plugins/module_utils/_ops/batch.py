# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A node-batch rollout of a vanilla DaemonSet: plan, one start write, batches with health gates, then the end
(the original strategy back) or a rollback of the touched nodes. The rules are ``_batch``'s.

One run at a time: the run claims the rollout in its state annotation and renews the claim while it works, so a
second run (from anywhere) is refused while the first lives; a run whose controller process is gone stops at
its next request. Transient API failures (a restarting API server) are waited out within the batch's time.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import copy
import os
import socket
import time
import typing as t
import uuid

from ansible_collections.kubeops.daemonset.plugins.module_utils import _batch
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import (
    current_revision,
    describe_available,
    revision_hash,
    select_revision,
    undo_patch,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import Obj, RequestError, pod_hash
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import daemonset_and_revisions, pods_of
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.write import check_owners
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import eligible_nodes
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import OperationFailed, Request, pid_alive
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import (
    pod_template_of,
    template_patch,
    templates_equal,
    to_yaml,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._unhealthy import dead_targets, verdict
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    counted_names,
    natural_key,
    plural,
    utcnow,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import watch_until

POLL_SECONDS = 0.5
OBSERVE_SECONDS = 60
RETRY_SECONDS = 1.0


class GateFailed(Exception):
    """A batch failed its health gate; ``reasons`` per node."""

    def __init__(self, batch: Obj, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.batch, self.reasons = batch, reasons


class BatchRollout:
    """One run: read, plan, start (one write), batches with gates, then finish or roll back."""

    def __init__(self, request: Request, api: Api) -> None:
        self.request, self.api, self.params = request, api, request.params
        self.namespace, self.name = self.params["namespace"], self.params["name"]
        self.what = f"DaemonSet {self.namespace}/{self.name}"
        self.started = time.monotonic()
        self.me = uuid.uuid4().hex
        self.renewed_at = 0.0
        self.plan_lines: list[str] = []
        self.log: list[str] = []
        self.changed = False
        self.executed: list[Obj] = []
        self.touched: list[str] = []

    # --- reading and saying ------------------------------------------------------------------

    def retrying(self, call: t.Callable[[], t.Any], until: float) -> t.Any:
        """CALL, retried on transient failures (no answer, 429, 5xx) until UNTIL (time.monotonic())."""
        while True:
            try:
                return call()
            except K8sError as exc:
                if not exc.transient or time.monotonic() + RETRY_SECONDS > until:
                    raise
            time.sleep(RETRY_SECONDS)

    def read(self) -> tuple[Obj, list[Obj]]:
        return self.retrying(lambda: daemonset_and_revisions(self.api, self.namespace, self.name),
                             time.monotonic() + OBSERVE_SECONDS)  # fmt: skip

    def pods_by_node(self, daemonset: Obj, until: float) -> dict[str, Obj]:
        return _batch.pods_by_node(daemonset, self.retrying(lambda: pods_of(self.api, daemonset), until))

    def say(self, line: str, plan: bool = False) -> None:
        (self.plan_lines if plan else self.log).append(line)
        self.request.say(line)

    def progress(self) -> Obj:
        """How far the run got, for the report of an error that ended it."""
        return {"plan_lines": self.plan_lines, "log": self.log, "touched_nodes": self.touched, "changed": self.changed}

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> Obj:
        specs = _batch.parse_batches(self.params["batches"])
        daemonset, revisions = self.read()
        state = _batch.read_state(daemonset)
        in_progress = state is not None
        busy = _batch.active_owner(state or {}, self.me, socket.gethostname(), utcnow(), pid_alive)
        if busy:
            raise RequestError(
                f"another batch rollout of it is running (on {busy.get('host')}, process {busy.get('pid')}, claim "
                f"renewed {busy.get('renewed')}); wait for it to end, or {_batch.LEASE_SECONDS}s after its last "
                "renewal if it was killed elsewhere"
            )
        live = daemonset["spec"]["template"]
        template = pod_template_of(self.params["template"], "template") if self.params["template"] is not None else None
        patch = template_patch(live, template=template, images=self.params["images"])
        desired = live
        if patch is not None:  # the server applies (and defaults) it: compared with the live one semantically
            dry = self.api.patch("daemonsets", self.namespace, self.name, {"spec": {"template": patch}}, dry_run=True)
            desired = dry["spec"]["template"]
        template_changes = not templates_equal(live, desired)
        owners = check_owners(self.request, daemonset, "a batch rollout") if template_changes else []
        if state is None:
            previous = current_revision(daemonset, revisions) if template_changes else _previous(revisions)
            state = _batch.new_state(daemonset, previous, utcnow().isoformat(timespec="seconds"))
        planned = copy.deepcopy(daemonset)
        planned["spec"]["template"] = desired
        target = current_revision(planned, revisions)  # None: the controller will create it
        nodes, skipped = self.plan_nodes(planned)
        plan = _batch.plan_batches(specs, nodes, self.pods_by_node(daemonset, 0), target and revision_hash(target))
        self.say_plan(plan, state, target, in_progress)
        result = dict(self.result("planned", plan, state, target), owners=owners, skipped_nodes=skipped)
        if self.request.diff and template_changes:
            result["diff"] = {"before": to_yaml(live), "after": to_yaml(desired)}
        if not template_changes and not in_progress and not plan["pending"]:
            return dict(result, outcome="unchanged", msg=f"{self.what}: every eligible node runs the live template")
        if self.request.check_mode:
            would = f"would update {plan['pending']} of {plan['total']} nodes"
            if not plan["pending"]:
                would = "would check the updated pods and restore the original update strategy"
            return dict(result, changed=True, msg=f"{self.what}: {would}")
        self.can_delete_pods(daemonset)
        daemonset, target, state = self.begin(daemonset, patch if template_changes else None, state, in_progress)
        plan = _batch.plan_batches(specs, nodes, self.pods_by_node(daemonset, 0), revision_hash(target))
        result.update(plan=plan, revision=_revisions(state, target))
        return self.run_batches(result, daemonset, plan, state, target)

    def plan_nodes(self, planned: Obj) -> tuple[list[Obj], list[Obj]]:
        """The nodes to plan over, and the dead ones left out within ``unhealthy_node_budget`` (RequestError over
        it: nothing is written)."""
        every_node = self.api.list_items("nodes", None)
        dead = dead_targets(planned, every_node)
        names = {entry["node"] for entry in dead}
        nodes = [node for node in eligible_nodes(planned, every_node) if node["metadata"]["name"] not in names]
        if not dead:
            return nodes, []
        judged = verdict({"targets": len(nodes) + len(dead), "pending": [], "skipped": dead, "max_unavailable": None},
                         self.params["unhealthy_node_budget"])  # fmt: skip
        if judged["over"]:
            raise RequestError(f"{judged['line']}: nothing was changed; repair or delete them, or raise the budget")
        self.say(f"{self.what}: {judged['line']}", plan=True)
        self.request.warn(f"{self.what}: the plan leaves out {judged['line']}")
        return nodes, dead

    def can_delete_pods(self, daemonset: Obj) -> None:
        """A dry-run delete of one of its pods: credentials that may not delete pods fail here (403 naming the
        verb), before the start write, instead of after it with the DaemonSet left on OnDelete."""
        pod = next(iter(self.pods_by_node(daemonset, 0).values()), None)
        if pod is not None:
            self.api.delete("pods", self.namespace, pod["metadata"]["name"], dry_run=True)

    def say_plan(self, plan: Obj, state: Obj, target: Obj | None, in_progress: bool) -> None:
        if in_progress:
            self.say(f"{self.what}: continuing the batch rollout started {state['started']}", plan=True)
        revision = f"revision {target['revision']}" if target is not None else "a new revision"
        self.say(f"{self.what}: plan to {revision} over {plan['total']} eligible nodes", plan=True)
        for line in _batch.plan_lines(plan):
            self.say(line, plan=True)

    def begin(self, daemonset: Obj, patch: Obj | None, state: Obj, in_progress: bool) -> tuple[Obj, Obj, Obj]:
        """The one write (new template, OnDelete, the state with this run's claim), or for a rollout in progress
        the claim alone; then the DaemonSet as the controller observed it and the target revision."""
        state = dict(state, owner=_batch.owner_record(self.me, socket.gethostname(), os.getpid(), utcnow()))
        if patch is not None or not in_progress:
            body = _batch.start_patch(patch, state, daemonset["metadata"]["resourceVersion"],
                                      self.params["change_cause"])  # fmt: skip
            self.say(f"{self.what}: switched to OnDelete and applied the new template")
        else:
            body = _batch.state_patch(state, daemonset["metadata"]["resourceVersion"])
        try:
            self.api.patch("daemonsets", self.namespace, self.name, body)
        except K8sError as exc:
            if exc.status == 409:
                raise K8sError(f"{self.what} changed while the batch rollout was starting (409 Conflict); nothing was "
                               "overwritten, run again", 409) from exc  # fmt: skip
            raise
        self.changed, self.renewed_at = True, time.monotonic()
        daemonset = self.wait_observed()
        target = current_revision(daemonset, self.read()[1])
        if target is None:
            raise K8sError(f"{self.what}: the controller did not record a revision for the new template")
        return daemonset, target, state

    def renew(self, state: Obj) -> None:
        """Renew this run's claim (every RENEW_SECONDS); stop when another run has taken the rollout over."""
        if time.monotonic() - self.renewed_at < _batch.RENEW_SECONDS:
            return
        daemonset, _revisions_now = self.read()
        current = _batch.read_state(daemonset) or {}
        if (current.get("owner") or {}).get("id") != self.me:
            raise K8sError(f"{self.what}: another batch rollout took this one over; this run stops here", 409)
        state["owner"] = _batch.owner_record(self.me, socket.gethostname(), os.getpid(), utcnow())
        self.retrying(lambda: self.api.patch("daemonsets", self.namespace, self.name,
                                             _batch.state_patch(state, daemonset["metadata"]["resourceVersion"])),
                      time.monotonic() + OBSERVE_SECONDS)  # fmt: skip
        self.renewed_at = time.monotonic()

    def wait_observed(self) -> Obj:
        seen: Obj = {}

        def observed(daemonset: Obj | None) -> bool:
            if daemonset is None:
                raise K8sError(f"{self.what} was deleted during the batch rollout", 404)
            seen["daemonset"] = daemonset
            status = daemonset.get("status") or {}
            return int(daemonset["metadata"]["generation"]) <= int(status.get("observedGeneration") or 0)

        deadline = time.monotonic() + OBSERVE_SECONDS
        if not watch_until(self.api, "daemonsets", self.namespace, self.name, observed, lambda: deadline):
            raise K8sError(f"{self.what}: the controller did not observe the change within {OBSERVE_SECONDS}s "
                           "(is kube-controller-manager running?)")  # fmt: skip
        self.api.deadline = None
        return seen["daemonset"]

    # --- batches ---------------------------------------------------------------------------------

    def run_batches(self, result: Obj, daemonset: Obj, plan: Obj, state: Obj, target: Obj) -> Obj:
        target_hash = revision_hash(target)
        updated = list(plan["done"])
        todo = [batch for batch in plan["batches"] if batch["nodes"]]
        limit = self.params["max_batches"]
        try:
            if not todo:  # an interrupted run may have stopped during the last gate: check before finishing
                self.gate(daemonset, {"batch": 0, "spec": "check", "nodes": []}, updated, target_hash, state)
            for position, batch in enumerate(todo, start=1):
                self.replace_batch(daemonset, batch, updated, target_hash, len(plan["batches"]), state)
                updated.extend(batch["nodes"])
                if position == len(todo):
                    break
                if limit is not None and position >= limit:
                    left = sum(len(each["nodes"]) for each in todo[position:])
                    return self.ended(result, "paused", f"paused after {limit} batches (max_batches), {left} nodes "
                                                        "left; run again")  # fmt: skip
                self.pause(state)
        except GateFailed as failure:
            return self.gate_failed(result, failure, state, target_hash)
        self.finish(state)
        strategy = state["strategy"].get("type", "RollingUpdate")
        return self.ended(result, "complete", f"{plan['total']} of {plan['total']} nodes on revision "
                                              f"{target['revision']}; strategy {strategy} restored")  # fmt: skip

    def pause(self, state: Obj) -> None:
        seconds = self.params["pause_seconds"]
        if seconds:
            self.say(f"pausing {seconds}s before the next batch")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                self.renew(state)
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))

    def replace_batch(self, daemonset: Obj, batch: Obj, updated: list[str], target_hash: str, count: int,
                      state: Obj) -> None:  # fmt: skip
        head = f"batch {batch['batch']}/{count} ({batch['spec']})"
        started = time.monotonic()
        until = started + self.params["batch_timeout"]
        by_node = self.pods_by_node(daemonset, until)
        deleted = 0
        for node in batch["nodes"]:
            pod = by_node.get(node)
            if pod is not None and pod_hash(pod) != target_hash:
                meta = pod["metadata"]
                deleted += self.retrying(
                    lambda meta=meta: self.api.delete("pods", self.namespace, meta["name"], {"uid": meta["uid"]}), until
                )
        self.touched.extend(batch["nodes"])
        self.changed = True
        self.say(f"{head}: {plural(deleted, 'old pod')} deleted on {counted_names(batch['nodes'])}")
        self.gate(daemonset, batch, updated + batch["nodes"], target_hash, state, started, head)

    def gate(self, daemonset: Obj, batch: Obj, nodes: list[str], target_hash: str, state: Obj,
             started: float | None = None, head: str = "check") -> None:  # fmt: skip
        """Wait until the updated pods on NODES pass the gate (then the URL); raise GateFailed."""
        started = time.monotonic() if started is None else started
        deadline = started + self.params["batch_timeout"]
        baseline: dict[str, int] = {}
        while True:
            self.renew(state)
            by_node = self.pods_by_node(daemonset, deadline)
            baseline = _batch.record_baseline(baseline, by_node, nodes)
            verdict = _batch.evaluate_gate(by_node, nodes, target_hash, self.params["min_available_seconds"],
                                           utcnow(), baseline, self.params["fail_fast"])  # fmt: skip
            probe_error = self.probe() if verdict["state"] == _batch.PASSED else None
            if verdict["state"] == _batch.PASSED and probe_error is None:
                break
            elapsed = round(time.monotonic() - started, 1)
            if verdict["state"] == _batch.FAILED:
                self.record(batch, "failed", verdict["reasons"], elapsed)
                self.say(f"{head}: gate FAILED after {elapsed}s: {'; '.join(verdict['reasons'][:3])}")
                raise GateFailed(batch, verdict["reasons"])
            if time.monotonic() >= deadline:
                waiting = verdict["waiting"] or [f"gate_url: {probe_error}"]
                reasons = [f"not healthy within batch_timeout={self.params['batch_timeout']}s: {r}" for r in waiting]
                self.record(batch, "failed", reasons, elapsed)
                self.say(f"{head}: gate FAILED after {elapsed}s: {'; '.join(reasons[:3])}")
                raise GateFailed(batch, reasons)
            # a pod still inside min_available_seconds says how long it needs; otherwise look again soon
            time.sleep(min(max(verdict["wait"], POLL_SECONDS), 2.0, max(0.0, deadline - time.monotonic())))
        elapsed = round(time.monotonic() - started, 1)
        self.record(batch, "passed", [], elapsed)
        self.say(f"{head}: gate passed after {elapsed}s ({plural(len(nodes), 'updated pod')} Ready for "
                 f">= {self.params['min_available_seconds']}s)")  # fmt: skip

    def probe(self) -> str | None:
        """None when O(gate_url) is unset or answers 2xx, else what went wrong."""
        from ansible.module_utils.urls import open_url  # only gates with a URL need it

        url = self.params["gate_url"]
        if not url:
            return None
        try:
            status = open_url(url, timeout=10).getcode()
        except Exception as exc:  # HTTPError (non-2xx), URLError, timeouts: all mean "not healthy yet"
            return f"{url}: {exc}"
        return None if 200 <= status < 300 else f"{url} answered {status}"

    def record(self, batch: Obj, gate: str, reasons: list[str], elapsed: float) -> None:
        if batch["batch"]:
            self.executed.append({"batch": batch["batch"], "spec": batch["spec"], "nodes": batch["nodes"],
                                  "gate": gate, "reasons": reasons, "elapsed": elapsed})  # fmt: skip

    # --- the end -------------------------------------------------------------------------------

    def finish(self, state: Obj) -> None:
        """Restore the original strategy and drop the state (one write, conditioned on what was read)."""
        daemonset = self.read()[0]
        body = _batch.finish_patch(state, daemonset["metadata"]["resourceVersion"])
        self.retrying(lambda: self.api.patch("daemonsets", self.namespace, self.name, body),
                      time.monotonic() + OBSERVE_SECONDS)  # fmt: skip
        self.changed = True

    def gate_failed(self, result: Obj, failure: GateFailed, state: Obj, target_hash: str) -> Obj:
        why = f"batch {failure.batch['batch']} ({failure.batch['spec']}) failed its gate: {failure}"
        if not self.params["rollback_on_failure"]:
            return self.ended(result, "failed", f"{why}; left as it is (rollback_on_failure=false), OnDelete kept")
        rollback = self.roll_back(state, target_hash, failure.batch["nodes"])
        self.finish(state)
        result["rollback"] = rollback
        done = "rolled back" if rollback["complete"] else "rollback NOT complete (see rollback.waiting)"
        strategy = state["strategy"].get("type", "RollingUpdate")
        return self.ended(result, "rolled_back", f"{why}; {done} {counted_names(rollback['nodes'])} to revision "
                                                 f"{rollback['revision']}; strategy {strategy} restored")  # fmt: skip

    def roll_back(self, state: Obj, target_hash: str, batch_nodes: list[str]) -> Obj:
        """The previous template back (its revision's stored patch), then the pods of the touched nodes only."""
        previous = state.get("previous")
        daemonset, revisions = self.read()
        stored = [rev for rev in revisions if previous and rev["metadata"]["name"] == previous["name"]]
        if not stored:
            gone = f"revision {previous['revision']} ({previous['name']}) is gone" if previous else "there is none"
            raise K8sError(f"{self.what}: a gate failed and there is no previous revision to roll back to ({gone}; "
                           f"{describe_available(revisions)}); the DaemonSet is left on OnDelete")  # fmt: skip
        until = time.monotonic() + self.params["batch_timeout"]
        body = undo_patch(stored[0], daemonset["metadata"]["resourceVersion"])
        self.retrying(lambda: self.api.patch("daemonsets", self.namespace, self.name, body), until)
        daemonset = self.wait_observed()
        by_node = self.pods_by_node(daemonset, until)
        touched = _batch.touched_nodes(by_node, target_hash, batch_nodes)
        for node in touched:
            pod = by_node.get(node)
            if pod is not None and pod_hash(pod) != previous["hash"]:
                meta = pod["metadata"]
                self.retrying(lambda meta=meta: self.api.delete("pods", self.namespace, meta["name"],
                                                                {"uid": meta["uid"]}), until)  # fmt: skip
        self.touched = sorted(set(self.touched) | set(touched), key=natural_key)
        self.say(f"rolling back {counted_names(touched)} to revision {previous['revision']}")
        waiting = touched
        while waiting and time.monotonic() < until:
            time.sleep(POLL_SECONDS)
            waiting = _batch.rollback_ready(self.pods_by_node(daemonset, until), touched, previous["hash"])
        return {"nodes": touched, "revision": previous["revision"], "complete": not waiting, "waiting": waiting}

    def ended(self, result: Obj, outcome: str, msg: str) -> Obj:
        planned = [node for batch in result["plan"]["batches"] for node in batch["nodes"]]
        self.say(f"{self.what}: {msg}")
        result.update(
            outcome=outcome,
            msg=f"{self.what}: {msg}",
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
    """Without a template change: the revision before the newest (kubectl's undo target), if there is one."""
    return select_revision(revisions, 0) if len(revisions) >= 2 else None


def _revisions(state: Obj, target: Obj | None) -> Obj:
    previous = state.get("previous")
    return {
        "previous": {"number": previous["revision"], "hash": previous["hash"]} if previous else None,
        "target": {"number": int(target["revision"]), "hash": revision_hash(target)} if target else None,
    }


def batch_rollout(request: Request, api: Api) -> Obj:
    """The rollout ds_batch_rollout asks for; an API error that ends it reports how far it got."""
    rollout = BatchRollout(request, api)
    try:
        result = rollout.run()
    except K8sError as exc:
        msg = str(exc) if str(exc).startswith(rollout.what) else f"{rollout.what}: {exc}"
        raise OperationFailed(msg, rollout.progress(), exc.status) from exc
    result["elapsed"] = round(time.monotonic() - rollout.started, 3)
    return dict(result, failed=result["outcome"] in ("rolled_back", "failed"))
