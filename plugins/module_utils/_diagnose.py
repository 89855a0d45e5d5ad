# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure diagnosis of stuck DaemonSet rollouts: API objects in, named causes with evidence out.

Plain dicts in (the JSON the API server returns, camelCase), plain data out; no I/O, so the same
functions serve ds_diagnose, ds_rollout_wait's failure report and the unit tests.

A finding is ``{cause, severity, summary, nodes, pods, evidence, suggested_action}``:

==================== ======== ==============================================================
cause                severity meaning
==================== ======== ==============================================================
resource_exhaustion  error    the scheduler cannot fit the daemon pod (Insufficient cpu ...)
unschedulable        error    the scheduler refuses the node for another reason (host port ...)
pod_missing          warning  a node that should run the DaemonSet has no pod at all
broken_template      error    updated pods not Ready: ErrImagePull, CrashLoopBackOff ...
node_not_ready       error    NotReady/unreachable nodes holding daemon pods (Unknown, Terminating)
clock_skew           error    minReadySeconds and node clocks off the API server's clock
budget_exhausted     warning  maxUnavailable/maxSurge used up by unavailable OLD pods
on_delete_pending    warning  OnDelete strategy: outdated pods wait for someone to delete them
misscheduled         warning  daemon pods on nodes that should not run them
untolerated_taint    info     nodes skipped because of taints the pods do not tolerate
==================== ======== ==============================================================

Which nodes should run the DaemonSet follows the controller (pkg/controller/daemon): node selector,
required node affinity and NoSchedule/NoExecute taints against the template's tolerations plus the
ones the controller adds to every daemon pod. Resources are not considered there; the scheduler
decides that, and its verdict is read from the pod's PodScheduled condition and FailedScheduling events.
"""

from __future__ import annotations

import math
import re
import typing as t
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils import _history

Obj = dict[str, t.Any]

HASH_LABEL = "controller-revision-hash"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
EXAMPLES = 5  # pod/node names shown per group; the counts stay exact

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
UNREACHABLE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")

# Waiting reasons a healthy pod passes through; reported only when a pod stays in them too long.
TRANSIENT_REASONS = {"ContainerCreating", "PodInitializing", "Pending", "NotReady", "MinReadySeconds"}
TRANSIENT_GRACE_SECONDS = 60
# Seconds the controller may take to count a pod available after minReadySeconds (it requeues).
AVAILABILITY_SLACK_SECONDS = 10


# --- small parsers -------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def parse_quantity(value: t.Any) -> float:
    """A resource.Quantity (``100m``, ``200Mi``, ``1e3``, ``4``) as a float (cores, bytes, count)."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"invalid quantity {value!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def format_quantity(resource: str, value: float) -> str:
    """Human form: cpu in millicores, memory-like in Mi/Gi, counts as integers."""
    if resource == "cpu":
        return f"{round(value * 1000)}m"
    if resource == "pods" or not (resource == "memory" or "storage" in resource):
        return f"{value:g}"
    if value >= 2**30 and value % 2**30 == 0:
        return f"{value / 2**30:g}Gi"
    return f"{value / 2**20:g}Mi"


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 Time or MicroTime as an aware datetime (None for None)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


# --- selectors, affinity, taints -------------------------------------------------------------


def _expression_matches(expr: Obj, value_of: t.Callable[[str], str | None]) -> bool:
    value, operator, values = value_of(expr["key"]), expr["operator"], expr.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        try:
            number, limit = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return number > limit if operator == "Gt" else number < limit
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs, field_exprs = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # an empty term matches no objects
    return all(_expression_matches(e, labels.get) for e in exprs) and all(
        _expression_matches(e, fields.get) for e in field_exprs
    )


def node_selector_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector AND required node affinity (terms ORed), as the scheduler and the controller apply them."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
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
        "continue_running": selector_match and not any(tt.get("effect") == "NoExecute" for tt in blocking),
    }


# --- nodes and pods --------------------------------------------------------------------------


def node_ready(node: Obj) -> Obj:
    """The node's Ready condition (status True/False/Unknown) or a stand-in when it has none yet."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return {"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated", "message": ""}


def node_unhealthy(node: Obj) -> bool:
    taints = (node.get("spec") or {}).get("taints") or []
    return node_ready(node).get("status") != "True" or any(tt["key"] in UNREACHABLE_TAINTS for tt in taints)


def pod_target_node(pod: Obj) -> str | None:
    """The node a pod runs on, or (not yet bound) the one a daemon pod's affinity pins it to."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                return field["values"][0]
    return None


