# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Why a DaemonSet rollout is stuck: nodes, pods, events and leases in, named causes with evidence out.

A finding is ``{cause, severity, summary, nodes, pods, evidence, suggested_action}``:

==================== ======== ==============================================================
cause                severity meaning
==================== ======== ==============================================================
spec_not_observed    error    the controller has not observed the latest spec (controller down?)
resource_exhaustion  error    the scheduler cannot fit the daemon pod (Insufficient cpu ...)
unschedulable        error    the scheduler refuses the node for another reason (host port ...)
pod_missing          warning  a node that should run the DaemonSet has no pod at all
broken_template      error    updated pods not Ready: ErrImagePull, CrashLoopBackOff ...
node_not_ready       error    NotReady/unreachable nodes holding daemon pods (Unknown, Terminating)
clock_skew           error    minReadySeconds and node clocks off the API server's clock
budget_exhausted     warning  maxUnavailable/maxSurge used up by unavailable OLD pods
on_delete_pending    warning  OnDelete strategy: outdated pods wait for someone to delete them
rollout_in_progress  warning  pods are being replaced and nothing is wrong yet
unexplained          error    the rollout is incomplete and nothing above accounts for part of it
misscheduled         warning  daemon pods on nodes that should not run them
untolerated_taint    info     nodes skipped because of taints the pods do not tolerate
==================== ======== ==============================================================

