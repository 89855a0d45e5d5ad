# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which nodes should run a DaemonSet, how much it may roll at once, and what its pods request.

The controller's rules (pkg/controller/daemon): a node should run the daemon pod when the node selector and the
required node affinity match and every NoSchedule/NoExecute taint is tolerated, by the template's tolerations
or by the ones the controller adds to every daemon pod. Resources are NOT considered there (the scheduler
decides); ``pod_requests`` and ``node_free`` give what the scheduler compares.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    UNREACHABLE_TAINTS,
    Obj,
    labels,
    pod_terminated,
    requirement_matches,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    natural_key,
    parse_quantity,
    resolved_int_or_percent,
)

# Tolerations the DaemonSet controller adds to every daemon pod (network-unavailable with hostNetwork).
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}

# Kubernetes' defaults for a DaemonSet's update strategy (pkg/apis/apps/v1/defaults.go).
DEFAULT_MAX_UNAVAILABLE = 1
DEFAULT_MAX_SURGE = 0


# --- node selection ----------------------------------------------------------------------------


def _term_matches(term: Obj, node: Obj) -> bool:
    node_labels, fields = labels(node), {"metadata.name": node["metadata"]["name"]}
    expressions, field_expressions = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False  # an empty term matches no objects
    return all(requirement_matches(e, node_labels.get(e["key"])) for e in expressions) and all(
        requirement_matches(e, fields.get(e["key"])) for e in field_expressions
    )


def node_selector_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector AND required node affinity (terms ORed), as the scheduler and the controller apply them."""
    node_labels = labels(node)
    if any(node_labels.get(key) != value for key, value in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def toleration_matches(toleration: Obj, taint: Obj) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return toleration.get("key") == taint["key"] and (toleration.get("value") or "") == (taint.get("value") or "")


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The template's tolerations plus those the controller adds to every daemon pod."""
    extra = DAEMON_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else [])
    return list(pod_spec.get("tolerations") or []) + extra


def untolerated_taints(pod_spec: Obj, node: Obj, effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> list[Obj]:
    tolerations = daemon_tolerations(pod_spec)
    return [
        taint
        for taint in (node.get("spec") or {}).get("taints") or []
        if taint.get("effect") in effects and not any(toleration_matches(tol, taint) for tol in tolerations)
    ]


def taint_string(taint: Obj) -> str:
    """``key=value:Effect``, as kubectl prints taints."""
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint['key']}{value}:{taint.get('effect', '')}"


def node_placement(daemonset: Obj, node: Obj) -> Obj:
    """``should_run`` (counted in desiredNumberScheduled), ``continue_running`` (an existing pod stays),
    ``selector_match`` and the ``taints`` that keep the pod away (the controller's predicates)."""
    pod_spec = daemonset["spec"]["template"].get("spec") or {}
    wanted_name = pod_spec.get("nodeName")
    selector_match = node_selector_matches(pod_spec, node) and wanted_name in (None, "", node["metadata"]["name"])
    blocking = untolerated_taints(pod_spec, node)
    return {
        "selector_match": selector_match,
        "taints": blocking,
        "should_run": selector_match and not blocking,
        "continue_running": selector_match and not any(taint.get("effect") == "NoExecute" for taint in blocking),
    }


def wanted_if_healthy(place: Obj) -> bool:
    """The DaemonSet would run on the node of PLACEMENT (a ``node_placement``) were the node healthy: only the node
    lifecycle controller's not-ready/unreachable taints (if any) keep its pod away."""
    return place["selector_match"] and all(taint["key"] in UNREACHABLE_TAINTS for taint in place["taints"])


def eligible_nodes(daemonset: Obj, nodes: t.Iterable[Obj]) -> list[Obj]:
    """The nodes that should run the DaemonSet's (live) template, in natural name order."""
    chosen = [node for node in nodes if node_placement(daemonset, node)["should_run"]]
    return sorted(chosen, key=lambda node: natural_key(node["metadata"]["name"]))