def pod_ref(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def pod_condition(pod: Obj, kind: str) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def pod_is_ready(pod: Obj) -> bool:
    return (pod_condition(pod, "Ready") or {}).get("status") == "True"


def pod_available(pod: Obj, min_ready_seconds: int, now: datetime | None) -> bool:
    """Ready (and not being deleted) for at least minReadySeconds, counted from the Ready condition's
    lastTransitionTime - the controller's rule; a missing transition time counts as long ago, as there."""
    ready = pod_condition(pod, "Ready") or {}
    if ready.get("status") != "True" or pod["metadata"].get("deletionTimestamp"):
        return False
    since = _seconds(now, parse_time(ready.get("lastTransitionTime")))
    return min_ready_seconds <= 0 or since is None or since >= min_ready_seconds


def pod_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def controller_ref(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def daemon_pods(daemonset: Obj, pods: t.Iterable[Obj]) -> list[Obj]:
    """Pods whose controller is this DaemonSet (by UID; the label selector alone can catch strangers)."""
    uid = daemonset["metadata"].get("uid")
    return [pod for pod in pods if (controller_ref(pod) or {}).get("uid") == uid]


def pod_requests(pod_or_template: Obj) -> dict[str, float]:
    """Effective requests: sum of containers (and restartable init containers), at least the largest init
    container, plus overhead; ``pods`` is always 1."""
    spec = pod_or_template.get("spec") or {}
    total: dict[str, float] = {}

    def requests(container: Obj) -> dict[str, float]:
        raw = (container.get("resources") or {}).get("requests") or {}
        return {name: parse_quantity(value) for name, value in raw.items()}

    init_max: dict[str, float] = {}
    for container in spec.get("initContainers") or []:
        target_is_sum = container.get("restartPolicy") == "Always"  # sidecars run alongside the app
        for name, value in requests(container).items():
            if target_is_sum:
                total[name] = total.get(name, 0.0) + value
            else:
                init_max[name] = max(init_max.get(name, 0.0), value)
    for container in spec.get("containers") or []:
        for name, value in requests(container).items():
            total[name] = total.get(name, 0.0) + value
    for name, value in init_max.items():
        total[name] = max(total.get(name, 0.0), value)
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0.0) + parse_quantity(value)
    total["pods"] = 1.0
    return total


def node_allocatable(node: Obj) -> dict[str, float]:
    return {k: parse_quantity(v) for k, v in ((node.get("status") or {}).get("allocatable") or {}).items()}


def node_requested(node_name: str, pods: t.Iterable[Obj]) -> dict[str, float]:
    """Sum of requests of the pods bound to the node and not finished (the scheduler's accounting)."""
    total: dict[str, float] = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == node_name and not pod_terminated(pod):
            for name, value in pod_requests(pod).items():
                total[name] = total.get(name, 0.0) + value
    return total


def _is_daemonset_pod(pod: Obj) -> bool:
    return (controller_ref(pod) or {}).get("kind") == "DaemonSet"


def _is_mirror_pod(pod: Obj) -> bool:
    return MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {})


# --- events and scheduler messages ------------------------------------------------------------


