# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Waiting for a DaemonSet rollout: one list+watch of the DaemonSet, kubectl's done rule and messages.

Pods, events and revisions are read only once a wait has ended (the revision) or failed (what blocks it), so
the requests of a wait depend on time, never on the number of nodes.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import (
    current_revision,
    revision_hash,
    revision_ref,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    TEMPLATE_GENERATION,
    Obj,
    annotations,
    selector_query,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import nodes_left_behind, revisions_of
from ansible_collections.kubeops.daemonset.plugins.module_utils._rollout import (
    ON_DELETE,
    bake_baseline,
    bake_breaches,
    failure_message,
    progress_key,
    rollout_blockers,
    rollout_status,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._unhealthy import verdict
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import rfc3339, utcnow
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import watch_until

FAILED_OUTCOMES = ("timeout", "progress_deadline", "not_found", "deleted", "superseded")
# How often the nodes are read again while unhealthy nodes may hold a rollout back (one small table when all are
# healthy; nodes, pods and revisions when some are not).
NODE_CHECK_SECONDS = 10.0
# Seconds the reads after a wait (its revision; the pods and events that explain a failure) may take together,
# plus the client's margin per request (_client.DEADLINE_MARGIN).
REPORT_SECONDS = 2.0
BAKE_POLL_SECONDS = 2.0  # a bake reads the DaemonSet and its pods this often
BAKE_PROGRESS_SECONDS = 10.0


def template_generation(daemonset: Obj) -> int | None:
    """How many times the API server has seen the pod template change (it counts template changes only)."""
    value = annotations(daemonset).get(TEMPLATE_GENERATION)
    return int(value) if value is not None else None


def _images(daemonset: Obj) -> str:
    containers = ((daemonset["spec"]["template"].get("spec") or {}).get("containers")) or []
    return ", ".join(f"{c['name']}={c.get('image')}" for c in containers)


class RolloutWait:
    """One wait for the rollout of DaemonSet NAMESPACE/NAME.

    TIMEOUT: seconds to wait in all (0: read the status once). PROGRESS_DEADLINE: seconds without any counter
    moving (``_rollout.progress_key``) before giving up early. ON_DELETE: ``wait`` (OnDelete DaemonSets are waited
    for like any other) or ``report`` (return at once). TEMPLATE_GENERATION: the template this wait is for (what
    a write of the caller produced); when another writer changes the template meanwhile the wait fails as
    ``superseded`` instead of reporting someone else's rollout as its own. UNHEALTHY_NODE_BUDGET: how many
    NotReady, unreachable or cordoned nodes (a count or a percentage) the rollout may leave behind
    (``_unhealthy``). ON_MESSAGE(status) is called with each new kubectl message, as it is observed, and ON_NOTE with
    each new line about unhealthy nodes.
    """

    def __init__(self, api: Api, namespace: str, name: str, *, timeout: float, on_delete: str,
                 progress_deadline: float | None = None, template_generation: int | None = None,
                 unhealthy_node_budget: int | str = 0, on_message: t.Callable[[Obj], None] | None = None,
                 on_note: t.Callable[[str], None] | None = None,
                 clock: t.Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.api, self.namespace, self.name = api, namespace, name
        self.timeout, self.progress_deadline, self.on_delete = timeout, progress_deadline, on_delete
        self.expected_generation, self.on_message, self.clock = template_generation, on_message, clock
        self.budget, self.on_note = unhealthy_node_budget, on_note
        self.start = self.progress_at = clock()
        self.timeline: list[Obj] = []
        self.daemonset: Obj | None = None
        self.status: Obj | None = None
        self.outcome: str | None = None
        self.nodes: Obj | None = None  # the last _unhealthy.left_behind (None: every node healthy, or not read)
        self.node_verdict: Obj | None = None
        self.checked: tuple[float, tuple[int, ...]] | None = None  # when the nodes were read, for which status
        self.node_notes: list[str] = []

    def deadline(self) -> float:
        end = self.start + self.timeout
        return min(end, self.progress_at + self.progress_deadline) if self.progress_deadline else end

    def _wake_at(self) -> float:
        """The deadline, or earlier when the nodes are due to be read again."""
        if self.checked is None or self.outcome is not None or not self._may_finish(self.status):
            return self.deadline()
        return min(self.deadline(), self.checked[0] + NODE_CHECK_SECONDS)

    def _may_finish(self, status: Obj | None) -> bool:
        """kubectl says done, or the pods still missing could all be on nodes the budget lets the rollout skip."""
        if status is None or status["done"]:
            return status is not None
        missing = status["desired"] - min(status["updated"], status["available"])
        bound = status["desired"] if isinstance(self.budget, str) else self.budget  # a percentage: judged exactly
        return bool(self.budget) and status["observed"] and 0 < missing <= bound

    def _complete(self, status: Obj) -> bool:
        """kubectl's rule, unless unhealthy nodes the DaemonSet targets lack the new pod: then they must fit the
        budget and every healthy target node must run an updated, available pod."""
        if not self._may_finish(status):
            return False
        fresh = self.checked and self.checked[1] == progress_key(status)
        if not fresh or self.clock() - self.checked[0] >= NODE_CHECK_SECONDS:
            self._read_nodes(status)
        if self.nodes is None:
            return status["done"]
        return self.node_verdict["done"] or (status["done"] and not self.nodes["skipped"])

    def _read_nodes(self, status: Obj) -> None:
        self.checked = (self.clock(), progress_key(status))
        notes: list[str] = []
        found = self.api.optional(lambda: [nodes_left_behind(self.api, self.daemonset)], notes,
                                  f"unhealthy_node_budget={self.budget}: nodes not checked")  # fmt: skip
        if self.budget and notes and not self.node_notes:  # without a budget, kubectl's rule stands quietly
            self.node_notes.extend(notes)
        self.nodes = found[0] if found else None
        judged = verdict(self.nodes, self.budget) if self.nodes else None
        line = judged["line"] if judged else None
        if line and line != (self.node_verdict or {}).get("line"):
            self.timeline.append({"time": rfc3339(utcnow(), milliseconds=True), "message": line})
            if self.on_note:
                self.on_note(line)
        self.node_verdict = judged

    def _observe(self, daemonset: Obj | None) -> bool:
        """Take one state of the DaemonSet; True when the wait is over (``outcome`` says why)."""
        if daemonset is None:
            self.outcome = "deleted" if self.daemonset is not None else "not_found"
            return True
        status, previous = rollout_status(daemonset), self.status
        if previous is None or progress_key(status) != progress_key(previous):
            self.progress_at = self.clock()
        if previous is None or status["message"] != previous["message"]:
            self.timeline.append({"time": rfc3339(utcnow(), milliseconds=True), "message": status["message"]})
            if self.on_message:
                self.on_message(status)
        self.daemonset, self.status = daemonset, status
        generation = template_generation(daemonset)
        if self.expected_generation is not None and generation is not None and generation != self.expected_generation:
            self.outcome = "superseded"
        elif self._complete(status):
            self.outcome = "complete"
        elif status["strategy"] == ON_DELETE and self.on_delete == "report":
            self.outcome = "on_delete"
        elif self.timeout <= 0:
            self.outcome = "status"
        return self.outcome is not None

    def run(self) -> Obj:
        """Wait; the result for exit_json/fail_json (see the RETURN of ds_rollout_wait)."""
        while not watch_until(self.api, "daemonsets", self.namespace, self.name, self._observe, self._wake_at,
                              self.clock):  # fmt: skip
            if self.clock() >= self.deadline():
                overall = self.clock() >= self.start + self.timeout
                self.outcome = "timeout" if overall or not self.progress_deadline else "progress_deadline"
                break
            if self._observe(self.daemonset):  # the nodes were due to be read again
                break
        # the report's reads only add detail: a few seconds of their own, so a server that stops answering now
        # cannot hold the task either
        self.api.deadline = time.monotonic() + REPORT_SECONDS
        try:
            return self._result()
        finally:
            self.api.deadline = None

    def _result(self) -> Obj:
        status = self.status
        result: Obj = {
            "failed": self.outcome in FAILED_OUTCOMES,
            "rollout_complete": self.outcome == "complete",
            "outcome": self.outcome,
            "status": {key: value for key, value in status.items() if key != "done"} if status else None,
            "message": status["message"] if status else None,
            "timeline": self.timeline,
            "elapsed": round(self.clock() - self.start, 3),
            "revision": None,
            "warnings": [],
        }
        what = f"DaemonSet {self.namespace}/{self.name}"
        if self.outcome == "not_found":
            return dict(result, msg=str(self.api.missing_daemonset(self.namespace, self.name)))
        if self.outcome == "deleted":
            return dict(result, msg=f"{what} was deleted while waiting for its rollout (object has been deleted)")
        revisions = self.api.optional(lambda: revisions_of(self.api, self.daemonset), result["warnings"],
                                      "revision not reported", best_effort=True)  # fmt: skip
        current = current_revision(self.daemonset, revisions) if revisions is not None else None
        result["revision"] = revision_ref(current)
        result["warnings"].extend(self.node_notes)
        skipped = (self.nodes or {}).get("skipped") or []
        result["skipped_nodes"] = skipped if self.outcome == "complete" else []
        if result["skipped_nodes"]:
            result["message"] = f'daemon set "{self.name}" successfully rolled out on every healthy node'
            result["warnings"].append(f"{what}: rolled out, leaving {self.node_verdict['line']}")
        if self.outcome == "superseded":
            result["msg"] = (
                f"{what}: the pod template was changed by another writer during the wait (template generation "
                f"{template_generation(self.daemonset)}, this wait was for {self.expected_generation}); the rollout "
                f"running now ({_images(self.daemonset)}) is not the one waited for"
            )
        elif self.outcome == "on_delete" and status["outdated"]:
            result["msg"] = (
                f"{what} uses the OnDelete strategy: {status['outdated']} of {status['desired']} pods are outdated "
                "and are replaced only when deleted"
            )
        elif self.outcome in ("timeout", "progress_deadline"):
            result["blockers"] = self._blockers(revision_hash(current) if current else None)
            result["msg"] = failure_message(self.namespace, self.name, self.outcome, self.timeout,
                                            self.progress_deadline, status["message"],
                                            result["blockers"]["summary"])  # fmt: skip
        return result

    def _blockers(self, current_hash: str | None) -> Obj:
        """What blocks the rollout, from its pods and Warning events, read now that the wait has failed."""
        errors: list[str] = []
        selector = selector_query(self.daemonset["spec"]["selector"])
        pods = self.api.optional(lambda: self.api.list_items("pods", self.namespace, selector), errors,
                                 best_effort=True)  # fmt: skip
        events = self.api.optional(lambda: self.api.list_items("events", self.namespace, field_selector="type=Warning"),
                                   errors, best_effort=True)  # fmt: skip
        blockers = rollout_blockers(self.daemonset, pods, events or [], current_hash)
        found = self.api.optional(lambda: [nodes_left_behind(self.api, self.daemonset)], errors, best_effort=True)
        if found and found[0] and found[0]["skipped"]:  # named first: no pod problem is theirs to fix
            blockers["unhealthy_nodes"] = found[0]["skipped"]
            line = verdict(found[0], self.budget)["line"]
            blockers["summary"] = f"{line}; {blockers['summary']}" if blockers["pod_problems"] else line
            blockers["unhealthy_nodes_only"] = not blockers["pod_problems"]  # a rollback would not help
        if not self.status["observed"]:
            blockers["summary"] = (
                f"the DaemonSet controller has not observed generation {self.status['generation']} (observed "
                f"{self.status['observed_generation']}): is kube-controller-manager running?; " + blockers["summary"]
            )
        if errors:  # the summary says what it could not look at (a 403, or a server that stopped answering)
            blockers["errors"] = errors
            blockers["summary"] += f" (not read: {'; '.join(error.split('. ')[0] for error in errors)})"
        return blockers


def wait_for_write(request: Request, api: Api, namespace: str, name: str, written: Obj | None,
                   timeout: float | None = None) -> Obj:  # fmt: skip
    """The rollout after a module's write, with its options of ``_runner.WAIT_ARG_SPEC``.

    WRITTEN is the DaemonSet the write returned (the wait is for its template: another writer's supersedes it), or
    None when nothing was written. In check mode nothing was written: the status is read once.
    """
    params = request.params
    rollout = RolloutWait(
        api, namespace, name, on_delete="report",
        timeout=0 if request.check_mode else params["wait_timeout"] if timeout is None else timeout,
        progress_deadline=params.get("wait_progress_deadline"),
        template_generation=None if request.check_mode or written is None else template_generation(written),
        unhealthy_node_budget=params["unhealthy_node_budget"],
        on_message=lambda status: request.say(status["message"]), on_note=request.say,
    ).run()  # fmt: skip
    request.warnings.extend(rollout.pop("warnings"))
    return rollout


def bake(api: Api, daemonset: Obj, result: Obj, seconds: float, say: t.Callable[[str], None] | None,
         clock: t.Callable[[], float] = time.monotonic) -> Obj:  # fmt: skip
    """After the complete rollout of DAEMONSET (RESULT, as RolloutWait.run returned it): keep it complete, with no
    pod restarted or replaced, for SECONDS. RESULT with ``baked`` and, on a breach, ``outcome=bake_failed``."""
    namespace, name = daemonset["metadata"]["namespace"], daemonset["metadata"]["name"]
    generation = template_generation(daemonset)
    selector = selector_query(daemonset["spec"]["selector"])
    baseline = bake_baseline(api.list_items("pods", namespace, selector))
    start = said = clock()
    if say:
        say(f"baking {seconds:.0f}s: the rollout stays complete, with no pod restarted or replaced")
    while True:
        daemonset = api.get("daemonsets", namespace, name)
        breaches = ["the DaemonSet was deleted"] if daemonset is None else bake_breaches(
            baseline, daemonset, api.list_items("pods", namespace, selector), generation)  # fmt: skip
        elapsed = clock() - start
        if breaches:
            msg = f"DaemonSet {namespace}/{name}: the bake failed after {elapsed:.0f}s: {'; '.join(breaches)}"
            return dict(result, failed=True, outcome="bake_failed", rollout_complete=False, baked=False, msg=msg,
                        bake_breaches=breaches)  # fmt: skip
        if elapsed >= seconds:
            break
        if say and clock() - said >= BAKE_PROGRESS_SECONDS:
            say(f"baking, {seconds - elapsed:.0f}s left")
            said = clock()
        time.sleep(min(BAKE_POLL_SECONDS, max(0.0, seconds - elapsed)))
    if say:
        say(f"baked {seconds:.0f}s: no pod restarted or replaced")
    return dict(result, baked=True)
