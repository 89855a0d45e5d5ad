# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shared vocabulary of the API objects this collection reads: labels, selectors, ownership, pod, node and
event facts. API objects are plain dicts, the JSON the server returns (camelCase).

Floor 1 (pure): no I/O; imports only other floor-1 files.
"""

from __future__ import annotations

import re
import typing as t
from datetime import datetime

from ansible_collections.kubeops.daemonset.plugins.module_utils._values import parse_time, seconds_between

Obj = dict[str, t.Any]

# This collection's name towards the API server: its User-Agent, so the field manager of its writes.
FIELD_MANAGER = "kubeops.daemonset"

# The controller labels each pod with the hash of its revision and with the template generation it came from;
# the API server counts template changes (only those, unlike metadata.generation) in TEMPLATE_GENERATION.
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
CHANGE_CAUSE = "kubernetes.io/change-cause"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# On the pod template: the hash of the ConfigMaps and Secrets a restart was for (ds_restart's when_changed).
CONFIG_HASH = "daemonset.kubeops.io/config-hash"
# On the DaemonSet, written with its template (so the new ControllerRevision keeps it too): the revision live before
# (ds_update's record_revision_before), what a fleet update rolls a cluster back to, also after an interrupted run.
REVISION_BEFORE = "daemonset.kubeops.io/revision-before"

# Taints the node lifecycle controller sets on NotReady / unreachable nodes.
UNREACHABLE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")


class RequestError(ValueError):
    """A request that cannot be satisfied as asked (a bad input, a revision that does not exist ...).

    The message says what was asked, what exists and what to do; it is raised before anything is written.
    """


# Object names as the API validates them: a DNS-1123 subdomain (DaemonSets) and label (namespaces).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_daemonset_name(name: str) -> bool:
    return len(name) <= 253 and bool(_SUBDOMAIN.match(name))


def check_names(name: t.Any, namespace: t.Any, origin: str = "") -> None:
    """RequestError for a DaemonSet NAME or NAMESPACE (None: not given) the API cannot hold: ``ds/status`` would
    reach a subresource, not the DaemonSet. ORIGIN (``the manifest's metadata.``) goes before the field's name."""
    if name is not None and not (isinstance(name, str) and is_daemonset_name(name)):
        raise RequestError(f"{origin}name {name!r} is not a DaemonSet name: lowercase letters, digits, '-' and '.', "
                           "starting and ending with a letter or digit, at most 253 characters")  # fmt: skip
    if namespace is not None and not (isinstance(namespace, str) and len(namespace) <= 63 and _LABEL.match(namespace)):
        raise RequestError(f"{origin}namespace {namespace!r} is not a namespace name: lowercase letters, digits and "
                           "'-', starting and ending with a letter or digit, at most 63 characters")  # fmt: skip


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def ref(obj: Obj) -> str:
    """``namespace/name`` of a namespaced object."""
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


# --- selectors -------------------------------------------------------------------------------


def requirement_matches(expr: Obj, value: str | None) -> bool:
    """One LabelSelectorRequirement or NodeSelectorRequirement against the VALUE of its key (None: absent)."""
    operator, values = expr["operator"], expr.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):  # node selectors only: integer comparison, a non-integer never matches
        try:
            number, limit = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return number > limit if operator == "Gt" else number < limit
    raise ValueError(f"unknown selector operator {operator!r}")


def selector_matches(selector: Obj | None, object_labels: dict[str, str] | None) -> bool:
    """LabelSelector semantics of the API: a missing selector matches nothing, an empty one everything."""
    if selector is None:
        return False
    object_labels = object_labels or {}
    if any(object_labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    return all(
        requirement_matches(expr, object_labels.get(expr["key"])) for expr in selector.get("matchExpressions") or []
    )


_QUERY_FORMS = {"In": "{key} in ({values})", "NotIn": "{key} notin ({values})", "Exists": "{key}",
                "DoesNotExist": "!{key}"}  # fmt: skip


def selector_query(selector: Obj | None) -> str:
    """A LabelSelector as the API's ``labelSelector`` query (also how kubectl shows selectors).

    Values and operators are kept (kubernetes.core's k8s_rollback joins only the keys, which matches any value).
    An empty selector is ``""`` (everything); None raises (a DaemonSet always has one).
    """
    if selector is None:
        raise ValueError("the object has no label selector")
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        terms.append(_QUERY_FORMS[expr["operator"]].format(key=expr["key"], values=values))
    return ",".join(terms)


# --- ownership -------------------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The object's controller ownerReference (the one with ``controller: true``)."""
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def owned_by(owner: Obj, objects: t.Iterable[Obj]) -> list[Obj]:
    """The objects OWNER controls, by kubectl's rule: its selector matches their labels AND their controller
    ownerReference carries its UID (the selector alone can catch another DaemonSet's pods and revisions)."""
    uid = owner["metadata"].get("uid")
    selector = (owner.get("spec") or {}).get("selector")
    return [
        obj
        for obj in objects
        if (controller_ref(obj) or {}).get("uid") == uid and selector_matches(selector, labels(obj))
    ]


# --- pods ------------------------------------------------------------------------------------


def pod_hash(pod: Obj | None) -> str | None:
    """The pod's ``controller-revision-hash``: which revision it runs."""
    return labels(pod or {}).get(HASH_LABEL)


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
    since = seconds_between(now, parse_time(ready.get("lastTransitionTime")))
    return min_ready_seconds <= 0 or since is None or since >= min_ready_seconds


def pod_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


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


def container_statuses(pod: Obj) -> list[Obj]:
    """Init container statuses first, then the app containers'."""
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def restarts(pod: Obj) -> int:
    """Restarts of every container of the pod (init containers included)."""
    return sum(int(container.get("restartCount") or 0) for container in container_statuses(pod))


def is_daemonset_pod(pod: Obj) -> bool:
    return (controller_ref(pod) or {}).get("kind") == "DaemonSet"


def is_mirror_pod(pod: Obj) -> bool:
    return MIRROR_ANNOTATION in annotations(pod)


# --- nodes -----------------------------------------------------------------------------------


def node_ready(node: Obj) -> Obj:
    """The node's Ready condition (status True/False/Unknown) or a stand-in when it has none yet."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return {"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated", "message": ""}


def node_unhealthy(node: Obj) -> bool:
    """NotReady, unknown or tainted unreachable/not-ready by the node lifecycle controller."""
    taints = (node.get("spec") or {}).get("taints") or []
    return node_ready(node).get("status") != "True" or any(taint["key"] in UNREACHABLE_TAINTS for taint in taints)


def node_cordoned(node: Obj) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


def node_trouble(node: Obj) -> str | None:
    """Why NODE may not take a new pod: ``unreachable`` (its kubelet stopped reporting), ``NotReady`` or
    ``cordoned``; None when it is healthy."""
    taints = {taint["key"] for taint in (node.get("spec") or {}).get("taints") or []}
    ready = node_ready(node).get("status")
    if ready == "Unknown" or "node.kubernetes.io/unreachable" in taints:
        return "unreachable"
    if ready != "True" or "node.kubernetes.io/not-ready" in taints:
        return "NotReady"
    return "cordoned" if node_cordoned(node) else None


def troubled_node_names(listing: Obj) -> list[str]:
    """The nodes of a node list that are not plainly Ready: from the API server's table (``Ready``,
    ``NotReady``, ``Unknown``, ``Ready,SchedulingDisabled`` ...) or, when it sent a plain list, from the objects."""
    if listing.get("kind") != "Table":
        return [node["metadata"]["name"] for node in listing.get("items") or [] if node_trouble(node)]
    columns = [column["name"] for column in listing.get("columnDefinitions") or []]
    name, status = columns.index("Name"), columns.index("Status")
    return [row["cells"][name] for row in listing.get("rows") or [] if row["cells"][status] != "Ready"]


# --- events ----------------------------------------------------------------------------------


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


def involved(event: Obj) -> Obj:
    """What the event is about, in the core/v1 or the events.k8s.io/v1 shape."""
    return event.get("involvedObject") or event.get("regarding") or {}


def events_for(events: t.Iterable[Obj], kind: str, names: t.Collection[str]) -> list[Obj]:
    names = set(names)
    return [event for event in events if involved(event).get("kind") == kind and involved(event).get("name") in names]


def summarize_events(events: t.Iterable[Obj], limit: int = 5) -> list[Obj]:
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
        group["objects"].add(f"{involved(event).get('kind')}/{involved(event).get('name')}")
        group["last_seen"] = max(group["last_seen"], event_time(event))
    newest = sorted(groups.values(), key=lambda group: group["last_seen"], reverse=True)[:limit]
    for group in newest:
        group["objects"] = sorted(group["objects"])[:limit]
    return newest