def event_time(event: Obj) -> str:
    series = event.get("series") or {}
    return (
        event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


def event_count(event: Obj) -> int:
    return int((event.get("series") or {}).get("count") or event.get("count") or 1)


def _involved(event: Obj) -> Obj:
    return event.get("involvedObject") or event.get("regarding") or {}  # core/v1 or events.k8s.io/v1 shape


def events_for(events: t.Iterable[Obj], kind: str, names: t.Collection[str]) -> list[Obj]:
    names = set(names)
    return [e for e in events if _involved(e).get("kind") == kind and _involved(e).get("name") in names]


def summarize_events(events: t.Iterable[Obj], limit: int = EXAMPLES) -> list[Obj]:
    """Warning events grouped by (reason, message), newest first: ``{reason, message, count, objects,
    last_seen}`` with ``objects`` the first LIMIT ``Kind/name`` they are about (sorted)."""
    groups: dict[tuple[str, str], Obj] = {}
    for event in events:
        if event.get("type", "Warning") != "Warning":
            continue
        key = (event.get("reason") or "", event.get("message") or event.get("note") or "")
        group = groups.setdefault(
            key, {"reason": key[0], "message": key[1], "count": 0, "objects": set(), "last_seen": ""}
        )
        group["count"] += event_count(event)
        group["objects"].add(f"{_involved(event).get('kind')}/{_involved(event).get('name')}")
        group["last_seen"] = max(group["last_seen"], event_time(event))
    newest = sorted(groups.values(), key=lambda g: g["last_seen"], reverse=True)[:limit]
    for group in newest:
        group["objects"] = sorted(group["objects"])[:limit]
    return newest


_SCHEDULER_MESSAGE = re.compile(r"^\d+/\d+ nodes are available: (?P<reasons>.*?)(?:\. preemption:.*)?\.?$", re.S)
# Reasons about the OTHER nodes: a daemon pod is pinned to one node by node affinity, so every other node
# fails NodeAffinity (or, earlier in the filter order, a taint the pod does not tolerate).
_OTHER_NODES = re.compile(r"node affinity/selector|\[NodeAffinity\]", re.I)
_TAINT_REASON = re.compile(r"untolerated taint", re.I)


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


def is_resource_reason(reason: str) -> bool:
    return reason.startswith("Insufficient ") or reason.startswith("Too many pods")


def _shortage_resources(reasons: list[str]) -> list[str]:
    names = []
    for reason in reasons:
        if reason.startswith("Insufficient "):
            names.append(reason[len("Insufficient ") :])
        elif reason.startswith("Too many pods"):
            names.append("pods")
    return names


# --- pod failures (shared with ds_rollout_wait's blockers) -------------------------------------


def pod_failure(pod: Obj, now: datetime | None = None, min_ready_seconds: int = 0) -> Obj | None:
    """Why a pod is not available: ``{reason, message, container, image, restarts, transient}``, or None.

    Terminating and Unschedulable first, then container waiting reasons (ErrImagePull, CrashLoopBackOff,
    CreateContainerConfigError ...), terminated ones, a bare "NotReady" (running, failing its readiness probe)
    or "Pending"; a Ready pod younger than MIN_READY_SECONDS is "MinReadySeconds". ``transient`` marks states a
    healthy pod passes through (ContainerCreating ..., MinReadySeconds) while younger than TRANSIENT_GRACE_SECONDS.
    """
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    status = pod.get("status") or {}
    if pod_is_ready(pod) and not terminating:
        if pod_available(pod, min_ready_seconds, now):
            return None
        failure = {
            "reason": "MinReadySeconds",
            "message": f"ready, but for less than minReadySeconds ({min_ready_seconds}s)",
        }
        return dict(failure, container=None, image=None, restarts=0, last_termination=None, transient=True)
    spec_images = {c["name"]: c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    failure = None
    scheduled = pod_condition(pod, "PodScheduled") or {}
    images = [c.get("image") for c in (pod.get("spec") or {}).get("containers") or []]
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    if terminating or scheduled.get("status") == "False":
        failure = {
            "reason": "Terminating" if terminating else scheduled.get("reason") or "Unschedulable",
            "message": "the pod is being deleted (a NotReady node can keep it terminating)"
            if terminating
            else scheduled.get("message") or "",
            "container": None,
            "image": images[0] if images else None,
            "restarts": restarts,
            "last_termination": None,
        }
    for container in [] if failure else statuses:
        state = container.get("state") or {}
        detail = state.get("waiting") or state.get("terminated")
        if container.get("ready") or not detail or (state.get("terminated") or {}).get("exitCode") == 0:
            continue
        last = ((container.get("lastState") or {}).get("terminated") or {}).get("reason")
        failure = {
            "reason": detail.get("reason") or "Unknown",
            "message": detail.get("message") or "",
            "container": container.get("name"),
            "image": container.get("image") or spec_images.get(container.get("name")),
            "restarts": int(container.get("restartCount") or 0),
            "last_termination": last,
        }
        break
    if failure is None:
        running = status.get("phase") == "Running"
        failure = {
            "reason": "NotReady" if running else "Pending",
            "message": (pod_condition(pod, "Ready") or {}).get("message") or status.get("message") or "",
            "container": None,
            "image": images[0] if images else None,
            "restarts": restarts,
            "last_termination": None,
        }
    started = parse_time(status.get("startTime") or pod["metadata"].get("creationTimestamp"))
    age = _seconds(now, started)
    failure["transient"] = failure["reason"] in TRANSIENT_REASONS and (age is None or age < TRANSIENT_GRACE_SECONDS)
    return failure


def group_pod_failures(
    pods: t.Iterable[Obj],
    events: t.Iterable[Obj] = (),
    now: datetime | None = None,
    limit: int = EXAMPLES,
    include_transient: bool = False,
    min_ready_seconds: int = 0,
) -> list[Obj]:
    """Pods that are not available grouped by failure reason, largest group first, so 900 identical failures
    are one entry: ``{reason, message, count, images, restarts_max, restarts_total, pods, nodes, events}`` with
    the first LIMIT pod and node names (sorted; the counts are complete), the first pod's message and the
    group's Warning events. Transient states are left out unless INCLUDE_TRANSIENT.

    The one grouping of pod failures: ds_diagnose's broken_template and ds_rollout_wait's blockers use it."""
    groups: dict[str, Obj] = {}
    for pod in pods:
        failure = pod_failure(pod, now, min_ready_seconds)
        if failure is None or (failure["transient"] and not include_transient):
            continue
        group = groups.setdefault(
            failure["reason"],
            {"reason": failure["reason"], "message": failure["message"], "count": 0, "images": [],
             "restarts_max": 0, "restarts_total": 0, "pods": [], "nodes": set()},
        )  # fmt: skip
        group["count"] += 1
        group["restarts_max"] = max(group["restarts_max"], failure["restarts"])
        group["restarts_total"] += failure["restarts"]
        if failure["image"] and failure["image"] not in group["images"]:
            group["images"].append(failure["image"])
        group["pods"].append(pod["metadata"]["name"])
        group["nodes"].add(pod_target_node(pod) or "")
    events = list(events)
    result = sorted(groups.values(), key=lambda g: (-g["count"], g["reason"]))
    for group in result:
        group["events"] = summarize_events(events_for(events, "Pod", group["pods"]), limit=3)
        group["pods"] = sorted(group["pods"])[:limit]
        group["nodes"] = sorted(group["nodes"] - {""})[:limit]
    return result


def describe_failure_group(group: Obj) -> str:
    """``ImagePullBackOff x900 (image x/y:1)`` or ``CrashLoopBackOff x3 (image z, restarts up to 7)``."""
    detail = [f"image {', '.join(group['images'])}"] if group["images"] else []
    if group["restarts_max"]:
        detail.append(f"restarts up to {group['restarts_max']}")
    return f"{group['reason']} x{group['count']}" + (f" ({'; '.join(detail)})" if detail else "")


# --- rollout view ----------------------------------------------------------------------------


def _resolve_int_or_percent(value: t.Any, total: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def rolling_budget(daemonset: Obj, desired: int) -> tuple[int, int]:
    """(maxUnavailable, maxSurge) resolved against desiredNumberScheduled, percentages rounded up."""
    rolling = (daemonset["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = _resolve_int_or_percent(rolling.get("maxSurge"), desired, 0)
    unavailable = _resolve_int_or_percent(rolling.get("maxUnavailable"), desired, 1)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # the controller never resolves both to zero
    return unavailable, surge


class _View:
    """What the controller sees: placement per node, daemon pods per node, current hash, now."""

    def __init__(self, daemonset: Obj, nodes: list[Obj], pods: list[Obj], revisions: list[Obj] | None, now):
        self.ds = daemonset
        self.now = now
        self.min_ready = int(daemonset["spec"].get("minReadySeconds") or 0)
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.placement = {name: node_placement(daemonset, node) for name, node in self.nodes.items()}
        self.all_pods = pods
        self.pods = daemon_pods(daemonset, pods)
        self.by_node: dict[str, list[Obj]] = {}
        for pod in self.pods:
            self.by_node.setdefault(pod_target_node(pod) or "", []).append(pod)
        self.hash = current_hash(daemonset, revisions)

    @property
    def should_run(self) -> list[str]:
        return sorted(name for name, place in self.placement.items() if place["should_run"])

    def updated(self, pod: Obj) -> bool:
        """Without the revisions every pod counts as updated (the template cannot be told apart)."""
        return self.hash is None or (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == self.hash

    def live(self, node: str) -> list[Obj]:
        return [p for p in self.by_node.get(node, []) if not p["metadata"].get("deletionTimestamp")]


def current_hash(daemonset: Obj, revisions: list[Obj] | None) -> str | None:
    """The controller-revision-hash of the live template: the revision whose stored template equals it."""
    if not revisions:
        return None
    owned = _history.owned_revisions(daemonset, revisions)
    live = _history.current_revision(daemonset, owned)
    return _history.revision_hash(live) if live else None


def _finding(cause: str, severity: str, summary: str, nodes: t.Iterable[str], pods: t.Iterable[str],
             evidence: Obj, action: str) -> Obj:  # fmt: skip
    return {
        "cause": cause,
        "severity": severity,
        "summary": summary,
        "nodes": sorted(set(nodes)),
        "pods": sorted(set(pods)),
        "evidence": evidence,
        "suggested_action": action,
    }


def _preview(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# --- causes ----------------------------------------------------------------------------------


def blocked_nodes(daemonset: Obj, nodes: list[Obj], pods: list[Obj], events: t.Iterable[Obj] = ()) -> dict[str, Obj]:
    """Nodes that should run the DaemonSet whose daemon pod the scheduler cannot place:
    ``{node: {"pod": pending pod, "reasons": [...], "message": ...}}``."""
    view = _View(daemonset, nodes, pods, None, None)
    events = list(events)
    blocked = {}
    for node in view.should_run:
        for pod in view.live(node):
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
        p for p in pods
        if (p.get("spec") or {}).get("nodeName") == node and not pod_terminated(p)
        and not _is_daemonset_pod(p) and not _is_mirror_pod(p)
    ]  # fmt: skip
    keys = [r for r in resources if r != "pods"] or ["cpu", "memory"]

    def size(pod: Obj) -> tuple[float, ...]:
        requests = pod_requests(pod)
        return tuple(requests.get(r, 0.0) for r in keys)

    out = []
    for pod in sorted(candidates, key=size, reverse=True)[:limit]:
        owner = controller_ref(pod)
        requests = pod_requests(pod)
        out.append(
            {
                "pod": pod_ref(pod),
                "owner": f"{owner['kind']}/{owner['name']}" if owner else None,
                "requests": {r: format_quantity(r, requests.get(r, 0.0)) for r in keys},
            }
        )
    return out


def _node_resources(node: Obj, pods: list[Obj], need: dict[str, float], resources: list[str]) -> Obj:
    allocatable = node_allocatable(node)
    requested = node_requested(node["metadata"]["name"], pods)
    shown = resources or ["cpu", "memory", "pods"]
    return {
        r: {
            "allocatable": format_quantity(r, allocatable.get(r, 0.0)),
            "requested": format_quantity(r, requested.get(r, 0.0)),
            "free": format_quantity(r, allocatable.get(r, 0.0) - requested.get(r, 0.0)),
            "daemon_pod_needs": format_quantity(r, need.get(r, 0.0)),
        }
        for r in shown
    }


def _find_unschedulable(view: _View, events: list[Obj]) -> list[Obj]:
    blocked = blocked_nodes(view.ds, list(view.nodes.values()), view.pods, events)
    need = pod_requests(view.ds["spec"]["template"])
    groups: dict[tuple[str, ...], list[str]] = {}
    for node, info in blocked.items():
        groups.setdefault(tuple(info["reasons"]) or ("unknown",), []).append(node)
    findings = []
    for reasons, nodes in sorted(groups.items(), key=lambda item: -len(item[1])):
        short = _shortage_resources(list(reasons))
        resource = bool(short)
        per_node = {
            node: {
                "resources": _node_resources(view.nodes[node], view.all_pods, need, short),
                "candidates": _largest_pods(node, view.all_pods, short),
            }
            for node in nodes[:EXAMPLES]
        }
        pods = [blocked[n]["pod"]["metadata"]["name"] for n in nodes]
        reason_text = ", ".join(reasons)
        summary = f"{reason_text} on {_plural(len(nodes), 'node')} ({_preview(nodes)})"
        evidence = {"scheduler_reasons": list(reasons), "message": blocked[nodes[0]]["message"], "per_node": per_node}
        if resource:
            action = (
                "free room on these nodes: move or evict some of the candidate pods (remediate=evict_blockers uses "
                "the Eviction API and honours PodDisruptionBudgets), lower the DaemonSet's requests, or add capacity"
            )
        else:
            action = (
                "fix what the scheduler reports for these nodes, or keep the DaemonSet off them (nodeSelector/affinity)"
            )
        findings.append(
            _finding(
                "resource_exhaustion" if resource else "unschedulable", "error", summary, nodes, pods, evidence, action
            )
        )
    return findings


def _find_missing(view: _View, events: list[Obj]) -> list[Obj]:
    missing = [n for n in view.should_run if not view.by_node.get(n)]
    if not missing:
        return []
    ds_events = summarize_events(events_for(events, "DaemonSet", [view.ds["metadata"]["name"]]))
    summary = f"no daemon pod on {_plural(len(missing), 'node')} that should run one"
    if ds_events:
        summary += f": {ds_events[0]['reason']}"
    return [
        _finding(
            "pod_missing", "warning", summary, missing, [],
            {"daemonset_events": ds_events, "examples": missing[:EXAMPLES]},
            "check the DaemonSet's events (FailedCreate: quota, admission webhooks, RBAC of the controller)",
        )
    ]  # fmt: skip


def _find_broken_template(view: _View, events: list[Obj]) -> list[Obj]:
    failing = [
        p for node in view.should_run for p in view.live(node)
        if view.updated(p) and (p.get("spec") or {}).get("nodeName") and not node_unhealthy(view.nodes[node])
    ]  # fmt: skip
    groups = group_pod_failures(failing, events, view.now)
    if not groups:
        return []
    total = sum(g["count"] for g in groups)
    broken = [p for p in failing if (pod_failure(p, view.now) or {"transient": True})["transient"] is False]
    pods = [p["metadata"]["name"] for p in broken]
    nodes = [pod_target_node(p) or "" for p in broken]
    summary = f"{_plural(total, 'updated pod')} not Ready: " + ", ".join(describe_failure_group(g) for g in groups)
    return [
        _finding(
            "broken_template", "error", summary, nodes, pods, {"groups": groups, "current_hash": view.hash},
            "roll back to the last fully available revision (remediate=rollback) or apply a fixed template "
            "(remediate=fixed_template or image); a new rollout is not blocked by the broken one",
        )
    ]  # fmt: skip


def _find_not_ready_nodes(view: _View) -> list[Obj]:
    nodes, pods, per_node, counted = [], [], {}, False
    for name in sorted(view.nodes):
        node = view.nodes[name]
        on_node = view.by_node.get(name, [])
        place = view.placement[name]
        # nodes the DaemonSet would run on were it not for the not-ready/unreachable taints count too
        wanted = place["selector_match"] and all(tt["key"] in UNREACHABLE_TAINTS for tt in place["taints"])
        if not node_unhealthy(node) or not (on_node or wanted):
            continue
        counted = counted or view.placement[name]["should_run"]
        ready = node_ready(node)
        nodes.append(name)
        states = []
        for pod in on_node:
            phase = (pod.get("status") or {}).get("phase")
            state = "Terminating" if pod["metadata"].get("deletionTimestamp") else phase
            states.append({"pod": pod["metadata"]["name"], "state": state, "ready": pod_is_ready(pod),
                           "updated": view.updated(pod)})  # fmt: skip
            pods.append(pod["metadata"]["name"])
        if len(per_node) < EXAMPLES:
            per_node[name] = {
                "ready": ready.get("status"),
                "reason": ready.get("reason"),
                "message": ready.get("message"),
                "last_heartbeat": ready.get("lastHeartbeatTime"),
                "taints": [taint_string(tt) for tt in (node.get("spec") or {}).get("taints") or []],
                "pods": states,
            }
    if not nodes:
        return []
    stuck = sum(1 for info in per_node.values() for s in info["pods"] if s["state"] in ("Terminating", "Unknown"))
    summary = f"{_plural(len(nodes), 'node')} NotReady/unreachable ({_preview(nodes)})"
    summary += f" holding {_plural(len(pods), 'daemon pod')}" + (f", {stuck} Terminating/Unknown" if stuck else "")
    if not counted:
        summary += " (not in desired)"
    return [
        _finding(
            "node_not_ready", "error" if counted else "warning", summary, nodes, pods, {"per_node": per_node},
            "repair the nodes or remove them from the cluster (kubectl delete node); a pod on an unreachable node "
            "stays Terminating until the node returns or is deleted - force-delete it only once the node is gone",
        )
    ]  # fmt: skip


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
        written = max((s for s in stamps if s), default=None)
        offset = _seconds(renew, written)
        if offset is None or (server_time and renew > server_time and _seconds(renew, server_time) > offset):
            offset = _seconds(renew, server_time) if server_time and renew > server_time else offset
        if offset is not None:
            offsets[lease["metadata"]["name"]] = round(offset, 1)
    return offsets


def _find_clock_skew(view: _View, leases: list[Obj], tolerance: float) -> list[Obj]:
    offsets = lease_offsets(leases, view.now)
    relevant = set(view.should_run) | {n for n in view.by_node if n}
    # written at second precision: an in-sync node is in [0, 1)
    skewed = {n: o for n, o in offsets.items() if n in relevant and (o > tolerance + 1 or o < -tolerance)}
    future, ready_long = [], []
    for pod in view.pods:
        ready = pod_condition(pod, "Ready") or {}
        since = _seconds(view.now, parse_time(ready.get("lastTransitionTime")))
        if ready.get("status") != "True" or since is None:
            continue
        if since < -tolerance:
            future.append(
                {"pod": pod["metadata"]["name"], "node": pod_target_node(pod), "ready_in_future_by": round(-since, 1)}
            )
        elif since > view.min_ready + AVAILABILITY_SLACK_SECONDS:
            ready_long.append(pod["metadata"]["name"])
    available = int((view.ds.get("status") or {}).get("numberAvailable") or 0)
    not_counted = max(0, len(ready_long) - available) if view.min_ready else 0
    if not (skewed or future or not_counted):
        return []
    if view.min_ready and (not_counted or future or skewed):
        severity = "error" if (not_counted or future) else "warning"
    else:
        severity = "info"  # without minReadySeconds, availability does not depend on the clocks
    nodes = sorted(set(skewed) | {f["node"] for f in future if f["node"]})
    parts = []
    if skewed:
        worst = max(skewed.items(), key=lambda item: abs(item[1]))
        parts.append(f"{_plural(len(skewed), 'node')} off by up to {worst[1]:+g}s ({worst[0]})")
    if future:
        parts.append(f"{_plural(len(future), 'pod')} Ready in the future")
    if not_counted:
        parts.append(f"{not_counted} pods Ready > minReadySeconds={view.min_ready}s not available")
    return [
        _finding(
            "clock_skew", severity, "clock skew: " + "; ".join(parts), nodes,
            [f["pod"] for f in future],
            {"node_offsets_seconds": dict(sorted(skewed.items())), "pods_ready_in_future": future[:EXAMPLES],
             "min_ready_seconds": view.min_ready, "ready_longer_than_min": len(ready_long),
             "number_available": available, "tolerance_seconds": tolerance},
            "synchronise the node clocks (NTP/chrony) with the control plane; until then minReadySeconds "
            "counts from the node's clock" + ("" if view.min_ready else " (harmless while minReadySeconds is 0)"),
        )
    ]  # fmt: skip


def _find_untolerated(view: _View) -> list[Obj]:
    groups: dict[str, list[str]] = {}
    for name, place in sorted(view.placement.items()):
        if (
            place["selector_match"]
            and place["taints"]
            and not view.by_node.get(name)
            and not node_unhealthy(view.nodes[name])
        ):
            groups.setdefault(", ".join(taint_string(tt) for tt in place["taints"]), []).append(name)
    if not groups:
        return []
    nodes = [n for names in groups.values() for n in names]
    summary = f"{_plural(len(nodes), 'node')} skipped: untolerated " + "; ".join(
        f"{taints} x{len(names)}" for taints, names in sorted(groups.items(), key=lambda item: -len(item[1]))
    )
    return [
        _finding(
            "untolerated_taint", "info", summary, nodes, [],
            {"taints": {taints: names[:EXAMPLES] for taints, names in groups.items()}},
            "nothing to do unless the DaemonSet should run there: then add a toleration for the taint",
        )
    ]  # fmt: skip


def _find_misscheduled(view: _View) -> list[Obj]:
    nodes, pods, why = [], [], {}
    for name, on_node in sorted(view.by_node.items()):
        if not name or name not in view.nodes or view.placement[name]["should_run"] or node_unhealthy(view.nodes[name]):
            continue  # pods on NotReady nodes are reported as node_not_ready
        place = view.placement[name]
        nodes.append(name)
        pods += [p["metadata"]["name"] for p in on_node]
        if len(why) < EXAMPLES:
            why[name] = (
                "node selector/affinity no longer matches"
                if not place["selector_match"]
                else ("untolerated taint " + ", ".join(taint_string(tt) for tt in place["taints"]))
            )
    if not nodes:
        return []
    return [
        _finding(
            "misscheduled", "warning",
            f"{_plural(len(pods), 'daemon pod')} on {_plural(len(nodes), 'node')} that should not run it",
            nodes, pods, {"why": why},
            "delete these pods, or change the node labels/taints or the DaemonSet's selector/tolerations so they fit",
        )
    ]  # fmt: skip


def _find_on_delete(view: _View) -> list[Obj]:
    if (view.ds["spec"].get("updateStrategy") or {}).get("type") != "OnDelete" or view.hash is None:
        return []
    outdated = [p for p in view.pods if not view.updated(p) and not p["metadata"].get("deletionTimestamp")]
    if not outdated:
        return []
    nodes = [pod_target_node(p) or "" for p in outdated]
    return [
        _finding(
            "on_delete_pending", "warning",
            f"OnDelete strategy: {_plural(len(outdated), 'outdated pod')} wait for a manual delete",
            nodes, [p["metadata"]["name"] for p in outdated], {"outdated": len(outdated), "current_hash": view.hash},
            "delete the outdated pods node by node (kubectl delete pod ...; the controller recreates them from the "
            "new template), or switch updateStrategy to RollingUpdate",
        )
    ]  # fmt: skip


def _find_budget(view: _View) -> list[Obj]:
    """The controller's rolling-update accounting: unavailable old pods now count against maxUnavailable
    (#123232), so a few broken OLD pods can stop an otherwise fine update."""
    strategy = view.ds["spec"].get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or view.hash is None:
        return []
    desired = len(view.should_run)
    max_unavailable, max_surge = rolling_budget(view.ds, desired)
    unavailable_old, unavailable_other, waiting, surging = [], 0, 0, 0
    for node in view.should_run:
        live = view.live(node)
        new = [p for p in live if view.updated(p)]
        old = [p for p in live if not view.updated(p)]
        if new and old:
            surging += 1
        if (not new and not old) or (new and old and not max_surge):
            unavailable_other += 1
        elif new:
            unavailable_other += 0 if pod_available(new[0], view.min_ready, view.now) else 1
        elif not pod_available(old[0], view.min_ready, view.now):
            unavailable_old.append(old[0])
        else:
            waiting += 1
    used = len(unavailable_old) + unavailable_other
    limit, name = (max_surge, "maxSurge") if max_surge else (max_unavailable, "maxUnavailable")
    spent = surging + len(unavailable_old) if max_surge else used
    if not waiting or not unavailable_old or spent < limit:
        return []
    nodes = [pod_target_node(p) or "" for p in unavailable_old]
    return [
        _finding(
            "budget_exhausted", "warning",
            f"{name}={limit} used up: {_plural(len(unavailable_old), 'unavailable old pod')} "
            f"({', '.join(nodes[:3])}) hold back {waiting} outdated pods",
            nodes, [p["metadata"]["name"] for p in unavailable_old],
            {"max_unavailable": max_unavailable, "max_surge": max_surge, "unavailable_old": len(unavailable_old),
             "unavailable_other": unavailable_other, "surging": surging, "waiting_for_update": waiting},
            "repair or delete the unavailable old pods (or their nodes), or raise maxUnavailable for this rollout",
        )
    ]  # fmt: skip


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
    view = _View(daemonset, list(nodes), list(pods), None if revisions is None else list(revisions), server_time)
    findings = (
        _find_unschedulable(view, events)
        + _find_missing(view, events)
        + _find_broken_template(view, events)
        + _find_not_ready_nodes(view)
        + _find_clock_skew(view, list(leases), clock_skew_tolerance)
        + _find_budget(view)
        + _find_on_delete(view)
        + _find_misscheduled(view)
        + _find_untolerated(view)
    )
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f["severity"]])


def is_healthy(findings: list[Obj]) -> bool:
    """Healthy = nothing but informational notes (nodes skipped by design)."""
    return all(f["severity"] == "info" for f in findings)


def counters(daemonset: Obj, nodes: t.Iterable[Obj], pods: t.Iterable[Obj], revisions=None, server_time=None) -> Obj:
    """The rollout's counters as this diagnosis sees them, beside the controller's status."""
    if isinstance(server_time, str):
        server_time = parse_time(server_time)
    view = _View(daemonset, list(nodes), list(pods), None if revisions is None else list(revisions), server_time)
    live = [p for n in view.should_run for p in view.live(n)]
    status = daemonset.get("status") or {}
    return {
        "nodes": len(view.nodes),
        "desired": len(view.should_run),
        "pods": len(view.pods),
        "updated": sum(1 for p in live if view.updated(p)) if view.hash else None,
        "ready": sum(1 for p in live if pod_is_ready(p)),
        "available": sum(1 for p in live if pod_available(p, view.min_ready, server_time)),
        "status": {
            k: status.get(k, 0)
            for k in (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "updatedNumberScheduled",
                "numberReady",
                "numberAvailable",
                "numberMisscheduled",
                "numberUnavailable",
            )
        },
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
        f"{head}: {_plural(len(problems), 'problem')} found",
        f"{'SEVERITY':<9}{'CAUSE':<{cause_width}}{'NODES':>5}{'PODS':>6}  SUMMARY",
    ]
    for f in problems:
        summary = f["summary"] if len(f["summary"]) <= width else f["summary"][: width - 3] + "..."
        lines.append(f"{f['severity']:<9}{f['cause']:<{cause_width}}{len(f['nodes']):>5}{len(f['pods']):>6}  {summary}")
    lines += [f"-> {f['cause']}: {f['suggested_action']}" for f in problems]
    return "\n".join(lines + notes)


# --- remediation decisions -------------------------------------------------------------------


def plan_evictions(daemonset: Obj, node: Obj, pods: t.Iterable[Obj], force: bool = False) -> Obj:
    """Which pods to evict from ``node`` so the DaemonSet's pod fits: the fewest, largest first.

    Never DaemonSet pods, mirror (static) pods or finished pods; pods without a controller only with
    ``force`` (nothing would recreate them). Returns ``{node, need, free, evict, skipped, fits_after}``,
    where ``evict``/``skipped`` list ``namespace/name`` (skipped with a reason)."""
    name = node["metadata"]["name"]
    on_node = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name and not pod_terminated(p)]
    need = pod_requests(daemonset["spec"]["template"])
    allocatable = node_allocatable(node)
    requested = node_requested(name, on_node)
    deficit = {
        r: need[r] - (allocatable.get(r, 0.0) - requested.get(r, 0.0))
        for r in need
        if need[r] > 0 and need[r] > allocatable.get(r, 0.0) - requested.get(r, 0.0)
    }
    skipped, candidates = [], []
    for pod in on_node:
        if _is_daemonset_pod(pod) or _is_mirror_pod(pod) or pod["metadata"].get("deletionTimestamp"):
            continue  # never candidates; not worth listing
        if controller_ref(pod) is None and not force:
            skipped.append({"pod": pod_ref(pod), "reason": "no controller would recreate it (use force)"})
            continue
        candidates.append(pod)

    def relief(pod: Obj) -> float:
        """Share of the remaining deficit this pod covers (the dominant resource counts)."""
        requests = pod_requests(pod)
        return max((min(requests.get(r, 0.0), d) / d for r, d in deficit.items() if d > 0), default=0.0)

    chosen: list[Obj] = []
    remaining = sorted(candidates, key=lambda p: (relief(p), sum(pod_requests(p).values())), reverse=True)
    while any(d > 0 for d in deficit.values()) and remaining:
        best = max(remaining, key=relief)
        if relief(best) <= 0:
            break
        remaining.remove(best)
        chosen.append(best)
        for r, value in pod_requests(best).items():
            if r in deficit:
                deficit[r] -= value
    fits = all(d <= 0 for d in deficit.values())
    free = {r: allocatable.get(r, 0.0) - requested.get(r, 0.0) for r in need}
    return {
        "node": name,
        "need": {r: format_quantity(r, v) for r, v in need.items()},
        "free": {r: format_quantity(r, v) for r, v in free.items()},
        "evict": [pod_ref(p) for p in chosen] if fits else [],
        "skipped": skipped,
        "fits_after": fits,
        "fits_now": not any(need[r] > 0 and need[r] > free[r] for r in need),
    }


def last_available_revision(daemonset: Obj, revisions: t.Iterable[Obj], pods: t.Iterable[Obj]) -> Obj | None:
    """The rollback target: the last revision that was fully available, as far as the objects tell.

    The API keeps no record of past availability, so it is read from the pods that remain. Candidates are the
    revisions other than the live one none of whose pods is failing. During a stuck rollout the previous good
    revision still has Ready pods: the newest candidate with Ready pods wins, so an intermediate broken revision
    whose pods were all replaced is skipped. Without one (every pod already replaced), the newest candidate."""
    owned = _history.owned_revisions(daemonset, revisions)
    live = _history.current_revision(daemonset, owned)
    mine = daemon_pods(daemonset, pods)
    candidates = []
    for rev in reversed(owned):
        if live is not None and rev["metadata"]["name"] == live["metadata"]["name"]:
            continue
        rev_hash = _history.revision_hash(rev)
        on_rev = [p for p in mine if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == rev_hash]
        if all(pod_is_ready(p) for p in on_rev):
            candidates.append((rev, bool(on_rev)))
    with_pods = [rev for rev, has_pods in candidates if has_pods]
    return (with_pods or [candidate[0] for candidate in candidates] or [None])[0]
