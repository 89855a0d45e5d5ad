# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Watching one object until a condition holds, and waiting for a DaemonSet rollout with it.

``watch_until`` is an informer for one object: LIST with ``fieldSelector=metadata.name=NAME`` (which gives
a resourceVersion even when the object is missing), then WATCH from that resourceVersion.  A watch that
the server ends (its timeoutSeconds) is resumed from the last resourceVersion seen, like client-go's
reflector; an ``ERROR`` event (410 Gone: the resourceVersion is too old) or a transient failure (connection,
429, 5xx) re-lists.  The number of requests depends on time and events, never on the number of nodes:
pods are listed only once a wait has failed, to say what blocks it.
"""

from __future__ import annotations

import datetime
import math
import time
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils import _history, _rollout
from ansible_collections.kubeops.daemonset.plugins.module_utils._client import Api, K8sError, selector_string

Obj = dict[str, t.Any]

# A watch request lasts at most this long before it is resumed (servers cap it anyway).
MAX_WATCH_SECONDS = 300
# How long a step of the action plugin collects status changes before returning them: module start-ups
# (one list and one watch each) stay at one per few seconds whatever the size of the cluster.
PROGRESS_STEP = 3.0
_TRANSIENT = {None, 410, 429, 500, 502, 503, 504}


def watch_until(
    api: Api,
    resource: str,
    namespace: str,
    name: str,
    handle: t.Callable[[Obj | None], bool],
    deadline: t.Callable[[], float],
    clock: t.Callable[[], float] = time.monotonic,
) -> bool:
    """Call HANDLE with every state of the object (None when it is missing or deleted) until it returns
    True (then return True) or ``clock()`` passes ``deadline()`` (then return False).

    DEADLINE is re-read after every event, so it may move later (a progress deadline does).  A transient
    error that lasts until the deadline is raised instead of reporting a plain timeout; other errors
    (403 ...) are raised at once as K8sError.
    """
    resource_version: str | None = None  # None: (re-)list first
    last_error: K8sError | None = None
    while True:
        try:
            if resource_version is None:
                listed = api.list_objects(resource, namespace, field_selector=f"metadata.name={name}")
                last_error = None
                if handle(listed["items"][0] if listed["items"] else None):
                    return True
                resource_version = listed["metadata"]["resourceVersion"]
            remaining = deadline() - clock()
            if remaining <= 0:
                return False
            timeout = math.ceil(min(remaining, MAX_WATCH_SECONDS))
            watch_end = clock() + timeout
            for event in api.watch(resource, namespace, name, resource_version, timeout):
                if event["type"] == "ERROR":  # 410 Gone and friends: start over from a fresh list
                    resource_version = None
                    break
                resource_version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK" and handle(None if event["type"] == "DELETED" else event["object"]):
                    return True
                if clock() >= deadline():
                    return False
                if deadline() < watch_end - 1:  # the deadline moved earlier: watch again with less time
                    break
        except K8sError as exc:
            if exc.status not in _TRANSIENT:
                raise
            last_error, resource_version = exc, None
            time.sleep(max(0.0, min(1.0, deadline() - clock())))
        if clock() >= deadline():
            if last_error is not None:
                raise last_error
            return False


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key(status: Obj) -> tuple:
    return tuple(status.get(key) for key in ("generation", "observed_generation", *_rollout.COUNTERS))


def wait_for_rollout(
    api: Api,
    namespace: str,
    name: str,
    timeout: float,
    progress_deadline: float | None = None,
    on_progress: t.Callable[[Obj], None] | None = None,
    *,
    on_delete: str = "wait",
    return_on_change_from: Obj | None = None,
    clock: t.Callable[[], float] = time.monotonic,
) -> Obj:
    """Wait for the rollout of DaemonSet NAMESPACE/NAME; return a result dict for exit_json/fail_json.

    TIMEOUT: seconds to wait in all (0: read the status once). PROGRESS_DEADLINE: seconds without any
    counter moving (see ``_rollout.progress_key``) before giving up early; None: no such limit.
    ON_PROGRESS(status): called with the ``_rollout.rollout_status`` dict whenever kubectl's message changes.
    ON_DELETE: ``wait`` (OnDelete DaemonSets are waited for like any other) or ``report`` (return at once).
    RETURN_ON_CHANGE_FROM: a ``status`` from an earlier result; once the status differs from it, return
    (not failed, outcome ``changed``) within PROGRESS_STEP seconds of the step's start, with every message
    seen meanwhile in the timeline - lets the action plugin print the changes while the task runs.

    Result keys: ``failed``, ``msg`` (on failure), ``rollout_complete``, ``outcome`` (complete, status,
    on_delete, changed, timeout, progress_deadline, not_found, deleted), ``status`` (counters and
    kubectl's ``message``), ``message``, ``timeline`` ([{time, message}] one entry per message change),
    ``elapsed``, ``revision`` ({number, name, hash} or None; not computed for ``changed``),
    ``blockers`` (on timeout and progress_deadline, see ``_rollout.rollout_blockers``), ``warnings``.
    Raises K8sError for API errors (forbidden, unreachable ...).
    """
    start = clock()
    timeline: list[Obj] = []
    seen: Obj = {"daemonset": None, "status": None, "progress_at": start, "gone": False, "outcome": None}

    def limit() -> float:
        end = start + timeout
        return min(end, seen["progress_at"] + progress_deadline) if progress_deadline else end

    def change_pending() -> bool:
        return (
            return_on_change_from is not None
            and seen["status"] is not None
            and _key(seen["status"]) != _key(return_on_change_from)
        )

    def deadline() -> float:
        # A step that saw a change returns by PROGRESS_STEP, collecting what else changes meanwhile.
        return min(limit(), start + PROGRESS_STEP) if change_pending() else limit()

    def handle(daemonset: Obj | None) -> bool:
        if daemonset is None:
            # seen before, here or by the step that passed RETURN_ON_CHANGE_FROM: it has been deleted
            known = seen["daemonset"] is not None or bool(return_on_change_from)
            seen["outcome"] = "deleted" if known else "not_found"
            return True
        status, previous = _rollout.rollout_status(daemonset), seen["status"]
        if previous is None or _key(status) != _key(previous):
            seen["progress_at"] = clock()
        if previous is None or status["message"] != previous["message"]:
            timeline.append({"time": _now(), "message": status["message"]})
            if on_progress:
                on_progress(status)
        seen["daemonset"], seen["status"] = daemonset, status
        if status["done"]:
            seen["outcome"] = "complete"
        elif status["strategy"] == _rollout.ON_DELETE and on_delete == "report":
            seen["outcome"] = "on_delete"
        elif change_pending() and clock() - start >= PROGRESS_STEP:
            seen["outcome"] = "changed"
        elif timeout <= 0:
            seen["outcome"] = "status"
        return seen["outcome"] is not None

    if not watch_until(api, "daemonsets", namespace, name, handle, deadline, clock):
        if change_pending() and clock() < limit():
            seen["outcome"] = "changed"
        else:
            overall = clock() >= start + timeout
            seen["outcome"] = "timeout" if overall or not progress_deadline else "progress_deadline"
    return _result(api, namespace, name, seen, timeline, clock() - start, timeout, progress_deadline)


def _result(
    api: Api,
    namespace: str,
    name: str,
    seen: Obj,
    timeline: list[Obj],
    elapsed: float,
    timeout: float,
    progress_deadline,
) -> Obj:
    outcome, status, daemonset = seen["outcome"], seen["status"], seen["daemonset"]
    result: Obj = {
        "failed": outcome in ("timeout", "progress_deadline", "not_found", "deleted"),
        "rollout_complete": outcome == "complete",
        "outcome": outcome,
        "status": _public(status),
        "message": status["message"] if status else None,
        "timeline": timeline,
        "elapsed": round(elapsed, 3),
        "revision": None,
        "warnings": [],
    }
    if outcome == "not_found":
        result["msg"] = f"DaemonSet {namespace}/{name} not found"
        return result
    if outcome == "deleted":
        result["msg"] = (
            f"DaemonSet {namespace}/{name} was deleted while waiting for its rollout (object has been deleted)"
        )
        return result
    if outcome == "changed":
        return result
    selector = selector_string(daemonset["spec"]["selector"])
    result["revision"] = _revision(api, daemonset, result["warnings"])
    if outcome == "on_delete" and status["outdated"]:
        result["msg"] = (
            f"DaemonSet {namespace}/{name} uses the OnDelete strategy: {status['outdated']} of {status['desired']} "
            "pods are outdated and are replaced only when deleted"
        )
    if outcome in ("timeout", "progress_deadline"):
        current_hash = (result["revision"] or {}).get("hash")
        result["blockers"] = _blockers(api, namespace, daemonset, selector, current_hash)
        result["msg"] = _rollout.failure_message(
            namespace, name, outcome, timeout, progress_deadline, status["message"], result["blockers"]["summary"]
        )
    return result


def _public(status: Obj | None) -> Obj | None:
    """The status as returned to users: counters, generations, strategy and kubectl's message."""
    if status is None:
        return None
    return {key: value for key, value in status.items() if key != "done"}


def _revision(api: Api, daemonset: Obj, warnings: list[str]) -> Obj | None:
    try:
        owned = api.owned_revisions(daemonset)
    except K8sError as exc:
        if exc.status != 403:
            raise
        warnings.append(f"revision not reported: {exc}")
        return None
    current = _history.current_revision(daemonset, owned)
    if current is None:
        return None
    return {
        "number": int(current["revision"]),
        "name": current["metadata"]["name"],
        "hash": _history.revision_hash(current),
    }


def _blockers(api: Api, namespace: str, daemonset: Obj, selector: str, current_hash: str | None) -> Obj:
    """List the pods and Warning events (only now that the wait failed) and explain what blocks the rollout."""
    listed: Obj = {}
    errors = []
    for key, call in (
        ("pods", lambda: api.list_pods(namespace, selector)),
        ("events", lambda: api.list_events(namespace, "type=Warning")),
    ):
        try:
            listed[key] = call()
        except K8sError as exc:
            listed[key] = []
            errors.append(str(exc))
    blockers = _rollout.rollout_blockers(daemonset, listed["pods"], listed["events"], current_hash)
    if errors:
        blockers["errors"] = errors
    return blockers
