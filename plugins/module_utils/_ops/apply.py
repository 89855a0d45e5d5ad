# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Applying a DaemonSet (``kubectl apply``, client- or server-side) and waiting for its rollout, or deleting it
(``kubectl delete``) and waiting until its pods are gone.

Floor 2 (I/O sequence).
"""

from __future__ import annotations

import time

from ansible_collections.kubeops.daemonset.plugins.module_utils._apply import planned, same_object
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import APPLY_PATCH, Api
from ansible_collections.kubeops.daemonset.plugins.module_utils._manifest import one_daemonset, prepare
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    Obj,
    RequestError,
    check_names,
    owned_by,
    selector_query,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.read import manifest_file
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.wait import template_generation, wait_for_write
from ansible_collections.kubeops.daemonset.plugins.module_utils._ops.write import with_fresh_reads
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import strategy_text, update_strategy
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request
from ansible_collections.kubeops.daemonset.plugins.module_utils._template import to_yaml
from ansible_collections.kubeops.daemonset.plugins.module_utils._watch import poll

# Server-owned fields left out of the diff.
_NOT_DIFFED = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")


def _shown(obj: Obj | None) -> str:
    if obj is None:
        return ""
    metadata = {k: v for k, v in obj["metadata"].items() if k not in _NOT_DIFFED}
    return to_yaml({"metadata": metadata, "spec": obj.get("spec")})


def _daemonset(params: Obj) -> Obj:
    """The one DaemonSet of the ``src`` file or the ``definition`` (ManifestError naming which)."""
    if params["src"]:
        return one_daemonset(manifest_file(params["src"]), f"the manifest file {params['src']} (src)")
    return one_daemonset(params["definition"], "the definition")


def _definition(params: Obj) -> Obj:
    strategy = params["strategy"] if params["enforce_strategy"] else None
    return prepare(_daemonset(params), params["name"], params["namespace"], params["change_cause"], strategy)


def _strategy_lines(request: Request, live: Obj | None, definition: Obj) -> list[str]:
    """The seed's two checks: the live update strategy, and the one of the definition before it is applied."""
    params, meta = request.params, definition["metadata"]
    shown = strategy_text(update_strategy(live)) if live else "not deployed yet"
    lines = [f"live DaemonSet {meta['namespace']}/{meta['name']}: {shown}"]
    wanted = update_strategy(definition)
    lines.append(f"definition to apply{'' if params['enforce_strategy'] else ' (as in the manifest, not enforced)'}: "
                 f"{strategy_text(wanted)}")  # fmt: skip
    if params["strategy"] and not params["enforce_strategy"]:
        asked = update_strategy(prepare(definition, None, None, None, params["strategy"]))
        if asked != wanted:
            request.warn(f"the definition's update strategy {strategy_text(wanted)} differs from the one asked for "
                         f"{strategy_text(asked)}; enforce_strategy=false keeps it")  # fmt: skip
    return lines


def _write(request: Request, api: Api, live: Obj | None, definition: Obj) -> Obj | None:
    """The apply's one write (None: nothing to change); check mode asks the server for a dry run."""
    meta, params = definition["metadata"], request.params
    namespace, name, dry_run = meta["namespace"], meta["name"], request.check_mode
    if params["server_side_apply"]:
        return api.patch("daemonsets", namespace, name, definition, dry_run, APPLY_PATCH, params["field_manager"],
                         params["force_conflicts"])  # fmt: skip
    target = planned(live, definition)
    if live is None:
        return api.create("daemonsets", namespace, target, dry_run=dry_run)
    if same_object(target, live):
        return None
    return api.replace("daemonsets", namespace, name, target, dry_run=dry_run)


def apply(request: Request, api: Api) -> Obj:
    """What ds_apply returns for ``state: present`` (see its RETURN)."""
    definition = _definition(request.params)
    namespace, name = definition["metadata"]["namespace"], definition["metadata"]["name"]
    live, _plan, written = with_fresh_reads(
        f"DaemonSet {namespace}/{name}",
        lambda: api.get("daemonsets", namespace, name),
        lambda live, _previous: definition,
        lambda live, definition: _write(request, api, live, definition),
    )
    report = _strategy_lines(request, live, definition)
    changed = written is not None and not (live is not None and same_object(written, live))
    action = ("configured" if live else "created") if changed else "unchanged"
    report.append(f"daemonset.apps/{name} {action}" + (" (check mode)" if request.check_mode else ""))
    after = written if written is not None else live
    live_after = live if request.check_mode else after  # in check mode nothing was written
    result: Obj = {
        "changed": changed,
        "action": action,
        "name": name,
        "namespace": namespace,
        "strategy": {"live": update_strategy(live) if live else None, "definition": update_strategy(definition)},
        "template_generation": template_generation(live_after) if live_after else None,
        "result": after,
        "report": report,
    }
    if request.diff:
        result["diff"] = {"before": _shown(live), "after": _shown(after)}
    if request.params["wait"] and not (request.check_mode and live is None):
        result["rollout"] = wait_for_write(request, api, namespace, name, written)
        report.append(result["rollout"]["message"] or "")
        if result["rollout"]["failed"]:
            result.update(failed=True, msg=result["rollout"]["msg"])
    return result


def _target(params: Obj) -> tuple[str, str]:
    """(namespace, name) to delete: the options', else the definition's."""
    manifest = _daemonset(params)["metadata"] if params["definition"] or params["src"] else {}
    name = params["name"] or manifest.get("name")
    if not name:
        raise RequestError("state=absent needs name, or a definition that names the DaemonSet")
    namespace = params["namespace"] or manifest.get("namespace") or "default"
    check_names(name, namespace, "the DaemonSet's ")
    return namespace, name


def delete(request: Request, api: Api) -> Obj:
    """What ds_apply returns for ``state: absent``: ``kubectl delete``, then (with wait) until its pods are gone."""
    params = request.params
    namespace, name = _target(params)
    live = api.get("daemonsets", namespace, name)
    result: Obj = {
        "changed": live is not None,
        "action": "deleted" if live else "absent",
        "name": name,
        "namespace": namespace,
        "report": [f"daemonset.apps/{name} {'deleted' if live else 'not found'}"],
    }
    if live is None:
        return result
    api.delete("daemonsets", namespace, name, dry_run=request.check_mode, propagation="Background")
    if request.diff:
        result["diff"] = {"before": _shown(live), "after": ""}
    if params["wait"] and not request.check_mode:
        selector = selector_query(live["spec"]["selector"])
        gone = poll(lambda: not owned_by(live, api.list_items("pods", namespace, selector)),
                    time.monotonic() + params["delete_timeout"], 1.0)  # fmt: skip
        if not gone:
            result.update(failed=True, msg=f"DaemonSet {namespace}/{name} deleted, but its pods were not gone within "
                                           f"{params['delete_timeout']}s")  # fmt: skip
    return result


def run(request: Request, api: Api) -> Obj:
    return apply(request, api) if request.params["state"] == "present" else delete(request, api)
