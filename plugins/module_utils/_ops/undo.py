# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Rolling a DaemonSet back to one of its revisions: ``kubectl rollout undo``, with the write conditioned on what
was read, the number the controller gives the target read back, and an optional wait.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import time

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import (
    history_table,
    plan_undo,
    replan_undo,
    summarize,
    undo_patch,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import Obj, RequestError
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import daemonset_and_revisions, revisions_of
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.wait import template_generation, wait_for_write
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.write import check_owners, with_fresh_reads
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import OperationFailed, Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import template_changes, to_yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import poll

# How long the controller may take to renumber the target revision before the result says it did not.
READ_BACK_SECONDS = 15.0


def _check_owner(daemonset: Obj, expected_generation: int | None) -> None:
    """With EXPECTED_GENERATION: refuse to roll back a template that another writer has changed since."""
    live = template_generation(daemonset)
    if expected_generation is not None and live != expected_generation:
        raise RequestError(
            f"not rolled back: the pod template was changed by another writer (template generation {live}, "
            f"expected {expected_generation}); rolling back would undo their change, not the one asked about"
        )


def _read_back(api: Api, daemonset: Obj, plan: Obj, revisions: list[Obj],
               seconds: float) -> tuple[int | None, list[Obj], str]:  # fmt: skip
    """(the number the controller gave the target, or None if it did not renumber it within SECONDS; the revisions
    read last, REVISIONS if none could be read; why there is no number). A transient failure (the API server
    restarting) is read again until the time is up."""
    name, expected = plan["target"]["metadata"]["name"], plan["predicted_revision"]
    idle = (f"the controller did not renumber revision {plan['to_revision']} (expected {expected}); is "
            "kube-controller-manager running?")  # fmt: skip
    seen: Obj = {"revisions": revisions, "why": idle}

    def renumbered() -> int | None:
        try:
            seen["revisions"], seen["why"] = revisions_of(api, daemonset), idle
        except K8sError as exc:
            if not exc.transient:
                raise
            seen["why"] = f"the revisions could not be read back ({exc}); the revisions shown are the last ones read"
            return None
        number = int(next((r["revision"] for r in seen["revisions"] if r["metadata"]["name"] == name), 0))
        moved = number != plan["to_revision"] or expected == plan["to_revision"]  # not renumbered when already last
        return number if number and moved else None

    number = poll(renumbered, time.monotonic() + seconds, 0.2)
    return number, seen["revisions"], seen["why"]


def undo(request: Request, api: Api) -> Obj:
    """The rollback ds_undo asks for; see its RETURN for the result."""
    params = request.params
    namespace, name = params["namespace"], params["name"]

    generations: list[int | None] = []  # the spec generation each attempt read
    owners: list[Obj] = []

    def decide(state: tuple[Obj, list[Obj]], previous: Obj | None) -> Obj:
        daemonset, revisions = state
        _check_owner(daemonset, params["from_template_generation"])
        generations.append(daemonset["metadata"].get("generation"))
        if previous is None:
            plan = plan_undo(daemonset, revisions, params["to_revision"])
            if plan["changed"]:
                owners.extend(check_owners(request, daemonset, "a rollback", kubectl_apply=True))
            return plan
        if generations[-1] != generations[-2]:
            request.warn(
                "the DaemonSet's spec changed while rolling back; re-read it and retried against the new state"
            )
        return replan_undo(daemonset, revisions, previous)  # the same target, whatever its number is now

    def write(state: tuple[Obj, list[Obj]], plan: Obj) -> Obj | None:
        if not plan["changed"]:
            return None
        body = undo_patch(plan["target"], state[0]["metadata"]["resourceVersion"], params["change_cause"])
        return api.patch("daemonsets", namespace, name, body, dry_run=request.check_mode)

    (daemonset, revisions), plan, written = with_fresh_reads(
        f"DaemonSet {namespace}/{name}", lambda: daemonset_and_revisions(api, namespace, name), decide, write
    )
    result = dict(_result(request, plan, namespace, name), owners=owners)
    # the template live after the task: in check mode nothing was written
    result["template_generation"] = template_generation(daemonset if request.check_mode or not written else written)
    if not plan["changed"] or request.check_mode:
        return dict(result, **_history(daemonset, revisions))
    try:
        return _after_write(request, api, result, plan, daemonset, revisions, written)
    except K8sError as exc:  # the rollback is written: the failure after it must not hide it
        details = {"changed": True, **{k: v for k, v in result.items() if k not in ("changed", "msg")}}
        raise OperationFailed(f"{plan['message']}, but then: {exc}", details, exc.status) from exc


def _after_write(request: Request, api: Api, result: Obj, plan: Obj, daemonset: Obj, revisions: list[Obj],
                 written: Obj) -> Obj:  # fmt: skip
    """(With wait) the rollout, then the number the controller gave the target and the history now. After a wait
    that saw the rollout complete the controller has renumbered the target, so the read back is quick; after one that
    failed it is one read, so the task still ends within its wait_timeout."""
    namespace, name = request.params["namespace"], request.params["name"]
    seconds = READ_BACK_SECONDS
    if request.params["wait"]:
        result["rollout"] = wait_for_write(request, api, namespace, name, written)
        seconds = 0 if result["rollout"]["failed"] else READ_BACK_SECONDS
    result["new_revision"], revisions, why = _read_back(api, daemonset, plan, revisions, seconds)
    result.update(_history(daemonset, revisions))
    if result["new_revision"] is None:
        request.warn(f"no new revision number within {seconds:.0f}s: {why}")
    if request.params["wait"] and result["rollout"]["failed"]:
        result.update(failed=True, msg=f"{plan['message']}, but the rollout did not complete: "
                                       f"{result['rollout']['msg']}")  # fmt: skip
    return result


def _history(daemonset: Obj, revisions: list[Obj]) -> Obj:
    """The history as kubectl would print it now (the undo renumbers the target)."""
    entries = summarize(daemonset, revisions)
    return {"revisions": entries, "table": history_table(entries)}


def _result(request: Request, plan: Obj, namespace: str, name: str) -> Obj:
    result: Obj = {
        "changed": plan["changed"],
        "msg": plan["message"],
        "rolled_back_from": plan["rolled_back_from"],
        "to_revision": plan["to_revision"],
        "predicted_revision": plan["predicted_revision"],
        "new_revision": None if plan["changed"] else plan["to_revision"],
        "changes": template_changes(plan["before"], plan["after"]),
    }
    if request.diff:
        result["diff"] = {
            "before": to_yaml(plan["before"]),
            "after": to_yaml(plan["after"]),
            "before_header": f"daemonset {namespace}/{name} pod template (live)",
            "after_header": f"daemonset {namespace}/{name} pod template (revision {plan['to_revision']})",
        }
    return result
