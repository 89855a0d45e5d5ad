# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Nodes a rollout may leave behind: the ``unhealthy_node_budget`` of the waits and the batch gates.

A NotReady or unreachable node blocks a rollout for good: its old pod stays Terminating until the node returns
(kubernetes #63465), or the controller drops the node from desiredNumberScheduled and kubectl reports success while
the node runs no pod at all. Within the budget such nodes (and cordoned ones) are set apart and named, and the
rollout counts as done when every healthy node the DaemonSet targets runs an updated, available pod.

Floor 1 (pure).
"""

from __future__ import annotations

import typing as t
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    Obj,
    node_trouble,
    owned_by,
    pod_available,
    pod_target_node,
    pod_terminated,
    pod_terminating,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import (
    node_placement,
    rolling_budget,
    update_strategy,
    wanted_if_healthy,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._rollout import SHOWN_NAMES, pod_failure, pod_is_updated
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import plural, preview, resolved_int_or_percent

OPTION = "unhealthy_node_budget"


def allowed(budget: int | str, targets: int) -> int:
    """How many of TARGETS nodes BUDGET (a count, or a percentage rounded down so that it never allows more than
    it says) lets a rollout leave behind."""
    return resolved_int_or_percent(budget, targets, 0, round_up=False)


def _pod_state(pods: list[Obj], daemonset: Obj, current_hash: str | None, now: datetime | None) -> str | None:
    """What keeps a node from counting as rolled out (None: it runs an updated, available pod and no old one)."""
    live = [pod for pod in pods if not pod_terminating(pod) and not pod_terminated(pod)]
    if not live:
        return "old pod terminating" if pods else "no pod"
    if not all(pod_is_updated(pod, daemonset, current_hash) for pod in live):
        return "old revision"
    min_ready = int(daemonset["spec"].get("minReadySeconds") or 0)
    if any(pod_available(pod, min_ready, now) for pod in live):
        return None
    failure = pod_failure(live[0], now, min_ready)
    return f"new pod not available ({failure['reason']})" if failure else "new pod not available"


def left_behind(daemonset: Obj, nodes: t.Iterable[Obj], pods: t.Iterable[Obj], current_hash: str | None,
                now: datetime | None) -> Obj:  # fmt: skip
    """Where the rollout of the live template stands on the nodes it targets, unhealthy ones apart:
    ``{targets, pending: [healthy nodes not rolled out], skipped: [{node, trouble, pod}], max_unavailable}``
    (maxUnavailable resolved against the targets; None for OnDelete).

    A healthy node is targeted when the controller would run the pod there; an unhealthy one also when only the
    not-ready/unreachable taints keep the pod away (the controller dropped it). Cordoned nodes run daemon pods (they
    tolerate it) and are set apart only when theirs is not rolled out."""
    by_node: dict[str, list[Obj]] = {}
    for pod in owned_by(daemonset, pods):
        by_node.setdefault(pod_target_node(pod) or "", []).append(pod)
    targets, pending, skipped = 0, [], []
    node_list = list(nodes)
    for node in node_list:
        name, trouble, place = node["metadata"]["name"], node_trouble(node), node_placement(daemonset, node)
        if not (place["should_run"] or (trouble not in (None, "cordoned") and wanted_if_healthy(place))):
            continue
        targets += 1
        state = _pod_state(by_node.get(name, []), daemonset, current_hash, now)
        if state is None:
            continue
        if trouble:
            skipped.append({"node": name, "trouble": trouble, "pod": state})
        else:
            pending.append(name)
    strategy = update_strategy(daemonset)
    max_unavailable = rolling_budget(daemonset, targets)[0] if strategy["type"] == "RollingUpdate" else None
    return {"targets": targets, "pending": pending, "skipped": skipped, "max_unavailable": max_unavailable}


def verdict(view: Obj, budget: int | str) -> Obj:
    """What LEFT_BEHIND's VIEW means under BUDGET: ``{done, allowed, over, line}``. Done: nodes are set apart,
    within the budget, and every healthy target node is rolled out (without skipped nodes kubectl's rule decides).
    LINE names the skipped nodes for the progress output and the messages."""
    skipped, limit = view["skipped"], allowed(budget, view["targets"])
    over = len(skipped) > limit
    if not skipped:
        return {"done": False, "allowed": limit, "over": False, "line": None}
    names = preview([f"{s['node']} ({s['trouble']}, {s['pod']})" for s in skipped], SHOWN_NAMES)
    where = f"over {OPTION}={budget}" if over else f"within {OPTION}={budget}"
    line = (f"{len(skipped)} of {plural(view['targets'], 'target node')} unhealthy without the new pod, {where} "
            f"({limit} allowed): {names}")  # fmt: skip
    return {"done": not over and not view["pending"], "allowed": limit, "over": over, "line": line + _stall(view)}


def _stall(view: Obj) -> str:
    """Why the healthy nodes left do not move: the unavailable pods of the unhealthy ones count against
    maxUnavailable (the controller's rule since Kubernetes 1.31), so it updates no other node."""
    holding = sum(1 for s in view["skipped"] if s["pod"] != "no pod")
    if not view["pending"] or view["max_unavailable"] is None or holding < view["max_unavailable"]:
        return ""
    left = f"{plural(len(view['pending']), 'healthy node')} left ({preview(view['pending'])})"
    return (f"; their unavailable pods use up maxUnavailable={view['max_unavailable']}, so the controller updates "
            f"none of the {left}: raise maxUnavailable above the number of unhealthy nodes, or delete the dead nodes "
            "(kubectl delete node)")  # fmt: skip


def dead_targets(daemonset: Obj, nodes: t.Iterable[Obj]) -> list[Obj]:
    """The NotReady and unreachable nodes DAEMONSET targets, as ``left_behind`` reports skipped nodes: a batch
    rollout leaves them out of its plan, as the pods it would delete there could not be replaced."""
    return [
        {"node": node["metadata"]["name"], "trouble": trouble, "pod": "left out of the plan"}
        for node in nodes
        if (trouble := node_trouble(node)) in ("NotReady", "unreachable")
        and wanted_if_healthy(node_placement(daemonset, node))
    ]
