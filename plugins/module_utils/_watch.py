# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Following one object until a condition holds, following a set of objects, and polling until a condition holds.

``watch_until`` is an informer for one object: LIST with ``fieldSelector=metadata.name=NAME`` (which gives a
resourceVersion even when the object is missing), then WATCH from that resourceVersion. A watch the server ends
(its timeoutSeconds) is resumed from the last resourceVersion seen, like client-go's reflector; an ``ERROR``
event (410 Gone: the resourceVersion is too old) or a transient failure (no answer, 429, 5xx) re-lists. The
number of requests depends on time and events, never on the number of nodes.

Floor 2 (I/O).
"""

from __future__ import annotations

import math
import time
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import MAX_WATCH_SECONDS, Api, K8sError

Obj = dict[str, t.Any]

# Pause before re-listing after a transient failure (the API server restarting, a dropped connection ...).
RETRY_SECONDS = 1.0


def watch_until(
    api: Api,
    resource: str,
    namespace: str,
    name: str,
    handle: t.Callable[[Obj | None], bool],
    deadline: t.Callable[[], float],
    clock: t.Callable[[], float] = time.monotonic,
) -> bool:
    """Call HANDLE with every state of the object (None when it is missing or deleted) until it returns True
    (then return True) or ``clock()`` passes ``deadline()`` (then return False).

    DEADLINE is re-read after every event, so it may move (a progress deadline does). A transient failure that
    lasts until the deadline is raised instead of reporting a plain timeout; other errors (403, an untrusted
    certificate ...) are raised at once.
    """
    resource_version: str | None = None  # None: (re-)list first
    last_error: K8sError | None = None
    while True:
        api.deadline = deadline()
        try:
            if resource_version is None:
                listed = api.list_objects(resource, namespace, field_selector=f"metadata.name={name}")
                last_error = None
                if handle(listed["items"][0] if listed["items"] else None):
                    return True
                resource_version = listed["metadata"]["resourceVersion"]
            done, resource_version = _follow(api, resource, namespace, name, resource_version, handle, deadline, clock)
            if done:
                return True
        except K8sError as exc:
            if not exc.transient:
                raise
            last_error, resource_version = exc, None
            time.sleep(max(0.0, min(RETRY_SECONDS, deadline() - clock())))
        if clock() >= deadline():
            if last_error is not None:
                raise last_error
            return False


def _follow(api: Api, resource: str, namespace: str, name: str, resource_version: str,
            handle: t.Callable[[Obj | None], bool], deadline: t.Callable[[], float],
            clock: t.Callable[[], float]) -> tuple[bool, str | None]:  # fmt: skip
    """One watch request: (whether HANDLE was satisfied, the resourceVersion to resume from; None: re-list)."""
    remaining = deadline() - clock()
    if remaining <= 0:
        return False, resource_version
    seconds = math.ceil(min(remaining, MAX_WATCH_SECONDS))
    watch_end = clock() + seconds
    for event in api.watch(resource, namespace, name, resource_version, seconds):
        if event["type"] == "ERROR":  # 410 Gone and friends: start over from a fresh list
            return False, None
        resource_version = event["object"]["metadata"]["resourceVersion"]
        if event["type"] != "BOOKMARK" and handle(None if event["type"] == "DELETED" else event["object"]):
            return True, resource_version
        if clock() >= deadline() or deadline() < watch_end - 1:
            break  # over, or the deadline moved earlier: watch again with less time
    return False, resource_version


def watch_list(
    api: Api,
    resource: str,
    namespace: str,
    label_selector: str,
    handle: t.Callable[[str, Obj], None],
    done: t.Callable[[], bool],
    deadline: float,
    window: float,
    tick: t.Callable[[], None] = lambda: None,
    clock: t.Callable[[], float] = time.monotonic,
) -> bool:
    """An informer for the objects LABEL_SELECTOR selects: LIST them (HANDLE gets ``("SYNC", the List object)``),
    then WATCH from its resourceVersion (HANDLE gets each ``(type, object)`` but bookmarks), until DONE() (then
    True) or ``clock()`` passes DEADLINE (then False).

    A watch request lasts at most WINDOW seconds, so TICK (progress lines) runs at least that often and a request
    to stop (``Api``'s stop) is noticed that soon. ERROR events (410 Gone) and transient failures re-list; a
    transient failure that lasts until the deadline is raised, other errors at once. Requests depend on time and
    events, not on how many objects there are.
    """
    resource_version: str | None = None
    last_error: K8sError | None = None
    while clock() < deadline:
        api.deadline = deadline
        try:
            if resource_version is None:
                listed = api.list_objects(resource, namespace, label_selector)
                last_error = None
                handle("SYNC", listed)
                resource_version = listed["metadata"]["resourceVersion"]
            if done():
                return True
            seconds = math.ceil(max(1.0, min(window, deadline - clock())))
            for event in api.watch(resource, namespace, None, resource_version, seconds, label_selector):
                if event["type"] == "ERROR":
                    resource_version = None
                    break
                resource_version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    handle(event["type"], event["object"])
                    if done():
                        return True
                tick()
                if clock() >= deadline:
                    break
        except K8sError as exc:
            if not exc.transient:
                raise
            last_error, resource_version = exc, None
            time.sleep(max(0.0, min(RETRY_SECONDS, deadline - clock())))
        tick()
    if last_error is not None:
        raise last_error
    return done()


def poll(check: t.Callable[[], t.Any], deadline: float, interval: float,
         clock: t.Callable[[], float] = time.monotonic) -> t.Any:  # fmt: skip
    """CHECK() every INTERVAL seconds until it returns something truthy (returned) or DEADLINE passes (then its
    last value)."""
    while True:
        value = check()
        if value or clock() >= deadline:
            return value
        time.sleep(max(0.0, min(interval, deadline - clock())))
