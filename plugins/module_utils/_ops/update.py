# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changing a DaemonSet's pod template: a whole new template, or images and resources by container (``kubectl
set image`` / ``set resources``), with the change-cause in the same write.

A server dry run tells whether the template really changes once the server has filled in its defaults; only then
is the patch written, conditioned on the resourceVersion that was read. The dry run itself carries no condition:
during a rollout the controller's status writes move the resourceVersion many times a second.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import current_revision
from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import parsed
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import CHANGE_CAUSE, Obj
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import daemonset_and_revisions, manifest_file
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.wait import template_generation, wait_for_write
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.write import with_fresh_reads
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import (
    pod_template_of,
    template_changes,
    template_patch,
    templates_equal,
    to_yaml,
)


def _patch(request: Request, live_template: Obj) -> Obj:
    """The strategic-merge patch asked for (TemplateError before anything is written)."""
    params = request.params
    template = None
    if params["src"]:
        origin = f"the manifest file {params['src']} (src)"
        template = pod_template_of(parsed(manifest_file(params["src"]), origin), origin)
    elif params["template"]:
        template = pod_template_of(parsed(params["template"], "template"), "template")
    spec_template = template_patch(live_template, template=template, images=params["images"],
                                   resources=params["resources"])  # fmt: skip
    patch: Obj = {"spec": {"template": spec_template}}
    if params["change_cause"]:
        patch["metadata"] = {"annotations": {CHANGE_CAUSE: params["change_cause"]}}
    return patch


def update(request: Request, api: Api) -> Obj:
    """What ds_update returns (see its RETURN)."""
    namespace, name = request.params["namespace"], request.params["name"]

    def decide(state: tuple[Obj, list[Obj]], _previous: Obj | None) -> Obj:
        daemonset, revisions = state
        before = daemonset["spec"]["template"]
        patch = _patch(request, before)
        after = api.patch("daemonsets", namespace, name, patch, dry_run=True)["spec"]["template"]
        return {"patch": patch, "before": before, "after": after, "changed": not templates_equal(before, after),
                "revision": current_revision(daemonset, revisions)}  # fmt: skip

    def write(state: tuple[Obj, list[Obj]], plan: Obj) -> Obj | None:
        if not plan["changed"] or request.check_mode:
            return None
        body = dict(plan["patch"], metadata={**plan["patch"].get("metadata", {}),
                                             "resourceVersion": state[0]["metadata"]["resourceVersion"]})  # fmt: skip
        return api.patch("daemonsets", namespace, name, body)

    (daemonset, _revisions), plan, written = with_fresh_reads(
        f"DaemonSet {namespace}/{name}", lambda: daemonset_and_revisions(api, namespace, name), decide, write
    )
    revision = plan["revision"]
    result: Obj = {
        "changed": plan["changed"],
        "msg": f"daemonset.apps/{name} "
        + ("updated" if plan["changed"] else "unchanged (the template asked for is live)"),
        "revision_before": int(revision["revision"]) if revision else None,
        "template_generation": template_generation(written or daemonset),
        "changes": template_changes(plan["before"], plan["after"]),
    }
    if request.params["wait"]:  # unchanged: the rollout's state is read once
        result["rollout"] = wait_for_write(request, api, namespace, name, written, None if plan["changed"] else 0)
        if result["rollout"]["failed"]:
            result.update(failed=True, msg=f"{result['msg']}, but the rollout did not complete: "
                                           f"{result['rollout']['msg']}")  # fmt: skip
    if request.diff:
        result["diff"] = {"before": to_yaml(plan["before"]), "after": to_yaml(plan["after"]),
                          "before_header": f"daemonset {namespace}/{name} pod template (live)",
                          "after_header": f"daemonset {namespace}/{name} pod template (asked for)"}  # fmt: skip
    return result
