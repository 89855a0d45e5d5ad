# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A node-batch rollout of a vanilla DaemonSet: plan, one start write, batches with health gates, bakes and pauses,
then the end (the original strategy back) or a rollback of the touched nodes. The rules are ``_batch``'s and
``_canary``'s (restart budget, OOM kills, bake time, topology spread, pods in flight).

One run at a time: the run claims the rollout in its state annotation and renews the claim while it works, so a
second run (from anywhere) is refused while the first lives; a run whose controller process is gone stops at
its next request. Transient API failures (a restarting API server) are waited out within the batch's time.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import copy
import datetime
import os
import socket
import time
import typing as t
import uuid

from ansible_collections.kubeops.daemonset.plugins.module_utils import _batch, _canary
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
    http_date_time,
    natural_key,
    plural,
    utcnow,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import watch_until

POLL_SECONDS = 0.5
OBSERVE_SECONDS = 60
RETRY_SECONDS = 1.0
PROGRESS_SECONDS = 10  # a progress line at least this often during bakes and pauses
PAUSE_POLL_SECONDS = 5.0  # a pause only watches for breaches: fewer pod lists than a gate or a bake
CONFLICT_RETRIES = 5  # state writes read again after a 409 (the controller writes the status meanwhile)
SHOWN_REASONS = 10
PHASES = {"gate": "its gate", "bake": "its bake", "pause": "during the pause after it"}


