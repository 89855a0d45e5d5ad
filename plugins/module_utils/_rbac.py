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
_JOBS = ("batch", "jobs")


def _rule(resource: tuple[str, str], *verbs: str) -> Obj:
    return {"apiGroups": [resource[0]], "resources": [resource[1]], "verbs": list(verbs)}


_LEASES, _EVICTION = ("coordination.k8s.io", "leases"), ("", "pods/eviction")

# "required": always needed; "with OPTION": needed with that option (named in forbidden errors too); "optional":
# rules that add detail (revision, blockers, the nodes a wait leaves behind ...), without which the module still
# works and says so.
RBAC_RULES: dict[str, dict[str, list[Obj]]] = {
    "ds_rollout_wait": {
        "required": [_rule(_DAEMONSETS, "list", "watch")],
        "optional": [_rule(_REVISIONS, "list"), _rule(_PODS, "list"), _rule(_EVENTS, "list"), _rule(_NODES, "list")],
    },
    "ds_history": {
        "required": [_rule(_DAEMONSETS, "get"), _rule(_REVISIONS, "list")],
        "optional": [_rule(_DAEMONSETS, "list"), _rule(_PODS, "list")],
    },
    "ds_undo": {
        "required": [_rule(_DAEMONSETS, "get", "patch"), _rule(_REVISIONS, "list")],
        "with wait": [_rule(_DAEMONSETS, "list", "watch")],
        "optional": [_rule(_PODS, "list"), _rule(_EVENTS, "list"), _rule(_NODES, "list")],
    },
    # nodes are cluster-scoped, and the pods that block a node belong to any namespace: see USES for the ClusterRole.
    "ds_diagnose": {
        "required": [_rule(_DAEMONSETS, "get"), {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}],
        "with remediate": [_rule(_EVICTION, "create"), _rule(_DAEMONSETS, "patch")],
        "optional": [_rule(_EVENTS, "list"), _rule(_REVISIONS, "list"), _rule(_LEASES, "list")],
    },
    "ds_batch_rollout": {
        "required": [_rule(_DAEMONSETS, "get", "list", "watch", "patch"), _rule(_REVISIONS, "list"),
                     _rule(_PODS, "list", "delete"), _rule(_NODES, "list")],
    },
    "ds_update": {
        "required": [_rule(_DAEMONSETS, "get", "patch"), _rule(_REVISIONS, "list")],
        "with wait": [_rule(_DAEMONSETS, "list", "watch")],
        "optional": [_rule(_PODS, "list"), _rule(_EVENTS, "list"), _rule(_NODES, "list")],
    },
    "ds_restart": {
        "required": [_rule(_DAEMONSETS, "get", "patch"), _rule(_REVISIONS, "list")],
        "with when_changed": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get"]}],
        "with wait": [_rule(_DAEMONSETS, "list", "watch")],
        "optional": [_rule(_PODS, "list"), _rule(_EVENTS, "list"), _rule(_NODES, "list")],
    },
    "ds_apply": {
        "required": [_rule(_DAEMONSETS, "get", "create", "update", "patch")],
        "with wait": [_rule(_DAEMONSETS, "list", "watch")],
        "with state=absent": [_rule(_DAEMONSETS, "delete"), _rule(_PODS, "list")],  # list: waiting for the pods to go
        "optional": [_rule(_REVISIONS, "list"), _rule(_EVENTS, "list"), _rule(_NODES, "list")],
    },
    # nodes and the pods of every namespace: a ClusterRole. The dry run needs patch (template, images, resources) or
    # create and update (definition); the pre-pull writes only its own DaemonSet and owner Job.
    "ds_preflight": {
        "required": [_rule(_DAEMONSETS, "get", "patch"),
                     {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list"]}],
        "with definition": [_rule(_DAEMONSETS, "create", "update")],
        "with prepull": [_rule(_DAEMONSETS, "create", "list", "delete"), _rule(_PODS, "list", "watch")],
        "optional": [_rule(_JOBS, "create", "get", "delete")],
    },
}  # fmt: skip

# The shipped RBAC (docs/rbac/USE.yaml): the modules of each use, and the resources it grants cluster-wide (a
# ClusterRole: nodes are cluster-scoped; diagnosing lists and evicts the pods of every namespace on a node).
USES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "read-only": (("ds_rollout_wait", "ds_history"), (_NODES,)),  # list nodes: the waits' unhealthy_node_budget
    "update": (("ds_apply", "ds_update", "ds_restart", "ds_undo"), (_NODES,)),  # the deploy and update roles
    "rollback": (("ds_history", "ds_undo"), (_NODES,)),
    "troubleshoot": (("ds_diagnose",), (_NODES, _PODS, _EVICTION, _LEASES)),
    "batch-rollout": (("ds_batch_rollout",), (_NODES,)),
    "preflight": (("ds_preflight",), (_NODES, _PODS)),  # the pods of every namespace on each node: room left
}


def merged(rules: t.Iterable[Obj]) -> list[Obj]:
    """RULES as one rule per resource, verbs sorted, resources sorted by group and name."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                verbs.setdefault((group, resource), set()).update(rule["verbs"])
    return [_rule(resource, *sorted(verbs[resource])) for resource in sorted(verbs)]


def use_rules(use: str) -> tuple[list[Obj], list[Obj]]:
    """(the Role's rules, the ClusterRole's rules) of USE: everything its modules need or can use."""
    modules, cluster_wide = USES[use]
    rules = merged(rule for module in modules for kind in RBAC_RULES[module].values() for rule in kind)
    in_cluster = [rule for rule in rules if (rule["apiGroups"][0], rule["resources"][0]) in cluster_wide]
    return [rule for rule in rules if rule not in in_cluster], in_cluster


def describe_rules(rules: list[Obj], separator: str = "; ") -> str:
    """``get, list, watch on apps/daemonsets; list on pods`` - a Role's rules in one line."""
    parts = []
    for rule in rules:
        group = rule["apiGroups"][0]
        resources = ", ".join(f"{group}/{r}" if group else r for r in rule["resources"])
        parts.append(f"{', '.join(rule['verbs'])} on {resources}")
    return separator.join(parts)


def needed_by(module_name: str) -> str:
    """What a forbidden error says a module needs (empty when the module is unknown): the required rules, and
    those of each option that needs more."""
    needs = RBAC_RULES.get(module_name, {})
    if not needs.get("required"):
        return ""
    extra = "".join(f"; {kind} also {describe_rules(rules, ' and ')}" for kind, rules in needs.items()
                    if kind.startswith("with "))  # fmt: skip
    return f" {module_name} needs: {describe_rules(needs['required'])}{extra}."
