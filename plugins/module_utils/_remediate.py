# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Remediation decisions for a stuck rollout: which pods to evict so the daemon pod fits, and which revision a
rollback should go to. The I/O that carries them out is in ``_ops/remediate.py``.

Floor 1 (pure): API objects in, plain data out.
"""

from __future__ import annotations

import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._history import (
    current_revision,
    owned_revisions,
    revision_hash,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import (
    Obj,
    controller_ref,
    is_daemonset_pod,
    is_mirror_pod,
    owned_by,
    pod_hash,
    pod_is_ready,
    pod_terminated,
    pod_terminating,
    ref,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._placement import (
    node_allocatable,
    node_requested,
    pod_requests,
)
from ansible_collections.kubeops.daemonset.plugins.module_utils._values import format_quantity


def _relief(pod: Obj, deficit: dict[str, float]) -> float:
    """Share of the remaining deficit this pod covers (the dominant resource counts)."""
    requests = pod_requests(pod)
    return max((min(requests.get(r, 0.0), d) / d for r, d in deficit.items() if d > 0), default=0.0)


def _candidates(pods: list[Obj], force: bool) -> tuple[list[Obj], list[Obj]]:
    """(pods that may be evicted, skipped ``{pod, reason}``): never DaemonSet, mirror (static) or terminating
    pods; pods without a controller only with FORCE (nothing would recreate them)."""
    candidates, skipped = [], []
    for pod in pods:
        if is_daemonset_pod(pod) or is_mirror_pod(pod) or pod_terminating(pod):
            continue  # never candidates; not worth listing
        if controller_ref(pod) is None and not force:
            skipped.append({"pod": ref(pod), "reason": "no controller would recreate it (use force)"})
        else:
            candidates.append(pod)
    return candidates, skipped


def plan_evictions(daemonset: Obj, node: Obj, pods: t.Iterable[Obj], force: bool = False) -> Obj:
    """Which pods to evict from NODE so the DaemonSet's pod fits: the fewest, largest first.

    Returns ``{node, need, free, evict, skipped, fits_after, fits_now}``, where ``evict``/``skipped`` list
    ``namespace/name`` (skipped with a reason)."""
    name = node["metadata"]["name"]
    on_node = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name and not pod_terminated(p)]
    need = pod_requests(daemonset["spec"]["template"])
    allocatable, requested = node_allocatable(node), node_requested(name, on_node)
    free = {r: allocatable.get(r, 0.0) - requested.get(r, 0.0) for r in need}
    deficit = {r: need[r] - free[r] for r in need if need[r] > 0 and need[r] > free[r]}
    candidates, skipped = _candidates(on_node, force)
    chosen: list[Obj] = []
    remaining = sorted(candidates, key=lambda p: (_relief(p, deficit), sum(pod_requests(p).values())), reverse=True)
    while any(d > 0 for d in deficit.values()) and remaining:
        best = max(remaining, key=lambda p: _relief(p, deficit))
        if _relief(best, deficit) <= 0:
            break
        remaining.remove(best)
        chosen.append(best)
        for resource, value in pod_requests(best).items():
            if resource in deficit:
                deficit[resource] -= value
    fits = all(d <= 0 for d in deficit.values())
    return {
        "node": name,
        "need": {r: format_quantity(r, v) for r, v in need.items()},
        "free": {r: format_quantity(r, v) for r, v in free.items()},
        "evict": [ref(p) for p in chosen] if fits else [],
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
    owned = owned_revisions(daemonset, revisions)
    live = current_revision(daemonset, owned)
    mine = owned_by(daemonset, pods)
    with_pods, without_pods = [], []
    for rev in reversed(owned):
        if live is not None and rev["metadata"]["name"] == live["metadata"]["name"]:
            continue
        on_rev = [pod for pod in mine if pod_hash(pod) == revision_hash(rev)]
        if all(pod_is_ready(pod) for pod in on_rev):
            (with_pods if on_rev else without_pods).append(rev)
    return (with_pods + without_pods)[0] if with_pods or without_pods else None