The diagnosis accounts for the whole gap between the controller's status and "successfully rolled out": every
node that should run an updated, available pod and does not is named by a finding, and so is every count of the
controller's that the nodes and pods do not explain. So "no problem found" (only ``info`` findings) happens only
when ``kubectl rollout status`` would say the rollout is complete.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import re
import typing as t
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils._history import current_hash
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    Obj,
    controller_ref,
    event_time,
    events_for,
    is_daemonset_pod,
    is_mirror_pod,
    node_ready,
    node_unhealthy,
    owned_by,
    pod_available,
    pod_condition,
    pod_hash,
    pod_is_ready,
    pod_target_node,
    pod_terminated,
    pod_terminating,
    ref,
    summarize_events,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import (
    node_allocatable,
    node_placement,
    node_requested,
    pod_requests,
    rolling_budget,
    taint_string,
    wanted_if_healthy,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._rollout import (
    SHOWN_NAMES,
    describe_failure_group,
    group_pod_failures,
    pod_failure,
    rollout_status,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    format_quantity,
    parse_time,
    plural,
    preview,
    seconds_between,
)

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
# Seconds the controller may take to count a pod available after minReadySeconds (it requeues).
AVAILABILITY_SLACK_SECONDS = 10
_STATUS_COUNTS = (
    "desiredNumberScheduled",
    "currentNumberScheduled",
    "updatedNumberScheduled",
    "numberReady",
    "numberAvailable",
    "numberMisscheduled",
    "numberUnavailable",
)


class ClusterView:
    """What the controller sees: placement per node, daemon pods per node, the current hash, the server's now."""

    def __init__(self, daemonset: Obj, nodes: list[Obj], pods: list[Obj], revisions: list[Obj] | None, now):
        self.ds = daemonset
        self.now = now
        self.min_ready = int(daemonset["spec"].get("minReadySeconds") or 0)
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.placement = {name: node_placement(daemonset, node) for name, node in self.nodes.items()}
        self.all_pods = pods
        self.pods = owned_by(daemonset, pods)
        self.by_node: dict[str, list[Obj]] = {}
        for pod in self.pods:
            self.by_node.setdefault(pod_target_node(pod) or "", []).append(pod)
        self.hash = current_hash(daemonset, revisions)

    @property
    def should_run(self) -> list[str]:
        return sorted(name for name, place in self.placement.items() if place["should_run"])

    def updated(self, pod: Obj) -> bool:
        """Without the revisions every pod counts as updated (the template cannot be told apart)."""
        return self.hash is None or pod_hash(pod) == self.hash

    def running_pods(self, node: str) -> list[Obj]:
        """The node's daemon pods that are not being deleted."""
        return [pod for pod in self.by_node.get(node, []) if not pod_terminating(pod)]

    def available(self, pod: Obj) -> bool:
        return pod_available(pod, self.min_ready, self.now)


def _finding(
    *,
    cause: str,
    severity: str,
    summary: str,
    nodes: t.Iterable[str] = (),
    pods: t.Iterable[str] = (),
    evidence: Obj,
    action: str,
) -> Obj:
    return {
        "cause": cause,
        "severity": severity,
        "summary": summary,
        "nodes": sorted(set(nodes)),
        "pods": sorted(set(pods)),
        "evidence": evidence,
        "suggested_action": action,
    }


def _names(pods: t.Iterable[Obj]) -> list[str]:
    return [pod["metadata"]["name"] for pod in pods]


# --- the scheduler's verdict -------------------------------------------------------------------

_SCHEDULER_MESSAGE = re.compile(r"^\d+/\d+ nodes are available: (?P<reasons>.*?)(?:\. preemption:.*)?\.?$", re.S)
# Reasons about the OTHER nodes: a daemon pod is pinned to one node by node affinity, so every other node
# fails NodeAffinity (or, earlier in the filter order, a taint the pod does not tolerate).
_OTHER_NODES = re.compile(r"node affinity/selector|\[NodeAffinity\]", re.I)
_TAINT_REASON = re.compile(r"untolerated taint", re.I)


def is_resource_reason(reason: str) -> bool:
    return reason.startswith("Insufficient ") or reason.startswith("Too many pods")


def scheduler_reasons(message: str) -> list[str]:
    """``0/5 nodes are available: 1 Insufficient cpu, 4 node(s) didn't match Pod's node affinity/selector.
    preemption: ...`` -> ``["Insufficient cpu"]``: the reasons about the node the daemon pod is pinned to."""
    match = _SCHEDULER_MESSAGE.match(message.strip())
    if not match:
        return [message.strip()] if message.strip() else []
    parts = [re.sub(r"^\d+ ", "", part.strip()) for part in match.group("reasons").split(", ")]
    reasons = [r for r in parts if r and not _OTHER_NODES.search(r)]
    resource = [r for r in reasons if is_resource_reason(r)]
    if resource:
        return resource
    # the controller only creates pods for nodes whose taints the pod tolerates: taints are other nodes'
    return [r for r in reasons if not _TAINT_REASON.search(r)] or reasons


def _shortage_resources(reasons: t.Iterable[str]) -> list[str]:
    names = []
    for reason in reasons:
        if reason.startswith("Insufficient "):
            names.append(reason[len("Insufficient ") :])
        elif reason.startswith("Too many pods"):
            names.append("pods")
    return names


def blocked_nodes(daemonset: Obj, nodes: list[Obj], pods: list[Obj], events: t.Iterable[Obj] = ()) -> dict[str, Obj]:
    """Nodes that should run the DaemonSet whose daemon pod the scheduler cannot place:
    ``{node: {"pod": pending pod, "reasons": [...], "message": ...}}``."""
    view = ClusterView(daemonset, nodes, pods, None, None)
    events = list(events)
    blocked = {}
    for node in view.should_run:
        for pod in view.running_pods(node):
            if (pod.get("spec") or {}).get("nodeName"):
                continue
            scheduled = pod_condition(pod, "PodScheduled") or {}
            message = scheduled.get("message") or ""
            failed = [
                e for e in events_for(events, "Pod", [pod["metadata"]["name"]]) if e.get("reason") == "FailedScheduling"
            ]
            if failed:
                message = max(failed, key=event_time).get("message") or message
            if scheduled.get("status") == "False" or failed:
                blocked[node] = {"pod": pod, "reasons": scheduler_reasons(message), "message": message}
    return blocked


def _largest_pods(node: str, pods: list[Obj], resources: list[str], limit: int = 3) -> list[Obj]:
    """Non-DaemonSet, non-mirror pods on the node, largest request of the short resources first."""
    candidates = [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == node
        and not pod_terminated(p)
        and not is_daemonset_pod(p)
        and not is_mirror_pod(p)
    ]
    keys = [r for r in resources if r != "pods"] or ["cpu", "memory"]

    def size(pod: Obj) -> tuple[float, ...]:
        requests = pod_requests(pod)
        return tuple(requests.get(r, 0.0) for r in keys)

    out = []
    for pod in sorted(candidates, key=size, reverse=True)[:limit]:
        owner, requests = controller_ref(pod), pod_requests(pod)
        out.append(
            {
                "pod": ref(pod),
                "owner": f"{owner['kind']}/{owner['name']}" if owner else None,
                "requests": {r: format_quantity(r, requests.get(r, 0.0)) for r in keys},
            }
        )
    return out


def _node_resources(node: Obj, pods: list[Obj], need: dict[str, float], resources: list[str]) -> Obj:
    allocatable = node_allocatable(node)
    requested = node_requested(node["metadata"]["name"], pods)
    return {
        r: {
            "allocatable": format_quantity(r, allocatable.get(r, 0.0)),
            "requested": format_quantity(r, requested.get(r, 0.0)),
            "free": format_quantity(r, allocatable.get(r, 0.0) - requested.get(r, 0.0)),
            "daemon_pod_needs": format_quantity(r, need.get(r, 0.0)),
        }
        for r in resources or ["cpu", "memory", "pods"]
    }


# --- causes ----------------------------------------------------------------------------------


def _find_not_observed(view: ClusterView) -> list[Obj]:
    status = rollout_status(view.ds)
    if status["observed"]:
        return []
    return [
        _finding(
            cause="spec_not_observed",
            severity="error",
            summary=(
                f"the DaemonSet controller has not observed generation {status['generation']} yet "
                f"(observed {status['observed_generation']}); its status is not current"
            ),
            nodes=view.should_run,
            evidence={"generation": status["generation"], "observed_generation": status["observed_generation"]},
            action="check that kube-controller-manager is running and healthy (its logs, leader election); the "
            "rollout cannot start until the controller observes the change",
        )
    ]


def _find_unschedulable(view: ClusterView, events: list[Obj]) -> list[Obj]:
    blocked = blocked_nodes(view.ds, list(view.nodes.values()), view.pods, events)
    need = pod_requests(view.ds["spec"]["template"])
    groups: dict[tuple[str, ...], list[str]] = {}
    for node, info in blocked.items():
        groups.setdefault(tuple(info["reasons"]) or ("unknown",), []).append(node)
    findings = []
    for reasons, nodes in sorted(groups.items(), key=lambda item: -len(item[1])):
        short = _shortage_resources(reasons)
        per_node = {
            node: {
                "resources": _node_resources(view.nodes[node], view.all_pods, need, short),
                "candidates": _largest_pods(node, view.all_pods, short),
            }
            for node in nodes[:SHOWN_NAMES]
        }
        if short:
            action = (
                "free room on these nodes: move or evict some of the candidate pods (remediate=evict_blockers "
                "uses the Eviction API and honours PodDisruptionBudgets), lower the DaemonSet's requests, or "
                "add capacity"
            )
        else:
            action = (
                "fix what the scheduler reports for these nodes, or keep the DaemonSet off them (nodeSelector/affinity)"
            )
        findings.append(
            _finding(
                cause="resource_exhaustion" if short else "unschedulable",
                severity="error",
                summary=f"{', '.join(reasons)} on {plural(len(nodes), 'node')} ({preview(nodes)})",
                nodes=nodes,
                pods=[blocked[n]["pod"]["metadata"]["name"] for n in nodes],
                evidence={
                    "scheduler_reasons": list(reasons),
                    "message": blocked[nodes[0]]["message"],
                    "per_node": per_node,
                },
                action=action,
            )
        )
    return findings


def _find_missing(view: ClusterView, events: list[Obj]) -> list[Obj]:
    missing = [n for n in view.should_run if not view.by_node.get(n)]
    if not missing:
        return []
    ds_events = summarize_events(events_for(events, "DaemonSet", [view.ds["metadata"]["name"]]))
    summary = f"no daemon pod on {plural(len(missing), 'node')} that should run one"
    if ds_events:
        summary += f": {ds_events[0]['reason']}"
    return [
        _finding(
            cause="pod_missing",
            severity="warning",
            summary=summary,
            nodes=missing,
            evidence={"daemonset_events": ds_events, "examples": missing[:SHOWN_NAMES]},
            action="check the DaemonSet's events (FailedCreate: quota, admission webhooks, RBAC of the controller)",
        )
    ]


def _find_broken_template(view: ClusterView, events: list[Obj]) -> list[Obj]:
    failing = [
        p
        for node in view.should_run
        for p in view.running_pods(node)
        if view.updated(p) and (p.get("spec") or {}).get("nodeName") and not node_unhealthy(view.nodes[node])
    ]
    groups = group_pod_failures(failing, events, view.now)
    if not groups:
        return []
    broken = [p for p in failing if not (pod_failure(p, view.now) or {"transient": True})["transient"]]
    summary = f"{plural(sum(g['count'] for g in groups), 'updated pod')} not Ready: " + ", ".join(
        describe_failure_group(g) for g in groups
    )
    return [
        _finding(
            cause="broken_template",
            severity="error",
            summary=summary,
            nodes=[pod_target_node(p) or "" for p in broken],
            pods=_names(broken),
            evidence={"groups": groups, "current_hash": view.hash},
            action="roll back to the last fully available revision (remediate=rollback) or apply a fixed template "
            "(remediate=fixed_template or image); a new rollout is not blocked by the broken one",
        )
    ]


def _not_ready_node_detail(view: ClusterView, name: str) -> Obj:
    node, ready = view.nodes[name], node_ready(view.nodes[name])
    states = [
        {
            "pod": pod["metadata"]["name"],
            "state": "Terminating" if pod_terminating(pod) else (pod.get("status") or {}).get("phase"),
            "ready": pod_is_ready(pod),
            "updated": view.updated(pod),
        }
        for pod in view.by_node.get(name, [])
    ]
    return {
        "ready": ready.get("status"),
        "reason": ready.get("reason"),
        "message": ready.get("message"),
        "last_heartbeat": ready.get("lastHeartbeatTime"),
        "taints": [taint_string(taint) for taint in (node.get("spec") or {}).get("taints") or []],
        "pods": states,
    }


def _find_not_ready_nodes(view: ClusterView) -> list[Obj]:
    nodes = []
    for name in sorted(view.nodes):
        # nodes the DaemonSet would run on were it not for the not-ready/unreachable taints count too
        if node_unhealthy(view.nodes[name]) and (view.by_node.get(name) or wanted_if_healthy(view.placement[name])):
            nodes.append(name)
    if not nodes:
        return []
    counted = any(view.placement[name]["should_run"] for name in nodes)
    pods = [pod for name in nodes for pod in view.by_node.get(name, [])]
    per_node = {name: _not_ready_node_detail(view, name) for name in nodes[:SHOWN_NAMES]}
    stuck = sum(1 for info in per_node.values() for s in info["pods"] if s["state"] in ("Terminating", "Unknown"))
    summary = f"{plural(len(nodes), 'node')} NotReady/unreachable ({preview(nodes)})"
    summary += f" holding {plural(len(pods), 'daemon pod')}" + (f", {stuck} Terminating/Unknown" if stuck else "")
    return [
        _finding(
            cause="node_not_ready",
            severity="error" if counted else "warning",
            summary=summary + ("" if counted else " (not in desired)"),
            nodes=nodes,
            pods=_names(pods),
            evidence={"per_node": per_node},
            action="repair the nodes or remove them from the cluster (kubectl delete node); a pod on an unreachable "
            "node stays Terminating until the node returns or is deleted - force-delete it only once the node "
            "is gone; ds_rollout_wait's unhealthy_node_budget lets a rollout finish without them",
        )
    ]


def lease_offsets(leases: t.Iterable[Obj], server_time: datetime | None) -> dict[str, float]:
    """Per node: renewTime (the node's clock) minus when the API server stored that renewal.

    The server's time of the write is the holder's managedFields entry (second precision, so the
    offset of an in-sync node lies in [0, 1)); without managedFields, a renewTime in the future of
    ``server_time`` still shows a clock running ahead."""
    offsets = {}
    for lease in leases:
        renew = parse_time((lease.get("spec") or {}).get("renewTime"))
        if renew is None:
            continue
        stamps = [parse_time(m.get("time")) for m in lease["metadata"].get("managedFields") or [] if m.get("time")]
        written = max((stamp for stamp in stamps if stamp), default=None)
        offset = seconds_between(renew, written)
        ahead = seconds_between(renew, server_time) if server_time and renew > server_time else None
        if ahead is not None and (offset is None or ahead > offset):
            offset = ahead  # the clock runs ahead of the server's by more than the write shows
        if offset is not None:
            offsets[lease["metadata"]["name"]] = round(offset, 1)
    return offsets


def _ready_times(view: ClusterView, tolerance: float) -> tuple[list[Obj], list[str]]:
    """(pods Ready "in the future" of the server's clock, pods Ready for longer than minReadySeconds)."""
    future, ready_long = [], []
    for pod in view.pods:
        ready = pod_condition(pod, "Ready") or {}
        since = seconds_between(view.now, parse_time(ready.get("lastTransitionTime")))
        if ready.get("status") != "True" or since is None:
            continue
        if since < -tolerance:
            future.append(
                {"pod": pod["metadata"]["name"], "node": pod_target_node(pod), "ready_in_future_by": round(-since, 1)}
            )
        elif since > view.min_ready + AVAILABILITY_SLACK_SECONDS:
            ready_long.append(pod["metadata"]["name"])
    return future, ready_long


def _find_clock_skew(view: ClusterView, leases: list[Obj], tolerance: float) -> list[Obj]:
    offsets = lease_offsets(leases, view.now)
    relevant = set(view.should_run) | {n for n in view.by_node if n}
    # written at second precision: an in-sync node is in [0, 1)
    skewed = {n: o for n, o in offsets.items() if n in relevant and (o > tolerance + 1 or o < -tolerance)}
    future, ready_long = _ready_times(view, tolerance)
    available = int((view.ds.get("status") or {}).get("numberAvailable") or 0)
    not_counted = max(0, len(ready_long) - available) if view.min_ready else 0
    if not (skewed or future or not_counted):
        return []
    # without minReadySeconds, availability does not depend on the clocks
    severity = ("error" if (not_counted or future) else "warning") if view.min_ready else "info"
    parts = []
    if skewed:
        worst = max(skewed.items(), key=lambda item: abs(item[1]))
        parts.append(f"{plural(len(skewed), 'node')} off by up to {worst[1]:+g}s ({worst[0]})")
    if future:
        parts.append(f"{plural(len(future), 'pod')} Ready in the future")
    if not_counted:
        parts.append(f"{not_counted} pods Ready > minReadySeconds={view.min_ready}s not available")
    return [
        _finding(
            cause="clock_skew",
            severity=severity,
            summary="clock skew: " + "; ".join(parts),
            nodes=set(skewed) | {f["node"] for f in future if f["node"]},
            pods=[f["pod"] for f in future],
            evidence={
                "node_offsets_seconds": dict(sorted(skewed.items())),
                "pods_ready_in_future": future[:SHOWN_NAMES],
                "min_ready_seconds": view.min_ready,
                "ready_longer_than_min": len(ready_long),
                "number_available": available,
                "tolerance_seconds": tolerance,
            },
            action="synchronise the node clocks (NTP/chrony) with the control plane; until then minReadySeconds "
            "counts from the node's clock" + ("" if view.min_ready else " (harmless while minReadySeconds is 0)"),
        )
    ]


def _find_untolerated(view: ClusterView) -> list[Obj]:
    groups: dict[str, list[str]] = {}
    for name, place in sorted(view.placement.items()):
        skipped = place["selector_match"] and place["taints"] and not view.by_node.get(name)
        if skipped and not node_unhealthy(view.nodes[name]):
            groups.setdefault(", ".join(taint_string(taint) for taint in place["taints"]), []).append(name)
    if not groups:
        return []
    nodes = [n for names in groups.values() for n in names]
    summary = f"{plural(len(nodes), 'node')} skipped: untolerated " + "; ".join(
        f"{taints} x{len(names)}" for taints, names in sorted(groups.items(), key=lambda item: -len(item[1]))
    )
    return [
        _finding(
            cause="untolerated_taint",
            severity="info",
            summary=summary,
            nodes=nodes,
            evidence={"taints": {taints: names[:SHOWN_NAMES] for taints, names in groups.items()}},
            action="nothing to do unless the DaemonSet should run there: then add a toleration for the taint",
        )
    ]


def _find_misscheduled(view: ClusterView) -> list[Obj]:
    nodes, pods, why = [], [], {}
    for name, on_node in sorted(view.by_node.items()):
        if not name or name not in view.nodes or view.placement[name]["should_run"] or node_unhealthy(view.nodes[name]):
            continue  # pods on NotReady nodes are reported as node_not_ready
        place = view.placement[name]
        nodes.append(name)
        pods += _names(on_node)
        if len(why) < SHOWN_NAMES:
            why[name] = (
                "node selector/affinity no longer matches"
                if not place["selector_match"]
                else "untolerated taint " + ", ".join(taint_string(taint) for taint in place["taints"])
            )
    if not nodes:
        return []
    return [
        _finding(
            cause="misscheduled",
            severity="warning",
            summary=f"{plural(len(pods), 'daemon pod')} on {plural(len(nodes), 'node')} that should not run it",
            nodes=nodes,
            pods=pods,
            evidence={"why": why},
            action="delete these pods, or change the node labels/taints or the DaemonSet's selector/tolerations so "
            "they fit",
        )
    ]


def _find_on_delete(view: ClusterView) -> list[Obj]:
    if (view.ds["spec"].get("updateStrategy") or {}).get("type") != "OnDelete" or view.hash is None:
        return []
    outdated = [p for p in view.pods if not view.updated(p) and not pod_terminating(p)]
    if not outdated:
        return []
    return [
        _finding(
            cause="on_delete_pending",
            severity="warning",
            summary=f"OnDelete strategy: {plural(len(outdated), 'outdated pod')} wait for a manual delete",
            nodes=[pod_target_node(p) or "" for p in outdated],
            pods=_names(outdated),
            evidence={"outdated": len(outdated), "current_hash": view.hash},
            action="delete the outdated pods node by node (kubectl delete pod ...; the controller recreates them from "
            "the new template), or switch updateStrategy to RollingUpdate",
        )
    ]


def budget_use(view: ClusterView) -> Obj:
    """The controller's rolling-update accounting over the nodes that should run the DaemonSet.

    Unavailable old pods count against maxUnavailable (#123232), as do nodes without any pod and nodes whose new
    pod is not available; ``waiting`` counts nodes whose old pod is available and still to be replaced.
    """
    max_unavailable, max_surge = rolling_budget(view.ds, len(view.should_run))
    unavailable_old, unavailable_other, waiting, surging = [], [], [], []
    for node in view.should_run:
        running = view.running_pods(node)
        new = [p for p in running if view.updated(p)]
        old = [p for p in running if not view.updated(p)]
        if new and old:
            surging.append(node)
        if (not new and not old) or (new and old and not max_surge) or (new and not view.available(new[0])):
            unavailable_other.append(node)
        elif not new and not view.available(old[0]):
            unavailable_old.append(old[0])
        elif not new:
            waiting.append(node)
    limit, name = (max_surge, "maxSurge") if max_surge else (max_unavailable, "maxUnavailable")
    old_nodes = [pod_target_node(p) or "" for p in unavailable_old]
    spending = surging + old_nodes if max_surge else old_nodes + unavailable_other
    return {
        "max_unavailable": max_unavailable,
        "max_surge": max_surge,
        "limit": limit,
        "name": name,
        "spent": len(spending),
        "spending": spending,
        "unavailable_old": unavailable_old,
        "unavailable_other": len(unavailable_other),
        "surging": len(surging),
        "waiting": waiting,
    }


def _rolling(view: ClusterView) -> bool:
    strategy = view.ds["spec"].get("updateStrategy") or {}
    return strategy.get("type", "RollingUpdate") == "RollingUpdate" and view.hash is not None


def _find_budget(view: ClusterView) -> list[Obj]:
    """A few broken OLD pods can stop an otherwise fine update: they use up the budget."""
    if not _rolling(view):
        return []
    use = budget_use(view)
    if not use["waiting"] or not use["unavailable_old"] or use["spent"] < use["limit"]:
        return []
    nodes = [pod_target_node(p) or "" for p in use["unavailable_old"]]
    return [
        _finding(
            cause="budget_exhausted",
            severity="warning",
            summary=(
                f"{use['name']}={use['limit']} used up: {plural(len(nodes), 'unavailable old pod')} "
                f"({', '.join(nodes[:3])}) hold back {len(use['waiting'])} outdated pods"
            ),
            nodes=nodes,
            pods=_names(use["unavailable_old"]),
            evidence={
                "max_unavailable": use["max_unavailable"],
                "max_surge": use["max_surge"],
                "unavailable_old": len(use["unavailable_old"]),
                "unavailable_other": use["unavailable_other"],
                "surging": use["surging"],
                "waiting_for_update": len(use["waiting"]),
            },
            action="repair or delete the unavailable old pods (or their nodes), or raise maxUnavailable for this "
            "rollout",
        )
    ]


# --- the whole gap ---------------------------------------------------------------------------


def _node_state(view: ClusterView, node: str) -> str:
    """``ok`` (an updated, available pod), ``starting`` (an updated pod on its way), ``outdated`` (an available old
    pod still to be replaced) or ``stuck`` (anything else: no pod, an unavailable pod that is not just starting)."""
    running = view.running_pods(node)
    new = [p for p in running if view.updated(p)]
    if new and view.available(new[0]):
        return "ok"
    if new:
        failure = pod_failure(new[0], view.now, view.min_ready)
        return "starting" if failure and failure["transient"] else "stuck"
    if running:
        return "outdated" if view.available(running[0]) else "stuck"
    # an old pod on its way out: the controller creates the new one once it is gone
    return "starting" if view.by_node.get(node) else "stuck"


def _status_differences(view: ClusterView, findings: list[Obj]) -> dict[str, tuple[int, int]]:
    """Counts of the controller's that the nodes and pods do not show: ``{field: (controller, seen)}``."""
    counts = counters(view.ds, list(view.nodes.values()), view.pods, None, view.now, view=view)
    seen = {"desiredNumberScheduled": counts["desired"], "numberAvailable": counts["available"]}
    if view.hash is not None:
        seen["updatedNumberScheduled"] = counts["updated"]
    differences = {
        field: (counts["status"][field], value) for field, value in seen.items() if counts["status"][field] != value
    }
    if any(f["cause"] == "clock_skew" for f in findings) or _recently_ready(view):
        differences.pop("numberAvailable", None)  # explained: the controller's clock decides availability
    return differences


def _recently_ready(view: ClusterView) -> bool:
    """A pod became available so recently that the controller may not have counted it yet."""
    for pod in view.pods:
        since = seconds_between(view.now, parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime")))
        if since is not None and since < view.min_ready + AVAILABILITY_SLACK_SECONDS:
            return True
    return False


def _find_gap(view: ClusterView, findings: list[Obj]) -> list[Obj]:
    """What the other findings leave unexplained while kubectl would not call the rollout complete."""
    status = rollout_status(view.ds)
    if status["done"] or not status["observed"]:
        return []  # complete, or spec_not_observed explains every node
    named = {n for f in findings if f["severity"] != "info" for n in f["nodes"]}
    states = {node: _node_state(view, node) for node in view.should_run}
    starting = [n for n, s in states.items() if s == "starting" and n not in named]
    waiting = [n for n, s in states.items() if s == "outdated" and n not in named]
    stuck = [n for n, s in states.items() if s == "stuck" and n not in named]
    if waiting and _rolling(view) and not starting:
        use = budget_use(view)
        if use["spent"] < use["limit"]:
            stuck += waiting  # room in the budget and nothing starting: the controller should be replacing them
        else:
            _note_held_back(findings, use)  # the problems that spend the budget hold them back
        waiting = []
    gap = [_in_progress(view, starting, waiting)] if starting or waiting else []
    differences = _status_differences(view, findings)
    if stuck or (differences and not named and not starting):
        gap.append(_unexplained(view, sorted(stuck), differences))
    return gap


def _note_held_back(findings: list[Obj], use: Obj) -> None:
    """Outdated pods wait while problems use up the rolling budget: the findings of those problems say so."""
    for finding in findings:
        if finding["severity"] != "info" and set(finding["nodes"]) & set(use["spending"]):
            finding["summary"] += f"; it holds back {plural(len(use['waiting']), 'outdated pod')} ({use['name']}="
            finding["summary"] += f"{use['limit']} used up)"
            finding["evidence"]["holds_back"] = {"outdated": len(use["waiting"]), use["name"]: use["limit"]}
            return


def _in_progress(view: ClusterView, starting: list[str], waiting: list[str]) -> Obj:
    parts = ([f"{plural(len(starting), 'updated pod')} starting ({preview(starting)})"] if starting else []) + (
        [f"{plural(len(waiting), 'outdated pod')} waiting for their turn"] if waiting else []
    )
    pods = [p for n in starting for p in view.running_pods(n) if view.updated(p)]
    return _finding(
        cause="rollout_in_progress",
        severity="warning",
        summary="rollout in progress: " + "; ".join(parts),
        nodes=starting + waiting,
        pods=_names(pods),
        evidence={"starting": starting, "waiting": waiting},
        action="nothing is wrong yet: wait for the rollout (ds_rollout_wait) and diagnose again if it stops moving",
    )


def _unexplained(view: ClusterView, nodes: list[str], differences: dict[str, tuple[int, int]]) -> Obj:
    pods = [p for n in nodes for p in view.running_pods(n)]
    parts = [f"{plural(len(nodes), 'node')} without an updated, available pod and no known cause ({preview(nodes)})"]
    parts += [
        f"{field} is {controller} but the nodes and pods show {seen}"
        for field, (controller, seen) in differences.items()
    ]
    return _finding(
        cause="unexplained",
        severity="error",
        summary="; ".join(parts),
        nodes=nodes,
        pods=_names(pods),
        evidence={
            "nodes": nodes[:SHOWN_NAMES],
            "pods": [
                {
                    "pod": p["metadata"]["name"],
                    "node": pod_target_node(p),
                    "updated": view.updated(p),
                    "ready": pod_is_ready(p),
                    "phase": (p.get("status") or {}).get("phase"),
                }
                for p in pods[:SHOWN_NAMES]
            ],
            "status_differences": {field: {"controller": c, "seen": s} for field, (c, s) in differences.items()},
        },
        action="look at the DaemonSet controller (kube-controller-manager logs: is it running, does it act on this "
        "DaemonSet?), the pods on these nodes (kubectl describe pod) and the DaemonSet's events",
    )


# --- entry points ----------------------------------------------------------------------------


def diagnose(
    daemonset: Obj,
    nodes: t.Iterable[Obj],
    pods: t.Iterable[Obj],
    events: t.Iterable[Obj] = (),
    revisions: t.Iterable[Obj] | None = None,
    leases: t.Iterable[Obj] = (),
    server_time: datetime | str | None = None,
    clock_skew_tolerance: float = 5.0,
) -> list[Obj]:
    """Every cause found, errors first. ``pods`` are the DaemonSet's pods plus, optionally, other pods on
    blocked nodes (they give requested resources and eviction candidates); ``server_time`` is the API
    server's clock (a response's Date header), the reference for minReadySeconds and lease renewals."""
    if isinstance(server_time, str):
        server_time = parse_time(server_time)
    events = list(events)
    view = ClusterView(daemonset, list(nodes), list(pods), None if revisions is None else list(revisions), server_time)
    findings = (
        _find_not_observed(view)
        + _find_unschedulable(view, events)
        + _find_missing(view, events)
        + _find_broken_template(view, events)
        + _find_not_ready_nodes(view)
        + _find_clock_skew(view, list(leases), clock_skew_tolerance)
        + _find_budget(view)
        + _find_on_delete(view)
        + _find_misscheduled(view)
        + _find_untolerated(view)
    )
    findings += _find_gap(view, findings)
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f["severity"]])