class GateFailed(Exception):
    """A batch failed its gate, bake or the pause after it (PHASE); ``reasons`` per node, ``nodes`` replaced."""

    def __init__(self, batch: Obj, reasons: list[str], phase: str = "gate", nodes: list[str] | None = None) -> None:
        more = f"; and {len(reasons) - SHOWN_REASONS} more" if len(reasons) > SHOWN_REASONS else ""
        super().__init__("; ".join(reasons[:SHOWN_REASONS]) + more)
        self.batch, self.reasons, self.phase = batch, reasons, phase
        self.nodes = batch["nodes"] if nodes is None else nodes


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
        self.rules = _canary.Rules(self.params["restart_budget"], self.params["fail_on_oom"])
        self.count = 0  # batches in the plan, for "batch 2/4"
        self.last_passed: Obj = {"batch": 0, "spec": "check", "nodes": []}

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

    def server_now(self) -> datetime.datetime:
        """The API server's clock (the last response's Date): bake and pause times in the state annotation use it,
        so a run resumed from another machine measures them the same way."""
        return http_date_time(self.api.server_date) or utcnow()

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
        planned = copy.deepcopy(daemonset)
        planned["spec"]["template"] = desired
        target = current_revision(planned, revisions)  # None: the controller will create it
        nodes, skipped = self.plan_nodes(planned)
        specs, nodes = _canary.spread(specs, nodes, self.params["topology_key"])
        by_node = self.pods_by_node(daemonset, 0)
        if state is None:
            previous = current_revision(daemonset, revisions) if template_changes else _previous(revisions)
            baseline = _canary.restart_baseline(by_node, target and revision_hash(target))
            state = _batch.new_state(daemonset, previous, utcnow().isoformat(timespec="seconds"), baseline)
        plan = self.plan(specs, nodes, by_node, target and revision_hash(target))
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
        plan = self.plan(specs, nodes, self.pods_by_node(daemonset, 0), revision_hash(target))
        result.update(plan=plan, revision=_revisions(state, target))
        return self.run_batches(result, daemonset, plan, state, target)

    def plan(self, specs: list[Obj], nodes: list[Obj], by_node: dict[str, Obj], target_hash: str | None) -> Obj:
        plan = _batch.plan_batches(specs, nodes, by_node, target_hash)
        self.count = len(plan["batches"])
        key = self.params["topology_key"]
        return _canary.annotate_spread(plan, nodes, key) if key and nodes else plan

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
        if time.monotonic() - self.renewed_at >= _batch.RENEW_SECONDS:
            self.save(state)

    def save(self, state: Obj) -> None:
        """Write STATE (with a renewed claim) now: the claim, the bake clock and verdicts must survive this run.
        Conditioned on the resourceVersion read; a conflict (the controller's status writes) reads again."""
        for attempt in range(CONFLICT_RETRIES):
            daemonset, _revisions_now = self.read()
            current = _batch.read_state(daemonset) or {}
            if (current.get("owner") or {}).get("id") != self.me:
                raise K8sError(f"{self.what}: another batch rollout took this one over; this run stops here", 409)
            state["owner"] = _batch.owner_record(self.me, socket.gethostname(), os.getpid(), utcnow())
            body = _batch.state_patch(state, daemonset["metadata"]["resourceVersion"])
            try:
                self.retrying(lambda body=body: self.api.patch("daemonsets", self.namespace, self.name, body),
                              time.monotonic() + OBSERVE_SECONDS)  # fmt: skip
            except K8sError as exc:
                if exc.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
                continue
            self.renewed_at = time.monotonic()
            return

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
            pause = self.resume(daemonset, updated, target_hash, state, last=not todo)
            for position, batch in enumerate(todo, start=1):
                self.pause(daemonset, updated, target_hash, state, pause, batch)
                self.replace_batch(daemonset, batch, updated, target_hash, state)
                updated.extend(batch["nodes"])
                if position == len(todo):
                    break
                if limit is not None and position >= limit:
                    left = sum(len(each["nodes"]) for each in todo[position:])
                    return self.ended(result, "paused", f"paused after {limit} batches (max_batches), {left} nodes "
                                                        "left; run again")  # fmt: skip
                pause = self.params["pause_seconds"]
        except GateFailed as failure:
            return self.gate_failed(result, failure, state, target_hash)
        self.finish(state)
        strategy = state["strategy"].get("type", "RollingUpdate")
        return self.ended(result, "complete", f"{plan['total']} of {plan['total']} nodes on revision "
                                              f"{target['revision']}; strategy {strategy} restored")  # fmt: skip

    def resume(self, daemonset: Obj, updated: list[str], target_hash: str, state: Obj, last: bool) -> float:
        """Finish what an earlier run of this rollout left: its bake (the clock goes on), or gate and bake for the
        UPDATED nodes when it stopped before a verdict. Returns the seconds of pause still due before the next
        batch. An interrupted run may have stopped during the LAST gate: its nodes are checked before finishing."""
        progress = state.get("progress")
        phase = _canary.resume_phase(progress, len(updated))
        if phase == _canary.PAUSE:  # the batch it recorded passed
            self.last_passed = {"batch": progress["batch"], "spec": progress["spec"], "nodes": []}
            if last:
                self.gate(daemonset, dict(self.last_passed, batch=0), updated, target_hash, state)
            return _canary.pause_left(progress, self.params["pause_seconds"], self.server_now())
        if not updated:
            return 0.0
        started = time.monotonic()
        if phase == _canary.BAKE:
            batch = {"batch": progress["batch"], "spec": progress["spec"], "nodes": []}
            self.say(f"continuing the bake of batch {batch['batch']} ({batch['spec']}) started {progress['started']}")
            self.bake(daemonset, batch, updated, target_hash, state, started, progress)
            self.record(batch, [], "passed", [], started)  # an earlier run's batch, finished here
        else:
            batch = {"batch": 0, "spec": "check", "nodes": []}
            self.say(f"checking the {plural(len(updated), 'node')} already on the new revision before going on")
            self.gate(daemonset, batch, updated, target_hash, state)
            self.bake(daemonset, batch, updated, target_hash, state, started)
        self.passed(batch, updated, state)
        return float(self.params["pause_seconds"]) if progress else 0.0

    def head(self, batch: Obj) -> str:
        return f"batch {batch['batch']}/{self.count} ({batch['spec']})" if batch["batch"] else "check"

    def pause(self, daemonset: Obj, updated: list[str], target_hash: str, state: Obj, seconds: float,
              before: Obj) -> None:  # fmt: skip
        """Wait SECONDS before the batch BEFORE (slow start), watching the updated pods meanwhile: a breach of the
        canary rules fails the batch that passed last."""
        if seconds <= 0:
            return
        watched = plural(len(updated), "updated pod")
        self.say(f"pausing {seconds:.0f}s before {self.head(before)} (pause_seconds); {watched} watched meanwhile")
        started = time.monotonic()
        end, said = started + seconds, started
        while (left := end - time.monotonic()) > 0:
            self.renew(state)
            verdict, _pods = self.evaluate(
                daemonset, updated, target_hash, state, 0, time.monotonic() + OBSERVE_SECONDS
            )
            if verdict["state"] == _batch.FAILED:
                self.fail(self.last_passed, self.last_passed["nodes"], "pause", verdict["reasons"], started)
            if time.monotonic() - said >= PROGRESS_SECONDS:
                self.say(f"pausing: {left:.0f}s left before {self.head(before)}")
                said = time.monotonic()
            time.sleep(min(PAUSE_POLL_SECONDS, max(0.0, end - time.monotonic())))

    def replace_batch(self, daemonset: Obj, batch: Obj, updated: list[str], target_hash: str, state: Obj) -> None:
        """Replace the old pods of BATCH (at most max_in_flight at a time), gate, bake; then record it as passed."""
        started = time.monotonic()
        self.gate(daemonset, batch, updated, target_hash, state, queue=batch["nodes"])
        self.bake(daemonset, batch, updated + batch["nodes"], target_hash, state, started)
        self.record(batch, batch["nodes"], "passed", [], started)
        self.passed(batch, updated + batch["nodes"], state)

    def passed(self, batch: Obj, updated: list[str], state: Obj) -> None:
        """BATCH passed: kept in the state, so a run resumed during the next pause waits only the rest of it."""
        self.last_passed = batch
        state["progress"] = _canary.passed_record(batch, len(updated), self.server_now())
        self.save(state)

    def evaluate(self, daemonset: Obj, nodes: list[str], target_hash: str, state: Obj, min_available: int,
                 until: float) -> tuple[Obj, dict[str, Obj]]:  # fmt: skip
        """The gate's verdict on the pods of NODES now, and the pods by node."""
        by_node = self.pods_by_node(daemonset, until)
        baseline = state.get("baseline") or {}
        verdict = _batch.evaluate_gate(by_node, nodes, target_hash, min_available, utcnow(), baseline,
                                       self.params["fail_fast"], self.rules)  # fmt: skip
        return verdict, by_node

    def gate(self, daemonset: Obj, batch: Obj, updated: list[str], target_hash: str, state: Obj,
             queue: list[str] | None = None) -> None:  # fmt: skip
        """Replace the old pods of QUEUE, at most max_in_flight not yet healthy at a time, and wait until the pods
        on UPDATED and the replaced nodes pass the gate (then the URL); raise GateFailed. batch_timeout counts from
        the last deletion."""
        head, cap, timeout = self.head(batch), self.params["max_in_flight"], self.params["batch_timeout"]
        queue, replaced = list(queue or []), []
        started = time.monotonic()
        deadline = started + timeout
        while True:
            self.renew(state)
            verdict, by_node = self.evaluate(daemonset, updated + replaced, target_hash, state,
                                             self.params["min_available_seconds"], deadline)  # fmt: skip
            if verdict["state"] == _batch.FAILED:
                self.fail(batch, replaced, "gate", verdict["reasons"], started)
            wave = _canary.next_wave(queue, replaced, verdict["healthy"], cap)
            probe_error = None
            if wave:
                self.delete_old(by_node, wave, target_hash, deadline, head)
                replaced, queue = replaced + wave, queue[len(wave) :]
                deadline = time.monotonic() + timeout
                if cap is not None and len(batch["nodes"]) > cap:
                    self.say(f"{head}: {len(replaced)} of {len(batch['nodes'])} replaced (max_in_flight {cap})")
            elif not queue and verdict["state"] == _batch.PASSED:
                probe_error = self.probe()
                if probe_error is None:
                    break
            if time.monotonic() >= deadline:
                waiting = verdict["waiting"] or [f"gate_url: {probe_error}"]
                reasons = [f"not healthy within batch_timeout={timeout}s: {reason}" for reason in waiting]
                self.fail(batch, replaced, "gate", reasons, started)
            # a pod still inside min_available_seconds says how long it needs; otherwise look again soon
            time.sleep(min(max(verdict["wait"], POLL_SECONDS), 2.0, max(0.0, deadline - time.monotonic())))
        elapsed = round(time.monotonic() - started, 1)
        self.say(f"{head}: gate passed after {elapsed}s ({plural(len(updated + replaced), 'updated pod')} Ready for "
                 f">= {self.params['min_available_seconds']}s)")  # fmt: skip

    def delete_old(self, by_node: dict[str, Obj], nodes: list[str], target_hash: str, until: float, head: str) -> None:
        """Delete the old pods on NODES (UID preconditions); the controller recreates them from the new template."""
        deleted = 0
        for node in nodes:
            pod = by_node.get(node)
            if pod is not None and pod_hash(pod) != target_hash:
                meta = pod["metadata"]
                deleted += self.retrying(
                    lambda meta=meta: self.api.delete("pods", self.namespace, meta["name"], {"uid": meta["uid"]}), until
                )
        self.touched.extend(nodes)
        self.changed = True
        self.say(f"{head}: {plural(deleted, 'old pod')} deleted on {counted_names(nodes)}")

    def bake(self, daemonset: Obj, batch: Obj, nodes: list[str], target_hash: str, state: Obj, started: float,
             progress: Obj | None = None) -> None:  # fmt: skip
        """Keep the pods of NODES available with no restart for bake_seconds after the gate (the clock starts
        again on a restart within the budget or an unready pod); the clock lives in the state annotation, so
        PROGRESS (a bake an earlier run left) goes on where it was. Raise GateFailed on a breach."""
        seconds, timeout, head = self.params["bake_seconds"], self.params["batch_timeout"], self.head(batch)
        if not seconds:
            return
        bake = progress or _canary.start_bake(batch, len(nodes), self.server_now())
        state["progress"] = bake
        self.save(state)
        self.say(f"{head}: baking {seconds}s: no restart and no unready pod allowed (restart_budget "
                 f"{self.rules.restart_budget})")  # fmt: skip
        said = time.monotonic()
        while True:
            self.renew(state)
            verdict, by_node = self.evaluate(daemonset, nodes, target_hash, state, 0, time.monotonic() + timeout)
            step = _canary.bake_step(bake, verdict["reasons"], verdict["waiting"], _canary.restart_sum(by_node, nodes),
                                     self.server_now(), seconds, timeout)  # fmt: skip
            if step["failed"]:
                self.fail(batch, batch["nodes"], "bake", step["failed"], started)
            if step["done"]:
                break
            if step["bake"] != bake:
                bake = state["progress"] = step["bake"]
                self.save(state)
            if step["reset"]:
                self.say(f"{head}: the bake clock starts again ({step['reset']}): {seconds}s to go")
                said = time.monotonic()
            elif time.monotonic() - said >= PROGRESS_SECONDS:
                self.say(f"{head}: baking, {step['left']:.0f}s left")
                said = time.monotonic()
            time.sleep(min(2.0, max(POLL_SECONDS, step["left"])))
        self.say(f"{head}: baked {seconds}s without a restart ({plural(len(nodes), 'updated pod')})")

    def fail(self, batch: Obj, nodes: list[str], phase: str, reasons: list[str], started: float) -> t.NoReturn:
        """Record BATCH as failed in PHASE (gate, bake, pause) with its REPLACED nodes, say it, raise GateFailed."""
        self.record(batch, nodes, "failed", reasons, started, phase)
        elapsed = round(time.monotonic() - started, 1)
        self.say(f"{self.head(batch)}: {phase} FAILED after {elapsed}s: {'; '.join(reasons[:3])}")
        raise GateFailed(batch, reasons, phase, nodes)

    def record(self, batch: Obj, nodes: list[str], gate: str, reasons: list[str], started: float,
               phase: str | None = None) -> None:  # fmt: skip
        """BATCH's entry in RV(batches), replacing the one it has (a pause after it can still fail it)."""
        if not batch["batch"]:
            return
        known = [entry for entry in self.executed if entry["batch"] == batch["batch"]]
        nodes = nodes or (known[0]["nodes"] if known else [])
        entry = {"batch": batch["batch"], "spec": batch["spec"], "nodes": nodes, "gate": gate, "phase": phase,
                 "reasons": reasons, "elapsed": round(time.monotonic() - started, 1)}  # fmt: skip
        self.executed = [each for each in self.executed if each["batch"] != batch["batch"]] + [entry]

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

    # --- the end -------------------------------------------------------------------------------

    def finish(self, state: Obj) -> None:
        """Restore the original strategy and drop the state (one write, conditioned on what was read)."""
        daemonset = self.read()[0]
        body = _batch.finish_patch(state, daemonset["metadata"]["resourceVersion"])
        self.retrying(lambda: self.api.patch("daemonsets", self.namespace, self.name, body),
                      time.monotonic() + OBSERVE_SECONDS)  # fmt: skip
        self.changed = True

    def gate_failed(self, result: Obj, failure: GateFailed, state: Obj, target_hash: str) -> Obj:
        why = f"batch {failure.batch['batch']} ({failure.batch['spec']}) failed {PHASES[failure.phase]}: {failure}"
        if not self.params["rollback_on_failure"]:
            return self.ended(result, "failed", f"{why}; left as it is (rollback_on_failure=false), OnDelete kept")
        rollback = self.roll_back(state, target_hash, failure.nodes)
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
