# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic for a DaemonSet rollout: plain dicts in (API objects as the server returns them), plain data out.

``rollout_status`` reproduces ``kubectl rollout status ds/NAME``: the same "done" rule and the same
messages.  Where kubectl refuses (``updateStrategy.type: OnDelete``) this reports the same counters plus
how many pods are outdated, because with OnDelete only deleting a pod updates it.

``rollout_blockers`` explains a rollout that does not finish: which nodes run an outdated or an
unavailable pod, the pods' waiting reasons grouped with counts, and the recent Warning events.
"""

from __future__ import annotations

import datetime
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils import _diagnose

Obj = dict[str, t.Any]

HASH_LABEL = "controller-revision-hash"
# The controller labels each pod with the template generation it was created from; the API server counts
# template changes (only those, unlike metadata.generation) in this DaemonSet annotation.
GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
ON_DELETE = "OnDelete"
OBSERVE_MESSAGE = "Waiting for daemon set spec update to be observed..."

# Counters in the order they appear in RV(status); also the "progress key" (with the generations).
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


# --- blockers ------------------------------------------------------------------------------


def pod_is_updated(pod: Obj, daemonset: Obj, current_hash: str | None) -> bool:
    """The controller's rule: the pod's revision hash is the current one, or (when the current hash is
    unknown) the pod was created from the DaemonSet's current template generation."""
    labels = pod["metadata"].get("labels") or {}
    if current_hash:
        return labels.get(HASH_LABEL) == current_hash
    template_generation = (daemonset["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION)
    return template_generation is not None and labels.get(GENERATION_LABEL) == template_generation


# One availability rule and one grouping of pod failures, shared with ds_diagnose (module_utils/_diagnose.py).
pod_is_available = _diagnose.pod_available


def _first(items: list[str], limit: int) -> list[str]:
    return sorted(items)[:limit]


def rollout_blockers(
    daemonset: Obj,
    pods: t.Iterable[Obj],
    events: t.Iterable[Obj],
    current_hash: str | None = None,
    now: datetime.datetime | None = None,
    limit: int = 5,
) -> Obj:
    """What keeps the rollout of DAEMONSET from finishing, from its pods and the namespace's events.

    PODS are the DaemonSet's pods (listed with its selector), EVENTS the namespace's Warning events; the
    events kept are those about the DaemonSet or one of PODS, newest first, grouped by reason+message.
    Pod problems (waiting/terminated reasons, unschedulable, terminating, running but not ready, not yet
    minReadySeconds) come from _diagnose.group_pod_failures: one entry per reason with counts, the first
    pod's message and the first LIMIT pods and nodes. Lists of nodes are sorted and cut at LIMIT; the counts
    are complete.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    status = rollout_status(daemonset)
    min_ready = int((daemonset.get("spec") or {}).get("minReadySeconds") or 0)
    pods = [pod for pod in pods if _owned(pod, daemonset)]
    outdated_nodes, unavailable_nodes, unavailable = [], [], []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        available = pod_is_available(pod, min_ready, now)
        if not pod_is_updated(pod, daemonset, current_hash):
            outdated_nodes.append(node or pod["metadata"]["name"])
        elif not available:
            unavailable_nodes.append(node or pod["metadata"]["name"])
        if not available:
            unavailable.append(pod)
    events = list(events)
    pod_problems = _diagnose.group_pod_failures(
        unavailable, now=now, limit=limit, include_transient=True, min_ready_seconds=min_ready
    )
    related = _diagnose.events_for(events, "DaemonSet", [daemonset["metadata"]["name"]]) + _diagnose.events_for(
        events, "Pod", [pod["metadata"]["name"] for pod in pods]
    )
    return {
        "summary": _summary(status, len(outdated_nodes), len(unavailable_nodes), pod_problems),
        "missing_pods": max(status["desired"] - status["current"], 0),
        "not_updated": {"count": len(outdated_nodes), "nodes": _first(outdated_nodes, limit)},
        "not_available": {"count": len(unavailable_nodes), "nodes": _first(unavailable_nodes, limit)},
        "pod_problems": pod_problems[:limit],
        "warning_events": _diagnose.summarize_events(related, limit),
    }


def _owned(pod: Obj, daemonset: Obj) -> bool:
    uid = daemonset["metadata"].get("uid")
    refs = pod["metadata"].get("ownerReferences") or []
    return not uid or any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def _nodes(count: int) -> str:
    return f"{count} node{'' if count == 1 else 's'}"


def _summary(status: Obj, outdated: int, unavailable: int, problems: list[Obj]) -> str:
    parts = []
    missing = status["desired"] - status["current"]
    if missing > 0:
        parts.append(f"{_nodes(missing)} of {status['desired']} without a pod yet")
    if outdated:
        parts.append(f"{_nodes(outdated)} with an outdated pod")
    if unavailable:
        parts.append(f"{_nodes(unavailable)} with an updated pod that is not available")
    if problems:
        parts.append("pods: " + ", ".join(f"{g['reason']} x{g['count']}" for g in problems))
    return "; ".join(parts) or "no pod-level cause found (see the counters and events)"