# --- the rolling-update budget ---------------------------------------------------------------


def update_strategy(daemonset: Obj) -> Obj:
    """``{type, maxUnavailable, maxSurge, minReadySeconds}`` with Kubernetes' defaults filled in (the two
    budgets are None for OnDelete)."""
    spec = daemonset.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    rolling = strategy.get("rollingUpdate") or {}
    rolling_update = kind == "RollingUpdate"
    return {
        "type": kind,
        "maxUnavailable": rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE) if rolling_update else None,
        "maxSurge": rolling.get("maxSurge", DEFAULT_MAX_SURGE) if rolling_update else None,
        "minReadySeconds": int(spec.get("minReadySeconds") or 0),
    }


def strategy_text(strategy: Obj) -> str:
    """``RollingUpdate (maxUnavailable=1, maxSurge=0, minReadySeconds=0)`` or ``OnDelete (minReadySeconds=0)``."""
    budget = (
        f"maxUnavailable={strategy['maxUnavailable']}, maxSurge={strategy['maxSurge']}, "
        if strategy["type"] == "RollingUpdate"
        else ""
    )
    return f"{strategy['type']} ({budget}minReadySeconds={strategy['minReadySeconds']})"


def rolling_budget(daemonset: Obj, desired: int) -> tuple[int, int]:
    """(maxUnavailable, maxSurge) resolved against desiredNumberScheduled, percentages rounded up."""
    rolling = (daemonset["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = resolved_int_or_percent(rolling.get("maxSurge"), desired, DEFAULT_MAX_SURGE)
    unavailable = resolved_int_or_percent(rolling.get("maxUnavailable"), desired, DEFAULT_MAX_UNAVAILABLE)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # the controller never resolves both to zero
    return unavailable, surge


# --- resources -------------------------------------------------------------------------------


def _container_requests(container: Obj) -> dict[str, float]:
    raw = (container.get("resources") or {}).get("requests") or {}
    return {name: parse_quantity(value) for name, value in raw.items()}


def pod_requests(pod_or_template: Obj) -> dict[str, float]:
    """Effective requests: sum of containers (and restartable init containers), at least the largest init
    container, plus overhead; ``pods`` is always 1."""
    spec = pod_or_template.get("spec") or {}
    total: dict[str, float] = {}
    init_max: dict[str, float] = {}
    for container in spec.get("initContainers") or []:
        sidecar = container.get("restartPolicy") == "Always"  # sidecars run alongside the app
        for name, value in _container_requests(container).items():
            if sidecar:
                total[name] = total.get(name, 0.0) + value
            else:
                init_max[name] = max(init_max.get(name, 0.0), value)
    for container in spec.get("containers") or []:
        for name, value in _container_requests(container).items():
            total[name] = total.get(name, 0.0) + value
    for name, value in init_max.items():
        total[name] = max(total.get(name, 0.0), value)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0.0) + parse_quantity(value)
    total["pods"] = 1.0
    return total


def node_allocatable(node: Obj) -> dict[str, float]:
    return {key: parse_quantity(value) for key, value in ((node.get("status") or {}).get("allocatable") or {}).items()}


def node_requested(node_name: str, pods: t.Iterable[Obj]) -> dict[str, float]:
    """Sum of requests of the pods bound to the node and not finished (the scheduler's accounting)."""
    total: dict[str, float] = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == node_name and not pod_terminated(pod):
            for name, value in pod_requests(pod).items():
                total[name] = total.get(name, 0.0) + value
    return total


def node_free(node: Obj, pods: t.Iterable[Obj]) -> dict[str, float]:
    """Allocatable minus what the bound, unfinished pods request, per resource."""
    allocatable, requested = node_allocatable(node), node_requested(node["metadata"]["name"], pods)
    return {name: allocatable.get(name, 0.0) - requested.get(name, 0.0) for name in set(allocatable) | set(requested)}
