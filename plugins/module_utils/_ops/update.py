# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Changing a DaemonSet's pod template: a whole new template, or images and resources by container (``kubectl
set image`` / ``set resources``), with the change-cause in the same write; or restarting its pods (``kubectl rollout
restart``), when asked only once the ConfigMaps and Secrets they use have changed.

A server dry run tells whether the template really changes once the server has filled in its defaults; only then
is the patch written, conditioned on the resourceVersion that was read. The dry run itself carries no condition:
during a rollout the controller's status writes move the resourceVersion many times a second.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import current_revision
from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import parsed
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    CHANGE_CAUSE,
    CONFIG_HASH,
    REVISION_BEFORE,
    Obj,
    RequestError,
    annotations,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import daemonset_and_revisions, manifest_file
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.wait import template_generation, wait_for_write
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.write import check_owners, with_fresh_reads
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import (
    config_hash,
    parse_config_reference,
    pod_template_of,
    restart_patch,
    template_changes,
    template_config_hash,
    template_patch,
    templates_equal,
    to_yaml,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import rfc3339, utcnow


def requested_patch(request: Request, live_template: Obj) -> Obj:
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
    if params.get("change_cause"):  # ds_preflight builds the same patch, without one
        patch["metadata"] = {"annotations": {CHANGE_CAUSE: params["change_cause"]}}
    return patch


Patcher = t.Callable[[Obj], t.Optional[Obj]]  # the live DaemonSet -> the patch asked for (None: nothing to do)


def change_template(request: Request, api: Api, patch_for: Patcher, action: str, done: str, unchanged: str) -> Obj:
    """Patch the template as PATCH_FOR says, when the server-defaulted result differs from the live template; then
    (with the ``wait`` option) wait for it. ACTION names the change in messages (``an update``), DONE and UNCHANGED
    say what happened. The result of ds_update and ds_restart (see their RETURN)."""
    namespace, name = request.params["namespace"], request.params["name"]
    owners: list[Obj] = []

    def decide(state: tuple[Obj, list[Obj]], previous: Obj | None) -> Obj:
        daemonset, revisions = state
        before, patch = daemonset["spec"]["template"], patch_for(daemonset)
        after = before if patch is None else api.patch("daemonsets", namespace, name, patch, True)["spec"]["template"]
        changed = not templates_equal(before, after)
        if changed and previous is None:
            owners.extend(check_owners(request, daemonset, action))
        return {"patch": patch, "before": before, "after": after, "changed": changed,
                "revision": current_revision(daemonset, revisions)}  # fmt: skip

    def write(state: tuple[Obj, list[Obj]], plan: Obj) -> Obj | None:
        if not plan["changed"] or request.check_mode:
            return None
        metadata = dict(plan["patch"].get("metadata", {}), resourceVersion=state[0]["metadata"]["resourceVersion"])
        if request.params.get("record_revision_before") and plan["revision"]:
            metadata["annotations"] = {**metadata.get("annotations", {}),
                                       REVISION_BEFORE: str(plan["revision"]["revision"])}  # fmt: skip
        return api.patch("daemonsets", namespace, name, dict(plan["patch"], metadata=metadata))

    (daemonset, _revisions), plan, written = with_fresh_reads(
        f"DaemonSet {namespace}/{name}", lambda: daemonset_and_revisions(api, namespace, name), decide, write
    )
    revision = plan["revision"]
    result: Obj = {
        "changed": plan["changed"],
        "msg": f"daemonset.apps/{name} {done if plan['changed'] else unchanged}",
        "revision_before": int(revision["revision"]) if revision else None,
        "template_generation": template_generation(written or daemonset),
        "changes": template_changes(plan["before"], plan["after"]),
        "owners": owners,
    }
    if "record_revision_before" in request.params:  # ds_update's option
        result["recorded_revision_before"] = _recorded(written or daemonset)
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


def _recorded(daemonset: Obj) -> int | None:
    """The revision an earlier update with record_revision_before found live (None: none recorded)."""
    value = annotations(daemonset).get(REVISION_BEFORE, "")
    return int(value) if value.isdigit() else None


def update(request: Request, api: Api) -> Obj:
    """What ds_update returns (see its RETURN)."""
    return change_template(request, api, lambda daemonset: requested_patch(request, daemonset["spec"]["template"]),
                           "an update", "updated", "unchanged (the template asked for is live)")  # fmt: skip


def restart(request: Request, api: Api) -> Obj:
    """``kubectl rollout restart``; with ``when_changed``, only when the hash of those ConfigMaps and Secrets differs
    from the one the pod template carries (what ds_restart returns, see its RETURN)."""
    namespace, references = request.params["namespace"], request.params["when_changed"] or []
    digest = (
        config_hash([_config_object(api, namespace, reference) for reference in references]) if references else None
    )

    def patch_for(daemonset: Obj) -> Obj | None:
        if digest is not None and template_config_hash(daemonset["spec"]["template"]) == digest:
            return None  # the pods already run with this configuration
        stamp = rfc3339(utcnow())
        return {"spec": {"template": restart_patch(stamp, {CONFIG_HASH: digest} if digest else None)}}

    result = change_template(request, api, patch_for, "a restart", "restarted",
                             "not restarted: its configuration is unchanged")  # fmt: skip
    return dict(result, config_hash=digest)


def _config_object(api: Api, namespace: str, reference: str) -> Obj:
    """The ConfigMap or Secret a ``configmap/NAME`` / ``secret/NAME`` reference names (RequestError: missing)."""
    kind, name = parse_config_reference(reference)
    found = api.get(f"{kind}s", namespace, name)
    if found is None:
        raise RequestError(f"when_changed: {reference} not found in namespace {namespace}")
    return found
