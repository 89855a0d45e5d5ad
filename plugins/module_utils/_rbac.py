# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The RBAC each module needs, as Role rules: the one copy that forbidden errors quote, the shipped manifests
(docs/rbac/) are checked against and each module's documentation names.

Floor 1 (pure).
"""

from __future__ import annotations

import typing as t

Obj = dict[str, t.Any]

_DAEMONSETS, _REVISIONS = ("apps", "daemonsets"), ("apps", "controllerrevisions")
_PODS, _EVENTS, _NODES = ("", "pods"), ("", "events"), ("", "nodes")


def _rule(resource: tuple[str, str], *verbs: str) -> Obj:
    return {"apiGroups": [resource[0]], "resources": [resource[1]], "verbs": list(verbs)}


# "optional" rules add detail (revision, blockers, the nodes a wait leaves behind ...); without them the module still
# works and says so.
RBAC_RULES: dict[str, dict[str, list[Obj]]] = {
    "ds_rollout_wait": {
        "required": [_rule(_DAEMONSETS, "get", "list", "watch")],
        "optional": [_rule(_REVISIONS, "list"), {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]},
                     {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
    },
    "ds_history": {
        "required": [_rule(_DAEMONSETS, "get"), _rule(_REVISIONS, "list")],
        "optional": [_rule(_PODS, "list")],
    },
    "ds_undo": {
        "required": [_rule(_DAEMONSETS, "get", "patch"), _rule(_REVISIONS, "list")],
        "optional": [_rule(_DAEMONSETS, "list", "watch"),
                     {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]}, _rule(_NODES, "list")],
    },
    # nodes are cluster-scoped: ds_diagnose needs a ClusterRole (pods of all namespaces, node leases).
    "ds_diagnose": {
        "required": [_rule(_DAEMONSETS, "get"), {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}],
        "optional": [_rule(_EVENTS, "list"), _rule(_REVISIONS, "list"),
                     {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list"]},
                     _rule(("", "pods/eviction"), "create"), _rule(_DAEMONSETS, "patch")],
    },
    "ds_batch_rollout": {
        "required": [_rule(_DAEMONSETS, "get", "list", "watch", "patch"), _rule(_REVISIONS, "list"),
                     _rule(_PODS, "list", "delete"), _rule(_NODES, "list")],
        "optional": [],
    },
    "ds_update": {
        "required": [_rule(_DAEMONSETS, "get", "patch"), _rule(_REVISIONS, "list")],
        "optional": [_rule(_DAEMONSETS, "list", "watch"), _rule(_NODES, "list")],
    },
    "ds_restart": {
        "required": [_rule(_DAEMONSETS, "get", "patch"), _rule(_REVISIONS, "list")],
        "optional": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get"]},
                     _rule(_DAEMONSETS, "list", "watch"), _rule(_NODES, "list")],
    },
    "ds_apply": {
        "required": [_rule(_DAEMONSETS, "get", "list", "watch", "create", "update", "patch")],
        "optional": [_rule(_DAEMONSETS, "delete"), _rule(_REVISIONS, "list"), _rule(_PODS, "list"),
                     _rule(_NODES, "list")],
    },
}  # fmt: skip


def describe_rules(rules: list[Obj]) -> str:
    """``get, list, watch on apps/daemonsets; list on pods`` - a Role's rules in one line."""
    parts = []
    for rule in rules:
        group = rule["apiGroups"][0]
        resources = ", ".join(f"{group}/{r}" if group else r for r in rule["resources"])
        parts.append(f"{', '.join(rule['verbs'])} on {resources}")
    return "; ".join(parts)


def needed_by(module_name: str) -> str:
    """What a forbidden error says a module needs (empty when the module is unknown)."""
    rules = RBAC_RULES.get(module_name, {}).get("required")
    return f" {module_name} needs: {describe_rules(rules)}." if rules else ""
