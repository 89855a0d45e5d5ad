# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A DaemonSet rollout's progress: kubectl's status and messages, and why pods are not available.

``rollout_status`` reproduces ``kubectl rollout status ds/NAME``: the same "done" rule and the same messages.
Where kubectl refuses (``updateStrategy.type: OnDelete``) this reports the same counters plus how many pods are
outdated, because with OnDelete only deleting a pod updates it.

``pod_failure`` and ``group_pod_failures`` say why pods are not available (one grouping, used by the rollout
blockers, the diagnosis and the batch gates); ``rollout_blockers`` explains a rollout that does not finish.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import typing as t
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    GENERATION_LABEL,
    TEMPLATE_GENERATION,
    Obj,
    annotations,
    container_statuses,
    events_for,
    labels,
    owned_by,
    pod_available,
    pod_condition,
    pod_hash,
    pod_is_ready,
    pod_target_node,
    pod_terminating,
    restarts,
    summarize_events,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import rolling_budget
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import (
    parse_time,
    plural,
    seconds_between,
    utcnow,
)

ON_DELETE = "OnDelete"
OBSERVE_MESSAGE = "Waiting for daemon set spec update to be observed..."
SHOWN_NAMES = 5  # pod and node names shown per group; the counts stay exact

# Counters in the order they appear in RV(status); with the generations also what "progress" means.
COUNTERS = ("desired", "current", "updated", "available", "ready", "unavailable", "misscheduled")
_STATUS_FIELDS = {
    "desired": "desiredNumberScheduled",
    "current": "currentNumberScheduled",
    "updated": "updatedNumberScheduled",
    "available": "numberAvailable",
    "ready": "numberReady",
    "unavailable": "numberUnavailable",
    "misscheduled": "numberMisscheduled",
}

# Waiting reasons a healthy pod passes through; reported only when a pod stays in them too long.
TRANSIENT_REASONS = {"ContainerCreating", "PodInitializing", "Pending", "NotReady", "MinReadySeconds"}
TRANSIENT_GRACE_SECONDS = 60
# Seconds the controller may take to count a pod available after minReadySeconds and act on it (it requeues).
AVAILABILITY_SLACK_SECONDS = 10


def rollout_status(daemonset: Obj) -> Obj:
    """kubectl's view of the rollout of DAEMONSET, as a plain dict.

    Keys: ``done`` (kubectl's rule: generation observed, updated >= desired, available >= desired - so
    minReadySeconds counts; ready, unavailable, misscheduled and maxUnavailable do not), ``message``
    (kubectl's line, without its newline), ``observed`` (generation <= observedGeneration), the counters
    of COUNTERS, ``outdated`` (desired - updated), ``generation``, ``observed_generation`` and
    ``strategy``.  With OnDelete the "updated" message also says how many outdated pods need deleting.
    """
    name = daemonset["metadata"]["name"]
    status = daemonset.get("status") or {}
    counters = {key: int(status.get(field) or 0) for key, field in _STATUS_FIELDS.items()}
    generation = int(daemonset["metadata"].get("generation") or 0)
    observed_generation = int(status.get("observedGeneration") or 0)
    strategy = ((daemonset.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    desired, updated, available = counters["desired"], counters["updated"], counters["available"]
    outdated = max(desired - updated, 0)
    observed = generation <= observed_generation
    done = False
    if not observed:
        message = OBSERVE_MESSAGE
    elif updated < desired:
        note = (
            f" ({ON_DELETE}: {outdated} outdated pods are replaced only when deleted)" if strategy == ON_DELETE else ""
        )
        message = (
            f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} new pods have been updated'
            f"{note}..."
        )
    elif available < desired:
        message = (
            f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} updated pods are available...'
        )
    else:
        done = True
        message = f'daemon set "{name}" successfully rolled out'
    return {
        "done": done,
        "message": message,
        "observed": observed,
        **counters,
        "outdated": outdated,
        "generation": generation,
        "observed_generation": observed_generation,
        "strategy": strategy,
    }


def progress_key(status: Obj) -> tuple[int, ...]:
    """What must change for the rollout to count as moving (for ``progress_deadline``): every counter
    and both generations. Takes a ``rollout_status`` result."""
    return (status["generation"], status["observed_generation"], *(status[key] for key in COUNTERS))