def is_healthy(findings: list[Obj]) -> bool:
    """Healthy = nothing but informational notes (nodes skipped by design)."""
    return all(f["severity"] == "info" for f in findings)


def counters(
    daemonset: Obj,
    nodes: t.Iterable[Obj],
    pods: t.Iterable[Obj],
    revisions=None,
    server_time=None,
    view: ClusterView | None = None,
) -> Obj:
    """The rollout's counters as this diagnosis sees them, beside the controller's status."""
    if isinstance(server_time, str):
        server_time = parse_time(server_time)
    view = view or ClusterView(
        daemonset, list(nodes), list(pods), None if revisions is None else list(revisions), server_time
    )
    running = [p for n in view.should_run for p in view.running_pods(n)]
    status = daemonset.get("status") or {}
    return {
        "nodes": len(view.nodes),
        "desired": len(view.should_run),
        "pods": len(view.pods),
        "updated": sum(1 for p in running if view.updated(p)) if view.hash else None,
        "ready": sum(1 for p in running if pod_is_ready(p)),
        "available": sum(1 for p in running if pod_available(p, view.min_ready, server_time)),
        "status": {key: status.get(key, 0) for key in _STATUS_COUNTS},
    }


def render_report(daemonset: Obj, findings: list[Obj], counts: Obj | None = None, width: int = 100) -> str:
    """A short table a person reads in ten seconds; "no problem found" (and the notes) when healthy."""
    meta = daemonset["metadata"]
    head = f"DaemonSet {meta.get('namespace')}/{meta['name']}"
    if counts:
        status = counts["status"]
        head += (
            f" (desired {status['desiredNumberScheduled']}, updated {status['updatedNumberScheduled']}, "
            f"available {status['numberAvailable']})"
        )
    problems = [f for f in findings if f["severity"] != "info"]
    notes = [f"note: {f['summary']}" for f in findings if f["severity"] == "info"]
    if not problems:
        return "\n".join([f"{head}: no problem found", *notes])
    cause_width = max(len("CAUSE"), *(len(f["cause"]) for f in problems)) + 2
    lines = [
        f"{head}: {plural(len(problems), 'problem')} found",
        f"{'SEVERITY':<9}{'CAUSE':<{cause_width}}{'NODES':>5}{'PODS':>6}  SUMMARY",
    ]
    for f in problems:
        summary = f["summary"] if len(f["summary"]) <= width else f["summary"][: width - 3] + "..."
        lines.append(f"{f['severity']:<9}{f['cause']:<{cause_width}}{len(f['nodes']):>5}{len(f['pods']):>6}  {summary}")
    lines += [f"-> {f['cause']}: {f['suggested_action']}" for f in problems]
    return "\n".join(lines + notes)
