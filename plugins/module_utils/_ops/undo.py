# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Rolling a DaemonSet back to one of its revisions: ``kubectl rollout undo``, with the write conditioned on what
was read, the number the controller gives the target read back, and an optional wait.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import time

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
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
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
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


def _read_back(api: Api, daemonset: Obj, plan: Obj) -> tuple[int | None, list[Obj]]:
    """(the number the controller gave the target, or None if it did not renumber it in time; the revisions)."""
    name, expected = plan["target"]["metadata"]["name"], plan["predicted_revision"]
    seen: list[list[Obj]] = [[]]  # the revisions read last

    def renumbered() -> int | None:
        seen[0] = revisions_of(api, daemonset)
        number = int(next((r["revision"] for r in seen[0] if r["metadata"]["name"] == name), 0))
        moved = number != plan["to_revision"] or expected == plan["to_revision"]  # not renumbered when already last
        return number if number and moved else None

    number = poll(renumbered, time.monotonic() + READ_BACK_SECONDS, 0.2)
    return number, seen[0]


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
    result["new_revision"], revisions = _read_back(api, daemonset, plan)
    result.update(_history(daemonset, revisions))
    if result["new_revision"] is None:
        request.warn(
            f"the controller did not renumber revision {plan['to_revision']} within {READ_BACK_SECONDS:.0f}s "
            f"(expected {plan['predicted_revision']}); is kube-controller-manager running?"
        )
    if params["wait"]:
        result["rollout"] = wait_for_write(request, api, namespace, name, written)
        if result["rollout"]["failed"]:
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
