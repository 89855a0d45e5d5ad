# Copyright (c) kubeops.daemonset contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Writing to a DaemonSet without losing anyone's change: read, decide, write conditioned on the resourceVersion
that was read; on 409 Conflict read and decide again.

During a rollout the controller rewrites the DaemonSet's status many times a second, and every status write
moves the resourceVersion, so conflicts are normal then: a bounded number of fresh attempts get through, and a
change another writer made meanwhile is seen by the next decision instead of being overwritten.

Floor 2 (I/O).
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.kubeops.daemonset.plugins.module_utils._client import K8sError
from ansible_collections.kubeops.daemonset.plugins.module_utils._objects import FIELD_MANAGER, Obj
from ansible_collections.kubeops.daemonset.plugins.module_utils._owners import foreign_owners, owner_policy
from ansible_collections.kubeops.daemonset.plugins.module_utils._runner import Request

State = t.TypeVar("State")
Plan = t.TypeVar("Plan")

CONFLICT_ATTEMPTS = 8


def with_fresh_reads(
    what: str,
    read: t.Callable[[], State],
    decide: t.Callable[[State, Plan | None], Plan],
    write: t.Callable[[State, Plan], t.Any],
) -> tuple[State, Plan, t.Any]:
    """(state, plan, what WRITE returned): READ, DECIDE (given the previous attempt's plan, None at first), WRITE
    (which may find nothing to send); on 409 Conflict all again from a fresh READ, up to CONFLICT_ATTEMPTS times."""
    plan: Plan | None = None
    for attempt in range(CONFLICT_ATTEMPTS):
        state = read()
        plan = decide(state, plan)
        try:
            return state, plan, write(state, plan)
        except K8sError as exc:
            if exc.status != 409:
                raise
            last = exc
        time.sleep(0.05 * (attempt + 1))  # let the status writes settle a little
    raise K8sError(
        f"{what} kept changing while it was written ({CONFLICT_ATTEMPTS} times 409 Conflict); nothing was "
        f"overwritten, run again: {last}",
        409,
    )


def check_owners(request: Request, daemonset: Obj, action: str, kubectl_apply: bool = False) -> list[Obj]:
    """The DaemonSet's other managers, after the request's ``on_foreign_owner`` policy has warned (RequestError:
    refused) - before anything is written."""
    meta = daemonset["metadata"]
    owners = foreign_owners(daemonset, request.params.get("field_manager") or FIELD_MANAGER, kubectl_apply)
    warning = owner_policy(
        owners, request.params["on_foreign_owner"], action, f"DaemonSet {meta['namespace']}/{meta['name']}"
    )
    if warning:
        request.warn(warning)
    return owners