def failure_message(
    namespace: str,
    name: str,
    outcome: str,
    timeout: float,
    progress_deadline: float | None,
    last_message: str,
    blockers_summary: str,
) -> str:
    """The failure message of a wait that ran out of time (OUTCOME ``timeout`` or ``progress_deadline``)."""
    if outcome == "timeout":
        why = f"timed out waiting for the condition: the rollout did not finish within {timeout:g}s"
    else:
        why = f"the rollout made no progress for {progress_deadline:g}s (progress_deadline)"
    return f"DaemonSet {namespace}/{name}: {why}. Last status: {last_message} Blockers: {blockers_summary}"


def pod_is_updated(pod: Obj, daemonset: Obj, current_hash: str | None) -> bool:
    """The controller's rule: the pod's revision hash is the current one, or (when the current hash is
    unknown) the pod was created from the DaemonSet's current template generation."""
    if current_hash:
        return pod_hash(pod) == current_hash
    template_generation = annotations(daemonset).get(TEMPLATE_GENERATION)
    return template_generation is not None and labels(pod).get(GENERATION_LABEL) == template_generation


# --- why a pod is not available ----------------------------------------------------------------


def _failure(reason: str, message: str, pod: Obj, container: Obj | None = None, last: str | None = None) -> Obj:
    """One failure record: a container's failure, or the pod's (first image, restarts of all containers)."""
    images = [c.get("image") for c in (pod.get("spec") or {}).get("containers") or []]
    spec_images = {c["name"]: c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
    if container is None:
        return {"reason": reason, "message": message, "container": None, "image": images[0] if images else None,
                "restarts": restarts(pod), "last_termination": last}  # fmt: skip
    return {
        "reason": reason,
        "message": message,
        "container": container.get("name"),
        "image": container.get("image") or spec_images.get(container.get("name")),
        "restarts": int(container.get("restartCount") or 0),
        "last_termination": last,
    }


def _container_failure(pod: Obj, container: Obj) -> Obj | None:
    """Why one container keeps its pod from being ready, or None.

    A real kubelet shows a crash-looping container mostly as ``terminated`` (reason Error, the exit code) and only
    now and then as ``waiting: CrashLoopBackOff``; a terminated container that has restarted is reported as
    CrashLoopBackOff either way, so the verdict does not depend on the moment it is read.
    """
    state = container.get("state") or {}
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if container.get("ready") or not (waiting or terminated) or (terminated or {}).get("exitCode") == 0:
        return None
    last = ((container.get("lastState") or {}).get("terminated") or {}).get("reason")
    if terminated and int(container.get("restartCount") or 0) > 0:
        code = terminated.get("exitCode")
        detail = f"back-off restarting failed container (last exit: {terminated.get('reason') or 'Error'}"
        return _failure("CrashLoopBackOff", f"{detail}, code {code})", pod, container, terminated.get("reason"))
    detail = waiting or terminated
    return _failure(detail.get("reason") or "Unknown", detail.get("message") or "", pod, container, last)


def pod_failure(pod: Obj, now: datetime | None = None, min_ready_seconds: int = 0) -> Obj | None:
    """Why a pod is not available: ``{reason, message, container, image, restarts, last_termination,
    transient}``, or None.

    Terminating and Unschedulable first, then container waiting reasons (ErrImagePull, CrashLoopBackOff,
    CreateContainerConfigError ...), terminated ones, a bare "NotReady" (running, failing its readiness probe)
    or "Pending"; a Ready pod younger than MIN_READY_SECONDS is "MinReadySeconds". ``transient`` marks states a
    healthy pod passes through (ContainerCreating ..., MinReadySeconds) while younger than TRANSIENT_GRACE_SECONDS.
    """
    terminating = pod_terminating(pod)
    status = pod.get("status") or {}
    if pod_is_ready(pod) and not terminating:
        if pod_available(pod, min_ready_seconds, now):
            return None
        failure = _failure("MinReadySeconds", f"ready, but for less than minReadySeconds ({min_ready_seconds}s)", pod)
        return dict(failure, restarts=0, transient=True)
    scheduled = pod_condition(pod, "PodScheduled") or {}
    if terminating:
        failure = _failure("Terminating", "the pod is being deleted (a NotReady node can keep it terminating)", pod)
    elif scheduled.get("status") == "False":
        failure = _failure(scheduled.get("reason") or "Unschedulable", scheduled.get("message") or "", pod)
    else:
        failures = (_container_failure(pod, c) for c in container_statuses(pod))
        failure = next((f for f in failures if f is not None), None) or _failure(
            "NotReady" if status.get("phase") == "Running" else "Pending",
            (pod_condition(pod, "Ready") or {}).get("message") or status.get("message") or "",
            pod,
        )
    age = seconds_between(now, parse_time(status.get("startTime") or pod["metadata"].get("creationTimestamp")))
    failure["transient"] = failure["reason"] in TRANSIENT_REASONS and (age is None or age < TRANSIENT_GRACE_SECONDS)
    return failure


def group_pod_failures(
    pods: t.Iterable[Obj],
    events: t.Iterable[Obj] = (),
    now: datetime | None = None,
    limit: int = SHOWN_NAMES,
    include_transient: bool = False,
    min_ready_seconds: int = 0,
) -> list[Obj]:
    """Pods that are not available grouped by failure reason, largest group first, so 900 identical failures
    are one entry: ``{reason, message, count, images, restarts_max, restarts_total, pods, nodes, events}`` with
    the first LIMIT pod and node names (sorted; the counts are complete), the first pod's message and the
    group's Warning events. Transient states are left out unless INCLUDE_TRANSIENT."""
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
    result = sorted(groups.values(), key=lambda group: (-group["count"], group["reason"]))
    for group in result:
        group["events"] = summarize_events(events_for(events, "Pod", group["pods"]), limit=3)
        group["pods"] = sorted(group["pods"])[:limit]
        group["nodes"] = sorted(group["nodes"] - {""})[:limit]
    return result


def describe_failure_group(group: Obj) -> str:
    """``ImagePullBackOff x900 (image x/y:1)`` or ``CrashLoopBackOff x3 (image z; restarts up to 7)``."""
    detail = [f"image {', '.join(group['images'])}"] if group["images"] else []
    if group["restarts_max"]:
        detail.append(f"restarts up to {group['restarts_max']}")
    return f"{group['reason']} x{group['count']}" + (f" ({'; '.join(detail)})" if detail else "")


# --- what blocks a rollout -----------------------------------------------------------------------


def rollout_blockers(
    daemonset: Obj,
    pods: t.Iterable[Obj] | None,
    events: t.Iterable[Obj],
    current_hash: str | None = None,
    now: datetime | None = None,
    limit: int = SHOWN_NAMES,
) -> Obj:
    """What keeps the rollout of DAEMONSET from finishing, from its pods and the namespace's events.

    PODS are the DaemonSet's pods (listed with its selector; None: unknown, the status alone counts), EVENTS the
    namespace's Warning events; the events kept are those about the DaemonSet or one of PODS, newest first,
    grouped by reason+message. ``controller_idle`` says the pods show work the controller has not done.
    Pod problems come from ``group_pod_failures`` (transient states included). Lists of nodes are sorted and
    cut at LIMIT; the counts are complete.
    """
    now = now or utcnow()
    status = rollout_status(daemonset)
    min_ready = int((daemonset.get("spec") or {}).get("minReadySeconds") or 0)
    known = pods is not None
    pods = owned_by(daemonset, pods or [])
    outdated_nodes, unavailable_nodes, unavailable = [], [], []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName") or pod["metadata"]["name"]
        available = pod_available(pod, min_ready, now)
        if not pod_is_updated(pod, daemonset, current_hash):
            outdated_nodes.append(node)
        elif not available:
            unavailable_nodes.append(node)
        if not available:
            unavailable.append(pod)
    events = list(events)
    pod_problems = group_pod_failures(
        unavailable, now=now, limit=limit, include_transient=True, min_ready_seconds=min_ready
    )
    ds_events = events_for(events, "DaemonSet", [daemonset["metadata"]["name"]])
    related = ds_events + events_for(events, "Pod", [pod["metadata"]["name"] for pod in pods])
    missing = max(status["desired"] - status["current"], 0)
    idle = None
    if known:  # a status the controller stopped writing still counts pods that are gone: the pods count too
        missing = max(missing, status["desired"] - len({pod_target_node(p) for p in pods}))
        idle = controller_idle(daemonset, status, pods, len(outdated_nodes), len(unavailable) + missing, missing,
                               bool(ds_events), now)  # fmt: skip
    summary = _summary(status, missing, len(outdated_nodes), len(unavailable_nodes), pod_problems)
    return {
        "summary": f"{idle}; {summary}" if idle else summary,
        "controller_idle": idle is not None,
        "missing_pods": missing,
        "not_updated": {"count": len(outdated_nodes), "nodes": sorted(outdated_nodes)[:limit]},
        "not_available": {"count": len(unavailable_nodes), "nodes": sorted(unavailable_nodes)[:limit]},
        "pod_problems": pod_problems[:limit],
        "warning_events": summarize_events(related, limit),
    }


def recently_ready(pods: t.Iterable[Obj], min_ready_seconds: int, now: datetime | None) -> bool:
    """A pod turned Ready so recently that the controller may not have acted on it yet (it counts a pod available
    minReadySeconds after, then requeues the DaemonSet)."""
    for pod in pods:
        since = seconds_between(now, parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime")))
        if since is not None and since < min_ready_seconds + AVAILABILITY_SLACK_SECONDS:
            return True
    return False


def controller_idle(daemonset: Obj, status: Obj, pods: list[Obj], outdated: int, unavailable: int, missing: int,
                    daemonset_events: bool, now: datetime | None) -> str | None:  # fmt: skip
    """A note when the pods show work the DaemonSet controller does at once and it has not been done: outdated
    pods it may replace (the rolling budget leaves room) or nodes without a pod (and no Warning event of the
    DaemonSet, such as FailedCreate, says why). The rollout then waits for the controller itself: stopped, or not
    acting on this DaemonSet. Its status, which it no longer writes, cannot tell."""
    if not status["observed"] or status["strategy"] == ON_DELETE or any(map(pod_terminating, pods)):
        return None
    if recently_ready(pods, int(daemonset["spec"].get("minReadySeconds") or 0), now):
        return None
    max_unavailable, max_surge = rolling_budget(daemonset, status["desired"])
    surging = len(pods) - len({pod_target_node(p) for p in pods})
    room = surging < max_surge if max_surge else unavailable < max_unavailable
    if missing and not daemonset_events:
        work = f"{plural(missing, 'node')} without a pod, none being created"
    elif outdated and room:
        budget = f"maxSurge={max_surge}" if max_surge else f"maxUnavailable={max_unavailable}"
        work = f"{plural(outdated, 'outdated pod')} not replaced although {budget} leaves room"
    else:
        return None
    return f"the DaemonSet controller is not acting ({work}): is kube-controller-manager running?"


def _summary(status: Obj, missing: int, outdated: int, unavailable: int, problems: list[Obj]) -> str:
    parts = []
    if missing > 0:
        parts.append(f"{plural(missing, 'node')} of {status['desired']} without a pod yet")
    if outdated:
        parts.append(f"{plural(outdated, 'node')} with an outdated pod")
    if unavailable:
        parts.append(f"{plural(unavailable, 'node')} with an updated pod that is not available")
    if problems:
        parts.append("pods: " + ", ".join(f"{group['reason']} x{group['count']}" for group in problems))
    return "; ".join(parts) or "no pod-level cause found (see the counters and events)"


# --- the bake after a rollout ------------------------------------------------------------------


def bake_baseline(pods: list[Obj]) -> dict[str, tuple[str, int]]:
    """What a bake compares against: per node, its pod's uid and restart count."""
    return {pod["spec"].get("nodeName", ""): (pod["metadata"]["uid"], restarts(pod)) for pod in pods}


def bake_breaches(baseline: dict[str, tuple[str, int]], daemonset: Obj, pods: list[Obj],
                  template_generation: int | None) -> list[str]:  # fmt: skip
    """What breaks a bake now: the rollout no longer complete (a pod unavailable or outdated), a pod that restarted
    or was replaced on its node since the bake began, or another template written meanwhile. Empty: still good."""
    breaches = []
    status = rollout_status(daemonset)
    generation = annotations(daemonset).get(TEMPLATE_GENERATION)
    if template_generation is not None and generation != str(template_generation):
        breaches.append(f"the pod template was changed by another writer (template generation {generation})")
    if not status["done"]:
        breaches.append(status["message"])
    for pod in pods:
        node = pod["spec"].get("nodeName", "")
        uid, count = baseline.get(node, (pod["metadata"]["uid"], restarts(pod)))
        if uid != pod["metadata"]["uid"]:
            breaches.append(f"pod {pod['metadata']['name']} replaced the one on {node}")
        elif restarts(pod) > count:
            breaches.append(f"pod {pod['metadata']['name']} on {node}: {plural(restarts(pod) - count, 'restart')}")
    return breaches
