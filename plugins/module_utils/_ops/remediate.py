# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Carrying out a remediation of a stuck rollout: evictions through the Eviction API, a rollback to the last good
revision, or a fixed template. The decisions are ``_remediate``'s; check mode sends every write as a dry run.

Floor 2 (I/O sequence). Each returns ``(remediation result, diff or None)``.
"""

from __future__ import annotations

import copy

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError
from ansible_collections.kubeops.daemonset.plugins.module_utils._history import plan_undo, undo_patch
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import Obj, ref
from ansible_collections.kubeops.daemonset.plugins.module_utils._remediate import (
    last_available_revision,
    plan_evictions,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import (
    pod_template_of,
    template_changes,
    template_patch,
    templates_equal,
)


def _on_node(pods: list[Obj], node: str) -> list[str]:
    return sorted(ref(pod) for pod in pods if (pod.get("spec") or {}).get("nodeName") == node)


def evict_blockers(request: Request, api: Api, cluster: Obj, findings: list[Obj]) -> tuple[Obj, Obj | None]:
    """Evict the fewest pods that make room for the daemon pod on each node short of resources."""
    nodes = {node["metadata"]["name"]: node for node in cluster["nodes"]}
    blocked = sorted({n for f in findings if f["cause"] == "resource_exhaustion" for n in f["nodes"]})
    pods = cluster["all_pods"]
    plans = [plan_evictions(cluster["daemonset"], nodes[n], pods, request.params["force"]) for n in blocked]
    evicted, refused, gone = [], [], []
    for plan in plans:
        for pod in plan["evict"]:
            namespace, name = pod.split("/", 1)
            try:
                api.evict_pod(namespace, name, dry_run=request.check_mode)
                evicted.append(pod)
            except K8sError as exc:
                if exc.status == 404:  # deleted since it was listed: the room is free anyway
                    gone.append(pod)
                elif exc.status == 429:  # a PodDisruptionBudget does not allow it now
                    refused.append({"pod": pod, "status": exc.status, "message": str(exc)})
                else:
                    raise
    before = {plan["node"]: _on_node(pods, plan["node"]) for plan in plans}
    diff = {"before": before, "after": {node: [p for p in refs if p not in evicted] for node, refs in before.items()}}
    remediation = {"action": "evict_blockers", "evicted": evicted, "refused": refused, "gone": gone, "plans": plans}
    return remediation, diff


def _patch_template(request: Request, api: Api, daemonset: Obj, patch: Obj, dry_run: bool) -> Obj:
    """Conditioned on the resourceVersion read: a concurrent change fails (409) instead of being overwritten."""
    patch = copy.deepcopy(patch)
    patch.setdefault("metadata", {})["resourceVersion"] = daemonset["metadata"]["resourceVersion"]
    meta = daemonset["metadata"]
    return api.patch("daemonsets", meta["namespace"], meta["name"], patch, dry_run=dry_run)


def rollback(request: Request, api: Api, cluster: Obj, findings: list[Obj]) -> tuple[Obj, Obj | None]:
    """Back to the newest revision whose pods are all Ready, when the template is broken."""
    result: Obj = {"action": "rollback", "patched": False, "rolled_back_to": None}
    if not any(f["cause"] == "broken_template" for f in findings):
        return dict(result, skipped="no broken_template finding"), None
    daemonset = cluster["daemonset"]
    if cluster["revisions"] is None:
        raise K8sError("rollback needs list on apps/controllerrevisions", 403)
    target = last_available_revision(daemonset, cluster["revisions"], cluster["pods"])
    if target is None:
        return dict(result, skipped="no earlier revision whose pods are all Ready"), None
    plan = plan_undo(daemonset, cluster["revisions"], int(target["revision"]))
    result.update(rolled_back_to=plan["to_revision"], rolled_back_from=plan["rolled_back_from"], msg=plan["message"])
    if not plan["changed"]:
        return result, None
    _patch_template(request, api, daemonset, undo_patch(plan["target"]), dry_run=request.check_mode)
    result.update(patched=True, predicted_revision=plan["predicted_revision"])
    return result, {"before": plan["before"], "after": plan["after"]}


def fixed_template(request: Request, api: Api, cluster: Obj) -> tuple[Obj, Obj | None]:
    """Patch the template; a server dry run first gives the template as the server would store it (defaults
    filled in), so an already applied fix compares equal and nothing is written."""
    daemonset, params = cluster["daemonset"], request.params
    before = daemonset["spec"]["template"]
    template = pod_template_of(params["template"], "template") if params["template"] else None
    patch = {"spec": {"template": template_patch(before, template=template, images=params["images"])}}
    after = _patch_template(request, api, daemonset, patch, dry_run=True)["spec"]["template"]
    changed = not templates_equal(before, after)
    if changed and not request.check_mode:
        _patch_template(request, api, daemonset, patch, dry_run=False)
    result = {"action": "fixed_template", "patched": changed, "changes": template_changes(before, after)}
    return result, {"before": before, "after": after} if changed else None
